"""Validation of the SGLD LLC estimator against exact learning coefficients.

Design: what the estimator targets. lambda_hat = n_beta (E_w[L(w)] - L(w*)) under
exp(-n_beta L(w) - gamma/2 |w - w*|^2) tends to the RLCT of L at w* as n_beta -> infinity (Watanabe
2009, ch. 6; Lau et al. arXiv 2308.12108, Thm 3.1). With noisy data at finite n, L_n differs from the
population K(w) by a fluctuation whose effect on lambda_hat is random from dataset to dataset; to
validate the SAMPLER and the ESTIMATOR we remove it: every model below is realisable and its loss is the
population loss itself,

    L(w) = (1/n) sum_i (1/2)|f_w(x_i) - f_w*(x_i)|^2   with the x_i a whitened design (X^T X / n = I)
                                                       or all inputs of a finite input space,

so L = K (the Kullback-Leibler divergence of unit-variance Gaussian regression) exactly, L(w*) = 0,
and n_beta is a free inverse temperature. lambda_hat(n_beta) then differs from lambda only by (i) the
SGLD discretisation bias, first order in eps, removed by extrapolating several step sizes to eps -> 0
(:func:`slt.calibrate_sgld`), (ii) localisation (gamma), negligible when n_beta * curvature >> gamma,
and (iii) the finite-n_beta corrections of SLT itself: higher poles of the zeta function (from above,
shrinking like a power of n_beta) and, for multiplicity m > 1, a (m-1)/log(n_beta)-type term that makes
lambda_hat UNDERESTIMATE lambda (Watanabe 2009, Thm 6.2). (iii) is real, not a bug: a case with m > 1
is expected to come out low and is reported as such, with the same 3-SE criterion.

w* is the deepest singularity of each model: the origin for RRR with r = 0 and for crossings; for RRR
with r > 0 a rank-r teacher in the first r hidden units with the others zero (the point where the
Aoyagi-Watanabe lambda, the minimum over the true set, is attained); for quadratic networks a generic
teacher point, where the true set is a smooth manifold (Morse-Bott) and lambda = rank(J)/2, the rank of
the float64 Jacobian of the outputs computed here by SVD.

Run ``python tests/test_llc_validation.py`` for the full table (all cases); pytest runs a fast subset
by default and everything with ``-m slow``.
"""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from slt.models import QuadraticNet
from slt.models.quadratic import quadratic_forward
from slt.sampling import calibrate_sgld, regression_mse
from slt.tasks import all_pairs
from slt.theory import normal_crossing, regular, rrr

Z_TOL = 3.0  # agreement: |estimate - lambda| <= 3 standard errors (common.md)
REL_AIM = 0.10  # the aim for the relative error; reported, not asserted (see module docstring)
EPS_FACTORS = (0.25, 0.5, 1.0)  # x the automatic step size: eps * top curvature ~ 0.0125, 0.025, 0.05


def half_sq(out, t):
    return 0.5 * ((out - t) ** 2).sum(-1).mean()


@dataclass(frozen=True)
class Case:
    name: str
    build: callable  # () -> (model, loss_fn, data, exact lambda, multiplicity)
    n_beta: float
    gamma: float = 1.0
    chains: int = 8
    burnin: int = 2000
    draws: int = 4000
    fast: bool = False
    expect_low: bool = False  # m > 1: SLT predicts underestimation at finite n_beta (module docstring)
    factors: tuple[float, ...] = EPS_FACTORS


def linear_regular(d: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    X = math.sqrt(d) * torch.eye(d, dtype=torch.float64)
    w0 = torch.randn(1, d, generator=g, dtype=torch.float64)
    model = nn.Linear(d, 1, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(w0)
    lam, m = regular(d)
    return model, half_sq, (X, X @ w0.T), float(lam), m


class Crossing(nn.Module):
    """f(x) = x * prod_j w_j^(k_j); with w* = 0 and teacher 0, K = E[x^2]/2 prod w_j^(2 k_j)."""

    def __init__(self, ks):
        super().__init__()
        self.ks = tuple(ks)
        self.w = nn.Parameter(torch.zeros(len(ks), dtype=torch.float64))

    def forward(self, x):
        return x * torch.prod(self.w ** torch.tensor(self.ks, dtype=torch.float64))


def crossing(ks):
    lam, m = normal_crossing(list(ks))
    X = torch.ones(1, 1, dtype=torch.float64)
    return Crossing(ks), half_sq, (X, torch.zeros(1, 1, dtype=torch.float64)), float(lam), m


def rrr_case(M: int, H: int, N: int, r: int, seed: int = 0):
    """y = B A x; teacher B0 A0 of rank r in the first r hidden units, the rest of w* zero.

    The teacher is a random rank-r map with unit singular values, balanced between the factors
    (B0 = U, A0 = V^T): lambda does not depend on the teacher, but SGLD's step size is set by the
    stiffest direction, so a teacher with large singular values would make the singular directions mix
    (much) more slowly.
    """
    g = torch.Generator().manual_seed(seed)
    Q1, _ = torch.linalg.qr(torch.randn(M, max(r, 1), generator=g, dtype=torch.float64))
    Q2, _ = torch.linalg.qr(torch.randn(N, max(r, 1), generator=g, dtype=torch.float64))
    A0, B0 = Q1[:, :r].T, Q2[:, :r]  # (r, M), (N, r); B0 A0 has r singular values equal to 1
    model = nn.Sequential(nn.Linear(M, H, bias=False), nn.Linear(H, N, bias=False)).double()
    with torch.no_grad():
        model[0].weight.zero_()
        model[1].weight.zero_()
        model[0].weight[:r] = A0
        model[1].weight[:, :r] = B0
    X = math.sqrt(M) * torch.eye(M, dtype=torch.float64)  # whitened: L = |BA - B0 A0|_F^2 / 2 = K
    lam, m = rrr(M, H, N, r)
    return model, half_sq, (X, X @ (B0 @ A0).T), float(lam), m


def quadratic_teacher(p: int, width: int, seed: int):
    """A generic QuadraticNet teacher on all p^2 pairs, real targets = its own outputs."""
    net = QuadraticNet(p, width, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))
    a, b, _ = all_pairs(p)
    with torch.no_grad():
        T = net(a, b)[0]  # (p^2, p)

    def outputs(w):
        k = p * width
        U, V, A = w[:k].view(1, p, width), w[k:2 * k].view(1, p, width), w[2 * k:].view(1, width, p)
        return quadratic_forward(U, V, A, a, b).flatten()

    w = torch.cat([net.U.flatten(), net.V.flatten(), net.A.flatten()]).detach()
    s = torch.linalg.svdvals(torch.func.jacrev(outputs)(w))
    rank = int((s > s[0] * w.numel() * torch.finfo(torch.float64).eps * 1e3).sum())
    return net, regression_mse, (a, b, T), rank / 2, 1


RRR = dict(n_beta=1000.0, burnin=10000, draws=40000)
CROSS = dict(n_beta=1e6, burnin=5000, draws=40000)
QUAD = dict(n_beta=1e5, burnin=6000, draws=16000)
CASES = [
    Case("regular d=6", lambda: linear_regular(6), n_beta=1000.0, burnin=1000, draws=6000, fast=True),
    Case("crossing w^2 (k=2)", lambda: crossing([2]), n_beta=1e6, burnin=2000, draws=10000, factors=(1.0, 2.0, 4.0),
         fast=True),
    Case("crossing w^3 (k=3)", lambda: crossing([3]), **CROSS),
    Case("crossing w1 w2^2", lambda: crossing([1, 2]), **CROSS),
    Case("RRR (5,4,5,0) case1 even", lambda: rrr_case(5, 4, 5, 0), **RRR),
    Case("RRR (5,3,5,0) case1 odd m=2", lambda: rrr_case(5, 3, 5, 0), expect_low=True, **RRR),
    Case("RRR (4,3,4,1) case1 even r>0", lambda: rrr_case(4, 3, 4, 1), **RRR),
    Case("RRR (4,3,8,0) case2", lambda: rrr_case(4, 3, 8, 0), **RRR),
    Case("RRR (2,2,6,1) case2 r>0", lambda: rrr_case(2, 2, 6, 1), **RRR),
    Case("RRR (8,3,4,0) case3", lambda: rrr_case(8, 3, 4, 0), **RRR),
    Case("RRR (2,5,2,0) case4", lambda: rrr_case(2, 5, 2, 0), **RRR),
    Case("RRR (2,5,2,1) case4 r>0", lambda: rrr_case(2, 5, 2, 1), **RRR),
    Case("QuadNet p=3 K=2 (Morse-Bott)", lambda: quadratic_teacher(3, 2, 1), **QUAD),
    Case("QuadNet p=5 K=3 (Morse-Bott)", lambda: quadratic_teacher(5, 3, 1), **QUAD),
]


@dataclass(frozen=True)
class Row:
    name: str
    exact: float
    m: int
    est: float  # extrapolated to eps -> 0
    se: float
    plain: float  # at the automatic step size
    plain_se: float
    seconds: float

    @property
    def rel(self) -> float:
        return (self.est - self.exact) / self.exact

    @property
    def z(self) -> float:
        return (self.est - self.exact) / self.se

    def line(self) -> str:
        return (f"{self.name:32s} {self.exact:8.4g} {self.m:2d} {self.est:9.4g} ± {self.se:<7.3g} {self.rel:+8.1%} "
                f"{self.z:+6.2f}   {self.plain:9.4g} ± {self.plain_se:<7.3g} {self.seconds:6.1f}s")


HEADER = (f"{'case':32s} {'lambda':>8s} {'m':>2s} {'est(eps->0)':>9s}   {'SE':<7s} {'rel.err':>8s} {'z':>6s}   "
          f"{'est(smallest eps)':>9s}       time")


def run_case(case: Case, seed: int = 0) -> Row:
    model, loss, data, exact, m = case.build()
    t0 = time.perf_counter()
    cal = calibrate_sgld(model, loss, data, n_beta=case.n_beta, gammas=(case.gamma,), eps_factors=case.factors,
                         num_chains=case.chains, num_draws=case.draws, num_burnin=case.burnin, seed=seed)
    plain = min(cal.rows, key=lambda r: r.eps)  # the smallest step size, without extrapolation
    x = cal.extrapolation
    return Row(case.name, exact, m, x.llc0, x.llc0_se, plain.llc, plain.llc_se, time.perf_counter() - t0)


def _check(row: Row) -> None:
    print("\n" + HEADER + "\n" + row.line())
    assert abs(row.est - row.exact) <= Z_TOL * row.se, row.line()


@pytest.mark.parametrize("case", [c for c in CASES if c.fast], ids=lambda c: c.name)
def test_llc_matches_exact_value_fast(case):
    _check(run_case(case))


def _param(c: Case):
    if not c.expect_low:
        return c
    # not a widened tolerance: the 3-SE check still runs and is reported; with m = 2 the estimate at
    # finite n_beta is expected to come out LOW by a (m-1)/log(n_beta)-type term (Watanabe 2009, Thm 6.2)
    return pytest.param(c, marks=pytest.mark.xfail(reason="multiplicity m > 1: finite-n_beta underestimation",
                                                   strict=False))


@pytest.mark.slow
@pytest.mark.parametrize("case", [_param(c) for c in CASES if not c.fast], ids=lambda c: c.name)
def test_llc_matches_exact_value_slow(case):
    _check(run_case(case))


def test_validation_covers_every_rrr_case_and_parity():
    """At least 10 cases; RRR: all four Aoyagi-Watanabe cases, both parities of case 1, r = 0 and r > 0."""
    assert len(CASES) >= 10
    rrr_args = [tuple(int(v) for v in c.name.split("(")[1].split(")")[0].split(",")) for c in CASES if "RRR" in c.name]

    def which(M, H, N, r):
        if M + H < N + r:
            return "2"
        if N + H < M + r:
            return "3"
        if M + N < H + r:
            return "4"
        return "1" + ("even" if (M + H + N + r) % 2 == 0 else "odd")

    kinds = {which(*a) for a in rrr_args}
    assert {"1even", "1odd", "2", "3", "4"} <= kinds
    assert any(a[3] == 0 for a in rrr_args) and any(a[3] > 0 for a in rrr_args)


if __name__ == "__main__":
    names = sys.argv[1:]
    print(HEADER)
    for c in CASES:
        if names and not any(n in c.name for n in names):
            continue
        print(run_case(c).line(), flush=True)

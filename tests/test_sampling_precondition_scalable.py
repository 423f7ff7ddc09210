"""Scalable constant preconditioners ("diagonal", "rmsprop", "lowrank"; slt.sampling.precondition).

The stationary law of preconditioned SGLD with a constant metric on an exactly quadratic loss is Gaussian with
the covariance of the discrete Lyapunov equation Sigma = B Sigma B^T + eps M, B = I - (eps/2) M A: the
estimate is checked against n_beta tr(H Sigma)/2 within Z_TOL standard errors across chains."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.linalg
import torch
from scipy.linalg import solve_discrete_lyapunov
from torch import nn

from slt.sampling import estimate_llc
from slt.sampling.llc import _make_problem
from slt.sampling.precondition import scalable_preconditioner
from slt.sampling.sgld import LowRankPreconditioner

from quadratic_problems import half_sq, regression as _regression  # noqa: E402

Z_TOL = 3.0
F64 = torch.float64


def regression(d=10, cond=1e3, seed=0):
    model, data, _, H = _regression(d, cond, seed)
    return model, data, H


def test_lowrank_sqrt_is_the_dense_symmetric_root():
    g = torch.Generator().manual_seed(0)
    B, C, d, k = 2, 3, 7, 3
    Q = torch.linalg.qr(torch.randn(B, d, k, generator=g, dtype=F64))[0]
    s = torch.rand(B, k, generator=g, dtype=F64) + 0.5
    t = torch.rand(B, d, generator=g, dtype=F64) + 0.5
    pre = LowRankPreconditioner(Q, s, t)
    x = torch.randn(B * C, d, generator=g, dtype=F64)
    eye = torch.eye(d, dtype=F64)
    for b in range(B):
        P = eye - Q[b] @ Q[b].T
        S = Q[b] @ torch.diag(s[b]) @ Q[b].T + P @ torch.diag(t[b]) @ P
        assert torch.allclose(S, S.T) and bool((torch.linalg.eigvalsh(S) > 0).all())
        want = x[b * C:(b + 1) * C] @ S
        assert torch.allclose(pre.apply_sqrt(x)[b * C:(b + 1) * C], want, atol=1e-12)


def _metric(pre, d):
    eye = torch.eye(d, dtype=F64)
    S = pre.apply_sqrt(eye).T  # rows of S (symmetric)
    return (S @ S).numpy()


@pytest.mark.parametrize("kind", ["diagonal", "rmsprop", "lowrank"])
def test_preconditioned_chain_samples_the_lyapunov_law(kind):
    model, data, H = regression()
    d = H.shape[0]
    nb, gamma = 1e3, 1.0
    problem = _make_problem(model, half_sq, data)
    opts = dict(dtype=F64)
    pre, info = scalable_preconditioner(problem, torch.full((1,), nb, **opts), torch.full((1,), gamma, **opts), kind)
    M = _metric(pre, d)
    Mh = np.real(scipy.linalg.sqrtm(M))
    eps = 0.3 / np.linalg.eigvalsh(Mh @ (nb * H + gamma * np.eye(d)) @ Mh).max()  # explicit: no pilot run
    r = estimate_llc(model, half_sq, data, n_beta=nb, gamma=gamma, eps=float(eps), num_chains=16, num_burnin=600,
                     num_draws=600, precondition=kind, seed=5)
    A = nb * H + gamma * np.eye(d)
    Bm = np.eye(d) - 0.5 * r.eps * M @ A
    Sigma = solve_discrete_lyapunov(Bm, r.eps * M)
    want = 0.5 * nb * np.trace(H @ Sigma)
    assert abs(r.llc - want) <= Z_TOL * r.llc_se, (kind, r.llc, r.llc_se, want)
    if kind == "lowrank":
        assert info[0]["rank"] == d  # every direction of a 10-parameter model converges in 80 Lanczos steps


def test_lowrank_relaxes_where_plain_sgld_does_not():
    """Same number of steps on a condition-1e3 quadratic: plain SGLD (step set by the stiffest direction) is
    still far below d/2-ish stationary value; the low-rank metric whitens every direction and reaches it."""
    model, data, H = regression(cond=1e4)
    nb, gamma = 1e4, 1.0
    kw = dict(n_beta=nb, gamma=gamma, num_chains=8, num_burnin=300, num_draws=300, seed=2)
    h = np.linalg.eigvalsh(H)
    stationary = 0.5 * float((nb * h / (nb * h + gamma)).sum())
    plain = estimate_llc(model, half_sq, data, **kw)
    low = estimate_llc(model, half_sq, data, precondition="lowrank", **kw)
    assert stationary - plain.llc > 5 * plain.llc_se
    assert abs(low.llc - stationary) <= Z_TOL * low.llc_se + 0.0125 * stationary  # + the step-size bias bound


def test_unknown_kind():
    model, data, _ = regression()
    with pytest.raises(ValueError, match="precondition"):
        estimate_llc(model, half_sq, data, precondition="adam")


def test_auto_choice_above_the_dense_limit_takes_the_lowrank_metric(monkeypatch):
    """Above MAX_PRECONDITION_DIM (lowered to 4 here so that a 10-parameter quadratic counts as "large") the
    default precondition="auto" tries the scalable candidate: on the condition-1e4 quadratic plain SGLD has not
    relaxed after its first segment, the low-rank metric (every direction of a 10-parameter model converges in
    Lanczos) is chosen and the estimate is the stationary value within Z_TOL total SE."""
    import slt.sampling.llc as llc_mod

    monkeypatch.setattr(llc_mod, "MAX_PRECONDITION_DIM", 4)
    model, data, H = regression(cond=1e4)
    nb, gamma = 1e4, 1.0
    h = np.linalg.eigvalsh(H)
    stationary = 0.5 * float((nb * h / (nb * h + gamma)).sum())
    r = estimate_llc(model, half_sq, data, n_beta=nb, gamma=gamma, seed=11)
    ch = r.calibration["precondition_choice"]
    assert r.precondition == "lowrank" and set(ch["tried"]) == {"lowrank"}, ch
    assert abs(r.llc - stationary) <= Z_TOL * r.calibration["se_total"], (r.llc, r.calibration["se_total"], stationary)

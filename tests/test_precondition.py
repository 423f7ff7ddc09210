"""Preconditioned SGLD with a constant dense metric M = (n_beta H + gamma I)^(-1) at w*
(``precondition="hessian"`` of slt.estimate_llc / estimate_llc_copies / calibrate_sgld).

Statistical checks use |diff| <= Z_TOL standard errors (SE across independent chains).
"""
from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

from slt.models import QuadraticNet
from slt.models.quadratic import quadratic_forward
from slt.sampling import calibrate_sgld, estimate_llc, estimate_llc_copies, regression_mse
from slt.sampling.llc import (
    MAX_PRECONDITION_DIM,
    _make_problem,
    hessian_preconditioner,
    loss_hessian,
)
from slt.sampling.sgld import (
    Preconditioner,
    langevin_update,
    preconditioned_update,
    psgld_init,
    psgld_step,
    sgld_init,
    sgld_step,
)

Z_TOL = 3.0  # agreement within 3 standard errors (common.md)
F64 = torch.float64


def half_sq(out, t):
    return 0.5 * ((out - t) ** 2).sum(-1).mean()


def ill_conditioned_regression(d: int = 8, cond: float = 1e3, seed: int = 0):
    """Realisable linear regression y = w.x with H = X^T X / n = Q diag(h) Q^T, h log-spaced in [1/cond, 1]:
    L(w) = (w - w0)^T H (w - w0) / 2 exactly (L(w*) = 0), a regular model, lambda = d/2. -> (model, loss,
    data, h)."""
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=F64))
    h = torch.logspace(0, -math.log10(cond), d, dtype=F64)
    X = math.sqrt(d) * Q * h.sqrt()  # rows are samples: X^T X / d = Q diag(h) Q^T
    X = X @ Q.T  # H = Q diag(h) Q^T, eigenvectors not aligned with the axes
    w0 = torch.randn(1, d, generator=g, dtype=F64)
    model = nn.Linear(d, 1, bias=False).to(F64)
    with torch.no_grad():
        model.weight.copy_(w0)
    return model, half_sq, (X, X @ w0.T), h


def stationary_llc(h: torch.Tensor, n_beta: float, gamma: float, eps_white: float) -> float:
    """Exact E[n_beta L] of preconditioned SGLD at stationarity on L = x^T H x / 2 with M = (n_beta H + gamma)^-1:
    in the whitened frame every direction has curvature 1, x' = (1 - eps/2) x + sqrt(eps) xi, whose stationary
    variance is 1 / (1 - eps/4) (the Euler-Maruyama inflation); direction i contributes
    n_beta h_i / (2 (n_beta h_i + gamma)) times that. -> d/2 as n_beta -> inf, eps -> 0."""
    a = n_beta * h + gamma
    return float((n_beta * h / (2 * a)).sum()) / (1 - eps_white / 4)


# ---------------------------------------------------------------------------------------------------- kernel


def test_update_with_identity_metric_is_the_plain_langevin_step():
    g = torch.Generator().manual_seed(0)
    pos = (torch.randn(6, 2, 3, generator=g, dtype=F64), torch.randn(6, 4, generator=g, dtype=F64))
    drift = tuple(torch.randn(w.shape, generator=g, dtype=F64) for w in pos)
    noise = tuple(torch.randn(w.shape, generator=g, dtype=F64) for w in pos)
    eps = torch.rand(6, generator=g, dtype=F64)
    eye = torch.eye(10, dtype=F64).expand(2, 10, 10)  # 2 copies x 3 chains
    new_p, dp = preconditioned_update(pos, drift, noise, eps, Preconditioner(eye, eye))
    new_l, dl = langevin_update(pos, drift, noise, eps)
    for a, b in zip(new_p + dp, new_l + dl):
        assert a.shape == b.shape and torch.allclose(a, b, atol=1e-14)


def test_update_zero_drift_zero_noise_does_not_move_and_drift_uses_each_copy_metric():
    pos = (torch.zeros(4, 2, dtype=F64),)
    zeros = (torch.zeros(4, 2, dtype=F64),)
    M = torch.stack([torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=F64), torch.eye(2, dtype=F64)])
    lam, Q = torch.linalg.eigh(M)
    P = Preconditioner(M, (Q * lam.sqrt().unsqueeze(1)) @ Q.mT)
    new, _ = preconditioned_update(pos, zeros, zeros, torch.tensor(0.1, dtype=F64), P)
    assert torch.count_nonzero(new[0]) == 0
    g = torch.tensor([[1.0, -2.0]] * 4, dtype=F64)
    sg = (torch.stack([P.sqrt[r // 2] @ g[r] for r in range(4)]),)  # the update takes M^(1/2) g precomputed
    new, delta = preconditioned_update(pos, sg, zeros, torch.tensor(0.2, dtype=F64), P)
    expect = torch.stack([-0.1 * M[r // 2] @ g[r] for r in range(4)])  # rows 0,1 copy 0; rows 2,3 copy 1
    assert torch.allclose(delta[0], expect, atol=1e-12)


def test_step_with_identity_metric_reproduces_plain_sgld():
    anchor = (torch.zeros(1, 3, dtype=F64),)
    loss_fn = lambda pos, batch: ((pos[0] ** 2).sum(-1) + pos[0][:, 0] ** 4)  # noqa: E731
    pos = (torch.randn(4, 3, generator=torch.Generator().manual_seed(1), dtype=F64),)
    kw = dict(eps=torch.tensor(0.01, dtype=F64), n_beta=torch.tensor(5.0, dtype=F64), gamma=torch.tensor(1.0, dtype=F64))
    eye = torch.eye(3, dtype=F64)[None]
    P = Preconditioner(eye, eye)
    s0, s1 = sgld_init(loss_fn, pos, None, anchor, kw["n_beta"], kw["gamma"]), psgld_init(
        loss_fn, pos, None, anchor, kw["n_beta"], kw["gamma"], P)
    g0, g1 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for _ in range(5):
        s0, i0 = sgld_step(g0, s0, loss_fn, None, anchor, **kw)
        s1, i1 = psgld_step(g1, s1, loss_fn, None, anchor, **kw, precond=P)
    assert torch.allclose(s0.position[0], s1.position[0], atol=1e-12)
    assert torch.allclose(i0.log_accept, i1.log_accept, atol=1e-10)


# ---------------------------------------------------------------------------------------------------- MALA

def _toy_3d():
    """A non-quadratic 3-d potential (rows independent) and an SPD metric with off-diagonal terms."""
    anchor = (torch.tensor([[0.3, -0.2, 0.5]], dtype=F64),)

    def loss_fn(pos, batch):
        w = pos[0]
        return (w[:, 0] * w[:, 1] - 0.5) ** 2 + 0.25 * w[:, 2] ** 4 + 0.1 * torch.sin(w.sum(-1))

    A = torch.tensor([[1.0, 0.3, 0.0], [0.2, 0.8, 0.4], [0.0, -0.1, 0.5]], dtype=F64)
    M = A @ A.T + 0.05 * torch.eye(3, dtype=F64)
    lam, Q = torch.linalg.eigh(M)
    P = Preconditioner(M[None], ((Q * lam.sqrt()) @ Q.T)[None])
    return anchor, loss_fn, P


def test_mala_log_accept_equals_brute_force_dense_gaussian_proposal():
    """log alpha = U(w) - U(w') + log q(w|w') - log q(w'|w), q(y|x) = N(y; x - (eps/2) M g(x), eps M),
    evaluated directly with the dense Gaussian density."""
    anchor, loss_fn, P = _toy_3d()
    n_beta, gamma, eps = torch.tensor(7.0, dtype=F64), torch.tensor(2.0, dtype=F64), torch.tensor(0.3, dtype=F64)
    pos = (anchor[0] + 0.4 * torch.randn(5, 3, generator=torch.Generator().manual_seed(0), dtype=F64),)
    state = psgld_init(loss_fn, pos, None, anchor, n_beta, gamma, P)
    new, info = psgld_step(torch.Generator().manual_seed(1), state, loss_fn, None, anchor, eps=eps, n_beta=n_beta,
                           gamma=gamma, precond=P)

    def U_and_g(w):
        w = w.detach().requires_grad_(True)
        u = n_beta * loss_fn((w,), None) + 0.5 * gamma * ((w - anchor[0]) ** 2).sum(-1)
        return u.detach(), torch.autograd.grad(u.sum(), w)[0]

    w0, w1 = pos[0], new.position[0]
    (u0, g0), (u1, g1) = U_and_g(w0), U_and_g(w1)
    M = P.matrix[0]
    q = lambda y, x, g: torch.distributions.MultivariateNormal(x - eps / 2 * g @ M, eps * M).log_prob(y)  # noqa: E731
    direct = u0 - u1 + q(w0, w1, g1) - q(w1, w0, g0)
    assert torch.allclose(info.log_accept, direct, atol=1e-9, rtol=1e-9)
    assert (direct < -1e-3).any()  # eps is large enough here that acceptance is not trivially 1


def test_mala_acceptance_tends_to_one_as_eps_shrinks():
    anchor, loss_fn, P = _toy_3d()
    n_beta, gamma = torch.tensor(7.0, dtype=F64), torch.tensor(2.0, dtype=F64)
    pos = (anchor[0].expand(64, 3).clone(),)
    rejection = []
    for eps in (1e-1, 1e-3, 1e-5):
        s = psgld_init(loss_fn, pos, None, anchor, n_beta, gamma, P)
        g, acc = torch.Generator().manual_seed(2), []
        for _ in range(20):
            s, info = psgld_step(g, s, loss_fn, None, anchor, eps=torch.tensor(eps, dtype=F64), n_beta=n_beta,
                                 gamma=gamma, precond=P)
            acc.append(info.log_accept.clamp(max=0).exp().mean())
        rejection.append(1 - float(torch.stack(acc).mean()))
    assert rejection[-1] < 1e-5
    assert rejection[0] > rejection[1] > rejection[2]


# ---------------------------------------------------------------------------------------------------- metric


def test_loss_hessian_is_the_dense_hessian_of_each_copy():
    net = QuadraticNet(3, 2, n_copies=2, dtype=F64, generator=torch.Generator().manual_seed(4))
    a = torch.tensor([0, 1, 2, 0, 1]); b = torch.tensor([1, 2, 0, 0, 2])
    T = torch.randn(5, 3, generator=torch.Generator().manual_seed(5), dtype=F64)
    H = loss_hessian(_make_problem(net, regression_mse, (a, b, T)))  # (2, 18, 18)
    for k in range(2):
        one = net.select(k)
        sizes = [one.U.numel(), one.V.numel(), one.A.numel()]

        def L(w):
            U, V, A = (x.view_as(t) for x, t in zip(torch.split(w, sizes), (one.U, one.V, one.A)))
            return regression_mse(quadratic_forward(U, V, A, a, b), T)[0]

        w = torch.cat([one.U.flatten(), one.V.flatten(), one.A.flatten()]).detach()
        assert torch.allclose(H[k], torch.func.hessian(L)(w), atol=1e-10)


def test_metric_whitens_the_potential_hessian_and_range_variant_freezes_the_null_space():
    model, loss, data, h = ill_conditioned_regression(d=5, cond=1e3)
    problem = _make_problem(model, loss, data)
    nb, gm = torch.tensor([1e4], dtype=F64), torch.tensor([1.0], dtype=F64)
    P, info = hessian_preconditioner(problem, nb, gm)
    Hpot = nb * loss_hessian(problem)[0] + gm * torch.eye(5, dtype=F64)
    S, M = P.sqrt[0], P.matrix[0]
    assert torch.allclose(S @ Hpot @ S, torch.eye(5, dtype=F64), atol=1e-9)
    assert torch.allclose(S @ S, M, atol=1e-12)
    assert info[0]["condition"] == pytest.approx(float((1e4 * h.max() + 1) / (1e4 * h.min() + 1)), rel=1e-6)
    # a model with a symmetry: f = x * w1 * w2 at w* = (1, 1) has a 1-d null space along (1, -1)

    class Prod(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.ones(2, dtype=F64))

        def forward(self, x):
            return x * self.w[0] * self.w[1]

    X = torch.ones(3, 1, dtype=F64)
    prob2 = _make_problem(Prod(), half_sq, (X, X))
    P_full, i_full = hessian_preconditioner(prob2, nb, gm, "hessian")
    P_rng, i_rng = hessian_preconditioner(prob2, nb, gm, "hessian-range")
    null = torch.tensor([1.0, -1.0], dtype=F64) / math.sqrt(2)
    rng = torch.tensor([1.0, 1.0], dtype=F64) / math.sqrt(2)
    top = float(nb) * 2.0 + 1.0  # H = [[1, 1], [1, 1]]: eigenvalue 2 along (1, 1)
    assert float(null @ P_full.matrix[0] @ null) == pytest.approx(1.0)  # 1/gamma
    assert float(null @ P_rng.matrix[0] @ null) == pytest.approx(1 / top)  # the stiffest direction's
    assert float(rng @ P_rng.matrix[0] @ rng) == pytest.approx(1 / top)
    assert i_rng[0]["null_dim"] == 1 and i_full[0]["null_dim"] == 1
    with pytest.raises(ValueError, match="gamma"):  # gamma = 0 and a null space: M does not exist
        hessian_preconditioner(prob2, nb, torch.tensor([0.0], dtype=F64), "hessian")


# ---------------------------------------------------------------------------------------------------- law


def test_stationary_law_ill_conditioned_regression_few_steps():
    """Hessian condition 1e4 (n_beta h_min = 100 >> gamma): preconditioned SGLD hits the exact stationary
    value (-> d/2) within Z_TOL SE in 1,200 steps; plain SGLD at the same steps has relaxed only the stiff
    directions (its flattest ones need ~2 x 1e4 / 0.05 = 4e5 steps) and is far low. Measured (seeds 0-3,
    8 chains): preconditioned z = 1.4, 1.2, 2.1, 0.1; plain 38-63% low (z = -4.7 .. -24). With 64 chains x
    4,000 draws (condition 1e3, seeds 0-2) the preconditioned z was -0.5, -0.6, 0.3 (no bias at the
    0.7% level)."""
    d, nb, gamma = 8, 1e6, 1.0
    model, loss, data, h = ill_conditioned_regression(d=d, cond=1e4)
    kw = dict(n_beta=nb, gamma=gamma, num_chains=8, num_burnin=200, num_draws=1000, seed=0)
    pre = estimate_llc(model, loss, data, precondition="hessian", **kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # plain SGLD warns about R-hat here: that is the point
        plain = estimate_llc(model, loss, data, **kw)
    exact = stationary_llc(h, nb, gamma, pre.eps)
    print(f"\nd/2 = {d / 2}, exact stationary value at eps={pre.eps:.3g} (whitened): {exact:.4f}; "
          f"preconditioned {pre.llc:.3f} ± {pre.llc_se:.3f} (z = {(pre.llc - exact) / pre.llc_se:.2f}, "
          f"rel {(pre.llc - d / 2) / (d / 2):+.1%} vs d/2); plain {plain.llc:.3f} ± {plain.llc_se:.3f} "
          f"(rel {(plain.llc - d / 2) / (d / 2):+.1%}), eps {plain.eps:.3g}")
    assert pre.precondition == "hessian" and plain.precondition is None
    assert pre.eps == pytest.approx(0.05, rel=1e-6)  # the preconditioned curvature is 1 everywhere
    assert abs(pre.llc - exact) <= Z_TOL * pre.llc_se
    assert abs(plain.llc - exact) > abs(pre.llc - exact)
    assert plain.llc < exact - Z_TOL * plain.llc_se


# ---------------------------------------------------------------------------------------------------- quadratic net


def _claim1_teacher(p: int = 3, width: int = 2, n_train: int = 8, i: int = 0, teacher_seed: int = 0):
    """The teacher of slt.checks.claims.claim_closed_form (case i of the default profile)."""
    from slt.tasks import make_data

    data = make_data(p, "add", (n_train + 0.5) / (p * p), seed=teacher_seed + i)
    a, b, _ = data.train()
    g = torch.Generator().manual_seed(1000 + teacher_seed + i)
    teacher = QuadraticNet(p, width, 1, False, init_scale=1.0, generator=g, dtype=F64)
    with torch.no_grad():
        target = teacher(a, b)[0]
    return teacher, (a, b, target)


def test_quadratic_net_contract_and_exact_lambda():
    from slt.theory.quadratic import quadratic_llc_data

    teacher, (a, b, T) = _claim1_teacher()
    assert float(quadratic_llc_data(3, 2, a.numpy(), b.numpy()).lam) == 7.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r = estimate_llc(teacher, regression_mse, (a, b, T), n_beta=1e5, num_chains=2, num_draws=20, num_burnin=0,
                         precondition="hessian")
    d = r.to_dict()
    assert d["precondition"] == "hessian" and d["extra"]["precondition_null_dim"] == 4  # 18 params, rank 14
    assert math.isfinite(r.llc) and r.eps > 0


@pytest.mark.xfail(strict=True, reason="MEASURED DISAGREEMENT (preconditioning task report): at points drawn from "
                   "the quadratic-approximation posterior the preconditioned curvature M^1/2 (n_beta H(w) + gamma) "
                   "M^1/2 is ~500, not 1 (null directions of H(w*) get metric 1/gamma but curvature O(sqrt(n_beta)) "
                   "there; the flattest range directions are nonlinear at n_beta = 1e5), so the automatic eps "
                   "collapses to ~1e-4 and the eps -> 0 estimate is 0.74 +- 0.25, not 7")
def test_quadratic_net_preconditioned_calibration_recovers_lambda():
    teacher, data = _claim1_teacher()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = calibrate_sgld(teacher, regression_mse, data, n_beta=1e5, gammas=(1.0,), eps_factors=(0.25, 0.5, 1.0),
                             num_chains=8, num_burnin=1000, num_draws=2000, seed=0, precondition="hessian")
    x = cal.extrapolation
    print("\n" + cal.table())
    assert cal.precondition == "hessian" and cal.to_dict()["precondition"] == "hessian"
    assert x is not None and abs(x.llc0 - 7.0) <= Z_TOL * x.llc0_se


def test_quadratic_net_range_preconditioner_recovers_lambda_at_large_n_beta():
    """Claim-1 case p5-K3-N24 (default profile, case 2, same teacher and seed) at n_beta = 1e7, where the
    Hessian along the posterior stays close to H(w*) on its range: "hessian-range" + calibrate_sgld recovers
    lambda = 19.5 within Z_TOL SE in 3,000 steps (measured 18.99 +- 0.70, z = -0.74; plain SGLD at the same
    steps 12.90 +- 0.77, z = -8.6)."""
    from slt.checks import backend

    teacher, (a, b, T) = _claim1_teacher(p=5, width=3, n_train=24, i=2)
    lam = backend.generic_llc(5, 3, a.numpy(), b.numpy(), False, False)["lam"]
    assert lam == 19.5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cal = calibrate_sgld(teacher, regression_mse, (a, b, T), n_beta=1e7, gammas=(1.0,),
                             eps_factors=(0.25, 0.5, 1.0), num_chains=8, num_burnin=1000, num_draws=2000, seed=2,
                             precondition="hessian-range")
    x = cal.extrapolation
    print("\n" + cal.table())
    assert x is not None and abs(x.llc0 - lam) <= Z_TOL * x.llc0_se


# ---------------------------------------------------------------------------------------------------- contract


@pytest.mark.parametrize("fn", ["estimate_llc", "estimate_llc_copies", "calibrate_sgld"])
def test_bad_precondition_names_the_parameter(fn):
    model, loss, data, _ = ill_conditioned_regression(d=3)
    f = {"estimate_llc": estimate_llc, "estimate_llc_copies": estimate_llc_copies, "calibrate_sgld": calibrate_sgld}[fn]
    with pytest.raises(ValueError, match="precondition"):
        f(model, loss, data, n_beta=10.0, num_chains=2, num_draws=8, num_burnin=0, precondition="foo")
    big = nn.Linear(MAX_PRECONDITION_DIM + 1, 1, bias=False).to(F64)
    X = torch.zeros(2, MAX_PRECONDITION_DIM + 1, dtype=F64)
    with pytest.raises(ValueError, match=f"precondition.*d <= {MAX_PRECONDITION_DIM}"):
        f(big, loss, (X, torch.zeros(2, 1, dtype=F64)), n_beta=10.0, num_chains=2, num_draws=8, num_burnin=0,
          precondition="hessian")
    if fn == "calibrate_sgld":  # a sweep of one metric: "auto" (estimate_llc's choice) is refused by name
        with pytest.raises(ValueError, match="precondition"):
            f(model, loss, data, n_beta=10.0, num_chains=2, num_draws=8, num_burnin=0, precondition="auto")
    else:  # fixed lengths: "auto" is plain SGLD, the same numbers as None
        a = f(model, loss, data, n_beta=10.0, num_chains=2, num_draws=8, num_burnin=0, eps=1e-3, precondition="auto")
        b = f(model, loss, data, n_beta=10.0, num_chains=2, num_draws=8, num_burnin=0, eps=1e-3, precondition=None)
        a, b = (x[0] if isinstance(x, list) else x for x in (a, b))
        assert a.precondition is None and a.llc == b.llc


def test_same_seed_same_numbers_and_copies_get_their_own_metric():
    net = QuadraticNet(3, 2, n_copies=2, dtype=F64, generator=torch.Generator().manual_seed(7))
    a = torch.tensor([0, 1, 2, 0, 1, 2, 1]); b = torch.tensor([1, 2, 0, 0, 2, 2, 1])
    with torch.no_grad():
        T = net.select(0)(a, b)[0]
    kw = dict(n_beta=1e3, num_chains=3, num_draws=30, num_burnin=10, precondition="hessian")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r1 = estimate_llc_copies(net, regression_mse, (a, b, T), seed=11, **kw)
        r2 = estimate_llc_copies(net, regression_mse, (a, b, T), seed=11, **kw)
        r3 = estimate_llc_copies(net, regression_mse, (a, b, T), seed=12, **kw)
    for x, y in zip(r1, r2):
        assert x.eps == y.eps and (x.llc_per_chain == y.llc_per_chain).all() and (x.loss_trace == y.loss_trace).all()
    assert not (r1[0].loss_trace == r3[0].loss_trace).all()
    with warnings.catch_warnings():  # minibatch gradients with the full-data metric also run, and reproduce
        warnings.simplefilter("ignore")
        m1 = estimate_llc_copies(net, regression_mse, (a, b, T), seed=5, batch_size=3, **kw)
        m2 = estimate_llc_copies(net, regression_mse, (a, b, T), seed=5, batch_size=3, **kw)
    assert all(math.isfinite(r.llc) and (r.loss_trace == q.loss_trace).all() for r, q in zip(m1, m2))
    # one batched metric = each copy's own metric
    nb, gm = torch.tensor([1e3, 1e3], dtype=F64), torch.tensor([1.0, 1.0], dtype=F64)
    P, _ = hessian_preconditioner(_make_problem(net, regression_mse, (a, b, T)), nb, gm)
    for k in range(2):
        Pk, _ = hessian_preconditioner(_make_problem(net.select(k), regression_mse, (a, b, T)), nb[:1], gm[:1])
        assert torch.allclose(P.matrix[k], Pk.matrix[0], atol=1e-12)

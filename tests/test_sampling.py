"""Unit tests of slt.sampling: the SGLD kernel, diagnostics, the estimator's contract, calibration,
plots and the `slt llc` CLI. Statistical checks use |diff| <= Z_TOL standard errors."""
from __future__ import annotations

import json
import math
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import slt
from slt.losses import mse
from slt.models import QuadraticNet
from slt.sampling import (
    LLCWarning,
    SGLDDivergenceError,
    calibrate_sgld,
    estimate_llc,
    estimate_llc_copies,
    ess,
    extrapolate_to_zero,
    mala_acceptance,
    plot_trace,
    regression_mse,
    rhat,
)
from slt.sampling.sgld import langevin_update, mala_log_accept, potential_and_drift, sgld_init, sgld_step
from slt.tasks import all_pairs, make_data

Z_TOL = 3.0  # agreement within 3 standard errors (common.md)


def linear_problem(d: int = 4, seed: int = 0, dtype=torch.float64):
    """y = w.x on a whitened design (X^T X / n = I): L(w) = |w - w0|^2 / 2 exactly, lambda = d/2."""
    g = torch.Generator().manual_seed(seed)
    X = math.sqrt(d) * torch.eye(d, dtype=dtype)
    w0 = torch.randn(d, generator=g, dtype=dtype)
    model = nn.Linear(d, 1, bias=False).to(dtype)
    with torch.no_grad():
        model.weight.copy_(w0[None])
    loss = lambda out, t: 0.5 * ((out.squeeze(-1) - t) ** 2).mean()  # noqa: E731
    return model, loss, (X, X @ w0)


# ---------------------------------------------------------------------------------------------------- kernel


def test_langevin_update_zero_drift_zero_noise_does_not_move():
    pos = (torch.randn(3, 2, 5), torch.randn(3, 4))
    zeros = tuple(torch.zeros_like(w) for w in pos)
    new, delta = langevin_update(pos, zeros, zeros, torch.tensor(0.1))
    for w, w1, dw in zip(pos, new, delta):
        assert w1.shape == w.shape
        assert torch.equal(w1, w) and torch.count_nonzero(dw) == 0


def test_langevin_update_moves_down_the_gradient_with_per_row_eps():
    pos = (torch.zeros(2, 3),)
    grad = (torch.ones(2, 3),)
    eps = torch.tensor([0.1, 0.4])
    new, _ = langevin_update(pos, grad, (torch.zeros(2, 3),), eps)
    assert torch.allclose(new[0], -(eps / 2)[:, None].expand(2, 3))
    noise = (torch.ones(2, 3),)
    new, _ = langevin_update(pos, (torch.zeros(2, 3),), noise, eps)
    assert torch.allclose(new[0], eps.sqrt()[:, None].expand(2, 3))


def test_mala_log_accept_matches_direct_gaussian_computation():
    torch.manual_seed(0)
    d, eps, a = 5, 0.3, 2.0
    U = lambda w: 0.5 * a * (w ** 2).sum(-1)  # noqa: E731
    gU = lambda w: a * w  # noqa: E731
    w0 = torch.randn(3, d, dtype=torch.float64)
    w1 = w0 - eps / 2 * gU(w0) + math.sqrt(eps) * torch.randn(3, d, dtype=torch.float64)
    logq = lambda y, x: -((y - x + eps / 2 * gU(x)) ** 2).sum(-1) / (2 * eps)  # noqa: E731
    direct = U(w0) - U(w1) + logq(w0, w1) - logq(w1, w0)
    g0, g1 = gU(w0), gU(w1)
    ours = mala_log_accept(U(w0), U(w1), (g0,), (g1,), (g0 ** 2).sum(-1), (g1 ** 2).sum(-1), (w1 - w0,),
                           torch.tensor(eps, dtype=torch.float64))
    assert torch.allclose(ours, direct, atol=1e-10)


def test_potential_and_drift_rows_are_independent_and_localised():
    anchor = (torch.tensor([[1.0, 2.0]]),)
    loss_fn = lambda pos, batch: (pos[0] ** 2).sum(-1)  # noqa: E731  L = |w|^2, grad 2w
    pos = (torch.tensor([[0.0, 0.0], [1.0, 1.0]]),)
    loss, u, g, gsq = potential_and_drift(loss_fn, pos, None, anchor, torch.tensor(3.0), torch.tensor(0.5))
    expect_g = 3.0 * 2 * pos[0] + 0.5 * (pos[0] - anchor[0])
    assert torch.allclose(g[0], expect_g)
    assert torch.allclose(u, 3.0 * loss + 0.25 * ((pos[0] - anchor[0]) ** 2).sum(-1))
    assert torch.allclose(gsq, (expect_g ** 2).sum(-1))


def test_sgld_step_is_deterministic_given_the_generator():
    anchor = (torch.zeros(1, 3),)
    loss_fn = lambda pos, batch: 0.5 * (pos[0] ** 2).sum(-1)  # noqa: E731
    outs = []
    for _ in range(2):
        g = torch.Generator().manual_seed(5)
        st = sgld_init(loss_fn, (torch.zeros(4, 3),), None, anchor, torch.tensor(10.0), torch.tensor(1.0))
        for _ in range(3):
            st, info = sgld_step(g, st, loss_fn, None, anchor, eps=torch.tensor(0.01), n_beta=torch.tensor(10.0),
                                 gamma=torch.tensor(1.0))
        outs.append(st.position[0])
    assert torch.equal(outs[0], outs[1])
    assert outs[0].shape == (4, 3) and not torch.equal(outs[0][0], outs[0][1])  # chains get their own noise


# ---------------------------------------------------------------------------------------------------- diagnostics


def test_rhat_and_ess_on_reference_processes():
    rng = np.random.default_rng(0)
    iid = rng.standard_normal((4, 2000))
    assert abs(rhat(iid) - 1) < 0.01 and abs(rhat(iid, method="split") - 1) < 0.01
    assert 0.85 * 8000 < ess(iid, method="mean") < 1.15 * 8000
    shifted = iid + np.array([0, 0, 0, 3.0])[:, None]
    assert rhat(shifted) > 1.1
    # AR(1) x_t = rho x_{t-1} + e_t has integrated autocorrelation time (1 + rho) / (1 - rho)
    rho, s = 0.9, 20000
    x = np.zeros((4, s))
    e = rng.standard_normal((4, s))
    for t in range(1, s):
        x[:, t] = rho * x[:, t - 1] + e[:, t]
    expect = 4 * s * (1 - rho) / (1 + rho)
    assert 0.8 * expect < ess(x, method="mean") < 1.2 * expect
    # named axes: draws first, chains second
    assert ess(x.T, chain_axis=1, draw_axis=0, method="mean") == pytest.approx(ess(x, method="mean"))


def test_diagnostics_reject_unknown_method_with_the_list():
    with pytest.raises(ValueError, match="rank"):
        rhat(np.zeros((2, 10)), method="nope")
    with pytest.raises(ValueError, match="bulk"):
        ess(np.zeros((2, 10)), method="nope")


def test_mala_acceptance_clips_at_one():
    assert mala_acceptance(np.array([0.0, 5.0, np.log(0.5)])) == pytest.approx((1 + 1 + 0.5) / 3)


# ---------------------------------------------------------------------------------------------------- estimator


def test_regular_model_recovers_d_over_2_with_default_step_size():
    model, loss, data = linear_problem(d=4)
    res = estimate_llc(model, loss, data, n_beta=1000.0, num_chains=16, num_draws=2000, num_burnin=200)
    # exact for this Gaussian target: (d/2) n_beta/(n_beta + gamma) (localisation shrinks it by 0.1%)
    exact = 2.0 * 1000 / 1001
    assert abs(res.llc - exact) <= Z_TOL * res.llc_se, (res.llc, res.llc_se)
    assert res.eps_auto and res.diagnostics.mala_acceptance > 0.9 and res.diagnostics.frac_below_init == 0
    assert res.loss_trace.shape == (16, 2000) and res.llc_per_chain.shape == (16,)
    assert res.llc == pytest.approx(res.llc_per_chain.mean())
    assert not res.diagnostics.warnings
    json.dumps(res.to_dict())


def test_same_seed_same_numbers_and_top_level_export():
    model, loss, data = linear_problem(d=3)
    kw = dict(n_beta=100.0, eps=1e-3, num_chains=3, num_draws=50, num_burnin=10)
    r1, r2 = slt.estimate_llc(model, loss, data, seed=1, **kw), slt.estimate_llc(model, loss, data, seed=1, **kw)
    r3 = slt.estimate_llc(model, loss, data, seed=2, **kw)
    assert np.array_equal(r1.loss_trace, r2.loss_trace) and r1.llc == r2.llc
    assert not np.array_equal(r1.loss_trace, r3.loss_trace)
    # the model is not modified
    assert torch.equal(model.weight.detach(), linear_problem(d=3)[0].weight.detach())


def test_minibatch_run_and_default_n_beta():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(200, 3, generator=g)
    y = X @ torch.tensor([1.0, -2.0, 0.5]) + 0.1 * torch.randn(200, generator=g)
    model = nn.Linear(3, 1, bias=False)
    with torch.no_grad():  # w* = least squares fit, a true local minimum
        model.weight.copy_(torch.linalg.lstsq(X, y[:, None]).solution.T)
    loss = lambda out, t: 0.5 * ((out.squeeze(-1) - t) ** 2).mean()  # noqa: E731
    res = estimate_llc(model, loss, (X, y), num_chains=4, num_draws=300, num_burnin=100, batch_size=50)
    assert res.n == 200 and res.n_beta == pytest.approx(200 / math.log(200)) and res.batch_size == 50
    assert math.isfinite(res.llc) and res.loss_trace.shape == (4, 300)


def test_divergence_stops_with_eps_in_message():
    model, loss, data = linear_problem(d=3)
    with pytest.raises(SGLDDivergenceError, match=r"eps=10.*smaller.*eps=1"):
        estimate_llc(model, loss, data, n_beta=1000.0, eps=10.0, num_chains=2, num_draws=20, num_burnin=0)


def test_warns_when_w_star_is_not_a_local_minimum():
    model, loss, data = linear_problem(d=3)
    with torch.no_grad():
        model.weight.add_(3.0)  # far up the bowl: SGLD slides down, the loss falls below L(w*)
    with pytest.warns(LLCWarning, match="not a local minimum"):
        res = estimate_llc(model, loss, data, n_beta=100.0, num_chains=4, num_draws=200, num_burnin=0)
    assert res.llc < 0 and res.diagnostics.frac_below_init > 0.5


@pytest.mark.parametrize("kwargs, name", [
    (dict(n_beta=-1.0), "n_beta"), (dict(eps=0.0), "eps"), (dict(gamma=-1.0), "gamma"),
    (dict(num_chains=0), "num_chains"), (dict(num_draws=0), "num_draws"), (dict(batch_size=100), "batch_size"),
])
def test_bad_arguments_name_the_parameter(kwargs, name):
    model, loss, data = linear_problem(d=3)
    with pytest.raises(ValueError, match=name):
        estimate_llc(model, loss, data, **kwargs)


def test_bad_data_is_rejected():
    model, loss, _ = linear_problem(d=3)
    with pytest.raises(ValueError, match="data"):
        estimate_llc(model, loss, (torch.zeros(3, 3), torch.zeros(4)))
    with pytest.raises(ValueError, match="data"):
        estimate_llc(model, loss, torch.zeros(3, 3))


@pytest.mark.filterwarnings("ignore::slt.sampling.LLCWarning")  # a random point is no minimum
def test_quadratic_net_native_path_matches_a_generic_module():
    """The copy-axis path and the vmap path sample the same target: same L(w*), same estimate."""
    p, m = 3, 2
    net = QuadraticNet(p, m, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    a, b, y = all_pairs(p)

    class Wrapped(nn.Module):  # a plain module over the same parameters, one copy
        def __init__(self):
            super().__init__()
            self.U, self.V, self.A = (nn.Parameter(getattr(net, k).detach()[0].clone()) for k in "UVA")

        def forward(self, a, b):
            h = self.U[a] + self.V[b]
            return (h * h) @ self.A

    single_mse = lambda out, t: mse(out[None], t)[0]  # noqa: E731
    kw = dict(n_beta=50.0, eps=2e-3, num_chains=16, num_draws=400, num_burnin=100)
    r1 = estimate_llc(net, mse, (a, b, y), **kw)
    r2 = estimate_llc(Wrapped(), single_mse, (a, b, y), **kw)
    assert r1.init_loss == pytest.approx(r2.init_loss, rel=1e-12)
    assert abs(r1.llc - r2.llc) <= Z_TOL * math.hypot(r1.llc_se, r2.llc_se)


def test_copies_give_one_result_each_and_multi_copy_needs_copies_api():
    p, m = 3, 2
    net = QuadraticNet(p, m, n_copies=2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():  # copy 1 = copy 0 scaled: a different point, a different loss
        net.A[1].mul_(3.0)
    a, b, y = all_pairs(p)
    with pytest.raises(ValueError, match="estimate_llc_copies"):
        estimate_llc(net, mse, (a, b, y))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LLCWarning)
        res = estimate_llc_copies(net, mse, (a, b, y), n_beta=20.0, num_chains=3, num_draws=100, num_burnin=20)
    singles = [float(mse(net.select(k)(a, b), y)[0].detach()) for k in range(2)]
    assert len(res) == 2 and [r.init_loss for r in res] == pytest.approx(singles)
    assert all(r.loss_trace.shape == (3, 100) for r in res)


def test_regression_mse_is_half_mean_squared_error():
    out = torch.tensor([[[1.0, 2.0], [0.0, 0.0]]])
    t = torch.tensor([[0.0, 0.0], [1.0, 1.0]])
    assert torch.allclose(regression_mse(out, t), torch.tensor([(5.0 + 2.0) / 4]))


# ---------------------------------------------------------------------------------------------------- calibration


def test_extrapolate_to_zero_recovers_a_line():
    eps = [1.0, 2.0, 4.0]
    c0, se, c1 = extrapolate_to_zero(eps, [3.0 + 0.5 * e for e in eps], [0.1, 0.1, 0.1])
    assert c0 == pytest.approx(3.0) and c1 == pytest.approx(0.5) and 0 < se < 0.3
    with pytest.raises(ValueError):
        extrapolate_to_zero([1.0], [1.0], [1.0])


def test_calibrate_sgld_picks_a_setting_and_extrapolates(tmp_path):
    model, loss, data = linear_problem(d=4)
    cal = calibrate_sgld(model, loss, data, n_beta=1000.0, num_chains=6, num_draws=600, num_burnin=200,
                         eps_factors=(0.5, 1.0, 2.0, 64.0), plot_path=tmp_path / "cal.png")
    assert len(cal.rows) == 4 and (tmp_path / "cal.png").stat().st_size > 1000
    huge = max(cal.rows, key=lambda r: r.eps)  # eps * curvature = 3.2 > 2: unstable, must be rejected
    assert huge.diverged or not huge.ok
    assert cal.chosen is not None and cal.chosen.ok and cal.chosen.eps < huge.eps
    x = cal.extrapolation
    assert abs(x.llc0 - 2.0 * 1000 / 1001) <= Z_TOL * x.llc0_se
    assert "chosen" in cal.table()
    json.dumps(cal.to_dict())


# ---------------------------------------------------------------------------------------------------- plots + CLI


@pytest.mark.filterwarnings("ignore::slt.sampling.LLCWarning")  # a short run: R-hat is poor
def test_plot_trace_writes_png(tmp_path):
    model, loss, data = linear_problem(d=2)
    res = estimate_llc(model, loss, data, n_beta=100.0, num_chains=2, num_draws=50, num_burnin=10)
    plot_trace(res, tmp_path / "trace.png")
    assert (tmp_path / "trace.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_llc_end_to_end(tmp_path):
    run = tmp_path / "run"
    env_cmd = [sys.executable, "-m", "slt"]
    train = subprocess.run(env_cmd + ["train", "--p", "5", "--width", "4", "--steps", "20", "--seeds", "2", "--out", str(run),
                                      "--no-progress"], capture_output=True, text=True)
    assert train.returncode == 0, train.stderr
    out = subprocess.run(env_cmd + ["llc", "--run", str(run), "--chains", "3", "--draws", "60", "--burnin", "20",
                                    "--no-progress"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    blob = json.loads((run / "llc.json").read_text())
    assert len(blob["llc"]) == 2 and blob["results"][0]["num_chains"] == 3 and (run / "trace.png").exists()
    out = subprocess.run(env_cmd + ["llc", "--run", str(run), "--step", "0", "--chains", "2", "--draws", "20",
                                    "--burnin", "5", "--no-progress"], capture_output=True, text=True)
    assert out.returncode == 0 and (run / "llc_step_0.json").exists() and (run / "trace_step_0.png").exists()
    bad = subprocess.run(env_cmd + ["llc", "--run", str(run), "--step", "999999", "--no-progress"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "step" in bad.stderr
    bad = subprocess.run(env_cmd + ["llc", "--run", str(run), "--noise", "philox", "--no-progress"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "--noise" in bad.stderr and "'counter'" in bad.stderr


def test_minibatch_mixing_diagnostics_use_full_data_losses():
    # minibatch noise in the draw losses hides unmixed chains (experiments/mixing_probe), so with
    # minibatches R-hat/ESS come from the full-data loss at evenly spaced draws; full batch: the draws
    g = torch.Generator().manual_seed(1)
    X = torch.randn(200, 3, generator=g, dtype=torch.float64)
    y = X @ torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    model = nn.Linear(3, 1, bias=False).to(torch.float64)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64))
    loss = lambda out, t: 0.5 * ((out.squeeze(-1) - t) ** 2).mean()  # noqa: E731
    kw = dict(num_chains=4, num_draws=200, num_burnin=50, seed=3)
    mini = estimate_llc(model, loss, (X, y), batch_size=20, **kw)
    full = estimate_llc(model, loss, (X, y), **kw)
    assert mini.diagnostics.rhat_source == "full_loss_thinned"
    assert full.diagnostics.rhat_source == "draws"
    assert full.diagnostics.rhat == pytest.approx(rhat(full.loss_trace, method="rank"))
    assert mini.diagnostics.rhat != pytest.approx(rhat(mini.loss_trace, method="rank"))
    assert math.isfinite(mini.diagnostics.rhat) and math.isfinite(mini.diagnostics.ess)
    # a run too short to afford MIN_DIAG_POINTS full-data passes within DIAG_COST of its cost gets no R-hat (not a
    # minibatch one standing in for it): 30 steps x 3 x 20 / 200 x 0.1 = 0.9 < 4 points
    short = estimate_llc(model, loss, (X, y), batch_size=20, num_chains=4, num_draws=20, num_burnin=10, seed=3)
    assert short.diagnostics.rhat_source == "none"
    assert math.isnan(short.diagnostics.rhat) and math.isnan(short.diagnostics.ess)


def test_displacement_ratio_measures_reach_relative_to_weights():
    """rms(w - w*) / rms(w*) per copy, over chains and parameter leaves: 0 at w*, 0.5 for a move of 1 per entry
    around weights of size 2."""
    from slt.sampling.llc import displacement_ratio

    anchor = (torch.full((2, 3), 2.0), torch.full((2, 1), 2.0))  # 2 copies, 4 parameters each, rms 2
    final = tuple(a.repeat_interleave(2, dim=0).clone() for a in anchor)  # 2 chains per copy, copy-major rows
    assert torch.allclose(displacement_ratio(final, anchor, 2), torch.zeros(2, dtype=torch.float64))
    final[0][:2] += 1.0  # both chains of copy 0 move by 1 in every entry of both leaves
    final[1][:2] -= 1.0
    r = displacement_ratio(final, anchor, 2)
    assert r[0].item() == pytest.approx(0.5) and r[1].item() == pytest.approx(0.0)


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("loss_name", ["mse", "centred_mse"])
@pytest.mark.parametrize("minibatch", [False, True])
def test_quadratic_closed_form_drift_matches_autograd(tied, loss_name, minibatch):
    """slt.sampling.quadratic_drift (the SGLD kernel's path for QuadraticNet with mse / centred_mse) against autograd
    through the same row loss, float64, per-row n_beta and gamma, 2 copies x 3 chains, shared or per-row batches."""
    from slt.losses import get_loss
    from slt.sampling.llc import _make_problem, _replicate

    g = torch.Generator().manual_seed(3)
    net = QuadraticNet(11, 7, n_copies=2, tied=tied, generator=g, dtype=torch.float64)
    a, b, y = make_data(11, "add", 0.5, 0).train()
    prob = _make_problem(net, get_loss(loss_name), (a, b, y))
    assert hasattr(prob.row_loss, "potential_and_drift")
    pos = tuple(w + 0.1 * torch.randn(w.shape, generator=g, dtype=w.dtype) for w in _replicate(prob.anchor, 3))
    nb = torch.linspace(10, 60, 6, dtype=torch.float64)
    gam = torch.linspace(1, 6, 6, dtype=torch.float64)
    idx = torch.stack([torch.randperm(a.numel(), generator=g)[:16] for _ in range(6)]) if minibatch else None
    fast = potential_and_drift(prob.row_loss, pos, idx, prob.anchor, nb, gam)
    slow = potential_and_drift(lambda p_, i: prob.row_loss(p_, i), pos, idx, prob.anchor, nb, gam)  # no attribute
    for x, z in zip((fast[0], fast[1], fast[3]) + fast[2], (slow[0], slow[1], slow[3]) + slow[2]):
        assert x.shape == z.shape and torch.allclose(x, z, rtol=1e-12, atol=1e-12)
    lean = potential_and_drift(prob.row_loss, pos, idx, prob.anchor, nb, gam, diagnostics=False)
    assert lean[1] is None and lean[3] is None
    assert all(torch.equal(x, z) for x, z in zip(lean[2], fast[2])) and torch.equal(lean[0], fast[0])

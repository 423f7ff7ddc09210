"""The counter-based Gaussian source (slt.sampling.noise): its law, independence, reproducibility, the fused
in-place proposal against the eager formula, the switch and its errors, and an estimate that uses it."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

import slt.sampling.noise as noise
from slt.sampling import estimate_llc
from slt.sampling.sgld import _anchor_diff, langevin_update, mala_log_accept, potential_and_drift, tree_dot

F64 = torch.float64


def counter_draws(n: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return noise.standard_normal_like((torch.empty(n, dtype=dtype),), g, "counter")[0]


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_counter_draws_are_standard_normal(dtype):
    n = 2_000_000
    z = counter_draws(n, 0, dtype).double()
    assert z.dtype == F64 and torch.isfinite(z).all()
    # moments within 5 standard errors: mean 1/sqrt(n), variance sqrt(2/n), third moment sqrt(15/n), fourth sqrt(96/n)
    assert abs(float(z.mean())) < 5 / math.sqrt(n)
    assert abs(float(z.var()) - 1) < 5 * math.sqrt(2 / n)
    assert abs(float((z ** 3).mean())) < 5 * math.sqrt(15 / n)
    assert abs(float((z ** 4).mean()) - 3) < 5 * math.sqrt(96 / n)
    ks = stats.kstest(z[:200_000].numpy(), "norm")
    assert ks.pvalue > 1e-4, ks
    # the float32 tail stops at sqrt(2 ln 2^25) = 5.9 (24-bit uniforms); float64 reaches further
    assert float(z.abs().max()) <= (math.sqrt(2 * math.log(2.0 ** 25)) + 1e-4 if dtype == torch.float32 else 7.0)


def test_counter_draws_are_uncorrelated_across_elements_leaves_and_steps():
    g = torch.Generator().manual_seed(3)
    like = (torch.empty(4, 50_000), torch.empty(4, 50_000))
    a1, b1 = noise.standard_normal_like(like, g, "counter")
    a2, _ = noise.standard_normal_like(like, g, "counter")  # the next step: a fresh key
    n = a1.numel()
    lim = 5 / math.sqrt(n)
    x = a1.flatten().double()
    for y in (b1.flatten(), a2.flatten(), a1.flatten().roll(1), a1.flatten().roll(n // 2)):  # the cos/sin partner
        assert abs(float((x * y.double()).mean())) < lim
    # no two rows (chains) share a draw
    assert not torch.equal(a1[0], a1[1]) and not torch.equal(a1, a2)


def test_counter_source_is_reproducible_and_keyed_by_the_generator():
    assert torch.equal(counter_draws(10_001, 5), counter_draws(10_001, 5))  # odd length: the last sine dropped
    assert not torch.equal(counter_draws(1000, 5), counter_draws(1000, 6))
    g = torch.Generator().manual_seed(5)
    before = g.get_state()
    noise.draw_key(g)
    assert not torch.equal(before, g.get_state())  # a key is drawn from (and advances) the run's generator


def test_fused_step_matches_the_eager_formulas_and_leaves_its_inputs_alone():
    torch.manual_seed(0)
    B, C = 2, 3  # copies x chains, rows copy-major
    anchor = (torch.randn(B, 7, 33), torch.randn(B, 33, 7))
    pos = tuple(a.repeat_interleave(C, 0) + 0.1 * torch.randn(B * C, *a.shape[1:]) for a in anchor)
    drift = tuple(torch.randn_like(w) for w in pos)
    eps = torch.tensor([1e-3, 2e-3, 4e-3] * B)
    gamma = torch.tensor([1.0, 5.0, 100.0] * B)
    old = tuple(w.clone() for w in pos)
    new, delta, local, cross = noise.langevin_step(pos, drift, anchor, eps, gamma, torch.Generator().manual_seed(9))
    assert all(torch.equal(p, o) for p, o in zip(pos, old))  # the input position is not modified
    # the same key's draws, then every quantity by the eager kernel's own functions
    key = noise.draw_key(torch.Generator().manual_seed(9))
    xi = noise._counter_normals(key, noise._constants(torch.device("cpu")), old)
    w_ref, d_ref = langevin_update(old, drift, xi, eps)
    diff = _anchor_diff(w_ref, anchor)
    tol = dict(rtol=1e-5, atol=1e-6)
    for w, r, d, rd, loc, df in zip(new, w_ref, delta, d_ref, local.drift, diff):
        torch.testing.assert_close(w, r, **tol)
        torch.testing.assert_close(d, rd, **tol)
        torch.testing.assert_close(loc / gamma.view(-1, 1, 1), df, **tol)  # w' rounds differently, times gamma
    torch.testing.assert_close(local.dist_sq, tree_dot(diff, diff), **tol)
    torch.testing.assert_close(cross, tree_dot(d_ref, drift), **tol)


def test_counter_kernel_step_equals_the_torch_kernel_given_its_draws():
    """sgld_step(noise="counter") = the torch-noise kernel fed the counter draws: loss, potential, drift, MALA."""
    from slt.sampling.sgld import sgld_init, sgld_step

    torch.manual_seed(1)
    anchor = (torch.randn(1, 5, dtype=F64),)
    target = torch.randn(5, dtype=F64)
    loss_fn = lambda pos, batch: 0.5 * ((pos[0] - target) ** 2).sum(1) + 0.1 * (pos[0] ** 4).sum(1)  # noqa: E731
    kw = dict(eps=torch.full((4,), 1e-2, dtype=F64), n_beta=torch.full((4,), 50.0, dtype=F64),
              gamma=torch.full((4,), 3.0, dtype=F64))
    start = anchor[0].repeat(4, 1) + 0.1 * torch.randn(4, 5, dtype=F64)
    s_c = sgld_init(loss_fn, (start.clone(),), None, anchor, kw["n_beta"], kw["gamma"])
    s_t = sgld_init(loss_fn, (start.clone(),), None, anchor, kw["n_beta"], kw["gamma"])
    g_c, g_key = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    for _ in range(3):
        key = noise.draw_key(g_key)
        xi = noise._counter_normals(key, noise._constants(torch.device("cpu")), s_t.position)
        old = s_t.position
        w_t, d_t = langevin_update(old, s_t.drift, xi, kw["eps"])
        loss, u, g, g_sq = potential_and_drift(loss_fn, w_t, None, anchor, kw["n_beta"], kw["gamma"])
        log_a = mala_log_accept(s_t.potential, u, s_t.drift, g, s_t.drift_sq, g_sq, d_t, kw["eps"])
        s_t = s_t._replace(position=w_t, loss=loss, potential=u, drift=g, drift_sq=g_sq)
        s_c, info = sgld_step(g_c, s_c, loss_fn, None, anchor, noise="counter", **kw)
        for a, b in [(s_c.position[0], w_t[0]), (s_c.drift[0], g[0]), (s_c.potential, u), (s_c.drift_sq, g_sq),
                     (info.loss, loss), (info.log_accept, log_a)]:
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_noise_switch_and_its_errors(monkeypatch):
    monkeypatch.delenv("SLT_NOISE", raising=False)
    assert noise.resolve_noise(None) == "torch" and noise.resolve_noise("counter") == "counter"
    with pytest.raises(ValueError, match="noise must be one of 'torch', 'counter', got 'philox'"):
        noise.resolve_noise("philox")
    monkeypatch.setenv("SLT_NOISE", "countr")
    with pytest.raises(ValueError, match="SLT_NOISE must be one of"):
        noise.resolve_noise(None)
    monkeypatch.setenv("SLT_NOISE", "counter")
    assert noise.resolve_noise(None) == "counter" and noise.resolve_noise("torch") == "torch"


def test_estimate_with_counter_noise_recovers_d_over_2_reproducibly():
    """y = w.x on a whitened design: L(w) = |w - w0|^2 / 2, lambda = d/2 (as tests/test_sampling.py)."""
    d = 4
    g = torch.Generator().manual_seed(0)
    X = math.sqrt(d) * torch.eye(d, dtype=F64)
    w0 = torch.randn(d, generator=g, dtype=F64)
    model = torch.nn.Linear(d, 1, bias=False).to(F64)
    with torch.no_grad():
        model.weight.copy_(w0[None])
    loss = lambda out, t: 0.5 * ((out.squeeze(-1) - t) ** 2).mean()  # noqa: E731
    kw = dict(n_beta=1000.0, num_chains=16, num_draws=2000, num_burnin=200, noise="counter", seed=1)
    res = estimate_llc(model, loss, (X, X @ w0), **kw)
    exact = 2.0 * 1000 / 1001  # (d/2) n_beta / (n_beta + gamma)
    assert abs(res.llc - exact) <= 3.0 * res.llc_se, (res.llc, res.llc_se)
    assert res.extra["noise"] == "counter"
    again = estimate_llc(model, loss, (X, X @ w0), **kw)
    assert np.array_equal(res.loss_trace, again.loss_trace)
    plain = estimate_llc(model, loss, (X, X @ w0), **dict(kw, noise="torch"))
    assert plain.extra["noise"] == "torch" and not np.array_equal(res.loss_trace, plain.loss_trace)
    assert torch.equal(model.weight.detach(), w0[None])  # the model's parameters are not written over

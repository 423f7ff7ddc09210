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
from slt.sampling.sgld import langevin_update

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


def test_fused_proposal_matches_the_eager_formula_and_updates_in_place():
    torch.manual_seed(0)
    pos = (torch.randn(3, 7, 33), torch.randn(3, 33, 7))
    drift = tuple(torch.randn_like(w) for w in pos)
    eps = torch.tensor([1e-3, 2e-3, 4e-3])
    old = tuple(w.clone() for w in pos)
    new, delta = noise.langevin_proposal_(pos, drift, eps, torch.Generator().manual_seed(9))
    assert all(n is p for n, p in zip(new, pos))  # written over the input
    # the same key through the uncompiled formula
    key = noise.draw_key(torch.Generator().manual_seed(9))
    ref = tuple(w.clone() for w in old)
    ref_delta = noise._counter_proposal_(key, noise._constants(torch.device("cpu")), ref, drift, eps.sqrt(), eps / 2)
    for w, r, d, rd, w0 in zip(new, ref, delta, ref_delta, old):
        torch.testing.assert_close(w, r, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(d, rd, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(w - w0, d, rtol=1e-5, atol=1e-6)
    # and the same update as the torch-noise kernel given the same draws
    xi = noise._counter_normals(key, noise._constants(torch.device("cpu")), old)
    w_ref, d_ref = langevin_update(old, drift, xi, eps)
    for w, r in zip(new, w_ref):
        torch.testing.assert_close(w, r, rtol=1e-5, atol=1e-6)


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

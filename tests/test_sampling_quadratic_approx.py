"""The quadratic-approximation prediction of SGLD's LLC estimate (slt.sampling.quadratic_approx).

Statistical checks use |diff| <= Z_TOL standard errors (SE across independent chains / probes)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from slt.models import QuadraticNet
from slt.sampling import estimate_llc, regression_mse
from slt.sampling.quadratic_approx import (
    HessianSpectrum,
    hessian_spectrum,
    predict_llc,
    soft_count_terms,
)
from slt.tasks import all_pairs

from quadratic_problems import half_sq, regression as _regression  # noqa: E402

Z_TOL = 3.0
F64 = torch.float64


def regression(d=8, cond=1e3, seed=0):
    model, data, h, _ = _regression(d, cond, seed)
    return model, data, h


def teacher(p=5, width=12, seed=0):
    """A quadratic net on all p^2 pairs fitted to its own outputs: a PSD Hessian J^T J / N with a null space."""
    net = QuadraticNet(p, width, dtype=F64, generator=torch.Generator().manual_seed(seed))
    a, b, _ = all_pairs(p)
    with torch.no_grad():
        T = net(a, b)[0]
    return net, (a, b, T)


def test_soft_count_terms_match_the_ar1_recursion():
    """Eq. (2): the closed-form mean variance over draws equals the AR(1) variance recursion summed."""
    h = np.array([0.0, 1e-4, 1e-2, 0.3, 1.0])
    nb, gamma, eps, burn, draws = 100.0, 2.0, 0.01, 30, 50
    a = nb * h + gamma
    var = np.zeros_like(h)
    acc = np.zeros_like(h)
    for t in range(burn + draws):
        var = (1 - eps * a / 2) ** 2 * var + eps
        if t >= burn:
            acc += var
    want = np.where(h > 0, 0.5 * nb * h * acc / draws, 0.0)
    got = soft_count_terms(h, nb, gamma, eps, burn, draws)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)
    # stationary with eps, and eps -> 0: eq. (1)
    np.testing.assert_allclose(soft_count_terms(h, nb, gamma, 1e-9), soft_count_terms(h, nb, gamma), rtol=1e-6)
    assert soft_count_terms(h, nb, gamma)[-1] == pytest.approx(0.5 * nb / (nb + gamma))
    with pytest.raises(ValueError, match="eps"):
        soft_count_terms(h, nb, gamma, eps=1.0)


def test_lanczos_radau_matches_dense_spectrum_with_a_null_space():
    net, data = teacher()
    dense = hessian_spectrum(net, regression_mse, data)
    assert dense.method == "dense" and dense.top.size == dense.dim == 180
    sp = hessian_spectrum(net, regression_mse, data, dense_max_dim=0, top_steps=40, probes=12, probe_steps=30)
    assert sp.method == "lanczos"
    k = sp.top.size
    assert k >= 5
    np.testing.assert_allclose(sp.top, dense.top[:k], rtol=1e-6, atol=1e-9 * dense.top[0])
    for nb, gamma in ((1e2, 1.0), (1e4, 1.0), (1e6, 1.0), (1e6, 1e3)):
        want = predict_llc(dense, nb, gamma).llc
        got = predict_llc(sp, nb, gamma)
        assert abs(got.llc - want) <= Z_TOL * got.llc_se + 1e-3 * want, (nb, gamma, got.llc, got.llc_se, want)


def test_sgld_matches_the_finite_run_prediction_on_a_quadratic_loss():
    """Exactly quadratic loss: plain SGLD's estimate equals eq. (2) for its eps, burn-in and draws, including
    the unrelaxed flat directions (a short chain) and the step-size inflation."""
    model, data, h = regression()
    spec = HessianSpectrum(h.size, np.sort(h)[::-1], np.zeros((0, 0)), np.zeros((0, 0)), "dense")
    nb, gamma, burn, draws = 1e3, 1.0, 50, 300
    r = estimate_llc(model, half_sq, data, n_beta=nb, gamma=gamma, eps=0.4 / (nb * h.max()), num_chains=64,
                     num_burnin=burn, num_draws=draws, seed=3)
    pred = predict_llc(spec, nb, gamma, eps=r.eps, num_burnin=burn, num_draws=draws)
    stat = predict_llc(spec, nb, gamma)
    assert abs(r.llc - pred.llc) <= Z_TOL * r.llc_se, (r.llc, r.llc_se, pred.llc)
    # the short run is measurably below the stationary value: the prediction is not trivially eq. (1)
    assert stat.llc - pred.llc > 5 * r.llc_se


def test_bad_arguments():
    net, data = teacher(p=3, width=2)
    with pytest.raises(ValueError, match="probes"):
        hessian_spectrum(net, regression_mse, data, probes=1)
    sp = hessian_spectrum(net, regression_mse, data)
    with pytest.raises(ValueError, match="n_beta"):
        predict_llc(sp, -1.0, 1.0)
    with pytest.raises(ValueError, match="gamma"):
        predict_llc(sp, 1.0, float("nan"))


def test_a_run_still_rising_is_flagged_not_relaxed():
    """Started at w*, a short plain run on a condition-1e3 quadratic is still filling its flat directions: the
    estimate rises between the halves of the draws, the result says so (relaxed False + a warning naming what
    to change) and eq. (2) predicts the low value; a well-conditioned long run is not flagged."""
    from slt.sampling import LLCWarning

    model, data, h = regression(d=8, cond=1e3)
    nb = 1e4
    with pytest.warns(LLCWarning, match="not relaxed.*num_burnin"):
        r = estimate_llc(model, half_sq, data, n_beta=nb, eps=0.4 / (nb * h.max()), num_chains=16, num_burnin=0,
                         num_draws=1000, seed=4)
    assert not r.diagnostics.relaxed and r.diagnostics.drift_z > 3
    spec = HessianSpectrum(h.size, np.sort(h)[::-1], np.zeros((0, 0)), np.zeros((0, 0)), "dense")
    assert predict_llc(spec, nb, 1.0, eps=r.eps, num_burnin=0, num_draws=1000).llc < 0.9 * predict_llc(spec, nb, 1.0).llc
    model2, data2, h2 = regression(d=8, cond=10)
    r2 = estimate_llc(model2, half_sq, data2, n_beta=nb, eps=0.1 / (nb * h2.max()), num_chains=16, num_burnin=300,
                      num_draws=600, seed=4)
    assert r2.diagnostics.relaxed

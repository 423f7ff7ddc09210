"""Flatness baselines: Hutchinson trace vs the exact Hessian trace, SAM sharpness vs its closed form on a
quadratic loss, per-copy separation, and the parametrisation dependence the LLC does not have."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from slt.flatness import flatness, hessian_trace, plot_llc_and_flatness, sam_sharpness
from slt.losses import mse
from slt.models.polynomial import PolyNet, PolyNetModule
from slt.models.quadratic import QuadraticNet
from slt.sampling.llc import _make_problem, loss_hessian
from slt.tasks import all_pairs


def test_hutchinson_matches_exact_trace_per_copy():
    a, b, y = all_pairs(3)
    net = QuadraticNet(3, 3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    tr, se = hessian_trace(net, mse, (a, b, y), n_probes=256, seed=1)
    H = loss_hessian(_make_problem(net, mse, (a, b, y)))  # (B, d, d), exact
    exact = torch.diagonal(H, dim1=-2, dim2=-1).sum(-1).numpy()
    assert np.all(np.abs(tr - exact) <= 4 * se + 1e-12), (tr, exact, se)
    assert len(set(np.round(exact, 6))) == 3  # the copies really differ, so per-copy separation is tested


def test_hutchinson_on_a_generic_module():
    spec = PolyNet((2,), 3, 3, alphabets=(3, 3))
    m = PolyNetModule(spec, seed=2)
    a, b, _ = all_pairs(3)
    x = torch.stack([a, b], 1)
    target = m(x).detach() + 0.1
    lf = lambda out, t: 0.5 * (out - t).pow(2).sum(-1).mean()  # noqa: E731
    tr, se = hessian_trace(m, lf, (x, target), n_probes=256, seed=0)
    names = [n for n, _ in spec.shapes()]
    w = tuple(getattr(m, n).detach().reshape(-1) for n in names)
    sizes = [t.numel() for t in w]

    def L(flat):
        parts = [p.view(getattr(m, n).shape) for p, n in zip(torch.split(flat, sizes), names)]
        return lf(torch.func.functional_call(m, dict(zip(names, parts)), (x,)), target)

    exact = float(torch.trace(torch.func.hessian(L)(torch.cat(w))))
    assert abs(tr[0] - exact) <= 4 * se[0]


def test_sam_on_a_quadratic_loss_has_its_closed_form():
    """L(w) = |X w - t|^2 / 2N is quadratic: L(w + rho u) - L(w) = rho |g| + rho^2/2 u^T H u, u = g/|g|."""
    torch.manual_seed(0)
    X = torch.randn(20, 4, dtype=torch.float64)
    t = torch.randn(20, dtype=torch.float64)
    lin = nn.Linear(4, 1, bias=False).double()
    lf = lambda out, tt: 0.5 * (out[:, 0] - tt).pow(2).mean()  # noqa: E731
    rho = 0.1
    sam, loss = sam_sharpness(lin, lf, (X, t), rho)
    w = lin.weight.detach()[0]
    g = X.T @ (X @ w - t) / 20
    H = X.T @ X / 20
    u = g / g.norm()
    expected = rho * g.norm() + rho ** 2 / 2 * u @ H @ u
    assert sam[0] == pytest.approx(float(expected), rel=1e-10)
    assert loss[0] == pytest.approx(float(lf((X @ w)[:, None], t)), rel=1e-12)


def test_flatness_depends_on_parametrisation_unlike_the_function():
    """Rescaling a unit (u, v, c) -> (2u, 2v, c/4) keeps f (and the LLC) and changes tr H."""
    a, b, y = all_pairs(3)
    net = QuadraticNet(3, 2, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    f0 = flatness(net, mse, (a, b, y), n_probes=128)
    out0 = net(a, b).detach()
    with torch.no_grad():
        net.U[:, :, 0] *= 2
        net.V[:, :, 0] *= 2
        net.A[:, 0, :] /= 4
    assert torch.allclose(net(a, b), out0, rtol=1e-12, atol=1e-12)
    f1 = flatness(net, mse, (a, b, y), n_probes=128)
    assert abs(f1.trace[0] - f0.trace[0]) > 5 * (f0.trace_se[0] + f1.trace_se[0])
    assert f1.loss[0] == pytest.approx(f0.loss[0], rel=1e-12)


def test_bad_arguments_and_plot(tmp_path):
    a, b, y = all_pairs(3)
    net = QuadraticNet(3, 2, 1, dtype=torch.float64)
    with pytest.raises(ValueError, match="n_probes"):
        hessian_trace(net, mse, (a, b, y), n_probes=1)
    with pytest.raises(ValueError, match="rho"):
        sam_sharpness(net, mse, (a, b, y), rho=0.0)
    plot_llc_and_flatness(tmp_path / "f.png", [1, 10, 100], [1.0, 2.0, 1.5], [0.1] * 3, [3.0, 4.0, 2.0], [0.2] * 3,
                          [0.01, 0.02, 0.01], 0.05, events={"grokked": 50})
    assert (tmp_path / "f.png").stat().st_size > 1000

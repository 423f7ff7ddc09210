"""Exact ranks, the analytic Jacobian, lambda at given points and the constructed basins."""
import numpy as np
import pytest
import sympy as sp
import torch

from slt.models.quadratic import quadratic_forward
from slt.tasks import all_pairs, make_data
from slt.theory.basins import fourier_solution, fourier_width, memorising_solution, pad_units
from slt.theory.jacobian import (llc_at_point, numerical_rank, quadratic_jacobian, random_integer_point,
                                 rank_mod_prime)
from slt.theory.quadratic import quadratic_llc_data


def test_rank_mod_prime_matches_sympy():
    rng = np.random.default_rng(0)
    for _ in range(20):
        r, c, k = rng.integers(1, 9, size=3)
        M = rng.integers(-9, 10, size=(r, k)) @ rng.integers(-9, 10, size=(k, c))  # rank <= k
        assert rank_mod_prime(M) == sp.Matrix(M.tolist()).rank()


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("centred", [False, True])
def test_jacobian_matches_autograd(tied, centred):
    p, K = 5, 3
    a, b, _ = (t.numpy() for t in make_data(p, "add", 0.5, 0).train())
    U, V, A = (None if x is None else np.random.default_rng(1).standard_normal(x.shape)
               for x in random_integer_point(p, K, tied=tied))
    J = quadratic_jacobian(U, V, A, a, b, centred=centred)
    at, bt = torch.as_tensor(a), torch.as_tensor(b)
    n = len(a)

    def F(*params):
        Ut, Vt, At = (params[0], params[0], params[1]) if tied else params
        out = quadratic_forward(Ut, Vt, At, at, bt)
        return n * out - out.sum(0, keepdim=True) if centred else out

    args = [torch.as_tensor(x) for x in ((U, A) if tied else (U, V, A))]
    Jt = torch.cat([j.reshape(n * p, -1) for j in torch.autograd.functional.jacobian(F, tuple(args))], 1)
    np.testing.assert_allclose(J, Jt.numpy(), rtol=1e-10, atol=1e-10)


def _pairs(p, frac=1.0, seed=0):
    if frac >= 1:
        return [t.numpy() for t in all_pairs(p)]
    return [t.numpy() for t in make_data(p, "add", frac, seed).train()]


@pytest.mark.parametrize("p,centred", [(3, True), (3, False), (5, True), (5, False), (7, True)])
def test_fourier_solution_is_exact(p, centred):
    a, b, y = _pairs(p)
    U, V, A = fourier_solution(p, centred)
    assert U.shape[1] == fourier_width(p, centred)
    f = (U[a] + V[b]) ** 2 @ A
    target = np.eye(p)[y] - (1.0 / p if centred else 0.0)
    np.testing.assert_allclose(f, target, atol=1e-12)


def test_fourier_bad_input():
    for bad in (2, 4, 1, 3.0):
        with pytest.raises(ValueError):
            fourier_solution(bad)
    with pytest.raises(ValueError):
        fourier_solution(5, frequencies=[3])


def test_generic_memorising_point_is_morse_bott_at_data_cap():
    p = 5
    a, b, y = _pairs(p, 0.4, 0)
    K = len(a) + 2  # K >= N: the readout alone interpolates
    for centred in (False, True):
        U, V, A = memorising_solution(p, K, a, b, y, centred=centred, seed=0)
        res = llc_at_point(U, V, A, a, b, y, centred=centred)
        assert res.interpolating and res.morse_bott
        assert res.lam == quadratic_llc_data(p, K, a, b, centred=centred).lam == sp.Rational(p * (len(a) - centred), 2)
        assert res.sv_gap > 1e6
        # dead and duplicated units do not change lambda once the data cap is reached
        for kind in ("dead", "readout_dead", "duplicate"):
            res2 = llc_at_point(*pad_units(U, V, A, 2, kind), a, b, y, centred=centred)
            assert res2.morse_bott and res2.lam == res.lam


def test_fourier_point_at_paper_fraction_and_full_data():
    p = 5
    a, b, y = _pairs(p, 0.4, 0)
    res = llc_at_point(*fourier_solution(p, True), a, b, y, centred=True)
    assert res.interpolating and res.residual < 1e-12
    # 14 units, 10 training pairs: the Fourier point reaches the data cap, Morse-Bott
    assert res.morse_bott and res.rank == p * (len(a) - 1)
    a, b, y = _pairs(p)
    res = llc_at_point(*fourier_solution(p, True), a, b, y, centred=True)
    generic = quadratic_llc_data(p, fourier_width(p), a, b, centred=True)
    # on all pairs it is strictly more singular than a generic interpolating point of the same width
    assert res.rank < 2 * generic.lam and not res.morse_bott and res.lam is None
    assert res.lower == sp.Rational(res.rank, 2) <= res.upper
    assert max(res.nearby_ranks) > res.rank


def test_all_dead_point_is_not_morse_bott():
    # all samples share one label, centred loss: f = 0 interpolates; J = 0 at the origin
    p, K = 3, 2
    a, b = np.array([0, 1, 2, 0]), np.array([0, 2, 1, 1])
    y = np.zeros(4, dtype=np.int64)
    U, V, A = np.zeros((p, K)), np.zeros((p, K)), np.zeros((K, p))
    res = llc_at_point(U, V, A, a, b, y, centred=True)
    assert res.interpolating and res.rank == 0 and res.lower == 0 and res.lam is None and not res.morse_bott


def test_non_interpolating_point_uses_hessian():
    p = 5
    a, b, y = _pairs(p, 0.6, 0)
    U, V, A = memorising_solution(p, 3, a, b, y, seed=0)  # K = 3 < N: least squares, not interpolating
    res = llc_at_point(U, V, A, a, b, y)
    assert not res.interpolating and res.method == "hessian" and res.rank >= 1


def test_numerical_rank_gap():
    M = np.diag([1.0, 1e-3, 1e-20])
    r, s, gap = numerical_rank(M)
    assert r == 2 and gap > 1e10


@pytest.mark.parametrize("call", [
    lambda: llc_at_point(np.zeros((3, 2)), np.zeros((3, 2)), np.zeros((2, 3)), [0], [0], [0], n_probe=0),
    lambda: llc_at_point(np.zeros((3, 2)), np.zeros((3, 2)), np.zeros((3, 3)), [0], [0], [0]),
    lambda: llc_at_point(np.zeros((3, 2)), np.zeros((3, 2)), np.zeros((2, 3)), [0], [5], [0]),
    lambda: llc_at_point(np.zeros((3, 2)), np.zeros((3, 2)), np.zeros((2, 3)), [0], [0], [0, 1]),
    lambda: rank_mod_prime(np.zeros(3, dtype=np.int64)),
    lambda: pad_units(np.zeros((3, 1)), None, np.zeros((1, 3)), 1, kind="zombie"),
])
def test_bad_inputs(call):
    with pytest.raises(ValueError):
        call()


def test_llc_at_net_reads_a_quadratic_net_copy():
    from slt.models.quadratic import QuadraticNet
    from slt.theory.jacobian import llc_at_net, point_from_net

    p = 5
    a, b, y = _pairs(p, 0.4, 0)
    U, V, A = memorising_solution(p, len(a) + 2, a, b, y, seed=0)
    net = QuadraticNet(p, len(a) + 2, n_copies=2, dtype=torch.float64)
    with torch.no_grad():
        net.U[1].copy_(torch.from_numpy(U))
        net.V[1].copy_(torch.from_numpy(V))
        net.A[1].copy_(torch.from_numpy(A))
    np.testing.assert_array_equal(point_from_net(net, 1)[2], A)
    res = llc_at_net(net, torch.as_tensor(a), torch.as_tensor(b), torch.as_tensor(y), copy=1)
    assert res.morse_bott and res.lam == sp.Rational(p * len(a), 2)
    with pytest.raises(ValueError):
        point_from_net(net, 2)


def test_basin_helpers():
    from slt.theory.basins import fourier_llc, memorising_llc

    p = 5
    a, b, y = _pairs(p, 0.4, 0)
    res = fourier_llc(p, a, b, y, width=16)
    assert res.n_params == 3 * p * 16 and res.morse_bott
    assert memorising_llc(p, 12, a, b, y).lam == sp.Rational(p * len(a), 2)
    with pytest.raises(ValueError):
        fourier_llc(p, a, b, y, width=3)

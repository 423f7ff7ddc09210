"""Closed forms of slt.theory.exact against published values and independent computations."""
import itertools

import pytest
import sympy as sp

from slt.theory.exact import dln, normal_crossing, regular, rrr
from slt.theory.volume import volume_scaling


def test_rrr_published_values():
    # devinterp's test values (science.md sec. 2)
    assert rrr(5, 3, 5, 0) == (sp.Rational(13, 2), 2)
    assert rrr(5, 4, 5, 0) == (8, 1)
    assert rrr(4, 3, 8, 0) == (6, 1)


def _rank_variety_dim(M, H, N, r):
    """dim of {rank <= k} matrices, k = min(H, M, N): k (M + N - k)."""
    k = min(H, M, N)
    return k * (M + N - k)


GRID = list(itertools.product(range(1, 6), range(1, 6), range(1, 6)))


@pytest.mark.parametrize("M,H,N", GRID)
def test_rrr_structure(M, H, N):
    for r in range(0, min(M, H, N) + 1):
        lam, m = rrr(M, H, N, r)
        # input/output symmetry of the model (transpose)
        assert rrr(N, H, M, r) == (lam, m)
        # bounded by half the parameter count and by the regular value at the truth
        assert 0 < lam <= sp.Rational(H * (M + N), 2)
        assert m in (1, 2)
        # at full rank r = H <= min(M, N) the model is regular on the rank-H manifold
        if r == H and H <= min(M, N):
            assert lam == sp.Rational(_rank_variety_dim(M, H, N, r), 2) and m == 1
        # lambda at rank r never exceeds the regular value of the rank-min(H,M,N) matrices
        assert lam <= sp.Rational(_rank_variety_dim(M, H, N, r), 2) + sp.Rational(H * (M + N), 2)


def test_rrr_one_by_one_is_normal_crossing():
    # y = b a x: K = (ab)^2 -> normal crossing k = (1, 1): lambda 1/2, m = 2
    assert rrr(1, 1, 1, 0) == normal_crossing([1, 1])


def test_rrr_monotone_in_true_rank():
    for M, H, N in GRID:
        vals = [rrr(M, H, N, r)[0] for r in range(min(M, H, N) + 1)]
        assert vals == sorted(vals)


@pytest.mark.parametrize("bad", [(0, 1, 1, 0), (1, 0, 1, 0), (1, 1, -1, 0), (2, 2, 2, 3), (2, 1, 2, 2),
                                 (2, 2, 2, -1), (2.0, 2, 2, 0), (True, 2, 2, 0)])
def test_rrr_bad_input(bad):
    with pytest.raises(ValueError):
        rrr(*bad)


def test_regular_and_crossing():
    assert regular(1) == (sp.Rational(1, 2), 1)
    assert regular(7) == (sp.Rational(7, 2), 1)
    assert normal_crossing([1]) == (sp.Rational(1, 2), 1)
    assert normal_crossing([1, 2]) == (sp.Rational(1, 4), 1)
    assert normal_crossing([1, 2, 3]) == (sp.Rational(1, 6), 1)
    assert normal_crossing([2, 2]) == (sp.Rational(1, 4), 2)
    assert normal_crossing([1, 0, 1]) == (sp.Rational(1, 2), 2)
    assert normal_crossing([1, 1], [1, 0]) == (sp.Rational(1, 2), 1)
    assert normal_crossing([2, 1], [1, 0]) == (sp.Rational(1, 2), 2)
    assert normal_crossing([1], [sp.Rational(-1, 2)]) == (sp.Rational(1, 4), 1)


@pytest.mark.parametrize("call", [lambda: regular(0), lambda: regular(-1), lambda: normal_crossing([]),
                                  lambda: normal_crossing([0, 0]), lambda: normal_crossing([1], [-1]),
                                  lambda: normal_crossing([1, 1], [0]), lambda: normal_crossing([-1])])
def test_bad_inputs(call):
    with pytest.raises(ValueError):
        call()


def test_dln_depth_two_is_rrr():
    # Aoyagi 2024 at L = 2 against Aoyagi-Watanabe 2005: two different formulas, same model
    for M, H, N in itertools.product(range(1, 8), repeat=3):
        for r in range(min(M, H, N) + 1):
            assert dln([M, H, N], r) == rrr(M, H, N, r)[0], (M, H, N, r)


def test_dln_all_ones_is_crossing():
    for L in range(2, 7):
        assert dln([1] * (L + 1), 0) == normal_crossing([1] * L)[0]


def _K_dln(widths):
    shapes = [(widths[i + 1], widths[i]) for i in range(len(widths) - 1)]

    def K(w):
        off, P = 0, None
        for rows, cols in shapes:
            W = w[..., off:off + rows * cols].reshape(*w.shape[:-1], rows, cols)
            off += rows * cols
            P = W if P is None else W @ P
        return (P ** 2).sum((-1, -2))

    return K, sum(r * c for r, c in shapes)


@pytest.mark.parametrize("widths", [[2, 1, 1, 2], [1, 2, 2, 1]])
def test_dln_depth_three_volume_scaling(widths):
    K, d = _K_dln(widths)
    est = volume_scaling(K, d, levels=14, fit_levels=7, n_mcmc=40, n=2000, seed=2)
    assert abs(est.lam - float(dln(widths, 0))) <= 4.0 * est.se  # 4 SE across replicates


@pytest.mark.parametrize("bad", [([2, 2], 0), ([2, 0, 2], 0), ([2, 2, 2], 3), ([2, 2, 2], -1)])
def test_dln_bad_input(bad):
    with pytest.raises(ValueError):
        dln(*bad)

"""Newton-polyhedron lambda vs normal crossings (exact, on a grid) and known values; volume scaling vs exact."""
import itertools

import numpy as np
import pytest
import sympy as sp

from slt.theory.exact import normal_crossing, regular
from slt.theory.newton import newton_polyhedron, newton_rlct
from slt.theory.volume import volume_scaling

x, y, z = sp.symbols("x y z")
SE_TOL = 4.0  # volume estimate within 4 standard errors (across replicates) of the exact value


@pytest.mark.parametrize("k", list(itertools.product(range(0, 4), repeat=2)) + [(1, 2, 3), (2, 2, 1)])
def test_monomial_matches_normal_crossing(k):
    if max(k) == 0:
        return
    xs = [x, y, z][: len(k)]
    for h in itertools.product(range(0, 3), repeat=len(k)):
        K = sp.Mul(*[s ** (2 * kj) for s, kj in zip(xs, k)])
        nr = newton_rlct(K, variables=xs, h=list(h))
        assert nr.exact and (nr.lam, nr.m) == normal_crossing(list(k), list(h)), (k, h)


def test_known_values():
    assert newton_rlct(x ** 2 + y ** 2 + z ** 2).lam == regular(3)[0]
    assert newton_rlct(x ** 2 + y ** 4).lam == sp.Rational(3, 4)
    r = newton_rlct((x * y) ** 2 + (y * z) ** 2 + (x * z) ** 2)
    assert (r.lam, r.m, r.exact) == (sp.Rational(3, 4), 1, True)
    r = newton_rlct(x ** 2 + y ** 2 * z ** 2)
    assert (r.lam, r.m) == (1, 2)


def test_degenerate_is_flagged_upper_bound():
    r = newton_rlct((x - y) ** 2)
    assert not r.exact and r.nondegenerate is False and r.lam == 1  # true value 1/2 <= bound
    r = newton_rlct((x ** 2 - y ** 3) ** 2)
    assert not r.exact


def test_polyhedron_facets():
    f = newton_polyhedron([(2, 0), (0, 4)])
    assert ((2, 1), 4) in f and ((1, 0), 0) in f and ((0, 1), 0) in f


@pytest.mark.parametrize("bad", [sp.Integer(0), x ** 2 + 1, sp.sin(x), sp.Integer(3)])
def test_bad_input(bad):
    with pytest.raises(ValueError):
        newton_rlct(bad)


def test_bad_prior():
    with pytest.raises(ValueError):
        newton_rlct(x ** 2, h=[-1])


@pytest.mark.parametrize("fn,dim,lam,m", [
    (lambda w: w[..., 0] ** 2, 1, 0.5, 1),
    (lambda w: w[..., 0] ** 2 * w[..., 1] ** 4, 2, 0.25, 1),
    (lambda w: w[..., 0] ** 2 * w[..., 1] ** 6, 2, 1 / 6, 1),
    (lambda w: (w ** 2).sum(-1), 3, 1.5, 1),
])
def test_volume_scaling_recovers_crossings(fn, dim, lam, m):
    est = volume_scaling(fn, dim, m=m, n=1000, levels=10, fit_levels=5, replicates=6, seed=0)
    assert abs(est.lam - lam) <= SE_TOL * est.se, (est.lam, est.se, lam)
    assert est.se < 0.05 * lam  # informative, not a wide interval


def test_volume_scaling_bad_input():
    with pytest.raises(ValueError):
        volume_scaling(lambda w: w[..., 0] ** 2, 0)
    with pytest.raises(ValueError):
        volume_scaling(lambda w: w[..., 0] ** 2, 1, rho=1.5)

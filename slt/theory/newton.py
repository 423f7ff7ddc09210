"""Learning coefficient of a polynomial K from its Newton polyhedron (Arnold-Gusein-Zade-Varchenko;
Lin, "Algebraic methods for evaluating integrals in Bayesian statistics", PhD thesis 2011, Thm 4.? /
sec. 4.2; Watanabe 2009 sec. 2.4).

For K(w) = sum_e c_e w^e >= 0 near the origin with K(0) = 0 and a prior phi(w) ~ prod |w_j|^(h_j):

    Gamma_+ = conv{e : c_e != 0} + R^d_{>=0}        (Newton polyhedron)
    t*      = min{t : t (h + 1) in Gamma_+}          (where the ray through h + 1 first meets Gamma_+)
    lambda <= 1 / t*,     with equality and m = codim of the face containing t*(h + 1) in its relative
                          interior when K is non-degenerate: for every compact face F, the face polynomial
                          K_F = sum_{e in F} c_e w^e has no critical point on the real torus (R \\ 0)^d.

The polyhedron is computed with scipy's ConvexHull (on the exponents plus far points along each axis),
then every facet's normal is recomputed exactly from its integer points, so t* and m are exact.
Non-degeneracy: a Groebner basis over Q shows "no critical point on the complex torus"; otherwise
sympy.solve looks for real ones; undecided -> reported as not verified. Whenever non-degeneracy is not
verified the value is returned with exact=False: an upper bound, never claimed exact.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import sympy as sp
from scipy.spatial import ConvexHull

__all__ = ["NewtonResult", "newton_polyhedron", "newton_rlct"]


@dataclass(frozen=True)
class NewtonResult:
    """lam = 1/t*, m = codim of the face met. exact: K verified non-degenerate (else lam is an upper bound).
    nondegenerate: True / False / None (undecided). face: exponents of the face met (its lattice points in
    supp K). note: why not exact, when not."""

    lam: sp.Rational
    m: int
    exact: bool
    t: sp.Rational
    face: tuple[tuple[int, ...], ...]
    nondegenerate: bool | None
    note: str


def _exact_facet(points: list[tuple[int, ...]], d: int, inward_hint: np.ndarray):
    """Exact (a, b) with a.x >= b on the polyhedron and a.x = b on ``points`` (integer a, gcd 1)."""
    p0 = sp.Matrix(points[0])
    diffs = sp.Matrix([[int(x) for x in (sp.Matrix(p) - p0)] for p in points[1:]]) if len(points) > 1 else sp.zeros(0, d)
    ns = diffs.nullspace() if diffs.rows else [sp.eye(d)[:, j] for j in range(d)]
    if len(ns) != 1:
        return None
    a = ns[0]
    a = a * sp.ilcm(*[sp.fraction(x)[1] for x in a])
    if float(sum(float(x) * y for x, y in zip(a, inward_hint))) < 0:
        a = -a
    g = sp.igcd(*[int(x) for x in a])
    a = [int(x) // g for x in a]
    return a, sum(ai * int(x) for ai, x in zip(a, points[0]))


def newton_polyhedron(exponents: list[tuple[int, ...]]) -> list[tuple[tuple[int, ...], int]]:
    """Facets (a, b) of Gamma_+ = conv(exponents) + R^d_+, as a.x >= b with integer a >= 0 (a != 0)."""
    E = sorted(set(tuple(int(x) for x in e) for e in exponents))
    d = len(E[0])
    if d == 1:
        return [((1,), min(e[0] for e in E))]
    far = 2 * max(max(e) for e in E) + 2
    pts = list(E) + [tuple(x + (far if i == j else 0) for i, x in enumerate(e)) for e in E for j in range(d)]
    P = np.array(pts, dtype=float)
    hull = ConvexHull(P)
    facets = set()
    for eq in hull.equations:  # eq: n.x + c <= 0 inside, n outward
        inward = -eq[:-1]
        if np.any(inward < -1e-9):
            continue  # a far facet of the truncation, not of Gamma_+
        on = [pts[i] for i in range(len(pts)) if abs(P[i] @ eq[:-1] + eq[-1]) < 1e-7]
        res = _exact_facet(on, d, inward)
        if res is None or min(res[0]) < 0:
            continue
        a, b = res
        if all(sum(ai * x for ai, x in zip(a, e)) >= b for e in E):
            facets.add((tuple(a), b))
    return sorted(facets)


def _torus_critical(KF: sp.Expr, xs: list[sp.Symbol]) -> bool | None:
    """Does K_F have a critical point with every coordinate real and nonzero? None = undecided."""
    grads = [sp.diff(KF, x) for x in xs]
    z = sp.Symbol("_z")
    G = sp.groebner(grads + [1 - z * sp.Mul(*xs)], *xs, z, order="grevlex")
    if list(G.exprs) == [1]:
        return False  # no critical point even on the complex torus
    try:
        sols = sp.solve(grads, xs, dict=True)
    except (NotImplementedError, ValueError):
        return None
    if not sols:
        return None
    undecided = False
    for s in sols:
        vals = [s.get(x, x) for x in xs]
        free = [v for v in vals if v.free_symbols]
        if free:
            # a positive-dimensional family; test a generic real member
            subs = {sym: sp.Rational(3 + i, 7) for i, sym in enumerate(set().union(*[v.free_symbols for v in vals]))}
            vals = [sp.nsimplify(v.subs(subs)) for v in vals]
        if all(v.is_real and v != 0 for v in vals):
            return True
        if any(v.is_real is None for v in vals):
            undecided = True
    return None if undecided else False


def newton_rlct(K: sp.Expr, variables=None, h=None) -> NewtonResult:
    """lambda from the Newton polyhedron of the polynomial K at the origin (see module docstring).

    variables: the coordinates (default: K's free symbols, sorted by name). h: prior exponents
    (phi ~ prod |w_j|^(h_j)), default 0.
    """
    K = sp.expand(sp.sympify(K))
    xs = sorted(K.free_symbols, key=lambda s: s.name) if variables is None else list(variables)
    if not xs:
        raise ValueError("K must be a polynomial in at least one variable")
    try:
        poly = sp.Poly(K, *xs)
    except sp.PolynomialError as err:
        raise ValueError(f"K must be a polynomial in {xs}: {err}") from None
    if poly.is_zero:
        raise ValueError("K must not be identically zero")
    terms = dict(poly.terms())
    if tuple(0 for _ in xs) in terms:
        raise ValueError("K must vanish at the origin (no constant term)")
    d = len(xs)
    hv = [0] * d if h is None else [sp.Rational(x) for x in h]
    if len(hv) != d or any(x <= -1 for x in hv):
        raise ValueError(f"h must have {d} entries, each > -1")
    ray = [x + 1 for x in hv]
    facets = newton_polyhedron(list(terms))
    ts = [(sp.Rational(b, sum(ai * r for ai, r in zip(a, ray))), a, b) for a, b in facets]
    t = max(x[0] for x in ts)
    active = [(a, b) for tt, a, b in ts if tt == t]
    m = sp.Matrix([list(a) for a, _ in active]).rank()
    point = [t * r for r in ray]
    face = tuple(sorted(e for e in terms if all(sum(ai * x for ai, x in zip(a, e)) == b for a, b in active)))
    # non-degeneracy on every compact face: faces are intersections of facets; compact iff the normals of
    # the facets containing it sum to a strictly positive vector
    on = {f: frozenset(e for e in terms if sum(ai * x for ai, x in zip(f[0], e)) == f[1]) for f in facets}
    faces: dict[frozenset, set] = {}
    for f, pts in on.items():
        faces.setdefault(pts, set()).add(f)
    changed = True
    while changed:
        changed = False
        for (p1, f1), (p2, f2) in itertools.combinations(list(faces.items()), 2):
            inter = p1 & p2
            if len(inter) >= 2 and inter not in faces:
                faces[inter] = set()
                changed = True
    for pts in faces:
        faces[pts] = {f for f, q in on.items() if pts <= q}
    nondeg: bool | None = True
    bad = None
    for pts, fs in faces.items():
        if len(pts) < 2:
            continue
        normal = [sum(f[0][j] for f in fs) for j in range(d)]
        if min(normal) <= 0:
            continue  # not compact
        KF = sum(terms[e] * sp.Mul(*[x ** k for x, k in zip(xs, e)]) for e in pts)
        crit = _torus_critical(KF, xs)
        if crit is True:
            nondeg, bad = False, KF
            break
        if crit is None:
            nondeg, bad = None, KF
    exact = nondeg is True
    note = "" if exact else (
        f"degenerate on the face polynomial {bad}: 1/t* is only an upper bound" if nondeg is False
        else f"non-degeneracy undecided on {bad}: 1/t* is only an upper bound")
    assert all(sum(ai * x for ai, x in zip(a, point)) >= b for a, b in facets)
    return NewtonResult(lam=1 / t, m=int(m) if exact else int(m), exact=exact, t=t, face=face,
                        nondegenerate=nondeg, note=note)

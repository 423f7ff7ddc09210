"""Learning coefficient of the bias-free quadratic network on modular-arithmetic training inputs.

Model (Cullen et al., arXiv 2603.01192; Gromov, arXiv 2301.02679; storage of :mod:`slt.models.quadratic`):

    f(a, b) = sum_k c_k (u_k[a] + v_k[b])^2,   unit k: u_k, v_k in R^p (first layer), c_k in R^q (readout)

untied (3pK parameters) or tied (v_k = u_k, 2pK parameters); Gaussian loss, plain or centred over the N
training samples. The data enter only through the N training inputs (a_i, b_i).

Derivation (printed step by step by ``derivations/quadratic_generic.py``):

1. Symmetries. Unit k contributes c_k (x) g_k with g_k(a, b) = (u_k[a] + v_k[b])^2. It is unchanged by
   (i)  scaling  (u, v, c) -> (t u, t v, c / t^2), and, untied only,
   (ii) shift    (u, v) -> (u + s 1, v - s 1): the unit only sees the sum u[a] + v[b] of one row of U and
        one of V, because the input is a concatenated one-hot [e_a; e_b].
   Tied, (ii) becomes u[a] + u[b] -> u[a] + u[b] + 2s: not a symmetry. So per unit the Jacobian has at most
   r_unit = 3p - 2 (untied) or 2p - 1 (tied) independent directions.
2. No other symmetry of one unit (proof): the kernel of d(c (x) g) = dc (x) g + c (x) dg at c != 0, g != 0
   has dc = beta c, dg = -beta g, i.e. 2 s_ab (du[a] + dv[b]) = -beta s_ab^2 on every training pair, so
   x[a] + y[b] = 0 with x = du + beta u / 2, y = dv + beta v / 2 (s_ab != 0 generically). On the bipartite
   support graph (a-vertices, b-vertices, one edge per training pair) this forces x = s on the a-side and
   y = -s on the b-side of each connected component: one shift per component, plus beta. Connected support
   covering all 2p indices: kernel = span(scaling, shift), r_unit = 3p - 2. Tied: x[a] + x[b] = 0 on the
   (non-bipartite, connected) support graph forces x = 0: r_unit = 2p - 1. (Centred loss: the kernel
   equation becomes dc (x) g + c (x) dg = z (x) 1, whose extra solution needs 2 s (dx) = gamma / s to be
   separable on the graph: impossible once the graph has a cycle.)
3. Data cap. The Jacobian maps into functions on the training inputs: rank <= q N' with N' = number of
   distinct inputs (tied: unordered pairs {a, b}), minus 1 when centred (P kills the constant function).
   The span of all unit functions is everything (u v^T spans all p x p matrices), so the cap is attainable.
4. Dimension count of the image {C G^T}: G's K columns lie on the cone X = {s^2 : s in S} (dim 2p - 1) and
   span a point of Gr(K, N'): rank <= K (p + N' - K) as well (binds only for sparse data, N' < 3p - 2).
   And a first-layer row met by d training inputs carries at most p d of its K unit columns.
5. Hence rank J <= min(p N', K r_unit, K (p + N' - K)) everywhere (rigorous), with equality at generic
   points: PROVED per instance by an exact rank over F_P at a random integer point (rank there <= generic
   rank <= the bound); it holds on every instance of the test grid. Near a generic interpolating point
   the map has constant rank, so the zero set is a manifold of codimension equal to that rank
   (Morse-Bott) and lambda = rank / 2:

       lambda = (1/2) min(p N', (3p - 2) K, K (p + N' - K))   untied
       lambda = (1/2) min(p N'_u, (2p - 1) K, K (p + N'_u - K))  tied       (third term only for K < N')

   The paper's K(3p - 1)/2 counts only symmetry (i), and does not cap by the data.
"""
from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral

import numpy as np
import sympy as sp

from slt.theory.jacobian import exact_rank_at, random_integer_point

__all__ = [
    "p_sym",
    "K_sym",
    "N_sym",
    "unit_rank_expr",
    "quadratic_llc_expr",
    "quadratic_llc",
    "min_train_size",
    "distinct_inputs",
    "support_graph",
    "support_dim",
    "rank_formula",
    "vertex_degrees",
    "DataLLC",
    "quadratic_llc_data",
    "lazy_llc",
]

p_sym, K_sym, N_sym = sp.symbols("p K N", positive=True, integer=True)


def _int(name: str, v: object, minimum: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (Integral, sp.Integer)) or int(v) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {v!r}")
    return int(v)


def unit_rank_expr(tied: bool = False) -> sp.Expr:
    """Generic Jacobian rank of one unit on connected support: 3p - 2 (untied), 2p - 1 (tied)."""
    return 2 * p_sym - 1 if tied else 3 * p_sym - 2


def quadratic_llc_expr(tied: bool = False, centred: bool = False) -> sp.Piecewise:
    """lambda(p, K, N) at a generic interpolating point, as one Piecewise in the symbols p, K, N:

        (1/2) min(p N', K r_unit, K (p + N' - K))     (third term only while K < N'),

    N' = N - [centred], r_unit = 3p - 2 untied / 2p - 1 tied. N counts distinct training inputs (tied:
    distinct unordered pairs). Assumes a connected support graph (tied: connected, non-bipartite) in which
    every first-layer row meets at least K/p training inputs; otherwise use :func:`quadratic_llc_data`.
    """
    n_eff = N_sym - 1 if centred else N_sym
    cap = p_sym * n_eff
    sym = K_sym * unit_rank_expr(tied)
    grass = K_sym * (p_sym + n_eff - K_sym)
    return sp.Piecewise(
        (cap / 2, sp.Or(K_sym >= n_eff, sp.And(cap <= sym, cap <= grass))),
        (sym / 2, sym <= grass),
        (grass / 2, True),
    )


def min_train_size(p: int, tied: bool = False) -> int:
    """Smallest N whose support graph can be connected: 2p - 1 untied (a spanning tree of the bipartite
    graph on 2p rows), p tied (p rows, plus one edge closing an odd cycle or a loop)."""
    return p if tied else 2 * p - 1


def quadratic_llc(p: int, width: int, n_train: int, tied: bool = False, centred: bool = False) -> sp.Expr:
    """Generic-point lambda of the bias-free quadratic network (exact SymPy number):

        (1/2) min(p N', r_unit K, K (p + N' - K) [K < N']),  r_unit = 3p - 2 (untied) / 2p - 1 (tied),

    N' = n_train - [centred]. For tied, ``n_train`` must count distinct unordered input pairs (the tied
    net cannot tell (a, b) from (b, a); see :func:`distinct_inputs`). Valid for a connected support graph
    (needs n_train >= min_train_size(p, tied)) where every first-layer row meets >= width/p training
    inputs; for a given training set use :func:`quadratic_llc_data`, which checks all of this.
    """
    p = _int("p", p, 2)
    width = _int("width", width, 1)
    n_max = p * (p + 1) // 2 if tied else p * p
    lo = min_train_size(p, tied)
    n_train = _int("n_train", n_train, 1)
    if not lo <= n_train <= n_max:
        raise ValueError(
            f"n_train must be in [{lo}, {n_max}] for p={p}, tied={tied} (the closed form needs a connected "
            f"support graph); got {n_train}. Use quadratic_llc_data(p, width, a, b) for a given training set"
        )
    return quadratic_llc_expr(tied, centred).subs({p_sym: p, K_sym: width, N_sym: n_train})


def distinct_inputs(a, b, tied: bool = False) -> int:
    """Number of distinct training inputs: ordered pairs (untied) or unordered pairs {a, b} (tied)."""
    a, b = np.asarray(a), np.asarray(b)
    if tied:
        a, b = np.minimum(a, b), np.maximum(a, b)
    return len(set(zip(a.tolist(), b.tolist())))


def support_graph(p: int, a, b, tied: bool = False) -> tuple[int, int]:
    """(components, bipartite components) of the support graph of the training pairs.

    Untied: vertices a-side 0..p-1 and b-side p..2p-1, edge a_i -- p + b_i (always bipartite).
    Tied: vertices 0..p-1, edge a_i -- b_i (a loop when a_i = b_i, which makes a component non-bipartite).
    Isolated vertices count as (bipartite) components.
    """
    n = p if tied else 2 * p
    parent = list(range(n))
    colour_edges = []

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for ai, bi in zip(np.asarray(a).tolist(), np.asarray(b).tolist()):
        u, v = (ai, bi) if tied else (ai, p + bi)
        colour_edges.append((u, v))
        parent[find(u)] = find(v)
    comps: dict[int, list[int]] = {}
    for x in range(n):
        comps.setdefault(find(x), []).append(x)
    adj: dict[int, list[int]] = {x: [] for x in range(n)}
    for u, v in colour_edges:
        adj[u].append(v)
        adj[v].append(u)
    colour: dict[int, int] = {}
    n_bip = 0
    for verts in comps.values():
        ok = True
        stack = [verts[0]]
        colour[verts[0]] = 0
        while stack:
            x = stack.pop()
            for y in adj[x]:
                if y not in colour:
                    colour[y] = 1 - colour[x]
                    stack.append(y)
                elif colour[y] == colour[x]:
                    ok = False
        n_bip += ok
    return len(comps), n_bip


def support_dim(p: int, a, b, tied: bool = False) -> int:
    """D = dim of the span S of pre-activation vectors (u[a_i] + v[b_i])_i over all (u, v) (tied: v = u).

    Untied: (#vertices - #components) = 2p - c of the bipartite support graph. Tied: p - (#bipartite
    components) (x[a] + x[b] = 0 on the edges has one solution per bipartite component).
    """
    comps, bip = support_graph(p, a, b, tied)
    return p - bip if tied else 2 * p - comps


def vertex_degrees(p: int, a, b, tied: bool = False) -> np.ndarray:
    """Number of distinct training inputs touching each first-layer row: (2p,) untied (a-rows then
    b-rows), (p,) tied (an unordered pair {x, y} touches x and y once each)."""
    a, b = np.asarray(a), np.asarray(b)
    if tied:
        pairs = set(zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist()))
        d = np.zeros(p, dtype=np.int64)
        for x, y in pairs:
            d[x] += 1
            d[y] += y != x
        return d
    pairs = np.array(sorted(set(zip(a.tolist(), b.tolist()))))
    return np.concatenate([np.bincount(pairs[:, 0], minlength=p), np.bincount(pairs[:, 1], minlength=p)])


def rank_formula(q: int, width: int, n_eff: int, D: int, degrees=None) -> int:
    """Generic rank of the K-unit Jacobian (K = width):

        q N'                                                             if K >= N'
        min( q N',  K (q + D - 1) - sum_v max(0, K - q d_v),  K (q + N' - K) )   if K < N'

    * q N': the data cap (functions on the N' effective training inputs, q outputs each).
    * K (q + D - 1): per unit q readout + D first-layer directions (D = dim of the span of pre-activation
      vectors on the data) minus the scaling; for connected untied support D = 2p - 1 (the shift is the
      other lost direction), so this is K (3p - 2); tied D = p: K (2p - 1).
    * K (q + N' - K): the image is {C G^T} with G's K columns on the cone X = {s^2 : s in S}; their span is
      a point of Gr(K, N'), a family of dimension <= K (N' - K) (binds only for sparse data, N' < 3p - 2).
    * vertex term: the K columns d/du_{k,v} of one first-layer row v live in R^q (x) R^{d_v} (d_v = its
      number of training inputs), so at least K - q d_v of them are dependent (binds when d_v < K / q).

    The first three are a proved dimension count (upper bound); the vertex term and tightness are checked
    by exact ranks on a grid (tests/test_theory_quadratic.py). ``degrees=None`` omits the vertex term.
    """
    if n_eff <= 0 or D <= 0:
        return 0
    if width >= n_eff:  # K >= N' points of X span R^{N'} generically, so F = C G^T reaches every F
        return q * n_eff
    defect = 0 if degrees is None else int(sum(max(0, width - q * int(d)) for d in degrees if d > 0))
    return min(q * n_eff, width * (q + D - 1) - defect, width * (q + n_eff - width))


@dataclass(frozen=True)
class DataLLC:
    """Generic-point lambda for a GIVEN training set.

    bound: (1/2) rank_formula(...) (an upper bound on (generic rank)/2; see rank_formula for which parts
    are proved and which are checked on a grid).
    verified_rank: max exact F_P rank of the Jacobian over random integer points (seeded), a rigorous lower
    bound on the generic rank. ``exact``: they meet, so lam = bound is proved for this instance.
    """

    lam: sp.Rational
    bound: sp.Rational
    data_cap: int
    support_dim: int
    verified_rank: int | None
    exact: bool


def quadratic_llc_data(p: int, width: int, a, b, tied: bool = False, centred: bool = False,
                       n_out: int | None = None, verify: bool = True, seed: int = 0,
                       n_points: int = 2) -> DataLLC:
    """lambda at a generic interpolating point of the network trained on the pairs (a_i, b_i).

    lam = verified_rank / 2 when ``verify`` (it equals ``bound`` whenever ``exact``), else bound.
    Handles disconnected supports, tiny N, p = 2 and centring with the same engine.
    """
    p = _int("p", p, 2)
    width = _int("width", width, 1)
    q = p if n_out is None else _int("n_out", n_out, 1)
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    if a.shape != b.shape or a.ndim != 1 or a.size < 1:
        raise ValueError("a and b must be nonempty 1-D index arrays of equal length")
    if a.min() < 0 or b.min() < 0 or a.max() >= p or b.max() >= p:
        raise ValueError(f"a and b must hold indices in [0, {p - 1}]")
    if n_points < 1:
        raise ValueError(f"n_points must be >= 1, got {n_points}")
    n_eff = distinct_inputs(a, b, tied) - int(centred)
    D = support_dim(p, a, b, tied)
    bound = rank_formula(q, width, n_eff, D, vertex_degrees(p, a, b, tied))
    rv = None
    if verify:
        rv = max(exact_rank_at(*random_integer_point(p, width, q, tied, seed=seed + 7919 * s), a, b, centred)
                 for s in range(n_points))
    return DataLLC(lam=sp.Rational(bound if rv is None else rv, 2), bound=sp.Rational(bound, 2),
                   data_cap=q * max(n_eff, 0), support_dim=D, verified_rank=rv, exact=rv == bound)


def lazy_llc(p: int, width: int, n_train: int, centred: bool = False) -> sp.Rational:
    """Lazy / frozen-first-layer model (only the readout trained): a linear regression Y = C Phi with
    features Phi (K x N) of generic rank min(K, N'), so lambda = (p/2) min(K, N'), N' = N - [centred].
    (The paper's (p/2) min(l, K), with l the number of samples; centring removes one.)"""
    p = _int("p", p, 2)
    width = _int("width", width, 1)
    n_train = _int("n_train", n_train, 1)
    if n_train > p * p:  # there are only p^2 distinct input pairs (a, b)
        raise ValueError(f"n_train must be in [1, {p * p}] (p^2 distinct pairs for p={p}), got {n_train}")
    return sp.Rational(p * min(width, n_train - int(centred)), 2)

"""Generic learning coefficient of the quadratic network f(a,b) = sum_k c_k (u_k[a] + v_k[b])^2 on one-hot data.

Run: python derivations/quadratic_generic.py [--latex]   or   slt derive quadratic_generic [--latex]
"""
from __future__ import annotations

import sys

import numpy as np
import sympy as sp

from slt.tasks import all_pairs, make_data
from slt.theory.jacobian import exact_rank_at, random_integer_point
from slt.theory.quadratic import (distinct_inputs, quadratic_llc, quadratic_llc_data, quadratic_llc_expr,
                                  support_graph, vertex_degrees)


def _show(x, latex: bool) -> None:
    print(sp.latex(x) if latex else sp.pretty(x, use_unicode=False))


def main(latex: bool = False) -> int:
    print("Step 1. One unit on the input (a, b): f_q = c_q (u_a + v_b)^2   (p = 3 shown, any p alike)")
    p = 3
    u = sp.symbols(f"u0:{p}")
    v = sp.symbols(f"v0:{p}")
    c = sp.symbols(f"c0:{p}")
    F = [c[q] * (u[x] + v[y]) ** 2 for x in range(p) for y in range(p) for q in range(p)]
    scaling = {**{s: s for s in u}, **{s: s for s in v}, **{s: -2 * s for s in c}}  # d/dt (t u, t v, c/t^2)
    shift = {**{s: 1 for s in u}, **{s: -1 for s in v}}
    tied_shift = {s: 1 for s in u}

    def lie(field, f, tied=False):
        if tied:
            f = f.subs({v[i]: u[i] for i in range(p)})
        return sp.expand(sum(coef * sp.diff(f, s) for s, coef in field.items()))

    print("  scaling field X = sum u d/du + sum v d/dv - 2 sum c d/dc;  X f = 0 on every output:",
          all(lie(scaling, f) == 0 for f in F))
    print("  shift field   Y = sum d/du - sum d/dv (the unit sees only u_a + v_b);  Y f = 0:",
          all(lie(shift, f) == 0 for f in F))
    ex = lie(tied_shift, c[0] * (u[0] + u[1]) ** 2, tied=True)
    print("  tied (v = u): the shift d/du acts on (u_a + u_b)^2 as")
    _show(sp.factor(ex), latex)
    print("  which is nonzero: tied units keep the scaling only.")

    print("\nStep 2. No other direction for one unit (proof). d(c g) = dc g + c dg = 0 with c, g != 0 forces")
    print("  dc = beta c and dg = -beta g, i.e. 2 s_ab (du_a + dv_b) = -beta s_ab^2 on every training pair;")
    print("  with x = du + beta u/2, y = dv + beta v/2:  x_a + y_b = 0 on every edge of the bipartite support")
    print("  graph, so x = t, y = -t on each connected component. Connected: kernel = span(X, Y), rank 3p - 2.")
    print("  Tied: x_a + x_b = 0 on a connected non-bipartite graph forces x = 0: rank 2p - 1.")
    print("  Exact check, one unit at a random integer point on all pairs (rank over F_P):")
    for q in (2, 3, 5, 7):
        a, b, _ = (t.numpy() for t in all_pairs(q))
        r = exact_rank_at(*random_integer_point(q, 1, seed=1), a, b)
        rt = exact_rank_at(*random_integer_point(q, 1, tied=True, seed=1), a, b)
        print(f"    p={q}: untied {r} (3p-2 = {3 * q - 2}), tied {rt} (2p-1 = {2 * q - 1})")
        assert r == 3 * q - 2 and rt == 2 * q - 1

    print("\nStep 3. Data cap: J maps into functions on the N' effective inputs (N' = N, or N - 1 centred;")
    print("  tied: distinct unordered pairs): rank <= p N'. u v^T spans all p x p matrices, so no smaller cap.")
    print("\nStep 4. Dimension count of the image {C G^T}: G's K columns lie on X = {s^2}, dim X = 2p - 1, and")
    print("  their span is a point of Gr(K, N'): rank <= K (p + N' - K) too (binds only for N' < 3p - 2).")
    print("  Generic point: rank = min(p N', K r_unit, K (p + N' - K)); Morse-Bott there, so lambda = rank/2:")
    for tied in (False, True):
        for centred in (False, True):
            print(f"  tied={tied}, centred={centred}:")
            _show(quadratic_llc_expr(tied, centred), latex)

    print("\nChecks: closed form vs exact rank at random integer points (train fraction f of all p^2 pairs).")
    print("  p  f    tied  centred  K  N   closed  exact")
    n_ok = n_all = 0
    for q, frac in ((3, 1.0), (5, 0.4), (5, 1.0), (7, 0.4)):
        a, b, _ = (t.numpy() for t in (all_pairs(q) if frac == 1.0 else make_data(q, "add", frac, 0).train()))
        for tied in (False, True):
            for centred in (False, True):
                n = distinct_inputs(a, b, tied)
                unit = 2 * q - 1 if tied else 3 * q - 2
                kb = -(-q * (n - centred) // unit)
                for K in sorted({1, max(1, kb - 1), kb}):
                    comps, bip = support_graph(q, a, b, tied)
                    ok_hyp = comps == 1 and (not tied or bip == 0) and min(vertex_degrees(q, a, b, tied)) * q >= K
                    if not ok_hyp:
                        continue
                    closed = quadratic_llc(q, K, n, tied, centred)
                    exact = quadratic_llc_data(q, K, a, b, tied, centred)
                    n_all += 1
                    n_ok += closed == exact.lam and exact.exact
                    print(f"  {q}  {frac:.1f}  {tied!s:5} {centred!s:7}  {K:<2} {n:<3} {closed!s:7} {exact.lam}")
    print(f"  {n_ok}/{n_all} instances agree")
    return 0 if n_ok == n_all else 1


if __name__ == "__main__":
    sys.exit(main("--latex" in sys.argv))

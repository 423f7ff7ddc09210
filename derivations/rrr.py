"""Reduced-rank regression (Aoyagi & Watanabe 2005): the four cases, published checks, and independent
numerical checks (Newton polyhedron bound on the smallest case, volume scaling on small cases).

Run: python derivations/rrr.py   or   slt derive rrr
"""
from __future__ import annotations

import sys

import numpy as np
import sympy as sp

from slt.theory.exact import normal_crossing, rrr
from slt.theory.newton import newton_rlct
from slt.theory.volume import volume_scaling

SE_TOL = 4.0  # |volume estimate - exact| <= 4 SE across replicates


def _K_rrr(M: int, H: int, N: int):
    """K(A, B) = |B A|_F^2 (inputs x ~ N(0, I), true map 0), vectorised over leading axes."""
    def K(w):
        A = w[..., : H * M].reshape(*w.shape[:-1], H, M)
        B = w[..., H * M:].reshape(*w.shape[:-1], N, H)
        return ((B @ A) ** 2).sum((-1, -2))
    return K


def main(latex: bool = False) -> int:
    M, H, N, r = sp.symbols("M H N r", positive=True, integer=True)
    show = (lambda e: print("   ", sp.latex(e))) if latex else (lambda e: print("   ", sp.pretty(e, use_unicode=False)))
    print("y = B A x, A: H x M, B: N x H, true rank r. Aoyagi-Watanabe (2005) Theorem 1:")
    print("  case 1 (N+r <= M+H, M+r <= N+H, H+r <= M+N), M+H+N+r even (m = 1) / odd (m = 2, +1 in numerator):")
    show((2 * (H + r) * (M + N) - (M - N) ** 2 - (H + r) ** 2) / 8)
    print("  case 2 (M+H < N+r):"); show((H * M - H * r + N * r) / 2)
    print("  case 3 (N+H < M+r):"); show((H * N - H * r + M * r) / 2)
    print("  case 4 (M+N < H+r):"); show(M * N / 2)
    ok = True
    print("\nPublished checks (devinterp's tests):")
    for args, want in (((5, 3, 5, 0), sp.Rational(13, 2)), ((5, 4, 5, 0), 8), ((4, 3, 8, 0), 6)):
        got = rrr(*args)
        print(f"  rrr{args} = {got}  expected lambda {want}")
        ok &= got[0] == want
    print("\nIndependent checks:")
    a, b = sp.symbols("a b")
    nr = newton_rlct((a * b) ** 2)
    print(f"  M=H=N=1, r=0: K = (ab)^2; Newton polyhedron {nr.lam}, m={nr.m} (exact {nr.exact}); "
          f"normal crossing {normal_crossing([1, 1])}; rrr {rrr(1, 1, 1, 0)}")
    ok &= (nr.lam, nr.m) == rrr(1, 1, 1, 0) == normal_crossing([1, 1])
    a1, a2 = sp.symbols("a1 a2")
    nr = newton_rlct(b ** 2 * (a1 ** 2 + a2 ** 2))
    print(f"  M=2, H=N=1, r=0: K = b^2 (a1^2 + a2^2); Newton {nr.lam}, m={nr.m} (exact {nr.exact}); rrr {rrr(2, 1, 1, 0)}")
    ok &= nr.exact and (nr.lam, nr.m) == rrr(2, 1, 1, 0)
    for (Mv, Hv, Nv) in ((2, 1, 1), (2, 2, 2), (1, 2, 2)):
        lam, m = rrr(Mv, Hv, Nv, 0)
        est = volume_scaling(_K_rrr(Mv, Hv, Nv), Hv * (Mv + Nv), m=m, levels=14, fit_levels=7, n_mcmc=15, seed=1)
        good = abs(est.lam - float(lam)) <= SE_TOL * est.se
        print(f"  volume scaling ({Mv},{Hv},{Nv},0): {est.lam:.3f} +- {est.se:.3f} (exact {lam}, m={m}; "
              f"rel. err {abs(est.lam / float(lam) - 1):.1%}) {'ok' if good else 'DISAGREES'}")
        ok &= good
    print("all checks passed" if ok else "CHECK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main("--latex" in sys.argv))

"""Exact learning coefficients (RLCT lambda, multiplicity m) of models whose value is known in closed form.

Every function returns ``(lambda, m)`` with ``lambda`` an exact :class:`sympy.Rational` and ``m`` an int.

Sources: Watanabe, *Algebraic Geometry and Statistical Learning Theory* (2009), ch. 2 and 7 (regular models,
normal crossings); Aoyagi & Watanabe, "Stochastic complexities of reduced rank regression in Bayesian
estimation", Neural Networks 18 (2005), Theorem 1 (reduced-rank regression, all four cases).
"""
from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from numbers import Integral, Rational as _NumRational

import sympy as sp

__all__ = ["regular", "normal_crossing", "rrr", "dln"]


def _posint(name: str, v: object, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, Integral) or int(v) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {v!r}")
    return int(v)


def regular(d: int) -> tuple[sp.Rational, int]:
    """Regular model with d parameters (Fisher information of full rank d): lambda = d/2, m = 1.

    Watanabe (2009), Remark 1.15: the free energy is (d/2) log n + O(1), the BIC penalty.
    """
    d = _posint("d", d)
    return sp.Rational(d, 2), 1


def normal_crossing(k: Sequence[int], h: Sequence[int] | None = None) -> tuple[sp.Rational, int]:
    """K(w) = prod_j w_j^(2 k_j) with prior density prod_j |w_j|^(h_j) near the origin.

        lambda = min_{j : k_j > 0} (h_j + 1) / (2 k_j),   m = #{j attaining the minimum}

    (Watanabe 2009, Theorem 6.1 / Remark 6.4; coordinates with k_j = 0 do not enter K and contribute no
    pole.) ``k``: nonnegative integers, at least one positive. ``h``: nonnegative integers (or rationals
    > -1), default all 0 (a prior positive at the origin).
    """
    k = list(k)
    if not k:
        raise ValueError("k must be a nonempty sequence of nonnegative integers")
    ks = [_posint(f"k[{j}]", kj, minimum=0) for j, kj in enumerate(k)]
    if max(ks) == 0:
        raise ValueError(f"k must have at least one positive entry (K = 1 has no zero), got {k!r}")
    if h is None:
        hs = [sp.Integer(0)] * len(ks)
    else:
        h = list(h)
        if len(h) != len(ks):
            raise ValueError(f"h must have the same length as k ({len(ks)}), got length {len(h)}")
        hs = []
        for j, hj in enumerate(h):
            if isinstance(hj, bool) or not isinstance(hj, (_NumRational, sp.Rational)) or sp.Rational(hj) <= -1:
                raise ValueError(f"h[{j}] must be an integer or rational > -1 (integrable prior), got {hj!r}")
            hs.append(sp.Rational(hj))
    ratios = [sp.Rational(hj + 1) / (2 * kj) for kj, hj in zip(ks, hs) if kj > 0]
    lam = min(ratios)
    return lam, sum(1 for r in ratios if r == lam)


def rrr(M: int, H: int, N: int, r: int) -> tuple[sp.Rational, int]:
    """Reduced-rank regression y = B A x, A in R^{H x M}, B in R^{N x H}, true map of rank r.

    Aoyagi & Watanabe (2005), Theorem 1 (M = input dim, N = output dim, H = inner width, 0 <= r <= min):

    1. N + r <= M + H, M + r <= N + H, H + r <= M + N:
         M+H+N+r even: lambda = [2(H+r)(M+N) - (M-N)^2 - (H+r)^2] / 8,      m = 1
         M+H+N+r odd:  lambda = [2(H+r)(M+N) - (M-N)^2 - (H+r)^2 + 1] / 8,  m = 2
    2. M + H < N + r:  lambda = (HM - Hr + Nr) / 2,  m = 1
    3. N + H < M + r:  lambda = (HN - Hr + Mr) / 2,  m = 1
    4. M + N < H + r:  lambda = MN / 2,              m = 1

    Cases 2-4 are mutually exclusive (any two of their inequalities add up to H < r, M < r or N < r),
    and case 1 is the complement of their union.
    """
    M, H, N = _posint("M", M), _posint("H", H), _posint("N", N)
    r = _posint("r", r, minimum=0)
    if r > min(M, H, N):
        raise ValueError(f"r must satisfy 0 <= r <= min(M, H, N) = {min(M, H, N)}, got r={r}")
    if M + H < N + r:
        return sp.Rational(H * M - H * r + N * r, 2), 1
    if N + H < M + r:
        return sp.Rational(H * N - H * r + M * r, 2), 1
    if M + N < H + r:
        return sp.Rational(M * N, 2), 1
    core = 2 * (H + r) * (M + N) - (M - N) ** 2 - (H + r) ** 2
    if (M + H + N + r) % 2 == 0:
        return sp.Rational(core, 8), 1
    return sp.Rational(core + 1, 8), 2


def dln(widths: Sequence[int], r: int) -> sp.Rational:
    """Deep linear network y = W_L ... W_1 x, layer widths H_1 (input), ..., H_{L+1} (output), true product
    of rank r: lambda from Aoyagi (2024, Neural Networks, Theorem 1; restated as Thm B.1 in Furman & Lau,
    arXiv 2402.03698). With M_s = H_s - r, take the set S of the l + 1 >= 2 smallest M_s such that

        max_S M < min_{not S} M,   sum_S M >= l max_S M,   sum_S M < l min_{not S} M  (when not S is nonempty),

    then with sigma = sum_S M and a = sigma - (ceil(sigma / l) - 1) l:

        lambda = (r (H_1 + H_{L+1}) - r^2)/2 + a (l - a)/(4 l) - l (l - 1)/4 (sigma / l)^2
                 + (1/2) sum_{i < j in S} M_i M_j.

    Checks (tests/test_theory_exact.py): for L = 2 it equals :func:`rrr` on every instance with M, H, N <= 7
    (1127 cases; the set S must have at least two elements for this to hold); widths all 1 give the normal
    crossing 1/2; volume scaling agrees on small depth-3 cases. The multiplicity is NOT returned: our
    reading of its rule (1 if a = l else 2) gives 2 for widths (1,1,1,1), whose K = (abc)^2 has m = 3.
    """
    widths = [_posint(f"widths[{i}]", h) for i, h in enumerate(widths)]
    if len(widths) < 3:
        raise ValueError(f"widths must list at least 3 layer widths (input, hidden..., output), got {widths}")
    r = _posint("r", r, minimum=0)
    if r > min(widths):
        raise ValueError(f"r must satisfy 0 <= r <= min(widths) = {min(widths)}, got r={r}")
    Ms = [h - r for h in widths]
    order = sorted(range(len(Ms)), key=lambda i: Ms[i])
    for k in range(2, len(Ms) + 1):
        l = k - 1
        inside = [Ms[i] for i in order[:k]]
        rest = [Ms[i] for i in order[k:]]
        sigma = sum(inside)
        out_min = min(rest) if rest else math.inf
        if max(inside) < out_min and sigma >= l * max(inside) and (not rest or sigma < l * out_min):
            break
    else:  # the full set always qualifies (no complement); kept for clarity
        raise AssertionError("no bottleneck set found")
    a = sigma - (-(-sigma // l) - 1) * l
    pairs = sum(x * y for x, y in itertools.combinations(inside, 2))
    return (sp.Rational(r * (widths[0] + widths[-1]) - r * r, 2) + sp.Rational(a * (l - a), 4 * l)
            - sp.Rational(l * (l - 1), 4) * sp.Rational(sigma, l) ** 2 + sp.Rational(pairs, 2))

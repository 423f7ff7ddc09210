"""The closed forms stated by Cullen, Estan-Ruiz, Danait, Li (arXiv 2603.01192, v3 numbering), implemented
exactly as stated so that they can be compared with ours (:mod:`slt.theory.quadratic`).

Model there: Y_hat = V (W^T x)^2, W in R^{2p x K}, V in R^{p x K}, x = [e_a; e_b] (3pK parameters).
They count one continuous symmetry per hidden unit (w -> a w, v -> v / a^2) and do not cap by the data.
"""
from __future__ import annotations

from numbers import Integral

import sympy as sp

__all__ = ["PAPER_SCALE", "cor_5_4", "cor_4_2", "lazy", "memorisation_bracket", "cor_5_4_expr"]

# the paper's experiment: p = 53, K = 1024 hidden units, train fraction 0.4 of p^2 pairs -> N = 1123
PAPER_SCALE = {"p": 53, "K": 1024, "N": 1123}


def _int(name: str, v: object, minimum: int = 1) -> int:
    if isinstance(v, bool) or not isinstance(v, (Integral, sp.Integer)) or int(v) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {v!r}")
    return int(v)


def cor_5_4_expr() -> sp.Expr:
    """Cor. 5.4 as a symbolic expression in p, K: K (3p - 1) / 2."""
    p, K = sp.symbols("p K", positive=True, integer=True)
    return K * (3 * p - 1) / 2


def cor_5_4(p: int, K: int) -> sp.Rational:
    """Cor. 5.4 (the formula their experiments test): lambda = K (3p - 1) / 2: 3p parameters per unit
    minus the one scaling symmetry."""
    p, K = _int("p", p, 2), _int("K", K)
    return sp.Rational(K * (3 * p - 1), 2)


def cor_4_2(p: int, K: int, d: int | None = None) -> sp.Rational:
    """Cor. 4.2: lambda = (1/2) min(K (p + d - 1), p d (d + 1) / 2), input dimension d (= 2p here).

    The second term is p times the dimension of quadratic forms on R^d, the ambient space of the unit
    functions for inputs spanning R^d. On N one-hot training inputs the ambient space is instead the
    functions on those N inputs (cap p N'), see derivations/quadratic_vs_paper.py."""
    p, K = _int("p", p, 2), _int("K", K)
    d = 2 * p if d is None else _int("d", d)
    return sp.Rational(min(K * (p + d - 1), p * d * (d + 1) // 2), 2)


def lazy(p: int, l: int, K: int) -> sp.Rational:
    """Lazy regime (first layer frozen, readout trained): lambda = (p / 2) min(l, K), l training samples."""
    p, l, K = _int("p", p, 2), _int("l", l), _int("K", K)
    return sp.Rational(p * min(l, K), 2)


def memorisation_bracket(p: int, K: int) -> tuple[sp.Rational, sp.Rational]:
    """Memorisation bracket as stated: (1/2) p (2p - 1) <= lambda <= (1/2) p K."""
    p, K = _int("p", p, 2), _int("K", K)
    return sp.Rational(p * (2 * p - 1), 2), sp.Rational(p * K, 2)

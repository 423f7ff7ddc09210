"""Closed forms for families of polynomial networks: exact ranks on a grid, a fitted min of linear terms,
held-out checks on larger instances.

A family fixes everything but the sizes: task, activation k, depth L, biases, tying, train fraction, loss
centring. Its instances are indexed by (p, K): p the task size (modulus, n of D_n, number of bits; fixed
for S_3/S_4) and K the width of every hidden layer. Per instance :func:`slt.theory.polynomial.generic_rank`
gives the exact generic rank (a rigorous lower bound that meets the rigorous upper bound min(data cap,
d - named symmetry orbit) on every instance reported "proved").

Fit (same shape as the quadratic net's closed form, :mod:`slt.theory.quadratic`): rank = min_t T_t with
each term T_t an exact-rational combination of at most 3 monomials of
    1, p, K, N, pK, K^2, pN, KN, p^2          (N = N' = distinct training inputs - [centred]).
Terms are found by exhaustive / seeded random minimal samples (solve on |S| instances, keep the term if
it is >= rank on EVERY grid instance and equals it on >= |S| + 2), then a greedy cover picks the fewest
terms whose min reproduces every fitted rank. The data cap and the symmetry bound are fitted the same way
(one term each), so a fitted term can be identified with a rigorous bound. The formula is then checked
on held-out, larger instances it never saw.

What is proved and what is conjectured: on each instance with ``exact`` (lower = upper bound) the rank
is PROVED; a term identified with the data cap or the symmetry bound is a PROVED upper bound wherever
that bound's own fitted formula holds (its values are computed on every instance); that the min is
attained for all sizes is CONJECTURED from the grid and the held-out checks.
"""
from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import sympy as sp

from slt.tasks_finite import get_task
from slt.theory.polynomial import generic_rank

__all__ = ["p_s", "K_s", "N_s", "BASIS", "Family", "FAMILIES", "family_instance", "grid_ranks",
           "fit_min_linear", "FittedForm", "fit_family", "parse_range", "derive_generic"]

p_s, K_s, N_s = sp.symbols("p K N", positive=True, integer=True)
BASIS: tuple[sp.Expr, ...] = (sp.Integer(1), p_s, K_s, N_s, p_s * K_s, K_s ** 2, p_s * N_s, K_s * N_s, p_s ** 2)
MAX_DEN = 12  # coefficients of the closed forms are small rationals; reject fits needing more


@dataclass(frozen=True)
class Family:
    """A family of PolyNets on one task; instances (p, K). ``extra_held_out``: fixed-size tasks (S_4) held out."""

    name: str
    task: str
    activation: int = 2
    depth: int = 1
    bias: bool = False
    tied: bool = False
    train_fraction: float = 1.0
    centred: bool = False
    fit_grid: tuple[tuple[int, int], ...] = ()
    held_out: tuple[tuple[int, int], ...] = ()
    description: str = ""
    split_seed: int = 0
    extra_held_out: tuple[tuple[str, int], ...] = ()  # (task of fixed size, K): e.g. ("s4", 10)


def _grid(ps, Ks) -> tuple[tuple[int, int], ...]:
    return tuple((p, K) for p in ps for K in Ks)


FAMILIES: dict[str, Family] = {
    "cubic": Family("cubic", "add", activation=3, fit_grid=_grid((3, 4, 5, 6, 7), (1, 2, 3, 5, 8, 12, 16, 20)),
                    held_out=((9, 4), (9, 30), (9, 40), (11, 40)),
                    description="f = A^T (U[a] + V[b])^3 on (a + b) mod p, every input"),
    "deep2": Family("deep2", "add", activation=2, depth=2, fit_grid=_grid((3, 4, 5, 6, 7), (1, 2, 3, 5, 8, 12, 16)),
                    held_out=((9, 6), (9, 20), (11, 12)),
                    description="two hidden quadratic layers of width K: A^T (W2^T (U[a] + V[b])^2)^2, (a + b) mod p"),
    "dihedral": Family("dihedral", "dihedral", activation=2,
                       fit_grid=_grid((3,), (1, 2, 3, 4, 6, 8, 12, 16, 24, 32)) + _grid((4,), (1, 2, 3, 6, 12, 24, 32))
                       + _grid((5,), (1, 2, 4, 8, 16)),
                       held_out=((6, 8), (6, 30), (7, 12)),
                       extra_held_out=(("s4", 4),),
                       description="quadratic net on composition in the dihedral group D_n (order p = 2n; D_3 = S_3), "
                                   "every input; S_4 (order 24) held out"),
    "parity": Family("parity", "parity", activation=2, fit_grid=_grid((3, 4, 5, 6), (1, 2, 3, 4, 6, 8, 12)),
                     held_out=((7, 5), (7, 20), (8, 6), (8, 40)),
                     description="quadratic net on sparse parity of n = p bits (dense +-1 inputs, 2 outputs), every input"),
}


def family_instance(fam: Family, p: int | str, K: int):
    """(PolyNet, training inputs, task) of instance (p, K); p may name a fixed-size task ("s3", "s4")."""
    task = get_task(p, None) if isinstance(p, str) else get_task(fam.task, p)
    x, _ = task.split(fam.train_fraction, fam.split_seed)
    spec = task.net((K,) * fam.depth, fam.activation, fam.bias, fam.tied)
    return spec, x, task


def _size_p(fam: Family, p: int, task) -> int:
    """The p of the formulas: the alphabet size (group order, modulus) or the number of bits."""
    return task.alphabets[0] if task.alphabets is not None else task.dense_dim


def grid_ranks(fam: Family, points, seed: int = 0, numerical: bool = True) -> list[dict]:
    """Exact generic rank and bounds at each instance (p, K) of the family."""
    rows = []
    for p, K in points:
        spec, x, task = family_instance(fam, p, K)
        g = generic_rank(spec, x, fam.centred, seed=seed, numerical=numerical)
        rows.append({"task": task.name, "p_arg": p, "p": _size_p(fam, p, task), "K": K, "N": g.n_distinct - int(fam.centred),
                     "q": spec.n_out, "d": spec.n_params, "rank": g.rank, "numerical_rank": g.numerical_rank,
                     "lambda": str(g.lam), "data_cap": g.data_cap, "symmetry_bound": g.symmetry_bound,
                     "upper": g.upper, "exact": g.exact, "wall_s": g.wall_s, "symmetries": g.symmetries})
    return rows


def _values(rows, basis) -> np.ndarray:
    f = sp.lambdify((p_s, K_s, N_s), list(basis), "numpy")
    return np.array([[float(v) for v in np.broadcast_to(f(r["p"], r["K"], r["N"]), (len(basis),))]
                     for r in rows])


def _rational(c: float) -> Fraction | None:
    fr = Fraction(c).limit_denominator(MAX_DEN)
    return fr if abs(float(fr) - c) < 1e-7 * max(1.0, abs(c)) else None


def _candidates(M: np.ndarray, y: np.ndarray, max_size: int, rng: np.random.Generator, samples: int):
    """Exact sparse terms (subset S, rational coefficients) valid as upper bounds on every instance.
    Minimal samples of |S| instances are solved in one batched call per subset S."""
    n, nb = M.shape
    seen = {}
    for size in range(1, max_size + 1):
        if math.comb(n, size) <= samples:
            combos = np.array(list(itertools.combinations(range(n), size)))
        else:
            combos = np.array([rng.choice(n, size, replace=False) for _ in range(samples)])
        for S in itertools.combinations(range(nb), size):
            sub = M[:, S]
            A = sub[combos]  # (c, size, size)
            ok = np.abs(np.linalg.det(A)) > 1e-9
            if not ok.any():
                continue
            C = np.linalg.solve(A[ok], y[combos[ok]][..., None])[..., 0]  # (c', size)
            C = np.unique(np.round(C, 9), axis=0)
            scaled = C * 27720  # lcm(1..12): a coefficient with denominator <= MAX_DEN becomes an integer
            C = C[np.all(np.abs(scaled - np.round(scaled)) < 1e-6 * np.maximum(1, np.abs(scaled)), axis=1)
                  & np.all(np.abs(C) > 1e-12, axis=1)]
            for c in C:
                fr = [_rational(v) for v in c]
                if any(v is None or v == 0 for v in fr):
                    continue
                key = (S, tuple(fr))
                if key in seen:
                    continue
                pred = sub @ np.array([float(v) for v in fr])
                if np.any(pred < y - 1e-6):
                    continue  # not an upper bound somewhere: cannot be a term of the min
                inl = np.abs(pred - y) < 1e-6
                if inl.sum() >= size + 2:
                    seen[key] = inl
    return seen


def fit_min_linear(rows: list[dict], key: str = "rank", basis=BASIS, max_terms: int = 3, max_size: int = 3,
                   seed: int = 0, samples: int = 400) -> tuple[sp.Expr | None, tuple[sp.Expr, ...], list[int]]:
    """Fit rows[i][key] = min_t T_t(p, K, N) (module docstring). Returns (formula or None, terms, indices
    of the rows the formula does not reproduce). Terms are simplest first: fewest monomials, then the
    most instances attained."""
    M = _values(rows, basis)
    y = np.array([float(r[key]) for r in rows])
    cands = _candidates(M, y, max_size, np.random.default_rng(seed), samples)
    covered = np.zeros(len(rows), dtype=bool)
    terms = []
    while not covered.all() and len(terms) < max_terms and cands:
        best = max(cands.items(), key=lambda kv: ((kv[1] & ~covered).sum(), -len(kv[0][0]),
                                                   -sum(abs(c.numerator) + c.denominator for c in kv[0][1])))
        (S, coefs), inl = best
        if not (inl & ~covered).any():
            break
        terms.append(sp.expand(sum(sp.Rational(c.numerator, c.denominator) * basis[i] for i, c in zip(S, coefs))))
        covered |= inl
    if not terms:
        return None, (), list(range(len(rows)))
    formula = terms[0] if len(terms) == 1 else sp.Min(*terms)
    bad = [i for i, r in enumerate(rows) if _eval(formula, r) != r[key]]
    return formula, tuple(terms), bad


def _eval(expr: sp.Expr, r: dict) -> int | float:
    """Exact value of a fitted formula (a term or a Min of terms, polynomials in p, K, N) at instance r."""
    terms = expr.args if isinstance(expr, sp.Min) else (expr,)
    vals = []
    for t in terms:
        v = Fraction(0)
        for (ep, eK, eN), c in sp.Poly(t, p_s, K_s, N_s).terms():
            v += Fraction(int(sp.numer(c)), int(sp.denom(c))) * r["p"] ** ep * r["K"] ** eK * r["N"] ** eN
        vals.append(v)
    m = min(vals)
    return int(m) if m.denominator == 1 else float(m)


@dataclass(frozen=True)
class FittedForm:
    """A family's fitted closed form for the generic rank (lambda = formula / 2) and its checks."""

    family: str
    formula: sp.Expr | None
    terms: tuple[sp.Expr, ...]
    term_kind: tuple[str, ...]  # per term: "data cap (proved bound)", "symmetry bound (proved bound)", "conjectured"
    cap_formula: sp.Expr | None
    symmetry_formula: sp.Expr | None
    fit_rows: tuple[dict, ...] = field(hash=False)
    fit_misses: tuple[int, ...]
    held_out: tuple[dict, ...] = field(hash=False)
    held_out_ok: bool
    all_proved: bool  # every fitted and held-out instance has lower bound = upper bound
    wall_s: float

    def to_dict(self) -> dict:
        s = lambda e: None if e is None else str(e)  # noqa: E731
        return {"family": self.family, "formula": s(self.formula), "lambda": s(None if self.formula is None else self.formula / 2),
                "terms": [str(t) for t in self.terms], "term_kind": list(self.term_kind),
                "cap_formula": s(self.cap_formula), "symmetry_formula": s(self.symmetry_formula),
                "fit": list(self.fit_rows), "fit_misses": list(self.fit_misses), "held_out": list(self.held_out),
                "held_out_ok": self.held_out_ok, "all_proved": self.all_proved, "wall_s": self.wall_s}


def fit_family(fam: Family | str, seed: int = 0, numerical: bool = True, fit_grid=None, held_out=None,
               held_numerical: bool = True) -> FittedForm:
    """Grid ranks -> fitted min of linear terms -> identification of terms with the proved bounds ->
    held-out checks at larger instances (exact rank there vs the formula's prediction).
    ``numerical`` / ``held_numerical``: also compute float64 SVD ranks (on the grid / on the held-out
    instances, where a dense SVD of a 10^4-row Jacobian dominates the run time)."""
    fam = FAMILIES[fam] if isinstance(fam, str) else fam
    t0 = time.perf_counter()
    rows = grid_ranks(fam, fam.fit_grid if fit_grid is None else fit_grid, seed, numerical)
    formula, terms, misses = fit_min_linear(rows, seed=seed)
    capf, _, cap_bad = fit_min_linear(rows, "data_cap", max_terms=1, seed=seed)
    symf, _, sym_bad = fit_min_linear(rows, "symmetry_bound", max_terms=1, seed=seed)
    capf = None if cap_bad else capf
    symf = None if sym_bad else symf
    kinds = []
    for t in terms:
        if capf is not None and sp.simplify(t - capf) == 0:
            kinds.append("data cap (proved bound)")
        elif symf is not None and sp.simplify(t - symf) == 0:
            kinds.append("symmetry bound (proved bound)")
        else:
            kinds.append("conjectured")
    held = []
    held_points = (tuple(fam.held_out) + tuple(fam.extra_held_out)) if held_out is None else held_out
    for r in grid_ranks(fam, held_points, seed, numerical and held_numerical):
        pred = None if formula is None else _eval(formula, r)
        held.append({**r, "predicted": pred, "match": pred == r["rank"]})
    return FittedForm(fam.name, formula, terms, tuple(kinds), capf, symf, tuple(rows), tuple(misses), tuple(held),
                      bool(held) and all(h["match"] for h in held), all(r["exact"] for r in rows + held),
                      time.perf_counter() - t0)


def parse_range(text: str | int | None, name: str) -> tuple[int, ...]:
    """'7..13' (inclusive), '2..12:2' (step), '3,5,7', or '7' -> sorted distinct ints; None -> ()."""
    if text is None:
        return ()
    out: set[int] = set()
    try:
        for part in str(text).split(","):
            part = part.strip()
            if ".." in part:
                lo, rest = part.split("..")
                hi, step = (rest.split(":") + ["1"])[:2]
                if int(step) < 1:
                    raise ValueError
                out.update(range(int(lo), int(hi) + 1, int(step)))
            elif part:
                out.add(int(part))
    except ValueError:
        raise ValueError(f"{name} must be like '7..13', '2..12:2', '3,5,7' or '7', got {text!r}") from None
    if not out:
        raise ValueError(f"{name} names no value: {text!r}")
    return tuple(sorted(out))


def derive_generic(task: str, activation: int = 2, depth: int = 1, p_values=(), widths=(2,),
                   train_fraction: float = 1.0, tied: bool = False, bias: bool = False, centred: bool = False,
                   seed: int = 0, fit: bool = True, numerical: bool = True) -> dict:
    """Generic rank and lambda of every instance (p, K) of an architecture on a task, and (``fit`` and
    enough instances) a closed form fitted on all but the largest p (largest K when p is fixed) and
    checked on those. Plain data (for ``slt derive generic --json``).

    task: add/sub/mul/div (p prime for mul/div: other p are skipped and listed), s3, s4, dihedral,
    parity, or a tuple file (p ignored for s3/s4/files)."""
    from slt.tasks import is_prime
    from slt.tasks_finite import TASKS

    fixed = task in ("s3", "s4") or task not in TASKS
    skipped = []
    if fixed:
        ps: tuple = (None,)
    else:
        if not p_values:
            raise ValueError(f"task {task!r} needs p values (--p)")
        ps = tuple(p for p in p_values if not (task in ("mul", "div") and not is_prime(p)))
        skipped = [p for p in p_values if p not in ps]
        if not ps:
            raise ValueError(f"p must include a prime for task {task!r}, got {tuple(p_values)}")
    if not widths:
        raise ValueError("widths must name at least one width")
    # fixed-size tasks (S_3, S_4, a tuple file) are passed by name as the instance's p
    fam = Family(f"{task}-k{activation}-L{depth}", task, activation=activation, depth=depth, bias=bias, tied=tied,
                 train_fraction=train_fraction, centred=centred, split_seed=seed)
    points = [(task if fixed else p, K) for p in ps for K in widths]
    rows = grid_ranks(fam, points, seed, numerical)
    for r in rows:
        r["width"] = r["K"]
    out = {"task": task, "activation": activation, "depth": depth, "tied": tied, "bias": bias, "centred": centred,
           "train_fraction": train_fraction, "seed": seed, "skipped_p": skipped, "instances": rows,
           "formula": None, "lambda_formula": None, "fit_on": [], "held_out": [], "held_out_ok": None}
    if fit and len(rows) >= 6:
        key = "K" if len(ps) == 1 else "p"
        top = max(r[key] for r in rows)
        fit_rows = [r for r in rows if r[key] != top]
        held = [r for r in rows if r[key] == top]
        formula, terms, misses = fit_min_linear(fit_rows, seed=seed)
        if formula is not None:
            out["formula"] = str(formula)
            out["lambda_formula"] = str(formula / 2)
            out["formula_latex"] = sp.latex(formula)
            out["fit_misses"] = [(fit_rows[i]["p"], fit_rows[i]["K"]) for i in misses]
            out["fit_on"] = [(r["p"], r["K"]) for r in fit_rows]
            out["held_out"] = [{"p": r["p"], "K": r["K"], "rank": r["rank"], "predicted": _eval(formula, r),
                                "match": _eval(formula, r) == r["rank"]} for r in held]
            out["held_out_ok"] = all(h["match"] for h in out["held_out"])
    return out

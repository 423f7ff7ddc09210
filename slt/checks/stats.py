"""Small statistics used by the checks: Spearman rank correlation, weighted linear fits, pooled SEs."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy import stats as _st


@dataclass(frozen=True)
class Correlation:
    rho: float
    pvalue: float
    n: int


def spearman(x: Sequence[float], y: Sequence[float | None], *, none_as_inf: bool = False) -> Correlation:
    """Spearman rank correlation (scipy.stats.spearmanr, two-sided p-value).

    ``None`` in y means "not reached within the run" (e.g. never grokked). With ``none_as_inf`` such points
    rank above every reached value (a censored time is later than any observed one); otherwise they are
    dropped. Ranks only need the order, so +inf is exact for this purpose.
    """
    if len(x) != len(y):
        raise ValueError(f"x and y must have equal length, got {len(x)} and {len(y)}")
    xs, ys = [], []
    for xi, yi in zip(x, y):
        if yi is None or (isinstance(yi, float) and math.isnan(yi)):
            if not none_as_inf:
                continue
            yi = math.inf
        xs.append(float(xi))
        ys.append(float(yi))
    n = len(xs)
    if n < 3 or len(set(xs)) < 2 or len(set(ys)) < 2:
        return Correlation(math.nan, math.nan, n)
    # spearmanr ranks first, so an inf value is just the largest rank
    ranks_y = _st.rankdata(ys)
    res = _st.spearmanr(xs, ranks_y)
    return Correlation(float(res.statistic), float(res.pvalue), n)


@dataclass(frozen=True)
class LinearFit:
    slope: float
    slope_se: float
    intercept: float
    intercept_se: float
    n: int


def linear_fit(x: Sequence[float], y: Sequence[float], se: Sequence[float] | None = None) -> LinearFit:
    """Least-squares line y = slope x + intercept, weighted by 1/se^2 when SEs are given.

    Parameter SEs come from the weighted normal equations, scaled by the reduced chi^2 when it exceeds
    one (so scatter beyond the quoted SEs widens them instead of being ignored).
    """
    X = np.asarray(x, dtype=float)
    Y = np.asarray(y, dtype=float)
    n = X.size
    if n < 2:
        return LinearFit(math.nan, math.nan, math.nan, math.nan, n)
    w = np.ones(n) if se is None else 1.0 / np.maximum(np.asarray(se, dtype=float), 1e-12) ** 2
    D = np.stack([X, np.ones(n)], 1)
    cov = np.linalg.pinv(D.T @ (w[:, None] * D))
    beta = cov @ (D.T @ (w * Y))
    if n > 2:
        chi2 = float(np.sum(w * (Y - D @ beta) ** 2) / (n - 2))
        cov = cov * (max(chi2, 1.0) if se is not None else chi2)
    else:
        cov = cov * (1.0 if se is not None else math.nan)
    return LinearFit(float(beta[0]), float(math.sqrt(cov[0, 0])), float(beta[1]), float(math.sqrt(cov[1, 1])), n)


def mean_se(values: Sequence[float]) -> tuple[float, float]:
    """Mean and its standard error (ddof = 1) of independent values; SE nan for fewer than two."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1) / math.sqrt(v.size)) if v.size >= 2 else math.nan

"""When does the LLC drop, relative to the grokking step?

Definition used throughout (issue 5, claim 3): the **LLC-drop step** of a trajectory lambda(t_i) is the
first time after the plateau where lambda crosses the midpoint between its plateau value
(the maximum over the trajectory) and its final value,

    lambda_mid = (max_i lambda(t_i) + lambda(t_last)) / 2,

located by linear interpolation between the two checkpoints that bracket the crossing. A trajectory whose
drop max - final is not significant (smaller than ``k`` standard errors of the difference, or smaller than
``min_rel_drop`` of the plateau when no SE is given) has no drop step (None): the midpoint would sit in
the noise. The **lag** is grokking step - drop step, per seed; positive means the LLC drops first.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

MIN_REL_DROP = 0.05  # a fall of less than 5% of the plateau is not called a drop when no SE is given


@dataclass(frozen=True)
class Drop:
    step: float  # interpolated crossing step
    plateau: float  # max of the trajectory
    plateau_step: float
    final: float
    midpoint: float


def llc_drop_step(
    steps: Sequence[float],
    llc: Sequence[float],
    se: Sequence[float] | None = None,
    *,
    k: float = 3.0,
    min_rel_drop: float = MIN_REL_DROP,
) -> Drop | None:
    """The LLC-drop step of one trajectory (definition in the module docstring), or None if no drop."""
    t = np.asarray(steps, dtype=float)
    y = np.asarray(llc, dtype=float)
    if t.ndim != 1 or t.shape != y.shape or t.size < 2:
        raise ValueError(f"steps and llc must be 1-d of equal length >= 2, got {t.shape} and {y.shape}")
    if np.any(np.diff(t) <= 0):
        raise ValueError("steps must be strictly increasing")
    if not np.all(np.isfinite(y)):
        return None
    i_max = int(np.argmax(y))
    plateau, final = float(y[i_max]), float(y[-1])
    drop = plateau - final
    if se is not None:
        s = np.asarray(se, dtype=float)
        noise = math.hypot(float(s[i_max]), float(s[-1]))
        if not drop > k * noise:
            return None
    if not drop > min_rel_drop * abs(plateau):
        return None
    mid = 0.5 * (plateau + final)
    for j in range(i_max, t.size - 1):
        if y[j + 1] <= mid:
            frac = (y[j] - mid) / (y[j] - y[j + 1])  # y[j] > mid >= y[j+1] on the first crossing
            return Drop(float(t[j] + frac * (t[j + 1] - t[j])), plateau, float(t[i_max]), final, mid)
    return None  # unreachable: y[-1] = final < mid


@dataclass(frozen=True)
class Lag:
    """Per-seed lag = grokking step - LLC-drop step, with its mean and standard error across seeds."""

    lags: tuple[float, ...]  # seeds where both steps exist
    mean: float
    se: float  # std / sqrt(n) (ddof = 1); nan for n < 2
    n: int
    n_seeds: int


def lag_stats(grok_steps: Sequence[float | None], drop_steps: Sequence[float | None]) -> Lag:
    """Lag across seeds, using only seeds where both the grokking step and the drop step exist."""
    if len(grok_steps) != len(drop_steps):
        raise ValueError("grok_steps and drop_steps must have one entry per seed")
    lags = tuple(float(g) - float(d) for g, d in zip(grok_steps, drop_steps) if g is not None and d is not None)
    n = len(lags)
    mean = float(np.mean(lags)) if n else math.nan
    se = float(np.std(lags, ddof=1) / math.sqrt(n)) if n >= 2 else math.nan
    return Lag(lags, mean, se, n, len(grok_steps))

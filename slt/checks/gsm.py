"""Grokking severity measure (Cullen et al., arXiv 2603.01192, sec. 5):

    GSM = 1{acc_val(T) >= 0.95} / T * sum_{t=1}^{T} |acc_train(t) - acc_val(t)|

i.e. the time-average of the train/validation accuracy gap, counted only for runs that generalise.
Our curves are logged on a (log-spaced) schedule, not every step, so the sum is taken as the integral
(1/T) int_0^T |gap(t)| dt by the trapezoid rule over the logged steps (exact for a piecewise-linear gap;
the paper's per-step sum is the same quantity sampled at every step).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

GSM_THRESHOLD = 0.95


def gsm(steps: Sequence[float], train_acc: Sequence[float], test_acc: Sequence[float],
        threshold: float = GSM_THRESHOLD) -> float:
    """GSM of one run from its logged curves; 0 when the final test accuracy is below ``threshold``."""
    t = np.asarray(steps, dtype=float)
    tr = np.asarray(train_acc, dtype=float)
    te = np.asarray(test_acc, dtype=float)
    if not (t.shape == tr.shape == te.shape) or t.ndim != 1 or t.size < 2:
        raise ValueError(f"steps, train_acc, test_acc must be 1-d of equal length >= 2, got "
                         f"{t.shape}, {tr.shape}, {te.shape}")
    if np.any(np.diff(t) <= 0):
        raise ValueError("steps must be strictly increasing")
    if te[-1] < threshold:
        return 0.0
    gap = np.abs(tr - te)
    T = t[-1]
    if t[0] > 0:  # the gap before the first log is unknown; hold the first value (accuracies start equal-ish)
        t = np.concatenate([[0.0], t])
        gap = np.concatenate([[gap[0]], gap])
    return float(np.trapezoid(gap, t) / T) if hasattr(np, "trapezoid") else float(np.trapz(gap, t) / T)

"""Verdict rules: does an estimate agree with a theoretical prediction?

Every rule returns a :class:`Verdict` carrying the numbers it was decided on, so a report can always show
*why*. The rules (stated once here, printed in every report):

* **Point prediction** (an estimate with a standard error against an exact value; :func:`compare_value`):
  with z = (estimate - theory) / SE and k = 3,
  ``inconclusive`` if the estimate or SE is not finite, SE <= 0 (a single chain/seed), or the sampler's
  diagnostics failed; otherwise ``disagree`` if |z| > k; otherwise ``inconclusive`` if k SE exceeds
  ``REL_BAND_MAX`` x |theory| (the agreement band is too wide to tell); otherwise ``agree``.
  The relative error (estimate - theory) / |theory| is reported beside z in every case.
* **Ordering prediction** (a difference predicted to be positive; :func:`compare_sign`):
  z = mean / SE; ``agree`` if z > k, ``disagree`` if z < -k, ``inconclusive`` otherwise.
* **Monotone trend** (a rank correlation predicted to have a sign; :func:`compare_correlation`):
  ``agree`` if the Spearman rho has the predicted sign with p < ALPHA, ``disagree`` if it has the
  opposite sign with p < ALPHA, ``inconclusive`` otherwise (or with fewer than 4 points).

The SE is the standard error across independent SGLD chains or training seeds (Lau et al. 2025,
arXiv 2308.12108, report LLC estimates the same way).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

AGREE, DISAGREE, INCONCLUSIVE = "agree", "disagree", "inconclusive"
STATUSES = (AGREE, DISAGREE, INCONCLUSIVE)

K_SE = 3.0  # agreement band in standard errors (the project's statistical tolerance)
# An agreement band wider than +-60% of the predicted value cannot separate the formulas we compare
# (e.g. K(3p-1)/2 vs K(3p-2)/2 differ by less; the data cap can halve a value): call it inconclusive.
REL_BAND_MAX = 0.6
ALPHA = 0.05  # significance level for rank correlations
MIN_POINTS_CORR = 4  # Spearman with fewer points cannot reach p < 0.05 (n=4 best case p ~ 0.083 two-sided)


@dataclass(frozen=True)
class Verdict:
    """One claim, its outcome, and every number the outcome was decided on."""

    claim: str  # short id, e.g. "closed_form/p5-K3-untied"
    statement: str  # the prediction in words
    status: str  # agree | disagree | inconclusive
    estimate: float  # the measured quantity (LLC, lag, rho, ...)
    se: float  # its standard error (nan when not applicable)
    theory: float  # the predicted value (nan for sign/trend predictions)
    z: float  # standardised deviation used by the rule (nan when not applicable)
    rel_error: float  # (estimate - theory) / |theory| (nan when not applicable)
    rule: str  # the rule in words, with its thresholds
    reason: str  # why this status (always filled)
    details: dict = field(default_factory=dict)  # extra numbers (p-value, n, per-seed values, ...)

    def to_dict(self) -> dict:
        return _jsonable(asdict(self))


def _finite(x: float | None) -> bool:
    return x is not None and isinstance(x, (int, float)) and math.isfinite(x)


def _jsonable(obj):
    """Replace non-finite floats by None so the dict is strict JSON."""
    from slt.runio import json_safe

    return json_safe(obj)


def relative_error(estimate: float, theory: float) -> float:
    """(estimate - theory) / |theory|; nan when theory is 0 or either value is not finite."""
    if not (_finite(estimate) and _finite(theory)) or theory == 0:
        return math.nan
    return (estimate - theory) / abs(theory)


def compare_value(
    claim: str,
    statement: str,
    estimate: float,
    se: float,
    theory: float,
    *,
    diagnostics_ok: bool = True,
    diagnostics_note: str = "",
    k: float = K_SE,
    rel_band_max: float = REL_BAND_MAX,
    details: dict | None = None,
) -> Verdict:
    """Point prediction: |estimate - theory| <= k SE agrees (see the module docstring for the full rule)."""
    rule = (f"agree if |est - theory| <= {k:g} SE; disagree if > {k:g} SE; inconclusive if SE missing, "
            f"diagnostics fail, or {k:g} SE > {rel_band_max:.0%} of |theory|")
    rel = relative_error(estimate, theory)
    det = dict(details or {})
    if not (_finite(estimate) and _finite(se) and _finite(theory)):
        return Verdict(claim, statement, INCONCLUSIVE, _f(estimate), _f(se), _f(theory), math.nan, rel, rule,
                       "estimate, SE or theory value is missing or not finite", det)
    if se <= 0:
        return Verdict(claim, statement, INCONCLUSIVE, estimate, se, theory, math.nan, rel, rule,
                       "no standard error (needs >= 2 independent chains or seeds)", det)
    z = (estimate - theory) / se
    if not diagnostics_ok:
        # what the numbers alone would say, so a reader sees the size of the gap the diagnostics leave open
        det["if_diagnostics_ignored"] = compare_value(claim, statement, estimate, se, theory, k=k,
                                                      rel_band_max=rel_band_max).status
        return Verdict(claim, statement, INCONCLUSIVE, estimate, se, theory, z, rel, rule,
                       f"diagnostics failed: {diagnostics_note or 'see details'}", det)
    if abs(z) > k:
        side = "above" if z > 0 else "below"
        return Verdict(claim, statement, DISAGREE, estimate, se, theory, z, rel, rule,
                       f"estimate is {abs(z):.1f} SE {side} theory (relative error {rel:+.1%})", det)
    if theory != 0 and k * se > rel_band_max * abs(theory):
        return Verdict(claim, statement, INCONCLUSIVE, estimate, se, theory, z, rel, rule,
                       f"SE too large to tell: {k:g} SE = {k * se / abs(theory):.0%} of theory", det)
    return Verdict(claim, statement, AGREE, estimate, se, theory, z, rel, rule,
                   f"within {abs(z):.1f} SE (relative error {rel:+.1%})", det)


def compare_sign(
    claim: str,
    statement: str,
    mean: float,
    se: float,
    *,
    k: float = K_SE,
    diagnostics_ok: bool = True,
    diagnostics_note: str = "",
    details: dict | None = None,
    min_effect: float = 0.0,
) -> Verdict:
    """Ordering prediction "mean > min_effect": agree if mean - k SE > min_effect, disagree if
    mean + k SE < min_effect, else inconclusive (also inconclusive when the sampler diagnostics behind the
    values failed). min_effect = 0: agree if z > k, disagree if z < -k. A positive min_effect is the
    smallest effect that counts (e.g. a relative LLC fall the estimator's step-size bias cannot produce)."""
    if min_effect:
        rule = (f"agree if mean - {k:g} SE > {min_effect:g}; disagree if mean + {k:g} SE < {min_effect:g} "
                f"(smaller than the material effect, or opposite); inconclusive otherwise or if sampler "
                f"diagnostics fail")
    else:
        rule = (f"agree if mean > {k:g} SE; disagree if mean < -{k:g} SE; inconclusive otherwise or if sampler "
                f"diagnostics fail")
    det = dict(details or {})
    if not (_finite(mean) and _finite(se)) or se <= 0:
        return Verdict(claim, statement, INCONCLUSIVE, _f(mean), _f(se), math.nan, math.nan, math.nan, rule,
                       "too few independent values for a standard error", det)
    z = mean / se
    if not diagnostics_ok:
        det["if_diagnostics_ignored"] = compare_sign(claim, statement, mean, se, k=k, min_effect=min_effect).status
        return Verdict(claim, statement, INCONCLUSIVE, mean, se, math.nan, z, math.nan, rule,
                       f"diagnostics failed: {diagnostics_note or 'see details'}", det)
    if min_effect:
        lo, hi = mean - k * se, mean + k * se
        if lo > min_effect:
            status, reason = AGREE, f"mean - {k:g} SE = {lo:.3g} exceeds the material effect {min_effect:g}"
        elif hi < min_effect:
            status, reason = DISAGREE, (f"mean + {k:g} SE = {hi:.3g} is below the material effect {min_effect:g}: "
                                        "no material effect in the predicted direction")
        else:
            status, reason = INCONCLUSIVE, (f"[{lo:.3g}, {hi:.3g}] (mean +- {k:g} SE) contains the material effect "
                                            f"{min_effect:g}")
        return Verdict(claim, statement, status, mean, se, math.nan, z, math.nan, rule, reason, det)
    if z > k:
        status, reason = AGREE, f"difference is {z:.1f} SE above zero"
    elif z < -k:
        status, reason = DISAGREE, f"difference is {-z:.1f} SE below zero: the opposite order"
    else:
        status, reason = INCONCLUSIVE, f"difference is within {k:g} SE of zero (z = {z:+.1f})"
    return Verdict(claim, statement, status, mean, se, math.nan, z, math.nan, rule, reason, det)


def compare_correlation(
    claim: str,
    statement: str,
    rho: float,
    pvalue: float,
    n: int,
    predicted_sign: int,
    *,
    alpha: float = ALPHA,
    diagnostics_ok: bool = True,
    diagnostics_note: str = "",
    details: dict | None = None,
) -> Verdict:
    """Monotone trend: Spearman rho of the predicted sign with p < alpha agrees; opposite sign disagrees
    (inconclusive when the sampler diagnostics behind the values failed)."""
    if predicted_sign not in (-1, 1):
        raise ValueError(f"predicted_sign must be -1 or +1, got {predicted_sign!r}")
    rule = (f"agree if Spearman rho has sign {predicted_sign:+d} with p < {alpha:g}; disagree if the "
            f"opposite sign with p < {alpha:g}; inconclusive otherwise (or n < {MIN_POINTS_CORR})")
    det = dict(details or {}, pvalue=_f(pvalue), n=int(n))
    if n < MIN_POINTS_CORR or not (_finite(rho) and _finite(pvalue)):
        return Verdict(claim, statement, INCONCLUSIVE, _f(rho), math.nan, math.nan, math.nan, math.nan, rule,
                       f"too few usable points (n = {n}) or an undefined correlation", det)
    if not diagnostics_ok:
        det["if_diagnostics_ignored"] = compare_correlation(claim, statement, rho, pvalue, n, predicted_sign,
                                                            alpha=alpha).status
        return Verdict(claim, statement, INCONCLUSIVE, rho, math.nan, math.nan, math.nan, math.nan, rule,
                       f"diagnostics failed: {diagnostics_note or 'see details'} (rho = {rho:+.2f}, p = {pvalue:.3g})",
                       det)
    if pvalue < alpha and rho * predicted_sign > 0:
        status, reason = AGREE, f"rho = {rho:+.2f}, p = {pvalue:.3g} (n = {n})"
    elif pvalue < alpha:
        status, reason = DISAGREE, f"rho = {rho:+.2f} has the opposite sign, p = {pvalue:.3g} (n = {n})"
    else:
        status, reason = INCONCLUSIVE, f"rho = {rho:+.2f} not significant, p = {pvalue:.3g} (n = {n})"
    return Verdict(claim, statement, status, rho, math.nan, math.nan, math.nan, math.nan, rule, reason, det)


def _f(x) -> float:
    return float(x) if _finite(x) else math.nan


def compare_interval(
    claim: str,
    statement: str,
    estimate: float,
    se: float,
    lo: float,
    hi: float,
    *,
    k: float = K_SE,
    diagnostics_ok: bool = True,
    diagnostics_note: str = "",
    details: dict | None = None,
) -> Verdict:
    """Interval prediction lo <= lambda <= hi: agree if the estimate is within k SE of [lo, hi], else disagree
    (inconclusive without an SE or when the sampler diagnostics failed).

    z is the distance to the nearest end in SEs (0 inside); the relative error is taken to the nearest end.
    """
    rule = f"agree if lo - {k:g} SE <= est <= hi + {k:g} SE; disagree otherwise; inconclusive without SE"
    det = dict(details or {}, lo=_f(lo), hi=_f(hi))
    nearest = lo if (_finite(estimate) and estimate < lo) else hi if (_finite(estimate) and estimate > hi) else estimate
    rel = relative_error(estimate, nearest) if nearest is not estimate else 0.0
    mid = 0.5 * (lo + hi)
    if not (_finite(estimate) and _finite(se)) or se <= 0:
        return Verdict(claim, statement, INCONCLUSIVE, _f(estimate), _f(se), mid, math.nan, rel, rule,
                       "no standard error", det)
    z = (estimate - nearest) / se
    if not diagnostics_ok:
        det["if_diagnostics_ignored"] = compare_interval(claim, statement, estimate, se, lo, hi, k=k).status
        return Verdict(claim, statement, INCONCLUSIVE, estimate, se, mid, z, rel, rule,
                       f"diagnostics failed: {diagnostics_note or 'see details'}", det)
    if abs(z) > k:
        side = "above the upper" if z > 0 else "below the lower"
        return Verdict(claim, statement, DISAGREE, estimate, se, mid, z, rel, rule,
                       f"estimate is {abs(z):.1f} SE {side} end ({rel:+.1%} from it)", det)
    return Verdict(claim, statement, AGREE, estimate, se, mid, z, rel, rule,
                   f"inside the bracket [{lo:.4g}, {hi:.4g}]" if z == 0
                   else f"within {abs(z):.1f} SE of the bracket [{lo:.4g}, {hi:.4g}]", det)

"""When does the test-accuracy jump happen?  A fitted, censored power law for the jump step (issue 14).

Measurement. Accuracy is only evaluated at discrete steps, so a jump is an *interval*: the jump step T at
threshold q lies in (s_prev, s_hit], s_hit the first evaluated step with accuracy >= q and s_prev the
evaluation before it (:func:`jump_interval`). A run that never reaches q is right-censored at its last step:
T > s_last. Neither kind is dropped.

Law. ``log T = beta . x + sigma * eps``, eps ~ N(0, 1), with x = (1, log lr, log wd, log init_scale,
log train_fraction): a log-normal accelerated-failure-time model (Kalbfleisch & Prentice, *The Statistical
Analysis of Failure Time Data*, 2nd ed., sec. 2.2.3 and 3.4), fitted by maximum likelihood with interval- and
right-censored observations (:func:`fit_censored_lognormal`). The exponents beta are the separate lr / wd /
init-scale / train-fraction dependences; the derivation in ``derivations/grokking_time.py`` says which values
each optimiser predicts. The fitted constants live in ``slt/configs/timing_law.json``, written by
``experiments/timing_law/run.py`` (never typed by hand), and :func:`predict_jump_step` reads them.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Sequence

import numpy as np

FEATURES = ("const", "log_lr", "log_wd", "log_init_scale", "log_train_fraction")


def jump_interval(steps: Sequence[int], values: Sequence[float], threshold: float) -> tuple[int, int | None]:
    """The interval (lo, hi] holding the first step at which ``values`` reaches ``threshold``.

    ``hi`` is the first evaluated step with value >= threshold and ``lo`` the evaluated step before it
    (``lo = hi = 0`` when the threshold is met at step 0). Never reached: ``(last step, None)``, i.e. the
    jump is right-censored at the last evaluated step."""
    if len(steps) != len(values) or not len(steps):
        raise ValueError(f"steps and values must be non-empty and of equal length, got {len(steps)} and {len(values)}")
    prev = steps[0]
    for s, v in zip(steps, values):
        if v >= threshold:
            return (prev if s != steps[0] else s), s
        prev = s
    return steps[-1], None


# ---------------------------------------------------------------------------------------------- fitting

def _log_interval_prob(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """log(Phi(b) - Phi(a)) for a < b, accurate in both tails (a may be -inf, b may be +inf)."""
    from scipy.special import log_ndtr

    # work in the lower tail: if the interval sits above 0, reflect it
    flip = a > 0
    lo = np.where(flip, -b, a)
    hi = np.where(flip, -a, b)
    lb, la = log_ndtr(hi), log_ndtr(lo)
    return lb + np.log1p(-np.exp(np.minimum(la - lb, -1e-300)))


def censored_loglik(beta: np.ndarray, log_sigma: float, X: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Log-likelihood of the log-normal AFT model log T = X beta + sigma eps with T in (lo, hi].

    ``lo``/``hi`` are steps; ``hi = inf`` is right-censoring (T > lo), ``lo = 0`` left-censoring (T <= hi),
    ``lo == hi`` an exactly observed T (density term)."""
    mu = X @ beta
    s = math.exp(log_sigma)
    exact = lo == hi
    with np.errstate(divide="ignore"):
        zl = (np.log(lo) - mu) / s
        zh = (np.log(hi) - mu) / s
    ll = np.zeros_like(mu)
    if exact.any():
        z = zl[exact]
        ll[exact] = -0.5 * z * z - 0.5 * math.log(2 * math.pi) - log_sigma - np.log(lo[exact])
    iv = ~exact
    ll[iv] = _log_interval_prob(zl[iv], zh[iv])
    return float(ll.sum())


@dataclass(frozen=True)
class CensoredFit:
    """Maximum-likelihood fit of :func:`censored_loglik`: coefficients, sigma, log-likelihood, counts."""

    names: tuple[str, ...]
    beta: tuple[float, ...]
    sigma: float
    loglik: float
    n: int
    n_censored: int

    def mu(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, float) @ np.asarray(self.beta)


def fit_censored_lognormal(X: np.ndarray, lo: Sequence[float], hi: Sequence[float | None],
                           names: Sequence[str] | None = None, fixed: dict[int, float] | None = None) -> CensoredFit:
    """ML fit of the interval/right-censored log-normal regression (Kalbfleisch & Prentice sec. 3.4).

    ``X`` (n, k) design matrix; ``lo``/``hi`` the jump intervals of :func:`jump_interval` (``hi`` None = not
    reached). ``fixed`` pins coefficients (index -> value), e.g. an exponent of -1, for likelihood-ratio tests.
    Started from least squares on interval midpoints; minimised by BFGS on (free beta, log sigma)."""
    from scipy.optimize import minimize

    X = np.asarray(X, float)
    n, k = X.shape
    lo_a = np.asarray([float(v) for v in lo])
    hi_a = np.asarray([math.inf if v is None else float(v) for v in hi])
    if len(lo_a) != n or len(hi_a) != n:
        raise ValueError(f"lo and hi must have one entry per row of X ({n}), got {len(lo_a)} and {len(hi_a)}")
    if np.any(lo_a < 0) or np.any(hi_a < lo_a):
        raise ValueError("intervals must satisfy 0 <= lo <= hi")
    fixed = dict(fixed or {})
    free = [j for j in range(k) if j not in fixed]
    mid = np.where(np.isfinite(hi_a), np.sqrt(np.maximum(lo_a, 1.0) * hi_a), lo_a * 1.5)
    y = np.log(np.maximum(mid, 1.0))
    off = sum(X[:, j] * v for j, v in fixed.items()) if fixed else np.zeros(n)
    b0 = np.linalg.lstsq(X[:, free], y - off, rcond=None)[0] if free else np.zeros(0)
    s0 = math.log(max(float(np.std(y - off - X[:, free] @ b0)), 0.05))

    def full(z):
        beta = np.zeros(k)
        beta[free] = z[:-1]
        for j, v in fixed.items():
            beta[j] = v
        return beta

    def nll(z):
        return -censored_loglik(full(z), z[-1], X, lo_a, hi_a)

    res = minimize(nll, np.r_[b0, s0], method="BFGS", options={"gtol": 1e-7, "maxiter": 2000})
    z = res.x
    names = tuple(names) if names is not None else tuple(f"x{j}" for j in range(k))
    return CensoredFit(names=names, beta=tuple(float(v) for v in full(z)), sigma=float(math.exp(z[-1])),
                       loglik=float(-res.fun), n=n, n_censored=int(np.sum(~np.isfinite(hi_a))))


def fit_censored_nonlinear(mu_fn, theta0: Sequence[float], lo: Sequence[float], hi: Sequence[float | None],
                           log_sigma0: float = math.log(0.2)) -> tuple[np.ndarray, float, float]:
    """The same censored log-normal likelihood with a nonlinear median: log T_i = mu_fn(theta)[i] + sigma eps.

    Used for the derived laws (e.g. AdamW's floor law of derivations/grokking_time.py); Nelder-Mead then BFGS from
    ``theta0``. Returns (theta, sigma, log-likelihood); a theta where mu_fn is not finite has likelihood -inf."""
    from scipy.optimize import minimize

    lo_a = np.asarray([float(v) for v in lo])
    hi_a = np.asarray([math.inf if v is None else float(v) for v in hi])
    n = len(lo_a)
    eye = np.eye(n)

    def nll(z):
        mu = np.asarray(mu_fn(z[:-1]), float)
        if mu.shape != (n,) or not np.all(np.isfinite(mu)):
            return 1e12
        return -censored_loglik(mu, z[-1], eye, lo_a, hi_a)  # X = I: beta is the vector of medians

    z0 = np.r_[np.asarray(theta0, float), log_sigma0]
    r = minimize(nll, z0, method="Nelder-Mead", options={"maxiter": 20000, "xatol": 1e-8, "fatol": 1e-10})
    r2 = minimize(nll, r.x, method="BFGS")
    best = r2 if r2.fun < r.fun else r
    return best.x[:-1], float(math.exp(best.x[-1])), float(-best.fun)


def design_row(lr: float, weight_decay: float, init_scale: float, train_fraction: float) -> list[float]:
    """Row of the design matrix for :data:`FEATURES`."""
    return [1.0, math.log(lr), math.log(weight_decay), math.log(init_scale), math.log(train_fraction)]


# ---------------------------------------------------------------------------------------------- the law

LAW_FILE = "timing_law.json"
# fields of TrainConfig that the law does not model: they must equal the fitted setting exactly
_FIXED_FIELDS = ("p", "op", "width", "tied", "batch_size", "loss", "betas", "momentum", "data_seed", "dtype")
_RANGE_FIELDS = {"lr": "lr", "weight_decay": "weight_decay", "init_scale": "init_scale",
                 "train_fraction": "train_fraction"}


@dataclass(frozen=True)
class JumpPrediction:
    """Predicted jump step (test accuracy >= ``threshold``) of a config under the fitted law.

    ``step`` is the median exp(mu); ``low``/``high`` the central ``level`` prediction interval for one new seed
    (seed-to-seed and cell-to-cell scatter sigma plus the fit's own uncertainty); ``memorisation_step`` the
    law's median memorisation step (train accuracy 0.99) when fitted; ``outside`` names the config fields
    outside the fitted domain (empty unless ``strict=False``)."""

    step: float
    low: float
    high: float
    level: float
    threshold: float
    optimizer: str
    exponents: dict[str, float]
    sigma: float
    memorisation_step: float | None = None
    outside: tuple[str, ...] = ()
    source: str = ""

    def __str__(self) -> str:
        mem = f", memorisation ~{self.memorisation_step:,.0f}" if self.memorisation_step else ""
        warn = f" [EXTRAPOLATED: {', '.join(self.outside)}]" if self.outside else ""
        return (f"predicted test-accuracy jump (>= {self.threshold:g}) at step ~{self.step:,.0f} "
                f"({self.level:.0%} interval {self.low:,.0f}-{self.high:,.0f}){mem}{warn}")


@lru_cache(maxsize=4)
def _load_law(path: str | None) -> dict:
    if path is None:
        text = resources.files("slt").joinpath("configs", LAW_FILE).read_text()
    else:
        with open(path) as fh:
            text = fh.read()
    return json.loads(text)


def load_law(path: str | None = None) -> dict:
    """The fitted law (a dict as written by experiments/timing_law/run.py); default: the shipped package data."""
    return _load_law(None if path is None else str(path))


def predict_jump_step(config, threshold: float | None = None, level: float = 0.9, strict: bool = True,
                      law: dict | None = None) -> JumpPrediction:
    """Predict the step of the test-accuracy jump of ``config`` (a :class:`slt.training.TrainConfig`).

    Formula: T = exp(beta . x) with x = (1, ln lr, ln wd, ln init_scale, ln train_fraction) and the beta of
    ``config.optimizer`` and the threshold (default: ``config.grok_threshold``, which must be one of the
    fitted thresholds), fitted by :func:`fit_censored_lognormal` on the grid of experiments/timing_law
    (see its RESULTS.md for the held-out error). Interval: exp(mu +- z_level sqrt(sigma^2 + x' C x)), C the
    bootstrap covariance of beta.

    Raises ValueError naming the parameter and the fitted range when the config lies outside the law's domain
    (an optimiser or threshold not fitted, lr / weight_decay / init_scale / train_fraction outside the fitted
    ranges, or p, width, batch size, loss ... different from the fitted setting); ``strict=False`` predicts
    anyway and lists the offending fields in ``outside``."""
    from scipy.stats import norm

    from slt.training.config import TrainConfig

    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    law = load_law() if law is None else law
    thr = config.grok_threshold if threshold is None else threshold
    laws = law["laws"]
    if config.optimizer not in laws:
        raise ValueError(f"optimizer {config.optimizer!r} is outside the timing law's domain: fitted for "
                         f"{sorted(laws)}")
    by_thr = laws[config.optimizer]
    key = f"{thr:g}"
    if key not in by_thr:
        raise ValueError(f"threshold (grok_threshold) {thr!r} is outside the timing law's domain: fitted for "
                         f"{sorted(float(k) for k in by_thr)}")
    entry = by_thr[key]
    dom = entry["domain"]
    outside = []
    for fld in _FIXED_FIELDS:
        want, got = dom["fixed"][fld], getattr(config, fld)
        got = list(got) if isinstance(got, tuple) else got
        if got != want:
            outside.append(fld)
            if strict:
                raise ValueError(f"{fld} = {got!r} is outside the timing law's domain: fitted only at {fld} = {want!r}")
    for fld in _RANGE_FIELDS:
        lo, hi = dom["ranges"][fld]
        v = getattr(config, fld)
        if not (lo * (1 - 1e-9) <= v <= hi * (1 + 1e-9)):
            outside.append(fld)
            if strict:
                raise ValueError(f"{fld} = {v:g} is outside the timing law's domain: fitted for {fld} in "
                                 f"[{lo:g}, {hi:g}] ({config.optimizer})")
    x = np.array(design_row(config.lr, config.weight_decay, config.init_scale, config.train_fraction))
    beta = np.array(entry["beta"])
    cov = np.array(entry["beta_cov"])
    mu = float(x @ beta)
    sd = math.sqrt(entry["sigma"] ** 2 + float(x @ cov @ x))
    z = float(norm.ppf(0.5 + level / 2))
    mem = None
    if "memorisation_beta" in entry:
        mem = float(math.exp(x @ np.array(entry["memorisation_beta"])))
    return JumpPrediction(step=math.exp(mu), low=math.exp(mu - z * sd), high=math.exp(mu + z * sd), level=level,
                          threshold=float(thr), optimizer=config.optimizer,
                          exponents=dict(zip(FEATURES[1:], (float(b) for b in beta[1:]))), sigma=entry["sigma"],
                          memorisation_step=mem, outside=tuple(outside), source=law.get("source", ""))

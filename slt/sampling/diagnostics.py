"""MCMC convergence diagnostics as plain array functions with named axes (in the style of ArviZ).

References: Gelman et al., Bayesian Data Analysis 3rd ed. (2013), sec. 11.4-11.5 (split R-hat, ESS);
Vehtari, Gelman, Simpson, Carpenter, Buerkner, "Rank-normalization, folding, and localization: an
improved R-hat for assessing convergence of MCMC", Bayesian Analysis 16 (2021) 667 (rank method,
bulk ESS, Geyer's initial monotone sequence).
"""
from __future__ import annotations

import numpy as np
from scipy.special import ndtri

RHAT_METHODS = ("rank", "split")
ESS_METHODS = ("bulk", "mean")


def _as_chains_draws(x, chain_axis: int, draw_axis: int) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim < 2:
        raise ValueError(f"x must have a chain axis and a draw axis (ndim >= 2), got shape {a.shape}")
    a = np.moveaxis(a, (chain_axis, draw_axis), (-2, -1))  # (..., chains, draws)
    if a.shape[-1] < 4:
        raise ValueError(f"need at least 4 draws per chain, got {a.shape[-1]}")
    return a


def _split(a: np.ndarray) -> np.ndarray:
    """Split each chain into two halves (dropping the middle draw if odd): (..., 2C, S // 2)."""
    half = a.shape[-1] // 2
    return np.concatenate([a[..., :half], a[..., -half:]], axis=-2)


def _rank_normalise(a: np.ndarray) -> np.ndarray:
    """z = Phi^-1((rank - 3/8) / (S + 1/4)) over all chains and draws jointly (Vehtari et al. eq. 14)."""
    flat = a.reshape(*a.shape[:-2], -1)
    ranks = flat.argsort(-1).argsort(-1).astype(np.float64) + 1.0  # ties are measure-zero for floats
    s = flat.shape[-1]
    return ndtri((ranks - 0.375) / (s + 0.25)).reshape(a.shape)


def _rhat_basic(a: np.ndarray) -> np.ndarray:
    """Potential scale reduction sqrt(((S-1)/S W + B/S) / W) of (..., chains, draws) (BDA3 eq. 11.4)."""
    s = a.shape[-1]
    chain_mean = a.mean(-1)
    b_over_s = chain_mean.var(-1, ddof=1)
    w = a.var(-1, ddof=1).mean(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(((s - 1) / s * w + b_over_s) / w)


def rhat(x, chain_axis: int = 0, draw_axis: int = 1, method: str = "rank") -> np.ndarray | float:
    """Split R-hat of draws ``x`` with named chain and draw axes.

    method="split": R-hat of the split chains (BDA3 sec. 11.4). method="rank" (default):
    max(bulk, tail) of rank-normalised split R-hat, the tail version on |x - median|
    (Vehtari et al. 2021, sec. 4.2). Values above ~1.01-1.1 mean the chains have not mixed.
    """
    if method not in RHAT_METHODS:
        raise ValueError(f"method must be one of {RHAT_METHODS}, got {method!r}")
    a = _split(_as_chains_draws(x, chain_axis, draw_axis))
    if method == "split":
        out = _rhat_basic(a)
    else:
        bulk = _rhat_basic(_rank_normalise(a))
        med = np.median(a.reshape(*a.shape[:-2], -1), axis=-1)[..., None, None]
        tail = _rhat_basic(_rank_normalise(np.abs(a - med)))
        out = np.maximum(bulk, tail)
    return float(out) if np.ndim(out) == 0 else out


def _autocov(a: np.ndarray) -> np.ndarray:
    """Autocovariance of each chain over lags 0..S-1 by FFT (biased estimator, divides by S)."""
    s = a.shape[-1]
    c = a - a.mean(-1, keepdims=True)
    n = 1 << (2 * s - 1).bit_length()
    f = np.fft.rfft(c, n=n, axis=-1)
    return np.fft.irfft(f * np.conj(f), n=n, axis=-1)[..., :s] / s


def _ess_basic(a: np.ndarray) -> np.ndarray:
    """ESS of (..., chains, draws) with Geyer's initial monotone sequence (BDA3 eq. 11.8-11.10)."""
    m, s = a.shape[-2], a.shape[-1]
    acov = _autocov(a)  # (..., m, s)
    w = acov[..., 0].mean(-1) * s / (s - 1)  # mean within-chain variance (unbiased)
    var_plus = w * (s - 1) / s + a.mean(-1).var(-1, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = 1.0 - (w[..., None] - acov.mean(-2)) / var_plus[..., None]  # (..., s)
    rho[..., 0] = 1.0
    # Geyer: sum rho over pairs P_k = rho_2k + rho_2k+1 while positive, made monotone non-increasing
    n_pairs = s // 2
    pairs = rho[..., : 2 * n_pairs].reshape(*rho.shape[:-1], n_pairs, 2).sum(-1)
    positive = np.cumprod(pairs > 0, axis=-1).astype(bool)
    pairs = np.where(positive, pairs, 0.0)
    pairs = np.minimum.accumulate(np.where(positive, pairs, np.inf), axis=-1)
    pairs = np.where(positive, pairs, 0.0)
    tau = -1.0 + 2.0 * pairs.sum(-1)
    tau = np.maximum(tau, 1.0 / np.log10(m * s))  # antithetic chains: cap ESS at S*M*log10(S*M)
    return m * s / tau


def ess(x, chain_axis: int = 0, draw_axis: int = 1, method: str = "bulk") -> np.ndarray | float:
    """Effective sample size of draws ``x`` with named chain and draw axes.

    method="bulk" (default): ESS of the rank-normalised split chains (Vehtari et al. 2021, sec. 4.3);
    method="mean": ESS of the split chains themselves (BDA3 sec. 11.5), the one that sets the
    standard error of a mean. ESS = M S / tau with tau = -1 + 2 sum_k P_k (Geyer 1992).
    """
    if method not in ESS_METHODS:
        raise ValueError(f"method must be one of {ESS_METHODS}, got {method!r}")
    a = _split(_as_chains_draws(x, chain_axis, draw_axis))
    if method == "bulk":
        a = _rank_normalise(a)
    out = _ess_basic(a)
    return float(out) if np.ndim(out) == 0 else out


def mala_acceptance(log_accept, draw_axis: int = -1) -> np.ndarray | float:
    """Mean MALA acceptance probability E[min(1, exp(log alpha))] along ``draw_axis``.

    Estimated from the Langevin proposals actually made (none is rejected); a value well below ~0.9
    means the step size is too large for the local curvature (Roberts & Rosenthal 1998).
    """
    a = np.minimum(1.0, np.exp(np.minimum(np.asarray(log_accept, dtype=np.float64), 0.0)))
    out = a.mean(draw_axis)
    return float(out) if np.ndim(out) == 0 else out


def fraction_below(loss_trace, init_loss: float) -> float:
    """Fraction of draws whose loss lies below L(w*): a local minimum keeps it small."""
    return float((np.asarray(loss_trace) < init_loss).mean())

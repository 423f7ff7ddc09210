"""Numerical RLCT by volume scaling: Vol{w in box : K(w) < eps} ~ c eps^lambda (-log eps)^(m-1) as eps -> 0
(Watanabe 2009, Thm 2.4 / sec. 2.4), independent of any closed form and of SGLD.

Small volumes are reached by subset simulation (Au & Beck, Prob. Eng. Mech. 16, 2001): with n points
uniform in the box, each level keeps the fraction rho with the smallest K (threshold eps_k = the rho-quantile)
and refills by a constrained random-walk Metropolis chain inside {K < eps_k}, so Vol{K < eps_k} = rho^k
(relative to the box). lambda is the least-squares slope of log Vol against log eps over the deepest levels,
after removing the known log factor (m - 1) log(-log eps) when ``m`` is given. Independent replicates are
vectorised as one batch; lam is their mean and se the standard error across replicates.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["VolumeEstimate", "volume_scaling"]


@dataclass(frozen=True)
class VolumeEstimate:
    """lam: mean slope over replicates; se: standard error; slopes: per replicate; log_eps, log_vol: the
    level curve (replicates x levels)."""

    lam: float
    se: float
    slopes: np.ndarray
    log_eps: np.ndarray
    log_vol: np.ndarray


def volume_scaling(K_fn: Callable[[np.ndarray], np.ndarray], dim: int, center=None, radius: float = 1.0,
                   n: int = 2000, levels: int = 10, rho: float = 0.2, fit_levels: int = 5, m: int = 1,
                   n_mcmc: int = 10, replicates: int = 8, seed: int = 0) -> VolumeEstimate:
    """Estimate lambda of K near ``center`` (default 0) in the box center + [-radius, radius]^dim.

    K_fn: vectorised, (..., dim) -> (...) nonnegative. Fits the last ``fit_levels`` of ``levels``.
    """
    if dim < 1 or n < 10 or levels < 2 or not 0 < rho < 1 or not 2 <= fit_levels <= levels:
        raise ValueError("need dim >= 1, n >= 10, levels >= 2, 0 < rho < 1, 2 <= fit_levels <= levels")
    if replicates < 2 or m < 1 or n_mcmc < 1 or not radius > 0:
        raise ValueError("need replicates >= 2, m >= 1, n_mcmc >= 1, radius > 0")
    rng = np.random.default_rng(seed)
    c = np.zeros(dim) if center is None else np.asarray(center, dtype=np.float64).reshape(dim)
    R = replicates
    w = c + rng.uniform(-radius, radius, size=(R, n, dim))  # (R, n, d)
    k = K_fn(w)  # (R, n)
    keep = max(1, int(round(rho * n)))
    log_eps, log_vol = [], []
    for level in range(1, levels + 1):
        order = np.argsort(k, axis=1)
        idx = order[:, :keep]
        thr = np.take_along_axis(k, order[:, keep:keep + 1], 1)[:, 0]  # (R,) the rho-quantile
        log_eps.append(np.log(thr))
        log_vol.append(level * np.log(keep / n))
        seeds_w = np.take_along_axis(w, idx[..., None], 1)  # (R, keep, d)
        seeds_k = np.take_along_axis(k, idx, 1)
        # refill: each survivor seeds n/keep chain states, moved by constrained random-walk Metropolis
        reps = -(-n // keep)
        w = np.repeat(seeds_w, reps, axis=1)[:, :n]
        k = np.repeat(seeds_k, reps, axis=1)[:, :n]
        # proposal shaped by the survivors' covariance (the sublevel set is a thin tube around the zero
        # set), scale adapted per replicate towards ~30% acceptance
        cov = np.einsum("rni,rnj->rij", seeds_w - seeds_w.mean(1, keepdims=True),
                        seeds_w - seeds_w.mean(1, keepdims=True)) / max(keep - 1, 1)
        evals, evecs = np.linalg.eigh(cov + 1e-300 * np.eye(dim))
        L = evecs * np.sqrt(np.clip(evals, 0, None))[:, None, :]  # (R, d, d): L L^T = cov
        scale = np.full((R, 1, 1), 2.38 / np.sqrt(dim))
        for _ in range(n_mcmc):
            prop = w + scale * np.einsum("rij,rnj->rni", L, rng.standard_normal(w.shape))
            inside = np.all(np.abs(prop - c) <= radius, axis=-1)
            kp = K_fn(prop)
            acc = inside & (kp < thr[:, None])
            w = np.where(acc[..., None], prop, w)
            k = np.where(acc, kp, k)
            rate = acc.mean(1)[:, None, None]
            scale = np.where(rate < 0.2, scale * 0.6, np.where(rate > 0.4, scale * 1.5, scale))
    log_eps = np.stack(log_eps, 1)  # (R, L)
    log_vol = np.broadcast_to(np.array(log_vol), log_eps.shape)
    y = log_vol[:, -fit_levels:] - (m - 1) * np.log(-log_eps[:, -fit_levels:])
    x = log_eps[:, -fit_levels:]
    xm, ym = x.mean(1, keepdims=True), y.mean(1, keepdims=True)
    slopes = ((x - xm) * (y - ym)).sum(1) / ((x - xm) ** 2).sum(1)
    return VolumeEstimate(lam=float(slopes.mean()), se=float(slopes.std(ddof=1) / np.sqrt(R)), slopes=slopes,
                          log_eps=log_eps, log_vol=np.array(log_vol))

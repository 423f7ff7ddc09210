"""Constructed solutions (basins) of the quadratic network and their learning coefficients.

* Fourier (Gromov, arXiv 2301.02679, sec. 3): unit (k, j) has frequency omega_k = 2 pi k / p and phases
  (phi1, phi2) = (2 pi j / 7, 6 pi j / 7), j = 0..6:
      u[a] = cos(omega a + phi1),  v[b] = cos(omega b + phi2),  c[q] = s cos(omega q + phi1 + phi2).
  Expanding c (u + v)^2 gives the wanted (1/2) cos(omega (q - a - b)) plus terms with phase
  alpha phi1 + beta phi2, (alpha, beta) in {(1,1), (3,1), (-1,1), (1,3), (1,-1), (2,2), (0,2), (2,0)};
  alpha + 3 beta is nonzero mod 7 for all of them, so each sums to zero over j (a 7-point design instead of
  Gromov's random phases, making the solution exact). Summing k = 1..(p-1)/2 with s = 4 / (7p):
      f(a, b)_q = delta(q = a + b mod p) - 1/p,
  an exact zero of the centred loss; one constant unit (u = 1, v = 0, c = 1/p) makes it exact for plain MSE.
  Width 7 (p - 1)/2 (+1). Needs p odd (p = 2 has no frequency besides the Nyquist one).
* Memorising / lazy: random first layer (seeded), readout = min-norm least-squares fit on the training set
  (interpolates when the features span, K >= N').
* Padding: extra units that are dead (all zero), readout-dead (c = 0, random u, v) or duplicates (a unit
  copied, the copies' readouts summing to the original).
"""
from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["fourier_width", "fourier_solution", "memorising_solution", "pad_units", "PAD_KINDS", "fourier_llc",
           "memorising_llc"]

PAD_KINDS = ("dead", "readout_dead", "duplicate")
_PHASES = 7  # the smallest M with a one-orbit design (phi1, phi2) = (2 pi j/M, 2 pi 3j/M) cancelling all 8 phases
_SLOPE = 3


def fourier_width(p: int, centred: bool = True, n_freq: int | None = None) -> int:
    """Number of units of :func:`fourier_solution`: 7 per frequency (+1 constant unit when not centred)."""
    n_freq = (p - 1) // 2 if n_freq is None else n_freq
    return _PHASES * n_freq + (0 if centred else 1)


def fourier_solution(p: int, centred: bool = True, frequencies=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact Fourier (Gromov) solution of (a + b) mod p: returns U, V (p, m), A (m, p) in float64.

    ``frequencies``: subset of 1..(p-1)/2 (default all; a strict subset does not interpolate).
    """
    if isinstance(p, bool) or not isinstance(p, int) or p < 3 or p % 2 == 0:
        raise ValueError(f"p must be an odd integer >= 3, got {p!r}")
    half = (p - 1) // 2
    freqs = list(range(1, half + 1)) if frequencies is None else [int(k) for k in frequencies]
    if not freqs or any(not 1 <= k <= half for k in freqs) or len(set(freqs)) != len(freqs):
        raise ValueError(f"frequencies must be distinct integers in [1, {half}], got {frequencies!r}")
    x = np.arange(p)
    cols_u, cols_v, rows_c = [], [], []
    for k in freqs:
        w = 2 * math.pi * k / p
        for j in range(_PHASES):
            f1 = 2 * math.pi * j / _PHASES
            f2 = 2 * math.pi * _SLOPE * j / _PHASES
            cols_u.append(np.cos(w * x + f1))
            cols_v.append(np.cos(w * x + f2))
            rows_c.append(4.0 / (_PHASES * p) * np.cos(w * x + f1 + f2))
    if not centred:
        cols_u.append(np.ones(p))
        cols_v.append(np.zeros(p))
        rows_c.append(np.full(p, 1.0 / p))
    return np.stack(cols_u, 1), np.stack(cols_v, 1), np.stack(rows_c, 0)


def memorising_solution(p: int, width: int, a, b, y, centred: bool = False, tied: bool = False,
                        seed: int = 0) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Lazy/memorising point: first layer ~ N(0, 1/(2p)) (seeded), readout = min-norm least squares on
    the training pairs (centred: fits the centred targets with centred features)."""
    if width < 1:
        raise ValueError(f"width must be >= 1, got {width}")
    rng = np.random.default_rng(seed)
    U = rng.standard_normal((p, width)) / math.sqrt(2 * p)
    V = None if tied else rng.standard_normal((p, width)) / math.sqrt(2 * p)
    a, b, y = (np.asarray(t, dtype=np.int64) for t in (a, b, y))
    phi = (U[a] + (U if tied else V)[b]) ** 2  # (N, K)
    Y = np.eye(p)[y]
    if centred:
        phi, Y = phi - phi.mean(0), Y - Y.mean(0)
    # torch's least squares: numpy's OpenBLAS threads stall under CPU contention
    A = torch.linalg.lstsq(torch.from_numpy(phi), torch.from_numpy(Y), driver="gelsd").solution.numpy()  # (K, p)
    return U, V, A


def pad_units(U, V, A, extra: int, kind: str = "dead", seed: int = 0):
    """Append ``extra`` units that leave f unchanged. kind: 'dead' (u = v = c = 0), 'readout_dead'
    (c = 0, u, v random), 'duplicate' (unit i mod m copied; the original and its copy get c/2 each)."""
    if kind not in PAD_KINDS:
        raise ValueError(f"kind must be one of {PAD_KINDS}, got {kind!r}")
    if extra < 0:
        raise ValueError(f"extra must be >= 0, got {extra}")
    U, A = np.array(U, dtype=np.float64), np.array(A, dtype=np.float64)
    V = None if V is None else np.array(V, dtype=np.float64)
    p, m = U.shape
    rng = np.random.default_rng(seed)
    for i in range(extra):
        if kind == "dead":
            u, v, c = np.zeros(p), np.zeros(p), np.zeros(A.shape[1])
        elif kind == "readout_dead":
            u, v, c = rng.standard_normal(p), rng.standard_normal(p), np.zeros(A.shape[1])
        else:
            src = i % m
            A[src] = A[src] / 2
            u, v, c = U[:, src].copy(), None if V is None else V[:, src].copy(), A[src].copy()
        U = np.concatenate([U, u[:, None]], 1)
        if V is not None:
            V = np.concatenate([V, (v if v is not None else np.zeros(p))[:, None]], 1)
        A = np.concatenate([A, c[None]], 0)
    return U, V, A


def fourier_llc(p: int, a, b, y, width: int | None = None, centred: bool = True, pad: str = "dead",
                **kwargs):
    """lambda (a :class:`slt.theory.jacobian.PointLLC`) at the Fourier solution on training inputs (a, b),
    padded to ``width`` units with ``pad`` units (K_eff = fourier_width(p, centred) < width)."""
    from slt.theory.jacobian import llc_at_point

    U, V, A = fourier_solution(p, centred)
    width = U.shape[1] if width is None else width
    if width < U.shape[1]:
        raise ValueError(f"width must be >= {U.shape[1]} (the Fourier solution's units), got {width}")
    return llc_at_point(*pad_units(U, V, A, width - U.shape[1], pad), a, b, y, centred=centred, **kwargs)


def memorising_llc(p: int, width: int, a, b, y, centred: bool = False, tied: bool = False, seed: int = 0,
                   **kwargs):
    """lambda (PointLLC) at :func:`memorising_solution` (interpolating when width >= N')."""
    from slt.theory.jacobian import llc_at_point

    U, V, A = memorising_solution(p, width, a, b, y, centred, tied, seed)
    return llc_at_point(U, V, A, a, b, y, centred=centred, **kwargs)

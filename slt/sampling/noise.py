"""The Langevin kernels' standard normal draws: torch's generator, or a counter-based source compiled into the step.

``noise="torch"`` (the default) draws with ``torch.randn`` from the run's ``torch.Generator`` (mt19937 on CPU).
On the development machine (AMD EPYC, Zen 5, one thread) that is 375-400 M draws/s, and at the paper's setting
(p 53, width 1,024: d = 162,816 parameters a chain) the draws alone were a third of an SGLD step's roofline.

``noise="counter"`` draws each step's noise as a pure function of one 64-bit key and the element's index:

    key   = one int64 drawn from the run's torch.Generator per step (so the seed still fixes every number)
    h_k   = SplitMix64(key + k * GAMMA),  k = 1, 2, ...          (Steele, Lea & Flood, OOPSLA 2014: the state of
            the k-th SplitMix64 output, then its output function; Java's SplittableRandom and the seeding of
            xoshiro use the same generator; it passes TestU01's BigCrush)
    u1    = (high bits of h_k + 1/2) 2^-b,  u2 = (low bits of h_k) 2^-b   (b = 24 for float32, 32 for float64)
    z     = sqrt(-2 ln u1) cos(2 pi u2),  z' = sqrt(-2 ln u1) sin(2 pi u2)   (Box & Muller 1958)

A leaf of n elements takes ceil(n/2) consecutive counters, the cosines filling its first half and the sines the
rest; the leaves of a position take disjoint counter ranges. Two steps' streams overlap only when their keys differ
by m GAMMA modulo 2^64 for some |m| < N, the counters a step uses (GAMMA is odd, so these are 2N - 1 of the 2^64
differences): probability 2N / 2^64 per pair of steps, 3e-14 at the paper's size with 3 chains. No two chains, steps or elements share a draw: the noise is independent across chains and steps,
as the torch source's is. The float32 tails stop at sqrt(2 ln 2^25) = 5.9 standard deviations (torch's own
CPU ``randn`` uses 24-bit uniforms too); P(|z| > 5.9) = 3.6e-9.

The source is written in torch operations and compiled by ``torch.compile`` (inductor: vectorised C++ loops,
which need a C++ compiler) together with the Langevin proposal w' = w - (eps/2) g + sqrt(eps) xi and the
localisation term at w' (:func:`langevin_step`). On the development machine, one thread, the counter draws ran at
~1.0-1.2 G/s against torch.randn's 375-400 M/s (``benchmarks/bench_llc.py`` prints both in its roofline and times
whole estimates with each source). Each new shape compiles once per process: ~2-8 s, more than a
70-step call at the paper's size takes, which is why it is not the default; it pays for itself over runs of
many calls (an LLC trajectory, a sweep). torch.compile keeps 8 shapes per function (``recompile_limit``); a
process that meets more runs the others eagerly. Without a working compiler it runs the same formula eagerly (a warning
says so; slower than ``torch.randn``), so the numbers do not depend on whether the compiler is there, up to float
rounding in log, sqrt and cos.

``SLT_NOISE=torch|counter`` in the environment sets the default for calls that do not name one.
"""
from __future__ import annotations

import functools
import math
import os
import warnings
from typing import NamedTuple

import torch

NOISE_SOURCES = ("torch", "counter")


class Local(NamedTuple):
    """The localisation part of the drift at a position, computed ahead (:func:`langevin_step`)."""

    drift: tuple[torch.Tensor, ...]  # gamma (w - w*), fresh buffers the data term may be added into
    dist_sq: torch.Tensor  # (R,) |w - w*|^2


# SplitMix64's increment (the golden ratio times 2^64) and its output function's two multipliers, as int64
_CONSTANTS = (-7046029254386353131, -4658895280553007687, -7723592293110705685)  # 0x9E3779B97F4A7C15, BF58..., 94D0...


def resolve_noise(noise: str | None) -> str:
    """The noise source to use: ``noise`` itself, or when None the environment's SLT_NOISE, else "torch"."""
    source = os.environ.get("SLT_NOISE", "torch") if noise is None else noise
    if source not in NOISE_SOURCES:
        origin = "SLT_NOISE" if noise is None else "noise"
        raise ValueError(f"{origin} must be one of {', '.join(map(repr, NOISE_SOURCES))}, got {source!r}")
    return source


def draw_key(generator: torch.Generator, device: torch.device | str = "cpu") -> torch.Tensor:
    """One uniformly random int64 (0-dim tensor on ``device``) from ``generator``: a step's counter-source key."""
    key = torch.randint(-(2**63), 2**63 - 1, (), generator=generator, dtype=torch.int64,
                        device=generator.device)
    return key.to(device)


@functools.cache
def _constants(device: torch.device) -> torch.Tensor:
    # tensors, not Python ints: inductor folds int constants into its index arithmetic, which overflows int64
    return torch.tensor(_CONSTANTS, dtype=torch.int64, device=device)


def _splitmix64(z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """SplitMix64's output function on int64 states (right shifts made logical by masking; products wrap)."""
    z = (z ^ ((z >> 30) & 0x3FFFFFFFF)) * c[1]
    z = (z ^ ((z >> 27) & 0x1FFFFFFFFF)) * c[2]
    return z ^ ((z >> 31) & 0x1FFFFFFFF)


def _normal_block(key: torch.Tensor, c: torch.Tensor, start: int, n: int, dtype: torch.dtype) -> torch.Tensor:
    """n standard normals (n,) from counters start + 1 .. start + ceil(n/2) (formula in the module docstring)."""
    half = (n + 1) // 2
    k = torch.arange(start + 1, start + half + 1, dtype=torch.int64, device=key.device)
    h = _splitmix64(key + k * c[0], c)
    if dtype == torch.float64:
        bits, mask = 32, 0xFFFFFFFF
    else:
        bits, mask = 24, 0xFFFFFF
    u1 = ((h >> (64 - bits)) & mask).to(dtype).add_(0.5).mul_(2.0 ** -bits)
    theta = (h & mask).to(dtype).mul_(2 * math.pi * 2.0 ** -bits)
    r = torch.sqrt(-2.0 * torch.log(u1))
    return torch.cat((r * torch.cos(theta), r * torch.sin(theta)))[:n]


def _counter_normals(key: torch.Tensor, c: torch.Tensor, like: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    out, start = [], 0
    for w in like:
        out.append(_normal_block(key, c, start, w.numel(), w.dtype).view(w.shape))
        start += (w.numel() + 1) // 2
    return tuple(out)


def _counter_step(key: torch.Tensor, c: torch.Tensor, position: tuple[torch.Tensor, ...],
                  drift: tuple[torch.Tensor, ...], anchor: tuple[torch.Tensor, ...], sqrt_eps: torch.Tensor,
                  half_eps: torch.Tensor, gamma: torch.Tensor):
    new, deltas, locs, dist_sq, cross = [], [], [], 0.0, 0.0
    for w, g, w0, xi in zip(position, drift, anchor, _counter_normals(key, c, position)):
        shape = (-1,) + (1,) * (w.dim() - 1)
        d = xi * sqrt_eps.view(shape) - g * half_eps.view(shape)
        w1 = w + d
        diff = (w1.view(w0.shape[0], -1, *w.shape[1:]) - w0.unsqueeze(1)).view(w.shape)  # rows copy-major
        dist_sq = dist_sq + diff.square().flatten(1).sum(1)
        cross = cross + (d * g).flatten(1).sum(1)
        locs.append(diff * gamma.view(shape))
        deltas.append(d)
        new.append(w1)
    return tuple(new), tuple(deltas), tuple(locs), dist_sq, cross


_compiled: dict[str, object] = {}


def _run(name: str, fn, *args):
    """fn(*args) through torch.compile (compiled on first use in the process, again for each new shape); the eager
    fn from then on, with one warning, when compiling fails (e.g. no C++ compiler)."""
    # static shapes: a run uses one or two row counts, and inductor's dynamic-shape build of the step kernel ran
    # 1.5-2x slower here (2 chains at the paper's size: 690-940 us a call against 410-450 us)
    compiled = _compiled.get(name)
    if compiled is None:
        compiled = _compiled[name] = torch.compile(fn, dynamic=False)
    if compiled is not fn:
        try:
            return compiled(*args)
        except Exception as exc:  # noqa: BLE001 - any compile failure: the same formula eagerly
            warnings.warn(f"slt.sampling.noise: torch.compile failed ({type(exc).__name__}: {str(exc)[:200]}); "
                          f"the counter noise source runs eagerly from now on (same formula, slower)",
                          RuntimeWarning, stacklevel=3)
            _compiled[name] = fn
    return fn(*args)


def standard_normal_like(position: tuple[torch.Tensor, ...], generator: torch.Generator, noise: str = "torch"
                         ) -> tuple[torch.Tensor, ...]:
    """Independent N(0, 1) draws shaped like ``position`` from the source ``noise`` ("torch" or "counter")."""
    if noise == "torch":
        return tuple(torch.randn(w.shape, generator=generator, dtype=w.dtype, device=w.device) for w in position)
    dev = position[0].device
    return _run("normals", _counter_normals, draw_key(generator, dev), _constants(dev), tuple(position))


def langevin_step(position: tuple[torch.Tensor, ...], drift: tuple[torch.Tensor, ...],
                  anchor: tuple[torch.Tensor, ...], eps: torch.Tensor, gamma: torch.Tensor,
                  generator: torch.Generator) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...], Local,
                                                       torch.Tensor]:
    """The counter-source Langevin move of every row, in one compiled pass per leaf:

        w' = w - (eps/2) g + sqrt(eps) xi,  delta = w' - w,
        and at w': gamma (w' - w*), |w' - w*|^2 (the localisation term of the next drift and of the potential),
        and delta . g (the old drift's half of the MALA cross term),

    -> (w', delta, Local(gamma (w' - w*), |w' - w*|^2), delta . g). eps, gamma: (R,), one value per row; the
    anchor w* has B rows for R = B * C (copy-major). What the eager kernel does in separate passes over the d
    parameters (the draws, the update, w' - w*, its scaling and two dot products) is one loop here. Inputs are
    not modified."""
    dev = position[0].device
    dtype = position[0].dtype
    eps = eps.to(dtype)
    new, deltas, locs, dist_sq, cross = _run("step", _counter_step, draw_key(generator, dev), _constants(dev),
                                             tuple(position), tuple(drift), tuple(anchor), eps.sqrt(), eps / 2,
                                             torch.as_tensor(gamma, dtype=dtype, device=dev).expand(eps.shape))
    return new, deltas, Local(locs, dist_sq), cross

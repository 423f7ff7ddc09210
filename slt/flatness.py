"""Flatness baselines to report beside the LLC: Hessian trace (Hutchinson) and SAM sharpness.

    tr H(w*)        ~ (1/S) sum_s v_s^T H v_s,   v_s Rademacher   (Hutchinson 1990; unbiased, SE across probes)
    SAM(w*; rho)    = L(w* + rho g / |g|) - L(w*),   g = grad L(w*)   (Foret et al., "Sharpness-Aware
                      Minimization", ICLR 2021, eq. 2: the first-order solution of max_{|e| <= rho} L(w* + e))

For any model the sampler accepts (:func:`slt.estimate_llc`): a generic ``nn.Module`` with a scalar
``loss_fn(model(*inputs), target)``, or a :class:`slt.models.QuadraticNet` with B copies and a per-copy
loss (B,) -- then every copy gets its own values (the loss is a sum over copies, so its Hessian is
block-diagonal and v^T H v splits by copy). Hessian-vector products are forward-over-reverse
(``torch.func.jvp`` of ``torch.func.grad``), vmapped over the S probes in one call.

These are the baselines the LLC is compared against (Lau et al., arXiv 2308.12108, sec. 6): a flat
minimum has small tr H, but tr H and SAM depend on the parametrisation (rescaling a unit changes them, not
the LLC) and see only second-order / rho-scale geometry, while the LLC counts degenerate directions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

__all__ = ["Flatness", "hessian_trace", "sam_sharpness", "flatness", "plot_llc_and_flatness"]


@dataclass(frozen=True)
class Flatness:
    """Per copy: Hessian trace (Hutchinson mean and SE over probes) and SAM sharpness at radius rho."""

    trace: tuple[float, ...]
    trace_se: tuple[float, ...]
    sam: tuple[float, ...]
    rho: float
    n_probes: int
    loss: tuple[float, ...]

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def _problem(model, loss_fn, data):
    # the sampler's own reduction of (model, loss, data) to per-copy losses over a parameter tuple
    from slt.sampling.llc import _make_problem

    return _make_problem(model, loss_fn, tuple(data))


def _per_copy(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(x.shape[0], -1).sum(-1)


def hessian_trace(model, loss_fn: Callable, data: Sequence[torch.Tensor], n_probes: int = 64,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(trace, SE) per copy of the full-data loss Hessian at the model's parameters (Hutchinson,
    Rademacher probes; SE = std over probes / sqrt(n_probes))."""
    if isinstance(n_probes, bool) or not isinstance(n_probes, int) or n_probes < 2:
        raise ValueError(f"n_probes must be an integer >= 2, got {n_probes!r}")
    pr = _problem(model, loss_fn, data)
    w = tuple(a.detach() for a in pr.anchor)
    total = lambda pos: pr.row_loss(pos, None).sum()  # noqa: E731
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    V = tuple((torch.randint(0, 2, (n_probes, *a.shape), generator=g) * 2 - 1).to(a.dtype).to(a.device) for a in w)

    def vhv(v):
        _, hv = torch.func.jvp(torch.func.grad(total), (w,), (v,))
        return sum(_per_copy(x * y) for x, y in zip(v, hv))  # (B,)

    vals = torch.func.vmap(vhv)(V)  # (S, B)
    mean = vals.mean(0)
    se = vals.std(0, unbiased=True) / math.sqrt(n_probes)
    return mean.detach().cpu().numpy(), se.detach().cpu().numpy()


def sam_sharpness(model, loss_fn: Callable, data: Sequence[torch.Tensor], rho: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """(SAM sharpness, loss) per copy: L(w + rho g/|g|) - L(w), g the full-data gradient of that copy
    (|g| over all its parameters). rho > 0. A copy with g = 0 gets L(w) - L(w) = 0 to first order; use
    the Hessian trace for exact minima."""
    if not (isinstance(rho, (int, float)) and math.isfinite(rho) and rho > 0):
        raise ValueError(f"rho must be a finite number > 0, got {rho!r}")
    pr = _problem(model, loss_fn, data)
    w = tuple(a.detach().requires_grad_(True) for a in pr.anchor)
    loss = pr.row_loss(w, None)
    grads = torch.autograd.grad(loss.sum(), w)
    norm = torch.sqrt(sum(_per_copy(gr * gr) for gr in grads)).clamp_min(1e-30)  # (B,)
    with torch.no_grad():
        pos = tuple(a + rho * gr / norm.view(-1, *([1] * (gr.dim() - 1))) for a, gr in zip(w, grads))
        up = pr.row_loss(pos, None)
    return (up - loss.detach()).cpu().numpy(), loss.detach().cpu().numpy()


def flatness(model, loss_fn: Callable, data: Sequence[torch.Tensor], n_probes: int = 64, rho: float = 0.05,
             seed: int = 0) -> Flatness:
    """Both baselines per copy (see the module docstring)."""
    tr, se = hessian_trace(model, loss_fn, data, n_probes, seed)
    sam, loss = sam_sharpness(model, loss_fn, data, rho)
    f = lambda a: tuple(float(x) for x in a)  # noqa: E731
    return Flatness(f(tr), f(se), f(sam), float(rho), int(n_probes), f(loss))


def plot_llc_and_flatness(path, steps: Sequence[float], llc: Sequence[float], llc_se: Sequence[float],
                          trace: Sequence[float], trace_se: Sequence[float], sam: Sequence[float],
                          rho: float, title: str = "", events: dict[str, float] | None = None) -> None:
    """Three panels over the training steps (log x): LLC +- SE, Hessian trace +- SE, SAM sharpness;
    optional vertical lines at named steps (e.g. memorisation, grokking)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(6, 7), sharex=True)
    for ax, y, e, lab in ((axes[0], llc, llc_se, "LLC estimate"), (axes[1], trace, trace_se, "Hessian trace (Hutchinson)"),
                          (axes[2], sam, None, f"SAM sharpness, rho={rho:g}")):
        y = np.asarray(y, dtype=float)
        ax.plot(steps, y, "o-", ms=3)
        if e is not None:
            e = np.asarray(e, dtype=float)
            ax.fill_between(steps, y - e, y + e, alpha=0.3)
        ax.set_ylabel(lab)
        for name, s in (events or {}).items():
            ax.axvline(s, ls="--", c="gray", lw=0.8)
            if ax is axes[0]:
                ax.text(s, ax.get_ylim()[1], name, fontsize=7, va="top")
    axes[-1].set_xscale("log")
    axes[-1].set_xlabel("training step")
    if title:
        axes[0].set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

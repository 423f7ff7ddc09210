"""Figures of ``slt check``. Each function takes plain numbers (lists/dicts already in the report) and a
path, draws one figure with matplotlib's Agg backend, and writes it atomically."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

_COLORS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def _save(fig, path: str | Path) -> None:
    """Atomic write with the user's umask (slt.runio.atomic_write: temp file, chmod, os.replace)."""
    from slt.runio import atomic_write

    fmt = Path(path).suffix.lstrip(".") or "png"
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight", format=fmt))
    finally:
        plt.close(fig)


def _pos(steps: Sequence[float]) -> list[float]:
    """Log axes cannot show step 0: draw it at 0.5."""
    return [s if s > 0 else 0.5 for s in steps]


def plot_trajectory(path, curves: dict, llc: dict, reference: dict[str, float], title: str = "",
                    flat: list[dict] | None = None) -> None:
    """Train/test accuracy (top) and LLC (bottom) against step, one colour per seed.

    curves: {"step": [...], "train_acc": [[per seed]...], "test_acc": [...]} (the training metrics layout);
    llc: {"step": [...], "llc": [[per seed]...], "se": [[...]...], "grok": [...], "drop": [...]};
    reference: {label: value} horizontal lines (basin values from the theory).
    """
    if flat:
        fig, (ax1, ax2, ax3) = plt.subplots(3, 1, figsize=(7.5, 9.0), sharex=True, height_ratios=(2, 3, 2))
        fx = _pos([f["step"] for f in flat])
        for c in range(len(flat[0]["trace"])):
            col = _COLORS[c % len(_COLORS)]
            ax3.plot(fx, [f["trace"][c] for f in flat], color=col, marker="s", ms=3, lw=1)
        ax3.set_yscale("log")
        ax3.set_ylabel("Hessian trace (Hutchinson)")
        ax3b = ax3.twinx()
        for c in range(len(flat[0]["sam"])):
            ax3b.plot(fx, [f["sam"][c] for f in flat], color=_COLORS[c % len(_COLORS)], ls=":", lw=1)
        ax3b.set_ylabel(f"SAM sharpness (dotted), rho {flat[0]['rho']:g}")
    else:
        fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(7.5, 6.5), sharex=True)
    n_seeds = len(curves["train_acc"][0]) if curves.get("train_acc") else 0
    xs = _pos(curves.get("step", []))
    for c in range(n_seeds):
        col = _COLORS[c % len(_COLORS)]
        ax1.plot(xs, [r[c] for r in curves["train_acc"]], color=col, ls="--", lw=1)
        ax1.plot(xs, [r[c] for r in curves["test_acc"]], color=col, lw=1.5)
    ax1.plot([], [], "k--", lw=1, label="train acc")
    ax1.plot([], [], "k-", lw=1.5, label="test acc")
    ax1.set_ylabel("accuracy")
    ax1.set_ylim(-0.02, 1.02)
    ax1.legend(loc="center left", fontsize=8)
    lx = _pos(llc["step"])
    for c in range(len(llc["llc"][0]) if llc.get("llc") else 0):
        col = _COLORS[c % len(_COLORS)]
        y = [r[c] for r in llc["llc"]]
        e = [r[c] for r in llc["se"]]
        ax2.errorbar(lx, y, yerr=[3 * v if v is not None and math.isfinite(v) else 0 for v in e], color=col,
                     marker="o", ms=3, lw=1.2, capsize=2, label=f"seed {c}")
        for key, style in (("grok", "-"), ("drop", ":")):
            s = (llc.get(key) or [None] * (c + 1))[c]
            if s is not None:
                for ax in (ax1, ax2):
                    ax.axvline(max(s, 0.5), color=col, ls=style, lw=0.8, alpha=0.7)
    for i, (label, val) in enumerate(reference.items()):
        if val is not None and math.isfinite(val):
            ax2.axhline(val, color="0.3", ls=("--", "-.", ":", (0, (5, 1)))[i % 4], lw=1, label=f"{label} = {val:.4g}")
    ax2.set_xscale("log")
    if any(v is not None and math.isfinite(v) and v > 0 for row in llc.get("llc", []) for v in row):
        ax2.set_yscale("log")
    (ax3 if flat else ax2).set_xlabel("training step (solid vertical: grokking step; dotted: LLC-drop step)")
    ax2.set_ylabel("LLC estimate (± 3 SE)")
    ax2.legend(fontsize=7, loc="best")
    if title:
        ax1.set_title(title, fontsize=10)
    _save(fig, path)


def plot_lr(path, lrs: Sequence[float], grok: Sequence[Sequence[float | None]],
            drop: Sequence[Sequence[float | None]], gsm: Sequence[Sequence[float]], title: str = "") -> None:
    """Grokking step and LLC-drop step (left) and GSM (right) against learning rate; one point per seed."""
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for vals, label, marker, col in ((grok, "grokking step", "o", _COLORS[0]), (drop, "LLC-drop step", "s", _COLORS[1])):
        xs = [lr for lr, row in zip(lrs, vals) for v in row if v is not None]
        ys = [max(v, 0.5) for row in vals for v in row if v is not None]
        ax1.scatter(xs, ys, marker=marker, color=col, label=label, alpha=0.8)
    lim = (min(lrs) / 1.5, max(lrs) * 1.5)  # explicit limits: an axis with no finite point cannot be log-scaled
    ax1.set_xscale("log")
    ax1.set_xlim(*lim)
    if any(v is not None and v > 0 for vals in (grok, drop) for row in vals for v in row):
        ax1.set_yscale("log")
    ax1.set_xlabel("learning rate")
    ax1.set_ylabel("step")
    ax1.legend(fontsize=8)
    xs = [lr for lr, row in zip(lrs, gsm) for _ in row]
    ax2.scatter(xs, [v for row in gsm for v in row], color=_COLORS[2])
    ax2.set_xscale("log")
    ax2.set_xlim(*lim)
    ax2.set_xlabel("learning rate")
    ax2.set_ylabel("GSM (grokking severity)")
    if title:
        fig.suptitle(title, fontsize=10)
    _save(fig, path)


def plot_sweep(path, x: Sequence[float], est: Sequence[float], se: Sequence[float], lines: dict[str, Sequence[float]],
               xlabel: str, title: str = "") -> None:
    """LLC estimates (± 3 SE) against a swept size, with each formula's prediction as a line."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.errorbar(x, est, yerr=[3 * s if math.isfinite(s) else 0 for s in se], fmt="o", color="k", capsize=3,
                label="SGLD estimate (± 3 SE)")
    for i, (label, ys) in enumerate(lines.items()):
        ax.plot(x, ys, marker=".", color=_COLORS[i % len(_COLORS)], label=label)
    if any(v is not None and math.isfinite(v) and v > 0 for v in est):
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("LLC")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    _save(fig, path)


def plot_closed_form(path, exact: Sequence[float], est: Sequence[float], se: Sequence[float],
                     labels: Sequence[str]) -> None:
    """Estimate against exact lambda for the closed-form grid, with the identity line."""
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.errorbar(exact, est, yerr=[3 * s if math.isfinite(s) else 0 for s in se], fmt="o", capsize=3)
    for x, y, lab in zip(exact, est, labels):
        ax.annotate(lab, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    finite = [v for v in list(exact) + list(est) if v is not None and math.isfinite(v) and v > 0]
    if finite:
        lo, hi = min(finite) * 0.8, max(finite) * 1.25
        ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="estimate = exact")
        ax.set_xscale("log")
        ax.set_yscale("log")
    ax.set_xlabel("exact lambda (closed form)")
    ax.set_ylabel("SGLD estimate (± 3 SE)")
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_exact_trajectory(path, curves: dict, steps: Sequence[float], lam: Sequence[float], lower: Sequence[float],
                          upper: Sequence[float], seed: int, grok: float | None, reference: dict[str, float],
                          title: str = "", flat: dict | None = None) -> None:
    """One seed: exact lambda at polished checkpoints (bounds as a band where it is not exact) and the
    train/test accuracy against step, the grokking step marked; with ``flat`` ({"trace", "sam", "rho"} per step)
    a lower panel with the flatness baselines (Hutchinson Hessian trace, SAM sharpness) at the raw checkpoints."""
    if flat:
        fig, (ax, axf) = plt.subplots(2, 1, figsize=(7.5, 6.4), sharex=True, height_ratios=(3, 2))
        axf.plot(_pos(steps), flat["trace"], color=_COLORS[3], marker="s", ms=3, label="Hessian trace (Hutchinson)")
        axf.set_yscale("log")
        axf.set_ylabel("tr H")
        axs = axf.twinx()
        axs.plot(_pos(steps), flat["sam"], color=_COLORS[4], marker="^", ms=3, label=f"SAM sharpness, rho {flat['rho']:g}")
        axs.set_ylabel("SAM")
        if grok is not None:
            axf.axvline(max(grok, 0.5), color="k", lw=0.8)
        h1, l1 = axf.get_legend_handles_labels()
        h2, l2 = axs.get_legend_handles_labels()
        axf.legend(h1 + h2, l1 + l2, fontsize=7, loc="best")
        axf.set_xlabel("training step")
    else:
        fig, ax = plt.subplots(figsize=(7.5, 4.2))
    xs = _pos(curves.get("step", []))
    ax2 = ax.twinx()
    ax2.plot(xs, [r[seed] for r in curves["train_acc"]], color="0.6", ls="--", lw=1, label="train acc")
    ax2.plot(xs, [r[seed] for r in curves["test_acc"]], color="0.3", lw=1.2, label="test acc")
    ax2.set_ylim(-0.02, 1.02)
    ax2.set_ylabel("accuracy")
    lx = _pos(steps)
    ax.fill_between(lx, lower, upper, color=_COLORS[0], alpha=0.2, label="bounds where not exact")
    ax.plot(lx, lam, color=_COLORS[0], marker="o", ms=4, lw=1.5, label="exact lambda")
    for i, (label, val) in enumerate(reference.items()):
        if val is not None and math.isfinite(val):
            ax.axhline(val, color=_COLORS[(i + 1) % len(_COLORS)], ls=("--", "-.", ":")[i % 3], lw=1,
                       label=f"{label} = {val:.5g}")
    if grok is not None:
        ax.axvline(max(grok, 0.5), color="k", lw=0.8, label=f"grokking step {grok}")
    ax.set_xscale("log")
    if not flat:
        ax.set_xlabel("training step")
    ax.set_ylabel("learning coefficient")
    h1, l1 = ax.get_legend_handles_labels()
    h2, l2 = ax2.get_legend_handles_labels()
    ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="lower left")
    if title:
        ax.set_title(title, fontsize=9)
    _save(fig, path)

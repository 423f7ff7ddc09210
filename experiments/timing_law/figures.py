"""Figures of the timing-law experiment (called by analyse.py): calibration, grid, weight-split trajectories."""
from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from slt.runio import atomic_write  # noqa: E402
from slt.timing_law import design_row  # noqa: E402

HERE = Path(__file__).resolve().parent
FIG = HERE / "figures"
COL = {"adam": "C0", "adamw": "C3"}
MARK = {"grid": ".", "init": ".", "frac": ".", "heldout_seeds": "o", "heldout_cells": "s", "heldout_size": "^"}


def _save(fig, name: str) -> None:
    FIG.mkdir(exist_ok=True)
    try:
        atomic_write(FIG / name, lambda tmp: fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png"))
    finally:
        plt.close(fig)


def calibration(cells: dict, law: dict, thr: str = "0.95") -> None:
    fig, ax = plt.subplots(figsize=(6.2, 5.6))
    lo_all, hi_all = [], []
    for name, c in cells.items():
        cfg = c["config"]
        entry = law["laws"].get(cfg["optimizer"], {}).get(thr)
        if entry is None:
            continue
        meas = [s["jump"][thr][1] for s in c["seeds"] if s["jump"][thr][1] is not None and s["memorisation"][1]]
        cens = sum(s["jump"][thr][1] is None and s["memorisation"][1] is not None for s in c["seeds"])
        pred = math.exp(np.dot(design_row(cfg["lr"], cfg["weight_decay"], cfg["init_scale"], cfg["train_fraction"]),
                               entry["beta"]))
        held = c["role"] == "heldout"
        kw = dict(color=COL[cfg["optimizer"]], alpha=1.0 if held else 0.25, ms=7 if held else 4)
        if meas:
            med = float(np.median(meas))
            ax.errorbar([pred], [med], yerr=[[med - min(meas)], [max(meas) - med]], fmt=MARK[c["group"]],
                        mfc="none" if c["group"] == "heldout_size" else None, capsize=2, **kw)
            lo_all.append(min(pred, min(meas)))
            hi_all.append(max(pred, max(meas)))
        if cens:
            ax.plot([pred], [c["steps_run"]], marker="^", color=COL[cfg["optimizer"]], alpha=0.25 if not held else 1,
                    ls="none", ms=5)
    lo, hi = min(lo_all) / 1.3, max(hi_all) * 1.3
    xs = np.array([lo, hi])
    ax.plot(xs, xs, "k-", lw=0.8)
    for f in (0.8, 1.25):
        ax.plot(xs, xs * f, "k:", lw=0.6)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"predicted jump step (test acc >= {thr})")
    ax.set_ylabel("measured jump step (median, bar: seed range)")
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=COL[o], marker="o", ls="none", label=o) for o in COL]
    handles += [Line2D([], [], color="gray", marker=m, ls="none", mfc=mf, label=lab) for m, mf, lab in
                (("o", None, "held-out seeds"), ("s", None, "held-out cells"), ("^", "none", "held-out p"),
                 (".", None, "fit cells (faint)"), ("^", None, "censored at budget"))]
    ax.legend(handles=handles, fontsize=8, loc="upper left")
    ax.set_title("Grokking time: fitted law vs measurement (dotted: +-25%)", fontsize=10)
    _save(fig, "calibration.png")


def grid(cells: dict, thr: str = "0.95") -> None:
    opts = sorted({c["config"]["optimizer"] for c in cells.values()})
    fig, axes = plt.subplots(1, len(opts), figsize=(5.2 * len(opts), 4.2), squeeze=False)
    for ax, opt in zip(axes[0], opts):
        g = [c for c in cells.values() if c["config"]["optimizer"] == opt and c["group"] == "grid"]
        wds = sorted({c["config"]["weight_decay"] for c in g})
        for i, lr in enumerate(sorted({c["config"]["lr"] for c in g})):
            xs, ys, cs = [], [], []
            for c in g:
                if c["config"]["lr"] != lr:
                    continue
                meas = [s["jump"][thr][1] for s in c["seeds"] if s["jump"][thr][1] is not None]
                xs.append(c["config"]["weight_decay"])
                ys.append(float(np.median(meas)) if len(meas) * 2 > len(c["seeds"]) else np.nan)
                cs.append(sum(s["jump"][thr][1] is None for s in c["seeds"]))
            o = np.argsort(xs)
            ax.plot(np.array(xs)[o], np.array(ys)[o], "o-", color=plt.cm.viridis(i / 4), label=f"lr {lr:g}")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("weight decay")
        ax.set_ylabel(f"median jump step (test acc >= {thr})")
        ax.set_title(f"{opt}: lr x wd grid (missing: most seeds censored)", fontsize=9)
        ax.legend(fontsize=7)
    _save(fig, "grid.png")


def trajectories(path: Path) -> None:
    if not path.exists():
        return
    data = json.loads(path.read_text())
    keys = list(data)
    fig, axes = plt.subplots(2, len(keys), figsize=(3.4 * len(keys), 5.6), squeeze=False, sharex="col")
    for j, k in enumerate(keys):
        d = data[k]
        s = d["seeds"][0]
        ax = axes[0][j]
        ax.plot(d["steps"], s["norm_total"], "k-", label="|theta|")
        ax.plot(d["steps"], s["norm_F"], "C2-", label="|theta_F| (key freqs)")
        ax.plot(d["steps"], s["norm_M"], "C1-", label="|theta_M| (rest)")
        ax.set_yscale("log")
        ax.set_title(f"{d['optimizer']} lr {d['lr']:g} wd {d['wd']:g}", fontsize=9)
        for st, ls in ((s["memorisation"], "--"), (s["jump50"], ":")):
            if st:
                ax.axvline(st, color="gray", ls=ls, lw=0.8)
        if j == 0:
            ax.legend(fontsize=7)
        ax2 = axes[1][j]
        ax2.plot(d["steps"], s["test_acc"], "C0-", label="test acc")
        ax2.plot(d["steps"], s["train_acc"], "C0--", label="train acc")
        if "median_unit_key_share" in s:
            ax2.plot(d["steps"], s["median_unit_key_share"], "C2-", label="unit power at own key freq (median)")
        ax2.set_xlabel("step")
        if j == 0:
            ax2.legend(fontsize=7)
    fig.suptitle("Weight split along training (seed 0): dashed = memorisation, dotted = test acc 0.5", fontsize=10)
    _save(fig, "trajectories.png")


def make_all(cells: dict, out: dict, law: dict) -> None:
    calibration(cells, law)
    grid(cells)
    trajectories(HERE / "trajectories.json")

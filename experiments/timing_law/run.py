"""Issue 14: when does the test-accuracy jump happen?  One command reproduces the grid, the sweeps, the
held-out runs, the weight-split trajectories and the fits:

    OMP_NUM_THREADS=1 python experiments/timing_law/run.py            # everything (resumable)
    OMP_NUM_THREADS=1 python experiments/timing_law/run.py --fit-only # refit from cells.json

Task: (a + b) mod 53, width 512, 40% train, batch 128, centred MSE, 5 seeds per cell trained together on the
copy axis, evaluation every 25 steps (+ 40 log-spaced), stop when every seed has test accuracy >= 0.99, else at
the step budget (runs that never jump are right-censored, not dropped). Each cell's summary (memorisation step,
the jump step at test accuracy 0.5 / 0.9 / 0.95 / 0.99 as an interval between two evaluations, the weight norm
curve) is appended to cells.json after the cell finishes, so an interrupted run resumes at the next cell.

Fit set: the 5 x 5 lr x wd grids (seeds 0-4) and the init-scale and train-fraction sweeps, for Adam (coupled L2,
the paper's) and AdamW (decoupled). Held-out: other seeds (5-9) on grid cells, off-grid (lr, wd) cells with
seeds 10-14, and other p / width. The fitted law goes to slt/configs/timing_law.json (package data read by
slt.predict_jump_step); results.json and RESULTS.md hold the numbers.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

from slt.runio import atomic_write_json
from slt.training import TrainConfig, train

HERE = Path(__file__).resolve().parent
CELLS = HERE / "cells.json"
THRESHOLDS = (0.5, 0.9, 0.95, 0.99)

BASE = dict(p=53, width=512, train_fraction=0.4, data_seed=0, init_scale=1.0, batch_size=128,
            loss="centred_mse", n_log=40, eval_every=25, n_checkpoints_log=0, checkpoint_every=None,
            grok_threshold=0.99, memorise_threshold=0.99, stop_on_grok=True, steps=8000)
GRID = {
    "adam": dict(lr=[3e-4, 5.5e-4, 1e-3, 1.8e-3, 3.2e-3], wd=[1.5e-5, 3e-5, 6e-5, 1.2e-4, 2.4e-4], centre=(1e-3, 6e-5)),
    "adamw": dict(lr=[3e-4, 5.5e-4, 1e-3, 1.8e-3, 3.2e-3], wd=[0.4, 0.7, 1.2, 2.0, 3.5], centre=(1e-3, 1.2)),
}
INIT_SCALES = [0.5, 0.7, 1.4]
FRACTIONS = [0.3, 0.35, 0.5]
SEEDS_FIT, SEEDS_HELD, SEEDS_OFF = [0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 12, 13, 14]
# off-grid held-out cells: (lr, wd) drawn once, log-uniformly inside each grid's box (numpy seed 14)
N_OFF = 3


def cell_list() -> list[dict]:
    cells = []
    for opt, g in GRID.items():
        for lr in g["lr"]:
            for wd in g["wd"]:
                cells.append(dict(name=f"{opt}_lr{lr:g}_wd{wd:g}", group="grid", role="fit",
                                  cfg=dict(optimizer=opt, lr=lr, weight_decay=wd, seeds=SEEDS_FIT)))
        lr0, wd0 = g["centre"]
        for s in INIT_SCALES:
            cells.append(dict(name=f"{opt}_init{s:g}", group="init", role="fit",
                              cfg=dict(optimizer=opt, lr=lr0, weight_decay=wd0, init_scale=s, seeds=SEEDS_FIT)))
        for f in FRACTIONS:
            cells.append(dict(name=f"{opt}_frac{f:g}", group="frac", role="fit",
                              cfg=dict(optimizer=opt, lr=lr0, weight_decay=wd0, train_fraction=f, seeds=SEEDS_FIT)))
    rng = np.random.default_rng(14)
    for opt, g in GRID.items():
        # other seeds on the grid's diagonal and anti-diagonal corners
        for i, j in [(1, 3), (3, 1), (2, 2)]:
            lr, wd = g["lr"][i], g["wd"][j]
            cells.append(dict(name=f"{opt}_lr{lr:g}_wd{wd:g}_seeds5-9", group="heldout_seeds", role="heldout",
                              cfg=dict(optimizer=opt, lr=lr, weight_decay=wd, seeds=SEEDS_HELD)))
        for k in range(N_OFF):
            lr = float(np.exp(rng.uniform(np.log(g["lr"][0]), np.log(g["lr"][-1]))))
            wd = float(np.exp(rng.uniform(np.log(g["wd"][0]), np.log(g["wd"][-1]))))
            lr, wd = float(f"{lr:.3g}"), float(f"{wd:.3g}")
            cells.append(dict(name=f"{opt}_off{k}_lr{lr:g}_wd{wd:g}", group="heldout_cells", role="heldout",
                              cfg=dict(optimizer=opt, lr=lr, weight_decay=wd, seeds=SEEDS_OFF)))
        lr0, wd0 = g["centre"]
        for p, width in [(59, 512)]:
            cells.append(dict(name=f"{opt}_p{p}_w{width}", group="heldout_size", role="heldout",
                              cfg=dict(optimizer=opt, lr=lr0, weight_decay=wd0, p=p, width=width, seeds=SEEDS_FIT)))
    order = ["grid", "init", "frac", "heldout_seeds", "heldout_cells", "heldout_size"]
    return sorted(cells, key=lambda c: order.index(c["group"]))  # stable: optimisers stay in GRID order


def summarise(result, wall: float) -> dict:
    from slt.timing_law import jump_interval

    cfg, m = result.config, result.metrics
    steps = m["step"]
    seeds = []
    for c, seed in enumerate(cfg.seeds):
        te = [r[c] for r in m["test_acc"]]
        tr = [r[c] for r in m["train_acc"]]
        nrm = [r[c] for r in m["weight_norm"]]
        jumps = {f"{t:g}": list(jump_interval(steps, te, t)) for t in THRESHOLDS}
        mem = list(jump_interval(steps, tr, cfg.memorise_threshold))
        i_mem = steps.index(mem[1]) if mem[1] is not None else None
        seeds.append({
            "seed": seed, "memorisation": mem, "jump": jumps,
            "norm0": nrm[0], "norm_mem": nrm[i_mem] if i_mem is not None else None,
            "norm_max": max(nrm), "norm_final": nrm[-1], "final_test_acc": te[-1], "final_train_acc": tr[-1],
            "max_test_acc": max(te),
            # compact curves for the figures and the derivation checks
            "curve": {"test_acc": [round(x, 4) for x in te], "train_acc": [round(x, 4) for x in tr],
                      "weight_norm": [float(f"{x:.5g}") for x in nrm]},
        })
    return {"config": cfg.to_dict(), "steps": steps, "steps_run": steps[-1], "wall_s": wall, "seeds": seeds,
            "threads": torch.get_num_threads(), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def load_cells() -> dict:
    return json.loads(CELLS.read_text()) if CELLS.exists() else {}


def run_cells(only_groups: set[str] | None, max_minutes: float | None) -> None:
    done = load_cells()
    t_start = time.time()
    for cell in cell_list():
        if only_groups and cell["group"] not in only_groups:
            continue
        cfg = TrainConfig.from_dict({**BASE, **cell["cfg"]})
        if cell["name"] in done and done[cell["name"]]["config"] == cfg.to_dict():
            continue
        if max_minutes is not None and time.time() - t_start > 60 * max_minutes:
            print("time limit reached; rerun to continue", flush=True)
            return
        t0 = time.time()
        res = train(cfg)
        rec = summarise(res, time.time() - t0)
        rec.update(group=cell["group"], role=cell["role"])
        done = load_cells()  # re-read: keep whatever another invocation wrote meanwhile
        done[cell["name"]] = rec
        atomic_write_json(CELLS, done)
        j = [s["jump"]["0.95"][1] for s in rec["seeds"]]
        print(f"{cell['name']:<34} steps {rec['steps_run']:>5} wall {rec['wall_s']:6.1f}s  T95 {j}", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fit-only", action="store_true", help="no training: refit from cells.json")
    ap.add_argument("--groups", nargs="*", help="train only these groups (grid init frac heldout_seeds ...)")
    ap.add_argument("--max-minutes", type=float, default=None, help="stop starting new cells after this long")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if not args.fit_only:
        run_cells(set(args.groups) if args.groups else None, args.max_minutes)
    if args.groups and not args.fit_only:
        return 0
    sys.path.insert(0, str(HERE))
    from analyse import analyse  # noqa: E402  (fits, figures, RESULTS tables)

    analyse(load_cells())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

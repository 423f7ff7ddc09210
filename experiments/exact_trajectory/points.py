"""Exact lambda at chosen checkpoints, one (seed, step) point at a time (issue 11, items 3-4 at sizes where a
point costs minutes): the grokking preset (p 53, width 512), the paper's post-jump checkpoints, and the basin /
sweep points. Each point is written atomically to OUT/points/<run>/<seed>_<step>.json as soon as it is done,
so an interrupted run resumes, and ``--order`` decides which points come first.

    python experiments/exact_trajectory/points.py --setting preset --seeds 0 1 2 --out experiments/exact_trajectory/cpu_preset
    python experiments/exact_trajectory/points.py --setting basins --seeds 0 1 2 3 4 --out experiments/exact_trajectory/cpu_basins

Checkpoints per seed: the first memorised one, the last one before the test-accuracy jump (test acc < 0.5), the
first after it (test acc >= 0.95) and the final one (``--which``). The point is polished on the DATA loss
(slt.polish, float64 Levenberg-Marquardt) and slt.exact_llc gives lambda there (exact, or bounds); the record
keeps the polish report, rank, route, gaps and seconds.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from slt.runio import atomic_write_json
from slt.training import default_config, list_checkpoints, load_checkpoint, train

SETTINGS = {
    # the shipped grokking preset: p 53, width 512, 40% of pairs, Adam lr 1e-3, wd 1e-4, batch 128, centred MSE
    "preset": dict(preset="grokking", steps=4000, checkpoint_every=250),
    # the paper's optimiser and width
    "paper": dict(preset="grokking", p=53, width=1024, lr=1e-4, weight_decay=1e-5, steps=20000, checkpoint_every=1000),
    # the default check's run (p 23, width 128, 60% of pairs), for the basin order over >= 5 seeds
    "basins": dict(preset="grokking", p=23, width=128, train_fraction=0.6, steps=5000, checkpoint_every=250),
}


def _config(setting: str, seeds: list[int], overrides: dict):
    kw = {**SETTINGS[setting], **overrides}
    preset = kw.pop("preset")
    return default_config(preset).replace(seeds=tuple(seeds), eval_every=50, **kw)


def pick(metrics: dict, saved: list[int], s: int, which: list[str]) -> dict[str, int]:
    """Checkpoint steps of seed s: first memorised, last before the jump, first after it, final."""
    steps = metrics["step"]
    tr = np.array(metrics["train_acc"])[:, s]
    te = np.array(metrics["test_acc"])[:, s]
    acc = {st: (tr[i], te[i]) for i, st in enumerate(steps)}
    have = [st for st in saved if st in acc and st > 0]
    out: dict[str, int] = {}
    mem = [st for st in have if acc[st][0] >= 0.99]
    if mem:
        out["memorised"] = mem[0]
        pre = [st for st in mem if acc[st][1] < 0.5]
        post = [st for st in mem if acc[st][1] >= 0.95]
        if pre:
            out["pre_jump"] = pre[-1]
        if post:
            out["post_jump"] = post[0]
    out["final"] = have[-1]
    return {k: v for k, v in out.items() if k in which}


def point(run_dir: Path, step: int, s: int, centred: bool, n_probe: int, newton_iter: int = 0) -> dict:
    """One seed at one checkpoint: slt.checks.claims.exact_trajectory.exact_at_checkpoint (the claim's own polish
    and exact lambda), with the step, the seed and the total time. Records written before stop 21 name the
    polish's gradient norms grad_norm_before/after (now grad_before/after) and hold lambda as an exact string
    (now a float: half-integers are exact in float64); summarise.py reads both."""
    from slt.checks.claims.exact_trajectory import exact_at_checkpoint

    cp = load_checkpoint(run_dir, step)
    t0 = time.perf_counter()
    rec = exact_at_checkpoint(cp.model, cp.data, s, centred, n_probe=n_probe, newton_iter=newton_iter)
    return {"step": step, "seed_index": s, **rec, "seconds_total": time.perf_counter() - t0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setting", choices=sorted(SETTINGS), required=True)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--which", nargs="+", default=["memorised", "pre_jump", "post_jump", "final"])
    ap.add_argument("--order", choices=["seed", "which"], default="which",
                    help="'which': each kind of checkpoint for every seed before the next kind")
    ap.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="config overrides (p=31 width=256 ...)")
    ap.add_argument("--n-probe", type=int, default=0)
    ap.add_argument("--newton-iter", type=int, default=0,
                    help="trust-region Newton steps after LM (> 0 to reach NON-interpolating critical points, e.g. "
                         "where the width caps the rank: K (3p - 2) < p N')")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    over = {k: json.loads(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    cfg = _config(args.setting, args.seeds, over)
    out = Path(args.out)
    run_dir = out / "runs" / cfg.hash()
    t0 = time.perf_counter()
    res = train(cfg, out_dir=run_dir, progress=False)
    print(f"trained {cfg.hash()}: memorised {res.memorisation_step}, grokked {res.grokking_step} "
          f"({time.perf_counter() - t0:.0f} s)", flush=True)
    metrics = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    saved = list_checkpoints(run_dir)
    centred = cfg.loss == "centred_mse"
    todo = []
    for s, seed in enumerate(cfg.seeds):
        for kind, step in pick(metrics, saved, s, args.which).items():
            todo.append((args.which.index(kind) if args.order == "which" else s, s, seed, kind, step))
    todo.sort()
    pdir = out / "points" / cfg.hash()
    pdir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(pdir / "config.json", cfg.to_dict())
    for _, s, seed, kind, step in todo:
        f = pdir / f"seed{seed}_step{step}.json"
        if f.exists():
            continue
        t = time.perf_counter()
        rec = point(run_dir, step, s, centred, args.n_probe, args.newton_iter)
        rec.update(seed=seed, kind=kind, train_acc=metrics["train_acc"][metrics["step"].index(step)][s],
                   test_acc=metrics["test_acc"][metrics["step"].index(step)][s], threads=torch.get_num_threads())
        atomic_write_json(f, json.loads(json.dumps(rec, default=str)))
        print(f"seed {seed} {kind} step {step}: lambda {rec.get('lam')} rank {rec.get('rank')} "
              f"[{rec.get('lower')}, {rec.get('upper')}] gram {rec.get('gram')} "
              f"({time.perf_counter() - t:.0f} s; polish {rec['polish']['message']})", flush=True)


if __name__ == "__main__":
    main()

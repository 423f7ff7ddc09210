"""Grokking sweep: which (lr, weight decay, width, train fraction) memorise early and generalise late?

Usage:  python experiments/grokking_sweep/run.py [--config sweep.json] [--only NAME ...] [--scheduler serial|ADDR]
        [--workers N]

One task per point on the task layer (slt.execution: an embedded Dask LocalCluster by default, one single-threaded
worker per core; ``--scheduler serial`` runs them in this process with the same numbers).

Each point of the JSON config (``base`` config updated by the point's ``overrides``) is trained with all
its seeds on the copy axis via ``slt.training.train``. Per point and seed it records the memorisation step
(train acc >= 0.99), the step train acc reaches 1.0, the grokking step (test acc >= 0.95), the first
evaluated step with test acc >= 0.5 and the last evaluated step before it, and the verdict of the issue's
criterion:

    grokked_late  <=>  train acc reaches 1.0, test acc >= 0.95 eventually, and test acc < 0.5 at every
                       evaluated step up to a step >= 5 x memorisation step.

Results go to results.json (atomic, keyed by point name together with its full config, so finished points
are never recomputed and a changed point is rerun) and RESULTS.md (the table).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from slt.training import TrainConfig, train
from slt.training.checkpoints import atomic_write_json, atomic_write_text, library_version

HERE = Path(__file__).resolve().parent
LATE_FACTOR = 5  # test acc must stay below 0.5 until LATE_FACTOR x memorisation step (issue 2, item 5)


def first_step(steps: list[int], values: list[float], thr: float) -> int | None:
    return next((s for s, v in zip(steps, values) if v >= thr), None)


def summarise(result) -> dict:
    cfg, m = result.config, result.metrics
    steps = m["step"]
    seeds = []
    for c, seed in enumerate(cfg.seeds):
        tr, te = [r[c] for r in m["train_acc"]], [r[c] for r in m["test_acc"]]
        mem, grok = result.memorisation_step[c], result.grokking_step[c]
        full = first_step(steps, tr, 1.0)
        t50 = first_step(steps, te, 0.5)
        before50 = max((s for s in steps if t50 is None or s < t50), default=0)
        late = (full is not None and grok is not None and mem is not None
                and before50 >= LATE_FACTOR * mem)
        seeds.append({"seed": seed, "memorisation_step": mem, "train_acc_1_step": full, "test_05_step": t50,
                      "last_step_test_below_05": before50, "grokking_step": grok, "grokked_late": late,
                      "final_train_acc": tr[-1], "final_test_acc": te[-1]})
    return {"config": cfg.to_dict(), "seeds": seeds, "n_grokked_late": sum(s["grokked_late"] for s in seeds),
            "n_seeds": len(seeds), "steps_run": steps[-1], "wall_time_s": result.wall_time_s,
            "threads": torch.get_num_threads(), "version": library_version(),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def fmt(x) -> str:
    return "-" if x is None else str(x)


def table(results: dict, order: list[str]) -> str:
    lines = [
        "| point | p | width | frac | lr | wd | batch | seeds late/total | memorisation steps | grokking steps "
        "| test>=0.5 steps | steps run | wall s | threads |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in order:
        if name not in results:
            continue
        r = results[name]
        c = r["config"]
        lines.append(
            f"| {name} | {c['p']} | {c['width']} | {c['train_fraction']} | {c['lr']:g} | {c['weight_decay']:g} "
            f"| {fmt(c['batch_size'])} | {r['n_grokked_late']}/{r['n_seeds']} "
            f"| {' '.join(fmt(s['memorisation_step']) for s in r['seeds'])} "
            f"| {' '.join(fmt(s['grokking_step']) for s in r['seeds'])} "
            f"| {' '.join(fmt(s['test_05_step']) for s in r['seeds'])} "
            f"| {r['steps_run']} | {r['wall_time_s']:.0f} | {r['threads']} |"
        )
    return "\n".join(lines)


def run_point(config: dict, why: str) -> dict:
    """One point, as a task on the task layer (slt.execution): train all its seeds, summarise."""
    # strong weight decay collapses the weights to ~1e-29 (subnormal floats), which made those points ~5x
    # slower on CPU; flushing subnormals to zero changes nothing above 1e-38
    torch.set_flush_denormal(True)
    summary = summarise(train(TrainConfig.from_dict(config)))
    summary["why"] = why
    return summary


def main(argv: list[str] | None = None) -> int:
    from slt.execution import check_scheduler, open_runner

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(HERE / "sweep.json"))
    ap.add_argument("--results", default=str(HERE / "results.json"))
    ap.add_argument("--only", nargs="*", help="run only these point names")
    ap.add_argument("--scheduler", default=None, help="local (default: embedded Dask LocalCluster, one 1-thread "
                    "worker per core), serial (this process) or a Dask scheduler address")
    ap.add_argument("--workers", type=int, default=None, help="worker processes of the embedded LocalCluster")
    args = ap.parse_args(argv)
    check_scheduler(args.scheduler, args.workers)

    spec = json.loads(Path(args.config).read_text())
    base = spec["base"]
    res_path = Path(args.results)
    results = json.loads(res_path.read_text()) if res_path.exists() else {}
    order = [pt["name"] for pt in spec["points"]]
    todo = []
    for pt in spec["points"]:
        name = pt["name"]
        if args.only and name not in args.only:
            continue
        cfg = TrainConfig.from_dict({**base, **pt.get("overrides", {})})
        if name in results and results[name]["config"] == cfg.to_dict():
            print(f"[skip] {name}: done")
            continue
        todo.append((name, cfg, pt))

    def record(name: str, summary: dict) -> None:  # in this process, as each task finishes: nothing is lost
        results[name] = summary
        atomic_write_json(res_path, results)
        print(f"       {name}: late {summary['n_grokked_late']}/{summary['n_seeds']}, "
              f"mem {[s['memorisation_step'] for s in summary['seeds']]}, "
              f"grok {[s['grokking_step'] for s in summary['seeds']]}, {summary['wall_time_s']:.0f} s", flush=True)
        atomic_write_text(HERE / "RESULTS_TABLE.md", table(results, order) + "\n")

    if todo:
        with open_runner(args.scheduler, args.workers) as run:
            for name, cfg, pt in todo:
                print(f"[run]  {name}: {pt.get('overrides', {})}", flush=True)
                run.submit(run_point, cfg.to_dict(), pt.get("why", ""), name=name,
                           then=lambda summary, name=name: record(name, summary))
            run.gather()
    atomic_write_text(HERE / "RESULTS_TABLE.md", table(results, order) + "\n")
    print(table(results, order))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

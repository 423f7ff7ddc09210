"""Scale demonstration through Dask (issue 15, item 6): the 100-seed grokking experiment and an lr x wd grid, each
as a sweep of tasks (:func:`slt.sweeps.train_sweep`), with the wall-clock of the whole sweep on 1 or 2 workers.

    python experiments/scale_demo/run.py hundred --workers 2 --fresh   # 100 seeds as 10 tasks of 10 seeds
    python experiments/scale_demo/run.py grid --workers 2 --fresh      # 5 lr x 5 wd cells, 5 seeds each
    python experiments/scale_demo/run.py split                         # seeds independent of how they are split?
    python experiments/scale_demo/summarise.py                         # -> RESULTS.md, grid_heatmap.png

Reduced size (a 2-core machine): the grokking preset (p 53, fraction 0.4, Adam with coupled L2, batch 128) at
width 256 instead of the paper's 1,024, lr 1e-3 / wd 1e-4 instead of 1e-4 / 1e-5. Paper size on a cluster:

    python experiments/scale_demo/run.py hundred --width 1024 --lr 1e-4 --wd 1e-5 --steps 20000 \
        --scheduler tcp://SCHEDULER:8786 --workers 10

Each measurement (part, workers) trains in ``--out/<part>_w<workers>/`` and records its wall-clock (around
train_sweep only) in ``--results`` (default results.json next to this file), written atomically. A rerun reuses
finished tasks (train_sweep is resumable), which makes its wall-clock meaningless: the entry then says how many
tasks were reused, and ``--fresh`` empties the folder first so the timing is of a full run.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
LATE_FACTOR = 5  # experiments/grokking_sweep/RESULTS.md: test acc < 0.5 up to an evaluated step >= 5 x memorisation
PARTS = ("hundred", "grid", "split")
TIMING = ("wall_s", "n_reused", "task_wall_s_sum", "loadavg_before", "loadavg_after", "finished_utc")


@dataclass(frozen=True)
class Sizes:
    """Everything that sets the size of the demonstration (defaults: the reduced size run on 2 cores)."""

    p: int = 53
    width: int = 256
    lr: float = 1e-3
    wd: float = 1e-4
    steps: int = 5000  # budget of a hundred-part task (stop_on_grok ends it once its 10 seeds have grokked)
    n_seeds: int = 100
    seeds_per_task: int = 10
    grid_lrs: tuple[float, ...] = (3e-4, 5.5e-4, 1e-3, 1.8e-3, 3.2e-3)
    grid_wds: tuple[float, ...] = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3)
    grid_seeds: int = 5
    grid_steps: int = 5000
    split_seeds: tuple[tuple[int, ...], ...] = ((0, 1, 2, 3, 4), tuple(range(5, 15)))  # 5-14 straddles two tasks
    extra: dict = field(default_factory=dict)  # any other TrainConfig fields (the test shrinks n_log etc.)


def base_config(s: Sizes):
    """The grokking preset at the demonstration's size, stopped once every seed of a task has grokked."""
    from slt.training import default_config

    return default_config("grokking").replace(p=s.p, width=s.width, lr=s.lr, weight_decay=s.wd, steps=s.steps,
                                              stop_on_grok=True, **s.extra)


def hundred_configs(s: Sizes) -> list:
    """Seeds 0..n_seeds-1 split into tasks of ``seeds_per_task`` consecutive seeds (0-9, 10-19, ...)."""
    b = base_config(s)
    k = s.seeds_per_task
    return [b.replace(seeds=list(range(i, min(i + k, s.n_seeds)))) for i in range(0, s.n_seeds, k)]


def grid_configs(s: Sizes) -> list:
    """One task per (lr, wd) cell, seeds 0..grid_seeds-1, ``grid_steps`` budget; lr-major order."""
    b = base_config(s).replace(steps=s.grid_steps, seeds=list(range(s.grid_seeds)))
    return [b.replace(lr=lr, weight_decay=wd) for lr in s.grid_lrs for wd in s.grid_wds]


def split_configs(s: Sizes) -> list:
    """The hundred part's config with other seed splits (same steps budget, hence the same evaluation steps)."""
    b = base_config(s)
    return [b.replace(seeds=list(seeds)) for seeds in s.split_seeds]


def late_flag(steps: list[int], test_acc: list[float], mem: int | None, grok: int | None) -> tuple[bool, int]:
    """(late?, last evaluated step before test accuracy first reaches 0.5), as hundred_seeds.py: a seed grokked
    late if it memorised, grokked, and test accuracy stayed < 0.5 up to an evaluated step >= 5 x memorisation."""
    t50 = next((st for st, v in zip(steps, test_acc) if v >= 0.5), None)
    before = max(st for st in steps if t50 is None or st < t50)
    return bool(mem is not None and grok is not None and before >= LATE_FACTOR * mem), int(before)


def seed_rows(summary: dict) -> list[dict]:
    """Per seed of one finished task: seed, memorisation / grokking step, late flag, last step with test < 0.5,
    final train / test accuracy (read from the task's metrics.json for the test-accuracy curve)."""
    m = json.loads((Path(summary["run_dir"]) / "metrics.json").read_text())["metrics"]
    rows = []
    for c, seed in enumerate(summary["config"]["seeds"]):
        mem, grok = summary["memorisation_step"][c], summary["grokking_step"][c]
        late, before = late_flag(m["step"], [r[c] for r in m["test_acc"]], mem, grok)
        rows.append({"seed": seed, "memorisation_step": mem, "grokking_step": grok, "late": late,
                     "last_step_test_below_half": before, "final_train_acc": summary["final_train_acc"][c],
                     "final_test_acc": summary["final_test_acc"][c]})
    return rows


def task_row(summary: dict) -> dict:
    """One task of a sweep: its lr, wd, seeds, steps run, training wall time, reused?, and its per-seed rows."""
    c = summary["config"]
    return {"lr": c["lr"], "weight_decay": c["weight_decay"], "seeds": c["seeds"], "steps_done": summary["steps_done"],
            "train_wall_s": summary["wall_s"], "reused": summary["reused"], "run_dir": _portable(summary["run_dir"]),
            "per_seed": seed_rows(summary)}


def measure(configs: list, out_dir: Path, scheduler: str | None, workers: int | None, fresh: bool) -> dict:
    """Run the sweep in ``out_dir`` and return its entry: wall-clock around train_sweep (cluster start and
    shutdown included), load average before / after, how many tasks were reused, and every task's rows."""
    from slt.sweeps import train_sweep

    if fresh and out_dir.exists():
        shutil.rmtree(out_dir)
    load0 = os.getloadavg()
    t0 = time.perf_counter()
    summaries = train_sweep(configs, out_dir, scheduler=scheduler, n_workers=workers)
    wall = time.perf_counter() - t0
    tasks = [task_row(s) for s in summaries]
    return {"workers": workers, "scheduler": scheduler or "local", "wall_s": round(wall, 2),
            "n_tasks": len(tasks), "n_reused": sum(t["reused"] for t in tasks),
            "task_wall_s_sum": round(sum(t["train_wall_s"] for t in tasks if not t["reused"]), 2),
            "loadavg_before": [round(x, 2) for x in load0], "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "cpu_count": os.cpu_count(), "finished_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
            "config": {k: v for k, v in configs[0].to_dict().items() if k not in ("seeds", "lr", "weight_decay")},
            "tasks": tasks}


def _portable(run_dir: str) -> str:
    """``run_dir`` relative to the repository root when it lies inside it (results.json travels with the repo)."""
    try:
        return str(Path(run_dir).resolve().relative_to(ROOT))
    except ValueError:
        return str(run_dir)


def _curves(run_dir: str) -> dict:
    m = json.loads((ROOT / run_dir / "metrics.json").read_text())  # ROOT / an absolute path is that path
    return {"seeds": m["seeds"], "metrics": m["metrics"]}


def compare_split(split: dict, hundred: dict) -> dict:
    """Per seed of the split runs vs the same seed in the hundred part: equal memorisation / grokking steps?, and
    the largest |difference| of test accuracy and train loss over the evaluated steps both runs have."""
    ref = {}
    for t in hundred["tasks"]:
        cur = _curves(t["run_dir"])
        for c, seed in enumerate(cur["seeds"]):
            ref[seed] = (cur["metrics"], c, next(r for r in t["per_seed"] if r["seed"] == seed))
    rows = []
    for t in split["tasks"]:
        cur = _curves(t["run_dir"])
        for c, seed in enumerate(cur["seeds"]):
            if seed not in ref:
                continue
            rm, rc, rrow = ref[seed]
            mine = next(r for r in t["per_seed"] if r["seed"] == seed)
            at = {st: i for i, st in enumerate(rm["step"])}
            common = [(i, at[st]) for i, st in enumerate(cur["metrics"]["step"]) if st in at]
            diff = {k: max(abs(cur["metrics"][k][i][c] - rm[k][j][rc]) for i, j in common)
                    for k in ("test_acc", "train_loss")}
            rows.append({"seed": seed, "split_task_seeds": t["seeds"], "n_common_steps": len(common),
                         "same_memorisation": mine["memorisation_step"] == rrow["memorisation_step"],
                         "same_grokking": mine["grokking_step"] == rrow["grokking_step"],
                         "max_abs_diff_test_acc": diff["test_acc"], "max_abs_diff_train_loss": diff["train_loss"]})
    return {"seeds_compared": len(rows), "all_steps_equal": all(r["same_memorisation"] and r["same_grokking"]
                                                                for r in rows),
            "max_abs_diff_test_acc": max((r["max_abs_diff_test_acc"] for r in rows), default=None),
            "max_abs_diff_train_loss": max((r["max_abs_diff_train_loss"] for r in rows), default=None),
            "rows": rows}


def record(results_path: Path, part: str, key: str, entry: dict) -> dict:
    """Store ``entry`` at results[part][key] (other entries kept), atomically; return the whole results. A
    replaced entry's timing is kept in ``entry["earlier"]`` (repeated measurements show the machine's noise)."""
    from slt.runio import atomic_write_json

    res = json.loads(results_path.read_text()) if results_path.exists() else {}
    old = res.setdefault(part, {}).get(key)
    if old is not None:
        entry["earlier"] = old.get("earlier", []) + [{k: old[k] for k in TIMING}]
    res[part][key] = entry
    atomic_write_json(results_path, res)
    return res


def run_part(part: str, s: Sizes, out: Path, results_path: Path, scheduler: str | None, workers: int | None,
             fresh: bool) -> dict:
    """Run one part and record it: hundred / grid under key str(workers); split (serial, this process) under
    key 'check', compared with the hundred part's 2-worker (else any) entry, which must exist."""
    if part == "split":
        res = json.loads(results_path.read_text()) if results_path.exists() else {}
        hundred = res.get("hundred", {})
        ref_key = "2" if "2" in hundred else next(iter(hundred), None)
        if ref_key is None:
            raise SystemExit("part 'split' compares with the hundred part: run that first")
        entry = measure(split_configs(s), out / "split", "serial", None, fresh)
        entry["comparison"] = compare_split(entry, hundred[ref_key])
        entry["compared_with"] = ref_key  # the key of the hundred part's entry
        return record(results_path, "split", "check", entry)
    configs = hundred_configs(s) if part == "hundred" else grid_configs(s)
    key = str(workers or "default")
    entry = measure(configs, out / f"{part}_w{key}", scheduler, workers, fresh)
    return record(results_path, part, key, entry)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("part", choices=PARTS)
    ap.add_argument("--workers", type=int, default=None, help="Dask worker processes (1 thread each)")
    ap.add_argument("--scheduler", default=None, help="None/'local' (embedded cluster), 'serial' or an address")
    ap.add_argument("--out", type=Path, default=HERE / "runs", help="folder of the run directories (git-ignored)")
    ap.add_argument("--results", type=Path, default=HERE / "results.json")
    ap.add_argument("--fresh", action="store_true", help="empty this measurement's run folder first")
    d = Sizes()
    ap.add_argument("--p", type=int, default=d.p)
    ap.add_argument("--width", type=int, default=d.width)
    ap.add_argument("--lr", type=float, default=d.lr)
    ap.add_argument("--wd", type=float, default=d.wd)
    ap.add_argument("--steps", type=int, default=d.steps)
    ap.add_argument("--grid-steps", type=int, default=d.grid_steps)
    a = ap.parse_args(argv)
    s = Sizes(p=a.p, width=a.width, lr=a.lr, wd=a.wd, steps=a.steps, grid_steps=a.grid_steps)
    res = run_part(a.part, s, a.out, a.results, a.scheduler, a.workers, a.fresh)
    key = "check" if a.part == "split" else str(a.workers or "default")
    e = res[a.part][key]
    print({k: e[k] for k in ("workers", "scheduler", "wall_s", "n_tasks", "n_reused", "task_wall_s_sum",
                             "loadavg_before", "loadavg_after")})
    if a.part == "split":
        print({k: v for k, v in e["comparison"].items() if k != "rows"})


if __name__ == "__main__":
    main()

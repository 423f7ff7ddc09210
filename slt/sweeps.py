"""Sweeps of training runs through the task layer (:mod:`slt.execution`): one task per config.

    from slt.sweeps import train_sweep
    from slt.training import default_config
    base = default_config("grokking").replace(p=23, width=128, steps=2000, seeds=[0, 1, 2])
    grid = [base.replace(lr=lr, weight_decay=wd) for lr in (1e-3, 3e-3) for wd in (1e-4, 1e-3)]
    rows = train_sweep(grid, "runs/lr_wd")                     # embedded LocalCluster, one process per core
    rows = train_sweep(grid, "runs/lr_wd", scheduler="serial")  # same numbers, this process only

In a script, call it under ``if __name__ == "__main__":``: the LocalCluster's worker processes are spawned and
re-import the script (multiprocessing's spawn start method), which must not start a second sweep.

Each config trains all its seeds at once (vectorised inside the task) in ``out_dir/<config.hash()>/`` with
:func:`slt.training.train` (resumable: a task whose worker died resumes from its last saved state, bit-identical
to an uninterrupted run) and ends by writing ``summary.json`` there atomically. A run whose summary.json exists
for the same config is read back and not submitted, so a rerun of a sweep recomputes nothing that finished.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable, Sequence

from slt.training import TrainConfig

SUMMARY = "summary.json"


def run_summary(config_dict: dict, run_dir: str) -> dict:
    """Train (or resume, or reload) one config in ``run_dir``; write and return its summary.

    Summary: ``config`` (dict), ``memorisation_step`` / ``grokking_step`` (per seed, None if never reached),
    ``final_train_acc`` / ``final_test_acc`` / ``final_train_loss`` / ``final_test_loss`` (per seed, last
    evaluated step), ``steps_done``, ``wall_s`` (training wall time, summed over resumed sessions), ``run_dir``."""
    from slt.runio import atomic_write_json
    from slt.training import train

    cfg = TrainConfig.from_dict(config_dict)
    res = train(cfg, out_dir=run_dir)
    m = res.metrics
    out = {"config": cfg.to_dict(), "run_dir": str(run_dir), "memorisation_step": list(res.memorisation_step),
           "grokking_step": list(res.grokking_step), "final_train_acc": list(m["train_acc"][-1]),
           "final_test_acc": list(m["test_acc"][-1]), "final_train_loss": list(m["train_loss"][-1]),
           "final_test_loss": list(m["test_loss"][-1]), "steps_done": int(m["step"][-1]),
           "wall_s": float(res.wall_time_s)}
    out = json.loads(json.dumps(out))  # plain JSON types, the same a reread returns
    atomic_write_json(Path(run_dir) / SUMMARY, out)
    return out


def read_summary(run_dir: str | os.PathLike, config: TrainConfig) -> dict | None:
    """The finished run's summary if ``run_dir/summary.json`` exists for exactly this config, else None."""
    path = Path(run_dir) / SUMMARY
    if not path.exists():
        return None
    try:
        got = json.loads(path.read_text())
    except (json.JSONDecodeError, OSError):
        return None  # a damaged summary is recomputed (the run itself resumes or reloads)
    return got if got.get("config") == config.to_dict() else None


def _label(configs: Sequence[TrainConfig], i: int) -> str:
    """'train lr=0.001 weight_decay=0.0001 (3f2a...)': the fields that vary across the sweep, and the run folder."""
    dicts = [c.to_dict() for c in configs]
    varying = [k for k in dicts[i] if any(d[k] != dicts[i][k] for d in dicts)]
    text = " ".join(f"{k}={dicts[i][k]}" for k in varying)
    return f"train {text} ({configs[i].hash()[:8]})" if text else f"train {configs[i].hash()}"


def train_sweep(configs: Sequence[TrainConfig], out_dir: str | os.PathLike, *, scheduler: str | None = None,
                n_workers: int | None = None, progress: Callable[[str], None] | None = print,
                runner=None) -> list[dict]:
    """Train every config (one task each, seeds vectorised inside) and return their summaries in order.

    Usage: ``rows = train_sweep([base.replace(lr=lr, weight_decay=wd) for lr in lrs for wd in wds], "runs/grid")``.

    ``scheduler``: None/'local' (embedded LocalCluster of ``n_workers`` processes, default one per core),
    'serial' (no Dask, identical numbers) or a Dask scheduler address (:mod:`slt.execution`); ``runner``: an
    already open :class:`slt.execution.Runner` to use instead (then ``scheduler``/``n_workers`` are ignored and
    it is left open). Each summary (:func:`run_summary`) gains ``"reused": True`` when it was read from disk
    instead of computed. Configs with ``device='cuda...'`` are submitted with the Dask resource GPU=1.
    ``progress``: a callable taking one line per finished run (None: silent)."""
    from slt.execution import open_runner, task_resources
    from slt.runio import prepare_dir

    configs = list(configs)
    bad = [i for i, c in enumerate(configs) if not isinstance(c, TrainConfig)]
    if bad:
        raise ValueError(f"configs must be TrainConfig objects; item(s) {bad} are not")
    out = prepare_dir(out_dir, "out_dir")
    rows: list[dict | None] = [None] * len(configs)
    todo = []
    for i, cfg in enumerate(configs):
        got = read_summary(out / cfg.hash(), cfg)
        if got is not None:
            rows[i] = {**got, "reused": True}
        else:
            todo.append(i)
    if progress is not None and len(todo) < len(configs):
        progress(f"{len(configs) - len(todo)} of {len(configs)} runs already finished in {out}: reused")
    if todo:
        own = runner is None
        run = open_runner(scheduler, n_workers, log=progress) if own else runner
        try:
            jobs = {i: run.submit(run_summary, configs[i].to_dict(), str(out / configs[i].hash()),
                                  name=_label(configs, i), key=f"train-{configs[i].hash()}",
                                  resources=task_resources(configs[i].device)) for i in todo}
            values = run.gather(list(jobs.values()), progress=progress)
        finally:
            if own:
                run.close()
        for i, v in zip(jobs, values):
            rows[i] = {**v, "reused": False}
    return rows  # type: ignore[return-value]

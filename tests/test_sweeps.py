"""train_sweep on the task layer: serial vs a real 2-process LocalCluster give identical numbers, a worker killed
mid-task is retried and resumes from disk, a rerun recomputes nothing."""
from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest

from slt.sweeps import SUMMARY, train_sweep
from slt.training import default_config

NUMBERS = ("memorisation_step", "grokking_step", "final_train_acc", "final_test_acc", "final_train_loss",
           "final_test_loss", "steps_done", "config")


def _grid(steps: int = 400):
    base = default_config("grokking").replace(p=11, width=16, train_fraction=0.6, batch_size=32, steps=steps,
                                              seeds=[0, 1], n_log=20, n_checkpoints_log=5, checkpoint_every=50)
    return [base.replace(lr=lr) for lr in (1e-3, 3e-3)]


def _numbers(rows):
    return [{k: r[k] for k in NUMBERS} for r in rows]


@pytest.fixture(scope="module")
def serial_rows(tmp_path_factory):
    return train_sweep(_grid(), tmp_path_factory.mktemp("serial"), scheduler="serial", progress=None)


def test_serial_sweep_summaries(serial_rows, tmp_path):
    assert [r["reused"] for r in serial_rows] == [False, False]
    for r, cfg in zip(serial_rows, _grid()):
        assert r["config"] == cfg.to_dict()
        assert len(r["final_train_acc"]) == 2 and all(0 <= a <= 1 for a in r["final_train_acc"])
        assert r["steps_done"] == cfg.steps and r["wall_s"] > 0
    # the two learning rates train differently: the summaries are computed, not copied
    assert serial_rows[0]["final_train_loss"] != serial_rows[1]["final_train_loss"]


def test_bad_configs_rejected(tmp_path):
    with pytest.raises(ValueError, match="configs must be TrainConfig"):
        train_sweep([{"p": 11}], tmp_path, scheduler="serial")
    with pytest.raises(ValueError, match="n_workers"):
        train_sweep(_grid(), tmp_path, scheduler="serial", n_workers=2)


def test_local_cluster_with_killed_worker_matches_serial(serial_rows, tmp_path):
    """2-process LocalCluster; both workers are SIGKILLed while the runs are mid-training (checkpoints written,
    no summary yet). Dask reschedules the tasks on the restarted workers, train() resumes from state.pt, and
    the summaries are bit-identical to the serial ones. A rerun then submits nothing."""
    from slt.execution import open_runner

    grid = _grid()
    lines: list[str] = []
    killed: dict = {}
    with open_runner(None, 2, dashboard_address=None, log=lines.append) as run:
        pids = set(run.client.run(os.getpid).values())
        assert len(pids) == 2

        def killer() -> None:
            dirs = [tmp_path / c.hash() for c in grid]
            t0 = time.time()
            while time.time() - t0 < 60:
                ck = [list((d / "checkpoints").glob("step_*.pt")) if (d / "checkpoints").exists() else [] for d in dirs]
                if any(len(c) >= 3 for c in ck) and not any((d / SUMMARY).exists() for d in dirs):
                    killed["checkpoints"] = [len(c) for c in ck]
                    for pid in pids:
                        os.kill(pid, signal.SIGKILL)
                    killed["pids"] = pids
                    return
                time.sleep(0.005)

        th = threading.Thread(target=killer)
        th.start()
        rows = train_sweep(grid, tmp_path, runner=run, progress=lines.append)
        th.join()
        after = set(run.client.run(os.getpid).values())
    assert "pids" in killed, "the runs finished before a worker could be killed mid-task"
    assert not (after & pids), "the killed workers were not replaced"
    assert _numbers(rows) == _numbers(serial_rows)
    assert [r["reused"] for r in rows] == [False, False]
    done = [line for line in lines if re.match(r"\[\d/2\] train lr=", line)]
    assert len(done) == 2 and done[-1].startswith("[2/2] train lr=") and "ETA" in done[-1], lines
    # rerun: everything is read from disk, nothing submitted (the scheduler address is never contacted)
    again = train_sweep(grid, tmp_path, scheduler="tcp://127.0.0.1:9", progress=lines.append)
    assert [r["reused"] for r in again] == [True, True]
    assert _numbers(again) == _numbers(serial_rows)


def test_damaged_summary_is_recomputed(serial_rows, tmp_path):
    grid = _grid()[:1]
    first = train_sweep(grid, tmp_path, scheduler="serial", progress=None)
    (Path(tmp_path) / grid[0].hash() / SUMMARY).write_text("{not json")
    again = train_sweep(grid, tmp_path, scheduler="serial", progress=None)
    assert again[0]["reused"] is False and _numbers(again) == _numbers(first) == _numbers(serial_rows[:1])

"""experiments/scale_demo: run.py's parts on a tiny configuration (serial, no Dask cluster) write results JSON of
the expected structure, and summarise.py turns it into the tables and the heat map."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "experiments" / "scale_demo"


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"scale_demo_{name}", ROOT / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look the module up while the class is built
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    run = _load("run")
    sizes = run.Sizes(p=11, width=16, steps=50, n_seeds=4, seeds_per_task=2, grid_lrs=(1e-3, 3e-3),
                      grid_wds=(1e-4, 1e-3), grid_seeds=2, grid_steps=50, split_seeds=((0,), (1, 2)),
                      extra=dict(n_log=10, eval_every=10, checkpoint_every=None, n_checkpoints_log=3, batch_size=32,
                                 train_fraction=0.6))
    tmp = tmp_path_factory.mktemp("scale_demo")
    results = tmp / "results.json"
    for part in ("hundred", "grid", "split"):
        run.run_part(part, sizes, tmp / "runs", results, "serial", None, True)
    return run, json.loads(results.read_text()), tmp


def test_results_structure(demo):
    run, res, _ = demo
    assert set(res) == {"hundred", "grid", "split"}
    h = res["hundred"]["default"]
    assert h["n_tasks"] == 2 and h["n_reused"] == 0 and h["wall_s"] > 0 and h["scheduler"] == "serial"
    assert [t["seeds"] for t in h["tasks"]] == [[0, 1], [2, 3]]
    for t in h["tasks"]:
        assert [r["seed"] for r in t["per_seed"]] == t["seeds"]
        assert set(t["per_seed"][0]) >= {"memorisation_step", "grokking_step", "late", "last_step_test_below_half"}
    g = res["grid"]["default"]
    assert sorted((t["lr"], t["weight_decay"]) for t in g["tasks"]) == [(1e-3, 1e-4), (1e-3, 1e-3), (3e-3, 1e-4),
                                                                        (3e-3, 1e-3)]
    assert all(len(t["per_seed"]) == 2 and t["steps_done"] <= 50 for t in g["tasks"])
    cmp = res["split"]["check"]["comparison"]
    # copies on the seed axis never interact: the same seed trains identically alone or with others
    assert cmp["seeds_compared"] == 3 and cmp["all_steps_equal"] and cmp["max_abs_diff_test_acc"] == 0.0


def test_late_flag():
    run = _load("run")
    steps = [0, 10, 50, 100, 150]
    assert run.late_flag(steps, [0.0, 0.1, 0.2, 0.6, 1.0], 10, 150) == (True, 50)   # below 0.5 up to 5 x 10
    assert run.late_flag(steps, [0.0, 0.6, 0.7, 0.9, 1.0], 10, 150) == (False, 0)
    assert run.late_flag(steps, [0.0, 0.1, 0.2, 0.3, 0.4], 10, None) == (False, 150)


def test_summarise(demo):
    _, res, tmp = demo
    summ = _load("summarise")
    text = summ.render(res)
    assert "| part | workers | wall s, each run |" in text and "| hundred | serial |" in text
    assert "## The 100-seed experiment" in text and "| lr \\ wd | 0.0001 | 0.001 |" in text
    assert "all equal: **yes**" in text
    summ.main(["--results", str(tmp / "results.json"), "--out-md", str(tmp / "R.md"), "--out-png", str(tmp / "h.png")])
    assert (tmp / "R.md").read_text() == text.replace("grid_heatmap.png", "h.png")
    assert (tmp / "h.png").stat().st_size > 1000


def test_rerun_reuses_and_keeps_timings(demo):
    run, _, tmp = demo
    summ = _load("summarise")
    sizes = run.Sizes(p=11, width=16, grid_lrs=(1e-3, 3e-3), grid_wds=(1e-4, 1e-3), grid_seeds=2, grid_steps=50,
                      extra=dict(n_log=10, eval_every=10, checkpoint_every=None, n_checkpoints_log=3, batch_size=32,
                                 train_fraction=0.6))
    res = run.run_part("grid", sizes, tmp / "runs", tmp / "results.json", "serial", None, False)
    g = res["grid"]["default"]
    assert g["n_reused"] == 4 and len(g["earlier"]) == 1 and g["earlier"][0]["n_reused"] == 0
    # the reused rerun's wall-clock is not a measurement: only the fresh run's is reported
    row = next(r for r in summ.wallclock_rows(res) if r[0] == "grid")
    assert row[2] == f"{g['earlier'][0]['wall_s']:.1f}"

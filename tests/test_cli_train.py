"""`slt train`: a tiny run end to end through the CLI, resume via the same --out, clean errors."""
import json
import subprocess
import sys

import pytest

from slt.cli import main
from slt.cli.train import _seeds

TINY = {"p": 7, "width": 16, "train_fraction": 0.5, "lr": 0.01, "weight_decay": 0.0, "batch_size": 8,
        "steps": 40, "n_log": 8, "n_checkpoints_log": 2, "seeds": [0]}


@pytest.fixture
def cfg_file(tmp_path):
    f = tmp_path / "tiny.json"
    f.write_text(json.dumps(TINY))
    return f


def test_train_writes_run_dir_and_prints_steps(tmp_path, cfg_file, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--config", str(cfg_file), "--seeds", "0,3", "--width", "12", "--device", "cpu",
               "--out", str(out), "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "memorisation_step" in text and "grokking_step" in text
    js = json.loads((out / "metrics.json").read_text())
    assert js["config"]["seeds"] == [0, 3] and js["config"]["width"] == 12 and js["complete"]
    assert (out / "metrics.csv").exists() and (out / "curves.png").exists()
    assert sorted(f.name for f in (out / "checkpoints").iterdir())[-1] == "step_00000040.pt"
    # rerun on the same directory: reloaded, same figures
    assert main(["train", "--config", str(cfg_file), "--seeds", "0,3", "--width", "12", "--device", "cpu",
                 "--out", str(out), "--no-progress"]) == 0
    assert json.loads((out / "metrics.json").read_text())["metrics"] == js["metrics"]


def test_changed_flag_on_existing_dir_is_a_clean_error(tmp_path, cfg_file, capsys):
    out = tmp_path / "run"
    assert main(["train", "--config", str(cfg_file), "--device", "cpu", "--out", str(out), "--no-progress"]) == 0
    rc = main(["train", "--config", str(cfg_file), "--lr", "0.5", "--device", "cpu", "--out", str(out),
               "--no-progress"])
    assert rc == 2
    assert "different config" in capsys.readouterr().err


def test_bad_config_key_and_value(tmp_path, capsys):
    f = tmp_path / "bad.json"
    f.write_text(json.dumps({**TINY, "stpes": 10}))
    assert main(["train", "--config", str(f), "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    assert "did you mean 'steps'" in capsys.readouterr().err
    f.write_text(json.dumps(TINY))
    assert main(["train", "--config", str(f), "--lr", "-1", "--out", str(tmp_path / "r"), "--no-progress"]) == 2
    assert "lr must be" in capsys.readouterr().err
    assert main(["train", "--config", str(f), "--preset", "grokking"]) == 2


def test_seed_parsing():
    assert _seeds("3") == (0, 1, 2)
    assert _seeds("4,1") == (4, 1)
    assert _seeds("2:5") == (2, 3, 4)
    with pytest.raises(Exception, match="--seeds"):
        _seeds("a,b")


def test_console_entry_point_help():
    r = subprocess.run([sys.executable, "-m", "slt", "train", "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0
    for flag in ("--config", "--preset", "--p", "--width", "--seeds", "--device", "--out"):
        assert flag in r.stdout

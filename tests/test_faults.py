"""Fault injection and bad inputs (issue 13): every case ends in a clear one-line error or the correct
result, never a silent number or a traceback.

SIGKILL / SIGINT at random points and resume (bit-identical), concurrent writers (lock), corrupt,
truncated, empty and foreign files, a full disk (a small tmpfs; skipped where it cannot be mounted),
NaN injection, and the bad inputs listed in the issue. Sizes are tiny (p 5-7, width 4-8).
"""
from __future__ import annotations

import json
import os
import pickle
import random
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import sympy
import torch

import slt.training.loop as loop
from slt.cli import main
from slt.losses import centred_mse, get_loss
from slt.models.quadratic import QuadraticNet
from slt.runio import CorruptFileError, RunDirBusyError, RunLock, atomic_write_json, safe_torch_load
from slt.sampling.llc import LLCWarning, estimate_llc
from slt.tasks import make_data
from slt.theory.quadratic import lazy_llc, quadratic_llc
from slt.training import TrainConfig, list_checkpoints, load_checkpoint, train
from slt.training.checkpoints import PREV_STATE_FILE, STATE_FILE, CheckpointWarning, checkpoint_path
from slt.training.loop import TrainingDivergedError

ROOT = Path(__file__).resolve().parents[1]
SMALL = dict(p=5, width=4, train_fraction=0.6, lr=1e-2, weight_decay=0.0, batch_size=4, steps=40, n_log=6,
             n_checkpoints_log=3, checkpoint_every=10, seeds=(0, 1))


def small(**kw) -> TrainConfig:
    return TrainConfig(**{**SMALL, **kw})


def same_result(a, b) -> None:
    assert a.metrics == b.metrics
    for name in ("U", "V", "A"):
        assert torch.equal(getattr(a.model, name), getattr(b.model, name))


def one_line_error(err: str, *words: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if ln.strip() and "warning:" not in ln]
    assert lines and lines[-1].startswith("slt ") and "error:" in lines[-1], err
    assert "Traceback" not in err, err
    for w in words:
        assert w in lines[-1], (w, lines[-1])


# ---------------------------------------------------------------------------------------------- SIGKILL / SIGINT

def test_sigkill_and_sigint_at_random_points_resume_bit_identically(tmp_path):
    # 2,000 steps: the closed-form gradient trains 500 steps of this net inside the random delay below
    cfg = small(p=7, width=8, steps=2000, batch_size=6, checkpoint_every=10, n_log=30)
    f = tmp_path / "c.json"
    f.write_text(json.dumps(cfg.to_dict()))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    argv = [sys.executable, "-m", "slt", "train", "--config", str(f), "--no-progress", "--device", "cpu",
            "--out", str(tmp_path / "run")]
    rng = random.Random(13)
    run_dir = tmp_path / "run"
    for sig in (signal.SIGKILL, signal.SIGINT, signal.SIGKILL):
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        before = len(list_checkpoints(run_dir))
        t_end = time.time() + 60
        while len(list_checkpoints(run_dir)) <= before and proc.poll() is None and time.time() < t_end:
            time.sleep(0.005)  # wait until this process trains (imports take seconds)
        time.sleep(rng.uniform(0.0, 0.25))
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        if sig == signal.SIGINT and proc.returncode != 0:
            assert proc.returncode == 130 and "interrupted" in err and "Traceback" not in err, err
    steps_at_kill = list_checkpoints(run_dir)
    assert steps_at_kill and steps_at_kill[-1] < cfg.steps, "no kill landed mid-run"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in the subprocesses, so the summation order matches
    try:
        ref = train(cfg)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a SIGKILL leaves nothing corrupt to report
            resumed = train(cfg, out_dir=run_dir)
    finally:
        torch.set_num_threads(threads)
    same_result(resumed, ref)
    assert list_checkpoints(run_dir) == loop.checkpoint_steps(cfg)
    for s in list_checkpoints(run_dir):
        assert load_checkpoint(run_dir, s).step == s  # every checkpoint intact and of this run
    last = load_checkpoint(run_dir)
    assert torch.equal(last.model.A, ref.model.A)
    assert not list(run_dir.rglob("*.tmp"))  # temporaries of the killed writers were swept on resume


# ---------------------------------------------------------------------------------------------- the lock

def test_second_writer_is_refused_with_the_holders_pid(tmp_path, capsys):
    with RunLock(tmp_path):  # flock locks conflict between open files, even within one process
        with pytest.raises(RunDirBusyError, match=f"pid {os.getpid()}"):
            train(small(), out_dir=tmp_path)
        assert main(["train", "--p", "5", "--width", "4", "--steps", "3", "--no-progress", "--out", str(tmp_path)]) == 2
        one_line_error(capsys.readouterr().err, f"pid {os.getpid()}", "being written by another process")
    assert not list_checkpoints(tmp_path)  # the refused writers wrote nothing
    train(small(steps=5), out_dir=tmp_path)  # released: the next writer proceeds


def test_a_second_config_while_another_process_writes_is_refused(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    run_dir = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "slt", "train", "--p", "5", "--width", "4", "--seeds", "1",
                             "--steps", "800", "--batch-size", "4", "--lr", "0.01", "--no-progress", "--device",
                             "cpu", "--out", str(run_dir)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t_end = time.time() + 60
    while not list_checkpoints(run_dir) and proc.poll() is None and time.time() < t_end:
        time.sleep(0.005)
    try:
        with pytest.raises(RunDirBusyError, match=f"pid {proc.pid}"):
            train(small(p=5, width=4, seeds=(0,), lr=0.02, steps=800), out_dir=run_dir)
    finally:
        proc.communicate(timeout=120)
    assert proc.returncode == 0
    with pytest.raises(ValueError, match=r"different config.*'lr': \(0\.01, 0\.02\)"):  # and after it finished
        train(small(p=5, width=4, seeds=(0,), lr=0.02, steps=800), out_dir=run_dir)
    lrs = {safe_torch_load(checkpoint_path(run_dir, s))["config"]["lr"] for s in list_checkpoints(run_dir)}
    assert lrs == {0.01} and json.loads((run_dir / "config.json").read_text())["lr"] == 0.01


# ---------------------------------------------------------------------------------------------- foreign files

def test_resume_refuses_files_of_another_config_before_writing(tmp_path):
    train(small(steps=10), out_dir=tmp_path)
    (tmp_path / "config.json").unlink()
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    for change in ({"lr": 0.5}, {"width": 8}):
        with pytest.raises(ValueError, match="different config") as err:
            train(small(steps=10, **change), out_dir=tmp_path)
        assert str(next(iter(change))) in str(err.value)
    assert not (tmp_path / "config.json").exists()  # nothing was (re)written
    assert {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*") if p.name != ".lock"} == {
        p: t for p, t in before.items() if p.name != ".lock"}

    # a state.pt of another run under this run's checkpoints (no checkpoint says otherwise): refused by hash
    other = tmp_path.parent / "other"
    train(small(steps=10, lr=0.5), out_dir=other)
    mine = tmp_path.parent / "mine"
    train(small(steps=10), out_dir=mine)
    (mine / "config.json").unlink()
    for s in list_checkpoints(mine):
        checkpoint_path(mine, s).unlink()
    os.replace(other / STATE_FILE, mine / STATE_FILE)
    with pytest.raises(ValueError, match=r"state\.pt.*'lr': \(0\.5, 0\.01\)"):
        train(small(steps=10), out_dir=mine)


def test_checkpoint_of_another_width_or_mismatched_weights_is_named(tmp_path):
    train(small(steps=10), out_dir=tmp_path / "a")
    train(small(steps=10, width=8), out_dir=tmp_path / "b")
    os.replace(checkpoint_path(tmp_path / "b", 10), checkpoint_path(tmp_path / "a", 10))
    with pytest.raises(ValueError, match=r"step_00000010\.pt belongs to a different run.*'width': \(8, 4\)"):
        load_checkpoint(tmp_path / "a", 10)
    # weights whose shapes do not match the config they carry
    blob = safe_torch_load(checkpoint_path(tmp_path / "a", 0))
    blob["params"]["U"] = blob["params"]["U"][:, :3]
    torch.save(blob, checkpoint_path(tmp_path / "a", 0))
    with pytest.raises(ValueError, match=r"step_00000000\.pt: parameter shapes"):
        load_checkpoint(tmp_path / "a", 0)


# ---------------------------------------------------------------------------------------------- corrupt files

def _corrupt(path: Path, how: str) -> None:
    data = path.read_bytes()
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "random":
        path.write_bytes(random.Random(0).randbytes(len(data)))
    else:  # a pickle that would run code if loaded with weights_only=False
        class Evil:
            def __reduce__(self):
                return (os.system, ("echo pwned",))

        path.write_bytes(pickle.dumps(Evil()))


@pytest.mark.parametrize("how", ["truncated", "empty", "random", "code"])
def test_corrupt_checkpoint_is_named_and_skipped_for_the_newest_intact(tmp_path, how, capsys):
    train(small(steps=20), out_dir=tmp_path)
    _corrupt(checkpoint_path(tmp_path, 20), how)
    with pytest.raises(CorruptFileError, match=r"step_00000020\.pt") as err:
        load_checkpoint(tmp_path, 20)
    assert "weights_only=False" not in str(err.value) and "\n" not in str(err.value)
    with pytest.warns(CheckpointWarning, match=r"step_00000020\.pt.*using the newest intact checkpoint, step 10"):
        assert load_checkpoint(tmp_path).step == 10
    assert main(["llc", "--run", str(tmp_path), "--step", "20", "--chains", "2", "--draws", "4", "--burnin", "2",
                 "--no-progress"]) == 2
    one_line_error(capsys.readouterr().err, "step_00000020.pt")


def test_truncated_state_falls_back_and_resume_is_bit_identical(tmp_path, monkeypatch):
    cfg = small(steps=40)
    ref = train(cfg)
    real = loop._write_outputs
    calls = {"n": 0}

    class Crash(Exception):
        pass

    def crash_after_third(*a, **k):
        real(*a, **k)
        calls["n"] += 1
        if calls["n"] == 3:
            raise Crash

    monkeypatch.setattr(loop, "_write_outputs", crash_after_third)
    with pytest.raises(Crash):
        train(cfg, out_dir=tmp_path)
    monkeypatch.setattr(loop, "_write_outputs", real)
    _corrupt(tmp_path / STATE_FILE, "truncated")
    with pytest.warns(CheckpointWarning, match=r"state\.pt is corrupt"):
        same_result(train(cfg, out_dir=tmp_path), ref)

    # both states and a checkpoint torn: reported, retrained from step 0, still identical
    for f in (STATE_FILE, PREV_STATE_FILE):
        _corrupt(tmp_path / f, "random")
    _corrupt(checkpoint_path(tmp_path, 10), "empty")
    with pytest.warns(CheckpointWarning, match="from step 0"):
        same_result(train(cfg, out_dir=tmp_path), ref)
    assert load_checkpoint(tmp_path, 10).step == 10  # rewritten


# ---------------------------------------------------------------------------------------------- disk full

@pytest.fixture
def tiny_fs(tmp_path):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here ({r.stderr.decode().strip()[:80]})")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_disk_full_is_a_named_error_and_resume_after_freeing_is_identical(tiny_fs, capsys):
    cfg = small(p=7, width=8, steps=60, checkpoint_every=5)
    ref = train(cfg)
    with pytest.raises(OSError) as err:
        train(cfg, out_dir=tiny_fs / "run")
    assert err.value.errno == 28 and str(tiny_fs / "run") in str(err.value)
    assert not list((tiny_fs / "run").rglob("*.tmp"))  # no half-written temporaries left to fill the disk
    rc = main(["train", "--config", _cfg_file(tiny_fs.parent, cfg), "--no-progress", "--device", "cpu",
               "--out", str(tiny_fs / "run")])
    assert rc == 1
    one_line_error(capsys.readouterr().err, "No space left on device", str(tiny_fs / "run"))
    subprocess.run(["mount", "-o", "remount,size=8m", str(tiny_fs)], check=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CheckpointWarning)  # state.pt may be the torn write
        same_result(train(cfg, out_dir=tiny_fs / "run"), ref)


def _cfg_file(d: Path, cfg: TrainConfig) -> str:
    f = d / "cfg.json"
    f.write_text(json.dumps(cfg.to_dict()))
    return str(f)


# ---------------------------------------------------------------------------------------------- divergence

def test_diverging_run_is_an_error_with_step_seed_and_advice(tmp_path, capsys):
    rc = main(["train", "--no-progress", "--p", "5", "--width", "4", "--seeds", "1", "--steps", "30",
                       "--batch-size", "0", "--optimizer", "sgd", "--lr", "1e4", "--device", "cpu",
                       "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert rc == 2 and "done" not in out
    one_line_error(err, "diverged", "seed(s) [0]", "at step", "lower lr")
    json.loads((tmp_path / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    for s in list_checkpoints(tmp_path):
        assert all(torch.isfinite(v).all() for v in safe_torch_load(checkpoint_path(tmp_path, s))["params"].values())


@pytest.mark.parametrize("path", ["closed_form", "autograd"])
def test_nan_injected_into_one_seed_stops_the_run_at_that_step(tmp_path, monkeypatch, path):
    """A NaN in copy 1's loss at step 7, through the closed-form gradient (mse) or autograd (the loss callable)."""
    calls = {"n": 0}
    if path == "closed_form":
        real_grad = loop.quadratic_loss_and_grad

        def poisoned_grad(*args, **kw):
            loss, grads = real_grad(*args, **kw)
            calls["n"] += 1
            if calls["n"] == 8:  # the loss of step 7, copy 1
                loss = loss + torch.tensor([0.0, float("nan")])
            return loss, grads

        monkeypatch.setattr(loop, "quadratic_loss_and_grad", poisoned_grad)
    else:
        real = get_loss("mse")

        def poisoned(out, y):
            loss = real(out, y)
            calls["n"] += out.requires_grad  # training steps only
            if out.requires_grad and calls["n"] == 8:
                loss = loss + torch.tensor([0.0, float("nan")])
            return loss

        monkeypatch.setattr(loop, "get_loss", lambda name: poisoned)
        monkeypatch.setattr(loop, "make_train_step", _autograd_step(loop.make_train_step))
    with pytest.raises(TrainingDivergedError, match=r"loss of seed\(s\) \[1\] became NaN/inf at step 7"):
        train(small(loss="mse"), out_dir=tmp_path)
    assert max(list_checkpoints(tmp_path)) < 7 + 1
    for s in list_checkpoints(tmp_path):
        assert all(torch.isfinite(v).all() for v in safe_torch_load(checkpoint_path(tmp_path, s))["params"].values())
    assert "NaN" not in (tmp_path / "metrics.json").read_text()


def _autograd_step(make):
    """make_train_step forced onto its autograd branch (a loss name without a closed form, the real loss callable)."""
    def forced(config, model, opt):
        return make(config.replace(loss="cross_entropy"), model, opt)
    return forced


def test_json_outputs_never_hold_nan(tmp_path):
    atomic_write_json(tmp_path / "x.json", {"a": float("nan"), "b": [1.0, float("inf")]})
    assert json.loads((tmp_path / "x.json").read_text()) == {"a": None, "b": [1.0, None]}


# ---------------------------------------------------------------------------------------------- bad inputs

def test_out_that_is_a_file_or_below_a_file_or_unwritable(tmp_path, capsys):
    f = tmp_path / "file"
    f.write_text("x")
    for out in (f, f / "sub"):
        with pytest.raises(ValueError, match="not a directory|is a file"):
            train(small(steps=2), out_dir=out)
    assert main(["check", "--quick", "--out", str(f)]) == 2
    one_line_error(capsys.readouterr().err, str(f), "not a directory")
    if os.geteuid() != 0:  # root writes anywhere; the read-only case is covered by test_llc_* below
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o500)
        with pytest.raises(ValueError, match="not writable"):
            train(small(steps=2), out_dir=ro)


def test_scalar_seeds_in_a_config_and_huge_p(tmp_path):
    with pytest.raises(ValueError, match="seeds must be a non-empty list"):
        TrainConfig.from_dict({"seeds": 3})
    f = tmp_path / "c.json"
    f.write_text('{"seeds": 3}')
    assert main(["train", "--config", str(f), "--out", str(tmp_path / "r")]) == 2
    t0 = time.perf_counter()
    with pytest.raises(ValueError, match=r"p=100003.*GiB"):
        train(TrainConfig(p=100003, width=4, steps=3))
    assert time.perf_counter() - t0 < 2  # refused before allocating


def test_lazy_llc_rejects_more_pairs_than_exist():
    with pytest.raises(ValueError, match=r"n_train must be in \[1, 25\]"):
        lazy_llc(5, 100, 1000)
    with pytest.raises(ValueError, match="n_train"):
        quadratic_llc(5, 100, 1000)
    assert lazy_llc(5, 100, 25) == sympy.Rational(5 * 25, 2)  # the boundary n_train = p^2 is still accepted


def test_model_data_mismatch_is_detected_before_sampling():
    big = QuadraticNet(7, 4, generator=torch.Generator().manual_seed(0))
    small_net = QuadraticNet(5, 4, generator=torch.Generator().manual_seed(0))
    d5, d7 = (make_data(p, "add", 0.6, 0).train() for p in (5, 7))
    with pytest.raises(ValueError, match=r"data index a must lie in \[0, 4\].*different modulus"):
        estimate_llc(small_net, centred_mse, d7, num_chains=2, num_draws=4, num_burnin=0, eps=1e-4)
    with pytest.warns(LLCWarning, match="smaller modulus"):
        estimate_llc(big, centred_mse, d5, num_chains=2, num_draws=4, num_burnin=0, eps=1e-4)
    a, b, y = d5
    with pytest.raises(ValueError, match="labels must lie in"):
        estimate_llc(small_net, centred_mse, (a, b, y + 3), num_chains=2, num_draws=4, num_burnin=0, eps=1e-4)
    with pytest.raises(ValueError, match="1-D integer"):
        estimate_llc(small_net, centred_mse, (a.float(), b, y), num_chains=2, num_draws=4, num_burnin=0, eps=1e-4)


def test_constant_draws_and_too_few_draws_say_so():
    net = QuadraticNet(5, 4, generator=torch.Generator().manual_seed(0))
    data = make_data(5, "add", 0.6, 0).train()
    with pytest.raises(ValueError, match="every SGLD draw .* same loss.*batch_size=1"):  # centred on itself: 0
        estimate_llc(net, centred_mse, data, num_chains=2, num_draws=8, num_burnin=2, eps=1e-4, batch_size=1)
    with pytest.warns(LLCWarning, match="no standard error"):
        r = estimate_llc(net, centred_mse, data, num_chains=1, num_draws=1, num_burnin=0, eps=1e-4)
    assert r.llc_se != r.llc_se  # nan, and the warning above said why


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("llc") / "run"
    train(small(steps=20, seeds=(0,)), out_dir=d)
    return d


def test_llc_cli_bad_batch_too_few_draws_and_out(trained_run, tmp_path, capsys, monkeypatch):
    base = ["llc", "--run", str(trained_run), "--no-progress", "--burnin", "2", "--eps", "1e-4"]
    assert main([*base, "--batch-size", "1", "--chains", "2", "--draws", "4"]) == 2
    one_line_error(capsys.readouterr().err, "--batch-size", ">= 2")
    assert main([*base, "--chains", "1", "--draws", "1", "--out", str(tmp_path / "o")]) == 0
    cap = capsys.readouterr()
    assert "no standard error" in cap.out and "no standard error" in cap.err
    js = json.loads((tmp_path / "o" / "llc.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert js["llc_se"] == [None] and not (trained_run / "llc.json").exists()

    # a run directory that cannot be written: the estimate is printed, the error names the file and --out
    import slt.runio

    def read_only(path, *a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(slt.runio, "atomic_write_json", read_only)
    assert main([*base, "--chains", "2", "--draws", "4"]) == 2
    cap = capsys.readouterr()
    assert "seed 0: LLC = " in cap.out
    one_line_error(cap.err, "llc.json", "--out")


def test_files_keep_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        train(small(steps=2), out_dir=tmp_path)
    finally:
        os.umask(old)
    modes = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.rglob("*") if p.is_file()}
    assert modes and set(modes.values()) == {0o640}, modes

"""Bad inputs and file faults tried against `slt train`, `slt llc`, `slt check`, `slt derive` and the Python
API (issue 13). Each case runs in-process through `slt.cli.main` (or the API call) and is classified:

    error      non-zero exit with a one-line `slt CMD: error: ...` (or argparse's usage error), no traceback
    ok         exit 0 / a value returned (the input is valid; the expected result was checked)
    TRACEBACK  an exception escaped: a bug
    SILENT     exit 0 where an error was expected: a bug

Writes RESULTS.json and prints a per-group count table (pasted into README "Faults and bad inputs").
Run: OMP_NUM_THREADS=1 python experiments/faults/battery.py   (about a minute on 2 cores)
"""
from __future__ import annotations

import contextlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections import Counter
from pathlib import Path

import torch

torch.set_num_threads(1)
warnings.simplefilter("ignore")

from slt.cli import main  # noqa: E402

HERE = Path(__file__).resolve().parent
TMP = Path(tempfile.mkdtemp(prefix="slt-faults-"))
TRAIN = ["train", "--no-progress", "--device", "cpu", "--p", "5", "--width", "4", "--seeds", "1", "--steps", "10"]
results: list[dict] = []


def run_cli(group: str, label: str, argv: list[str], expect: str = "error") -> None:
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(argv)
    except SystemExit as e:  # argparse usage errors
        rc = e.code if isinstance(e.code, int) else 2
    except BaseException as e:  # noqa: BLE001
        results.append({"group": group, "case": label, "expect": expect, "got": "TRACEBACK",
                        "message": f"{type(e).__name__}: {e}"[:300]})
        return
    lines = [ln for ln in err.getvalue().strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else ""
    if rc == 0:
        got = "ok" if expect == "ok" else "SILENT"
    else:
        clean = ("error:" in last) and "Traceback" not in err.getvalue()
        got = "error" if clean else "TRACEBACK"
    results.append({"group": group, "case": label, "expect": expect, "got": got, "message": last[:300]})


def run_api(group: str, label: str, fn, expect: str = "error", check=None) -> None:
    try:
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            value = fn()
    except ValueError as e:  # the library's contract: a ValueError naming the parameter
        results.append({"group": group, "case": label, "expect": expect, "got": "error" if expect == "error"
                        else "TRACEBACK", "message": str(e).splitlines()[0][:300]})
        return
    except BaseException as e:  # noqa: BLE001
        results.append({"group": group, "case": label, "expect": expect, "got": "TRACEBACK",
                        "message": f"{type(e).__name__}: {e}"[:300]})
        return
    ok = expect == "ok" and (check is None or check(value, w))
    results.append({"group": group, "case": label, "expect": expect, "got": "ok" if ok else "SILENT",
                    "message": "; ".join(str(x.message) for x in w)[:300]})


def cfg_file(name: str, text: str) -> str:
    f = TMP / f"{name}.json"
    f.write_text(text)
    return str(f)


def fresh(name: str) -> str:
    d = TMP / name
    shutil.rmtree(d, ignore_errors=True)
    return str(d)


# ------------------------------------------------------------------ slt train: flags
G = "slt train: flag values"
for flag, vals in {"--p": ["0", "1", "-5", "abc", "2.5"], "--width": ["0", "-1", "x"], "--steps": ["0", "-3"],
                   "--lr": ["0", "-1", "nan", "inf"], "--weight-decay": ["-1", "nan"],
                   "--train-fraction": ["0", "1", "1.5", "-0.1", "nan"], "--seeds": ["", "a", "3:1", "0,0", "-1"],
                   "--batch-size": ["-1"], "--op": ["pow"], "--optimizer": ["lbfgs"], "--loss": ["hinge"],
                   "--device": ["tpu", "cuda"]}.items():
    for v in vals:
        if flag == "--device" and v == "cuda" and torch.cuda.is_available():
            continue
        run_cli(G, f"{flag} {v!r}", [*TRAIN, flag, v, "--out", fresh("t")])
run_cli(G, "--op mul --p 4 (not prime)", [*TRAIN, "--op", "mul", "--p", "4", "--out", fresh("t")])
run_cli(G, "--config and --preset together", [*TRAIN, "--config", cfg_file("ok", "{}"), "--preset", "grokking",
                                               "--out", fresh("t")])
if not os.environ.get("BATTERY_SKIP_HUGE"):  # set when running a library without the memory check
    run_cli(G, "--p 100003 (p^2 = 1e10 pairs)", [*TRAIN, "--p", "100003", "--out", fresh("t")])
    run_cli(G, "--width 1000000000", [*TRAIN, "--width", "1000000000", "--out", fresh("t")])
    run_cli(G, "--seeds 100000 --width 4096 --p 97", [*TRAIN, "--seeds", "100000", "--width", "4096", "--p", "97",
                                                      "--out", fresh("t")])
run_cli(G, "--batch-size 1 (valid)", [*TRAIN, "--batch-size", "1", "--out", fresh("t")], expect="ok")
run_cli(G, "--batch-size 10000 (> n: full batch, valid)", [*TRAIN, "--batch-size", "10000", "--out", fresh("t")],
        expect="ok")

# ------------------------------------------------------------------ slt train: config files
G = "slt train: config files"
bad_configs = {
    "missing file": None, "a directory": "DIR", "not JSON": "{p: 5", "a JSON list": "[5]", "binary": b"\x80\x81\xff",
    "unknown key": '{"lrr": 0.1}', '"seeds": 3': '{"seeds": 3}', '"seeds": "abc"': '{"seeds": "abc"}',
    '"seeds": []': '{"seeds": []}', '"seeds": [0.5]': '{"seeds": [0.5]}', '"p": "5"': '{"p": "5"}',
    '"p": 5.0': '{"p": 5.0}', '"lr": "big"': '{"lr": "big"}', '"lr": NaN': '{"lr": NaN}',
    '"betas": [0.9]': '{"betas": [0.9]}', '"betas": 5': '{"betas": 5}', '"betas": [1, 0.9]': '{"betas": [1, 0.9]}',
    '"width": 2.5': '{"width": 2.5}', '"steps": true': '{"steps": true}', '"batch_size": 0': '{"batch_size": 0}',
    '"n_log": 0': '{"n_log": 0}', '"eval_every": 0': '{"eval_every": 0}', '"grok_threshold": 0': '{"grok_threshold": 0}',
    '"grok_threshold": 2': '{"grok_threshold": 2}', '"dtype": "float16"': '{"dtype": "float16"}',
    '"tied": "yes"': '{"tied": "yes"}', '"device": 3': '{"device": 3}', '"momentum": 1': '{"momentum": 1}',
    '"init_scale": 0': '{"init_scale": 0}', '"data_seed": -1': '{"data_seed": -1}', '"op": {}': '{"op": {}}',
    '"seeds": {"a": 1}': '{"seeds": {"a": 1}}',
}
for label, text in bad_configs.items():
    if text is None:
        path = str(TMP / "nope.json")
    elif text == "DIR":
        path = str(TMP)
    elif isinstance(text, bytes):
        (TMP / "bin.json").write_bytes(text)
        path = str(TMP / "bin.json")
    else:
        path = cfg_file("c", text)
    run_cli(G, label, ["train", "--no-progress", "--device", "cpu", "--config", path, "--out", fresh("t")])

# ------------------------------------------------------------------ slt train: divergence
G = "slt train: divergence"
for label, extra in {
    "sgd lr 1e4 full batch (the issue's command)": ["--batch-size", "0", "--optimizer", "sgd", "--lr", "1e4"],
    "sgd lr 1e3 minibatch": ["--optimizer", "sgd", "--lr", "1e3", "--batch-size", "4"],
    "adam lr 1e6": ["--lr", "1e6", "--steps", "30"],
    "cross_entropy sgd lr 1e5": ["--loss", "cross_entropy", "--optimizer", "sgd", "--lr", "1e5"],
    "mse sgd lr 1e4, 3 seeds": ["--loss", "mse", "--optimizer", "sgd", "--lr", "1e4", "--seeds", "3"],
}.items():
    got_before = len(results)
    run_cli(G, label, [*TRAIN, *extra, "--out", fresh("d")])
    r = results[-1]
    metrics = Path(TMP / "d" / "metrics.json")
    if metrics.exists():
        try:
            json.loads(metrics.read_text(), parse_constant=lambda c: (_ for _ in ()).throw(ValueError(c)))
        except ValueError:
            r["got"], r["message"] = "SILENT", "metrics.json holds NaN"
run_cli(G, "init_scale 1e30 (config)", ["train", "--no-progress", "--device", "cpu", "--config",
                                         cfg_file("c", '{"p": 5, "width": 4, "steps": 5, "init_scale": 1e30}'),
                                         "--out", fresh("d")])

# ------------------------------------------------------------------ run directories
G = "run directory faults"
base = fresh("base")
assert main([*TRAIN, "--seeds", "2", "--steps", "20", "--out", base]) == 0


def copy_run(name: str) -> Path:
    d = Path(fresh(name))
    shutil.copytree(base, d)
    return d


f = TMP / "plainfile"
f.write_text("x")
run_cli(G, "--out is a file", [*TRAIN, "--out", str(f)])
run_cli(G, "--out below a file", [*TRAIN, "--out", str(f / "sub")])
run_cli(G, "same --out, different --lr", [*TRAIN, "--seeds", "2", "--steps", "20", "--lr", "0.5", "--out", base])
d = copy_run("noconf")
(d / "config.json").unlink()
run_cli(G, "config.json deleted, rerun with --lr 0.5", [*TRAIN, "--seeds", "2", "--steps", "20", "--lr", "0.5",
                                                        "--out", str(d)])
run_cli(G, "config.json deleted, rerun with --width 8", [*TRAIN, "--seeds", "2", "--steps", "20", "--width", "8",
                                                         "--out", str(d)])
if (d / "config.json").exists():
    results[-1]["got"], results[-1]["message"] = "SILENT", "config.json rewritten before the refusal"
d = copy_run("badconf")
(d / "config.json").write_text("{not json")
run_cli(G, "config.json corrupt", [*TRAIN, "--seeds", "2", "--steps", "20", "--out", str(d)])
import fcntl  # noqa: E402  (a writer holding the run dir's lock, as slt.runio.RunLock takes it)

with open(Path(base) / ".lock", "a+") as lock:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    run_cli(G, "run dir locked by another writer", [*TRAIN, "--seeds", "2", "--steps", "20", "--lr", "0.5",
                                                    "--out", base])
for how in ("truncated", "empty", "random bytes", "pickle running code"):
    d = copy_run("ck")
    ck = sorted((d / "checkpoints").glob("step_*.pt"))[-1]
    data = ck.read_bytes()
    ck.write_bytes({"truncated": data[: len(data) // 2], "empty": b"",
                    "random bytes": random.Random(0).randbytes(len(data)),
                    "pickle running code": b"cos\nsystem\n(S'echo pwned'\ntR."}[how])
    step = int(ck.stem.split("_")[1])
    run_cli(G, f"slt llc --step on a {how} checkpoint", ["llc", "--run", str(d), "--step", str(step), "--chains", "2",
                                                         "--draws", "4", "--burnin", "2", "--no-progress"])
    run_cli(G, f"slt llc (latest) with a {how} newest checkpoint: uses the newest intact, warns",
            ["llc", "--run", str(d), "--chains", "2", "--draws", "4", "--burnin", "2", "--no-progress"], expect="ok")
    run_cli(G, f"resume over a {how} checkpoint: recomputed", [*TRAIN, "--seeds", "2", "--steps", "20", "--out", str(d)],
            expect="ok")
for how in ("truncated", "empty"):
    d = copy_run("st")
    st = d / "state.pt"
    st.write_bytes(st.read_bytes()[:100] if how == "truncated" else b"")
    run_cli(G, f"{how} state.pt: falls back", [*TRAIN, "--seeds", "2", "--steps", "20", "--out", str(d)], expect="ok")
d = copy_run("foreign")
other = fresh("other")
assert main([*TRAIN, "--seeds", "2", "--steps", "20", "--width", "8", "--out", other]) == 0
shutil.copy(Path(other) / "checkpoints" / "step_00000020.pt", d / "checkpoints" / "step_00000020.pt")
run_cli(G, "checkpoint of another width dropped in: slt llc", ["llc", "--run", str(d), "--step", "20", "--chains", "2",
                                                              "--draws", "4", "--no-progress"])
run_cli(G, "checkpoint of another width dropped in: resume", [*TRAIN, "--seeds", "2", "--steps", "20", "--out", str(d)])
d = copy_run("shape")
blob = torch.load(d / "checkpoints" / "step_00000000.pt", weights_only=True)
blob["params"]["U"] = blob["params"]["U"][:, :2]
torch.save(blob, d / "checkpoints" / "step_00000000.pt")
run_cli(G, "weights not matching their config", ["llc", "--run", str(d), "--step", "0", "--chains", "2", "--draws",
                                                 "4", "--no-progress"])
mnt = TMP / "mnt"
mnt.mkdir()
if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48k", "tmpfs", str(mnt)], capture_output=True).returncode == 0:
    try:
        run_cli(G, "disk full during training", [*TRAIN, "--steps", "200", "--width", "8",
                                                 "--out", str(mnt / "run")])
        subprocess.run(["mount", "-o", "remount,size=8m", str(mnt)], check=True)
        run_cli(G, "after freeing space: resumes", [*TRAIN, "--steps", "200", "--width", "8", "--out", str(mnt / "run")],
                expect="ok")
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        run_cli(G, "read-only run dir: slt llc prints, then names the file", ["llc", "--run", str(mnt / "run"),
                "--chains", "2", "--draws", "4", "--no-progress"])
        run_cli(G, "read-only run dir: slt llc --out elsewhere", ["llc", "--run", str(mnt / "run"), "--chains", "2",
                "--draws", "4", "--no-progress", "--out", fresh("llcout")], expect="ok")
        run_cli(G, "read-only --out for training", [*TRAIN, "--out", str(mnt / "new")])
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)

# ------------------------------------------------------------------ slt llc
G = "slt llc: arguments"
LLC = ["llc", "--run", base, "--no-progress", "--burnin", "2"]
for label, extra in {"--chains 0": ["--chains", "0"], "--draws 0": ["--draws", "0"], "--burnin -1": ["--burnin", "-1"],
                     "--eps 0": ["--eps", "0"], "--eps -1": ["--eps", "-1"], "--eps nan": ["--eps", "nan"],
                     "--gamma -1": ["--gamma", "-1"], "--gamma nan": ["--gamma", "nan"], "--n-beta 0": ["--n-beta", "0"],
                     "--n-beta -1": ["--n-beta", "-1"], "--batch-size 0": ["--batch-size", "0"],
                     "--batch-size 1 with centred_mse": ["--batch-size", "1"],
                     "--batch-size 100000 (> n)": ["--batch-size", "100000"], "--step 999 (not saved)": ["--step", "999"],
                     "--step -1": ["--step", "-1"], "--chains x": ["--chains", "x"]}.items():
    run_cli(G, label, [*LLC, "--chains", "2", "--draws", "4", *extra])
run_cli(G, "--run missing", ["llc", "--run", str(TMP / "nope"), "--no-progress"])
run_cli(G, "--run is a file", ["llc", "--run", str(f), "--no-progress"])
empty_run = Path(fresh("empty_run"))
empty_run.mkdir()
run_cli(G, "--run without checkpoints", ["llc", "--run", str(empty_run), "--no-progress"])
run_cli(G, "--out is a file", [*LLC, "--chains", "2", "--draws", "4", "--out", str(f)])
run_cli(G, "--chains 1 --draws 1: runs, says 'no standard error'", [*LLC, "--chains", "1", "--draws", "1", "--eps",
                                                                    "1e-4", "--out", fresh("o1")], expect="ok")

# ------------------------------------------------------------------ slt check / derive
G = "slt check / derive"
run_cli(G, "check --out is a file", ["check", "--quick", "--out", str(f)])
run_cli(G, "check --only bogus", ["check", "--quick", "--only", "bogus", "--out", fresh("chk")])
run_cli(G, "check --device tpu", ["check", "--quick", "--device", "tpu", "--out", fresh("chk")])
if not torch.cuda.is_available():
    run_cli(G, "check --device cuda without CUDA", ["check", "--quick", "--device", "cuda", "--out", fresh("chk")])
run_cli(G, "check --quick --full", ["check", "--quick", "--full", "--out", fresh("chk")])
run_cli(G, "derive unknown name", ["derive", "no_such_derivation"])

# ------------------------------------------------------------------ Python API
G = "Python API"
from slt.losses import centred_mse  # noqa: E402
from slt.models.quadratic import QuadraticNet  # noqa: E402
from slt.sampling.llc import estimate_llc  # noqa: E402
from slt.tasks import make_data  # noqa: E402
from slt.theory.quadratic import lazy_llc, quadratic_llc  # noqa: E402
from slt.training import TrainConfig, load_checkpoint, train  # noqa: E402

run_api(G, "lazy_llc(5, 100, 1000): more pairs than p^2", lambda: lazy_llc(5, 100, 1000))
run_api(G, "lazy_llc(5, 100, 0)", lambda: lazy_llc(5, 100, 0))
run_api(G, "quadratic_llc(5, 100, 1000)", lambda: quadratic_llc(5, 100, 1000))
run_api(G, "lazy_llc(5, 100, 25) = 125/2", lambda: lazy_llc(5, 100, 25), "ok", lambda v, w: 2 * v == 125)
run_api(G, "TrainConfig(seeds=3)", lambda: TrainConfig(seeds=3))
run_api(G, "TrainConfig(betas=0.9)", lambda: TrainConfig(betas=0.9))
run_api(G, "train(dict)", lambda: train({"p": 5}))
run_api(G, "load_checkpoint(missing dir)", lambda: load_checkpoint(TMP / "nope"))
run_api(G, "make_data(p=1)", lambda: make_data(1))
n5, n7 = (QuadraticNet(p, 4, generator=torch.Generator().manual_seed(0)) for p in (5, 7))
d5, d7 = (make_data(p, "add", 0.6, 0).train() for p in (5, 7))
kw = dict(num_chains=2, num_draws=8, num_burnin=2, eps=1e-4)
run_api(G, "estimate_llc: p=5 net on p=7 data", lambda: estimate_llc(n5, centred_mse, d7, **kw))
run_api(G, "estimate_llc: p=7 net on p=5 data (runs, warns 'smaller modulus')",
        lambda: estimate_llc(n7, centred_mse, d5, **kw), "ok", lambda v, w: any("smaller modulus" in str(x.message) for x in w))
run_api(G, "estimate_llc: labels out of range", lambda: estimate_llc(n5, centred_mse, (d5[0], d5[1], d5[2] + 5), **kw))
run_api(G, "estimate_llc: float indices", lambda: estimate_llc(n5, centred_mse, (d5[0].float(), d5[1], d5[2]), **kw))
run_api(G, "estimate_llc: a, b of different lengths", lambda: estimate_llc(n5, centred_mse, (d5[0][:3], d5[1], d5[2]), **kw))
run_api(G, "estimate_llc: real targets of the wrong width",
        lambda: estimate_llc(n5, centred_mse, (d5[0], d5[1], torch.zeros(d5[0].numel(), 3)), **kw))
run_api(G, "estimate_llc: centred_mse, batch_size=1 (constant draws)",
        lambda: estimate_llc(n5, centred_mse, d5, batch_size=1, **kw))
run_api(G, "estimate_llc: 1 chain x 1 draw (runs, warns 'no standard error')",
        lambda: estimate_llc(n5, centred_mse, d5, num_chains=1, num_draws=1, num_burnin=0, eps=1e-4), "ok",
        lambda v, w: v.llc_se != v.llc_se and any("no standard error" in str(x.message) for x in w))

shutil.rmtree(TMP, ignore_errors=True)
out_name = os.environ.get("BATTERY_OUT", "RESULTS.json")  # e.g. RESULTS_before.json for the pre-fix library
(HERE / out_name).write_text(json.dumps(results, indent=1) + "\n")
groups = list(dict.fromkeys(r["group"] for r in results))
print(f"{'group':32s} {'cases':>5s} {'error':>6s} {'ok':>4s} {'TRACEBACK':>9s} {'SILENT':>6s}")
for g in groups:
    c = Counter(r["got"] for r in results if r["group"] == g)
    print(f"{g:32s} {sum(c.values()):5d} {c['error']:6d} {c['ok']:4d} {c['TRACEBACK']:9d} {c['SILENT']:6d}")
c = Counter(r["got"] for r in results)
print(f"{'total':32s} {len(results):5d} {c['error']:6d} {c['ok']:4d} {c['TRACEBACK']:9d} {c['SILENT']:6d}")
for r in results:
    if r["got"] in ("TRACEBACK", "SILENT") or r["got"] != r["expect"]:
        print(f"  !! [{r['group']}] {r['case']}: expected {r['expect']}, got {r['got']}: {r['message']}")

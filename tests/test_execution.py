"""The task layer (slt.execution): serial and Dask runners, dependencies and follow-ups, progress lines, the
Slurm job script, and `slt check` giving the same report serially and on a 2-process LocalCluster."""
from __future__ import annotations

import json
import math
import os
import re
import signal
import threading
import time

import pytest

from slt.execution import Progress, open_runner, task_resources


def _square_plus(x: int, y: int = 0) -> int:
    return x * x + y


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def _boom(x: int) -> int:
    raise RuntimeError(f"boom {x}")


def _pipeline(run) -> tuple[list, list]:
    """a = 3^2; b = a^2 + 1 (depends on a); a follow-up added when b finishes; a repeated key is one job."""
    seen = []
    a = run.submit(_square_plus, 3, name="a")
    b = run.submit(_square_plus, a, y=1, name="b",
                   then=lambda v: seen.append(run.submit(_square_plus, v, name="c")))
    again = run.submit(_square_plus, 3, name="a")
    assert again is a and run.reused == 1
    vals = run.gather([a, b])
    return vals, [j.done.value for j in seen]


def test_serial_runner_dependencies_followups_and_threads():
    lines = []
    with open_runner("serial") as run:
        vals, follow = _pipeline(run)
        assert run.gather([run.submit(_torch_threads, name="threads")], progress=lines.append) == [1]
    assert vals == [9, 82] and follow == [82 * 82]


def test_progress_lines_have_elapsed_and_eta():
    lines = []
    prog = Progress(lines.append, total=4)
    prog.done("train x", 12.34)
    assert re.fullmatch(r"\[1/4\] train x done in 12\.3 s, elapsed \d+s, ETA \d+s", lines[0]), lines[0]
    prog.add(1)
    for _ in range(4):
        prog.done("t", 0.1)
    assert lines[-1].startswith("[5/5] t done") and lines[-1].endswith("ETA 0s")


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="n_workers"):
        open_runner(None, 0)
    with pytest.raises(ValueError, match="threads_per_worker"):
        open_runner("serial", threads_per_worker=0)
    with pytest.raises(ValueError, match="scheduler"):
        open_runner("nonsense")
    with pytest.raises(ValueError, match="device"):
        task_resources(3)
    assert task_resources("cuda:1") == {"GPU": 1} and task_resources("cpu") is None


@pytest.fixture(scope="module")
def cluster():
    """One real 2-process LocalCluster for this module's tests, closed at the end (no leaked processes)."""
    lines = []
    with open_runner(None, 2, dashboard_address=None, log=lines.append, retries=0) as run:
        assert lines and "2 worker process(es)" in lines[0]
        yield run
    assert run.cluster.status.name == "closed"


def test_local_cluster_same_values_and_errors_raise(cluster):
    """2 worker processes: the same values as serially, 1 torch thread per task; a task that raises re-raises
    in gather, and the runner stays usable after it."""
    run = cluster
    assert not run.serial and run.dashboard is None
    vals, follow = _pipeline(run)
    assert vals == [9, 82] and follow == [82 * 82]
    assert run.gather([run.submit(_torch_threads, name="threads")], progress=None) == [1]
    run.submit(_boom, 1, name="boom")
    with pytest.raises(RuntimeError, match="boom 1"):
        run.gather(progress=None)
    assert run.gather([run.submit(_square_plus, 4, name="after boom")], progress=None) == [16]


def test_existing_scheduler_by_address(cluster):
    """An address (what --scheduler ADDRESS passes): a client on that scheduler; closing it leaves the cluster up."""
    lines = []
    with open_runner(cluster.address, log=lines.append) as run:
        assert run.cluster is None and run.use_resources and run.address == cluster.address
        vals, follow = _pipeline(run)
        assert vals == [9, 82] and follow == [82 * 82]
    assert "2 worker(s)" in lines[0]
    assert cluster.gather([cluster.submit(_square_plus, 5, name="still up")], progress=None) == [25]


def test_slurm_job_script_is_built_without_submitting():
    pytest.importorskip("dask_jobqueue")
    from slt.execution import slurm_client

    client, cluster = slurm_client(cores=8, memory="32GB", walltime="01:00:00", queue="gpu", account="proj",
                                   gpus=2, submit=False, scheduler_options={"dashboard_address": ":0"})
    try:
        assert client is None
        script = cluster.job_script()
        assert "#SBATCH -p gpu" in script and "#SBATCH -A proj" in script and "#SBATCH --gres=gpu:2" in script
        assert "#SBATCH -t 01:00:00" in script and "--resources GPU=1" in script and "--nworkers 2" in script
        with pytest.raises(ValueError, match="kind"):
            slurm_client(kind="lsf", submit=False)
        with pytest.raises(ValueError, match="cores"):
            slurm_client(cores=0, submit=False)
    finally:
        cluster.close()


def _numbers(rep: dict) -> list:
    """Everything of a report except timings: verdicts, estimates, SEs, per-seed data."""
    drop = {"wall_s", "sgld_s", "seconds", "units_wall_s"}

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in drop}
        if isinstance(x, list):
            return [strip(v) for v in x]
        if isinstance(x, float) and math.isnan(x):
            return "nan"
        return x

    return [strip({k: v for k, v in c.items() if k != "notes"}) for c in rep["claims"]]


def test_check_same_report_serial_and_local_cluster(tmp_path, cluster):
    """The paper-sweep claim of a tiny profile (2 training runs, each followed by its LLC sample): serial and
    a 2-process LocalCluster whose workers are killed mid-run give identical verdicts and numbers; a rerun
    computes nothing and starts no cluster."""
    from dataclasses import replace

    from slt.checks import profile, run_check
    from slt.checks.profiles import PaperSweepSpec, SGLDSettings, TrainSpec

    tiny = TrainSpec("grokking", {"steps": 100, "seeds": [0, 1], "p": 11, "width": 16, "lr": 3e-3,
                                  "train_fraction": 0.6, "batch_size": 32, "stop_on_grok": False})
    prof = replace(profile("quick"), paper_sweeps=PaperSweepSpec(tiny, ps=(7, 11), width_for_p=8, widths=(8,),
                                                                 p_for_width=11,
                                                                 sgld=SGLDSettings(num_chains=2, num_draws=20,
                                                                                   num_burnin=10)))
    reports = {}
    run_check(prof, tmp_path / "serial", only=("paper_sweeps",), scheduler="serial", log=lambda s: None)
    reports["serial"] = json.loads((tmp_path / "serial" / "report.json").read_text())
    # on the cluster, both workers are SIGKILLed as soon as a training run has written its first checkpoint:
    # Dask reschedules the lost tasks on the restarted workers and train() resumes from the run folder
    pids = set(cluster.client.run(os.getpid).values())
    killed = {}

    def killer() -> None:
        t0 = time.time()
        while time.time() - t0 < 60 and not killed:
            if list((tmp_path / "local" / "runs").glob("*/checkpoints/step_*.pt")):
                for pid in pids:
                    os.kill(pid, signal.SIGKILL)
                killed["at"] = time.time() - t0
            time.sleep(0.002)

    th = threading.Thread(target=killer)
    th.start()
    run_check(prof, tmp_path / "local", only=("paper_sweeps",), runner=cluster, log=lambda s: None)
    th.join()
    reports["local"] = json.loads((tmp_path / "local" / "report.json").read_text())
    assert killed and not (set(cluster.client.run(os.getpid).values()) & pids), "no worker was killed"
    assert reports["serial"]["meta"]["points_computed"] == reports["local"]["meta"]["points_computed"] == 4
    assert _numbers(reports["serial"]) == _numbers(reports["local"])
    lines = []
    run_check(prof, tmp_path / "local", only=("paper_sweeps",), scheduler="local", n_workers=2, log=lines.append)
    rep = json.loads((tmp_path / "local" / "report.json").read_text())
    assert rep["meta"]["points_computed"] == 0 and rep["meta"]["points_reused"] == 4
    assert not any("LocalCluster" in line for line in lines)  # nothing to run: no cluster started
    assert _numbers(rep) == _numbers(reports["local"])


_FAULTS_SCRIPT = r"""
import resource, sys, torch
if sys.argv[1] == "tuned":
    from slt.execution import tune_malloc
    assert tune_malloc()
x = torch.empty(0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(100):
    x = torch.ones(1 << 20)  # 4 MiB, freed when the next one is assigned
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not os.path.exists("/lib/x86_64-linux-gnu/libc.so.6") and not os.path.exists("/lib64/libc.so.6"),
                    reason="glibc only")
def test_tune_malloc_stops_page_faults_under_dasks_trim_threshold():
    """A Dask worker runs with MALLOC_TRIM_THRESHOLD_=65536, which makes glibc mmap and unmap every tensor over
    128 KiB: each 4 MiB allocation faults in 1,024 fresh pages. After tune_malloc() (what every task calls) the
    freed block is reused. Counted in page faults, not seconds."""
    import subprocess
    import sys

    env = {**os.environ, "MALLOC_TRIM_THRESHOLD_": "65536", "OMP_NUM_THREADS": "1"}
    faults = {mode: int(subprocess.run([sys.executable, "-c", _FAULTS_SCRIPT, mode], env=env, check=True,
                                       capture_output=True, text=True).stdout.split()[-1])
              for mode in ("plain", "tuned")}
    assert faults["plain"] > 50_000, faults  # the problem is there: ~100 x 1,024 pages
    assert faults["tuned"] < faults["plain"] / 10, faults

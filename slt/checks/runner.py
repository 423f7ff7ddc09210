"""``slt check``: run every claim of a profile, write report.md / report.json and the figures, print the table.

    run_check(profile("default"), "slt-check")                       # embedded Dask LocalCluster
    run_check(profile("default"), "slt-check", scheduler="serial")   # this process only, same numbers

Two phases. (1) Units: every claim module (:mod:`slt.checks.claims`) declares its units of work (train a run,
sample its checkpoints, exact lambda at a checkpoint, a closed-form case); each computes one point of the cache
``OUT/cache`` (training runs live in ``OUT/runs``). Points already there are not submitted; the rest run as tasks
on the task layer (:mod:`slt.execution`: an embedded LocalCluster by default, ``scheduler="serial"`` or a
scheduler address), a unit's follow-ups (sample after train) being submitted when it finishes, with a progress
line per finished task. (2) Verdicts, in claim order, in this process: they read the points back from the cache
and decide. A claim whose experiment raises is recorded as inconclusive with its error (the report says so) and
the others still run; a point a unit could not produce is computed here, as before. Running the same command
again after an interruption resumes where it stopped.
"""
from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from typing import Callable

import torch

from slt.checks import claims as C
from slt.checks.cache import PointCache
from slt.checks.claims.common import Context, Unit, run_unit
from slt.checks.profiles import CheckProfile
from slt.checks.report import ClaimResult, summary_table, write_report

CLAIM_KEYS = tuple(k for mod in C.MODULES for k in mod.KEYS)


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("slt")
    except Exception:
        return "unknown"


class _Units:
    """Submits units to a lazily opened runner (a rerun with every point cached starts no cluster) and keeps
    the counts for the report."""

    def __init__(self, ctx: Context, open_runner: Callable[[], object]) -> None:
        self.ctx = ctx
        self._open = open_runner
        self.run = None
        self.computed = 0  # points computed by tasks
        self.reused = 0  # points found in the cache before submitting, or by a task
        self.failed: list[str] = []
        self._counted: set[str] = set()

    def runner(self):
        if self.run is None:
            self.run = self._open()
        return self.run

    def submit(self, units: list[Unit], depth: int = 0) -> None:
        """``depth``: how many units precede these in their chain. Deeper units go first among the ready
        ones, so a chain (train -> sample -> basins) finishes early instead of waiting behind every train."""
        from slt.execution import task_resources

        for u in units:
            found, value = self.ctx.cache.lookup(u.cache_name, u.cache_key)
            if found:
                if u.key not in self._counted:  # one point asked for by two claims counts once
                    self._counted.add(u.key)
                    self.reused += 1
                self._follow(u, value, depth)
                continue
            self.runner().submit(run_unit, u.fn, str(self.ctx.out), u.device, u.args, name=u.name, key=u.key,
                                 resources=task_resources(u.device), priority=depth,
                                 then=lambda res, u=u: self._finished(u, res, depth))

    def _finished(self, u: Unit, res: dict, depth: int) -> None:
        if u.key not in self._counted:  # two claims sharing one task: count its points once
            self._counted.add(u.key)
            self.computed += res.get("computed", 0)
            self.reused += res.get("reused", 0)
        if "error" in res:
            self.failed.append(f"{u.name}: {res['error']}")
            self.ctx.log(f"  {u.name} FAILED: {res['error']} (its claim reports it)")
            return
        self._follow(u, res["value"], depth)

    def _follow(self, u: Unit, value, depth: int) -> None:
        if u.then is None:
            return
        try:
            follow = u.then(value) or []
        except Exception as err:  # the verdict recomputes in this process and records the error
            self.failed.append(f"after {u.name}: {type(err).__name__}: {err}")
            self.ctx.log(f"  follow-ups of {u.name} FAILED: {type(err).__name__}: {err} (its claim reports it)")
            return
        self.submit(follow, depth + 1)  # a scheduler that cannot be reached raises: the user's to fix

    def close(self) -> None:
        if self.run is not None:
            self.run.close()


def run_check(
    prof: CheckProfile,
    out_dir: str | os.PathLike = "slt-check",
    *,
    only: tuple[str, ...] | None = None,
    log: Callable[[str], None] = print,
    device: str = "cpu",
    scheduler: str | None = None,
    n_workers: int | None = None,
    runner=None,
) -> list[ClaimResult]:
    """Run the claims of ``prof`` (all, or those named in ``only``), write the report into ``out_dir``.

    ``device`` ('cpu', 'cuda', 'cuda:N') runs the training runs and the LLC estimates of trained networks
    there; the closed-form cases (networks of a few dozen parameters) always run on the CPU. ``scheduler``:
    None or 'local' (embedded Dask LocalCluster of ``n_workers`` processes, default one per core), 'serial'
    (this process, no Dask) or the address of a running Dask scheduler whose workers see ``out_dir`` (a shared
    file system); the report is the same on each (same seeds, same device). ``runner``: an open
    :class:`slt.execution.Runner` to use instead (``scheduler``/``n_workers`` ignored; left open)."""
    if only is not None:
        unknown = sorted(set(only) - set(CLAIM_KEYS))
        if unknown:
            raise ValueError(f"only must name claims among {CLAIM_KEYS}, got {unknown}")
    if not (isinstance(device, str) and (device == "cpu" or device.startswith("cuda"))):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} requested but CUDA is not available; use device='cpu'")
    from slt.sampling.noise import resolve_noise

    noise = resolve_noise(None)
    if noise != "torch":
        # the cache names a point by its configuration, which does not hold the noise source: a report would mix
        # sources, and points cached under one would be served to the other
        raise ValueError("SLT_NOISE must be unset or 'torch' for slt check (its cached points and report use torch's "
                         f"Gaussian source), got {noise!r}")
    from slt.execution import check_scheduler, open_runner

    check_scheduler(scheduler, n_workers)
    want = lambda k: only is None or k in only  # noqa: E731
    from slt.runio import prepare_dir

    out = prepare_dir(out_dir, "out_dir")  # a file or unwritable path: one-line ValueError naming it
    cache = PointCache(out / "cache")
    ctx = Context(out, cache, log, device)
    t_start = time.perf_counter()
    results: list[ClaimResult] = []
    mods = [m for m in C.MODULES if any(want(k) for k in m.KEYS)]

    # phase 1: the units of every claim asked for, on the task layer
    units = _Units(ctx, (lambda: runner) if runner is not None else (lambda: open_runner(scheduler, n_workers, log=log)))
    try:
        roots: list[Unit] = []
        for mod in mods:
            if not hasattr(mod, "units"):  # a claim without declared units computes in its verdict, in this process
                continue
            try:
                roots += mod.units(ctx, prof, want)
            except Exception as err:  # its verdict recomputes in this process and records the error
                log(f"  units of {mod.KEYS[0]} could not be declared: {type(err).__name__}: {err}")
        # chains (train -> sample -> ...) first: the longest paths start early, single units fill the gaps
        roots.sort(key=lambda u: u.then is None)
        units.submit(roots)  # a scheduler that cannot be reached raises here: the user's to fix
        if units.run is not None:
            log(f"{units.reused} point(s) already cached; running the rest as tasks ({units.run.address})")
            try:
                units.run.gather(progress=log)
            except Exception as err:  # e.g. a task whose workers kept dying: the verdicts compute what is missing
                log(f"  the task layer stopped: {type(err).__name__}: {err}; missing points are computed here")
    finally:
        if runner is None:
            units.close()
    t_units = time.perf_counter() - t_start

    # phase 2: verdicts in claim order, reading the points back
    for mod in mods:
        key, title = mod.KEYS[0], getattr(mod, "TITLE", mod.KEYS[0])
        log(f"[{key}] {title}")
        t0 = time.perf_counter()
        try:
            got = mod.verdict(ctx, prof, want)
        except Exception as err:  # recorded in the report as inconclusive, never hidden
            log(f"  FAILED: {type(err).__name__}: {err}")
            got = C._fail(key, title, err)
        for r in got if isinstance(got, list) else [got]:
            if r.wall_s != r.wall_s:  # nan: the claim did not time itself
                r = ClaimResult(r.key, r.title, r.verdicts, r.data, r.figures, r.notes, time.perf_counter() - t0)
            results.append(r)

    wall = time.perf_counter() - t_start
    computed = units.computed + cache.computed  # cache.computed: points the verdicts had to compute themselves
    reused = units.reused
    sched = (scheduler or "local") if runner is None else runner.address
    meta = {"profile": prof.name, "version": _version(), "torch": torch.__version__, "python": platform.python_version(),
            "threads": torch.get_num_threads(), "device": device, "scheduler": sched,
            "workers": n_workers, "units_wall_s": t_units, "tasks_failed": units.failed,
            "gpu": torch.cuda.get_device_name(device) if device.startswith("cuda") else None, "wall_s": wall,
            "points_computed": computed, "points_reused": reused, "settings": prof.to_dict(),
            "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_report(out, results, meta)
    log("")
    log(summary_table(results))
    log(f"\nwall time {wall:.0f} s ({computed} points computed, {reused} reused; scheduler {sched}); "
        f"report: {out / 'report.md'}")
    return results


def load_report(out_dir: str | os.PathLike) -> dict:
    return json.loads((Path(out_dir) / "report.json").read_text())

"""``slt check``: run every claim of a profile, write report.md / report.json and the figures, print the table.

    run_check(profile("default"), "slt-check")

Each claim runs in turn; a claim whose experiment raises is recorded as inconclusive with its error (the
report says so) and the others still run. Finished points are cached in ``OUT/cache`` and training runs
live in ``OUT/runs``, so running the same command again after an interruption resumes where it stopped.
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
from slt.checks.profiles import CheckProfile
from slt.checks.report import ClaimResult, summary_table, write_report

CLAIM_KEYS = ("closed_form", "trajectory", "timing", "basins", "lr", "gsm", "paper_sweeps", "exact_trajectory")


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("slt")
    except Exception:
        return "unknown"


def run_check(
    prof: CheckProfile,
    out_dir: str | os.PathLike = "slt-check",
    *,
    only: tuple[str, ...] | None = None,
    log: Callable[[str], None] = print,
    device: str = "cpu",
) -> list[ClaimResult]:
    """Run the claims of ``prof`` (all, or those named in ``only``), write the report into ``out_dir``.

    ``device`` ('cpu', 'cuda', 'cuda:N') runs the training runs and the LLC estimates of trained networks
    there; the closed-form cases (networks of a few dozen parameters) always run on the CPU."""
    if only is not None:
        unknown = sorted(set(only) - set(CLAIM_KEYS))
        if unknown:
            raise ValueError(f"only must name claims among {CLAIM_KEYS}, got {unknown}")
    if not (isinstance(device, str) and (device == "cpu" or device.startswith("cuda"))):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {device!r}")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} requested but CUDA is not available; use device='cpu'")
    want = lambda k: only is None or k in only  # noqa: E731
    from slt.runio import prepare_dir

    out = prepare_dir(out_dir, "out_dir")  # a file or unwritable path: one-line ValueError naming it
    cache = PointCache(out / "cache")
    ctx = C.Context(out, cache, log, device)
    t_start = time.perf_counter()
    results: list[ClaimResult] = []

    def step(key: str, title: str, fn: Callable[[], ClaimResult | list[ClaimResult]]) -> None:
        log(f"[{key}] {title}")
        t0 = time.perf_counter()
        try:
            got = fn()
        except Exception as err:  # recorded in the report as inconclusive, never hidden
            log(f"  FAILED: {type(err).__name__}: {err}")
            got = C._fail(key, title, err)
        for r in got if isinstance(got, list) else [got]:
            if r.wall_s != r.wall_s:  # nan: the claim did not time itself
                r = ClaimResult(r.key, r.title, r.verdicts, r.data, r.figures, r.notes, time.perf_counter() - t0)
            results.append(r)

    if want("closed_form"):
        step("closed_form", "closed form vs SGLD", lambda: C.claim_closed_form(ctx, prof.closed_form))
    if any(want(k) for k in ("trajectory", "timing", "basins")):
        def traj_claims() -> list[ClaimResult]:
            traj = C.run_trajectory(ctx, prof.trajectory)
            got = []
            if want("trajectory"):
                got.append(C.claim_trajectory(ctx, traj))
            if want("timing"):
                got.append(C.claim_timing(ctx, traj))
            if want("basins"):
                got.append(C.claim_basins(ctx, traj, prof.max_point_params))
            return got
        step("trajectory", "LLC trajectory, timing and basins on the grokking run", traj_claims)
    if want("lr") or want("gsm"):
        def lr_claims() -> list[ClaimResult]:
            sweep = C.run_lr_sweep(ctx, prof.lr_sweep)
            return ([C.claim_lr(ctx, sweep)] if want("lr") else []) + ([C.claim_gsm(ctx, sweep)] if want("gsm") else [])
        step("lr", "learning-rate sweep and GSM", lr_claims)
    if want("paper_sweeps"):
        step("paper_sweeps", "LLC vs p and vs K in absolute value", lambda: C.claim_paper_sweeps(ctx, prof.paper_sweeps))
    if want("exact_trajectory") and prof.exact is not None:
        from slt.checks import exact as X

        step("exact_trajectory", "exact lambda at polished checkpoints",
             lambda: X.claim_exact_trajectory(ctx, X.run_exact_trajectory(ctx, prof.exact)))

    wall = time.perf_counter() - t_start
    meta = {"profile": prof.name, "version": _version(), "torch": torch.__version__, "python": platform.python_version(),
            "threads": torch.get_num_threads(), "device": device,
            "gpu": torch.cuda.get_device_name(device) if device.startswith("cuda") else None, "wall_s": wall, "points_computed": cache.computed,
            "points_reused": cache.reused, "settings": prof.to_dict(),
            "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_report(out, results, meta)
    log("")
    log(summary_table(results))
    log(f"\nwall time {wall:.0f} s ({cache.computed} points computed, {cache.reused} reused); report: {out / 'report.md'}")
    return results


def load_report(out_dir: str | os.PathLike) -> dict:
    return json.loads((Path(out_dir) / "report.json").read_text())

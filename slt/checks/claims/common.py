"""What the claims of ``slt check`` share: the :class:`Context`, the cached training run and LLC estimate, and
the :class:`Unit` of work the runner submits to the task layer (:mod:`slt.execution`).

Data flow: claim module ``units(ctx, prof, want)`` -> units (train, sample, exact, ...) submitted as tasks, each
writing its point into the cache -> ``verdict(ctx, prof, want)`` reads the same points back (every expensive
point is cached in the output folder by the hash of its full configuration,
:class:`slt.checks.cache.PointCache`) -> plain numbers -> verdicts -> figures. A point the units did not produce
(e.g. a unit failed) is computed by the verdict in this process, exactly as it would have been by the unit.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from slt.checks import backend
from slt.checks.cache import PointCache, config_hash
from slt.checks.profiles import SGLDSettings, TrainSpec
from slt.checks.report import ClaimResult
from slt.checks.timing import llc_drop_step
from slt.checks.verdict import Verdict

MEMORISED, NOT_GENERALISED, GROKKED = 0.99, 0.5, 0.95  # accuracy thresholds for the basin checkpoints


# ---------------------------------------------------------------------------------------------- helpers

@dataclass(frozen=True)
class Context:
    """Where a check writes: the output folder, its point cache, and a logger."""

    out: Path
    cache: PointCache
    log: Callable[[str], None] = print
    device: str = "cpu"  # training runs and LLC estimates of trained networks (claim 1's tiny nets stay on CPU)

    @property
    def runs(self) -> Path:
        return self.out / "runs"


def soft_target_loss(centred: bool) -> Callable:
    """Per-copy Gaussian NLL against real-valued teacher outputs T (N, q): (1/2N) |(T - f) P|^2 with
    P = I - 11^T/N when centred, else P = I (the same normalisation as :mod:`slt.losses`)."""
    from slt.sampling import regression_mse

    if not centred:
        return regression_mse

    def centred_regression(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        r = out - target  # (B, N, q)
        r = r - r.mean(-2, keepdim=True)
        return 0.5 * r.pow(2).sum(-1).mean(-1)

    return centred_regression


def train_config(ctx: Context, spec: TrainSpec, extra: dict) -> dict:
    """The full training config (a dict) of ``spec`` + ``extra`` overrides on ``ctx.device``: the cache key of
    the run, and its folder ``ctx.runs / config_hash(cfg)``."""
    return backend.make_config(spec.preset, {**spec.overrides, **extra, "device": ctx.device})


def _train(ctx: Context, name: str, spec: TrainSpec, **extra) -> tuple[dict, Path, dict]:
    """Train (resuming) the run ``spec`` + ``extra`` overrides; returns (config dict, run dir, summary)."""
    cfg = train_config(ctx, spec, extra)
    run_dir = ctx.runs / config_hash(cfg)  # keyed by config alone, so experiments share identical runs
    t0 = time.perf_counter()
    summary = ctx.cache.get_or_compute("train", cfg, lambda: backend.train_run(cfg, run_dir))
    ctx.log(f"  trained {name}: memorised {summary['memorisation_step']}, grokked {summary['grokking_step']} "
            f"({time.perf_counter() - t0:.0f} s)")
    return cfg, run_dir, summary


def _ckpt_schedule(spec: TrainSpec, n: int) -> dict:
    """About n checkpoints: half log-spaced (memorisation is early), half evenly spaced (grokking is late)."""
    steps = int(backend.make_config(spec.preset, spec.overrides)["steps"])
    n_lin = max(1, n - n // 2)
    return {"n_checkpoints_log": n // 2, "checkpoint_every": max(1, steps // n_lin)}


def _pick_steps(saved: list[int], n: int) -> list[int]:
    """At most n of the saved checkpoint steps (step 0 excluded: the initialisation is no minimum),
    log-spaced, always keeping the last."""
    cand = [s for s in saved if s > 0]
    if len(cand) <= n:
        return cand
    targets = np.geomspace(cand[0], cand[-1], n)
    picked = {min(cand, key=lambda s: abs(math.log(s) - math.log(t))) for t in targets}
    return sorted(picked | {cand[-1]})


def llc_key(cfg: dict, steps: list[int], sgld: SGLDSettings, seed: int) -> dict:
    return {"run": cfg, "steps": steps, "sgld": asdict(sgld), "seed": seed}


def _llc_at_checkpoints(ctx: Context, name: str, cfg: dict, run_dir: Path, steps: list[int], sgld: SGLDSettings,
                        seed: int) -> dict:
    """LLC of every seed at every given checkpoint, in ONE batched SGLD run (copies = steps x seeds).

    Returns {"step": steps, "llc": [[per seed] per step], "se", "ok", "note", "train_acc", "test_acc"}."""
    key = llc_key(cfg, steps, sgld, seed)

    def compute() -> dict:
        _, cps = backend.load_checkpoints(run_dir, steps, device=cfg["device"])
        S = cps[0].model.n_copies
        net = backend.stack_copies([c.model for c in cps])  # copy index = step_index * S + seed_index
        data = cps[0].data
        a, b, y = (t.to(cfg["device"]) for t in data.train())
        from slt.losses import get_loss

        t0 = time.perf_counter()
        run_sgld, eps_note = sgld, "given"
        if sgld.eps is None:  # calibrate on the last checkpoint (the stiffest), share with the flatter earlier ones
            eps = backend.calibrate_eps(cps[-1].model, get_loss(cfg["loss"]), (a, b, y), sgld, seed)
            run_sgld, eps_note = replace(sgld, eps=eps), f"auto on the last checkpoint ({S} copies, min)"
        res = backend.llc_per_copy(net, get_loss(cfg["loss"]), (a, b, y), run_sgld, seed)
        tr, te = backend.evaluate_accuracy(net, data, cfg["loss"])
        grid = lambda xs: [[xs[i * S + s] for s in range(S)] for i in range(len(steps))]  # noqa: E731
        return {"step": steps, "llc": grid([r.llc for r in res]), "se": grid([r.se for r in res]),
                "ok": grid([r.ok for r in res]), "note": grid([r.note for r in res]),
                "eps": grid([r.eps for r in res]), "eps_rule": eps_note, "n_beta": res[0].n_beta,
                "rhat": grid([r.rhat for r in res]), "mala": grid([r.mala for r in res]),
                "displacement": grid([r.displacement for r in res]),
                "train_acc": grid(tr), "test_acc": grid(te), "wall_s": time.perf_counter() - t0}

    return ctx.cache.get_or_compute("llc", key, compute)


def _reach_note(llc: dict) -> str:
    """The chains' displacement relative to the weights (``displacement_ratio``), with the caveat it implies."""
    r = [x for row in llc.get("displacement", []) for x in row if x is not None and math.isfinite(x)]
    if not r:
        return ""
    text = f"The chains moved rms {np.median(r):.2g}x the weights' own rms (median over estimates, {min(r):.2g}-{max(r):.2g})."
    if np.median(r) >= 0.5:
        text += (" At this gamma the sampled neighbourhood is as large as the weights themselves, so these estimates "
                 "describe that neighbourhood more than the point w* (experiments/check/RESULTS.md).")
    return text


def _ok_note(llc: dict) -> str:
    """How many estimates carry sampler warnings, and the first warning (they repeat across copies)."""
    flat = [(ok, note) for r_ok, r_note in zip(llc["ok"], llc["note"]) for ok, note in zip(r_ok, r_note)]
    bad = [note for ok, note in flat if not ok]
    if not bad:
        return "none"
    text = f"{len(bad)} of {len(flat)} estimates carry sampler warnings, e.g. {bad[0].split(';')[0]}"
    rh = [x for row in llc.get("rhat", []) for x in row if x is not None and math.isfinite(x)]
    if rh:
        text += f" (median R-hat {np.median(rh):.2f}: chains not equilibrated, estimates depend on the draw count)"
    return text


def _column(rows: list[list], s: int) -> list:
    return [r[s] for r in rows]


def _drops(llc: dict) -> list:
    """LLC-drop step per seed (None where the trajectory has no significant drop)."""
    S = len(llc["llc"][0])
    out = []
    for s in range(S):
        d = llc_drop_step(llc["step"], _column(llc["llc"], s), _column(llc["se"], s))
        out.append(None if d is None else d.step)
    return out


def _fail(key: str, title: str, err: BaseException) -> ClaimResult:
    """A claim that could not run: recorded as inconclusive with the error, never silently skipped."""
    v = Verdict(key, "the experiment could run", "inconclusive", math.nan, math.nan, math.nan, math.nan, math.nan,
                "-", f"could not run: {type(err).__name__}: {err}")
    return ClaimResult(key, title, (v,), data={"error": f"{type(err).__name__}: {err}"})


def _saved_steps(run_dir: Path) -> list[int]:
    from slt.training import list_checkpoints

    return list_checkpoints(run_dir)


def _train_data(cfg: dict):
    from slt.tasks import make_data

    return make_data(cfg["p"], cfg["op"], cfg["train_fraction"], cfg["data_seed"]).train()


# ---------------------------------------------------------------------------------------------- units of work

@dataclass(frozen=True)
class Unit:
    """One unit of work of a claim: computes ONE cached point, ``cache.get_or_compute(cache_name, cache_key, ...)``.

    ``fn(ctx, *args)`` (a module-level function: it is pickled to a Dask worker) returns that point's value;
    ``then(value)`` runs in the submitting process once the point exists and returns the follow-up units that
    need it (e.g. sample the checkpoints a training unit wrote: their steps are known only then), or []. A unit
    whose point is already in the cache is not submitted; its ``then`` runs at once. ``device``: where it runs
    (a 'cuda' unit asks Dask for the resource GPU=1)."""

    kind: str  # train | sample | flatness | exact | closed_form: what the progress line and the report count
    name: str
    cache_name: str
    cache_key: Any
    fn: Callable[..., Any]
    args: tuple = ()
    then: Callable[[Any], list["Unit"]] | None = field(default=None, compare=False)
    device: str = "cpu"

    @property
    def key(self) -> str:
        """The cache file's name: two claims asking for the same point share one task."""
        return f"{self.cache_name}-{config_hash(self.cache_key)}"


def run_unit(fn: Callable[..., Any], out: str, device: str, args: tuple) -> dict:
    """Worker side of a :class:`Unit`: a Context on the shared output folder, then ``fn(ctx, *args)``.

    Returns {"value", "computed", "reused", "log"}, or {"error", "log"} when it raised: the verdict then computes
    the point in the submitting process and records the error in the report as before."""
    lines: list[str] = []
    cache = PointCache(Path(out) / "cache")
    ctx = Context(Path(out), cache, lines.append, device)
    try:
        value = fn(ctx, *args)
    except Exception as err:  # reported by the verdict, which recomputes and fails the same way
        return {"error": f"{type(err).__name__}: {err}", "log": lines, "computed": cache.computed,
                "reused": cache.reused}
    return {"value": value, "computed": cache.computed, "reused": cache.reused, "log": lines}


def _train_unit_fn(ctx: Context, name: str, spec: TrainSpec, extra: dict) -> dict:
    return _train(ctx, name, spec, **extra)[2]


def train_unit(ctx: Context, name: str, spec: TrainSpec, extra: dict,
               then: Callable[[dict, dict, Path], list[Unit]] | None = None) -> Unit:
    """Train ``spec`` + ``extra``; ``then(cfg, run_dir, summary)`` gives the units that sample it."""
    cfg = train_config(ctx, spec, extra)
    run_dir = ctx.runs / config_hash(cfg)
    follow = None if then is None else (lambda summary: then(cfg, run_dir, summary))
    return Unit("train", f"train {name}", "train", cfg, _train_unit_fn, (name, spec, extra), follow, ctx.device)


def _llc_unit_fn(ctx: Context, name: str, cfg: dict, run_dir: str, steps: list[int], sgld: SGLDSettings,
                 seed: int) -> dict:
    return _llc_at_checkpoints(ctx, name, cfg, Path(run_dir), steps, sgld, seed)


def llc_unit(ctx: Context, name: str, cfg: dict, run_dir: Path, steps: list[int], sgld: SGLDSettings, seed: int,
             then: Callable[[dict], list[Unit]] | None = None) -> Unit:
    """LLC of every seed at ``steps`` of a trained run, one batched SGLD run (:func:`_llc_at_checkpoints`)."""
    return Unit("sample", f"sample {name} ({len(steps)} checkpoints)", "llc", llc_key(cfg, steps, sgld, seed),
                _llc_unit_fn, (name, cfg, str(run_dir), steps, sgld, seed), then, ctx.device)


def _flatness_point(ctx: Context, cfg: dict, run_dir: str, step: int) -> dict:
    def flat_at() -> dict:
        from slt.flatness import flatness
        from slt.losses import get_loss

        _, (cp,) = backend.load_checkpoints(run_dir, [step], device="cpu")
        f = flatness(cp.model, get_loss(cfg["loss"]), cp.data.train(), n_probes=16, seed=0)
        return {"step": step, "trace": list(f.trace), "trace_se": list(f.trace_se), "sam": list(f.sam), "rho": f.rho}

    return ctx.cache.get_or_compute("flatness", {"run": cfg, "step": step}, flat_at)


def flatness_at_checkpoints(ctx: Context, cfg: dict, run_dir, steps: list[int]) -> list[dict]:
    """The paper's flatness baselines (slt.flatness: Hutchinson Hessian trace, 16 probes; SAM sharpness, rho 0.05)
    at the RAW checkpoints, every seed; one cached point per step. For the trajectory figures."""
    return [_flatness_point(ctx, cfg, run_dir, st) for st in steps]


def flatness_units(ctx: Context, cfg: dict, run_dir, steps: list[int]) -> list[Unit]:
    """One unit per checkpoint step (CPU): the points :func:`flatness_at_checkpoints` reads."""
    return [Unit("flatness", f"flatness step {st}", "flatness", {"run": cfg, "step": st}, _flatness_point,
                 (cfg, str(run_dir), st)) for st in steps]

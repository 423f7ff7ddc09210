"""The training loop: every seed of a config trained at once on the model's copy axis.

Read top to bottom: set-up (data, model, optimiser, minibatch sampler), resume, then one loop whose
sections are evaluate -> checkpoint -> stop -> minibatch -> forward/backward -> step.

Conventions. "Step s" means the parameters after s optimiser updates; step 0 is the initialisation.
Copies never interact: the per-copy losses are summed before ``backward`` (so each copy receives its own
gradient) and Adam, AdamW and SGD act elementwise, so copy c follows exactly the trajectory it would
follow alone (up to floating-point summation order in batched kernels).
"""
from __future__ import annotations

import csv
import io
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slt.losses import accuracy, get_loss
from slt.models.quadratic import QuadraticNet, quadratic_loss_and_grad
from slt.tasks import ModularData, make_data
from slt.runio import (
    CorruptFileError,
    RunLock,
    RunMismatchError,
    atomic_torch_save,
    atomic_write_json,
    atomic_write_text,
    check_memory,
    prepare_dir,
    safe_torch_load,
)
from slt.training.checkpoints import (
    CHECKPOINT_DIR,
    CONFIG_FILE,
    PREV_STATE_FILE,
    STATE_FILE,
    CheckpointWarning,
    build_model,
    checkpoint_path,
    config_diff,
    library_version,
    list_checkpoints,
    param_shapes,
    read_checkpoint,
    run_config,
    save_checkpoint,
)
from slt.training.config import TrainConfig

class TrainingDivergedError(ValueError):
    """The loss or the weights of some seed became NaN or infinite: the run stops, nothing is reported."""


METRIC_NAMES = ("train_loss", "test_loss", "train_acc", "test_acc", "weight_norm")
# evaluation of all pairs runs in chunks of copies so the hidden activations stay below this many elements
_EVAL_CHUNK_ELEMENTS = 1 << 24


@dataclass(frozen=True)
class TrainResult:
    """Outcome of :func:`train`.

    ``metrics["step"][i]`` is the i-th evaluated step; ``metrics[name][i][c]`` the value of ``name``
    (one of ``train_loss, test_loss, train_acc, test_acc, weight_norm``) for seed ``config.seeds[c]``
    at that step. ``memorisation_step[c]`` / ``grokking_step[c]``: first evaluated step with train /
    test accuracy >= the config's thresholds, None if never reached.
    """

    config: TrainConfig
    model: QuadraticNet
    data: ModularData
    metrics: dict[str, list]
    memorisation_step: list[int | None]
    grokking_step: list[int | None]
    wall_time_s: float

    def curve(self, name: str, seed_index: int = 0) -> list[float]:
        """The values of one metric for one copy, aligned with ``metrics["step"]``."""
        if name not in METRIC_NAMES:
            raise ValueError(f"name must be one of {METRIC_NAMES}, got {name!r}")
        return [row[seed_index] for row in self.metrics[name]]


# ---------------------------------------------------------------------------------------------- schedules

def log_steps(steps: int, n: int) -> list[int]:
    """n points log-spaced in [1, steps], rounded to integers (duplicates removed)."""
    if n <= 0:
        return []
    return sorted({int(round(x)) for x in np.logspace(0, math.log10(steps), n)} & set(range(1, steps + 1)))


def eval_steps(config: TrainConfig) -> list[int]:
    """Steps at which losses and accuracies are evaluated: 0, ``n_log`` log-spaced, every ``eval_every``, last."""
    s = {0, config.steps, *log_steps(config.steps, config.n_log)}
    if config.eval_every:
        s.update(range(0, config.steps + 1, config.eval_every))
    return sorted(s)


def checkpoint_steps(config: TrainConfig) -> list[int]:
    """Steps at which parameters are saved: 0, every ``checkpoint_every``, ``n_checkpoints_log`` log-spaced, last."""
    s = {0, config.steps, *log_steps(config.steps, config.n_checkpoints_log)}
    if config.checkpoint_every:
        s.update(range(0, config.steps + 1, config.checkpoint_every))
    return sorted(s)


def first_reaching(values: list[float], steps: list[int], threshold: float) -> int | None:
    for s, v in zip(steps, values):
        if v >= threshold:
            return s
    return None


# ---------------------------------------------------------------------------------------------- pieces

def make_optimizer(config: TrainConfig, params) -> torch.optim.Optimizer:
    """Adam with coupled L2 (``torch.optim.Adam(weight_decay=wd)``: g <- g + wd w, as the paper), AdamW
    (decoupled: w <- w (1 - lr wd)), or SGD (optionally with momentum; coupled L2).

    The fused implementation (one pass over each parameter, its gradient and moments per step) where this torch
    has it for the parameters' device, else torch's default. Why: the default (foreach) Adam makes ~10 passes
    and was a third of a training step of the grokking preset on the CPU (benchmarks/bench_training.py prints
    both). Fused Adam/AdamW agree with foreach to float rounding (~1e-7 after 300 steps), not bit for bit; SGD
    is identical."""
    params = list(params)
    if config.optimizer == "adam":
        make = lambda **kw: torch.optim.Adam(params, lr=config.lr, betas=config.betas,  # noqa: E731
                                             weight_decay=config.weight_decay, **kw)
    elif config.optimizer == "adamw":
        make = lambda **kw: torch.optim.AdamW(params, lr=config.lr, betas=config.betas,  # noqa: E731
                                              weight_decay=config.weight_decay, **kw)
    else:
        make = lambda **kw: torch.optim.SGD(params, lr=config.lr, momentum=config.momentum,  # noqa: E731
                                            weight_decay=config.weight_decay, **kw)
    try:
        return make(fused=True)
    except (RuntimeError, TypeError, ValueError):  # an older torch, or a device without fused kernels
        return make()


def make_train_step(config: TrainConfig, model: QuadraticNet, opt: torch.optim.Optimizer):
    """``step(a, b, y) -> per-copy loss (B,)`` (detached): gradient of the summed per-copy losses (each copy gets
    its own), then ``opt.step()``.

    For the Gaussian losses (mse, centred_mse) the gradient is computed in closed form
    (:func:`slt.models.quadratic.quadratic_loss_and_grad`: no autograd graph, the same arithmetic to float
    rounding, 1.25-1.45x faster per step at 10-100 seeds, benchmarks/bench_training.py part 4); otherwise by
    autograd through ``model`` and the loss."""
    params = list(model.parameters())  # U, V (absent when tied), A: the order of the closed-form gradient
    if config.loss in ("mse", "centred_mse"):
        centred = config.loss == "centred_mse"

        def step(a: torch.Tensor, b: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            per_copy, grads = quadratic_loss_and_grad(model.U, model.U if model.tied else model.V, model.A, a, b, y,
                                                      centred=centred, tied=model.tied)
            for param, g in zip(params, grads):
                param.grad = g
            opt.step()
            return per_copy
    else:
        loss_fn = get_loss(config.loss)

        def step(a: torch.Tensor, b: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            per_copy = loss_fn(model(a, b), y)
            opt.zero_grad(set_to_none=True)
            per_copy.sum().backward()
            opt.step()
            return per_copy.detach()
    return step


def _minibatch_seed(seed: int) -> int:
    # a stream distinct from the init generator (seeded by `seed` itself), derived from the seed alone so a
    # seed's batch order does not depend on which other seeds share the run
    return int(np.random.SeedSequence([int(seed), 0x6D62]).generate_state(1, dtype=np.uint64)[0] >> 1)


class MinibatchSampler:
    """Per-copy shuffled epochs without replacement (``drop_last``): copy c draws its own permutation of
    the N training indices from its own generator each epoch and walks through it ``batch_size`` at a time.

    Its whole state (generators, current permutations, position) round-trips through ``state_dict``.
    """

    def __init__(self, seeds: tuple[int, ...], n_train: int, batch_size: int) -> None:
        self.n, self.bs = n_train, batch_size
        self.gens = [torch.Generator().manual_seed(_minibatch_seed(s)) for s in seeds]
        self.perm: torch.Tensor | None = None  # (B, N)
        self.pos = 0

    def next(self) -> torch.Tensor:
        """Indices into the training set, shape (B, batch_size)."""
        if self.perm is None or self.pos + self.bs > self.n:
            self.perm = torch.stack([torch.randperm(self.n, generator=g) for g in self.gens])
            self.pos = 0
        idx = self.perm[:, self.pos:self.pos + self.bs]
        self.pos += self.bs
        return idx

    def state_dict(self) -> dict[str, Any]:
        return {"gens": [g.get_state() for g in self.gens], "perm": self.perm, "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for g, s in zip(self.gens, state["gens"]):
            g.set_state(s)
        self.perm, self.pos = state["perm"], int(state["pos"])


@torch.no_grad()
def evaluate(model: QuadraticNet, data: ModularData, loss_name: str) -> dict[str, torch.Tensor]:
    """Loss and accuracy on the full train and test sets, and the weight norm; each (B,) on CPU."""
    loss_fn = get_loss(loss_name)
    dev = model.U.device
    B, m = model.n_copies, model.config.width
    out: dict[str, list[torch.Tensor]] = {k: [] for k in METRIC_NAMES}
    n_max = max(data.n_train, data.n_test)
    chunk = max(1, _EVAL_CHUNK_ELEMENTS // (n_max * m))
    for lo in range(0, B, chunk):
        sub = range(lo, min(B, lo + chunk))
        U = model.U[lo:sub.stop]
        V = U if model.V is None else model.V[lo:sub.stop]
        A = model.A[lo:sub.stop]
        for split, (a, b, y) in (("train", data.train()), ("test", data.test())):
            a, b, y = a.to(dev), b.to(dev), y.to(dev)
            h = U.index_select(1, a) + V.index_select(1, b)  # (b, N, m)
            f = torch.matmul(h * h, A)  # (b, N, p)
            out[f"{split}_loss"].append(loss_fn(f, y).float().cpu())
            out[f"{split}_acc"].append(accuracy(f, y).float().cpu())
    out["weight_norm"] = [model.weight_norm().float().cpu()]
    return {k: torch.cat(v) for k, v in out.items()}


def _resolve_device(name: str) -> torch.device:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} requested but CUDA is not available; use device='cpu'")
    return torch.device(name)


def _refuse(out: Path, what: str, diff: dict | str) -> RunMismatchError:
    return RunMismatchError(f"out_dir {str(out)!r} already holds a run with a different config ({what}; saved vs "
                            f"requested: {diff}); choose another out_dir")


def _scan_run_dir(out: Path, config: TrainConfig) -> dict | None:
    """Check every file of an existing run directory against ``config`` BEFORE anything is written, and
    pick the resume state.

    A config.json, checkpoint or resume state of another config raises :class:`RunMismatchError`. A
    corrupt checkpoint or state is reported by name (:class:`CheckpointWarning`); the resume then uses
    the newest intact state (state.pt, else state.prev.pt) that has no corrupt checkpoint at or before
    its step, or starts again from step 0. Training is deterministic, so every fallback still gives
    results bit-identical to an uninterrupted run; the damaged files are rewritten as training passes them.
    Returns the state dict to resume from, or None.
    """
    saved = run_config(out)
    if saved is not None and saved != config:
        raise _refuse(out, CONFIG_FILE, config_diff(saved, config))
    for tmp in [*out.glob(".*.tmp"), *(out / CHECKPOINT_DIR).glob(".*.tmp")]:
        tmp.unlink(missing_ok=True)  # temporaries of a killed writer (we hold the lock: nobody else writes)
    corrupt_steps: list[int] = []
    for s in list_checkpoints(out):
        try:
            read_checkpoint(checkpoint_path(out, s), expect=config)
        except RunMismatchError as err:
            raise RunMismatchError(f"out_dir {str(out)!r} already holds a run with a different config: {err}; "
                                   "choose another out_dir") from None
        except CorruptFileError as err:
            warnings.warn(str(err), CheckpointWarning, stacklevel=3)
            corrupt_steps.append(s)
    want = param_shapes(config)
    candidates = []
    for name in (STATE_FILE, PREV_STATE_FILE):
        f = out / name
        if not f.exists():
            continue
        try:
            st = safe_torch_load(f, "resume state")
            if not isinstance(st, dict) or not {"step", "params", "optimizer", "metrics"} <= set(st):
                raise CorruptFileError(f"resume state {f} lacks the keys step/params/optimizer/metrics")
        except CorruptFileError as err:
            warnings.warn(str(err), CheckpointWarning, stacklevel=3)
            continue
        if "config_hash" in st and st["config_hash"] != config.hash():
            saved_cfg = st.get("config")
            diff = (config_diff(TrainConfig.from_dict(saved_cfg), config) if isinstance(saved_cfg, dict)
                    else f"config hash {st['config_hash']} vs {config.hash()}")
            raise _refuse(out, name, diff)
        got = {k: tuple(v.shape) for k, v in st["params"].items()} if isinstance(st["params"], dict) else None
        if got != want:  # also catches a state of an older version (no config_hash) from another width/p
            raise _refuse(out, name, f"parameter shapes {got} vs {want}")
        candidates.append((name, st))
    for name, st in candidates:
        bad = [s for s in corrupt_steps if s <= int(st["step"])]
        if not bad:
            if name != STATE_FILE:
                warnings.warn(f"resuming from {out / name} (step {int(st['step'])}) instead of {out / STATE_FILE}",
                              CheckpointWarning, stacklevel=3)
            return st
        warnings.warn(f"{out / name} (step {int(st['step'])}) is not used: checkpoint(s) at step(s) {bad} "
                      "before it are corrupt and must be recomputed", CheckpointWarning, stacklevel=3)
    if corrupt_steps or any((out / n).exists() for n in (STATE_FILE, PREV_STATE_FILE)):
        warnings.warn(f"no intact resume state in {out}: training again from step 0 (deterministic: the "
                      "same numbers)", CheckpointWarning, stacklevel=3)
    return None


def _keep_previous_state(out: Path) -> None:
    """Make state.prev.pt the current state.pt (the fallback should the next state turn out torn) without
    a moment in which state.pt is missing: a hard link under a temporary name, moved into place."""
    cur = out / STATE_FILE
    if not cur.exists():
        return
    tmp = out / f".{PREV_STATE_FILE}.{os.getpid()}.tmp"
    try:
        tmp.unlink(missing_ok=True)
        os.link(cur, tmp)
    except OSError:  # no hard links on this filesystem: rotate by rename (a crash now leaves only prev)
        os.replace(cur, out / PREV_STATE_FILE)
        return
    os.replace(tmp, out / PREV_STATE_FILE)


def estimate_memory(config: TrainConfig) -> tuple[float, float]:
    """Rough peak bytes (host, device) of :func:`train`: the data set (all p^2 pairs as int64 a, b, y, a
    permutation and index copies: ~64 bytes a pair) on the host; on the device the parameters with
    gradients and two Adam moments (4x), the training activations of one step (hidden pre/post
    activations and outputs per copy) and the chunked evaluation buffers."""
    P = config.p * config.p
    elem = 8 if config.dtype == "float64" else 4
    B, K, p = len(config.seeds), config.width, config.p
    n_train = int(config.train_fraction * P)
    n_b = n_train if config.batch_size is None else min(config.batch_size, n_train)
    params = 4 * elem * B * K * p * 3
    acts = elem * B * n_b * (3 * K + 3 * p)
    hidden = max(_EVAL_CHUNK_ELEMENTS, P * K)  # a chunk holds >= one copy's (N, K) hidden activations
    evals = 3 * elem * hidden * (1 + p / K)
    host = 64.0 * P
    dev = float(params + acts + evals)
    return (host + dev, dev) if config.device == "cpu" else (host, dev)


def _check_finite(model: QuadraticNet, nonfinite_at: torch.Tensor, step: int, config: TrainConfig,
                  ev: dict | None, out: Path | None) -> None:
    """Raise :class:`TrainingDivergedError` if a loss seen so far, the weights or the evaluation is not finite."""
    bad = nonfinite_at >= 0
    with torch.no_grad():
        for prm in model.parameters():
            bad = bad | ~torch.isfinite(prm.reshape(prm.shape[0], -1)).all(1)
    if ev is not None:
        for k in ("train_loss", "test_loss", "weight_norm"):
            bad = bad | ~torch.isfinite(ev[k]).to(bad.device)
    if not bool(bad.any()):
        return
    seeds = [config.seeds[c] for c in torch.nonzero(bad).flatten().tolist()]
    at = nonfinite_at[nonfinite_at >= 0]
    first = int(at.min()) if at.numel() else step
    what = "loss" if at.numel() else "weights or outputs"
    hint = (f"lower lr (e.g. {config.lr / 10:g})" + (" or use optimizer adam" if config.optimizer == "sgd" else "")
            + ("; lower init_scale" if config.init_scale > 1 else ""))
    where = (f"; checkpoints up to the last saved step are intact in {str(out)!r} (rerunning the same command "
             "diverges again)") if out is not None else ""
    raise TrainingDivergedError(
        f"training diverged: the {what} of seed(s) {seeds} became NaN/inf at step {first} of {config.steps} "
        f"({config.optimizer}, lr={config.lr:g}, batch_size={config.batch_size}); {hint}; no result is "
        f"reported{where}")


# ---------------------------------------------------------------------------------------------- outputs

def _summary(config: TrainConfig, metrics: dict[str, list]) -> tuple[list, list]:
    B = len(config.seeds)
    mem = [first_reaching([r[c] for r in metrics["train_acc"]], metrics["step"], config.memorise_threshold)
           for c in range(B)]
    grok = [first_reaching([r[c] for r in metrics["test_acc"]], metrics["step"], config.grok_threshold)
            for c in range(B)]
    return mem, grok


def _write_outputs(out: Path, config: TrainConfig, metrics: dict[str, list], wall: float,
                   complete: bool, plot: bool) -> None:
    mem, grok = _summary(config, metrics)
    atomic_write_json(out / "metrics.json", {
        "config": config.to_dict(), "version": library_version(), "complete": complete,
        "steps_done": metrics["step"][-1] if metrics["step"] else 0, "wall_time_s": wall,
        "seeds": list(config.seeds), "memorisation_step": mem, "grokking_step": grok,
        "metrics": metrics,
    })
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["step", "seed", *METRIC_NAMES])
    for i, s in enumerate(metrics["step"]):
        for c, seed in enumerate(config.seeds):
            w.writerow([s, seed, *(repr(metrics[k][i][c]) for k in METRIC_NAMES)])
    atomic_write_text(out / "metrics.csv", buf.getvalue())
    if plot:
        from slt.training.plots import plot_curves

        plot_curves(metrics, list(config.seeds), mem, grok, out / "curves.png",
                    title=f"{config.op} mod {config.p}, width {config.width}, lr {config.lr:g}, "
                          f"wd {config.weight_decay:g}")


# ---------------------------------------------------------------------------------------------- the loop

def train(config: TrainConfig, out_dir: str | Path | None = None, progress: bool = False) -> TrainResult:
    """Train every seed of ``config`` at once; optionally write (and resume) a run directory.

    With ``out_dir``: writes config.json, checkpoints/step_XXXXXXXX.pt, state.pt (and state.prev.pt),
    metrics.json, metrics.csv and curves.png (all atomically, keeping the umask) while holding the
    directory's writer lock (a second writer gets a ValueError naming this process's pid). If ``out_dir``
    already holds a run with the same config, training resumes from its last resume state (parameters,
    optimiser state, minibatch RNG state and metrics so far) and gives results bit-identical to an
    uninterrupted run; a finished run is just reloaded; corrupt files are reported and skipped (see
    :func:`_scan_run_dir`). A config.json, checkpoint or state of a different config raises ValueError
    before anything is written.

    Raises :class:`TrainingDivergedError` (a ValueError) as soon as a loss or weight of any seed is NaN
    or infinite: checked every step on the device and synchronised at each evaluation and checkpoint, so
    no non-finite number reaches a checkpoint, the metrics or the result.
    """
    if not isinstance(config, TrainConfig):
        raise ValueError(f"config must be a TrainConfig, got {type(config).__name__}")
    device = _resolve_device(config.device)
    host_bytes, dev_bytes = estimate_memory(config)
    what = f"training p={config.p} (p^2 = {config.p ** 2} pairs), width {config.width}, {len(config.seeds)} seed(s)"
    check_memory(host_bytes, what, "cpu")
    if device.type == "cuda":
        check_memory(dev_bytes, what, device)
    from slt.execution import tune_malloc

    tune_malloc()  # keep freed activations and gradients for the next step (slt.execution.tune_malloc)
    out = Path(out_dir) if out_dir is not None else None
    if out is None:
        return _train(config, device, None, None, progress)
    prepare_dir(out, "out_dir")
    with RunLock(out):
        resume = _scan_run_dir(out, config)
        return _train(config, device, out, resume, progress)


def _train(config: TrainConfig, device: torch.device, out: Path | None, st: dict | None,
           progress: bool) -> TrainResult:
    t0 = time.perf_counter()

    # ---- set-up: data, model, optimiser, minibatches
    data = make_data(config.p, config.op, config.train_fraction, config.data_seed)
    a_tr, b_tr, y_tr = (t.to(device) for t in data.train())
    model = build_model(config, device)
    opt = make_optimizer(config, model.parameters())
    train_step = make_train_step(config, model, opt)
    full_batch = config.batch_size is None or config.batch_size >= data.n_train
    sampler = None if full_batch else MinibatchSampler(config.seeds, data.n_train, config.batch_size)
    metrics: dict[str, list] = {"step": [], **{k: [] for k in METRIC_NAMES}}
    start, wall_before, done, resumed = 0, 0.0, False, False
    # step at which each copy's training loss was first non-finite (-1: never); kept on the device so the
    # check costs no host sync per step, read at evaluations and checkpoints
    nonfinite_at = torch.full((len(config.seeds),), -1, dtype=torch.long, device=device)

    # ---- resume (the run dir was checked and the state chosen by _scan_run_dir, under the lock)
    if out is not None:
        atomic_write_json(out / CONFIG_FILE, config.to_dict())
        if st is not None:
            model.load_state_dict(st["params"])
            opt.load_state_dict(st["optimizer"])
            if sampler is not None:
                sampler.load_state_dict(st["sampler"])
            metrics, start, wall_before = st["metrics"], int(st["step"]), float(st["wall_time_s"])
            done, resumed = bool(st.get("complete", False)), True
    evals, ckpts = set(eval_steps(config)), set(checkpoint_steps(config))

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=config.steps, initial=start, unit="step", dynamic_ncols=True)

    try:
        for step in range(start, config.steps + 1):
            if done:
                break
            stop = step == config.steps
            resumed_here = resumed and step == start  # evaluated and saved before the interruption
            # ---- evaluate (no_grad; the only host sync besides checkpoints)
            if step in evals and not resumed_here:
                ev = evaluate(model, data, config.loss)
                _check_finite(model, nonfinite_at, step, config, ev, out)
                metrics["step"].append(step)
                for k in METRIC_NAMES:
                    metrics[k].append(ev[k].tolist())
                stop = stop or config.stop_on_grok and bool((ev["test_acc"] >= config.grok_threshold).all())
                if bar is not None:
                    bar.set_postfix(train_acc=f"{ev['train_acc'].mean():.3f}", test_acc=f"{ev['test_acc'].mean():.3f}")
            # ---- checkpoint: parameters first, then the resume state that points at them
            if out is not None and (step in ckpts or stop) and not resumed_here:
                _check_finite(model, nonfinite_at, step, config, None, out)
                save_checkpoint(out, step, model, config)
                wall = wall_before + time.perf_counter() - t0
                state = {
                    "step": step, "config": config.to_dict(), "config_hash": config.hash(),
                    "params": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                    "optimizer": opt.state_dict(), "sampler": sampler.state_dict() if sampler else None,
                    "metrics": metrics, "wall_time_s": wall, "complete": stop,
                }
                _keep_previous_state(out)
                atomic_torch_save(out / STATE_FILE, state)
                _write_outputs(out, config, metrics, wall, complete=stop, plot=False)
            # ---- stop
            if stop:
                break
            # ---- minibatch
            if full_batch:
                a, b, y = a_tr, b_tr, y_tr  # (N,) shared by all copies
            else:
                idx = sampler.next().to(device)  # (B, n) one batch per copy
                a, b, y = a_tr[idx], b_tr[idx], y_tr[idx]
            # ---- forward / backward / step
            per_copy = train_step(a, b, y)
            newly = ~torch.isfinite(per_copy) & (nonfinite_at < 0)
            nonfinite_at = torch.where(newly, torch.full_like(nonfinite_at, step), nonfinite_at)
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    if not done:  # a finished run reloaded from its state was checked when it was written
        _check_finite(model, nonfinite_at, config.steps, config, None, out)

    wall = wall_before + time.perf_counter() - t0
    if out is not None:
        _write_outputs(out, config, metrics, wall, complete=True, plot=True)
    mem, grok = _summary(config, metrics)
    return TrainResult(config=config, model=model, data=data, metrics=metrics, memorisation_step=mem,
                       grokking_step=grok, wall_time_s=wall)

"""Atomic file output, parameter checkpoints and the resume state of a training run.

Layout of a run directory::

    config.json                      the TrainConfig (written first; a different config is refused)
    checkpoints/step_XXXXXXXX.pt     parameters after XXXXXXXX optimiser steps, with config and version
    state.pt                         everything needed to resume after the last checkpoint
    metrics.json, metrics.csv        curves so far ("complete": true once finished)
    curves.png                       train/test accuracy vs step

Every file is written to a temporary name in the same directory, fsynced and moved into place with
``os.replace`` (:mod:`slt.runio`), so a crash leaves either the old file or the new one, never a torn one.
Checkpoints and the resume state carry the hash of the config they belong to (``TrainConfig.hash``), so
files of another run are refused by name, and are read with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

from slt.models.quadratic import QuadraticNet
from slt.runio import CorruptFileError, atomic_torch_save, atomic_write, atomic_write_json, atomic_write_text
from slt.runio import RunMismatchError, safe_torch_load
from slt.tasks import ModularData, make_data
from slt.training.config import TrainConfig

__all__ = ["CHECKPOINT_DIR", "STATE_FILE", "PREV_STATE_FILE", "CONFIG_FILE", "Checkpoint", "CheckpointWarning",
           "atomic_torch_save", "atomic_write", "atomic_write_json", "atomic_write_text", "build_model",
           "checkpoint_path", "list_checkpoints", "load_checkpoint", "read_checkpoint", "save_checkpoint"]

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "state.pt"
PREV_STATE_FILE = "state.prev.pt"  # the resume state before the latest one: the fallback if state.pt is torn
CONFIG_FILE = "config.json"
_CKPT_RE = re.compile(r"^step_(\d{8,})\.pt$")


class CheckpointWarning(UserWarning):
    """A corrupt checkpoint was skipped in favour of an older intact one."""


def library_version() -> str:
    try:
        from importlib.metadata import version

        return version("slt")
    except Exception:  # running from a source tree that was never installed
        return "unknown"


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:08d}.pt"


def save_checkpoint(run_dir: str | Path, step: int, model: QuadraticNet, config: TrainConfig) -> Path:
    """Parameters (on CPU) after ``step`` optimiser steps, with the config and library version."""
    path = checkpoint_path(run_dir, step)
    params = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    atomic_torch_save(path, {"step": step, "config": config.to_dict(), "config_hash": config.hash(),
                             "version": library_version(), "params": params})
    return path


def list_checkpoints(run_dir: str | Path) -> list[int]:
    """Steps of the checkpoints saved in ``run_dir``, ascending."""
    d = Path(run_dir) / CHECKPOINT_DIR
    if not d.is_dir():
        return []
    return sorted(int(m.group(1)) for f in d.iterdir() if (m := _CKPT_RE.match(f.name)))


@dataclass(frozen=True)
class Checkpoint:
    """A saved parameter state: ``model`` holds every seed of the run on its copy axis."""

    step: int
    model: QuadraticNet
    config: TrainConfig
    data: ModularData


def build_model(config: TrainConfig, device: str | torch.device = "cpu") -> QuadraticNet:
    """The run's network, initialised copy by copy: copy c from ``torch.Generator().manual_seed(seeds[c])``.

    Each copy's initial parameters are exactly those of a one-copy ``QuadraticNet`` built with that
    generator, independent of the other seeds.
    """
    dtype = getattr(torch, config.dtype)
    singles = [
        QuadraticNet(config.p, config.width, 1, config.tied, None, config.init_scale,
                     generator=torch.Generator().manual_seed(s), dtype=dtype)
        for s in config.seeds
    ]
    model = QuadraticNet(config.p, config.width, len(config.seeds), config.tied, None, config.init_scale,
                         generator=torch.Generator().manual_seed(0), dtype=dtype)
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.copy_(torch.cat([getattr(s, name) for s in singles], 0))
    return model.to(device)


def read_checkpoint(path: str | Path, expect: TrainConfig | None = None) -> tuple[int, TrainConfig, dict]:
    """Read and check one checkpoint file: (step, its config, its parameters).

    Raises :class:`~slt.runio.CorruptFileError` (a ValueError naming the file) when it cannot be read,
    lacks the expected keys, carries an invalid config or holds parameters whose shapes do not match its
    config; :class:`~slt.runio.RunMismatchError` when its config differs from ``expect``.
    """
    path = Path(path)
    blob = safe_torch_load(path, "checkpoint")
    if not isinstance(blob, dict) or not {"step", "config", "params"} <= set(blob):
        raise CorruptFileError(f"checkpoint {path} is not an slt checkpoint (expected keys step, config, params)")
    try:
        config = TrainConfig.from_dict(blob["config"])
    except ValueError as err:
        raise CorruptFileError(f"checkpoint {path} carries an invalid config: {err}") from None
    if "config_hash" in blob and blob["config_hash"] != config.hash():
        raise CorruptFileError(f"checkpoint {path}: its config does not match its config_hash (edited?)")
    if expect is not None and config != expect:
        diff = config_diff(config, expect)
        raise RunMismatchError(f"checkpoint {path} belongs to a different run (its config vs this run's: {diff})")
    params = blob["params"]
    want = param_shapes(config)
    got = {k: tuple(v.shape) for k, v in params.items()} if isinstance(params, dict) and all(
        isinstance(v, torch.Tensor) for v in params.values()) else None
    if got != want:
        raise CorruptFileError(f"checkpoint {path}: parameter shapes {got} do not match its config "
                               f"(p={config.p}, width={config.width}, {len(config.seeds)} seed(s): {want})")
    return int(blob["step"]), config, params


def param_shapes(config: TrainConfig) -> dict[str, tuple[int, ...]]:
    """Shapes of the run's parameters (``build_model(config).state_dict()``) without initialising them."""
    B, p, K = len(config.seeds), config.p, config.width
    shapes = {"U": (B, p, K), "A": (B, K, p)}
    if not config.tied:
        shapes["V"] = (B, p, K)
    return shapes


def config_diff(a: TrainConfig, b: TrainConfig) -> dict:
    da, db = a.to_dict(), b.to_dict()
    return {k: (da.get(k), db.get(k)) for k in sorted(set(da) | set(db)) if da.get(k) != db.get(k)}


def run_config(run_dir: str | Path) -> TrainConfig | None:
    """The run's config.json, or None if absent; unreadable or invalid -> ValueError naming the file."""
    f = Path(run_dir) / CONFIG_FILE
    if not f.exists():
        return None
    try:
        return TrainConfig.from_dict(json.loads(f.read_text()))
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as err:
        raise CorruptFileError(f"{f} is not a valid run config: {err}") from None
    except OSError as err:
        raise ValueError(f"{f} cannot be read: {err.strerror or err}") from None


def load_checkpoint(run_dir: str | Path, step: int | None = None,
                    device: str | torch.device = "cpu") -> Checkpoint:
    """Load the checkpoint at ``step`` (None: the newest intact one) of a run directory.

    Every checkpoint must carry the run's config (config.json, when present). A corrupt checkpoint at an
    explicit ``step`` raises ValueError naming the file; with ``step=None`` a corrupt newest checkpoint is
    reported (:class:`CheckpointWarning`, naming the file) and the newest intact one is used.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ValueError(f"run_dir {str(run_dir)!r} holds no checkpoints: it is not an existing directory")
    steps = list_checkpoints(run_dir)
    if not steps:
        raise ValueError(f"run_dir {str(run_dir)!r} holds no checkpoints (expected {CHECKPOINT_DIR}/step_*.pt)")
    if step is not None and step not in steps:
        raise ValueError(f"step must be one of the saved checkpoints {steps}, got {step!r}")
    expect = run_config(run_dir)
    errors = []
    for s in ([step] if step is not None else steps[::-1]):
        try:
            got_step, config, params = read_checkpoint(checkpoint_path(run_dir, s), expect)
        except CorruptFileError as err:  # (a RunMismatchError is never skipped: it is raised)
            if step is not None:
                raise
            errors.append(str(err))
            continue
        if errors:
            warnings.warn(f"{'; '.join(errors)}; using the newest intact checkpoint, step {s}",
                          CheckpointWarning, stacklevel=2)
        model = build_model(config)
        model.load_state_dict(params)
        data = make_data(config.p, config.op, config.train_fraction, config.data_seed)
        return Checkpoint(step=got_step, model=model.to(device), config=config, data=data)
    raise CorruptFileError(f"no intact checkpoint in {run_dir}: {'; '.join(errors)}")

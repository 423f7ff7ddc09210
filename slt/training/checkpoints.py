"""Atomic file output, parameter checkpoints and the resume state of a training run.

Layout of a run directory::

    config.json                      the TrainConfig (written first; a different config is refused)
    checkpoints/step_XXXXXXXX.pt     parameters after XXXXXXXX optimiser steps, with config and version
    state.pt                         everything needed to resume after the last checkpoint
    metrics.json, metrics.csv        curves so far ("complete": true once finished)
    curves.png                       train/test accuracy vs step

Every file is written to a temporary name in the same directory and moved into place with
``os.replace``, so a crash leaves either the old file or the new one, never a torn one.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from slt.models.quadratic import QuadraticNet
from slt.tasks import ModularData, make_data
from slt.training.config import TrainConfig

CHECKPOINT_DIR = "checkpoints"
STATE_FILE = "state.pt"
CONFIG_FILE = "config.json"
_CKPT_RE = re.compile(r"^step_(\d{8,})\.pt$")


def library_version() -> str:
    try:
        from importlib.metadata import version

        return version("slt")
    except Exception:  # running from a source tree that was never installed
        return "unknown"


def atomic_write(path: str | Path, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then move tmp_path onto ``path`` (same directory, so the move is atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=1) + "\n")


def atomic_torch_save(path: str | Path, obj: Any) -> None:
    atomic_write(path, lambda tmp: torch.save(obj, tmp))


def checkpoint_path(run_dir: str | Path, step: int) -> Path:
    return Path(run_dir) / CHECKPOINT_DIR / f"step_{step:08d}.pt"


def save_checkpoint(run_dir: str | Path, step: int, model: QuadraticNet, config: TrainConfig) -> Path:
    """Parameters (on CPU) after ``step`` optimiser steps, with the config and library version."""
    path = checkpoint_path(run_dir, step)
    params = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    atomic_torch_save(path, {"step": step, "config": config.to_dict(), "version": library_version(),
                             "params": params})
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


def load_checkpoint(run_dir: str | Path, step: int | None = None,
                    device: str | torch.device = "cpu") -> Checkpoint:
    """Load the checkpoint at ``step`` (None: the latest) of a run directory."""
    steps = list_checkpoints(run_dir)
    if not steps:
        raise ValueError(f"run_dir {str(run_dir)!r} holds no checkpoints (expected {CHECKPOINT_DIR}/step_*.pt)")
    if step is None:
        step = steps[-1]
    if step not in steps:
        raise ValueError(f"step must be one of the saved checkpoints {steps}, got {step!r}")
    blob = torch.load(checkpoint_path(run_dir, step), map_location="cpu", weights_only=True)
    config = TrainConfig.from_dict(blob["config"])
    model = build_model(config)
    model.load_state_dict(blob["params"])
    data = make_data(config.p, config.op, config.train_fraction, config.data_seed)
    return Checkpoint(step=int(blob["step"]), model=model.to(device), config=config, data=data)

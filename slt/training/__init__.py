"""Training quadratic networks on modular arithmetic: config, loop, checkpoints (see :func:`train`)."""
from slt.training.checkpoints import Checkpoint, build_model, list_checkpoints, load_checkpoint
from slt.training.config import TrainConfig, default_config, load_config
from slt.training.loop import (
    MinibatchSampler,
    TrainingDivergedError,
    TrainResult,
    checkpoint_steps,
    estimate_memory,
    eval_steps,
    evaluate,
    train,
)

__all__ = [
    "Checkpoint", "MinibatchSampler", "TrainConfig", "TrainResult", "TrainingDivergedError", "build_model",
    "checkpoint_steps", "default_config", "estimate_memory", "eval_steps", "evaluate", "list_checkpoints",
    "load_checkpoint", "load_config", "train",
]

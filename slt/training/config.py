"""Training configuration: one frozen dataclass, JSON in and out, every value checked.

A run is fully determined by its :class:`TrainConfig` (plus the library version): the data split by
``data_seed``, copy c's initialisation by ``seeds[c]``, copy c's minibatch order by a generator derived
from ``seeds[c]`` alone. So a seed trains the same way alone or beside other seeds.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import math
from dataclasses import asdict, dataclass, fields
from importlib import resources
from pathlib import Path
from typing import Any

from slt.tasks import OPS, PRIME_OPS, is_prime

OPTIMIZERS = ("adam", "adamw", "sgd")
LOSS_NAMES = ("mse", "centred_mse", "cross_entropy")
DTYPES = ("float32", "float64")
PRESETS = ("grokking", "no_grokking")


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run.

    Defaults are the setting of Cullen et al. (arXiv 2603.01192): (a + b) mod 53, 40% of pairs for
    training, width 1024, Adam with coupled L2 weight decay 1e-5 (``torch.optim.Adam(weight_decay=...)``),
    lr 1e-4, batch 128, centred MSE. The shipped presets (:func:`default_config`) change some of these.

    Schedules: accuracy and losses are evaluated at ``n_log`` log-spaced steps in [1, steps] plus step 0,
    the last step and every ``eval_every`` steps (if set). Parameters are saved at step 0, the last step,
    every ``checkpoint_every`` steps (if set) and at ``n_checkpoints_log`` log-spaced steps.
    ``memorisation_step`` / ``grokking_step`` are the first *evaluated* steps at which train / test
    accuracy reach ``memorise_threshold`` / ``grok_threshold``, so their resolution is the schedule's.
    """

    # task
    p: int = 53
    op: str = "add"
    train_fraction: float = 0.4
    data_seed: int = 0
    # model
    width: int = 1024
    tied: bool = False
    init_scale: float = 1.0
    seeds: tuple[int, ...] = (0,)
    # optimisation
    optimizer: str = "adam"
    lr: float = 1e-4
    weight_decay: float = 1e-5
    betas: tuple[float, float] = (0.9, 0.999)
    momentum: float = 0.0  # sgd only
    batch_size: int | None = 128  # None: full batch
    loss: str = "centred_mse"
    steps: int = 20_000
    # logging and checkpoints
    n_log: int = 100
    eval_every: int | None = None
    checkpoint_every: int | None = None
    n_checkpoints_log: int = 20
    grok_threshold: float = 0.95
    memorise_threshold: float = 0.99
    stop_on_grok: bool = False  # end the run at the first evaluation where every seed has grokked
    # numerics
    device: str = "cpu"
    dtype: str = "float32"

    def __post_init__(self) -> None:
        # normalise JSON lists into tuples so equal configs compare (and hash) equal; a scalar such as
        # "seeds": 3 is refused here rather than failing inside tuple() with a TypeError
        for name, hint in (("seeds", "a non-empty list of integers >= 0, e.g. [0, 1, 2]"),
                           ("betas", "two numbers in [0, 1), e.g. [0.9, 0.999]")):
            v = getattr(self, name)
            if not isinstance(v, (list, tuple)):
                raise ValueError(f"{name} must be {hint}, got {v!r}")
            object.__setattr__(self, name, tuple(v))
        _validate(self)

    def hash(self) -> str:
        """SHA-256 (first 16 hex digits) of the canonical JSON of :meth:`to_dict`: identifies the run a
        checkpoint or resume state belongs to."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["seeds"] = list(self.seeds)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "TrainConfig":
        """Build from a plain dict (e.g. parsed JSON). Unknown keys raise ValueError with a suggestion."""
        if not isinstance(d, dict):
            raise ValueError(f"config must be a JSON object (dict), got {type(d).__name__}")
        names = [f.name for f in fields(cls)]
        unknown = [k for k in d if k not in names]
        if unknown:
            msgs = []
            for k in unknown:
                close = difflib.get_close_matches(str(k), names, n=1)
                msgs.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            raise ValueError(f"unknown config key(s): {', '.join(msgs)}; allowed keys: {', '.join(names)}")
        try:
            return cls(**d)
        except TypeError as err:  # a value of a type the checks cannot even compare (e.g. a dict)
            raise ValueError(f"config has a value of the wrong type: {err}") from None

    def replace(self, **changes: Any) -> "TrainConfig":
        """A copy with some fields changed (validated, unknown names rejected like ``from_dict``)."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})


def _is_int(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_real(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _validate(c: TrainConfig) -> None:
    def need(cond: bool, msg: str) -> None:
        if not cond:
            raise ValueError(msg)

    need(c.op in OPS, f"op must be one of {OPS}, got {c.op!r}")
    need(_is_int(c.p) and c.p >= 2, f"p must be an integer >= 2, got {c.p!r}")
    need(c.op not in PRIME_OPS or is_prime(c.p), f"p must be prime for op={c.op!r}, got p={c.p}")
    need(_is_real(c.train_fraction) and 0 < c.train_fraction < 1,
         f"train_fraction must lie in the open interval (0, 1), got {c.train_fraction!r}")
    need(_is_int(c.data_seed) and c.data_seed >= 0, f"data_seed must be an integer >= 0, got {c.data_seed!r}")
    need(_is_int(c.width) and c.width >= 1, f"width must be an integer >= 1, got {c.width!r}")
    need(isinstance(c.stop_on_grok, bool), f"stop_on_grok must be true or false, got {c.stop_on_grok!r}")
    need(isinstance(c.tied, bool), f"tied must be true or false, got {c.tied!r}")
    need(_is_real(c.init_scale) and c.init_scale > 0, f"init_scale must be a finite number > 0, got {c.init_scale!r}")
    need(len(c.seeds) >= 1 and all(_is_int(s) and s >= 0 for s in c.seeds),
         f"seeds must be a non-empty list of integers >= 0, got {list(c.seeds)!r}")
    need(len(set(c.seeds)) == len(c.seeds), f"seeds must be distinct, got {list(c.seeds)!r}")
    need(c.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}, got {c.optimizer!r}")
    need(_is_real(c.lr) and c.lr > 0, f"lr must be a finite number > 0, got {c.lr!r}")
    need(_is_real(c.weight_decay) and c.weight_decay >= 0,
         f"weight_decay must be a finite number >= 0, got {c.weight_decay!r}")
    need(len(c.betas) == 2 and all(_is_real(x) and 0 <= x < 1 for x in c.betas),
         f"betas must be two numbers in [0, 1), got {list(c.betas)!r}")
    need(_is_real(c.momentum) and 0 <= c.momentum < 1, f"momentum must lie in [0, 1), got {c.momentum!r}")
    need(c.batch_size is None or (_is_int(c.batch_size) and c.batch_size >= 1),
         f"batch_size must be null (full batch) or an integer >= 1, got {c.batch_size!r}")
    need(c.loss in LOSS_NAMES, f"loss must be one of {LOSS_NAMES}, got {c.loss!r}")
    need(_is_int(c.steps) and c.steps >= 1, f"steps must be an integer >= 1, got {c.steps!r}")
    need(_is_int(c.n_log) and c.n_log >= 1, f"n_log must be an integer >= 1, got {c.n_log!r}")
    need(c.eval_every is None or (_is_int(c.eval_every) and c.eval_every >= 1),
         f"eval_every must be null or an integer >= 1, got {c.eval_every!r}")
    need(c.checkpoint_every is None or (_is_int(c.checkpoint_every) and c.checkpoint_every >= 1),
         f"checkpoint_every must be null or an integer >= 1, got {c.checkpoint_every!r}")
    need(_is_int(c.n_checkpoints_log) and c.n_checkpoints_log >= 0,
         f"n_checkpoints_log must be an integer >= 0, got {c.n_checkpoints_log!r}")
    for name in ("grok_threshold", "memorise_threshold"):
        v = getattr(c, name)
        need(_is_real(v) and 0 < v <= 1, f"{name} must lie in (0, 1], got {v!r}")
    need(isinstance(c.device, str) and (c.device in ("cpu", "cuda") or c.device.startswith("cuda:")),
         f"device must be 'cpu', 'cuda' or 'cuda:N', got {c.device!r}")
    need(c.dtype in DTYPES, f"dtype must be one of {DTYPES}, got {c.dtype!r}")


def load_config(path: str | Path) -> TrainConfig:
    """Read a JSON file holding a (possibly partial) config; missing keys take the dataclass defaults."""
    path = Path(path)
    try:
        d = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(f"config file not found: {path}") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"config file {path} is not valid JSON: {err}") from None
    except UnicodeDecodeError:
        raise ValueError(f"config file {path} is not UTF-8 text (a JSON object is expected)") from None
    except OSError as err:  # a directory, no permission, ...
        raise ValueError(f"config file {path} cannot be read: {err.strerror or err}") from None
    try:
        return TrainConfig.from_dict(d)
    except ValueError as err:
        raise ValueError(f"config file {path}: {err}") from None


def default_config(name: str = "grokking") -> TrainConfig:
    """A shipped preset: ``"grokking"`` (memorise early, generalise much later) or ``"no_grokking"``
    (train and test accuracy rise together). Found by ``experiments/grokking_sweep`` (see its RESULTS.md).
    """
    if name not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {name!r}")
    text = resources.files("slt").joinpath("configs", f"{name}.json").read_text()
    return TrainConfig.from_dict(json.loads(text))

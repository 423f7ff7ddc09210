"""The integration points of ``slt check``: the only place that calls training, sampling and theory.

Everything else in :mod:`slt.checks` works on the plain numbers returned here, so the claims can be tested
with small fakes and a change in a lower layer touches one file.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from slt.checks.profiles import SGLDSettings
from slt.models.quadratic import QuadraticNet


@dataclass(frozen=True)
class CopyLLC:
    """LLC estimate of one model copy, reduced to what the checks use."""

    llc: float
    se: float  # across chains
    per_chain: tuple[float, ...]
    ok: bool  # the sampler's own health checks passed (no warnings, no divergence)
    note: str  # its warnings, joined
    eps: float
    n_beta: float
    init_loss: float
    mala: float
    rhat: float

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    @classmethod
    def from_dict(cls, d: dict) -> "CopyLLC":
        return cls(**{k: (tuple(v) if k == "per_chain" else (math.nan if v is None else v)) for k, v in d.items()})


def llc_per_copy(model: QuadraticNet, loss_fn: Callable, data: Sequence[torch.Tensor], sgld: SGLDSettings,
                 seed: int) -> list[CopyLLC]:
    """One LLC per copy of ``model`` in one batched SGLD run (``slt.sampling.estimate_llc_copies``)."""
    from slt.sampling import LLCWarning, SGLDDivergenceError, estimate_llc_copies

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", LLCWarning)  # recorded per copy below, not printed
            results = estimate_llc_copies(model, loss_fn, tuple(data), seed=seed, **sgld.kwargs())
    except SGLDDivergenceError as err:
        nan = math.nan
        return [CopyLLC(nan, nan, (), False, f"SGLD diverged: {err}", nan, nan, nan, nan, nan)
                for _ in range(model.n_copies)]
    out = []
    for r in results:
        d = r.diagnostics
        out.append(CopyLLC(float(r.llc), float(r.llc_se), tuple(float(x) for x in r.llc_per_chain),
                           not d.warnings, "; ".join(d.warnings), float(r.eps), float(r.n_beta),
                           float(r.init_loss), float(d.mala_acceptance), float(d.rhat)))
    return out


def calibrate_eps(model: QuadraticNet, loss_fn: Callable, data: Sequence[torch.Tensor], sgld: SGLDSettings,
                  seed: int) -> float:
    """The sampler's automatic step size (curvature rule with pilot chains, ``eps=None``) for each copy of
    ``model``, minimised over copies: one step size safe for all of them and for flatter points.

    Running the pilot once on a few copies instead of on every copy of a batched run is the point: the
    pilot dominates the cost of short runs (~80% for 21 copies x 150 steps)."""
    from slt.sampling import LLCWarning, estimate_llc_copies

    kw = {**sgld.kwargs(), "num_draws": 2, "num_burnin": 0}
    kw.pop("eps", None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LLCWarning)
        results = estimate_llc_copies(model, loss_fn, tuple(data), seed=seed, **kw)
    return float(min(r.eps for r in results))


def stack_copies(models: Sequence[QuadraticNet]) -> QuadraticNet:
    """One QuadraticNet holding every copy of every model, in order (same p, width, tied)."""
    first = models[0]
    cfg = first.config
    total = sum(m.n_copies for m in models)
    net = QuadraticNet(cfg.p, cfg.width, total, cfg.tied, cfg.n_out, cfg.init_scale, dtype=first.U.dtype,
                       device=first.U.device)
    with torch.no_grad():
        for name, param in net.named_parameters():
            param.copy_(torch.cat([getattr(m, name).detach() for m in models], 0))
    return net


# ---------------------------------------------------------------------------------------------- theory

def generic_llc(p: int, width: int, a, b, tied: bool, centred: bool) -> dict:
    """Our closed form at a generic interpolating point for the given training inputs (exact, SymPy).

    Returns {"lam": float, "exact": bool, "formula": float|None}: ``formula`` is
    ``quadratic_llc(p, K, N, ...)`` (the Piecewise closed form) where it applies, ``lam`` the value of the
    same engine on the actual pairs (``quadratic_llc_data``, which also covers tied and small N)."""
    from slt.theory.quadratic import quadratic_llc, quadratic_llc_data

    d = quadratic_llc_data(p, width, a, b, tied=tied, centred=centred)
    formula = None
    if not tied:
        try:
            formula = float(quadratic_llc(p, width, len(a), tied=False, centred=centred))
        except ValueError:
            formula = None
    return {"lam": float(d.lam), "exact": bool(d.exact), "formula": formula}


def generic_llc_formula(p: int, width: int, n_train: int, tied: bool = False, centred: bool = False) -> float:
    from slt.theory.quadratic import quadratic_llc

    return float(quadratic_llc(p, width, n_train, tied=tied, centred=centred))


def paper_llc(p: int, width: int) -> float:
    """The paper's Cor. 5.4 (v3 numbering): lambda = K (3p - 1) / 2 (``slt.theory.paper``)."""
    from slt.theory import paper

    return float(paper.cor_5_4(p, width))


def memorisation_bracket(p: int, width: int) -> tuple[float, float]:
    """The paper's memorisation bracket (1/2) p (2p - 1) <= lambda <= (1/2) p K."""
    from slt.theory import paper

    lo, hi = paper.memorisation_bracket(p, width)
    return float(lo), float(hi)


def lazy_llc(p: int, width: int, n_train: int, centred: bool) -> float:
    from slt.theory.quadratic import lazy_llc as _lazy

    return float(_lazy(p, width, n_train, centred=centred))


def point_llc(model: QuadraticNet, copy: int, a, b, y, centred: bool) -> dict:
    """lambda at a trained point from the rank of its Jacobian (interpolating) or Hessian (not)."""
    from slt.theory.jacobian import llc_at_point

    U = model.U[copy].detach().double().numpy()
    V = None if model.V is None else model.V[copy].detach().double().numpy()
    A = model.A[copy].detach().double().numpy()
    r = llc_at_point(U, V, A, a.numpy(), b.numpy(), y.numpy(), centred=centred, n_probe=2)
    return {"rank": int(r.rank), "lower": float(r.lower), "upper": float(r.upper),
            "lam": None if r.lam is None else float(r.lam), "morse_bott": bool(r.morse_bott),
            "interpolating": bool(r.interpolating), "sv_gap": float(r.sv_gap), "n_params": int(r.n_params)}


# ---------------------------------------------------------------------------------------------- training

def train_run(config_dict: dict, run_dir) -> dict:
    """Train (or resume / reload) a run in ``run_dir``; return its curves and summary steps."""
    from slt.training import TrainConfig, train

    res = train(TrainConfig.from_dict(config_dict), out_dir=run_dir)
    return {"metrics": res.metrics, "memorisation_step": list(res.memorisation_step),
            "grokking_step": list(res.grokking_step), "wall_s": float(res.wall_time_s)}


def make_config(preset: str, overrides: dict) -> dict:
    from slt.training import default_config

    return default_config(preset).replace(**overrides).to_dict()


def load_checkpoints(run_dir, steps: Sequence[int] | None = None):
    """(steps, [Checkpoint]) of a run; all saved ones when ``steps`` is None."""
    from slt.training import list_checkpoints, load_checkpoint

    saved = list_checkpoints(run_dir)
    steps = saved if steps is None else list(steps)
    return steps, [load_checkpoint(run_dir, s) for s in steps]


def evaluate_accuracy(model: QuadraticNet, data, loss: str) -> tuple[list[float], list[float]]:
    """Train and test accuracy per copy."""
    from slt.training import evaluate

    ev = evaluate(model, data, loss)
    return ev["train_acc"].tolist(), ev["test_acc"].tolist()

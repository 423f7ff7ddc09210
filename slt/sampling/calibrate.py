"""SGLD calibration as a procedure: sweep the step size (and localisation), judge each setting by its
diagnostics, pick one, and extrapolate the estimate to eps -> 0.

Every eps of one gamma runs in ONE batched computation (rows = step sizes x chains, each row with its
own eps), so a sweep costs about as much as a single estimate with len(eps) times the chains.

Selection rule, per setting (eps, gamma):
    no chain diverged, MALA acceptance >= min_acceptance (Roberts & Rosenthal 1998 aim high for
    Langevin proposals; devinterp's guidance is ~0.9), R-hat <= 1.1, and a stable trace: the mean
    LLC of the first and second half of the draws agree within 3 standard errors.
    Among the settings that pass, the largest eps (fastest mixing) whose estimate agrees with the
    eps -> 0 extrapolation within 2 standard errors is chosen (no detectable step-size bias; MALA
    acceptance alone can stay above 0.95 while the estimate is 10% high); if none agrees, the
    smallest passing eps.

Bias correction. The Euler-Maruyama discretisation biases SGLD's stationary law at first order in eps
(for a Gaussian direction of precision a the variance is 1/(a(1 - eps a/4))). So
lambda_hat(eps) = lambda_hat(0) + b eps + O(eps^2): a weighted least-squares line through the passing
settings (weights 1/SE^2) gives lambda_hat(0) as its intercept, with the intercept's standard error
(scaled by sqrt(chi^2/dof) when that exceeds 1, so a poor linear fit widens, never narrows, the error).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from slt.sampling.diagnostics import mala_acceptance, rhat
from slt.sampling.llc import (
    DIAG_POINTS,
    RHAT_WARN,
    STEP_SCALE,
    _check_args,
    _full_loss,
    _make_problem,
    _run_chains,
    auto_eps,
    check_precondition,
    hessian_preconditioner,
)

EPS_FACTORS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
MIN_ACCEPTANCE = 0.9
STABLE_Z = 3.0
BIAS_Z = 2.0


@dataclass(frozen=True)
class CalibrationRow:
    eps: float
    gamma: float
    llc: float
    llc_se: float
    mala_acceptance: float
    rhat: float
    frac_below_init: float
    drift_z: float  # (second-half mean - first-half mean) / its standard error
    diverged: bool
    ok: bool


@dataclass(frozen=True)
class Extrapolation:
    llc0: float  # intercept lambda_hat(eps -> 0)
    llc0_se: float
    slope: float  # d lambda_hat / d eps
    eps: tuple[float, ...]  # the step sizes the line was fitted to
    gamma: float


@dataclass(frozen=True)
class CalibrationResult:
    rows: tuple[CalibrationRow, ...]
    chosen: CalibrationRow | None  # None: no setting passed every check
    extrapolation: Extrapolation | None  # None: fewer than 2 usable settings
    n: int
    n_beta: float
    init_loss: float
    precondition: str | None = None  # the kernel's metric: None (plain SGLD) or "hessian"

    def table(self) -> str:
        head = f"{'eps':>10} {'gamma':>7} {'llc':>10} {'se':>8} {'accept':>7} {'rhat':>6} {'below':>6} {'drift z':>8}  verdict"
        lines = [head]
        for r in self.rows:
            verdict = "diverged" if r.diverged else ("ok" if r.ok else "rejected")
            if self.chosen is r:
                verdict += "  <- chosen"
            lines.append(f"{r.eps:10.3g} {r.gamma:7.3g} {r.llc:10.4g} {r.llc_se:8.3g} {r.mala_acceptance:7.3f} "
                         f"{r.rhat:6.3f} {r.frac_below_init:6.3f} {r.drift_z:8.2f}  {verdict}")
        if self.extrapolation is not None:
            x = self.extrapolation
            lines.append(f"eps -> 0 (gamma={x.gamma:g}, {len(x.eps)} step sizes): llc = {x.llc0:.4g} ± {x.llc0_se:.3g}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"rows": [asdict(r) for r in self.rows], "chosen": None if self.chosen is None else asdict(self.chosen),
                "extrapolation": None if self.extrapolation is None else asdict(self.extrapolation),
                "n": self.n, "n_beta": self.n_beta, "init_loss": self.init_loss, "precondition": self.precondition}

    def plot(self, path=None):
        """Estimate +- SE and MALA acceptance against eps, with the extrapolation line; -> Figure."""
        from slt.sampling.plots import plot_calibration

        return plot_calibration(self, path)


def extrapolate_to_zero(eps: Sequence[float], llc: Sequence[float], se: Sequence[float]) -> tuple[float, float, float]:
    """Weighted least squares llc = c0 + c1 eps (weights 1/se^2) -> (c0, se(c0), c1). Needs >= 2 points."""
    x, y, s = (np.asarray(v, dtype=np.float64) for v in (eps, llc, se))
    if x.size < 2:
        raise ValueError(f"need at least 2 step sizes to extrapolate, got {x.size}")
    if np.unique(x).size < 2:
        raise ValueError("the step sizes must not all be equal")
    w = 1.0 / np.maximum(s, 1e-300) ** 2
    X = np.stack([np.ones_like(x), x], 1)
    cov = np.linalg.inv(X.T @ (X * w[:, None]))
    coef = cov @ (X.T @ (w * y))
    if x.size > 2:
        chi2 = float((w * (y - X @ coef) ** 2).sum()) / (x.size - 2)
        cov = cov * max(1.0, chi2)
    return float(coef[0]), float(math.sqrt(cov[0, 0])), float(coef[1])


def _row_stats(trace: np.ndarray, log_acc: np.ndarray, init_loss: float, n_beta: float):
    """(llc, se, drift_z) of one setting's (chains, draws) trace."""
    chains, draws = trace.shape
    per_chain = n_beta * (trace.mean(1) - init_loss)
    se = per_chain.std(ddof=1) / math.sqrt(chains)
    half = draws // 2
    first = n_beta * (trace[:, :half].mean(1) - init_loss)
    second = n_beta * (trace[:, half:].mean(1) - init_loss)
    d = second - first
    dz = d.mean() / (d.std(ddof=1) / math.sqrt(chains)) if d.std(ddof=1) > 0 else 0.0
    return float(per_chain.mean()), float(se), float(dz)


def calibrate_sgld(
    model: nn.Module,
    loss_fn: Callable,
    data: Sequence[torch.Tensor],
    *,
    eps: Sequence[float] | None = None,
    eps_factors: Sequence[float] = EPS_FACTORS,
    gammas: Sequence[float] = (1.0,),
    n_beta: float | None = None,
    num_chains: int = 8,
    num_draws: int = 1000,
    num_burnin: int = 500,
    batch_size: int | None = None,
    seed: int = 0,
    min_acceptance: float = MIN_ACCEPTANCE,
    step_scale: float = STEP_SCALE,
    plot_path=None,
    progress: bool = False,
    precondition: str | None = None,
) -> CalibrationResult:
    """Sweep step sizes x localisations, pick a setting by diagnostics, extrapolate to eps -> 0.

    eps: explicit step sizes; None uses ``eps_factors`` times the automatic step size of each gamma
    (see :func:`slt.sampling.llc.auto_eps`). Other arguments as in :func:`slt.estimate_llc`; the model
    must have one copy. Returns the table (``.rows``, ``.table()``), the chosen setting, the
    extrapolation (fitted at the chosen gamma to every setting that passed, or, failing 2 of those, to
    every non-diverged one) and, with ``plot_path``, writes the calibration plot there.
    ``precondition="hessian"`` runs every setting with the constant metric M = (n_beta H + gamma I)^(-1)
    of :func:`slt.estimate_llc` (one M per gamma); the step sizes are then those of the whitened frame.
    """
    problem = _make_problem(model, loss_fn, data)
    if problem.n_copies != 1:
        raise ValueError(f"calibrate_sgld takes a single model copy, got {problem.n_copies}")
    n = problem.n
    _check_args(n, n_beta, None, 0.0, num_chains, num_draws, num_burnin, batch_size)
    if num_chains < 2 or num_draws < 8:
        raise ValueError(f"calibration needs num_chains >= 2 and num_draws >= 8, got {num_chains}, {num_draws}")
    if not gammas or any(not (math.isfinite(g) and g >= 0) for g in gammas):
        raise ValueError(f"gammas must be a nonempty list of finite numbers >= 0, got {gammas!r}")
    if eps is not None and (not eps or any(not (math.isfinite(e) and e > 0) for e in eps)):
        raise ValueError(f"eps must be None or a nonempty list of finite numbers > 0, got {eps!r}")
    if eps is None and (not eps_factors or any(not (math.isfinite(f) and f > 0) for f in eps_factors)):
        raise ValueError(f"eps_factors must be a nonempty list of finite numbers > 0, got {eps_factors!r}")
    if not 0 <= min_acceptance <= 1:
        raise ValueError(f"min_acceptance must lie in [0, 1], got {min_acceptance!r}")
    check_precondition(precondition, problem.dim)
    if precondition == "auto":  # this sweep runs one given metric; estimate_llc chooses one
        raise ValueError("calibrate_sgld takes precondition=None or one metric name, not 'auto' (estimate_llc's "
                         "default chooses the metric by pilot chains)")
    nb = float(n / math.log(n)) if n_beta is None else float(n_beta)
    opts = dict(dtype=problem.dtype, device=problem.device)
    init = _full_loss(problem, problem.anchor)  # (1,)
    C = num_chains
    rows: list[CalibrationRow] = []
    for gi, gamma in enumerate(gammas):
        precond = None
        if precondition is not None:  # M depends on gamma
            precond, _ = hessian_preconditioner(problem, torch.full((1,), nb, **opts),
                                                torch.full((1,), float(gamma), **opts), precondition)
        if eps is None:
            e0 = float(auto_eps(problem, n_beta=torch.full((1,), nb, **opts), gamma=torch.full((1,), float(gamma), **opts),
                                chains=C, batch_size=batch_size, seed=seed, step_scale=step_scale,
                                precond=precond)[0])
            grid = sorted(e0 * f for f in eps_factors)
        else:
            grid = sorted(float(e) for e in eps)
        S = len(grid)
        R = S * C
        eps_rows = torch.tensor(grid, **opts).repeat_interleave(C)
        gen = torch.Generator(problem.device).manual_seed(int(seed) + 104729 * gi)
        run = _run_chains(problem, R, eps=eps_rows, n_beta=torch.full((R,), nb, **opts),
                          gamma=torch.full((R,), float(gamma), **opts), init_loss=init.expand(R),
                          num_burnin=num_burnin, num_draws=num_draws, batch_size=batch_size, generator=gen,
                          progress=progress, stop_on_divergence=False, diag_points=DIAG_POINTS, precond=precond)
        trace = run.loss_trace.view(S, C, num_draws).cpu().numpy()
        # minibatch runs: mixing judged on the thinned full-data losses, as in estimate_llc
        mix = trace if run.full_trace is None else run.full_trace.view(S, C, -1).cpu().numpy()
        log_acc = run.log_accept.view(S, C, num_draws).cpu().numpy()
        div = run.diverged.view(S, C).any(1).cpu().numpy()
        L0 = float(init[0])
        for k, e in enumerate(grid):
            llc, se, dz = _row_stats(trace[k], log_acc[k], L0, nb)
            acc = float(mala_acceptance(log_acc[k]).mean())
            r = float(rhat(mix[k]))
            below = float((trace[k] < L0).mean())
            ok = (not div[k]) and acc >= min_acceptance and r <= RHAT_WARN and abs(dz) <= STABLE_Z
            rows.append(CalibrationRow(e, float(gamma), llc, se, acc, r, below, dz, bool(div[k]), bool(ok)))
    passing = [r for r in rows if r.ok]
    best = max(passing, key=lambda r: r.eps) if passing else None
    g_ex = best.gamma if best is not None else float(gammas[0])
    fit_rows = [r for r in passing if r.gamma == g_ex]
    if len({r.eps for r in fit_rows}) < 2:
        fit_rows = [r for r in rows if r.gamma == g_ex and not r.diverged and math.isfinite(r.llc)]
    extrap = None
    if len({r.eps for r in fit_rows}) >= 2:
        c0, c0_se, c1 = extrapolate_to_zero([r.eps for r in fit_rows], [r.llc for r in fit_rows],
                                            [r.llc_se for r in fit_rows])
        extrap = Extrapolation(c0, c0_se, c1, tuple(r.eps for r in fit_rows), g_ex)
    chosen = best
    if extrap is not None and passing:
        # no detectable step-size bias: the largest passing eps that agrees with the eps -> 0 value
        unbiased = [r for r in passing if r.gamma == g_ex
                    and abs(r.llc - extrap.llc0) <= BIAS_Z * math.hypot(r.llc_se, extrap.llc0_se)]
        cands = unbiased or [r for r in passing if r.gamma == g_ex]
        chosen = max(cands, key=lambda r: r.eps) if unbiased else min(cands, key=lambda r: r.eps)
    result = CalibrationResult(tuple(rows), chosen, extrap, n, nb, float(init[0]), precondition)
    if plot_path is not None:
        result.plot(plot_path)
    return result

"""Local learning coefficient (LLC) estimation by SGLD (Lau, Furman, Wang, Murfet, Wei, AISTATS 2025,
arXiv 2308.12108; Watanabe, "Algebraic Geometry and Statistical Learning Theory", 2009).

    lambda_hat(w*) = n_beta (E_w[L(w)] - L(w*)),
    w ~ p(w) ∝ exp(-n_beta L(w) - (gamma/2) |w - w*|^2),      n_beta = n / log n by default,

with the expectation taken over the draws of every chain after burn-in and L the loss on a minibatch
(an unbiased estimate of the full-data loss L_n). Each chain gives its own estimate; ``llc`` is their
mean and ``llc_se`` their standard error (chains are independent).

Loss normalisation. ``loss_fn`` must return the AVERAGE PER-SAMPLE negative log-likelihood (up to an
additive constant), e.g. ``slt.losses.mse`` = (1/N) sum_i (1/2)|y_i - f(x_i)|^2 is exactly that for
Gaussian noise of unit variance. A loss scaled by c (c L, e.g. a sum instead of a mean, or a plain
squared error without the 1/2) acts like n_beta * c: the estimate changes unless n_beta is divided by c.
A different noise variance s^2 is the same statement with c = 1/s^2. The defaults follow the papers:
n_beta = n / log n with n the number of training samples. devinterp (timaeus-research, v1.3.2) instead
defaults to b / log b with b the BATCH size, which is a different (smaller) inverse temperature.

Step size. With ``eps=None`` it is chosen for the given n_beta and loss: the top eigenvalue h of the
Hessian of L is found by power iteration at w* and again at the end of short pilot chains, and
eps = step_scale / (n_beta h + gamma) (so the stiffest direction moves eps * curvature = step_scale per
step; a Gaussian direction of precision a is then inflated by the factor 1/(1 - eps a/4), i.e. the
first-order SGLD bias is at most step_scale/4 per direction). Pilot divergence divides eps by 10.

Preconditioning (``precondition="hessian"``). Per copy, H = the dense Hessian of the FULL-data loss at w*
over the flattened parameters (clipped to PSD in float64), and M = (n_beta H + gamma I)^(-1) is used as a
constant metric (:mod:`slt.sampling.sgld`): the stationary law is unchanged, but every direction of the
quadratic approximation now has curvature 1, so the flattest directions no longer need ~condition-number
times more steps than the stiffest. The automatic step size becomes eps = step_scale / h_max with h_max
the top eigenvalue of M^(1/2) (n_beta H(w) + gamma I) M^(1/2) (= 1 at w*), at w* and along pilot chains run
in the same geometry. Only for d <= MAX_PRECONDITION_DIM parameters per copy (the metric is dense).

Default path (``calibrate="auto"`` with no num_draws / num_burnin): the chain length is not fixed but chosen
by the chains' own diagnostics (doubling segments until relaxed, >= 20 autocorrelation times of burn-in, R-hat
<= 1.1 and SE <= 2.5% of the estimate, within ``max_steps``), followed by a step-halving check of the step-size
bias; a result that does not pass carries ``diagnostics.flags`` and an LLCWarning naming what to change, and
``result.calibration`` reports the cost (:func:`_auto_run`, issue 12). The metric is chosen there too
(``precondition="auto"``): when plain SGLD fails the stopping rule in its first segment, a preconditioned pilot of
the same length is run and kept if it rose significantly higher (:func:`_choose_precondition`).
``calibrate=False`` is the fixed-length estimator as before (8 chains x (500 + 1,000) steps).

Chains run as one batched computation: a generic ``nn.Module`` through ``torch.func.functional_call``
+ ``vmap`` over a leading chain axis; a :class:`slt.models.QuadraticNet` through its own copy axis, so
B copies (seeds, checkpoints) x C chains run together (:func:`estimate_llc_copies`).
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from slt.models.quadratic import QuadraticNet, quadratic_forward
from slt.losses import centred_mse, mse
from slt.sampling.diagnostics import ess, fraction_below, mala_acceptance, rhat
from slt.sampling.noise import resolve_noise
from slt.sampling.sgld import (
    Position,
    Preconditioner,
    RowLoss,
    apply_metric,
    flatten,
    psgld_init,
    psgld_step,
    sgld_init,
    sgld_step,
    tree_dot,
    unflatten,
)

# With minibatches, R-hat and ESS are computed on the full-data loss at this many evenly spaced draws
# (a forward pass over all n samples each): honest mixing diagnostics for ~DIAG_POINTS * n / batch extra
# forward-sample evaluations.
DIAG_POINTS = 25
# ... but on a short run at most ~DIAG_COST of its cost: a full-data pass costs ~(n / batch) / 3 steps (forward
# only, no backward), so DIAG_POINTS of them at p 53 (n / batch ~ 9) are ~75 steps, more than a 70-step run
# itself (benchmarks/bench_llc.py at the paper's setting spent over half its time there); never fewer than
# MIN_DIAG_POINTS, the fewest a split R-hat can use
DIAG_COST = 0.1
MIN_DIAG_POINTS = 4
STEP_SCALE = 0.05  # eps * (stiffest curvature of the potential): SGLD bias <= 1.25% per direction
PILOT_STEPS = 200  # enough for the stiff directions (time constant 1/STEP_SCALE = 20 steps) to settle
PILOT_ROUNDS = 12  # at most 2,400 pilot steps
POWER_ITERS = 20
MALA_WARN = 0.8  # well below devinterp's ~0.9 guidance: the step size bias is no longer small
RHAT_WARN = 1.1  # Gelman et al. BDA3: above 1.1 the chains disagree
FRAC_BELOW_WARN = 0.2  # at a local minimum almost every draw sits above L(w*)
RELAX_Z = 3.0  # one-sided: the second half of the draws above the first by > 3 SE (across chains) ...
RELAX_REL = 0.02  # ... and by more than 2% of the estimate (a rise too small to matter is not flagged)
# calibrate="auto" (the default when the caller fixes neither num_draws nor num_burnin): chains are run in
# segments that double the length until the estimate is relaxed, mixed and precise, then a step-halving check.
DEFAULT_DRAWS, DEFAULT_BURNIN = 1000, 500  # the fixed-length path (calibrate=False), unchanged since issue 3
DEFAULT_CHAINS = 8
# calibrate="auto" without num_chains: (d * n bound, chains). Measured (1 thread): a 40-parameter model steps 8,
# 64 and 128 chains in 1.4, 1.8 and 2.3 ms, so 8x the chains cost ~1.3x per step and cut the steps ~8x
AUTO_CHAINS = ((20_000, 64), (200_000, 16))
AUTO_FIRST = 1500  # steps of the first segment (= the fixed path's burn-in + draws)
AUTO_MAX_STEPS = 48_000  # per chain, before the bias check: 32x the fixed path
AUTO_REL_SE = 0.025  # stop at SE <= 2.5% of the estimate: a 10% error is then 4 SE
AUTO_FLAG_REL_SE = 0.04  # flag "imprecise" above 4%: a 10% error would no longer be 2.5 SE away
AUTO_RELAX_REL = 0.02  # stop only when the rise from the first to the second half is <= 2% of the estimate ...
AUTO_RELAX_SE = 1.0  # ... or within 1 SE of zero (not even weakly significant)
AUTO_BURN_TAU = 20.0  # ... and only when the discarded quarter is >= 20 integrated autocorrelation times (Sokal 1997)
AUTO_SPECTRUM_DIM = 2000  # at most this many parameters per copy: the dense-Hessian relaxation prediction below
AUTO_PRED_DEFICIT = 0.05  # flag when the quadratic approximation predicts the run reached < 95% of its stationary value
AUTO_BIAS_REL = 0.05  # flag a step-halving bias estimate above 5% of the estimate ...
AUTO_BIAS_Z = 3.0  # ... that is also > 3 SE from zero
CALIBRATE_MODES = (True, False, "auto")
# accepted values of ``precondition`` besides None: "hessian" M = (n_beta H + gamma I)^-1; "hessian-range" the
# same on the range of H, but the null space of H (the model's symmetry directions at w*) gets the stiffest
# direction's precision, i.e. moves exactly as in plain SGLD (see hessian_preconditioner)
# "diagonal", "rmsprop", "lowrank": metrics without a d x d matrix, for any d (slt.sampling.precondition)
DENSE_PRECONDITIONS = ("hessian", "hessian-range")
PRECONDITIONS = DENSE_PRECONDITIONS + ("diagonal", "rmsprop", "lowrank")
# precondition="auto" (the default): calibrate="auto" with an automatic eps chooses the metric itself
# (:func:`_choose_precondition`); any fixed length or a given eps means plain SGLD, as before. The candidates
# tried when plain SGLD has not relaxed within its first segment: the dense range metric where it fits, the
# low-rank metric otherwise (the Jacobi diagonal alone collapsed the step on trained p = 23 nets, whose
# Hessian is far from diagonal: experiments/local_sgld/RESULTS.md, "local recipe")
AUTO_PRECONDITIONS_DENSE = ("hessian-range",)
AUTO_PRECONDITIONS_SCALABLE = ("lowrank",)
# a candidate replaces plain SGLD only if, after the same number of steps from w*, its estimate is higher (closer
# to the common stationary value: started at w*, the estimate rises towards it) by > AUTO_CHOICE_Z standard
# errors and by more than AUTO_CHOICE_REL of the estimate (the metrics' step-size inflations differ by at most
# step_scale / 4 = 1.25%), for some copy, and lower by that much for none
AUTO_CHOICE_Z = 3.0
AUTO_CHOICE_REL = 0.02
# dense d x d metric per copy: memory and the O(d^3) eigendecomposition stay small (3000^2 floats = 72 MB in
# float64 per copy) and each step's (R, d) x (d, d) products stay below the cost of a forward/backward
MAX_PRECONDITION_DIM = 3000


class LLCWarning(UserWarning):
    """A diagnostic says the estimate may not mean what it says."""


class SGLDDivergenceError(ValueError):
    """SGLD produced NaN/inf or ran away from w*; the message names eps and a smaller value to try."""


@dataclass(frozen=True)
class LLCDiagnostics:
    mala_acceptance: float  # mean Metropolis-adjusted acceptance probability of the draws' proposals
    frac_below_init: float  # fraction of draws with loss < L(w*)
    rhat: float  # rank-normalised split R-hat of the loss traces across chains
    ess: float  # bulk effective sample size of the loss traces (all chains)
    warnings: tuple[str, ...] = ()
    # "draws": R-hat/ESS on the recorded draw losses (full batch); "full_loss_thinned": with minibatches, on
    # the FULL-data loss at DIAG_POINTS evenly spaced draws, because minibatch noise in the draw losses makes
    # chains look mixed when they are not (experiments/mixing_probe: R-hat 1.03 on minibatch losses vs
    # 1.66 on full-data losses for the same chains); "none": a minibatch run too short to afford MIN_DIAG_POINTS
    # full-data evaluations within DIAG_COST of its cost (R-hat and ESS are NaN: not measured, not "fine")
    rhat_source: str = "draws"
    # relaxation: z of the mean per-chain rise of the estimate from the first to the second half of the draws
    # (SE across chains). A chain started at w* fills its flat directions last, so an estimate still rising
    # is an underestimate (experiments/local_sgld: the finite-run prediction, eq. (2) of quadratic_approx)
    drift_z: float = float("nan")
    relaxed: bool = True
    # machine-readable names of the warnings that question the VALUE (FLAGS): empty = nothing known to be wrong
    flags: tuple[str, ...] = ()


@dataclass(frozen=True)
class LLCResult:
    """One LLC estimate. llc = n_beta (mean loss over draws - init_loss), averaged over chains."""

    llc: float
    llc_se: float  # standard error across chains: sd(llc_per_chain) / sqrt(chains)
    llc_per_chain: np.ndarray  # (chains,)
    loss_trace: np.ndarray  # (chains, draws)
    init_loss: float  # L(w*) on the full data
    n: int
    n_beta: float
    eps: float
    gamma: float
    diagnostics: LLCDiagnostics
    num_chains: int = 0
    num_draws: int = 0
    num_burnin: int = 0
    batch_size: int | None = None
    seed: int = 0
    eps_auto: bool = False
    elapsed_s: float = 0.0
    extra: dict = field(default_factory=dict)
    # None: plain SGLD; "hessian": constant metric M = (n_beta H + gamma I)^-1 at w* (eps is then relative
    # to M: the step in the whitened frame)
    precondition: str | None = None
    # calibrate="auto": what the calibration chose and measured (steps per chain, burn-in, relative SE,
    # step-halving bias check) and its cost ("gradient_evals": per-row gradient evaluations including the pilot
    # and the bias check, "seconds"); empty when the chain length was fixed by the caller
    calibration: dict = field(default_factory=dict)

    @property
    def flagged(self) -> bool:
        """True when a diagnostic says the value may be wrong (``diagnostics.flags`` is not empty)."""
        return bool(self.diagnostics.flags)

    def to_dict(self) -> dict:
        """JSON-ready dict (arrays as nested lists)."""
        d = asdict(self)
        d["llc_per_chain"] = np.asarray(self.llc_per_chain).tolist()
        d["loss_trace"] = np.asarray(self.loss_trace).tolist()
        d["diagnostics"]["warnings"] = list(self.diagnostics.warnings)
        d["diagnostics"]["flags"] = list(self.diagnostics.flags)
        return d


def regression_mse(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-copy (1/N) sum_i (1/2)|t_i - out_i|^2 for REAL targets: out (B, N, q), target (N, q) or
    (B, N, q) -> (B,). The unit-variance Gaussian NLL for teacher-student regression."""
    return 0.5 * (out - target).pow(2).sum(-1).mean(-1)


# ----------------------------------------------------------------------------------------------------
# Problems: how rows of a position map to losses


@dataclass(frozen=True)
class _Problem:
    anchor: Position  # each (B, ...): w* of each copy
    row_loss: RowLoss  # (position with R = B*C rows, batch idx (R, b) or None) -> (R,)
    n: int
    dtype: torch.dtype
    device: torch.device
    names: tuple[str, ...]
    noise: str = "torch"  # the Langevin noise source (slt.sampling.noise); built with the environment's SLT_NOISE

    @property
    def n_copies(self) -> int:
        return self.anchor[0].shape[0]

    @property
    def dim(self) -> int:
        return sum(a[0].numel() for a in self.anchor)


def _check_quadratic_data(net: QuadraticNet, data) -> None:
    """A QuadraticNet's data must be (a, b, target) with integer indices a, b in [0, p-1] and either integer
    labels in [0, q-1] (shape (N,)) or real targets of shape (N, q): checked before any sampling, since an
    index past the embedding fails deep inside the sampler and a model/data pair of different moduli
    can otherwise return numbers."""
    data = _check_data(data)
    if len(data) != 3:
        raise ValueError(f"data for a QuadraticNet must be (a, b, target), got {len(data)} tensors")
    a, b, y = data
    p, q = net.config.p, net.config.out_dim
    for name, t in (("a", a), ("b", b)):
        if t.dim() != 1 or t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
            raise ValueError(f"data index tensor {name} must be 1-D integer, got dtype {t.dtype}, shape {tuple(t.shape)}")
        lo, hi = int(t.min()), int(t.max())
        if lo < 0 or hi >= p:
            raise ValueError(f"data index {name} must lie in [0, {p - 1}] for this QuadraticNet (p={p}), got values "
                             f"in [{lo}, {hi}]: the data are for a different modulus than the model")
    if y.dtype.is_floating_point:
        if y.dim() != 2 or y.shape[1] != q:
            raise ValueError(f"real targets must have shape (N, {q}) for this QuadraticNet (outputs {q}), got "
                             f"{tuple(y.shape)}")
    elif y.dtype != torch.bool and not y.dtype.is_complex:
        if y.dim() != 1:
            raise ValueError(f"integer labels must have shape (N,), got {tuple(y.shape)}")
        lo, hi = int(y.min()), int(y.max())
        if lo < 0 or hi >= q:
            raise ValueError(f"labels must lie in [0, {q - 1}] for this QuadraticNet ({q} outputs), got values in "
                             f"[{lo}, {hi}]: the data are for a different modulus than the model")
    else:
        raise ValueError(f"target must be integer labels or real targets, got dtype {y.dtype}")
    top = max(int(a.max()), int(b.max()))
    if top < p - 1 and (y.dtype.is_floating_point or int(y.max()) < q - 1):
        warnings.warn(f"the data use input indices only up to {top} and never the last of the model's p={p} rows: "
                      f"are they for a smaller modulus (p={top + 1}?) than the model?", LLCWarning, stacklevel=3)


def _check_data(data, min_len: int = 2) -> tuple[torch.Tensor, ...]:
    if not isinstance(data, (tuple, list)) or len(data) < min_len:
        raise ValueError(f"data must be a tuple of >= {min_len} tensors (inputs..., target), got {type(data)}")
    if not all(isinstance(t, torch.Tensor) for t in data):
        raise ValueError("data must contain only torch tensors")
    n = data[0].shape[0] if data[0].dim() else 0
    if n < 1 or any(t.dim() == 0 or t.shape[0] != n for t in data):
        raise ValueError(f"data tensors must share a first dimension N >= 1, got shapes {[tuple(t.shape) for t in data]}")
    return tuple(data)


def _quadratic_problem(net: QuadraticNet, loss_fn: Callable, data) -> _Problem:
    data = _check_data(data)
    if len(data) != 3:
        raise ValueError(f"data for a QuadraticNet must be (a, b, target), got {len(data)} tensors")
    dev = net.U.device
    a, b, y = (t.to(dev) for t in data)
    tied = net.tied
    names = ("U", "A") if tied else ("U", "V", "A")
    anchor = tuple(getattr(net, k).detach().clone() for k in names)

    def row_loss(pos: Position, idx):
        U, A = pos[0], pos[-1]
        V = U if tied else pos[1]
        if idx is None:
            out = quadratic_forward(U, V, A, a, b)  # (R, N, q)
            tgt = y
        else:
            out = quadratic_forward(U, V, A, a[idx], b[idx])  # (R, b, q)
            tgt = y[idx]
        loss = loss_fn(out, tgt)
        if loss.shape != (U.shape[0],):
            raise ValueError(f"loss_fn must return one value per copy, shape ({U.shape[0]},), got {tuple(loss.shape)}")
        return loss

    if (loss_fn is mse or loss_fn is centred_mse) and not y.is_floating_point() and y.dim() == 1:
        from slt.sampling.quadratic_drift import quadratic_potential_and_drift

        centred = loss_fn is centred_mse

        def drift(pos: Position, idx, anchor_: Position, n_beta, gamma, diagnostics: bool = True, local=None):
            ab = (a, b, y) if idx is None else (a[idx], b[idx], y[idx])
            return quadratic_potential_and_drift(pos, *ab, anchor_, n_beta, gamma, diagnostics, local,
                                                 centred=centred, tied=tied)

        row_loss.potential_and_drift = drift  # the SGLD kernel's closed-form path (slt.sampling.sgld)
    return _Problem(anchor, row_loss, a.shape[0], anchor[0].dtype, dev, names, resolve_noise(None))


def _module_problem(model: nn.Module, loss_fn: Callable, data) -> _Problem:
    data = _check_data(data)
    named = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise ValueError("model has no parameters that require grad")
    names = tuple(k for k, _ in named)
    anchor = tuple(p.detach().clone().unsqueeze(0) for _, p in named)  # (1, ...)
    buffers = dict(model.named_buffers())
    dev = anchor[0].device
    inputs, target = tuple(t.to(dev) for t in data[:-1]), data[-1].to(dev)

    def single(pvals, xs, t):
        out = torch.func.functional_call(model, ({**dict(zip(names, pvals)), **buffers}), xs)
        return loss_fn(out, t)

    full = torch.func.vmap(single, in_dims=(0, None, None))
    mini = torch.func.vmap(single, in_dims=(0, 0, 0))

    def row_loss(pos: Position, idx):
        if idx is None:
            loss = full(pos, inputs, target)
        else:
            loss = mini(pos, tuple(x[idx] for x in inputs), target[idx])
        if loss.dim() != 1:
            raise ValueError(f"loss_fn must return a scalar (the average per-sample loss), got shape {tuple(loss.shape[1:])}")
        return loss

    return _Problem(anchor, row_loss, target.shape[0], anchor[0].dtype, dev, names, resolve_noise(None))


def _make_problem(model, loss_fn, data) -> _Problem:
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module, got {type(model)}")
    if not callable(loss_fn):
        raise ValueError("loss_fn must be callable: loss_fn(output, target) -> average per-sample loss")
    if isinstance(model, QuadraticNet):
        return _quadratic_problem(model, loss_fn, data)
    return _module_problem(model, loss_fn, data)


# ----------------------------------------------------------------------------------------------------
# Batched chains


def _replicate(anchor: Position, chains: int) -> Position:
    return tuple(a.repeat_interleave(chains, dim=0) for a in anchor)  # copy-major: row = copy*C + chain


def _batches(n: int, rows: int, batch_size: int | None, generator: torch.Generator, device):
    """Yield per-row minibatch indices (R, b): a fresh permutation of the n samples per row and epoch,
    consecutive slices of it as batches (DataLoader(shuffle=True, drop_last=True) per chain)."""
    if batch_size is None or batch_size >= n:
        while True:
            yield None
    per_epoch = n // batch_size
    while True:
        perm = torch.rand(rows, n, generator=generator, device=device).argsort(dim=1)
        for k in range(per_epoch):
            yield perm[:, k * batch_size : (k + 1) * batch_size]


@dataclass(frozen=True)
class _Run:
    loss_trace: torch.Tensor  # (R, draws)
    log_accept: torch.Tensor  # (R, draws)
    diverged: torch.Tensor  # (R,) bool
    diverged_at: int  # first step at which a row diverged (-1 if none)
    final: Position
    full_trace: torch.Tensor | None = None  # (R, k) full-data loss at k evenly spaced draws (minibatch runs)


def _divergence_bound(dim: int) -> float:
    """n_beta (L - L(w*)) above this is a runaway chain: at equilibrium it is lambda <= d/2 give or
    take a few sqrt(d)."""
    return 50.0 * dim + 1000.0


def _run_chains(
    problem: _Problem,
    chains: int,
    *,
    eps: torch.Tensor,  # (R,)
    n_beta: torch.Tensor,  # (R,)
    gamma: torch.Tensor,  # (R,)
    init_loss: torch.Tensor,  # (R,)
    num_burnin: int,
    num_draws: int,
    batch_size: int | None,
    generator: torch.Generator,
    progress: bool = False,
    stop_on_divergence: bool = True,
    start: Position | None = None,
    diag_points: int = 0,
    precond: Preconditioner | None = None,
) -> _Run:
    """Run B*C rows of SGLD from w* for num_burnin + num_draws steps, recording the draws' losses.

    stop_on_divergence=False: a divergent row is reset to w*, flagged, and the others go on (used by
    calibration and pilots, where large step sizes are tried on purpose).
    diag_points > 0 with minibatches: also record the full-data loss at that many evenly spaced draws.
    precond: run the preconditioned kernel (:func:`slt.sampling.sgld.psgld_step`) with this metric.
    """
    from slt.execution import tune_malloc

    tune_malloc()  # keep the chains' freed (R, d) buffers for the next step (slt.execution.tune_malloc)
    rows = problem.n_copies * chains
    anchor = problem.anchor
    position = _replicate(anchor, chains) if start is None else start
    batches = _batches(problem.n, rows, batch_size, generator, problem.device)
    if precond is None:
        init_fn, step_fn = sgld_init, sgld_step
    else:
        init_fn = lambda *a: psgld_init(*a, precond)  # noqa: E731
        step_fn = lambda *a, **k: psgld_step(*a, **k, precond=precond)  # noqa: E731
    state = init_fn(problem.row_loss, position, next(batches), anchor, n_beta, gamma)
    trace = torch.empty(rows, num_draws, dtype=torch.float64, device=problem.device)
    log_acc = torch.empty(rows, num_draws, dtype=torch.float64, device=problem.device)
    diverged = torch.zeros(rows, dtype=torch.bool, device=problem.device)
    diverged_at = -1
    bound = _divergence_bound(problem.dim)
    steps = num_burnin + num_draws
    full_at: dict[int, int] = {}
    full_trace = None
    if batch_size is not None and batch_size < problem.n and diag_points > 0:
        k = min(diag_points, num_draws)
        picks = np.unique(np.linspace(0, num_draws - 1, k).round().astype(int))
        full_at = {int(d): j for j, d in enumerate(picks)}
        full_trace = torch.empty(rows, len(picks), dtype=torch.float64, device=problem.device)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc=f"SGLD {rows} chains", unit="step")
    for t in range(steps):
        if precond is None:  # MALA terms only for recorded draws: the chain is the same, burn-in skips 4 dots
            kw = {"mala": t >= num_burnin, "next_mala": t + 1 >= num_burnin}
        else:
            kw = {}
        state, info = step_fn(generator, state, problem.row_loss, next(batches), anchor,
                              eps=eps, n_beta=n_beta, gamma=gamma, noise=problem.noise, **kw)
        excess = n_beta * (info.loss - init_loss)
        bad = ~torch.isfinite(excess) | (excess > bound)
        if state.drift_sq is not None:
            bad |= ~torch.isfinite(state.drift_sq)
        if bool(bad.any()):  # a sync point, but only a (R,) reduction
            if diverged_at < 0:
                diverged_at = t
            if stop_on_divergence:
                if bar is not None:
                    bar.close()
                e = float(eps[bad.nonzero()[0, 0]])
                raise SGLDDivergenceError(
                    f"SGLD diverged at step {t} with eps={e:.3g} (loss became non-finite or "
                    f"n_beta (L - L(w*)) > {bound:.3g}); try a smaller step size, e.g. eps={e / 10:.3g}"
                )
            diverged |= bad
            pos = tuple(torch.where(bad.view(-1, *([1] * (w.dim() - 1))), a, w)
                        for w, a in zip(state.position, _replicate(anchor, chains)))
            state = init_fn(problem.row_loss, pos, next(batches), anchor, n_beta, gamma)
            info = info._replace(loss=torch.where(bad, init_loss, info.loss),
                                 log_accept=torch.where(bad, -math.inf, info.log_accept))
        if t >= num_burnin:
            trace[:, t - num_burnin] = info.loss
            log_acc[:, t - num_burnin] = info.log_accept
            j = full_at.get(t - num_burnin)
            if j is not None:
                full_trace[:, j] = _full_loss(problem, state.position)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return _Run(trace, log_acc, diverged, diverged_at, state.position, full_trace)


def diag_points_for(num_burnin: int, num_draws: int, n: int, batch_size: int | None) -> int:
    """Full-data loss evaluations for the mixing diagnostics of a fixed-length minibatch run: DIAG_POINTS, fewer
    when they would cost more than DIAG_COST of the run (each ~ (n / batch) / 3 steps); 0 when not even
    MIN_DIAG_POINTS fit (a run that short gets no R-hat: :func:`_summarise` says so), and 0 with full batches
    (the draw losses are then the full-data losses)."""
    if batch_size is None or batch_size >= n:
        return 0
    budget = int(DIAG_COST * (num_burnin + num_draws) * 3 * batch_size / n)
    return min(DIAG_POINTS, budget) if budget >= MIN_DIAG_POINTS else 0


def _full_loss(problem: _Problem, position: Position) -> torch.Tensor:
    with torch.no_grad():
        return problem.row_loss(position, None)


def _top_curvature(problem: _Problem, position: Position, generator: torch.Generator) -> torch.Tensor:
    """|top eigenvalue| of the full-data Hessian of L at each row (power iteration on HVPs): (R,)."""
    leaves = tuple(w.detach().requires_grad_(True) for w in position)
    with torch.enable_grad():
        loss = problem.row_loss(leaves, None)
        grads = torch.autograd.grad(loss.sum(), leaves, create_graph=True)
        v = tuple(torch.randn(w.shape, generator=generator, dtype=w.dtype, device=w.device) for w in leaves)
        lam = torch.zeros(leaves[0].shape[0], dtype=leaves[0].dtype, device=leaves[0].device)
        for _ in range(POWER_ITERS):
            norm = tree_dot(v, v).sqrt().clamp_min(1e-30)
            v = tuple(x / norm.view(-1, *([1] * (x.dim() - 1))) for x in v)
            hv = torch.autograd.grad(grads, leaves, grad_outputs=v, retain_graph=True)
            lam = tree_dot(v, hv).detach()
            v = tuple(h.detach() for h in hv)
    return lam.abs()


# ----------------------------------------------------------------------------------------------------
# Constant preconditioner (precondition="hessian")


def check_precondition(precondition, dim: int) -> None:
    """ValueError naming ``precondition`` unless it is None or one of PRECONDITIONS with
    dim <= MAX_PRECONDITION_DIM."""
    if precondition is None or (isinstance(precondition, str) and precondition == "auto"):
        return
    if not isinstance(precondition, str) or precondition not in PRECONDITIONS:
        raise ValueError(f"precondition must be None, 'auto' or one of {PRECONDITIONS}, got {precondition!r}")
    if precondition in DENSE_PRECONDITIONS and dim > MAX_PRECONDITION_DIM:
        raise ValueError(
            f"precondition={precondition!r} builds a dense d x d metric per copy and is limited to "
            f"d <= {MAX_PRECONDITION_DIM} parameters; this model has d = {dim}: use precondition=None, "
            "'diagonal', 'rmsprop' or 'lowrank'")


def loss_hessian(problem: _Problem, position: Position | None = None, chunk_size: int = 128) -> torch.Tensor:
    """Dense Hessian of the FULL-data loss L over each row's flattened parameters: (R, d, d) (default rows:
    the copies' w*).

    Forward-over-reverse: the tangent e_j placed in EVERY row gives column j of every row's Hessian in one
    HVP (rows are independent), so d HVPs (vmapped in chunks) give all R Hessians.
    """
    pos = problem.anchor if position is None else position
    like = tuple(w.detach() for w in pos)
    x = flatten(like)  # (R, d)
    r, d = x.shape

    def total_loss(x: torch.Tensor) -> torch.Tensor:
        return problem.row_loss(unflatten(x, like), None).sum()

    grad_fn = torch.func.grad(total_loss)

    def hvp(v: torch.Tensor) -> torch.Tensor:
        return torch.func.jvp(grad_fn, (x,), (v,))[1]

    basis = torch.eye(d, dtype=x.dtype, device=x.device).unsqueeze(1).expand(d, r, d)  # (d, R, d)
    cols = torch.func.vmap(hvp, chunk_size=chunk_size)(basis)  # (d, R, d): cols[j, r] = H_r e_j
    return cols.permute(1, 2, 0).detach()  # (R, d, d)


def hessian_preconditioner(problem: _Problem, n_beta: torch.Tensor, gamma: torch.Tensor, kind: str = "hessian"
                           ) -> tuple[Preconditioner, list[dict]]:
    """Per copy, M = (n_beta H_+ + gamma I)^(-1) and M^(1/2), H_+ the full-data loss Hessian at w* with
    negative eigenvalues clipped to 0 (float64 eigendecomposition H = Q diag(h) Q^T, so
    M^(1/2) = Q diag((n_beta h_+ + gamma)^(-1/2)) Q^T). n_beta, gamma: (B,). -> (metric, per-copy info).

    With gamma = 0 the metric exists only if H is numerically nonsingular; otherwise ValueError.

    kind="hessian-range": eigen-directions with h_+ numerically zero (the null space of H: at a
    Morse-Bott point of a singular model, the directions along the set of minima) get the precision of the
    STIFFEST direction, max_i (n_beta h_i + gamma), instead of gamma, and move as slowly as in plain SGLD.
    Why: at a point displaced by the posterior's typical 1/sqrt(n_beta h) in the range directions, the
    residual term n_beta sum_i r_i grad^2 f_i of the Hessian gives the null directions a curvature of order
    sqrt(n_beta) >> gamma, so with metric 1/gamma they are far stiffer than 1 and the automatic eps
    collapses (measured on the claim-1 quadratic nets at n_beta = 1e5 and 1e7: top preconditioned curvature
    ~500-800 at such points, eps ~1e-5 - 1e-4). Any SPD M leaves the target law unchanged.
    """
    if kind not in DENSE_PRECONDITIONS:
        from slt.sampling.precondition import scalable_preconditioner

        return scalable_preconditioner(problem, n_beta, gamma, kind)
    H = loss_hessian(problem).to(torch.float64)
    H = 0.5 * (H + H.mT)
    h, Q = torch.linalg.eigh(H)  # ascending
    top = h.abs().amax(1, keepdim=True)
    tiny = top * h.shape[1] * torch.finfo(torch.float64).eps * 1e3  # numerical zero of the spectrum
    nb = n_beta.to(torch.float64).unsqueeze(1)
    g = gamma.to(torch.float64).unsqueeze(1)
    a = nb * h.clamp_min(0) + g  # (B, d) curvature of the potential along each eigenvector
    null = h < tiny
    if kind == "hessian-range":
        a = torch.where(null, a.amax(1, keepdim=True), a)
    singular = (g <= 0) & null.any(1, keepdim=True) & (kind == "hessian")
    if bool(singular.any()):
        raise ValueError("precondition='hessian' with gamma = 0 needs a nonsingular Hessian at w*, but it has "
                         "(numerically) zero or negative eigenvalues; use gamma > 0")
    M = (Q / a.unsqueeze(1)) @ Q.mT
    S = (Q * a.rsqrt().unsqueeze(1)) @ Q.mT
    info = [{"condition": float(a[k].max() / a[k].min()), "negative_clipped": int((h[k] < -tiny[k, 0]).sum()),
             "null_dim": int(null[k].sum()), "hessian_top": float(h[k].max())} for k in range(h.shape[0])]
    opts = dict(dtype=problem.dtype, device=problem.device)
    return Preconditioner(M.to(**opts), S.to(**opts)), info


def _top_curvature_preconditioned(problem: _Problem, position: Position, precond: Preconditioner,
                                  n_beta: torch.Tensor, gamma: torch.Tensor,
                                  generator: torch.Generator) -> torch.Tensor:
    """|top eigenvalue| of S (n_beta H(w) + gamma I) S, S = M^(1/2), at each row (power iteration on HVPs in
    the whitened frame; n_beta, gamma per row): (R,). Equals 1 at w* by construction of M."""
    leaves = tuple(w.detach().requires_grad_(True) for w in position)
    r = leaves[0].shape[0]
    nb, gm = n_beta.view(-1, 1), gamma.view(-1, 1)
    with torch.enable_grad():
        loss = problem.row_loss(leaves, None)
        grads = torch.autograd.grad(loss.sum(), leaves, create_graph=True)
        d = sum(w[0].numel() for w in leaves)
        v = torch.randn(r, d, generator=generator, dtype=leaves[0].dtype, device=leaves[0].device)
        lam = torch.zeros(r, dtype=leaves[0].dtype, device=leaves[0].device)
        for _ in range(POWER_ITERS):
            v = v / torch.linalg.vector_norm(v, dim=1, keepdim=True).clamp_min(1e-30)
            u = precond.apply_sqrt(v)  # S v
            hu = flatten(torch.autograd.grad(grads, leaves, grad_outputs=unflatten(u, leaves), retain_graph=True))
            y = precond.apply_sqrt(nb * hu + gm * u)  # S (n_beta H + gamma) S v
            lam = torch.linalg.vecdot(v, y).detach()
            v = y.detach()
    return lam.abs()


def auto_eps(
    problem: _Problem,
    *,
    n_beta: torch.Tensor,  # (B,)
    gamma: torch.Tensor,  # (B,)
    chains: int,
    batch_size: int | None,
    seed: int,
    step_scale: float = STEP_SCALE,
    precond: Preconditioner | None = None,
    cost: dict | None = None,
) -> torch.Tensor:
    """Per-copy step size eps = step_scale / (n_beta h_max + gamma), h_max the largest top Hessian
    eigenvalue of L seen at w* and along pilot chains (see the module docstring). -> (B,).
    With ``precond`` the same rule in the preconditioned geometry: eps = step_scale / k_max, k_max the largest
    top eigenvalue of M^(1/2) (n_beta H(w) + gamma) M^(1/2) at w* and along preconditioned pilot chains.

    The pilot runs in rounds of PILOT_STEPS, each continuing from where the last one stopped, until the
    curvature stops growing by more than 20% (at most PILOT_ROUNDS rounds): chains of singular models
    drift from w* into regions of larger curvature, and the step size must be safe there too.
    A round that diverges restarts from w* with eps / 10.

    ``cost``: a dict whose "gradient_evals" entry is increased by the gradient evaluations spent here (one per
    row and SGLD step, two per row and Hessian-vector product of the power iterations).
    """
    g = torch.Generator(problem.device).manual_seed(int(seed) + 7919)  # pilot stream, not the run's
    if precond is None:
        def curvature(position, nb, gm):
            return _top_curvature(problem, position, g)

        def precision(c, nb, gm):
            return nb * c + gm
    else:
        def curvature(position, nb, gm):
            return _top_curvature_preconditioned(problem, position, precond, nb, gm, g)

        def precision(c, nb, gm):
            return c
    pilot_chains = min(chains, 4)
    rep = lambda t: t.repeat_interleave(pilot_chains)  # noqa: E731
    h = curvature(problem.anchor, n_beta, gamma)  # (B,)
    eps = step_scale / precision(h, n_beta, gamma)
    init = _full_loss(problem, problem.anchor)
    B = h.shape[0]
    evals = 2 * POWER_ITERS * B
    start = None
    for k in range(PILOT_ROUNDS):
        evals += (PILOT_STEPS + 1) * B * pilot_chains + 2 * POWER_ITERS * B * pilot_chains
        run = _run_chains(problem, pilot_chains, eps=rep(eps), n_beta=rep(n_beta), gamma=rep(gamma),
                          init_loss=rep(init), num_burnin=PILOT_STEPS, num_draws=1, batch_size=batch_size,
                          generator=g, stop_on_divergence=False, start=start, precond=precond)
        div = run.diverged.view(-1, pilot_chains).any(1)
        if bool(div.any()):
            eps = torch.where(div, eps / 10, eps)
            start = None
            continue
        h_pilot = curvature(run.final, rep(n_beta), rep(gamma)).view(-1, pilot_chains).max(1).values
        grew = h_pilot > 1.2 * h
        h = torch.maximum(h, h_pilot)
        eps = torch.minimum(eps, step_scale / precision(h, n_beta, gamma))
        start = run.final
        if k >= 1 and not bool(grew.any()):
            break
    if cost is not None:
        cost["gradient_evals"] = cost.get("gradient_evals", 0) + int(evals)
    return eps


@dataclass(frozen=True)
class _AutoRun:
    loss_trace: torch.Tensor  # (R, draws) the eps rows after the discarded first quarter
    log_accept: torch.Tensor  # (R, draws)
    full_trace: torch.Tensor | None  # (R, k) thinned full-data losses within the kept draws (minibatch runs)
    final: Position
    burnin: int
    draws: int
    info: list[dict]  # per copy: steps, stop reason, bias check


def _chain_stats(trace: np.ndarray, init_loss: float, n_beta: float) -> tuple[float, float, float, float]:
    """(llc, se across chains, rise from first to second half, se of that rise) of a (chains, draws) trace."""
    c, t = trace.shape
    per = n_beta * (trace.mean(1) - init_loss)
    half = t // 2
    rise = n_beta * (trace[:, half:].mean(1) - trace[:, :half].mean(1))
    return (float(per.mean()), float(per.std(ddof=1) / math.sqrt(c)), float(rise.mean()),
            float(rise.std(ddof=1) / math.sqrt(c)))


def _se_ess(trace: np.ndarray, n_beta: float) -> float:
    """Autocorrelation-aware standard error of n_beta * mean(trace) over all chains (ESS of the mean, BDA3
    sec. 11.5): a second opinion beside the across-chain SE, which with 8 chains is itself uncertain by ~25%."""
    return float(n_beta * trace.std(ddof=1) / math.sqrt(ess(trace, method="mean")))


def _segment(problem: _Problem, chains: int, *, eps: torch.Tensor, n_beta: torch.Tensor, gamma: torch.Tensor,
             init_loss: torch.Tensor, steps: int, batch_size: int | None, generator: torch.Generator,
             progress: bool, precond, start: Position | None = None) -> _Run:
    """One segment of calibrate="auto" (per-copy eps, n_beta, gamma, init_loss: (B,)): ``steps`` recorded draws
    continuing from ``start`` (None: w*)."""
    rep = lambda t: t.repeat_interleave(chains)  # noqa: E731
    return _run_chains(problem, chains, eps=rep(eps), n_beta=rep(n_beta), gamma=rep(gamma), init_loss=rep(init_loss),
                       num_burnin=0, num_draws=steps, batch_size=batch_size, generator=generator, progress=progress,
                       start=start, diag_points=DIAG_POINTS, precond=precond)


def _stop_check(trace: np.ndarray, init_loss: float, n_beta: float, burn: int, target_rel_se: float,
                with_rhat: bool) -> dict:
    """The stopping rule of :func:`_auto_run` on one copy's kept draws (chains, draws), ``burn`` steps discarded
    before them: the estimate, its SE across chains, and whether it is relaxed, long enough, precise and mixed
    ("ok": all four)."""
    llc, se, rise, rise_se = _chain_stats(trace, init_loss, n_beta)
    relaxed = rise <= AUTO_RELAX_REL * abs(llc) or rise <= AUTO_RELAX_SE * rise_se
    r = rhat(trace, method="rank") if with_rhat else float("nan")
    e = ess(trace, method="mean")
    tau = trace.size / e if e > 0 else math.inf  # integrated autocorrelation time, in steps
    long_enough = burn >= AUTO_BURN_TAU * tau
    se_ess = n_beta * trace.std(ddof=1) / math.sqrt(e) if e > 0 else math.inf
    precise = max(se, se_ess) <= target_rel_se * abs(llc)
    return {"llc": llc, "se": se, "rise": rise, "tau_int": float(tau), "burnin_over_tau": float(burn / tau),
            "relaxed": bool(relaxed), "precise": bool(precise), "rhat": float(r),
            "ok": bool(relaxed and precise and long_enough and not (r > RHAT_WARN))}


def _segment_stats(run: _Run, copies: int, init_loss: np.ndarray, n_beta: np.ndarray, target_rel_se: float
                   ) -> list[dict]:
    """:func:`_stop_check` per copy on a first segment (from w*, its first quarter discarded)."""
    t = run.loss_trace.shape[1]
    tr = run.loss_trace[:, t // 4:].reshape(copies, -1, t - t // 4).cpu().numpy()
    return [_stop_check(tr[k], float(init_loss[k]), float(n_beta[k]), t // 4, target_rel_se, run.full_trace is None)
            for k in range(copies)]


@dataclass(frozen=True)
class _Choice:
    kind: str | None
    precond: Preconditioner | None
    info: list[dict]  # per copy, hessian_preconditioner's info of the chosen metric
    eps: torch.Tensor  # (B,)
    generator: torch.Generator  # continues the chosen pilot's stream
    first_run: _Run  # the chosen pilot: the first segment of the calibrated run
    report: list[dict]  # per copy: every candidate's pilot estimate, the choice and why


def _choose_precondition(problem: _Problem, chains: int, *, eps: torch.Tensor, n_beta: torch.Tensor,
                         gamma: torch.Tensor, init_loss: torch.Tensor, batch_size: int | None,
                         generator: torch.Generator, progress: bool, first: int, seed: int, step_scale: float,
                         target_rel_se: float, cost: dict) -> _Choice:
    """precondition="auto": plain SGLD, or a constant metric when plain SGLD has not relaxed, chosen by the chains.

    Plain SGLD runs the first segment of :func:`_auto_run` (``first`` steps from w*, the run's own generator, so
    when it is kept the result is bit for bit that of precondition=None). If every copy passes the whole stopping
    rule there, it is kept and nothing else is tried (the rise test alone is not enough: on a condition-1e4
    quadratic plain SGLD showed no rise after 1,500 steps at 54% of its stationary value, the flat directions'
    ramp hidden under the stiff ones' fluctuations; the >= 20 autocorrelation times of burn-in catch it).
    Otherwise each candidate (AUTO_PRECONDITIONS_DENSE for d <= MAX_PRECONDITION_DIM, else
    AUTO_PRECONDITIONS_SCALABLE) gets its own automatic eps and the same number of steps from w* on its own
    stream. Every constant SPD metric has the same stationary law, and a chain
    started at w* fills its directions from zero variance, so its estimate rises towards the common stationary
    value (monotonically in the quadratic approximation, eq. (2) of slt.sampling.quadratic_approx): after equal
    steps the higher estimate is the better-relaxed sampler. A candidate replaces plain SGLD when it is higher
    by > AUTO_CHOICE_Z SE and > AUTO_CHOICE_REL for some copy and lower by that much for none; of several, the
    largest mean relative gain. The winner's pilot is the first segment of the run (nothing is recomputed); the
    losers' cost is counted in ``cost``.
    """
    B, C = problem.n_copies, chains
    L0, nb = init_loss.cpu().numpy(), n_beta.cpu().numpy()
    plain = _segment(problem, C, eps=eps, n_beta=n_beta, gamma=gamma, init_loss=init_loss, steps=first,
                     batch_size=batch_size, generator=generator, progress=progress, precond=None)
    base = _segment_stats(plain, B, L0, nb, target_rel_se)
    report = [{"plain": base[k], "tried": {}, "chosen": None} for k in range(B)]
    best = _Choice(None, None, [{} for _ in range(B)], eps, generator, plain, report)
    if all(b["ok"] for b in base):
        for r in report:
            r["why"] = f"plain SGLD passed the stopping rule within its first {first} steps"
        return best
    kinds = AUTO_PRECONDITIONS_DENSE if problem.dim <= MAX_PRECONDITION_DIM else AUTO_PRECONDITIONS_SCALABLE
    best_gain, runs = -math.inf, 1
    for i, kind in enumerate(kinds):
        before = cost["gradient_evals"]
        try:
            precond, pinfo = hessian_preconditioner(problem, n_beta, gamma, kind)
            eps_c = auto_eps(problem, n_beta=n_beta, gamma=gamma, chains=C, batch_size=batch_size, seed=seed,
                             step_scale=step_scale, precond=precond, cost=cost)
            gen = torch.Generator(problem.device).manual_seed(int(seed) + 104_729 * (i + 1))
            run = _segment(problem, C, eps=eps_c, n_beta=n_beta, gamma=gamma, init_loss=init_loss, steps=first,
                           batch_size=batch_size, generator=gen, progress=progress, precond=precond)
        except (ValueError, torch.linalg.LinAlgError) as err:  # e.g. gamma = 0 with a singular diagonal, divergence
            for r in report:
                r["tried"][kind] = {"failed": str(err)}
            continue
        runs += 1
        stats = _segment_stats(run, B, L0, nb, target_rel_se)
        gains, better, worse = [], False, False
        for k in range(B):
            diff = stats[k]["llc"] - base[k]["llc"]
            margin = max(AUTO_CHOICE_Z * math.hypot(stats[k]["se"], base[k]["se"]),
                         AUTO_CHOICE_REL * abs(base[k]["llc"]))
            better |= diff > margin
            worse |= diff < -margin
            gains.append(diff / max(abs(base[k]["llc"]), 1e-300))
            report[k]["tried"][kind] = {**stats[k], "eps": float(eps_c[k]),
                                        "gradient_evals": int(cost["gradient_evals"] - before + (first + 1) * B * C)}
        gain = float(np.mean(gains))
        if better and not worse and gain > best_gain:
            best_gain = gain
            best = _Choice(kind, precond, pinfo, eps_c, gen, run, report)
    cost["gradient_evals"] += (runs - 1) * (first + 1) * B * C  # every pilot but the kept one (_auto_run counts it)
    for r in report:
        r["chosen"] = best.kind
        r["why"] = (f"plain SGLD did not pass the stopping rule in its first {first} steps; "
                    + (f"{best.kind} rose higher in as many steps" if best.kind else
                       "no candidate rose significantly higher"))
    return best


def _auto_run(problem: _Problem, chains: int, *, eps: torch.Tensor, n_beta: torch.Tensor, gamma: torch.Tensor,
              init_loss: torch.Tensor, batch_size: int | None, generator: torch.Generator, progress: bool,
              precond, max_steps: int, target_rel_se: float, first: int, cost: dict,
              first_run: _Run | None = None) -> _AutoRun:
    """Chains of adaptive length and a step-halving bias check (calibrate="auto"); eps, n_beta, gamma,
    init_loss: (B,) per copy.

    Length. Segments continue the same chains, each as long as everything before it (1,500, 3,000, 6,000, ...
    steps), and the first quarter of all steps is discarded as burn-in (the usual rule of thumb; Gelman et al.
    BDA3 sec. 11.4 discard half). Stop when, for every copy, on the kept draws: the rise of the estimate from
    their first to their second half is <= AUTO_RELAX_REL of it or within AUTO_RELAX_SE standard errors of 0
    (a chain started at w* fills its flattest directions last, so a rising estimate is still LOW), the discarded
    quarter is >= AUTO_BURN_TAU integrated autocorrelation times of the loss (Sokal, "Monte Carlo methods in
    statistical mechanics", 1997: discard ~20 tau; for a reversible chain the memory of the start decays on the
    time scale of the autocorrelations; without it a singular model, RRR (5,4,5,0) at n_beta 1e3, stopped at
    3,000 steps 7.5% low with no rise visible within 1 SE), R-hat <= 1.1, and the larger of the across-chain and
    the ESS-based standard error is <= target_rel_se of the estimate; or at max_steps.

    Step-halving check (Euler-Maruyama SGLD is biased at first order in eps: lambda_hat(eps) = lambda_hat(0)
    + b eps + O(eps^2); see slt.sampling.calibrate). From the final positions every chain is duplicated: the
    original continues at eps, the copy at eps / 2, for S = max(1000, steps / 4) steps. The bias lives in
    the stiff directions (per Gaussian direction of precision a the variance is inflated by 1/(1 - eps a / 4)),
    which re-equilibrate within ~1/(eps a) steps, while the flat directions, which carry the slow noise,
    start from the same point in both members of a pair and barely move in S steps; so the paired difference
    d = mean(eps) - mean(eps/2) (first quarter of the segment dropped) has a small variance, and
    b eps = 2 E[d] estimates the bias at eps (SE from the spread of d across chains). The eps rows of the
    segment are also kept as draws.
    """
    B, C = problem.n_copies, chains
    R = B * C
    traces, accs, fulls = [], [], []
    pos, steps, seg = None, 0, first
    L0 = init_loss.cpu().numpy()
    nb = n_beta.cpu().numpy()
    stop = ["max_steps"] * B
    last = [{} for _ in range(B)]
    while True:
        if first_run is not None and steps == 0:  # the first segment, already run (precondition="auto")
            run = first_run
        else:
            run = _segment(problem, C, eps=eps, n_beta=n_beta, gamma=gamma, init_loss=init_loss, steps=seg,
                           batch_size=batch_size, generator=generator, progress=progress, precond=precond, start=pos)
        cost["gradient_evals"] += (seg + 1) * R
        traces.append(run.loss_trace)
        accs.append(run.log_accept)
        if run.full_trace is not None:
            k = run.full_trace.shape[1]
            at = np.unique(np.linspace(0, seg - 1, min(DIAG_POINTS, seg)).round().astype(int)) + steps
            fulls.append((at[:k], run.full_trace))
        pos, steps = run.final, steps + seg
        burn = steps // 4
        tr = torch.cat(traces, 1)[:, burn:].view(B, C, -1).cpu().numpy()
        done = True
        for k in range(B):
            chk = _stop_check(tr[k], float(L0[k]), float(nb[k]), burn, target_rel_se, fulls == [])
            ok = chk.pop("ok")
            last[k] = {key: chk[key] for key in ("tau_int", "burnin_over_tau", "relaxed", "precise", "rhat")}
            if ok and stop[k] == "max_steps":
                stop[k] = f"converged at {steps} steps"
            done &= ok
        if done or steps >= max_steps:
            break
        seg = min(steps, max_steps - steps)
    # step-halving check: rows copy-major, 2C per copy (first C at eps, then C at eps / 2)
    S = max(1000, steps // 4)
    two = tuple(w.view(B, C, *w.shape[1:]).repeat(1, 2, *([1] * (w.dim() - 1))).reshape(2 * R, *w.shape[1:])
                for w in pos)
    eps2 = torch.cat([eps.view(B, 1).expand(B, C), 0.5 * eps.view(B, 1).expand(B, C)], 1).reshape(-1)
    r2 = lambda t: t.repeat_interleave(2 * C)  # noqa: E731
    run = _run_chains(problem, 2 * C, eps=eps2, n_beta=r2(n_beta), gamma=r2(gamma), init_loss=r2(init_loss),
                      num_burnin=0, num_draws=S, batch_size=batch_size, generator=generator, progress=progress,
                      start=two, diag_points=DIAG_POINTS, precond=precond)
    cost["gradient_evals"] += (S + 1) * 2 * R
    main = run.loss_trace.view(B, 2 * C, S)[:, :C]
    traces.append(main.reshape(R, S))
    accs.append(run.log_accept.view(B, 2 * C, S)[:, :C].reshape(R, S))
    if run.full_trace is not None:
        k = run.full_trace.shape[1]
        at = np.unique(np.linspace(0, S - 1, min(DIAG_POINTS, S)).round().astype(int)) + steps
        fulls.append((at[:k], run.full_trace.view(B, 2 * C, k)[:, :C].reshape(R, k)))
    final = tuple(w.view(B, 2 * C, *w.shape[1:])[:, :C].reshape(R, *w.shape[1:]) for w in run.final)
    seg_tr = run.loss_trace.view(B, 2 * C, S)[:, :, S // 4:].mean(2).cpu().numpy()  # (B, 2C)
    info = []
    for k in range(B):
        d = float(nb[k]) * (seg_tr[k, :C] - seg_tr[k, C:])
        bias, bias_se = 2 * float(d.mean()), 2 * float(d.std(ddof=1) / math.sqrt(C))
        info.append({"steps_per_chain": steps, "stop": stop[k], "bias_check_steps": S,
                     "eps_bias": bias, "eps_bias_se": bias_se, "last_check": last[k]})
    total = steps + S
    burn = steps // 4
    trace = torch.cat(traces, 1)[:, burn:]
    log_acc = torch.cat(accs, 1)[:, burn:]
    full = None
    if fulls:
        at = np.concatenate([a for a, _ in fulls])
        vals = torch.cat([v for _, v in fulls], 1)
        keep = torch.as_tensor(np.nonzero(at >= burn)[0], device=vals.device)
        full = vals.index_select(1, keep)
    return _AutoRun(trace, log_acc, full, final, burn, total - burn, info)


def displacement_ratio(final: Position, anchor: Position, chains: int) -> torch.Tensor:
    """How far the chains reached, relative to the size of w*, per copy: (B,)

        sqrt( mean over chains and parameters of (w - w*)^2 / mean over parameters of w*^2 ).

    The localising term gamma/2 |w - w*|^2 lets directions the loss barely constrains move by ~1/sqrt(gamma).
    A ratio near or above 1 means the sampled neighbourhood is as large as the weights themselves, so the
    estimate describes that neighbourhood rather than the point w* (experiments/check/RESULTS.md: ratio
    ~2.8 at gamma = 1 on a trained p = 53, width 256 network)."""
    num = den = None
    for w, a in zip(final, anchor):
        b = a.shape[0]
        d = (w.reshape(b, chains, -1) - a.reshape(b, 1, -1)).double().pow(2).sum((1, 2))
        n = a.reshape(b, -1).double().pow(2).sum(1) * chains
        num, den = (d, n) if num is None else (num + d, den + n)
    return (num / den.clamp_min(torch.finfo(torch.float64).tiny)).sqrt()


# ----------------------------------------------------------------------------------------------------
# Public API


def _check_args(n, n_beta, eps, gamma, num_chains, num_draws, num_burnin, batch_size):
    if n_beta is not None and not (isinstance(n_beta, (int, float)) and math.isfinite(n_beta) and n_beta > 0):
        raise ValueError(f"n_beta must be None or a finite number > 0, got {n_beta!r}")
    if n_beta is None and n < 2:
        raise ValueError(f"the default n_beta = n/log n needs n >= 2 samples, got n={n}; pass n_beta")
    if eps is not None and not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        raise ValueError(f"eps must be None (automatic) or a finite number > 0, got {eps!r}")
    if not (isinstance(gamma, (int, float)) and math.isfinite(gamma) and gamma >= 0):
        raise ValueError(f"gamma must be a finite number >= 0, got {gamma!r}")
    for name, v, lo in (("num_chains", num_chains, 1), ("num_draws", num_draws, 1), ("num_burnin", num_burnin, 0)):
        if not isinstance(v, int) or isinstance(v, bool) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    if batch_size is not None and (not isinstance(batch_size, int) or not 1 <= batch_size <= n):
        raise ValueError(f"batch_size must be None (full batch) or an integer in [1, {n}], got {batch_size!r}")


def _summarise(trace: np.ndarray, log_acc: np.ndarray, init_loss: float, n_beta: float,
               diag_trace: np.ndarray | None = None, **meta) -> LLCResult:
    """Per-copy result from its (chains, draws) loss trace; R-hat/ESS from ``diag_trace`` (the thinned
    full-data losses of a minibatch run) when given."""
    chains, draws = trace.shape
    per_chain = n_beta * (trace.mean(1) - init_loss)
    llc = float(per_chain.mean())
    if chains >= 2:
        se = float(per_chain.std(ddof=1) / math.sqrt(chains))
    elif draws >= 4:  # one chain: the autocorrelation-aware standard error of its mean
        se = float(n_beta * trace.std(ddof=1) / math.sqrt(ess(trace, method="mean")))
    else:
        se = float("nan")
    mix = trace if diag_trace is None else diag_trace
    r = rhat(mix, method="rank") if chains >= 2 and mix.shape[1] >= 4 else float("nan")
    e = ess(mix, method="bulk") if mix.shape[1] >= 4 else float("nan")
    source = "draws" if diag_trace is None else "full_loss_thinned" if diag_trace.shape[1] else "none"
    acc = mala_acceptance(log_acc).mean()
    below = fraction_below(trace, init_loss)
    notes, flags = [], []
    if llc < 0:
        flags.append("negative")
        notes.append(f"estimate {llc:.4g} < 0: w* is not a local minimum of the loss (or eps is too large)")
    if below > FRAC_BELOW_WARN:
        flags.append("below_init")
        notes.append(f"{below:.0%} of draws have loss below L(w*): w* may not be a local minimum, "
                     "or minibatch noise dominates (use a larger batch)")
    if r > RHAT_WARN:
        flags.append("not_mixed")
        notes.append(f"R-hat {r:.3f} > {RHAT_WARN}: chains have not mixed; use more draws/burn-in "
                     "(a larger gamma mixes faster but measures a smaller neighbourhood: report it)")
    if acc < MALA_WARN:
        flags.append("step_too_large")
        notes.append(f"MALA acceptance {acc:.2f} < {MALA_WARN}: eps={meta['eps']:.3g} is large for the curvature "
                     "the chains reached (first-order bias); try a smaller eps or slt.calibrate_sgld")
    dz, relaxed = float("nan"), True
    if chains >= 2 and draws >= 8:
        half = draws // 2
        rise = n_beta * (trace[:, half:].mean(1) - trace[:, :half].mean(1))
        sd = rise.std(ddof=1)
        dz = float(rise.mean() / (sd / math.sqrt(chains))) if sd > 0 else 0.0
        relaxed = not (dz > RELAX_Z and rise.mean() > RELAX_REL * abs(llc))
        if not relaxed:
            flags.append("not_relaxed")
            notes.append(f"not relaxed: the estimate rose by {rise.mean() / max(abs(llc), 1e-300):.1%} (z = {dz:.1f}) "
                         "from the first to the second half of the draws, so the flattest directions are still "
                         "filling in and the value is LOW; use more num_burnin (x4), a larger step_scale, or "
                         "precondition='lowrank' / 'diagonal'")
    diag = LLCDiagnostics(float(acc), below, float(r), float(e), tuple(notes),
                          rhat_source=source, drift_z=dz,
                          relaxed=relaxed, flags=tuple(flags))
    return LLCResult(llc, se, per_chain, trace, float(init_loss), n_beta=float(n_beta), diagnostics=diag, **meta)


def _predicted_relaxation(model, loss_fn, data, copy: int, n_beta: float, gamma: float, eps: float | None,
                          burnin: int, draws: int) -> dict:
    """The quadratic approximation at w* (dense Hessian, :mod:`slt.sampling.quadratic_approx`): eq. (1) the
    stationary soft count 1/2 sum_i n_beta h_i / (n_beta h_i + gamma), eq. (2) the same for the finite plain-SGLD
    run actually made (started at w*, this eps, burn-in and draws). Their ratio is the fraction of its stationary
    value the run can have reached in the directions the Hessian sees: a direction of precision a relaxes on ~1 /
    (eps a) steps, which the loss trace's own autocorrelation does not reveal when such a direction carries a
    small share of the fluctuations (measured: QuadNet p = 5 K = 3 at n_beta 1e3 passed every trace test at
    48,000 steps and read 9.5 against a soft count of 17.2). eps None (a preconditioned run, whose dynamics
    eq. (2) does not describe): eq. (1) and the rank only."""
    from slt.sampling.quadratic_approx import hessian_spectrum, predict_llc

    try:
        sp = hessian_spectrum(model, loss_fn, data, copy=copy, dense_max_dim=AUTO_SPECTRUM_DIM)
    except (RuntimeError, ValueError) as err:  # a model the Hessian helper cannot take: no prediction
        return {"error": f"{type(err).__name__}: {err}"}
    stat = predict_llc(sp, n_beta, gamma).llc
    run = math.nan if eps is None else predict_llc(sp, n_beta, gamma, eps=eps, num_burnin=burnin, num_draws=draws).llc
    h = np.asarray(sp.top, dtype=np.float64)
    top = float(np.abs(h).max()) if h.size else 0.0
    rank = int((h > top * h.size * np.finfo(np.float64).eps * 1e3).sum()) if top > 0 else 0
    return {"stationary": float(stat), "this_run": float(run), "fraction": float(run / stat) if stat > 0 else math.nan,
            "hessian_rank_half": rank / 2}


def _judge_auto(res: LLCResult, info: dict, target_rel_se: float, cost: dict, elapsed: float,
                step_scale: float) -> LLCResult:
    """Add the calibration's own verdicts (precision, relaxation at the budget, step-halving bias) to a result
    of calibrate="auto", with warnings that name what to change.

    ``eps_bias_bound`` (automatic eps only): step_scale / 4 * |llc|, the first-order Euler-Maruyama inflation
    of a Gaussian direction of precision a, eps a / 4, at its largest (the stiffest direction, eps a =
    step_scale); every quadratic direction is inflated by at most this fraction. It is a systematic error the
    standard error does not contain (measured: regular d = 6, +1.4% = 2.5 SE at step_scale 0.05), and
    ``se_total`` = sqrt(se_conservative^2 + eps_bias_bound^2) is the uncertainty to compare exact values with."""
    d = res.diagnostics
    notes, flags = list(d.warnings), list(d.flags)
    llc = res.llc
    se = max(res.llc_se, _se_ess(res.loss_trace, res.n_beta))
    steps = info["steps_per_chain"]
    if not se <= AUTO_FLAG_REL_SE * abs(llc):
        flags.append("imprecise")
        notes.append(f"standard error {se:.3g} is {se / max(abs(llc), 1e-300):.1%} of the estimate after {steps} steps "
                     f"per chain (target {target_rel_se:.1%}, flagged above {AUTO_FLAG_REL_SE:.0%}); raise max_steps (now the budget) or num_chains")
    lc = info.get("last_check", {})
    choice = info.get("precondition_choice") or {}
    tried = ", ".join(choice.get("tried", {}))
    metric_hint = ("or another precondition ('lowrank' / 'diagonal' / 'hessian-range'; the calibration compared plain "
                   f"SGLD with {tried} and kept {choice['chosen'] or 'plain SGLD'}: "
                   "result.calibration['precondition_choice'])" if tried else
                   "or use precondition='lowrank' / 'diagonal' / 'hessian-range'")
    if info["stop"] == "max_steps" and "not_relaxed" not in flags and (
            not lc.get("relaxed", True) or lc.get("burnin_over_tau", math.inf) < AUTO_BURN_TAU):
        flags.append("not_relaxed")
        notes.append(f"the stopping rule was not met within max_steps={steps}: "
                     + ("the estimate was still rising" if not lc.get("relaxed", True) else
                        f"the discarded burn-in is only {lc.get('burnin_over_tau', 0):.1f} autocorrelation times "
                        f"(tau = {lc.get('tau_int', math.nan):.0f} steps; needs {AUTO_BURN_TAU:g})")
                     + " (flat directions may still be filling in, the value is then LOW); raise max_steps (x4), "
                     f"{metric_hint}, or a larger gamma (report it)")
    pred = info.get("relaxation_prediction", {})
    frac = pred.get("fraction", math.nan)
    # only where the quadratic part carries at least one direction's worth (at a singular point such as w* = 0
    # of RRR or a normal crossing the Hessian is ~0 and the prediction says nothing)
    if pred.get("stationary", 0.0) >= 0.5 and frac < 1 - AUTO_PRED_DEFICIT and "not_relaxed" not in flags:
        flags.append("not_relaxed")
        notes.append(f"the quadratic approximation at w* predicts that this run ({steps} steps per chain at "
                     f"eps={res.eps:.3g}) reached only {frac:.0%} of its stationary value ({pred['stationary']:.4g}): "
                     "flat Hessian directions relax on ~1/(eps * n_beta * h) steps; the value is LOW. Raise max_steps, "
                     f"{metric_hint}, or a larger gamma (report it)")
    half_rank = pred.get("hessian_rank_half", 0.0)
    if half_rank >= 1 and pred["stationary"] < (1 - 2 * AUTO_PRED_DEFICIT) * half_rank:
        flags.append("n_beta_low")
        notes.append(f"at n_beta={res.n_beta:.3g}, gamma={res.gamma:g} the estimator's own stationary value counts only "
                     f"{pred['stationary'] / half_rank:.0%} of rank(H)/2 = {half_rank:g} (Hessian eigenvalues below "
                     "gamma / n_beta count partially; beyond the quadratic approximation the deficit is larger): the "
                     "estimate is a temperature-dependent quantity, not lambda; raise n_beta (and max_steps)")
    b, bse = info["eps_bias"], info["eps_bias_se"]
    llc0 = llc - b
    if abs(b) > AUTO_BIAS_REL * abs(llc) and abs(b) > AUTO_BIAS_Z * bse:
        flags.append("step_size_bias")
        notes.append(f"step-halving check: the step size eps={res.eps:.3g} biases the estimate by {b:+.3g} "
                     f"({b / max(abs(llc), 1e-300):+.1%}, z = {b / max(bse, 1e-300):.1f}); eps -> 0 value {llc0:.4g}; "
                     f"use a smaller step_scale (now the step is step_scale / top curvature) or eps={res.eps / 4:.3g}")
    bound = step_scale / 4 * abs(llc)
    cal = {**info, "llc_eps0": llc0, "se_conservative": se, "eps_bias_bound": bound,
           "se_total": math.hypot(se, bound) if math.isfinite(bound) else se,
           "rel_se": se / abs(llc) if llc else float("inf"),
           "gradient_evals": int(cost["gradient_evals"]), "seconds": float(elapsed)}
    return replace(res, diagnostics=replace(d, warnings=tuple(notes), flags=tuple(flags)), calibration=cal)


def estimate_llc_copies(
    model: nn.Module,
    loss_fn: Callable,
    data: Sequence[torch.Tensor],
    *,
    n_beta: float | None = None,
    eps: float | None = None,
    gamma: float = 1.0,
    num_chains: int | None = None,
    num_draws: int | None = None,
    num_burnin: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    progress: bool = False,
    step_scale: float = STEP_SCALE,
    precondition: str | None = "auto",
    calibrate: bool | str = "auto",
    max_steps: int = AUTO_MAX_STEPS,
    target_rel_se: float = AUTO_REL_SE,
    noise: str | None = None,
) -> list[LLCResult]:
    """One LLC estimate per model copy, all copies x chains in ONE batched SGLD run.

    For a :class:`QuadraticNet` with B copies (seeds, checkpoints stacked with ``n_copies=B``) this
    returns B results in copy order; each copy is localised at its own w* and (with eps=None) gets its
    own automatic step size. Any other module counts as one copy. Arguments as in :func:`estimate_llc`; with
    calibrate="auto" every copy runs until all copies pass the stopping rule (each copy's own result says
    whether it did).
    """
    if isinstance(model, QuadraticNet):
        _check_quadratic_data(model, data)
    problem = replace(_make_problem(model, loss_fn, data), noise=resolve_noise(noise))
    n = problem.n
    if not any(calibrate is m or (isinstance(calibrate, str) and calibrate == m) for m in CALIBRATE_MODES):
        raise ValueError(f"calibrate must be True, False or 'auto', got {calibrate!r}")
    auto = calibrate is True or (calibrate == "auto" and num_draws is None and num_burnin is None)
    if not isinstance(max_steps, int) or isinstance(max_steps, bool) or max_steps < AUTO_FIRST:
        raise ValueError(f"max_steps must be an integer >= {AUTO_FIRST}, got {max_steps!r}")
    if not (isinstance(target_rel_se, (int, float)) and 0 < target_rel_se < 1):
        raise ValueError(f"target_rel_se must lie in (0, 1), got {target_rel_se!r}")
    if num_chains is None:
        # small problems: a step's cost is per-call overhead, so 4x the chains cost ~nothing and cut the steps 4x
        size = problem.dim * n
        num_chains = next((c for bound, c in AUTO_CHAINS if auto and size <= bound), DEFAULT_CHAINS)
    if auto:
        first = AUTO_FIRST if num_draws is None else (num_draws + (num_burnin or 0))
        num_draws, num_burnin = num_draws or DEFAULT_DRAWS, num_burnin or 0  # validated below, then replaced
        if isinstance(num_chains, int) and num_chains < 2:
            raise ValueError(f"calibrate needs num_chains >= 2 (the standard error is across chains), got "
                             f"{num_chains}; pass calibrate=False for one chain")
    else:
        num_draws = DEFAULT_DRAWS if num_draws is None else num_draws
        num_burnin = DEFAULT_BURNIN if num_burnin is None else num_burnin
    _check_args(n, n_beta, eps, gamma, num_chains, num_draws, num_burnin, batch_size)
    if num_draws < 4:
        warnings.warn(f"num_draws={num_draws} < 4: R-hat and ESS are not computed"
                      + (" and, with one chain, the estimate has no standard error (llc_se is nan)"
                         if num_chains < 2 else "") + "; use num_draws >= 4 and num_chains >= 2",
                      LLCWarning, stacklevel=2)
    if not (isinstance(step_scale, (int, float)) and 0 < step_scale < 2):
        raise ValueError(f"step_scale must lie in (0, 2), got {step_scale!r}")
    check_precondition(precondition, problem.dim)
    choose = precondition == "auto" and auto and eps is None
    if precondition == "auto" and not choose:
        precondition = None  # a fixed length or a given eps: plain SGLD, the estimator as before
    t0 = time.perf_counter()
    B, C = problem.n_copies, num_chains
    nb = float(n / math.log(n)) if n_beta is None else float(n_beta)
    opts = dict(dtype=problem.dtype, device=problem.device)
    nb_b = torch.full((B,), nb, **opts)
    gamma_b = torch.full((B,), float(gamma), **opts)
    init = _full_loss(problem, problem.anchor)  # (B,)
    if not bool(torch.isfinite(init).all()):
        raise ValueError("the loss at w* is not finite; check the model and data")
    precond, pinfo = None, [{} for _ in range(B)]
    if precondition is not None and not choose:
        precond, pinfo = hessian_preconditioner(problem, nb_b, gamma_b, precondition)
    cost = {"gradient_evals": 0}
    if eps is None:
        eps_b = auto_eps(problem, n_beta=nb_b, gamma=gamma_b, chains=C, batch_size=batch_size, seed=seed,
                         step_scale=step_scale, precond=precond, cost=cost)
    else:
        eps_b = torch.full((B,), float(eps), **opts)
    rep = lambda t: t.repeat_interleave(C)  # noqa: E731
    gen = torch.Generator(problem.device).manual_seed(int(seed))
    auto_info = [{} for _ in range(B)]
    if auto:
        first_run, choice = None, None
        if choose:
            choice = _choose_precondition(problem, C, eps=eps_b, n_beta=nb_b, gamma=gamma_b, init_loss=init,
                                          batch_size=batch_size, generator=gen, progress=progress, first=first,
                                          seed=int(seed), step_scale=step_scale,
                                          target_rel_se=float(target_rel_se), cost=cost)
            precondition, precond, pinfo, eps_b, gen = (choice.kind, choice.precond, choice.info, choice.eps,
                                                        choice.generator)
            first_run = choice.first_run
        arun = _auto_run(problem, C, eps=eps_b, n_beta=nb_b, gamma=gamma_b, init_loss=init, batch_size=batch_size,
                         generator=gen, progress=progress, precond=precond, max_steps=max_steps,
                         target_rel_se=float(target_rel_se), first=first, cost=cost, first_run=first_run)
        run = _Run(arun.loss_trace, arun.log_accept, torch.zeros(1, dtype=torch.bool), -1, arun.final,
                   arun.full_trace)
        num_draws, num_burnin, auto_info = arun.draws, arun.burnin, arun.info
        if choice is not None:
            for k in range(B):
                auto_info[k]["precondition_choice"] = choice.report[k]
    else:
        run = _run_chains(problem, C, eps=rep(eps_b), n_beta=rep(nb_b), gamma=rep(gamma_b), init_loss=rep(init),
                          num_burnin=num_burnin, num_draws=num_draws, batch_size=batch_size, generator=gen,
                          progress=progress, diag_points=diag_points_for(num_burnin, num_draws, n, batch_size),
                          precond=precond)
    elapsed = time.perf_counter() - t0
    trace = run.loss_trace.view(B, C, num_draws).cpu().numpy()
    if C * num_draws >= 2:  # constant up to rounding (a few ulps of the loss scale): no information
        tol = 16 * torch.finfo(problem.dtype).eps
        for k in range(B):
            if np.ptp(trace[k]) <= tol * max(abs(float(init[k])), float(np.abs(trace[k]).max())):
                raise ValueError(
                    f"every SGLD draw of copy {k} has the same loss {float(trace[k].flat[0]):.6g}: the loss does not "
                    "change with the parameters on these batches (e.g. centred_mse on minibatches of one sample is "
                    f"identically 0; batch_size={batch_size}); use a larger batch_size or the full batch (None)")
    full = None if run.full_trace is None else run.full_trace.view(B, C, -1).cpu().numpy()
    if full is None and batch_size is not None and batch_size < n:  # too short for full-data diagnostics
        full = np.empty((B, C, 0))
    log_acc = run.log_accept.view(B, C, num_draws).cpu().numpy()
    reach = displacement_ratio(run.final, problem.anchor, C).cpu()
    results = []
    for k in range(B):
        res = _summarise(trace[k], log_acc[k], float(init[k]), nb, None if full is None else full[k], n=n, eps=float(eps_b[k]), gamma=float(gamma),
                         num_chains=C, num_draws=num_draws, num_burnin=num_burnin, batch_size=batch_size,
                         seed=int(seed), eps_auto=eps is None, elapsed_s=elapsed, precondition=precondition,
                         extra={**{f"precondition_{k_}": v for k_, v in pinfo[k].items()},
                                "displacement_ratio": float(reach[k]), "noise": problem.noise})
        if auto:
            if problem.dim <= AUTO_SPECTRUM_DIM:
                auto_info[k]["relaxation_prediction"] = _predicted_relaxation(
                    model, loss_fn, data, k, nb, float(gamma), None if precondition else float(eps_b[k]), num_burnin,
                    num_draws)
            res = _judge_auto(res, auto_info[k], float(target_rel_se), cost, elapsed,
                              step_scale if eps is None else math.nan)
        for msg in res.diagnostics.warnings:
            warnings.warn(f"LLC estimate (copy {k}): {msg}", LLCWarning, stacklevel=2)
        results.append(res)
    return results


def estimate_llc(
    model: nn.Module,
    loss_fn: Callable,
    data: Sequence[torch.Tensor],
    *,
    n_beta: float | None = None,
    eps: float | None = None,
    gamma: float = 1.0,
    num_chains: int | None = None,
    num_draws: int | None = None,
    num_burnin: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    progress: bool = False,
    step_scale: float = STEP_SCALE,
    precondition: str | None = "auto",
    calibrate: bool | str = "auto",
    max_steps: int = AUTO_MAX_STEPS,
    target_rel_se: float = AUTO_REL_SE,
    noise: str | None = None,
) -> LLCResult:
    """Estimate the local learning coefficient of ``model`` at its current parameters w*.

    lambda_hat = n_beta (E[L(w)] - L(w*)) under exp(-n_beta L(w) - gamma/2 |w - w*|^2), sampled by
    ``num_chains`` SGLD chains run as one batched computation (Lau et al., arXiv 2308.12108, eq. 8).

    Args:
        model: any ``nn.Module`` (all parameters that require grad are sampled), or a
            :class:`QuadraticNet` with one copy (use :func:`estimate_llc_copies` for several).
        loss_fn: ``loss_fn(model(*inputs), target)`` -> AVERAGE per-sample NLL (scalar). For a
            QuadraticNet, a per-copy loss from :mod:`slt.losses` returning (B,) (or :func:`regression_mse`).
        data: tuple (inputs..., target) of tensors sharing their first dimension n; for a
            QuadraticNet (a, b, target).
        n_beta: inverse temperature n*beta; default n / log n (devinterp's default is b / log b with b
            the batch size). A loss scaled by c acts like n_beta * c.
        eps: SGLD step size; None chooses it from the curvature (module docstring).
        gamma: localisation strength (gamma = 0: no localisation).
        batch_size: minibatch size per chain and step; None = full batch.
        seed: seeds the run's ``torch.Generator`` (noise and minibatches); same seed, same numbers.
        progress: show a tqdm progress bar.
        step_scale: target eps * (top curvature) for the automatic step size.
        precondition: "auto" (default): on the calibrate="auto" path with an automatic eps, plain SGLD unless
            it fails the stopping rule within its first segment and a constant metric ("hessian-range" for
            d <= MAX_PRECONDITION_DIM, else "lowrank") then rises significantly higher in as many steps from w*
            (:func:`_choose_precondition`; ``result.calibration["precondition_choice"]`` has every pilot's
            estimate, the choice and why, and the pilots are in the reported cost); with fixed lengths or a
            given eps, plain SGLD. Otherwise a fixed choice:
            None (plain SGLD) or "hessian": preconditioned Langevin with the constant metric
            M = (n_beta H + gamma I)^(-1), H the full-data loss Hessian at w* (PSD-clipped); same target
            law, every direction of the quadratic approximation equally stiff (module docstring). Only for
            d <= MAX_PRECONDITION_DIM parameters (dense d x d metric); eps is then measured in the
            whitened frame (automatic: step_scale / top eigenvalue of M^(1/2) (n_beta H + gamma) M^(1/2)).
            "hessian-range": the same on the range of H, the null space of H moving as in plain SGLD
            (:func:`hessian_preconditioner`). Measured on the quadratic nets of ``slt check`` claim 1:
            "hessian" does not help there (its automatic eps collapses, see hessian_preconditioner);
            "hessian-range" does at n_beta = 1e7 but not at 1e5, where the flattest directions of H are
            nonlinear on the posterior's scale.
            "diagonal" / "rmsprop" / "lowrank": constant metrics without a d x d matrix, for any d
            (:mod:`slt.sampling.precondition`): Jacobi diag(n_beta H_ii + gamma)^-1 from a Hutchinson diagonal,
            its square root (frozen RMSprop), or the top Hessian eigenspace (Lanczos) whitened exactly plus the
            Jacobi diagonal on the rest. Measured at polished p = 23 nets (experiments/local_sgld): all within
            2.5% of rank(J)/2 at n_beta 1e8, gamma 1e4, as is plain SGLD there; at n_beta 1e10 "diagonal" and
            "lowrank" collapse the step (whitened eps ~1e-4: the Jacobi diagonal misjudges the coupled flat
            directions of a trained net), so the automatic choice keeps plain SGLD there.

        num_chains: None = 8, or on the calibrate="auto" path 64 when d * n <= 2e4 and 16 when <= 2e5 (for
            small problems a step costs the same for 8 or 64 chains, so more chains are ~free).
        num_draws, num_burnin: None (default) lets calibrate="auto" choose the chain length; either one given
            fixes it (the fixed path below; a missing one takes its old default 1,000 draws / 500 burn-in).
        calibrate: "auto" (default): calibrate what the caller did not fix. With neither num_draws nor num_burnin
            given, the chains run in doubling segments (1,500, 3,000, ... steps; the first quarter discarded)
            until the estimate is relaxed (no rise from the first to the second half of the kept draws beyond
            2% or 1 SE), mixed (R-hat <= 1.1) and precise (SE <= ``target_rel_se`` of the estimate, the SE being
            the larger of the across-chain and the ESS-based one), or ``max_steps`` per chain; then a
            step-halving check (every chain duplicated, the copy at eps / 2: b eps = 2 E[mean(eps) -
            mean(eps/2)] estimates the first-order step-size bias). ``result.calibration`` reports what was
            chosen and measured and the cost (gradient evaluations incl. the pilot, seconds). The result is
            FLAGGED (``result.flagged``, ``diagnostics.flags``, an LLCWarning naming what to change) when the
            budget ran out before relaxation ("not_relaxed"), the SE stays above 4% ("imprecise"), R-hat > 1.1
            ("not_mixed"), or the bias check finds > 5% at > 3 SE ("step_size_bias"). Measured on the
            validation cases: experiments/local_sgld/DEFAULTS.md. True: calibrate even with lengths given
            (they set the first segment). False: the fixed-length path (bit for bit the estimator before
            issue 12: 8 chains x (500 + 1,000) steps by default).
        max_steps: step budget per chain of the calibration (before the bias check).
        target_rel_se: the calibration's precision target (relative SE).
        noise: the Langevin noise source: "torch" (torch.randn from the seeded generator) or "counter"
            (SplitMix64 counters + Box-Muller, fused into the update by torch.compile: ~3x the draws per second,
            a few seconds' compile once per process; :mod:`slt.sampling.noise`). None: the environment's
            SLT_NOISE, else "torch". Recorded in ``result.extra["noise"]``.

    The result's ``diagnostics.relaxed`` is False (with an LLCWarning) when the estimate is still rising from
    the first to the second half of the draws: the flattest directions have not filled in and the value is low.

    Raises:
        SGLDDivergenceError (a ValueError): NaN/inf or a runaway chain; the message suggests an eps.
    """
    if isinstance(model, QuadraticNet) and model.n_copies != 1:
        raise ValueError(f"model has {model.n_copies} copies; use estimate_llc_copies for one LLC per copy")
    return estimate_llc_copies(model, loss_fn, data, n_beta=n_beta, eps=eps, gamma=gamma, num_chains=num_chains,
                               num_draws=num_draws, num_burnin=num_burnin, batch_size=batch_size, seed=seed,
                               progress=progress, step_scale=step_scale, precondition=precondition,
                               calibrate=calibrate, max_steps=max_steps, target_rel_se=target_rel_se,
                               noise=noise)[0]

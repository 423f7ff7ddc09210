"""What ``slt check`` runs: one frozen dataclass per experiment, grouped into profiles.

``quick`` (the end-to-end test: tiny sizes, about a minute), ``default`` (the README's command: small p and
width, reduced draws, under 5 minutes on 2 CPU cores) and ``full`` (paper scale: p = 53..97, widths up to
1024, more seeds and draws; hours). The same settings are shipped as JSON in ``experiments/check/`` for
users to edit; the library itself only reads these Python defaults.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from slt.checks.local_llc import DEVINTERP, LOCAL, PAPER_APPH, LocalLLCSpec, SGLDProtocol
from slt.checks.timing_law import TimingLawSpec

PROFILES = ("quick", "default", "full")


@dataclass(frozen=True)
class SGLDSettings:
    """Keyword arguments for ``slt.estimate_llc``; None means the estimator's own default
    (n_beta = n / log n, automatic eps, its default gamma)."""

    num_chains: int = 4
    num_draws: int = 200
    num_burnin: int = 100
    gamma: float | None = None
    eps: float | None = None
    n_beta: float | None = None
    batch_size: int | None = None
    step_scale: float | None = None  # target eps x top curvature for the automatic eps (estimator default 0.05)
    precondition: str | None = None  # None or "hessian-range" (dense, small models): see slt.estimate_llc

    def kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


@dataclass(frozen=True)
class ClosedFormCase:
    """A random teacher QuadraticNet (a generic point) and its own outputs as targets (realisable)."""

    p: int
    width: int
    n_train: int
    tied: bool = False
    centred: bool = False

    @property
    def label(self) -> str:
        return (f"p{self.p}-K{self.width}-N{self.n_train}" + ("-tied" if self.tied else "")
                + ("-centred" if self.centred else ""))


@dataclass(frozen=True)
class ClosedFormSpec:
    """Claim 1 runs the protocol that validated the estimator on quadratic networks
    (tests/test_llc_validation.py): noiseless teacher targets, so the loss is the population loss on the
    given pairs, L(w*) = 0 and n_beta is a free inverse temperature; gamma = 1; SGLD at ``eps_factors`` x the
    automatic step size, extrapolated linearly to eps -> 0 (``slt.calibrate_sgld``).

    Preconditioned ("hessian-range": M = (n_beta H(w*) + gamma)^-1 on the range of the Hessian) at
    n_beta = 1e7. Why: the teachers' Hessians have condition numbers 1e2-2e4, so plain SGLD needs ~20 x
    condition steps to relax its flattest directions (at 12,000 draws 4 of 6 cases were 8-21% low and
    undecided); and at n_beta = 1e5 the flattest curved directions are not yet quadratic on the posterior's
    scale (median preconditioned curvature ~440 instead of 1 at posterior draws for p3-K2-N8), which defeats
    any metric taken at w*. At n_beta = 1e7 it falls to ~6 and 5 of the 6 default cases agree within 3 SE
    with 5,000 + 10,000 steps (measured while building the preconditioner)."""

    cases: tuple[ClosedFormCase, ...]
    sgld: SGLDSettings = SGLDSettings(num_chains=8, num_draws=10000, num_burnin=5000, gamma=1.0, n_beta=1e7,
                                      precondition="hessian-range")
    eps_factors: tuple[float, ...] = (0.25, 0.5, 1.0)
    teacher_seed: int = 0
    # Teacher weights ~ init_scale x the default init (the validation used the default init). lambda is the
    # same at every generic point; what the teacher changes is the conditioning of the loss Hessian, and
    # with it how many SGLD steps the flattest directions need (recorded per case as "condition").
    teacher_scale: float = 1.0


@dataclass(frozen=True)
class TrainSpec:
    """A training run: a shipped preset with some fields overridden (``TrainConfig.replace``)."""

    preset: str = "grokking"
    overrides: dict = field(default_factory=dict)


@dataclass(frozen=True)
class TrajectorySpec:
    """The grokking run whose checkpoints give the LLC trajectory (claims 2, 3 and 6)."""

    train: TrainSpec
    n_llc_checkpoints: int = 12  # sets the checkpoint schedule: about 2x this many are saved
    sgld: SGLDSettings = SGLDSettings()
    llc_steps: int | None = None  # log-spaced saved checkpoints that get an LLC (None: 2 x n_llc_checkpoints)


@dataclass(frozen=True)
class LrSweepSpec:
    train: TrainSpec
    lrs: tuple[float, ...] = (3e-4, 1e-3, 3e-3)
    n_llc_checkpoints: int = 8
    sgld: SGLDSettings = SGLDSettings()
    llc_steps: int | None = None


@dataclass(frozen=True)
class PaperSweepSpec:
    """LLC at the end of training against p (width fixed) and against width K (p fixed)."""

    train: TrainSpec
    ps: tuple[int, ...] = (11, 17, 23)
    width_for_p: int = 64
    widths: tuple[int, ...] = (32, 64, 128)
    p_for_width: int = 17
    sgld: SGLDSettings = SGLDSettings()


@dataclass(frozen=True)
class ExactSpec:
    """Exact lambda at polished checkpoints of a grokking run (claim 7, :mod:`slt.checks.exact`)."""

    train: TrainSpec
    n_checkpoints: int = 8  # checkpoints (log + linear schedule) that get an exact value, per seed
    device: str = "cpu"  # where the polish and the rank run (float64; 'cuda' at the paper's scale)
    n_probe: int = 1  # Morse-Bott probes where the rank meets no bound (each: an LSQR projection + a polish + a rank)
    basins: bool = True  # exact lambda of the constructed basins (padded Fourier, polished memorising construction)


@dataclass(frozen=True)
class CheckProfile:
    name: str
    closed_form: ClosedFormSpec
    trajectory: TrajectorySpec
    lr_sweep: LrSweepSpec
    paper_sweeps: PaperSweepSpec
    max_point_params: int = 4000  # Jacobian/Hessian rank at a trained point only below this many parameters
    exact: ExactSpec | None = None
    local_llc: LocalLLCSpec | None = None  # SGLD protocols at claim 7's checkpoints (slt.checks.local_llc)
    timing_law: TimingLawSpec | None = None  # held-out runs for the grokking-time law (slt.checks.timing_law)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CheckProfile":
        return _build(cls, d)


_NESTED = {
    "closed_form": ClosedFormSpec, "trajectory": TrajectorySpec, "lr_sweep": LrSweepSpec,
    "paper_sweeps": PaperSweepSpec, "sgld": SGLDSettings, "train": TrainSpec, "exact": ExactSpec,
    "local_llc": LocalLLCSpec, "timing_law": TimingLawSpec,
}


def _build(cls, d: dict[str, Any]):
    if not isinstance(d, dict):
        raise ValueError(f"{cls.__name__} must be a JSON object, got {type(d).__name__}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(f"unknown key(s) {unknown} for {cls.__name__}; allowed: {sorted(names)}")
    kw = {}
    for k, v in d.items():
        if k in _NESTED and isinstance(v, dict):
            v = _build(_NESTED[k], v)
        elif k == "cases":
            v = tuple(_build(ClosedFormCase, c) for c in v)
        elif k == "protocols":
            v = tuple(_build(SGLDProtocol, c) if isinstance(c, dict) else c for c in v)
        elif isinstance(v, list):
            v = tuple(v)
        kw[k] = v
    return cls(**kw)


def _train(steps: int, seeds: tuple[int, ...], **kw: Any) -> TrainSpec:
    return TrainSpec("grokking", {"steps": steps, "seeds": list(seeds), **kw})


# Small grokking setting for the default: the grokking preset's task and optimiser (p = 53, 40% of pairs, Adam
# lr 1e-3, wd 1e-4, batch 128, centred MSE) at width 256 memorises at steps 200-300 and groks at 1,800-2,050
# (3 of 3 seeds); 4,000 steps leave the grokked network 2,000 steps to settle (~8 s for 3 seeds).
_SMALL = dict(p=53, width=256, lr=1e-3, stop_on_grok=False)
# Minibatch SGLD (batch 128, as the paper's sampler) at step_scale 0.5, i.e. eps = 0.5 / (n_beta h_max + gamma),
# 10x the estimator's default. Why (experiments/mixing_probe, p = 53, width 256 grokked net, gamma 1): at the
# default step the flattest directions relax with time constant ~1 / (eps gamma) ~ 5,000 steps, and a 300-step
# chain gave 1,213 against ~6,100 once mixed; at step_scale 0.5 the chains reach the mixed value in ~300 steps
# and pass R-hat <= 1.1 on the full-data loss after 300 + 700 (R-hat 0.98-1.05 on all 21 checkpoint x seed
# copies of the default trajectory). The price is a first-order step-size bias, measured at +1-3% at gamma 1
# (0.5 vs 0.1); claim 6 measures it on its own checkpoints by extrapolating eps -> 0.
# Claim 7 (exact lambda at polished checkpoints) needs a net whose polish and structured rank take seconds: p = 23,
# width 128, 60% of the pairs memorises at steps 180-240 and groks at 2,900-3,850 (3 of 3 seeds, 5,000 steps); the
# data cap binds ((3p-2)K = 8,576 > pN' = 7,268), so a polished interpolating checkpoint has lambda <= 3,634.
_EXACT_SMALL = dict(p=23, width=128, train_fraction=0.6, lr=1e-3, stop_on_grok=False)
_TRAJ_SGLD = SGLDSettings(num_chains=3, num_draws=700, num_burnin=300, batch_size=128, step_scale=0.5)
_FULL_SGLD = SGLDSettings(num_chains=4, num_draws=4000, num_burnin=2000, batch_size=128, step_scale=0.5)


# Claim 1 cases: under-parameterised ((3p-2)K < pN', lambda = (3p-2)K/2 or its tied analogue) and
# over-parameterised (the data cap pN'/2 binds), tied and untied, plain and centred. The training pairs are
# most of the p^2 (or the net far past the data cap): near the boundary (3p-2)K ~ pN' or with few pairs the
# loss Hessian's condition number reaches 1e4-1e5 (e.g. p = 5, K = 6, N = 12) and plain SGLD needs ~20 x
# condition steps to equilibrate its flattest directions. Claim 1 therefore runs preconditioned SGLD
# (ClosedFormSpec); with it the full profile's 60,000 steps agree on 10 of its 12 cases, and the case at
# condition 6.4e4 (p = 11, K = 8, N = 30, centred) still does not relax (experiments/check/RESULTS.md).
_CF_DEFAULT = (ClosedFormCase(3, 2, 8), ClosedFormCase(3, 6, 8, centred=True), ClosedFormCase(5, 3, 24),
               ClosedFormCase(5, 3, 24, tied=True), ClosedFormCase(5, 12, 24, centred=True),
               ClosedFormCase(7, 5, 40, centred=True))


def profile(name: str = "default") -> CheckProfile:
    """The shipped settings of ``quick``, ``default`` or ``full``."""
    if name == "quick":
        tiny = dict(p=23, width=128, lr=3e-3, train_fraction=0.5, batch_size=64)
        sgld = SGLDSettings(num_chains=2, num_draws=40, num_burnin=20)
        exact_quick = ExactSpec(_train(1200, (0, 1), **tiny), n_checkpoints=3)
        return CheckProfile(
            name="quick",
            closed_form=ClosedFormSpec(
                cases=(ClosedFormCase(3, 2, 8), ClosedFormCase(3, 6, 8, centred=True)),
                sgld=SGLDSettings(num_chains=4, num_draws=2000, num_burnin=1000, gamma=1.0, n_beta=1e7,
                                  precondition="hessian-range")),
            trajectory=TrajectorySpec(_train(1200, (0, 1), **tiny), n_llc_checkpoints=5, sgld=sgld),
            lr_sweep=LrSweepSpec(_train(1200, (0, 1), **tiny), lrs=(1e-3, 3e-3), n_llc_checkpoints=5, sgld=sgld),
            paper_sweeps=PaperSweepSpec(_train(600, (0, 1), **tiny), ps=(17, 23), width_for_p=32,
                                        widths=(16, 32), p_for_width=17, sgld=sgld),
            max_point_params=1500,
            exact=exact_quick,
            local_llc=LocalLLCSpec(exact_quick, (PAPER_APPH,)),  # claim 8 samples claim 7's run and checkpoints
        )
    if name == "default":
        exact_default = ExactSpec(_train(5000, (0, 1, 2), **_EXACT_SMALL), n_checkpoints=6, basins=False)
        return CheckProfile(
            name="default",
            # 4,000 + 8,000 steps: the 5-minute budget (the per-step overhead dominates these tiny networks)
            closed_form=ClosedFormSpec(cases=_CF_DEFAULT, sgld=replace(ClosedFormSpec.sgld, num_burnin=4000,
                                                                       num_draws=8000)),
            trajectory=TrajectorySpec(_train(4000, (0, 1, 2), **_SMALL), n_llc_checkpoints=8, sgld=_TRAJ_SGLD,
                                      llc_steps=12),
            # the lr sweep's LLC only places the drop and the peak (no drop was found on the trajectory): 2 chains,
            # 3 checkpoints (initialisation, memorisation, end)
            lr_sweep=LrSweepSpec(_train(4000, (0, 1, 2), **_SMALL), lrs=(1e-3, 2e-3, 4e-3), n_llc_checkpoints=8,
                                 llc_steps=3, sgld=replace(_TRAJ_SGLD, num_chains=2)),
            # width 256 for the p sweep: at width 128, p = 41 and 53 did not fit every seed in 3,000 steps (train
            # acc 0.98-0.99) and width 64 never fits at p = 53 ((3p-2)K < pN'); the closed forms need a fit
            paper_sweeps=PaperSweepSpec(_train(3000, (0, 1, 2), **_SMALL), ps=(31, 41, 53), width_for_p=256,
                                        widths=(128, 256), p_for_width=53, sgld=_TRAJ_SGLD),
            # the basin constructions (~40 s here) are left to --full and experiments/exact_trajectory: 5-minute budget
            exact=exact_default,
            # claim 8 with the paper's App. H protocol only (devinterp and local: --protocol or --full)
            local_llc=LocalLLCSpec(exact_default, (PAPER_APPH,)),
            timing_law=TimingLawSpec(),
        )
    if name == "full":
        paper = dict(p=53, width=1024, train_fraction=0.4, optimizer="adam", lr=1e-4, weight_decay=1e-5,
                     batch_size=128, loss="centred_mse")
        exact_full = ExactSpec(TrainSpec("grokking", {**paper, "steps": 20000, "seeds": [0, 1, 2]}), n_checkpoints=16)
        return CheckProfile(
            name="full",
            closed_form=ClosedFormSpec(
                cases=_CF_DEFAULT + (ClosedFormCase(5, 2, 12), ClosedFormCase(5, 6, 12),
                                     ClosedFormCase(7, 4, 20, centred=True), ClosedFormCase(11, 3, 40),
                                     ClosedFormCase(11, 8, 30, centred=True), ClosedFormCase(13, 10, 60)),
                sgld=SGLDSettings(num_chains=8, num_draws=40000, num_burnin=20000, gamma=1.0, n_beta=1e7,
                                  precondition="hessian-range")),
            trajectory=TrajectorySpec(TrainSpec("grokking", {"seeds": [0, 1, 2, 3, 4]}), n_llc_checkpoints=20,
                                      sgld=_FULL_SGLD),
            lr_sweep=LrSweepSpec(TrainSpec("grokking", {"seeds": [0, 1, 2, 3, 4], "steps": 40000}),
                                 lrs=(5e-5, 1e-4, 2e-4, 4e-4, 1e-3), n_llc_checkpoints=12, sgld=_FULL_SGLD),
            paper_sweeps=PaperSweepSpec(TrainSpec("grokking", {**paper, "steps": 20000, "seeds": [0, 1, 2]}),
                                        ps=(23, 31, 41, 53, 61, 71, 83, 97), width_for_p=1024,
                                        widths=(128, 256, 512, 768, 1024), p_for_width=53, sgld=_FULL_SGLD),
            max_point_params=20000,
            exact=exact_full,
            local_llc=LocalLLCSpec(exact_full, (PAPER_APPH, DEVINTERP, LOCAL)),
            timing_law=TimingLawSpec(),
        )
    raise ValueError(f"profile must be one of {PROFILES}, got {name!r}")

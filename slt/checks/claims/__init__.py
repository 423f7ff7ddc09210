"""The claims of ``slt check``: one module per claim (or group of claims sharing their units of work).

Each module declares ``KEYS`` (the claim names it answers), ``TITLE``, ``units(ctx, prof, want) -> [Unit]`` (its
units of work: train, sample, flatness, exact, closed_form; each computes one cached point and may add
follow-ups once it has run) and ``verdict(ctx, prof, want) -> [ClaimResult]`` (reads those points back from the
cache and decides). ``want(key)`` says whether a claim was asked for. :mod:`slt.checks.runner` submits the units
to the task layer (:mod:`slt.execution`), then runs the verdicts in claim order.

    closed_form      claim 1   closed form vs SGLD at generic teacher points
    trajectory       2, 3, 6   LLC trajectory, timing of its drop, basins (one grokking run)
    lr               4, 5b     learning-rate sweep and GSM
    paper_sweeps     5         LLC vs p and vs K in absolute value
    exact_trajectory 7         exact lambda at polished checkpoints
    local_llc        8         SGLD protocols (paper App. H, devinterp, local) at claim 7's checkpoints
                               (slt.checks.local_llc)
    timing_law       9         grokking-time law on held-out runs (slt.checks.timing_law)

To add a claim: a module with KEYS, TITLE, ``verdict`` and (optionally: without it the verdict computes its
points in the submitting process, serially) ``units``, appended to ``MODULES``.

``Context`` (out, cache, log, device) and the shared helpers live in :mod:`slt.checks.claims.common`; the
names below stay importable from ``slt.checks.claims`` as before.
"""
# the names of the former single module stay importable from here (hence the unused-looking private ones)
from slt.checks.claims import closed_form, exact_trajectory, lr, paper_sweeps, trajectory
from slt.checks.claims.closed_form import claim_closed_form
from slt.checks.claims.common import (GROKKED, MEMORISED, NOT_GENERALISED, Context, Unit,  # noqa: F401
                                      _ckpt_schedule, _column, _drops, _fail, _llc_at_checkpoints, _ok_note,
                                      _pick_steps, _reach_note, _saved_steps, _train, _train_data,
                                      flatness_at_checkpoints, llc_unit, run_unit, soft_target_loss, train_unit)
from slt.checks.claims.lr import claim_gsm, claim_lr, run_lr_sweep
from slt.checks.claims.paper_sweeps import _final_llc, claim_paper_sweeps  # noqa: F401
from slt.checks.claims.trajectory import (_basins_eps_to_zero, _theory_refs, claim_basins,  # noqa: F401
                                          claim_timing, claim_trajectory, run_trajectory)

from slt.checks import local_llc, timing_law  # noqa: E402  (claim modules kept beside the package)

# in report order; each module's KEYS are the claim names accepted by ``slt check --only``
MODULES = (closed_form, trajectory, lr, paper_sweeps, exact_trajectory, local_llc, timing_law)

__all__ = [
    "Context", "GROKKED", "MEMORISED", "MODULES", "NOT_GENERALISED", "Unit", "claim_basins", "claim_closed_form",
    "claim_gsm", "claim_lr", "claim_paper_sweeps", "claim_timing", "claim_trajectory", "flatness_at_checkpoints",
    "llc_unit", "run_lr_sweep", "run_trajectory", "run_unit", "soft_target_loss", "train_unit",
]

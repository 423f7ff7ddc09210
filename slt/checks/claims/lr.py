"""Claims 4 and 5b: the learning-rate sweep (grokking step, LLC-drop step, peak LLC) and the GSM.

Units per learning rate: train -> sample the LLC at a few checkpoints.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from slt.checks import plots
from slt.checks.claims.common import (Context, Unit, _ckpt_schedule, _column, _drops, _llc_at_checkpoints, _ok_note,
                                      _pick_steps, _saved_steps, _train, llc_unit, train_unit)
from slt.checks.gsm import gsm
from slt.checks.profiles import CheckProfile, LrSweepSpec
from slt.checks.report import ClaimResult
from slt.checks.stats import spearman
from slt.checks.timing import lag_stats
from slt.checks.verdict import compare_correlation, compare_sign

KEYS = ("lr", "gsm")
TITLE = "learning-rate sweep and GSM"


def units(ctx: Context, prof: CheckProfile, want) -> list[Unit]:
    spec = prof.lr_sweep
    out = []
    for lr in spec.lrs:
        def sample(cfg: dict, run_dir: Path, summary: dict, lr: float = lr) -> list[Unit]:
            steps = _pick_steps(_saved_steps(run_dir), spec.llc_steps or 2 * spec.n_llc_checkpoints)
            return [llc_unit(ctx, f"lr{lr:g}", cfg, run_dir, steps, spec.sgld, 1)]

        out.append(train_unit(ctx, f"lr{lr:g}", spec.train,
                              {"lr": float(lr), **_ckpt_schedule(spec.train, spec.n_llc_checkpoints)}, sample))
    return out


def verdict(ctx: Context, prof: CheckProfile, want) -> list[ClaimResult]:
    sweep = run_lr_sweep(ctx, prof.lr_sweep)
    return ([claim_lr(ctx, sweep)] if want("lr") else []) + ([claim_gsm(ctx, sweep)] if want("gsm") else [])


def run_lr_sweep(ctx: Context, spec: LrSweepSpec) -> dict:
    rows = []
    for lr in spec.lrs:
        cfg, run_dir, summary = _train(ctx, f"lr{lr:g}", spec.train, lr=float(lr),
                                       **_ckpt_schedule(spec.train, spec.n_llc_checkpoints))
        steps = _pick_steps(_saved_steps(run_dir), spec.llc_steps or 2 * spec.n_llc_checkpoints)
        llc = _llc_at_checkpoints(ctx, f"lr{lr:g}", cfg, run_dir, steps, spec.sgld, seed=1)
        m = summary["metrics"]
        S = len(cfg["seeds"])
        g = [gsm(m["step"], _column(m["train_acc"], s), _column(m["test_acc"], s)) for s in range(S)]
        peaks = [float(np.nanmax(_column(llc["llc"], s))) for s in range(S)]
        rows.append({"lr": float(lr), "grokking_step": summary["grokking_step"], "drop_step": _drops(llc),
                     "gsm": g, "peak_llc": peaks, "llc": llc})
    return {"rows": rows}


def claim_lr(ctx: Context, sweep: dict) -> ClaimResult:
    """Claim 4: larger learning rates grok sooner, and the LLC drops sooner."""
    rows = sweep["rows"]
    lr_rep = lambda key: [r["lr"] for r in rows for _ in r[key]]  # noqa: E731
    flat = lambda key: [v for r in rows for v in r[key]]  # noqa: E731
    verdicts = []
    c = spearman(lr_rep("grokking_step"), flat("grokking_step"), none_as_inf=True)
    verdicts.append(compare_correlation("lr/grokking_step", "larger learning rate -> earlier grokking step "
                                        "(never grokked ranks last)", c.rho, c.pvalue, c.n, -1))
    all_ok = all(ok for r in rows for row in r["llc"]["ok"] for ok in row)
    note = "; ".join(f"lr {r['lr']:g}: {_ok_note(r['llc'])}" for r in rows)
    c = spearman(lr_rep("drop_step"), flat("drop_step"))
    verdicts.append(compare_correlation("lr/llc_drop_step", "larger learning rate -> earlier LLC drop",
                                        c.rho, c.pvalue, c.n, -1, diagnostics_ok=all_ok, diagnostics_note=note))
    c = spearman(lr_rep("peak_llc"), flat("peak_llc"))
    verdicts.append(compare_correlation("lr/peak_llc", "paper: larger learning rate -> lower peak LLC",
                                        c.rho, c.pvalue, c.n, -1, diagnostics_ok=all_ok, diagnostics_note=note))
    lag = lag_stats(flat("grokking_step"), flat("drop_step"))
    verdicts.append(compare_sign("lr/lag_all_runs", "claim 3 pooled over every run of the sweep: the LLC drops "
                                 "before test accuracy jumps (grokking step - LLC-drop step > 0)", lag.mean, lag.se,
                                 diagnostics_ok=all_ok, diagnostics_note=note,
                                 details={"lags": list(lag.lags), "n_runs_used": lag.n, "n_runs": lag.n_seeds}))
    plots.plot_lr(ctx.out / "lr.png", [r["lr"] for r in rows], [r["grokking_step"] for r in rows],
                  [r["drop_step"] for r in rows], [r["gsm"] for r in rows])
    table = [{k: r[k] for k in ("lr", "grokking_step", "drop_step", "gsm", "peak_llc")} for r in rows]
    notes = ("Per learning rate (one value per seed): " + "; ".join(
        f"lr {r['lr']:g}: grok {r['grokking_step']}, LLC drop {[None if d is None else round(d) for d in r['drop_step']]}"
        for r in rows) + ".",)
    return ClaimResult("lr", "4. Learning rate: grokking step and LLC-drop step", tuple(verdicts),
                       data={"rows": table}, figures=("lr.png",), notes=notes)


def claim_gsm(ctx: Context, sweep: dict) -> ClaimResult:
    """Claim 5b: the grokking severity measure against learning rate (paper: larger lr, less delay)."""
    rows = sweep["rows"]
    x = [r["lr"] for r in rows for _ in r["gsm"]]
    y = [v for r in rows for v in r["gsm"]]
    c = spearman(x, y)
    v = compare_correlation("gsm/lr", "paper: larger learning rate -> less severe grokking (lower GSM)",
                            c.rho, c.pvalue, c.n, -1, details={"gsm": {str(r["lr"]): r["gsm"] for r in rows}})
    notes = ("GSM = 1{acc_val(T) >= 0.95}/T * sum_t |acc_train - acc_val| (trapezoid over the logged steps): "
             + "; ".join(f"lr {r['lr']:g}: {[round(g, 3) for g in r['gsm']]}" for r in rows) + ".",)
    return ClaimResult("gsm", "5b. Grokking severity (GSM) vs learning rate", (v,),
                       data={"rows": [{"lr": r["lr"], "gsm": r["gsm"]} for r in rows]}, notes=notes)

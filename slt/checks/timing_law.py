"""``slt check`` claims on the timing of the test-accuracy jump (issue 14), judged on runs the law never saw.

Runs: a 2 x 2 design of (lr, wd) cells off the fitted grid of experiments/timing_law, with seeds the fit never
used, inside the shipped law's domain (:mod:`slt.timing_law`). Each cell is one cached training run (all seeds on
the copy axis, stopped when every seed has test accuracy >= the law's threshold).

Claims (``timing_law``):
  * timing_law/heldout: the law predicts the held-out jump steps within the stated tolerance: per run
    APE = |T_pred - T| / T; "tolerance - APE > 0" is an ordering prediction across runs (compare_sign);
    the MAPE is reported beside it;
  * timing_law/lr_exponent, timing_law/wd_exponent: the local exponents d ln T / d ln lr and d ln T / d ln wd
    measured on the 2 x 2 design (per seed, averaged over the other factor; SE across seeds) lie inside the
    fitted law's 95% bootstrap CI (compare_interval);
  * timing_law/derivation_lr: the exponent of T - T_mem in lr against derivations/grokking_time.py: -1 for
    every optimiser at a fixed gradient-noise level (compare_value);
  * timing_law/derivation_wd: the exponent of T - T_mem in wd: -1 for AdamW (exact mean decay (1 - lr wd)^t),
    in [-1, 0] for Adam with coupled L2 (between the noise-dominated and the sign-descent regime).
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from typing import TYPE_CHECKING

from slt.checks.report import ClaimResult
from slt.checks.stats import mean_se
from slt.checks.verdict import compare_interval, compare_sign, compare_value

if TYPE_CHECKING:  # the claims package imports the profiles, which import this module's spec
    from slt.checks.claims import Context

KEY = "timing_law"
KEYS = (KEY,)
TITLE = "grokking time: the fitted law on held-out (lr, wd) cells and seeds"


@dataclass(frozen=True)
class TimingLawSpec:
    """Held-out runs for the timing-law claims. Defaults: Adam (the paper's optimiser) at 2 x 2 (lr, wd) cells
    off the experiment's grid, 5 new seeds, ~4,000 seed-steps a cell (~30-40 s of one CPU core in all)."""

    optimizer: str = "adam"
    lrs: tuple[float, float] = (1.4e-3, 2.5e-3)
    wds: tuple[float, float] = (8e-5, 1.6e-4)
    seeds: tuple[int, ...] = (20, 21, 22, 23, 24)
    steps: int = 4000  # budget; a run without a jump by then is censored (counts as a miss)
    eval_every: int = 25
    tolerance: float = 0.25  # stated held-out error (the experiment's held-out MAPE is in RESULTS.md)
    threshold: float = 0.95
    extra: dict = field(default_factory=dict)  # TrainConfig overrides (must stay inside the law's domain)


def _config(spec: TimingLawSpec, lr: float, wd: float, law: dict):
    from slt.training import TrainConfig

    entry = law["laws"][spec.optimizer][f"{spec.threshold:g}"]
    fixed = dict(entry["domain"]["fixed"])
    return TrainConfig.from_dict({**fixed, "train_fraction": 0.4, "init_scale": 1.0, "optimizer": spec.optimizer,
                                  "lr": lr, "weight_decay": wd, "seeds": list(spec.seeds), "steps": spec.steps,
                                  "eval_every": spec.eval_every, "n_log": 40, "n_checkpoints_log": 0,
                                  "grok_threshold": spec.threshold, "stop_on_grok": True, **spec.extra})


def _run_cell(cfg) -> dict:
    from slt.timing_law import jump_interval
    from slt.training import train

    t0 = time.perf_counter()
    res = train(cfg)
    m = res.metrics
    out = []
    for c, seed in enumerate(cfg.seeds):
        te = [r[c] for r in m["test_acc"]]
        tr = [r[c] for r in m["train_acc"]]
        out.append({"seed": seed, "jump": list(jump_interval(m["step"], te, cfg.grok_threshold)),
                    "memorisation": list(jump_interval(m["step"], tr, cfg.memorise_threshold))})
    return {"seeds": out, "steps_run": m["step"][-1], "wall_s": time.perf_counter() - t0}


def _cell_name(spec: TimingLawSpec, lr: float, wd: float) -> str:
    return f"timing_law-{spec.optimizer}-lr{lr:g}-wd{wd:g}"


def _cell_point(ctx: Context, spec: TimingLawSpec, lr: float, wd: float) -> dict:
    """One held-out cell's training run (all seeds), cached: what a unit computes and the verdict reads."""
    from slt.timing_law import load_law

    cfg = _config(spec, lr, wd, load_law())
    return ctx.cache.get_or_compute(_cell_name(spec, lr, wd), cfg.to_dict(), lambda: _run_cell(cfg))


def _exponent_per_seed(T: dict, spec: TimingLawSpec, axis: str) -> list[float]:
    """Per seed: d ln T / d ln x between the two levels of x, averaged over the two levels of the other factor."""
    (l0, l1), (w0, w1) = spec.lrs, spec.wds
    vals = []
    for i in range(len(spec.seeds)):
        if axis == "lr":
            pairs, dx = [((l0, w), (l1, w)) for w in (w0, w1)], math.log(l1 / l0)
        else:
            pairs, dx = [((l, w0), (l, w1)) for l in (l0, l1)], math.log(w1 / w0)
        if any(not T[a][i] or not T[b][i] for a, b in pairs):
            continue  # a censored run: no exponent for this seed
        vals.append(float(np.mean([(math.log(T[b][i]) - math.log(T[a][i])) / dx for a, b in pairs])))
    return vals


def claim_timing_law(ctx: Context, spec: TimingLawSpec) -> list[ClaimResult]:
    """Train the held-out 2 x 2 design, predict it with :func:`slt.predict_jump_step`, judge (see module doc)."""
    from slt.timing_law import load_law, predict_jump_step

    t0 = time.perf_counter()
    law = load_law()
    thr = f"{spec.threshold:g}"
    entry = law["laws"][spec.optimizer][thr]
    cells = [(lr, wd) for lr in spec.lrs for wd in spec.wds]
    runs, preds = {}, {}
    for lr, wd in cells:
        cfg = _config(spec, lr, wd, law)
        preds[(lr, wd)] = predict_jump_step(cfg, threshold=spec.threshold)  # raises outside the domain
        ctx.log(f"  timing law: {spec.optimizer} lr {lr:g} wd {wd:g}: {preds[(lr, wd)]}")
        runs[(lr, wd)] = _cell_point(ctx, spec, lr, wd)
    T = {k: [s["jump"][1] for s in r["seeds"]] for k, r in runs.items()}
    D = {k: [(s["jump"][1] - s["memorisation"][1]) if s["jump"][1] and s["memorisation"][1] else None
             for s in r["seeds"]] for k, r in runs.items()}
    # ---- held-out error
    ape, rows = [], []
    for k in cells:
        for s, t in zip(spec.seeds, T[k]):
            # a censored run is a miss: its error is at least (budget - prediction)/budget; count it as 1
            e = abs(preds[k].step - t) / t if t else 1.0
            ape.append(e)
            rows.append({"lr": k[0], "wd": k[1], "seed": s, "measured": t, "predicted": preds[k].step,
                         "low": preds[k].low, "high": preds[k].high, "ape": e})
    margin, se = mean_se([spec.tolerance - a for a in ape])
    mape = float(np.mean(ape))
    v_held = compare_sign(f"{KEY}/heldout", f"held-out jump steps within {spec.tolerance:.0%} of the law "
                          f"(MAPE {mape:.1%} over {len(ape)} runs)", margin, se,
                          details={"mape": mape, "n_runs": len(ape), "tolerance": spec.tolerance,
                                   "n_censored": sum(t is None for k in cells for t in T[k])})
    # ---- exponents: measured locally vs the fitted law's CI and vs the derivation
    verdicts = [v_held]
    names = {"lr": 1, "wd": 2}
    est = {}
    for axis, j in names.items():
        vals = _exponent_per_seed(T, spec, axis)
        m, s = mean_se(vals)
        lo, hi = entry["beta_ci95"][0][j], entry["beta_ci95"][1][j]
        est[axis] = (m, s, lo, hi, entry["beta"][j])
        verdicts.append(compare_interval(f"{KEY}/{axis}_exponent",
                                         f"d ln T / d ln {axis} on held-out cells lies in the fitted law's 95% CI",
                                         m, s, lo, hi, details={"per_seed": vals, "law_beta": entry["beta"][j]}))
    dlr = _exponent_per_seed(D, spec, "lr")
    dwd = _exponent_per_seed(D, spec, "wd")
    m, s = mean_se(dlr)
    verdicts.append(compare_value(f"{KEY}/derivation_lr", "d ln (T - T_mem) / d ln lr = -1 (derivation, fixed noise)",
                                  m, s, -1.0, details={"per_seed": dlr}))
    m, s = mean_se(dwd)
    if spec.optimizer == "adamw":
        verdicts.append(compare_value(f"{KEY}/derivation_wd", "d ln (T - T_mem) / d ln wd = -1 (AdamW: (1 - lr wd)^t)",
                                      m, s, -1.0, details={"per_seed": dwd}))
    else:
        verdicts.append(compare_interval(f"{KEY}/derivation_wd", "d ln (T - T_mem) / d ln wd in [-1, 0] "
                                         "(Adam with coupled L2: noise- to decay-dominated)", m, s, -1.0, 0.0,
                                         details={"per_seed": dwd}))
    figs = _figures(ctx, spec, cells, T, preds, est, (dlr, dwd))
    data = {"spec": asdict(spec), "runs": rows, "mape": mape,
            "exponents": {a: dict(zip(("mean", "se", "law_ci_lo", "law_ci_hi", "law_beta"), v)) for a, v in est.items()},
            "derivation_exponents": {"lr": mean_se(dlr), "wd": mean_se(dwd)},
            "wall_train_s": sum(r["wall_s"] for r in runs.values())}
    notes = (f"law: ln T = {entry['beta'][0]:.2f} {entry['beta'][1]:+.3f} ln lr {entry['beta'][2]:+.3f} ln wd "
             f"(+ init-scale, train-fraction terms), sigma {entry['sigma']:.3f}; held-out MAPE here {mape:.1%}",)
    return [ClaimResult(KEY, "Timing of the test-accuracy jump follows the fitted law (held-out runs)",
                        tuple(verdicts), data=data, figures=tuple(figs), notes=notes,
                        wall_s=time.perf_counter() - t0)]


def _figures(ctx: Context, spec, cells, T, preds, est, dexp) -> list[str]:
    from slt.checks.plots import _save
    import matplotlib.pyplot as plt

    ctx.out.mkdir(parents=True, exist_ok=True)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 4.2))
    allv = []
    for i, k in enumerate(cells):
        meas = [t for t in T[k] if t]
        p = preds[k]
        a1.errorbar([p.step], [np.median(meas)] if meas else [np.nan],
                    xerr=[[p.step - p.low], [p.high - p.step]],
                    yerr=[[np.median(meas) - min(meas)], [max(meas) - np.median(meas)]] if meas else None,
                    fmt="o", capsize=3, label=f"lr {k[0]:g} wd {k[1]:g}")
        allv += [p.low, p.high, *meas]
    lo, hi = min(allv) / 1.2, max(allv) * 1.2
    a1.plot([lo, hi], [lo, hi], "k-", lw=0.8)
    for f in (1 - spec.tolerance, 1 + spec.tolerance):
        a1.plot([lo, hi], [lo * f, hi * f], "k:", lw=0.6)
    a1.set_xscale("log")
    a1.set_yscale("log")
    a1.set_xlabel("predicted jump step (bar: 90% interval)")
    a1.set_ylabel("measured (median, bar: seed range)")
    a1.legend(fontsize=7)
    a1.set_title(f"held-out {spec.optimizer} runs (dotted: +-{spec.tolerance:.0%})", fontsize=9)
    xs = [0, 1]
    for x, axis in zip(xs, ("lr", "wd")):
        m, s, clo, chi, b = est[axis]
        a2.errorbar([x - 0.1], [m], yerr=[3 * s if s == s else 0], fmt="o", color="C0",
                    label="measured T (3 SE)" if x == 0 else None)
        a2.plot([x, x], [clo, chi], "-", color="C1", lw=6, alpha=0.5, label="fitted law 95% CI" if x == 0 else None)
        dm, ds = mean_se(dexp[x])
        a2.errorbar([x + 0.1], [dm], yerr=[3 * ds if ds == ds else 0], fmt="s", color="C2",
                    label="measured T - T_mem (3 SE)" if x == 0 else None)
    a2.plot([-0.3, 0.3], [-1, -1], "k--", lw=1, label="derivation")
    if spec.optimizer == "adamw":
        a2.plot([0.7, 1.3], [-1, -1], "k--", lw=1)
    else:
        a2.fill_between([0.7, 1.3], [-1, -1], [0, 0], color="gray", alpha=0.2)
    a2.set_xticks(xs, ["lr exponent", "wd exponent"])
    a2.axhline(0, color="gray", lw=0.5)
    a2.legend(fontsize=7)
    a2.set_title("exponents: held-out design vs law vs derivation", fontsize=9)
    name = f"{KEY}_{spec.optimizer}.png"
    _save(fig, ctx.out / name)
    return [name]


def units(ctx, prof, want) -> list:
    """Claims-module interface (:mod:`slt.checks.claims`): one training unit per held-out (lr, wd) cell."""
    from slt.checks.claims.common import Unit
    from slt.timing_law import load_law

    spec = getattr(prof, "timing_law", None)
    if spec is None or not want(KEY):
        return []
    law = load_law()
    return [Unit("train", f"timing law lr {lr:g} wd {wd:g}", _cell_name(spec, lr, wd),
                 _config(spec, lr, wd, law).to_dict(), _cell_point, (spec, lr, wd))
            for lr in spec.lrs for wd in spec.wds]


def verdict(ctx, prof, want) -> list[ClaimResult]:
    """Claims-module interface (:mod:`slt.checks.claims`): reads the cells the units trained (or trains them)."""
    spec = getattr(prof, "timing_law", None)
    return [] if spec is None or not want(KEY) else claim_timing_law(ctx, spec)

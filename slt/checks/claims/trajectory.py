"""Claims 2, 3 and 6 on one grokking run: the LLC trajectory, the timing of its drop, the basins.

Units: train the run -> sample the LLC at its checkpoints (one batched SGLD run) and the flatness baselines at
each -> (basins) rerun the memorising and grokked copies at half the step size. The three verdicts share them.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from slt.checks import backend, plots
from slt.checks.claims.common import (GROKKED, MEMORISED, NOT_GENERALISED, Context, Unit, _ckpt_schedule, _column,
                                      _drops, _llc_at_checkpoints, _ok_note, _pick_steps, _reach_note, _saved_steps,
                                      _train, _train_data, flatness_at_checkpoints, flatness_units, llc_unit,
                                      train_unit)
from slt.checks.profiles import CheckProfile, TrajectorySpec
from slt.checks.report import ClaimResult
from slt.checks.stats import mean_se
from slt.checks.timing import MIN_REL_DROP, lag_stats
from slt.checks.verdict import Verdict, compare_interval, compare_sign, compare_value

KEYS = ("trajectory", "timing", "basins")
TITLE = "LLC trajectory, timing and basins on the grokking run"


def units(ctx: Context, prof: CheckProfile, want) -> list[Unit]:
    spec = prof.trajectory

    def sample(cfg: dict, run_dir: Path, summary: dict) -> list[Unit]:
        steps = _pick_steps(_saved_steps(run_dir), spec.llc_steps or 2 * spec.n_llc_checkpoints)
        then = (lambda llc: _basins_units(ctx, cfg, run_dir, spec, llc)) if want("basins") else None
        return [llc_unit(ctx, "trajectory", cfg, run_dir, steps, spec.sgld, 1, then)] + \
            flatness_units(ctx, cfg, run_dir, steps)

    return [train_unit(ctx, "trajectory", spec.train, _ckpt_schedule(spec.train, spec.n_llc_checkpoints), sample)]


def _basins_units(ctx: Context, cfg: dict, run_dir: Path, spec: TrajectorySpec, llc: dict) -> list[Unit]:
    sg = spec.sgld
    if not sg.step_scale or sg.eps is not None:
        return []
    pairs = _basin_pairs(llc)[0]
    if not pairs:
        return []
    traj = {"config": cfg, "run_dir": str(run_dir), "llc": llc, "sgld": sg}
    return [Unit("sample", "sample basins (half step)", "llc-basins", _basins_low_key(traj, pairs), _basins_low,
                 (traj, pairs), device=ctx.device)]


def verdict(ctx: Context, prof: CheckProfile, want) -> list[ClaimResult]:
    traj = run_trajectory(ctx, prof.trajectory)
    got = []
    if want("trajectory"):
        got.append(claim_trajectory(ctx, traj))
    if want("timing"):
        got.append(claim_timing(ctx, traj))
    if want("basins"):
        got.append(claim_basins(ctx, traj, prof.max_point_params))
    return got


def run_trajectory(ctx: Context, spec: TrajectorySpec) -> dict:
    """Train the grokking run and estimate the LLC at its checkpoints (shared by claims 2, 3 and 6)."""
    cfg, run_dir, summary = _train(ctx, "trajectory", spec.train, **_ckpt_schedule(spec.train, spec.n_llc_checkpoints))
    steps = _pick_steps(_saved_steps(run_dir), spec.llc_steps or 2 * spec.n_llc_checkpoints)
    llc = _llc_at_checkpoints(ctx, "trajectory", cfg, run_dir, steps, spec.sgld, seed=1)
    flat = flatness_at_checkpoints(ctx, cfg, run_dir, steps)
    return {"config": cfg, "run_dir": str(run_dir), "summary": summary, "llc": llc, "sgld": spec.sgld, "flatness": flat}


def _theory_refs(cfg: dict, n_train: int) -> dict[str, float]:
    """Reference values drawn on the trajectory figure (each skipped if its theory piece is missing)."""
    p, K, centred = cfg["p"], cfg["width"], cfg["loss"] == "centred_mse"
    refs = {}
    for label, fn in (("ours: generic (1/2)min(pN', (3p-2)K)", lambda: backend.generic_llc_formula(p, K, n_train, cfg["tied"], centred)),
                      ("paper K(3p-1)/2", lambda: backend.paper_llc(p, K)),
                      ("lazy/memorising (p/2)min(K, N')", lambda: backend.lazy_llc(p, K, n_train, centred)),
                      ("paper memorisation lower p(2p-1)/2", lambda: backend.memorisation_bracket(p, K)[0])):
        try:
            refs[label] = fn()
        except (ImportError, AttributeError, ValueError):
            pass
    return refs


def claim_trajectory(ctx: Context, traj: dict) -> ClaimResult:
    """Claim 2: the LLC through grokking; verdict on whether it falls from its plateau by the end."""
    t0 = time.perf_counter()
    cfg, llc, summary = traj["config"], traj["llc"], traj["summary"]
    S = len(cfg["seeds"])
    n_train = int((cfg["train_fraction"] * cfg["p"] ** 2))
    drops = _drops(llc)
    falls, rel_falls = [], []
    for s in range(S):
        y = np.asarray(_column(llc["llc"], s), dtype=float)
        fall = float(np.nanmax(y) - y[-1]) if np.isfinite(y).any() else math.nan
        falls.append(fall)
        rel_falls.append(fall / float(np.nanmax(y)) if np.isfinite(y).any() else math.nan)
    m, se = mean_se(rel_falls)
    if S < 2:  # one seed: the chain SEs of the two points
        i_max = int(np.nanargmax(_column(llc["llc"], 0)))
        se = math.hypot(llc["se"][i_max][0], llc["se"][-1][0]) / float(llc["llc"][i_max][0])
    used_ok = []
    for s in range(S):
        col = np.asarray(_column(llc["llc"], s), dtype=float)
        if np.isfinite(col).any():
            used_ok += [llc["ok"][int(np.nanargmax(col))][s], llc["ok"][-1][s]]
    v = compare_sign("trajectory/llc_falls", f"the LLC falls from its peak by the end of grokking by at least "
                     f"{MIN_REL_DROP:.0%} of the peak (the size the drop-step definition of claim 3 requires; "
                     "relative fall (peak - final)/peak, peak = max over checkpoints, biased up by noise)", m, se,
                     diagnostics_ok=bool(used_ok) and all(used_ok),
                     diagnostics_note="sampler warnings at the peak or final checkpoint",
                     details={"per_seed_fall": falls, "per_seed_relative_fall": rel_falls, "drop_steps": drops},
                     min_effect=MIN_REL_DROP)
    refs = _theory_refs(cfg, n_train)
    plots.plot_trajectory(ctx.out / "trajectory.png", summary["metrics"],
                          {**llc, "grok": summary["grokking_step"], "drop": drops}, refs, flat=traj.get("flatness"),
                          title=f"(a+b) mod {cfg['p']}, width {cfg['width']}, lr {cfg['lr']:g}, wd {cfg['weight_decay']:g}, "
                                f"{S} seeds")
    notes = (f"LLC estimated at {len(llc['step'])} checkpoints x {S} seeds in one batched SGLD run "
             f"({llc.get('wall_s', math.nan):.0f} s); n_beta = {llc['n_beta']:.4g}. "
             f"Sampler health: {_ok_note(llc)}. Before "
             f"memorisation w* is not a minimum, so warnings there are expected. Step size: {llc.get('eps_rule')}.",
             "Reference lines: " + "; ".join(f"{k} = {v:.4g}" for k, v in refs.items()) + ".",
             _reach_note(llc))
    return ClaimResult("trajectory", "2. LLC trajectory through grokking", (v,),
                       data={"llc": llc, "grokking_step": summary["grokking_step"],
                             "memorisation_step": summary["memorisation_step"], "drop_step": drops, "theory": refs},
                       figures=("trajectory.png",), notes=notes, wall_s=time.perf_counter() - t0)


def claim_timing(ctx: Context, traj: dict) -> ClaimResult:
    """Claim 3: LLC-drop step (midpoint crossing, :mod:`slt.checks.timing`) against the grokking step."""
    llc, summary = traj["llc"], traj["summary"]
    drops = _drops(llc)
    grok = summary["grokking_step"]
    lag = lag_stats(grok, drops)
    se = lag.se
    if lag.n == 1:  # one seed: the checkpoint spacing around the drop is the resolution
        se = math.nan
    ok = [llc["ok"][i][s] for s in range(len(drops)) if drops[s] is not None for i in range(len(llc["step"]))]
    v = compare_sign("timing/lag", "the LLC drops before test accuracy jumps (lag = grokking step - LLC-drop step > 0)",
                     lag.mean, se, diagnostics_ok=all(ok), diagnostics_note=_ok_note(llc),
                     details={"lags": list(lag.lags), "grokking_step": grok, "drop_step": drops,
                              "n_seeds_used": lag.n, "n_seeds": lag.n_seeds})
    if lag.n == 0:
        v = Verdict("timing/lag", v.statement, "inconclusive", math.nan, math.nan, math.nan, math.nan, math.nan,
                    v.rule, f"no seed has an LLC drop to time (a fall of at least {MIN_REL_DROP:.0%} of the peak and "
                    "3 SE, claim 2): the prediction presupposes a drop the estimates do not show", v.details)
    alone = v.details.get("if_diagnostics_ignored", v.status)
    if not math.isfinite(se):
        word = "cannot be placed relative to (fewer than 2 seeds with both steps)"
    else:
        word = {"agree": "precedes", "disagree": "follows"}.get(alone, "coincides with (within 3 SE)")
    notes = (f"Per seed: grokking step {grok}, LLC-drop step {[None if d is None else round(d) for d in drops]}; "
             f"lag {lag.mean:.0f} ± {se:.0f} steps over {lag.n} of {lag.n_seeds} seeds: the LLC drop {word} the "
             f"test-accuracy jump. The drop step is only resolved to the checkpoint spacing {llc['step']}.",)
    return ClaimResult("timing", "3. Timing: LLC drop vs grokking step", (v,),
                       data={"grokking_step": grok, "drop_step": drops, "lags": list(lag.lags), "mean": lag.mean,
                             "se": se}, notes=notes)


def claim_basins(ctx: Context, traj: dict, max_point_params: int) -> ClaimResult:
    """Claim 6: LLC of the memorising checkpoint vs the grokked one, and each against closed forms."""
    t0 = time.perf_counter()
    cfg, llc = traj["config"], traj["llc"]
    p, K, centred, tied = cfg["p"], cfg["width"], cfg["loss"] == "centred_mse", cfg["tied"]
    steps = llc["step"]
    pairs, mem_llc, grok_llc = _basin_pairs(llc)
    verdicts, notes = [], []
    if not pairs:
        v = Verdict("basins/order", "memorising LLC > grokked LLC", "inconclusive", math.nan, math.nan, math.nan,
                    math.nan, math.nan, "-", "no seed has both a memorising checkpoint (train acc >= 0.99, test < 0.5)"
                    " and a grokked final checkpoint (test acc >= 0.95)")
        return ClaimResult("basins", "6. Basin comparison: memorising vs grokked solution", (v,), data={"pairs": []},
                           wall_s=time.perf_counter() - t0)
    step_bias = _basins_eps_to_zero(ctx, traj, pairs, mem_llc, grok_llc)
    diffs = [m[0] - g[0] for m, g in zip(mem_llc, grok_llc)]
    d_mean, d_se = mean_se(diffs)
    if len(diffs) == 1:
        d_se = math.hypot(mem_llc[0][1], grok_llc[0][1])
    verdicts.append(compare_sign("basins/order", "SLT: the generalising (grokked) solution has the lower LLC "
                                 "(memorising - grokked > 0)", d_mean, d_se,
                                 diagnostics_ok=all(m[2] for m in mem_llc) and all(g[2] for g in grok_llc),
                                 diagnostics_note="sampler warnings at the memorising or grokked checkpoint",
                                 details={"per_seed_difference": diffs, "pairs": pairs}))
    a, b, y = _train_data(cfg)
    n_train = int(a.numel())
    mm, ms = mean_se([m[0] for m in mem_llc])
    gm, gs = mean_se([g[0] for g in grok_llc])
    if len(mem_llc) == 1:
        ms, gs = mem_llc[0][1], grok_llc[0][1]
    mem_ok, grok_ok = all(m[2] for m in mem_llc), all(g[2] for g in grok_llc)
    try:
        lo, hi = backend.memorisation_bracket(p, K)
        verdicts.append(compare_interval("basins/memorising_in_paper_bracket",
                                         "memorising LLC lies in the paper's bracket p(2p-1)/2 <= lambda <= pK/2",
                                         mm, ms, lo, hi, diagnostics_ok=mem_ok,
                                         diagnostics_note="sampler warnings at the memorising checkpoint"))
    except (ImportError, AttributeError) as err:
        notes.append(f"paper memorisation bracket unavailable: {err}")
    generic = backend.generic_llc_formula(p, K, n_train, tied, centred)
    verdicts.append(compare_value("basins/grokked_vs_generic", "grokked LLC equals our generic value "
                                  "(1/2) min(pN', (3p-2)K)", gm, gs, generic, diagnostics_ok=grok_ok,
                                  diagnostics_note="sampler warnings at the grokked checkpoint"))
    verdicts.append(compare_value("basins/memorising_vs_generic", "memorising LLC equals our generic value "
                                  "(1/2) min(pN', (3p-2)K)", mm, ms, generic, diagnostics_ok=mem_ok,
                                  diagnostics_note="sampler warnings at the memorising checkpoint"))
    # lambda at the very points, from the rank of their Jacobian / Hessian (only for small networks)
    point = {}
    n_params = (2 if tied else 3) * p * K
    if n_params <= max_point_params:
        s0 = pairs[0]["seed_index"]
        for label, (val, se_, ok, i) in (("memorising", mem_llc[0]), ("grokked", grok_llc[0])):
            _, cps = backend.load_checkpoints(Path(traj["run_dir"]), [steps[i]])
            pt = backend.point_llc(cps[0].model, s0, a, b, y, centred)
            point[label] = pt
            bound = pt["lam"] if pt["lam"] is not None else pt["lower"]
            what = "equals (1/2) rank" if pt["lam"] is not None else "is at least the lower bound (1/2) rank"
            if pt["lam"] is not None:
                verdicts.append(compare_value(f"basins/{label}_vs_point_rank", f"{label} LLC {what} at that point",
                                              val, se_, bound, diagnostics_ok=ok, details=pt))
            else:
                verdicts.append(compare_interval(f"basins/{label}_vs_point_bounds", f"{label} LLC lies between "
                                                 "the point's rank bounds (lower = rank/2, upper = orbit bound)",
                                                 val, se_, pt["lower"], pt["upper"], details=pt))
    else:
        notes.append(f"Jacobian/Hessian rank at the trained points skipped: {n_params} parameters > "
                     f"max_point_params = {max_point_params}.")
    if step_bias:
        notes.append("Step-size bias: every basin value above is the eps -> 0 extrapolation from the trajectory's "
                     f"step_scale {traj['sgld'].step_scale:g} run and a run at half that step (three times the draws); the "
                     "step_scale run was " + ", ".join(f"{b:+.1%}" for b in step_bias) + " off the extrapolated "
                     "value (memorising and grokked checkpoints, per seed).")
    reach = _reach_note(llc)
    if reach:
        notes.append(reach)
    lower = "grokked" if gm < mm else "memorising"
    notes.insert(0, f"Memorising checkpoint LLC {mm:.4g} ± {ms:.2g}, grokked {gm:.4g} ± {gs:.2g}: the {lower} "
                    f"solution has the lower estimated LLC (difference {d_mean:.4g} ± {d_se:.2g}, {len(pairs)} seeds).")
    return ClaimResult("basins", "6. Basin comparison: memorising vs grokked solution", tuple(verdicts),
                       data={"pairs": pairs, "memorising": [m[:2] for m in mem_llc], "grokked": [g[:2] for g in grok_llc],
                             "generic": generic, "point": point}, notes=tuple(notes), wall_s=time.perf_counter() - t0)


def _basin_pairs(llc: dict) -> tuple[list[dict], list, list]:
    """Per seed with both: the first memorising checkpoint (train acc >= 0.99, test < 0.5) and the final one if
    grokked (test >= 0.95). Returns (pairs, memorising (llc, se, ok, index), grokked (llc, se, ok, index))."""
    steps = llc["step"]
    S = len(llc["llc"][0])
    mem_llc, grok_llc, pairs = [], [], []
    for s in range(S):
        mem_i = next((i for i in range(len(steps)) if llc["train_acc"][i][s] >= MEMORISED
                      and llc["test_acc"][i][s] < NOT_GENERALISED), None)
        gro_i = len(steps) - 1 if llc["test_acc"][-1][s] >= GROKKED else None
        if mem_i is None or gro_i is None:
            continue
        pairs.append({"seed_index": s, "memorising_step": steps[mem_i], "grokked_step": steps[gro_i]})
        mem_llc.append((llc["llc"][mem_i][s], llc["se"][mem_i][s], llc["ok"][mem_i][s], mem_i))
        grok_llc.append((llc["llc"][gro_i][s], llc["se"][gro_i][s], llc["ok"][gro_i][s], gro_i))
    return pairs, mem_llc, grok_llc


def _basins_low_key(traj: dict, pairs: list[dict]) -> dict:
    """Cache key of the half-step rerun of the basin copies (:func:`_basins_eps_to_zero`)."""
    sg, cfg = traj["sgld"], traj["config"]
    half = replace(sg, step_scale=sg.step_scale / 2, num_burnin=3 * sg.num_burnin, num_draws=3 * sg.num_draws)
    copies = [(pr["seed_index"], pr["memorising_step"]) for pr in pairs] + \
             [(pr["seed_index"], pr["grokked_step"]) for pr in pairs]
    return {"run": cfg, "copies": copies, "sgld": asdict(half), "seed": 2}


def _basins_low(ctx: Context, traj: dict, pairs: list[dict]) -> dict:
    """The memorising and grokked copies of every pair rerun at half the step scale, three times the draws."""
    sg, cfg = traj["sgld"], traj["config"]
    half = replace(sg, step_scale=sg.step_scale / 2, num_burnin=3 * sg.num_burnin, num_draws=3 * sg.num_draws)
    copies = [(pr["seed_index"], pr["memorising_step"]) for pr in pairs] + \
             [(pr["seed_index"], pr["grokked_step"]) for pr in pairs]
    key = _basins_low_key(traj, pairs)

    def compute() -> dict:
        from slt.losses import get_loss

        t0 = time.perf_counter()
        wanted = sorted({st for _, st in copies})
        _, cps = backend.load_checkpoints(Path(traj["run_dir"]), wanted, device=cfg["device"])  # each step once
        by_step = dict(zip(wanted, cps))
        nets = [by_step[st].model.select(s) for s, st in copies]
        data = cps[0].data
        net = backend.stack_copies(nets)
        a, b, y = (t.to(cfg["device"]) for t in data.train())
        loss = get_loss(cfg["loss"])
        grokked = backend.stack_copies(nets[len(pairs):])  # the stiffest: their step size is safe for all
        eps = backend.calibrate_eps(grokked, loss, (a, b, y), half, seed=2)
        res = backend.llc_per_copy(net, loss, (a, b, y), replace(half, eps=eps), seed=2)
        return {"llc": [r.llc for r in res], "se": [r.se for r in res], "ok": [r.ok for r in res],
                "eps": [r.eps for r in res], "rhat": [r.rhat for r in res], "wall_s": time.perf_counter() - t0}

    return ctx.cache.get_or_compute("llc-basins", key, compute)


def _basins_eps_to_zero(ctx: Context, traj: dict, pairs: list[dict], mem_llc: list, grok_llc: list) -> list[float]:
    """Replace the basin values (in place) by their eps -> 0 extrapolation and return the step-size bias.

    SGLD's stationary law is biased at first order in eps; the trajectory runs at a large step_scale so
    chains mix, and the basin comparison is about differences of ~1%, so each seed's memorising and grokked
    networks (only those copies, in one batched run) are rerun at half the step scale with three times the
    draws (the flattest directions relax twice as slowly) and extrapolated linearly to eps = 0:
    l0 = (e1 l2 - e2 l1) / (e1 - e2), SE = sqrt((e1 s2)^2 + (e2 s1)^2) / |e1 - e2| (chains independent).
    Returns the relative bias (l1 - l0) / l0 of each value at the trajectory's step size; [] when the
    trajectory used an explicit eps or the default step scale (nothing to extrapolate from)."""
    sg = traj.get("sgld")
    if sg is None or not sg.step_scale or sg.eps is not None:
        return []
    llc = traj["llc"]
    low = _basins_low(ctx, traj, pairs)
    bias = []
    for k, pr in enumerate(pairs):
        s = pr["seed_index"]
        for j, store in ((k, mem_llc), (len(pairs) + k, grok_llc)):
            l1, s1, ok1, i = store[k]
            e1, e2 = llc["eps"][i][s], low["eps"][j]
            l2, s2 = low["llc"][j], low["se"][j]
            l0 = (e1 * l2 - e2 * l1) / (e1 - e2)
            se0 = math.hypot(e1 * s2, e2 * s1) / abs(e1 - e2)
            store[k] = (l0, se0, bool(ok1 and low["ok"][j]), i)
            bias.append((l1 - l0) / l0 if l0 else math.nan)
    return bias

"""Claims on EXACT learning coefficients at trained checkpoints (issue 11), beside the SGLD ones.

Protocol "exact/polished": every saved checkpoint of every seed is moved by :func:`slt.theory.polish.polish`
(float64 Levenberg-Marquardt on the data loss) to the nearest critical point, and
:func:`slt.theory.exact_scale.exact_llc` computes lambda there (rank of the structured Jacobian, exact when the
rank meets a bound or, with ``n_probe`` Morse-Bott probes, when the kernel is tangent to the minimum set; else an
interval). No sampler, no (gamma, n_beta): the only noise is across seeds.

Claims (``exact_trajectory``):
  * exact/falls: lambda falls from its peak by the end of training by at least MIN_REL_DROP of the peak
    (mean relative fall over seeds, compare_sign with the material-effect rule of claim 2);
  * exact/fall_vs_jump: the fall precedes the test-accuracy jump (lag = grokking step - fall step, the
    midpoint crossing of :func:`slt.checks.timing.llc_drop_step`, > 0 across seeds);
  * exact/basin_order: lambda(memorising checkpoint) > lambda(grokked checkpoint) (the SLT reading);
  * exact/grokked_vs_generic: the grokked nets' lambda equals the generic closed form (ours).

Units: train the run -> one exact unit per selected checkpoint (every seed), the flatness baselines there, and
(``spec.basins``) the exact lambda of the constructed basins on the same training set.
"""
from __future__ import annotations

import math
import time

import numpy as np

from slt.checks import backend, plots
from slt.checks.claims.common import (Unit, _ckpt_schedule, _pick_steps, _saved_steps, _train, flatness_at_checkpoints,
                                      flatness_units, train_unit)
from slt.checks.report import ClaimResult
from slt.checks.stats import mean_se
from slt.checks.timing import MIN_REL_DROP, lag_stats, llc_drop_step
from slt.checks.verdict import AGREE, DISAGREE, INCONCLUSIVE, Verdict, compare_sign

KEYS = ("exact_trajectory",)
TITLE = "exact lambda at polished checkpoints"

PROTOCOL = "exact/polished (float64 LM polish of the data loss, then the structured Jacobian / Hessian rank)"
_KEY_VERSION = 4  # bump when the exact computation changes, so cached points are recomputed
MEMORISED, NOT_GENERALISED, GROKKED = 0.99, 0.5, 0.95
EXACT_MIN_FALL = 1e-9  # relative fall that counts for timing: exact values differ by whole half-ranks


def exact_at_checkpoint(model, data, copy: int, centred: bool, device: str = "cpu", n_probe: int = 1,
                        newton_iter: int = 0) -> dict:
    """Polish copy ``copy`` of a checkpoint's net on its training data and compute the exact lambda there.
    ``newton_iter`` > 0 lets the polish take Newton steps on the gradient for points that do not interpolate
    (experiments/exact_trajectory/points.py --newton-iter); the claim uses interpolants only (0).

    Returns plain numbers: the polish report, lambda (float, or None with bounds), rank, route, gaps, timings."""
    from slt.theory.exact_scale import exact_llc
    from slt.theory.jacobian import point_from_net
    from slt.theory.polish import NotCriticalError, polish

    a, b, y = (t.cpu().numpy() for t in data.train())
    U, V, A = point_from_net(model, copy)
    # interpolants only (Jacobian route): a checkpoint that 20 Gauss-Newton/LM steps do not bring to R = 0 has no
    # interpolant nearby (measured: the final, weight-decayed checkpoints of the default run) and gets no value
    pol = polish(U, V, A, a, b, y, centred=centred, device=device, max_iter=20, newton_iter=newton_iter)
    out = {"polish": {"kind": pol.kind, "critical": pol.critical, "grad_before": pol.grad_norm_before,
                      "grad_after": pol.grad_norm_after, "loss_before": pol.loss_before, "loss_after": pol.loss_after,
                      "rel_distance": pol.rel_distance, "iterations": pol.iterations, "seconds": pol.seconds,
                      "message": pol.message}}
    if not pol.critical:
        out.update(lam=None, lower=None, upper=None, rank=None, note=pol.message)
        return out
    try:
        ex = exact_llc(pol.U, pol.V, pol.A, a, b, y, centred=centred, device=device, n_probe=n_probe)
    except (NotCriticalError, MemoryError) as err:
        out.update(lam=None, lower=None, upper=None, rank=None, note=f"{type(err).__name__}: {err}")
        return out
    rec = ex.to_dict()  # every field of the result (rank, route, gaps, Gram, timings, ...), lambda as floats here
    rec.update(lam=None if ex.lam is None else float(ex.lam), lower=float(ex.lower), upper=float(ex.upper), note="",
               probes=[dict(pr) for pr in ex.probes])
    out.update(rec)
    return out


def basin_references(p: int, width: int, a, b, y, centred: bool, device: str = "cpu") -> dict:
    """Exact lambda of the constructed basins on the same training set, at the same width: the Fourier
    solution padded with dead units (slt.theory.basins; exact on every pair) and the memorising construction
    (random first layer, least-squares readout) polished to the nearest interpolant. None where it does not apply."""
    from slt.theory.basins import fourier_solution, fourier_width, memorising_solution, pad_units
    from slt.theory.exact_scale import exact_llc
    from slt.theory.polish import polish

    out: dict = {}
    if p % 2 == 1 and centred and width >= fourier_width(p, centred):
        U, V, A = fourier_solution(p, centred)
        U, V, A = pad_units(U, V, A, width - U.shape[1], "dead")
        r = exact_llc(U, V, A, a, b, y, centred=centred, device=device, n_probe=1)
        out["fourier"] = {"lam": None if r.lam is None else float(r.lam), "lower": float(r.lower),
                          "upper": float(r.upper), "rank": r.rank, "live_units": fourier_width(p, centred)}
    U, V, A = memorising_solution(p, width, a, b, y, centred=centred, seed=0)
    pol = polish(U, V, A, a, b, y, centred=centred, device=device)
    if pol.critical and pol.kind == "interpolating":
        r = exact_llc(pol.U, pol.V, pol.A, a, b, y, centred=centred, device=device, n_probe=1)
        out["memorising_construction"] = {"lam": None if r.lam is None else float(r.lam), "lower": float(r.lower),
                                          "upper": float(r.upper), "rank": r.rank, "polish_moved": pol.rel_distance}
    return out


def _exact_steps(run_dir, spec, summary: dict) -> tuple[list[int], list[int]]:
    """(steps that get an exact value, steps skipped before the first memorisation) of a trained run."""
    steps = _pick_steps(_saved_steps(run_dir), spec.n_checkpoints)
    steps = [st for st in steps if st == steps[-1] or steps[-1] - st > 0.01 * steps[-1]]  # no near-duplicate end
    # before memorisation a checkpoint has no interpolant nearby (polishing moves it ~2x its norm, measured): the
    # value would describe a far-away point, so the exact trajectory starts at the first memorised checkpoint
    first_mem = min((m for m in summary["memorisation_step"] if m is not None), default=None)
    skipped = [st for st in steps if first_mem is None or st < first_mem]
    return [st for st in steps if st not in skipped], skipped


def _exact_key(cfg: dict, step: int) -> dict:
    return {"run": cfg, "step": step, "protocol": PROTOCOL, "version": _KEY_VERSION}


def _exact_point(ctx, cfg: dict, run_dir, step: int, device: str, n_probe: int) -> dict:
    """Every seed of checkpoint ``step`` polished and its exact lambda computed: one cached point."""
    def compute() -> dict:
        _, (cp,) = backend.load_checkpoints(run_dir, [step], device="cpu")
        tr, te = backend.evaluate_accuracy(cp.model, cp.data, cfg["loss"])
        per = [exact_at_checkpoint(cp.model, cp.data, s, cfg["loss"] == "centred_mse", device=device, n_probe=n_probe)
               for s in range(len(cfg["seeds"]))]
        return {"step": step, "train_acc": tr, "test_acc": te, "seeds": per}

    return ctx.cache.get_or_compute("exact", _exact_key(cfg, step), compute)


def _basins_key(cfg: dict) -> dict:
    return {"run": cfg, "version": _KEY_VERSION, "n_probe": 1}


def _basins_point(ctx, cfg: dict, run_dir, last_step: int, device: str) -> dict:
    """Exact lambda of the constructed basins on the run's training set (:func:`basin_references`)."""
    def basins() -> dict:
        _, (cp,) = backend.load_checkpoints(run_dir, [last_step], device="cpu")
        a, b, y = (t.cpu().numpy() for t in cp.data.train())
        return basin_references(cfg["p"], cfg["width"], a, b, y, cfg["loss"] == "centred_mse", device=device)

    return ctx.cache.get_or_compute("exact-basins", _basins_key(cfg), basins)


def units(ctx, prof, want) -> list:
    """Train the run -> one exact unit per selected checkpoint, the flatness baselines there, the basins."""
    spec = prof.exact
    if spec is None:
        return []

    def after_train(cfg: dict, run_dir, summary: dict) -> list[Unit]:
        steps, _ = _exact_steps(run_dir, spec, summary)
        out = [Unit("exact", f"exact step {st}", "exact", _exact_key(cfg, st), _exact_point,
                    (cfg, str(run_dir), st, spec.device, spec.n_probe), device=spec.device) for st in steps]
        out += flatness_units(ctx, cfg, run_dir, steps)
        if spec.basins and steps:
            out.append(Unit("exact", "exact basins", "exact-basins", _basins_key(cfg), _basins_point,
                            (cfg, str(run_dir), steps[-1], spec.device), device=spec.device))
        return out

    return [train_unit(ctx, "exact", spec.train, _ckpt_schedule(spec.train, spec.n_checkpoints), after_train)]


def verdict(ctx, prof, want) -> list[ClaimResult]:
    if prof.exact is None:
        return []
    return [claim_exact_trajectory(ctx, run_exact_trajectory(ctx, prof.exact))]


def run_exact_trajectory(ctx, spec) -> dict:
    """Train the spec's run (checkpoints on a log + linear schedule) and compute the exact lambda at each
    selected checkpoint of every seed; each (run, step) is one cached point."""
    cfg, run_dir, summary = _train(ctx, "exact", spec.train, **_ckpt_schedule(spec.train, spec.n_checkpoints))
    steps, skipped = _exact_steps(run_dir, spec, summary)
    rows = []
    t0 = time.perf_counter()
    for step in steps:
        row = _exact_point(ctx, cfg, run_dir, step, spec.device, spec.n_probe)
        rows.append(row)
        lam = [r["lam"] for r in row["seeds"]]
        ctx.log(f"  step {step}: exact lambda {lam}, test acc {[round(x, 3) for x in row['test_acc']]}")
    flat = flatness_at_checkpoints(ctx, cfg, run_dir, steps)
    refs = _basins_point(ctx, cfg, run_dir, steps[-1], spec.device) if spec.basins else {}
    return {"config": cfg, "run_dir": str(run_dir), "summary": summary, "rows": rows, "basins": refs, "flatness": flat,
            "skipped_before_memorisation": skipped,
            "wall_s": time.perf_counter() - t0, "n_train": int(cfg["train_fraction"] * cfg["p"] ** 2)}


def _series(rows: list[dict], s: int, key: str = "value") -> np.ndarray:
    """Per checkpoint: key "value" = rank/2, the lower bound, which IS lambda where the point is Morse-Bott
    (``lam`` not None); "lam", "lower", "upper" as stored. NaN where no critical point was reached."""
    if key == "value":
        key = "lower"
    return np.array([np.nan if r["seeds"][s].get(key) is None else r["seeds"][s][key] for r in rows], dtype=float)


def _flat_series(traj: dict, s: int) -> dict | None:
    flat = traj.get("flatness")
    if not flat:
        return None
    return {"trace": [f["trace"][s] for f in flat], "sam": [f["sam"][s] for f in flat], "rho": flat[0]["rho"]}


def _all_exact(rows: list[dict], idx: list[tuple[int, int]]) -> bool:
    return all(rows[i]["seeds"][s].get("lam") is not None for i, s in idx)


def _exact_verdict(claim: str, statement: str, values: list[float], theory: float, rule: str) -> Verdict:
    """Exact vs exact: agree iff every seed's value equals the theory value (no noise to allow for)."""
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals or not math.isfinite(theory):
        return Verdict(claim, statement, INCONCLUSIVE, math.nan, math.nan, theory, math.nan, math.nan, rule,
                       "no exact value at the checkpoints compared", {"values": values})
    m, se = mean_se(vals) if len(vals) > 1 else (vals[0], math.nan)
    rel = (m - theory) / abs(theory) if theory else math.nan
    same = all(v == theory for v in vals)
    reason = (f"all {len(vals)} exact values equal {theory:g}" if same else
              f"exact values {sorted(set(vals))} differ from {theory:g} (mean relative error {rel:+.1%})")
    return Verdict(claim, statement, AGREE if same else DISAGREE, m, se, theory, math.nan, rel, rule, reason,
                   {"values": values, "exact": True})


def _gate(v: Verdict, exact_ok: bool) -> Verdict:
    """A verdict resting on a lower bound (a point where lambda is not determined exactly) is inconclusive; what
    the numbers alone say is kept in the details, as for the sampler-diagnostics gate of the SGLD claims."""
    if exact_ok or v.status == INCONCLUSIVE:
        return v
    det = {**v.details, "if_diagnostics_ignored": v.status}
    return Verdict(v.claim, v.statement, INCONCLUSIVE, v.estimate, v.se, v.theory, v.z, v.rel_error, v.rule,
                   "rests on points where only bounds are known (rank/2 <= lambda <= upper)", det)


def claim_exact_trajectory(ctx, traj: dict) -> ClaimResult:
    """Claims on the exact lambda along the trajectory and at the basin checkpoints (module docstring)."""
    t0 = time.perf_counter()
    cfg, rows, summary = traj["config"], traj["rows"], traj["summary"]
    S = len(cfg["seeds"])
    steps = [r["step"] for r in rows]
    grok = summary["grokking_step"]
    if not rows:
        v = Verdict("exact/falls", "the exact lambda falls from its peak by the end of training", INCONCLUSIVE,
                    math.nan, math.nan, math.nan, math.nan, math.nan, "needs memorised checkpoints",
                    "no checkpoint at or after memorisation (no seed memorised?)", {})
        return ClaimResult("exact_trajectory", "7. Exact lambda at polished checkpoints (trajectory and basins)",
                           (v,), data={"rows": [], "grokking_step": grok}, notes=(f"Protocol {PROTOCOL}.",),
                           wall_s=time.perf_counter() - t0)
    p, K, centred = cfg["p"], cfg["width"], cfg["loss"] == "centred_mse"
    n_train = traj["n_train"]
    verdicts = []
    basin_refs: dict = {}
    n_rows = len(rows)
    # 1. fall from the peak (values: rank/2, equal to lambda where exact; a verdict resting on a bound is gated)
    rel_falls, drops, used = [], [], []
    for s in range(S):
        y = _series(rows, s)
        ok = np.isfinite(y)
        if ok.sum() < 2:
            rel_falls.append(math.nan)
            drops.append(None)
            continue
        i_peak = int(np.nanargmax(y))
        i_last = int(np.flatnonzero(ok)[-1])
        used += [(i_peak, s), (i_last, s)]
        rel_falls.append(float((y[i_peak] - y[i_last]) / y[i_peak]))
        # exact values carry no noise: any fall is real, so the fall is timed however small (midpoint crossing)
        d = llc_drop_step(np.asarray(steps, float)[ok], y[ok], min_rel_drop=EXACT_MIN_FALL)
        drops.append(None if d is None else d.step)
    finite = [v for v in rel_falls if math.isfinite(v)]
    st = (f"the exact lambda falls from its peak by the end of training by at least {MIN_REL_DROP:.0%} of the peak "
          f"(protocol {PROTOCOL})")
    det = {"per_seed_relative_fall": rel_falls, "fall_steps": drops}
    if len(finite) > 1 and np.std(finite) == 0:  # exact values can agree to the last digit: SE 0
        m = finite[0]
        v = Verdict("exact/falls", st, AGREE if m > MIN_REL_DROP else DISAGREE, m, 0.0, math.nan, math.nan, math.nan,
                    f"identical exact values: agree iff the relative fall exceeds {MIN_REL_DROP:g}",
                    f"every seed's relative fall is {m:.3g}", {**det, "exact": True})
    else:
        m, se = mean_se(finite) if len(finite) > 1 else (math.nan, math.nan)
        v = compare_sign("exact/falls", st, m, se, min_effect=MIN_REL_DROP, details=det)
    verdicts.append(_gate(v, _all_exact(rows, used)))
    # 2. timing of the fall against the jump
    lag = lag_stats(grok, drops)
    st2 = "the exact lambda falls before test accuracy jumps (lag = grokking step - fall step > 0)"
    det2 = {"grokking_step": grok, "fall_step": drops, "lags": list(lag.lags)}
    if lag.n == 0:
        v2 = Verdict("exact/fall_vs_jump", st2, INCONCLUSIVE, math.nan, math.nan, math.nan, math.nan, math.nan,
                     "agree if lag > 3 SE across seeds", "no seed's exact lambda falls at all: no fall to time", det2)
    else:
        v2 = compare_sign("exact/fall_vs_jump", st2, lag.mean, lag.se if lag.n > 1 else math.nan, details=det2)
    verdicts.append(_gate(v2, _all_exact(rows, [(i, s) for i in range(n_rows) for s in range(S)
                                                if rows[i]["seeds"][s].get("lower") is not None])))
    # 3. basin order at the memorising and grokked checkpoints
    mem, grk, diffs, pairs = [], [], [], []
    for s in range(S):
        tr = [r["train_acc"][s] for r in rows]
        te = [r["test_acc"][s] for r in rows]
        lam = _series(rows, s)
        i_mem = next((i for i in range(n_rows) if tr[i] >= MEMORISED and te[i] < NOT_GENERALISED
                      and math.isfinite(lam[i])), None)
        i_grk = next((i for i in range(n_rows - 1, -1, -1) if te[i] >= GROKKED and math.isfinite(lam[i])), None)
        mem.append(None if i_mem is None else float(lam[i_mem]))
        grk.append(None if i_grk is None else float(lam[i_grk]))
        if i_mem is not None and i_grk is not None:
            diffs.append(float(lam[i_mem] - lam[i_grk]))
            pairs += [(i_mem, s), (i_grk, s)]
    st3 = "lambda(memorising checkpoint) > lambda(grokked checkpoint): the generalising basin has the lower LLC"
    det3 = {"memorising": mem, "grokked": grk, "differences": diffs}
    if len(diffs) >= 2 and np.std(diffs) == 0:
        d0 = diffs[0]
        v3 = Verdict("exact/basin_order", st3, AGREE if d0 > 0 else DISAGREE, d0, 0.0, math.nan, math.nan, math.nan,
                     "identical exact differences: agree iff > 0", f"the difference is exactly {d0:g} in all "
                     f"{len(diffs)} seeds" + (": no basin difference" if d0 == 0 else ""), {**det3, "exact": True})
    else:
        m3, se3 = mean_se(diffs) if len(diffs) > 1 else (math.nan, math.nan)
        v3 = compare_sign("exact/basin_order", st3, m3, se3, details=det3)
    verdicts.append(_gate(v3, bool(pairs) and _all_exact(rows, pairs)))
    # 4. the memorising and grokked nets against the closed forms
    try:
        generic = backend.generic_llc_formula(p, K, n_train, cfg["tied"], centred)
    except (ValueError, ImportError):
        generic = math.nan
    n1 = n_train - int(centred)
    onehot_cap = ((p - 1) * n1 + min(K, n1)) / 2 if centred else p * n1 / 2
    for name, vals in (("grokked", grk), ("memorising", mem)):
        verdicts.append(_exact_verdict(f"exact/{name}_vs_generic", f"the {name} nets' exact lambda equals the generic "
                                       "value (1/2)min(pN', (3p-2)K, ...) of a generic interpolating point", vals,
                                       generic, "exact values: agree iff equal in every seed"))
    fourier = traj.get("basins", {}).get("fourier")
    if fourier is not None and fourier["lam"] is not None:
        verdicts.append(_exact_verdict("exact/grokked_vs_fourier", "the grokked nets' exact lambda equals that of the "
                                       "constructed Fourier solution padded to the same width (the generalising basin)",
                                       grk, fourier["lam"], "exact values: agree iff equal in every seed"))
    verdicts.append(_exact_verdict("exact/grokked_vs_onehot_cap", "the grokked nets' exact lambda equals the data cap "
                                   "of an interpolant of centred one-hot labels, ((p-1)N' + min(K, N'))/2 "
                                   "(A 1 = 0 forced; slt.theory.exact_scale)", grk, onehot_cap,
                                   "exact values: agree iff equal in every seed"))
    basin = traj.get("basins", {})
    for key, label in (("fourier", "Fourier solution (padded)"), ("memorising_construction", "memorising construction")):
        if key in basin:
            bv = basin[key]
            refs_b = bv["lam"] if bv["lam"] is not None else bv["lower"]
            basin_refs[label] = refs_b
    refs = {**basin_refs, "ours: generic": generic, "one-hot centred cap": onehot_cap, "paper K(3p-1)/2": backend.paper_llc(p, K),
            "lazy (p/2)min(K, N')": backend.lazy_llc(p, K, n_train, centred)}
    figs = []
    curves = summary["metrics"]
    for s in range(S):
        name = f"exact_trajectory_seed{s}.png"
        plots.plot_exact_trajectory(ctx.out / name, curves, steps, _series(rows, s, "lam").tolist(),
                                    _series(rows, s, "lower").tolist(), _series(rows, s, "upper").tolist(), s,
                                    grok[s], refs, flat=_flat_series(traj, s), title=f"(a+b) mod {p}, width {K}, lr {cfg['lr']:g}, "
                                    f"wd {cfg['weight_decay']:g}, seed {cfg['seeds'][s]}: exact lambda at polished checkpoints")
        figs.append(name)
    pol = [x["polish"] for r in rows for x in r["seeds"]]
    moved = [x["rel_distance"] for x in pol]
    crit = sum(x["critical"] for x in pol)
    secs = [x.get("seconds", math.nan) for r in rows for x in r["seeds"]]
    notes = (f"Protocol {PROTOCOL}. {len(steps)} checkpoints x {S} seeds; {crit} of {len(pol)} polished to a critical "
             f"point (kinds: {sorted({x['kind'] for x in pol})}); polishing moved the weights by "
             f"{min(moved):.2e}-{max(moved):.2e} of their norm. Checkpoints before the first memorisation step "
             f"(skipped: {traj.get('skipped_before_memorisation', [])}) have no interpolant nearby. Exact-lambda time per point "
             f"{np.nanmin(secs):.1f}-{np.nanmax(secs):.1f} s; all points {traj['wall_s']:.0f} s (cached after).",
             "Per step (seed 0): " + "; ".join(
                 f"{r['step']}: {r['seeds'][0]['lam'] if r['seeds'][0]['lam'] is not None else '[%s, %s]' % (r['seeds'][0]['lower'], r['seeds'][0]['upper'])}"
                 f" (test {r['test_acc'][0]:.2f})" for r in rows),
             "References: " + "; ".join(f"{k} = {v:.6g}" for k, v in refs.items()) + ".")
    return ClaimResult("exact_trajectory", "7. Exact lambda at polished checkpoints (trajectory and basins)",
                       tuple(verdicts), data={"rows": rows, "steps": steps, "grokking_step": grok,
                                              "memorisation_step": summary["memorisation_step"], "theory": refs},
                       figures=tuple(figs), notes=notes, wall_s=time.perf_counter() - t0)

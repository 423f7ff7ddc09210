"""Claim 1: SGLD at a generic teacher point against our exact closed form (units: one per case)."""
from __future__ import annotations

import math
import time
from dataclasses import asdict

import numpy as np
import torch

from slt.checks import backend, plots
from slt.checks.claims.common import Context, Unit, soft_target_loss
from slt.checks.profiles import CheckProfile, ClosedFormCase, ClosedFormSpec
from slt.checks.report import ClaimResult
from slt.checks.verdict import compare_value
from slt.models.quadratic import QuadraticNet

KEYS = ("closed_form",)
TITLE = "closed form vs SGLD"


def units(ctx: Context, prof: CheckProfile, want) -> list[Unit]:
    """One unit per case (tiny float64 networks: always on the CPU)."""
    spec = prof.closed_form
    return [Unit("closed_form", f"closed form {c.label}", f"closed_form-{c.label}", case_key(spec, c), _case_point,
                 (spec, i)) for i, c in enumerate(spec.cases)]


def verdict(ctx: Context, prof: CheckProfile, want) -> list[ClaimResult]:
    return [claim_closed_form(ctx, prof.closed_form)]


def claim_closed_form(ctx: Context, spec: ClosedFormSpec) -> ClaimResult:
    """Claim 1: SGLD estimate at a generic (teacher) point against our exact closed form.

    Each case: a random teacher QuadraticNet w* (float64), its own outputs on N training pairs as targets,
    so w* is an interpolating, generic point of the zero set and lambda = rank J / 2 exactly
    (``slt.theory.quadratic``). The loss is the population loss on those pairs (L(w*) = 0), so n_beta is a
    free inverse temperature; the estimate is SGLD's, extrapolated to eps -> 0 over ``spec.eps_factors`` x
    the automatic step size -- the protocol that validated the estimator (tests/test_llc_validation.py)."""
    t0 = time.perf_counter()
    verdicts, rows = [], []
    for i, case in enumerate(spec.cases):
        res = _case_point(ctx, spec, i)
        r = backend.CalibratedLLC.from_dict(res["llc"])
        th, hs = res["theory"], res["hessian"]
        # R-hat cannot see incomplete relaxation from w* (all chains relax alike). The quadratic approximation
        # predicts the resulting bias from the Hessian spectrum; a verdict stands only if it is the same for
        # the estimate and for the estimate corrected by that predicted bias, else the case is undecided.
        deficit = hs.get("transient_deficit", math.nan)
        statement = "SGLD estimate (eps -> 0) equals (1/2) rank J at a generic teacher point"
        corrected = compare_value("", "", r.llc + deficit, r.se, th["lam"]) if math.isfinite(deficit) else None
        raw = compare_value("", "", r.llc, r.se, th["lam"])
        robust = corrected is None or corrected.status == raw.status
        note = "; ".join(x for x in (r.note, "" if robust else (
            f"chains started at w* not relaxed: the quadratic approximation predicts the eps -> 0 estimate "
            f"{deficit:.3g} low (Hessian condition {hs['condition']:.2g}), and with that correction the "
            f"numbers would say {corrected.status}")) if x)
        v = compare_value(f"closed_form/{case.label}", statement, r.llc, r.se, th["lam"],
                          diagnostics_ok=r.ok and robust, diagnostics_note=note,
                          details={"n_params": res["n_params"], "exact_rank_verified": th["exact"],
                                   "n_beta": r.n_beta, "gamma": r.gamma, "hessian_condition": hs["condition"],
                                   "predicted_transient_deficit": deficit,
                                   "if_corrected_for_deficit": None if corrected is None else corrected.status,
                                   "per_eps": list(r.rows), "sampler_warnings": r.note})
        verdicts.append(v)
        over = case.p * (case.n_train - case.centred) < (3 * case.p - 2) * case.width
        rows.append({"case": case.label, **asdict(case), "regime": "over" if over else "under", "lambda": th["lam"],
                     "estimate": r.llc, "se": r.se, "z": v.z, "rel_error": v.rel_error, "status": v.status,
                     "n_params": res["n_params"], "condition": hs["condition"], "predicted_deficit": deficit,
                     "smallest_eps_estimate": min(r.rows, key=lambda x: x["eps"])["llc"]})
        ctx.log(f"  {case.label}: lambda = {th['lam']:g}, estimate {r.llc:.4g} ± {r.se:.2g} (eps -> 0; Hessian "
                f"condition {hs['condition']:.2g}, predicted relaxation deficit {deficit:.2g}; "
                f"{res.get('sgld_s', math.nan):.0f} s) -> {v.status}")
    plots.plot_closed_form(ctx.out / "closed_form.png", [r["lambda"] for r in rows], [r["estimate"] for r in rows],
                           [r["se"] for r in rows], [r["case"] for r in rows])
    rels = [abs(r["rel_error"]) for r in rows if math.isfinite(r["rel_error"])]
    sg = spec.sgld
    notes = (f"Protocol of the estimator's validation (tests/test_llc_validation.py): teachers at "
             f"{spec.teacher_scale:g}x the default init, noiseless targets (population loss on the N pairs, "
             f"L(w*) = 0), n_beta = {sg.n_beta:g}, gamma = {1.0 if sg.gamma is None else sg.gamma:g}, "
             + (f"preconditioned SGLD ({sg.precondition}: M = (n_beta H(w*) + gamma)^-1 on the Hessian's range), "
                if sg.precondition else "")
             + f"{sg.num_chains} chains x ({sg.num_burnin} + {sg.num_draws}) steps at "
             f"{', '.join(f'{f:g}' for f in spec.eps_factors)} x the automatic step size, extrapolated linearly "
             f"to eps -> 0 (SE of the intercept).",
             (f"Median |relative error| {np.median(rels):.1%}, max {max(rels):.1%} over {len(rels)} cases; the "
              f"estimate is below the closed form in {sum(r['estimate'] < r['lambda'] for r in rows)} of {len(rows)} "
              f"cases. Verdicts: " + ", ".join(f"{s} {sum(r['status'] == s for r in rows)}"
                                               for s in ("agree", "disagree", "inconclusive")) + ".")
             if rels else "No finite estimates.",
             "Hessian condition number and the relaxation deficit the quadratic approximation predicts for chains "
             "started at w* (extrapolated to eps -> 0 like the estimate): " + ", ".join(
                 f"{r['case']}: {r['condition']:.2g}, {r['predicted_deficit']:.2g}" for r in rows)
             + ". The flattest directions need ~20 x condition steps at the largest step size; chains that have "
               "not relaxed UNDERESTIMATE lambda and R-hat cannot tell (they all relax alike); a case is "
               "decided only if the estimate and the estimate plus its predicted deficit get the same verdict.")
    return ClaimResult("closed_form", "1. Closed form vs SGLD on quadratic networks", tuple(verdicts),
                       data={"cases": rows}, figures=("closed_form.png",), notes=notes,
                       wall_s=time.perf_counter() - t0)


def _case_point(ctx: Context, spec: ClosedFormSpec, i: int) -> dict:
    """Case i: teacher, exact lambda, SGLD at eps -> 0, Hessian spectrum (one cached point)."""
    return ctx.cache.get_or_compute(f"closed_form-{spec.cases[i].label}", case_key(spec, spec.cases[i]),
                                    lambda: _compute_case(spec, i))


def case_key(spec: ClosedFormSpec, case: ClosedFormCase) -> dict:
    return {"case": asdict(case), "sgld": asdict(spec.sgld), "eps_factors": list(spec.eps_factors),
            "teacher_seed": spec.teacher_seed, "teacher_scale": spec.teacher_scale}


def _compute_case(spec: ClosedFormSpec, i: int) -> dict:
    from slt.sampling import extrapolate_to_zero
    from slt.tasks import make_data

    case = spec.cases[i]
    total = case.p * case.p
    if not 1 <= case.n_train < total:
        raise ValueError(f"n_train must lie in [1, {total - 1}] for p={case.p}, got {case.n_train}")
    data = make_data(case.p, "add", (case.n_train + 0.5) / total, seed=spec.teacher_seed + i)
    a, b, _ = data.train()
    g = torch.Generator().manual_seed(1000 + spec.teacher_seed + i)
    teacher = QuadraticNet(case.p, case.width, 1, case.tied, init_scale=spec.teacher_scale, generator=g,
                           dtype=torch.float64)
    with torch.no_grad():
        target = teacher(a, b)[0]  # (N, p)
    th = backend.generic_llc(case.p, case.width, a.numpy(), b.numpy(), case.tied, case.centred)
    t1 = time.perf_counter()
    r = backend.llc_eps_to_zero(teacher, soft_target_loss(case.centred), (a, b, target), spec.sgld,
                                spec.eps_factors, seed=spec.teacher_seed + i)
    sgld_s = time.perf_counter() - t1
    hs = backend.hessian_spectrum(teacher, a, b, case.centred)
    # the deficit that incomplete relaxation from w* predicts on the quadratic approximation,
    # extrapolated to eps -> 0 exactly as the estimates were
    h, sg = hs.pop("h"), spec.sgld
    nb, gm = r.n_beta, r.gamma
    if sg.precondition:  # whitened frame: every curved direction has precision 1, eps is whitened
        h, nb, gm = [1.0] * len(h), 1.0, 0.0
    pred = [backend.gaussian_transient(h, nb, gm, row["eps"], sg.num_burnin, sg.num_draws)
            for row in r.rows]
    fit = [(row["eps"], p_[0], row["llc_se"]) for row, p_ in zip(r.rows, pred) if row["in_fit"]]
    c0 = extrapolate_to_zero(*zip(*fit))[0] if len(fit) >= 2 else math.nan
    eq0 = extrapolate_to_zero(*zip(*[(row["eps"], p_[1], row["llc_se"]) for row, p_ in zip(r.rows, pred)]))[0]
    hs["transient_deficit"] = eq0 - c0  # > 0: the eps -> 0 estimate is expected this much too low
    return {"theory": th, "llc": r.to_dict(), "n_train": int(a.numel()), "sgld_s": sgld_s,
            "hessian": hs, "n_params": sum(int(t.numel()) for t in teacher.parameters())}

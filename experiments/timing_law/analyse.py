"""Fits, held-out predictions and figures of the timing-law experiment (called by run.py; reads cells.json).

Writes: results.json (every number), tables.md (the tables of RESULTS.md), figures/*.png and the shipped law
slt/configs/timing_law.json (read by slt.predict_jump_step).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
from scipy.stats import chi2

from slt.runio import atomic_write_json, atomic_write_text
from slt.timing_law import FEATURES, design_row, fit_censored_lognormal

HERE = Path(__file__).resolve().parent
LAW_PATH = HERE.parents[1] / "slt" / "configs" / "timing_law.json"
THRESHOLDS = ("0.5", "0.9", "0.95", "0.99")
MAIN = "0.95"
N_BOOT = 200
FIXED_FIELDS = ("p", "op", "width", "tied", "batch_size", "loss", "betas", "momentum", "data_seed", "dtype")


def observations(cells: dict, names: list[str], thr: str, what: str = "jump") -> list[dict]:
    """One row per (cell, seed): the config's features and the jump interval. Seeds that never memorised
    (train accuracy < 0.99 throughout: the weights collapsed under weight decay) are not jump observations
    of this law; they are listed separately (``collapsed``)."""
    rows = []
    for name in names:
        c = cells[name]
        cfg = c["config"]
        for s in c["seeds"]:
            lo, hi = s["memorisation"] if what == "memorisation" else s["jump"][thr]
            rows.append(dict(cell=name, seed=s["seed"], lr=cfg["lr"], wd=cfg["weight_decay"],
                             init=cfg["init_scale"], frac=cfg["train_fraction"], p=cfg["p"], width=cfg["width"],
                             lo=lo, hi=hi, collapsed=s["memorisation"][1] is None, budget=c["steps_run"],
                             t_mem=s["memorisation"][1], norm_mem=s["norm_mem"], group=c["group"]))
    return rows


def X_of(rows: list[dict], kind: str = "full") -> np.ndarray:
    if kind == "full":
        return np.array([design_row(r["lr"], r["wd"], r["init"], r["frac"]) for r in rows])
    if kind == "sep":
        return np.array([[1.0, math.log(r["lr"]), math.log(r["wd"])] for r in rows])
    if kind == "prod":
        return np.array([[1.0, math.log(r["lr"] * r["wd"])] for r in rows])
    raise ValueError(kind)


def fit(rows, kind="full", fixed=None, names=None):
    rows = [r for r in rows if not r["collapsed"]]
    return fit_censored_lognormal(X_of(rows, kind), [r["lo"] for r in rows], [r["hi"] for r in rows],
                                  names=names, fixed=fixed)


def bootstrap(rows, kind="full", n_boot=N_BOOT, seed=0) -> np.ndarray:
    """Refit on cells resampled with replacement (all seeds of a drawn cell together), stratified by group (grid,
    init-scale sweep, train-fraction sweep) so every resample can identify every exponent: (n_boot, k) betas."""
    rng = np.random.default_rng(seed)
    by_cell: dict[str, list] = {}
    for r in rows:
        if not r["collapsed"]:
            by_cell.setdefault(r["cell"], []).append(r)
    strata: dict[str, list] = {}
    for name, rs in sorted(by_cell.items()):
        strata.setdefault(rs[0]["group"], []).append(name)
    out = []
    for _ in range(n_boot):
        rs = []
        for names in strata.values():
            for i in rng.choice(len(names), size=len(names), replace=True):
                rs += by_cell[names[i]]
        try:
            out.append(fit(rs, kind).beta)
        except Exception:  # a resample without spread in some feature: skip it
            continue
    return np.array(out)


def domain(cells: dict, names: list[str]) -> dict:
    cfgs = [cells[n]["config"] for n in names]
    ranges = {f: [min(c[f] for c in cfgs), max(c[f] for c in cfgs)]
              for f in ("lr", "weight_decay", "init_scale", "train_fraction")}
    fixed = {}
    for f in FIXED_FIELDS:
        vals = {json.dumps(c[f]) for c in cfgs}
        assert len(vals) == 1, (f, vals)
        fixed[f] = cfgs[0][f]
    return {"ranges": ranges, "fixed": fixed}


def mape(pred: list[float], meas: list[float]) -> float:
    return float(np.mean([abs(p - m) / m for p, m in zip(pred, meas)])) if meas else math.nan


def predict_rows(rows, beta, kind):
    if not rows:
        return []
    return list(np.exp(X_of(rows, kind) @ np.asarray(beta)))


def analyse(cells: dict) -> dict:
    t0 = time.time()
    out: dict = {"generated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "optimizers": {}}
    law = {"source": "experiments/timing_law/run.py (fitted on the 'fit' cells; see RESULTS.md)",
           "features": list(FEATURES), "model": "log T = beta . x + sigma eps (log-normal AFT, interval/right-censored)",
           "laws": {}}
    for opt in sorted({c["config"]["optimizer"] for c in cells.values()}):
        fit_names = [n for n, c in cells.items() if c["config"]["optimizer"] == opt and c["role"] == "fit"]
        grid_names = [n for n in fit_names if cells[n]["group"] == "grid"]
        held = {g: [n for n, c in cells.items() if c["config"]["optimizer"] == opt and c["group"] == g]
                for g in ("heldout_seeds", "heldout_cells", "heldout_size")}
        if len(grid_names) < 4:
            continue
        R: dict = {"n_fit_cells": len(fit_names), "n_grid_cells": len(grid_names), "thresholds": {}}
        law["laws"][opt] = {}
        dom = domain(cells, fit_names)
        for thr in THRESHOLDS:
            rows = observations(cells, fit_names, thr)
            f = fit(rows, "full", names=FEATURES)
            boots = bootstrap(rows, "full")
            ci = np.percentile(boots, [2.5, 97.5], axis=0)
            cov = np.cov(boots.T)
            # product test on the same rows: beta_lr = beta_wd (likelihood ratio, 1 dof)
            Xp = np.array([[1.0, math.log(r["lr"] * r["wd"]), math.log(r["init"]), math.log(r["frac"])]
                           for r in rows if not r["collapsed"]])
            kept = [r for r in rows if not r["collapsed"]]
            fp = fit_censored_lognormal(Xp, [r["lo"] for r in kept], [r["hi"] for r in kept])
            lr_stat = 2 * (f.loglik - fp.loglik)
            diff = boots[:, 1] - boots[:, 2]
            entry = {
                "beta": list(f.beta), "sigma": f.sigma, "loglik": f.loglik, "n": f.n, "n_censored": f.n_censored,
                "n_collapsed": sum(r["collapsed"] for r in rows),
                "beta_ci95": [list(ci[0]), list(ci[1])], "beta_cov": cov.tolist(), "n_boot": len(boots),
                "product_test": {"beta_lr_minus_beta_wd": f.beta[1] - f.beta[2],
                                 "ci95": list(np.percentile(diff, [2.5, 97.5])),
                                 "lr_stat": lr_stat, "p_value": float(chi2.sf(max(lr_stat, 0.0), 1)),
                                 "product_exponent": fp.beta[1], "product_sigma": fp.sigma},
                "domain": dom,
            }
            mrows = observations(cells, fit_names, thr, what="memorisation")
            fm = fit(mrows, "full")
            entry["memorisation_beta"] = list(fm.beta)
            entry["memorisation_sigma"] = fm.sigma
            R["thresholds"][thr] = {k: v for k, v in entry.items() if k not in ("beta_cov", "domain")}
            law["laws"][opt][thr] = entry
        # ---- held-out prediction with the shipped (full) law at the main threshold
        e = law["laws"][opt][MAIN]
        H: dict = {}
        for g, names in held.items():
            rows = [r for r in observations(cells, names, MAIN) if not r["collapsed"]]
            if not rows:
                continue
            pred = predict_rows(rows, e["beta"], "full")
            jumped = [(p, r) for p, r in zip(pred, rows) if r["hi"] is not None]
            cens = [(p, r) for p, r in zip(pred, rows) if r["hi"] is None]
            per_cell = {}
            for p, r in zip(pred, rows):
                pc = per_cell.setdefault(r["cell"], {"pred": p, "meas": [], "censored": 0, "budget": r["budget"]})
                if r["hi"] is None:
                    pc["censored"] += 1
                else:
                    pc["meas"].append(r["hi"])
            z = 1.6448536269514722  # 90% interval, as slt.predict_jump_step's default
            inside = [abs(math.log(r["hi"]) - math.log(p)) <= z * e["sigma"] for p, r in jumped]
            H[g] = {"n_runs": len(rows), "n_jumped": len(jumped), "n_censored": len(cens),
                    "mape": mape([p for p, _ in jumped], [r["hi"] for _, r in jumped]),
                    "median_ape": float(np.median([abs(p - r["hi"]) / r["hi"] for p, r in jumped])) if jumped else None,
                    "coverage90": float(np.mean(inside)) if inside else None,
                    "censored_predicted_beyond_budget": sum(p > r["budget"] for p, r in cens),
                    "cells": per_cell}
        R["heldout"] = H
        # ---- candidate laws: fitted on the lr x wd grid only (init 1, frac 0.4), judged on grid-type held-out runs
        rows_fit = observations(cells, grid_names, MAIN)
        rows_ho = [r for r in observations(cells, held["heldout_seeds"] + held["heldout_cells"], MAIN)
                   if not r["collapsed"] and r["hi"] is not None]
        meas = [r["hi"] for r in rows_ho]
        cand = {}
        fs = fit(rows_fit, "sep")
        cand["separate exponents: T = C lr^a wd^b"] = (mape(predict_rows(rows_ho, fs.beta, "sep"), meas),
                                                       {"a": fs.beta[1], "b": fs.beta[2], "sigma": fs.sigma})
        fpf = fit(rows_fit, "prod")
        cand["product, free exponent: T = C (lr wd)^c"] = (mape(predict_rows(rows_ho, fpf.beta, "prod"), meas),
                                                            {"c": fpf.beta[1], "sigma": fpf.sigma})
        fp1 = fit(rows_fit, "prod", fixed={1: -1.0})
        cand["product, exponent -1 (Lyu et al.; Omnigrok): T = C/(lr wd)"] = (
            mape(predict_rows(rows_ho, fp1.beta, "prod"), meas), {"C": math.exp(fp1.beta[0]), "sigma": fp1.sigma})
        # norm contraction: T - T_mem = C ln(V_mem / V*) / (lr wd), V_mem = |theta|^2 at memorisation (measured)
        nc_rows = [r for r in rows_fit if not r["collapsed"] and r["hi"] is not None and r["norm_mem"]]
        cand_nc = _fit_norm_contraction(nc_rows)
        if cand_nc is not None:
            C, Vs = cand_nc
            pred = [r["t_mem"] + C * max(math.log(r["norm_mem"] ** 2 / Vs), 1e-9) / (r["lr"] * r["wd"]) for r in rows_ho]
            cand["norm contraction (calibrated): T = T_mem + C ln(V_mem/V*)/(lr wd)"] = (
                mape(pred, meas), {"C": C, "V*": Vs, "uses measured": "T_mem, V_mem of the held-out run"})
        for k, v in derived_candidates(opt, rows_fit, rows_ho, cells, grid_names).items():
            cand[k] = v
        # curvature: the shipped law plus centred quadratic terms in ln lr, ln wd (same fit set, same held-out runs)
        lr0, wd0 = math.exp(np.mean([math.log(r["lr"]) for r in rows_fit])), math.exp(np.mean([math.log(r["wd"]) for r in rows_fit]))

        def Xq(rows):
            out_ = []
            for r in rows:
                a_, b_ = math.log(r["lr"] / lr0), math.log(r["wd"] / wd0)
                out_.append(design_row(r["lr"], r["wd"], r["init"], r["frac"]) + [a_ * a_, b_ * b_, a_ * b_])
            return np.array(out_)
        rq = [r for r in observations(cells, fit_names, MAIN) if not r["collapsed"]]
        fq = fit_censored_lognormal(Xq(rq), [r["lo"] for r in rq], [r["hi"] for r in rq])
        predq = list(np.exp(Xq(rows_ho) @ np.asarray(fq.beta))) if rows_ho else []
        cand["shipped law + curvature (ln lr)^2, (ln wd)^2, ln lr ln wd (full fit set; not shipped)"] = (
            mape(predq, meas), {"sigma": fq.sigma, "lr2": fq.beta[5], "wd2": fq.beta[6], "lr_wd": fq.beta[7]})
        cand["shipped law (full fit incl. init/frac sweeps)"] = (mape(predict_rows(rows_ho, e["beta"], "full"), meas), {})
        R["candidates"] = {k: {"mape": v[0], "params": v[1]} for k, v in cand.items()}
        R["candidates_n_heldout"] = len(rows_ho)
        # ---- threshold sensitivity: median ratios T_q / T_0.5 over fit runs that reached q
        ratios = {}
        for thr in THRESHOLDS[1:]:
            rr = []
            for n in fit_names:
                for s in cells[n]["seeds"]:
                    a, b = s["jump"]["0.5"][1], s["jump"][thr][1]
                    if a and b:
                        rr.append(b / a)
            ratios[thr] = {"median": float(np.median(rr)) if rr else None,
                           "range": [float(min(rr)), float(max(rr))] if rr else None, "n": len(rr)}
        R["threshold_ratio_to_0.5"] = ratios
        # collapsed and censored cells of the fit set
        R["collapsed_cells"] = sorted({r["cell"] for r in observations(cells, fit_names, MAIN) if r["collapsed"]})
        R["censored_cells"] = sorted({r["cell"] for r in observations(cells, fit_names, MAIN)
                                      if not r["collapsed"] and r["hi"] is None})
        out["optimizers"][opt] = R
    out["wall_fit_s"] = time.time() - t0
    out["train_wall_s_total"] = sum(c["wall_s"] for c in cells.values())
    atomic_write_json(HERE / "results.json", out)
    atomic_write_json(LAW_PATH, law)
    try:
        import figures  # noqa: E402

        figures.make_all(cells, out, law)
    except ImportError:
        pass
    atomic_write_text(HERE / "tables.md", tables(cells, out))
    print(tables(cells, out))
    return out


INF_LOG = math.log(1e9)  # median of a run the law says never jumps: beyond any budget


def derived_candidates(opt, rows_fit, rows_ho, cells, grid_names) -> dict:
    """The derivation's laws (derivations/grokking_time.py) with their few constants fitted on the grid:
    T = T_mem(lr, wd) + decay time, T_mem from a censored power-law fit of the memorisation step.
      AdamW:  decay = ln((R - c lr/wd) / (1 - c lr/wd)) / (-2 ln(1 - lr wd))  (mean decay + noise floor; infinite
              when c lr/wd >= 1); constants R = rho_0^2/rho_q^2 > 1, c = floor / rho_q^2.
      Adam (coupled L2):  decay = [G(theta_0) - G(theta_q)] / (lr wd), G(t) = sqrt(wd^2 t^2 + s^2) - s asinh(s/(wd t)),
              gradient noise s = s0 (lr/1e-3)^gamma (gamma = 0: the derivation at fixed noise); constants theta_0,
              theta_q, s0, gamma."""
    from slt.timing_law import fit_censored_nonlinear

    fr = [r for r in rows_fit if not r["collapsed"]]
    mem = fit_censored_lognormal(X_of(fr, "sep"), [r["t_mem"] - 25 if r["t_mem"] else 0 for r in fr],
                                 [r["t_mem"] for r in fr])
    def tmem(rows):
        return np.exp(X_of(rows, "sep") @ np.asarray(mem.beta))

    def mu_adamw(th, rows):
        lr = np.array([r["lr"] for r in rows]); wd = np.array([r["wd"] for r in rows])
        R, c = 1 + math.exp(th[0]), math.exp(th[1])
        f = c * lr / wd
        with np.errstate(all="ignore"):
            dec = np.log((R - f) / (1 - f)) / (-2 * np.log1p(-lr * wd))
            T = tmem(rows) + dec
            return np.where(f < 1, np.log(T), INF_LOG)

    def mu_adam(th, rows):
        lr = np.array([r["lr"] for r in rows]); wd = np.array([r["wd"] for r in rows])
        t0 = math.exp(th[0]); tq = t0 / (1 + math.exp(th[1])); s = math.exp(th[2]) * (lr / 1e-3) ** th[3]
        G = lambda t: np.sqrt(wd ** 2 * t ** 2 + s ** 2) - s * np.arcsinh(s / (wd * t))  # noqa: E731
        return np.log(tmem(rows) + (G(t0) - G(tq)) / (lr * wd))

    out = {}
    meas = [r["hi"] for r in rows_ho]
    lo, hi = [r["lo"] for r in fr], [r["hi"] for r in fr]
    if opt == "adamw":
        best = None
        for a0 in (1.0, 2.0, 3.0):
            for c0 in (-9.0, -7.0, -5.0):
                th, sg, ll = fit_censored_nonlinear(lambda t: mu_adamw(t, fr), [a0, c0], lo, hi)
                if best is None or ll > best[2]:
                    best = (th, sg, ll)
        th, sg, ll = best
        pred = list(np.exp(mu_adamw(th, rows_ho))) if rows_ho else []
        out["derived AdamW (decay + noise floor): T = T_mem + ln((R - c lr/wd)/(1 - c lr/wd))/(2 lr wd)"] = (
            mape(pred, meas), {"R": 1 + math.exp(th[0]), "c": math.exp(th[1]), "sigma": sg, "loglik": ll})
    if opt == "adam":
        for fix_gamma in (True, False):
            best = None
            for l0 in (0.0, 1.5, 3.0):
                for ls in (-9.0, -7.0, -5.0):
                    th0 = [l0, 0.0, ls] + ([] if fix_gamma else [0.5])
                    f = (lambda t: mu_adam([*t, 0.0], fr)) if fix_gamma else (lambda t: mu_adam(t, fr))
                    th, sg, ll = fit_censored_nonlinear(f, th0, lo, hi)
                    if best is None or ll > best[2]:
                        best = (th, sg, ll)
            th, sg, ll = best
            full = [*th, 0.0] if fix_gamma else list(th)
            pred = list(np.exp(mu_adam(full, rows_ho))) if rows_ho else []
            t0 = math.exp(full[0])
            name = ("derived Adam-coupled ODE, fixed noise s" if fix_gamma else
                    "derived Adam-coupled ODE, noise s ~ lr^gamma")
            out[name] = (mape(pred, meas), {"theta_0": t0, "theta_q": t0 / (1 + math.exp(full[1])),
                                            "s0": math.exp(full[2]), "gamma": full[3], "sigma": sg, "loglik": ll})
    return out


def _fit_norm_contraction(rows):
    from scipy.optimize import minimize

    if len(rows) < 3:
        return None
    lr_wd = np.array([r["lr"] * r["wd"] for r in rows])
    tm = np.array([r["t_mem"] for r in rows], float)
    T = np.array([r["hi"] for r in rows], float)
    lv = np.log(np.array([r["norm_mem"] ** 2 for r in rows]))

    def loss(z):
        C, lvs = math.exp(z[0]), z[1]
        pred = tm + C * np.maximum(lv - lvs, 1e-9) / lr_wd
        return float(np.mean((np.log(pred) - np.log(T)) ** 2))

    best = None
    for lvs0 in np.linspace(lv.min() - 3, lv.min() - 0.01, 12):
        r = minimize(loss, [math.log(1e-3), lvs0], method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9})
        if best is None or r.fun < best.fun:
            best = r
    return math.exp(best.x[0]), math.exp(best.x[1])


def _fmt_ci(b, lo, hi):
    return f"{b:+.3f} [{lo:+.3f}, {hi:+.3f}]"


def tables(cells: dict, out: dict) -> str:
    L = []
    for opt, R in out["optimizers"].items():
        L.append(f"### {opt}\n")
        L.append("| threshold | ln C | lr exponent | wd exponent | init-scale exponent | train-fraction exponent | sigma (ln) "
                 "| runs (censored, collapsed) | beta_lr - beta_wd [95% CI] | LR test lr*wd (p) |")
        L.append("|---|---|---|---|---|---|---|---|---|---|")
        for thr, e in R["thresholds"].items():
            b, lo, hi = e["beta"], e["beta_ci95"][0], e["beta_ci95"][1]
            pt = e["product_test"]
            L.append(f"| {thr} | {b[0]:.2f} | {_fmt_ci(b[1], lo[1], hi[1])} | {_fmt_ci(b[2], lo[2], hi[2])} "
                     f"| {_fmt_ci(b[3], lo[3], hi[3])} | {_fmt_ci(b[4], lo[4], hi[4])} | {e['sigma']:.3f} "
                     f"| {e['n']} ({e['n_censored']}, {e['n_collapsed']}) "
                     f"| {_fmt_ci(pt['beta_lr_minus_beta_wd'], *pt['ci95'])} | {pt['lr_stat']:.1f} ({pt['p_value']:.2g}) |")
        L.append("")
        L.append("| held-out set | runs | jumped | censored (pred > budget) | MAPE | median APE | in 90% interval |")
        L.append("|---|---|---|---|---|---|---|")
        for g, h in R["heldout"].items():
            cov = "-" if h["coverage90"] is None else f"{h['coverage90']:.0%}"
            L.append(f"| {g} | {h['n_runs']} | {h['n_jumped']} | {h['n_censored']} ({h['censored_predicted_beyond_budget']}) "
                     f"| {h['mape']:.1%} | {h['median_ape'] if h['median_ape'] is None else format(h['median_ape'], '.1%')} | {cov} |")
        L.append("")
        L.append(f"Candidate laws (fitted on the {R['n_grid_cells']}-cell lr x wd grid, T at test acc 0.95, "
                 f"judged on {R['candidates_n_heldout']} held-out runs: other seeds + off-grid cells):\n")
        L.append("| law | held-out MAPE | fitted |")
        L.append("|---|---|---|")
        for k, v in R["candidates"].items():
            ps = ", ".join(f"{a} {b:.3g}" if isinstance(b, float) else f"{a}: {b}" for a, b in v["params"].items())
            L.append(f"| {k} | {v['mape']:.1%} | {ps} |")
        L.append("")
        r = R["threshold_ratio_to_0.5"]
        L.append("Threshold sensitivity (fit runs): T_q / T_0.5 median [range]: " + "; ".join(
            f"q {k}: {v['median']:.3f} [{v['range'][0]:.2f}, {v['range'][1]:.2f}] (n {v['n']})" for k, v in r.items() if v["median"]))
        L.append("")
        L.append(f"Collapsed cells (some seed never memorised): {R['collapsed_cells'] or 'none'}; "
                 f"censored cells (some seed without a jump by the budget): {R['censored_cells'] or 'none'}\n")
        for g, h in R["heldout"].items():
            L.append(f"{g}: " + "; ".join(
                f"{n}: pred {c['pred']:.0f} vs {('/'.join(str(m) for m in c['meas'])) or '-'}"
                + (f" (+{c['censored']} censored at {c['budget']})" if c["censored"] else "")
                for n, c in h["cells"].items()))
            L.append("")
    tp = HERE / "trajectories.json"
    if tp.exists():
        L.append("Weight split along training (experiments/timing_law/trajectories.py): decay rate of |theta_M| per step "
                 "between memorisation and test acc 0.5, measured (slope of -ln|theta_M|) vs predicted from the "
                 "weight-decay term alone (AdamW: -ln(1 - lr wd); Adam: lr wd <theta_M, theta/sqrt(v)>/|theta_M|^2 from "
                 "the optimiser's v), and the ratio |theta_F|/|theta_M|. theta_F: each hidden unit's (U column, V column, "
                 "A row) projected on the DFT basis at that unit's own key frequency (where most of its power sits at the "
                 "end of the run, test acc >= 0.99); theta_M: the rest.\n")
        L.append("| run | seed | distinct key freqs | T_mem | T_0.5 | T_0.95 | rate measured | rate predicted | measured/predicted "
                 "| lr*wd | |F|/|M| at T_mem | at T_0.5 | |theta_M| T_mem -> T_0.5 | |theta_F| T_mem -> T_0.5 "
                 "| median unit share at its key freq T_mem -> T_0.5 | Adam median x = wd|w|/sqrt(v) T_mem -> T_0.5 |")
        L.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for k, d in json.loads(tp.read_text()).items():
            for sd in d["seeds"]:
                f = sd["decay_fit"]
                if not f:
                    L.append(f"| {k} | {sd['seed']} | {sd['n_distinct_keys']} | {sd['memorisation']} | {sd['jump50']} | "
                             f"{sd['jump95']} |" + " - |" * 10)
                    continue
                pr = f["predicted_rate"]
                xm = f["median_x_at_mem"]
                L.append(f"| {k} | {sd['seed']} | {sd['n_distinct_keys']} | {sd['memorisation']} | {sd['jump50']} | "
                         f"{sd['jump95']} | {f['measured_rate']:.3g} | {pr:.3g} | {f['measured_rate'] / pr:.2f} | "
                         f"{f['eta_lambda']:.3g} | {f['ratio_F_over_M_at_mem']:.2f} | {f['ratio_F_over_M_at_j50']:.2f} | "
                         f"{f['norm_M_mem']:.1f} -> {f['norm_M_j50']:.1f} | {f['norm_F_mem']:.1f} -> {f['norm_F_j50']:.1f} | "
                         f"{f['unit_key_share_mem']:.2f} -> {f['unit_key_share_j50']:.2f} | "
                         f"{'-' if xm is None else format(xm, '.3g')} -> "
                         f"{'-' if f['median_x_at_j50'] is None else format(f['median_x_at_j50'], '.3g')} |")
        L.append("")
        L.append("Decay phase of |theta_M| (from its peak after memorisation to the 0.5 jump):\n")
        L.append("| run | seed | peak step | |theta_M| peak -> T_0.5 | |theta_F| same window | rate measured | rate predicted (wd term alone) | ratio |")
        L.append("|---|---|---|---|---|---|---|---|")
        for k, d in json.loads(tp.read_text()).items():
            for sd in d["seeds"]:
                f = sd["decay_fit"] or {}
                m, p = f.get("measured_rate_from_peak"), f.get("predicted_rate_from_peak")
                if not f:
                    continue
                L.append(f"| {k} | {sd['seed']} | {f['peak_M_step']} | {f['norm_M_peak']:.1f} -> {f['norm_M_j50']:.1f} | "
                         f"{f['norm_F_at_peak_M']:.1f} -> {f['norm_F_j50']:.1f} | {'-' if m is None else format(m, '.3g')} | "
                         f"{'-' if p is None else format(p, '.3g')} | {'-' if m is None or not p else format(m / p, '.2f')} |")
        L.append("")
    L.append(f"Training wall time, all cells: {out['train_wall_s_total'] / 60:.1f} min (1 torch thread, shared 2-core machine)")
    return "\n".join(L) + "\n"

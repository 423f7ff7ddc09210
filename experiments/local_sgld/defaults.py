"""Deliver 1 of issue 12: `estimate_llc` with default settings on the validation cases, against the exact
learning coefficients.

Every case of tests/test_llc_validation.py (regular, normal crossings, the four Aoyagi-Watanabe RRR types) at
its n_beta (the loss there is the population loss, so n_beta is a free inverse temperature and must be
given), plus the generic-point quadratic nets (lambda = rank(J)/2) at n_beta 1e3, 1e5, 1e7. Per case: the
default call `estimate_llc(model, loss, data, n_beta=nb, seed=SEED)` (calibrate="auto", precondition="auto") and the old fixed
path (calibrate=False: 8 chains x 500 + 1,000 steps), with relative error, z, flags and cost.

    python defaults.py [SEED] [name filters...]   -> defaults_s{SEED}.json (+ table on stdout)
"""
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
import json  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

torch.set_num_threads(1)
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "tests"))
from test_llc_validation import CASES, quadratic_teacher  # noqa: E402

from slt import estimate_llc  # noqa: E402

if len(sys.argv) > 2 and sys.argv[1] == "table":  # python defaults.py table defaults_s2026.json -> markdown
    rows = json.load(open(sys.argv[2]))["rows"]
    print("| case | n_beta | exact | default (auto) | rel. err | z | flags | metric | steps/chain | grad. evals | s | "
          "fixed path (calibrate=False) | rel. err | flags |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        a, f = r["auto"], r["fixed"]
        print(f"| {r['case']} | {r['n_beta']:.0e} | {a['exact']:.4g} | {a['llc']:.4g} ± {a['se']:.2g} | {a['rel']:+.1%} | "
              f"{a['z']:+.1f} | {', '.join(a['flags']) or '-'} | {a.get('precondition') or 'plain'} | {a['steps']:,} | {a['gradient_evals']:,} | "
              f"{a['seconds']:.0f} | {f['llc']:.4g} ± {f['se']:.2g} | {f['rel']:+.1%} | {', '.join(f['flags']) or '-'} |")
    sys.exit(0)
SEED = int(sys.argv[1]) if len(sys.argv) > 1 else 2026
FILTERS = sys.argv[2:]


def cases():
    for c in CASES:
        if "QuadNet" in c.name:
            continue
        yield c.name, c.build, c.n_beta
    for (p, K) in ((3, 2), (5, 3)):
        for nb in (1e3, 1e5, 1e7):
            yield f"QuadNet p={p} K={K} n_beta={nb:.0e}", (lambda p=p, K=K: quadratic_teacher(p, K, 1)), nb


def one(build, nb, calibrate):
    model, loss, data, exact, m = build()
    t = time.perf_counter()
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        r = estimate_llc(model, loss, data, n_beta=nb, seed=SEED, calibrate=calibrate)
    s = time.perf_counter() - t
    cal = r.calibration
    return {"exact": exact, "m": m, "llc": r.llc, "se": r.llc_se, "rel": (r.llc - exact) / exact,
            "z": (r.llc - exact) / r.llc_se, "flags": list(r.diagnostics.flags), "seconds": s,
            "warnings": [str(x.message) for x in w], "rhat": r.diagnostics.rhat, "eps": r.eps,
            "steps": cal.get("steps_per_chain", r.num_burnin + r.num_draws),
            "gradient_evals": cal.get("gradient_evals"), "eps_bias": cal.get("eps_bias"),
            "eps_bias_se": cal.get("eps_bias_se"), "se_conservative": cal.get("se_conservative"),
            "precondition": r.precondition, "precondition_choice": cal.get("precondition_choice")}


rows = []
for name, build, nb in cases():
    if FILTERS and not any(f in name for f in FILTERS):
        continue
    row = {"case": name, "n_beta": nb, "auto": one(build, nb, "auto"), "fixed": one(build, nb, False)}
    a, f = row["auto"], row["fixed"]
    print(f"{name:34s} exact {a['exact']:7.4g} | auto {a['llc']:8.4g} ± {a['se']:.2g} {a['rel']:+6.1%} z {a['z']:+5.1f} "
          f"flags {','.join(a['flags']) or '-':14s} {a['precondition'] or 'plain':13s} steps {a['steps']:6d} evals {a['gradient_evals']:8d} {a['seconds']:5.1f}s "
          f"| fixed {f['llc']:8.4g} {f['rel']:+6.1%} flags {','.join(f['flags']) or '-'}", flush=True)
    rows.append(row)
suffix = "" if not FILTERS else "_" + "_".join("".join(ch for ch in f if ch.isalnum()) for f in FILTERS)
json.dump({"seed": SEED, "rows": rows}, open(HERE / f"defaults_s{SEED}{suffix}.json", "w"), indent=1, default=float)

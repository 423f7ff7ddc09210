"""Is the local recipe's ~1.5% excess at p 23, width 256 a step-size bias? The LOCAL recipe
(slt.checks.local_llc.LOCAL: n_beta 1e10, gamma 1e4, 4 chains, automatic eps) at one checkpoint whose exact lambda
is known (step 1,250 of experiments/exact_trajectory/cpu_sweep, seed 0: memorising, lambda = 3,604 = the one-hot
data cap), at step_scale 0.5 (the recipe), 0.25 and 0.125 with burn-in and draws scaled by 1 / step_scale, so
every run covers the same Langevin time. Euler-Maruyama's stationary law is O(eps) away from the target's, so a
step-size bias shrinks in proportion to eps; a linear fit in eps gives the eps -> 0 value and its SE.

    python local_eps.py [STEP_SCALE ...]      -> local_eps.json (one entry per step_scale; resumable)

Needs the run folder experiments/exact_trajectory/cpu_sweep/runs/f7cb077217464b1f (not in git; see local_w256.py).
"""
import dataclasses
import json
from fractions import Fraction
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(1)
from slt.checks import backend  # noqa: E402
from slt.checks.local_llc import LOCAL, sgld_at_checkpoint  # noqa: E402
from slt.runio import atomic_write_json  # noqa: E402

HERE = Path(__file__).resolve().parent
SWEEP = HERE.parent / "exact_trajectory" / "cpu_sweep"
RUN, STEP, COPY = "f7cb077217464b1f", 1250, 0
scales = [float(s) for s in sys.argv[1:]] or [0.5, 0.25, 0.125]
out_path = HERE / "local_eps.json"
out = json.loads(out_path.read_text()) if out_path.exists() else {}
exact = float(Fraction(json.loads((SWEEP / "points" / RUN / f"seed{COPY}_step{STEP}.json").read_text())["lam"]))
_, (cp,) = backend.load_checkpoints(SWEEP / "runs" / RUN, [STEP])
net = cp.model.select(COPY)
for scale in scales:
    key = f"{scale:g}"
    if key in out:
        print(f"step_scale {key}: done already")
        continue
    k = LOCAL.step_scale / scale
    proto = dataclasses.replace(LOCAL, step_scale=scale, burnin=round(LOCAL.burnin * k), draws=round(LOCAL.draws * k))
    t0 = time.perf_counter()
    res = sgld_at_checkpoint(net, cp.data, "centred_mse", proto, seed=1)
    res.update(exact=exact, protocol=proto.label(), step_scale=scale, burnin=proto.burnin, draws=proto.draws,
               wall_s=time.perf_counter() - t0)
    out[key] = res
    atomic_write_json(out_path, out)
    print(f"step_scale {key} ({proto.burnin} + {proto.draws} steps, eps {res['eps'][0]:.3g}): "
          f"{res['llc'][0]:.1f} ± {res['se'][0]:.1f}, rel {(res['llc'][0] - exact) / exact:+.2%}, "
          f"reach {res['reach'][0]:.4f}, rhat {res['rhat'][0]:.3f}, {res['wall_s']:.0f} s", flush=True)

if len(out) >= 2:
    runs = [v for k, v in out.items() if not k.startswith("_")]
    eps = np.array([v["eps"][0] for v in runs])
    lam = np.array([v["llc"][0] for v in runs])
    se = np.array([v["se"][0] for v in runs])
    # weighted least squares lam = a + b eps; SE of the intercept from the fit's covariance (weights 1 / se^2)
    X = np.stack([np.ones_like(eps), eps], 1)
    W = np.diag(1 / se**2)
    cov = np.linalg.inv(X.T @ W @ X)
    a, b = cov @ X.T @ W @ lam
    se_a = float(np.sqrt(cov[0, 0]))
    z = (a - exact) / se_a
    print(f"eps -> 0: {a:.1f} ± {se_a:.1f} (slope {b:.3g} per unit eps) against exact {exact}: "
          f"rel {(a - exact) / exact:+.2%}, z {z:+.1f}")
    out["_fit"] = dict(intercept=float(a), intercept_se=se_a, slope=float(b), exact=exact,
                       rel=float((a - exact) / exact), z=float(z), points=len(eps))
    atomic_write_json(out_path, out)

"""Issue 12 Deliver 3 at width 256: the LOCAL recipe (slt.checks.local_llc.LOCAL) at the p = 23, width 256
checkpoints of experiments/exact_trajectory/cpu_sweep, whose exact lambda is known (3,604 = the one-hot data cap
at every exact point there, before and after the jump).

    python local_w256.py [STEP ...]     -> local_w256.json (one entry per step, every seed of the run)

Needs the run folder experiments/exact_trajectory/cpu_sweep/runs/f7cb077217464b1f (made by
``experiments/exact_trajectory/points.py`` with the sweep setting; the checkpoints are not in git).
"""
import json
import os
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

torch.set_num_threads(1)
from slt.checks import backend  # noqa: E402
from slt.checks.local_llc import LOCAL, sgld_at_checkpoint  # noqa: E402
from slt.runio import atomic_write_json  # noqa: E402

HERE = Path(__file__).resolve().parent
SWEEP = HERE.parent / "exact_trajectory" / "cpu_sweep"
RUN = "f7cb077217464b1f"
steps = [int(s) for s in sys.argv[1:]] or [1250, 2250]
out_path = HERE / "local_w256.json"
out = json.loads(out_path.read_text()) if out_path.exists() else {}
for step in steps:
    if str(step) in out:
        print(f"step {step}: done already")
        continue
    _, (cp,) = backend.load_checkpoints(SWEEP / "runs" / RUN, [step])
    t0 = time.perf_counter()
    res = sgld_at_checkpoint(cp.model, cp.data, "centred_mse", LOCAL, seed=1)
    exact = []
    for s in range(cp.model.n_copies):
        f = SWEEP / "points" / RUN / f"seed{s}_step{step}.json"
        exact.append(json.loads(f.read_text())["lam"] if f.exists() else None)
    res.update(exact=exact, protocol=LOCAL.label(), wall_s=time.perf_counter() - t0)
    out[str(step)] = res
    atomic_write_json(out_path, out)
    for s in range(cp.model.n_copies):
        ex = exact[s]
        rel = "" if ex is None else f" exact {ex} rel {(res['llc'][s] - float(ex)) / float(ex):+.2%}"
        print(f"step {step} seed {s}: {res['llc'][s]:.1f} ± {res['se'][s]:.1f} reach {res['reach'][s]:.4f} "
              f"rhat {res['rhat'][s]:.3f}{rel}", flush=True)

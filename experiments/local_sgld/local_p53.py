"""Issue 12 Deliver 3 at the paper's size on the CPU: the LOCAL recipe at p = 53, width 1,024 checkpoints of
experiments/exact_trajectory/cpu_paper (lr 1e-4, wd 1e-5), exact lambda 29,684 (the one-hot cap) there.

    python local_p53.py STEP SEED_INDEX [BURNIN DRAWS]   -> local_p53.json (one entry per (step, seed, length))

Needs the run folder experiments/exact_trajectory/cpu_paper/runs/587b6321e3638d9b (checkpoints not in git).
"""
import json
import os
import sys
import time
from dataclasses import replace

from pathlib import Path

import torch

from slt.checks import backend
from slt.checks.local_llc import LOCAL, sgld_at_checkpoint
from slt.runio import atomic_write_json

torch.set_num_threads(int(os.environ.get("THREADS", "2")))
HERE = Path(__file__).resolve().parent
PAPER = HERE.parent / "exact_trajectory" / "cpu_paper"
RUN = "587b6321e3638d9b"
step, s = int(sys.argv[1]), int(sys.argv[2])
proto = LOCAL if len(sys.argv) < 5 else replace(LOCAL, burnin=int(sys.argv[3]), draws=int(sys.argv[4]))
out_path = HERE / "local_p53.json"
out = json.loads(out_path.read_text()) if out_path.exists() else {}
key = f"step{step}_seed{s}_{proto.burnin}+{proto.draws}"
if key in out:  # resumable like local_w256.py: a finished point is never recomputed
    sys.exit(f"{key}: done already ({out[key]['llc'][0]:.1f})")
_, (cp,) = backend.load_checkpoints(PAPER / "runs" / RUN, [step])
t0 = time.perf_counter()
res = sgld_at_checkpoint(cp.model.select(s), cp.data, "centred_mse", proto, seed=1)
f = PAPER / "points" / RUN / f"seed{s}_step{step}.json"
exact = json.loads(f.read_text())["lam"] if f.exists() else None
res.update(exact=exact, protocol=proto.label(), wall_s=time.perf_counter() - t0, threads=torch.get_num_threads())
out[key] = res
atomic_write_json(out_path, out)
rel = "" if exact is None else f", exact {exact} ({(res['llc'][0] - float(exact)) / float(exact):+.2%})"
print(f"step {step} seed {s} ({proto.burnin}+{proto.draws}): {res['llc'][0]:.1f} ± {res['se'][0]:.1f}{rel}, reach "
      f"{res['reach'][0]:.4f}, R-hat {res['rhat'][0]:.3f}, relaxed {res['relaxed'][0]}, eps {res['eps'][0]:.3g}, "
      f"flags {res['flags'][0]}, {res['wall_s']:.0f} s", flush=True)

"""The paper's 100-seed experiment on the grokking preset: 100 seeds on the copy axis in one run, stopped once
every seed has test accuracy >= 0.95. Writes hundred_seeds.json (atomic). Usage:

    python experiments/grokking_sweep/hundred_seeds.py [--threads 2]
"""
import argparse
from pathlib import Path

import torch

from slt.training import default_config, train
from slt.training.checkpoints import atomic_write_json

LATE_FACTOR = 5

ap = argparse.ArgumentParser()
ap.add_argument("--threads", type=int, default=2)
args = ap.parse_args()
torch.set_num_threads(args.threads)
c = default_config().replace(seeds=list(range(100)), stop_on_grok=True)
r = train(c)
mem, grok, m = r.memorisation_step, r.grokking_step, r.metrics
steps = m["step"]
late = 0
for k in range(100):
    te = [row[k] for row in m["test_acc"]]
    t50 = next((s for s, v in zip(steps, te) if v >= 0.5), None)
    before = max(s for s in steps if t50 is None or s < t50)
    late += mem[k] is not None and grok[k] is not None and before >= LATE_FACTOR * mem[k]
out = {"config": c.to_dict(), "threads": args.threads, "wall_time_s": r.wall_time_s, "steps_run": steps[-1],
       "n_grokked": sum(g is not None for g in grok), "n_grokked_late": late,
       "memorisation_step": mem, "grokking_step": grok}
atomic_write_json(Path(__file__).resolve().parent / "hundred_seeds.json", out)
print({k: v for k, v in out.items() if k not in ("config", "memorisation_step", "grokking_step")})

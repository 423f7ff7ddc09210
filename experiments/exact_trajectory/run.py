"""Exact lambda at polished checkpoints through grokking (issue 11): claim 7 of ``slt check`` at the paper's
scale, plus the timing of ``exact_llc`` itself.

    python experiments/exact_trajectory/run.py --setting preset --device cuda --out DIR  # p 53, width 512, 5 seeds
    python experiments/exact_trajectory/run.py --setting paper --device cuda --out DIR   # p 53, width 1024, 3 seeds
    python experiments/exact_trajectory/run.py --setting default --out DIR               # what `slt check` runs
    python experiments/exact_trajectory/run.py --timing --device cpu --out DIR           # exact_llc at p 53, K 1024

Each (run, checkpoint) is a cached point under DIR, so a run cut short resumes where it stopped.
"""
from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from slt.checks import profile, run_check
from slt.checks.profiles import ExactSpec, TrainSpec

SETTINGS = {
    # the grokking preset (Adam lr 1e-3, wd 1e-4, batch 128, centred MSE, 40% of pairs): data cap binds at width 512
    "preset": ExactSpec(TrainSpec("grokking", {"seeds": [0, 1, 2, 3, 4], "steps": 4000}), n_checkpoints=8),
    # the paper's optimiser (lr 1e-4, wd 1e-5) and width 1,024
    "paper": ExactSpec(TrainSpec("grokking", {"p": 53, "width": 1024, "lr": 1e-4, "weight_decay": 1e-5,
                                              "steps": 20000, "seeds": [0, 1, 2]}), n_checkpoints=8),
}


def timing(device: str, out: Path) -> dict:
    """exact_llc at a random interpolating point (teacher targets) of the paper's size, and at a polished one."""
    from slt.theory.exact_scale import exact_llc

    rng = np.random.default_rng(0)
    p, K = 53, 1024
    n = int(0.4 * p * p)
    idx = rng.choice(p * p, n, replace=False)
    a, b = idx // p, idx % p
    U, V = (rng.uniform(-1, 1, (p, K)) / np.sqrt(2 * p) for _ in range(2))
    A = rng.uniform(-1, 1, (K, p)) / np.sqrt(K)
    s = U[a] + V[b]
    t0 = time.perf_counter()
    r = exact_llc(U, V, A, a, b, (s * s) @ A, centred=True, device=device)
    import resource

    res = {"device": device, "threads": torch.get_num_threads(), "p": p, "K": K, "N": n, "params": r.n_params,
           "rows": r.rows, "rank": r.rank, "lam": str(r.lam), "seconds": time.perf_counter() - t0,
           "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
           "timings": r.timings, "gaps": r.gaps}
    (out / f"timing_{device.replace(':', '')}.json").write_text(json.dumps(res, indent=1, default=str))
    print(res)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--setting", choices=sorted(SETTINGS) + ["default"])
    ap.add_argument("--timing", action="store_true")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="slt-exact")
    ap.add_argument("--n-checkpoints", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (1 on a shared, busy CPU)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.timing:
        timing(args.device, out)
    if args.setting:
        base = profile("default")
        spec = base.exact if args.setting == "default" else SETTINGS[args.setting]
        spec = replace(spec, device=args.device, basins=True)
        if args.n_checkpoints:
            spec = replace(spec, n_checkpoints=args.n_checkpoints)
        run_check(replace(base, name=f"exact-{args.setting}", exact=spec), out / args.setting,
                  only=("exact_trajectory",), device=args.device)


if __name__ == "__main__":
    main()

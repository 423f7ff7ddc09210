"""A subset of ``slt check --full`` that fits in 10 minutes on one GPU (how the paper-scale numbers in the
README's validation table were produced; the whole ``--full`` profile takes hours on a CPU).

    python experiments/check/full_subset.py --part trajectory --device cuda --out DIR   # claims 2, 3, 6 (full)
    python experiments/check/full_subset.py --part sweeps --device cuda --out DIR       # claim 5, 4 widths/primes
    python experiments/check/full_subset.py --part lr --device cuda --out DIR           # claims 4, 5b, 3 lrs

Each part is the full profile's experiment with fewer points (listed below); everything else (training
preset, steps, seeds, SGLD settings) is the full profile's unless stated.
"""
from __future__ import annotations

import argparse
from dataclasses import replace

from slt.checks import profile, run_check
from slt.checks.profiles import SGLDSettings, TrainSpec

PARTS = {
    "trajectory": ("trajectory", "timing", "basins"),
    "sweeps": ("paper_sweeps",),
    "lr": ("lr", "gsm"),
}


def subset_profile():
    full = profile("full")
    sweeps = replace(full.paper_sweeps, ps=(23, 53, 97), widths=(256, 1024))
    lr_train = TrainSpec("grokking", {"seeds": [0, 1, 2, 3, 4], "steps": 20000})
    lr = replace(full.lr_sweep, train=lr_train, lrs=(1e-4, 3e-4, 1e-3), n_llc_checkpoints=8,
                 sgld=SGLDSettings(num_chains=4, num_draws=3000, num_burnin=1000, batch_size=128, step_scale=0.5))
    return replace(full, name="full-subset", paper_sweeps=sweeps, lr_sweep=lr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=sorted(PARTS), required=True)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--out", default="slt-check-full-subset")
    args = ap.parse_args()
    run_check(subset_profile(), args.out, only=PARTS[args.part], device=args.device)


if __name__ == "__main__":
    main()

"""Runner for ``slt check``'s experiments from the JSON configs in this folder.

    python experiments/check/run.py [--profile default|quick|full] [--out DIR] [--only CLAIM ...]
    python experiments/check/run.py --write-configs      # regenerate the JSONs from the library defaults

Each ``<experiment>.json`` holds one experiment's settings for every profile ({"quick": ..., "default": ...,
"full": ...}). Edit a JSON and run this script to check with your settings; ``slt check`` itself uses the
library's shipped defaults (identical to these files unless edited; a test keeps them in sync).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from slt.checks import CLAIM_KEYS, PROFILES, CheckProfile, profile, run_check

HERE = Path(__file__).resolve().parent
EXPERIMENTS = ("closed_form", "trajectory", "lr_sweep", "paper_sweeps")


def load_profile(name: str) -> CheckProfile:
    d = profile(name).to_dict()
    for key in EXPERIMENTS:
        d[key] = json.loads((HERE / f"{key}.json").read_text())[name]
    return CheckProfile.from_dict(d)


def write_configs() -> None:
    for key in EXPERIMENTS:
        blob = {name: profile(name).to_dict()[key] for name in PROFILES}
        (HERE / f"{key}.json").write_text(json.dumps(blob, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="default", choices=PROFILES)
    ap.add_argument("--out", default=None, help="output folder (default ./slt-check-<profile>)")
    ap.add_argument("--only", nargs="+", choices=CLAIM_KEYS, default=None)
    ap.add_argument("--write-configs", action="store_true")
    ap.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (training and trained-network LLCs)")
    args = ap.parse_args()
    if args.write_configs:
        write_configs()
        return
    run_check(load_profile(args.profile), args.out or f"slt-check-{args.profile}",
              only=tuple(args.only) if args.only else None, device=args.device)


if __name__ == "__main__":
    main()

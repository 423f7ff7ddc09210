"""``slt check [--out DIR] [--quick | --full] [--scheduler ADDRESS|serial|local] [--workers N]``: theory versus experiment, the verdict report."""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "check", help="theory vs experiment: run every claim, write report.md/json and figures",
        description="Run the theory-vs-experiment claims (closed form vs SGLD, LLC through grokking, timing, "
                    "learning rate, the paper's sweeps, basins) and write DIR/report.md, DIR/report.json and "
                    "the figures. Finished points are cached in DIR, so an interrupted run resumes.")
    p.add_argument("--out", default="slt-check", help="output folder (default ./slt-check/)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help="paper-scale settings (p up to 97, width 1024; hours)")
    size.add_argument("--quick", action="store_true", help="tiny settings (about a minute; for tests)")
    p.add_argument("--only", nargs="+", metavar="CLAIM", default=None,
                   help="run only these claims: closed_form trajectory timing basins lr gsm paper_sweeps exact_trajectory "
                        "local_llc timing_law")
    p.add_argument("--family", nargs="+", metavar="NAME", default=None,
                   help="check a new architecture family's closed form by SGLD instead: cubic deep2 dihedral parity, "
                        "or all (slt.checks.family)")
    p.add_argument("--protocol", default=None, metavar="NAME[,NAME]",
                   help="SGLD protocols for claim 8 (local_llc) at claim 7's checkpoints: paper-apph (the paper's "
                        "App. H: eps 1e-4, n_beta 30, gamma 5, 3 chains, 100 + 600 steps), devinterp (n_beta = b/log b), "
                        "local (n_beta 1e10, gamma 1e4, 10,000 + 10,000 steps at the polished point), "
                        "local-quick (n_beta 1e8, 500 + 500); replaces the profile's")
    p.add_argument("--device", default="cpu",
                   help="cpu (default), cuda or cuda:N: where training and the trained-network LLCs run")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS|serial|local",
                   help="where the units of work run: local (default: an embedded Dask LocalCluster, one worker "
                        "process per core), serial (this process, no Dask; same numbers) or the address of a running "
                        "Dask scheduler, e.g. tcp://host:8786 (its workers must see --out)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="worker processes of the embedded LocalCluster (default: one per core)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from slt.checks import profile, run_check

    if args.family:
        from slt.checks.family import run_family_check

        run_family_check(args.family, args.out if args.out != "slt-check" else "slt-check-family", quick=args.quick,
                         scheduler=args.scheduler, n_workers=args.workers)
        return 0
    name = "full" if args.full else "quick" if args.quick else "default"
    prof = profile(name)
    if args.protocol:
        from dataclasses import replace

        from slt.checks.local_llc import PROTOCOLS, LocalLLCSpec

        names = [n.strip() for n in args.protocol.split(",") if n.strip()]
        bad = [n for n in names if n not in PROTOCOLS]
        if bad or not names:
            raise SystemExit(f"slt check: --protocol must name protocols among {sorted(PROTOCOLS)}, got {args.protocol!r}")
        prof = replace(prof, local_llc=LocalLLCSpec(prof.exact, tuple(PROTOCOLS[n] for n in names)))
    run_check(prof, args.out, only=tuple(args.only) if args.only else None, device=args.device,
              scheduler=args.scheduler, n_workers=args.workers)
    return 0

"""How the LLC estimate of a trained network depends on gamma and n_beta, with the chains' reach.

    python experiments/check/locality_sweep.py RUN_DIR [--step S] [--copy 0] [--gammas 1 10 100 1000]
                                              [--nbeta-factors 1 10 100] [--out FILE.json]

For each (gamma, n_beta = factor x n/log n): one `slt.estimate_llc_copies` run (4 chains, step_scale 0.5,
300 + 700 minibatch-128 steps, automatic eps) on one copy of one checkpoint, and its
`displacement_ratio` = rms(w - w*) / rms(w*). A local LLC needs a ratio well below 1 and a value that
does not move with gamma; the table shows whether any setting gives both. Rows are appended to --out as
they finish (atomic rewrite), and a rerun skips finished rows.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import tempfile
import warnings
from pathlib import Path

from slt.losses import get_loss
from slt.sampling import LLCWarning, estimate_llc_copies
from slt.training import list_checkpoints, load_checkpoint


def _write(path: Path, rows: list[dict]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(rows, f, indent=1)
    os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--step", type=int, default=None, help="checkpoint step (default: the last)")
    ap.add_argument("--copy", type=int, default=0)
    ap.add_argument("--gammas", type=float, nargs="+", default=[1.0, 10.0, 100.0, 1000.0])
    ap.add_argument("--nbeta-factors", type=float, nargs="+", default=[1.0, 10.0, 100.0])
    ap.add_argument("--out", type=Path, default=Path("locality_sweep.json"))
    args = ap.parse_args()
    step = args.step if args.step is not None else list_checkpoints(args.run)[-1]
    cp = load_checkpoint(args.run, step)
    cfg = json.loads((args.run / "config.json").read_text())
    net = cp.model.select(args.copy)
    a, b, y = cp.data.train()
    n = a.numel()
    rows = json.loads(args.out.read_text()) if args.out.exists() else []
    done = {(r["gamma"], r["nbeta_factor"]) for r in rows}
    print(f"p {cfg['p']} K {cfg['width']} step {step} copy {args.copy}; n_beta = factor x {n / math.log(n):.1f}")
    print("| gamma | n_beta | LLC +- SE | R-hat | reach rms(w-w*)/rms(w*) |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['gamma']:g} | {r['n_beta']:.4g} | {r['llc']:.4g} +- {r['se']:.2g} | {r['rhat']:.2f} | {r['reach']:.3g} |")
    for g in args.gammas:
        for f in args.nbeta_factors:
            if (g, f) in done:
                continue
            nb = f * n / math.log(n)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", LLCWarning)
                r = estimate_llc_copies(net, get_loss(cfg["loss"]), (a, b, y), n_beta=nb, gamma=g, num_chains=4,
                                        num_burnin=300, num_draws=700, batch_size=128, step_scale=0.5, seed=0)[0]
            row = {"gamma": g, "nbeta_factor": f, "n_beta": nb, "llc": r.llc, "se": r.llc_se,
                   "rhat": r.diagnostics.rhat, "reach": r.extra["displacement_ratio"], "eps": r.eps}
            rows.append(row)
            _write(args.out, rows)
            print(f"| {g:g} | {nb:.4g} | {r.llc:.4g} +- {r.llc_se:.2g} | {row['rhat']:.2f} | {row['reach']:.3g} |",
                  flush=True)


if __name__ == "__main__":
    main()

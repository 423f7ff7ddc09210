"""Mixing probe: what makes SGLD chains on a trained grokking network reach R-hat <= 1.1 cheaply?

One trained network (the default check profile's small grokking setting: p = 53, width 256, lr 1e-3,
7,000 Adam steps, seed 0 of seeds (0, 1, 2)); its final checkpoint is reused for every probe run. Each row
varies gamma, step_scale (eps = step_scale / (n_beta h + gamma), h = top curvature), the minibatch size
and the chain length, and records estimate, SE across chains, R-hat, MALA acceptance, ESS and wall time.

    OMP_NUM_THREADS=1 python experiments/mixing_probe/run.py [--out /tmp/mixing_probe] [--grid main]

Rows are appended to OUT/rows.jsonl as they finish (a rerun skips rows already there).
"""
import argparse
import json
import os
import time
import warnings
from pathlib import Path

import torch

import slt
from slt.training import load_checkpoint

CHAINS = 4
# (gamma, step_scale, batch_size, burnin, draws)
GRIDS = {
    "main": [
        # gamma at the check's length and batch (300 total steps)
        *[(g, 0.05, 128, 100, 200) for g in (1, 10, 100, 1000)],
        # step scale at gamma 1 and 100
        *[(g, s, 128, 100, 200) for g in (1, 100) for s in (0.2, 0.5)],
        # full batch
        *[(g, 0.05, None, 100, 200) for g in (1, 100)],
        # chain length
        *[(g, 0.05, 128, b, d) for g in (1, 100, 1000) for (b, d) in ((300, 700), (1000, 2000))],
        # gamma 10 lengths; large step scale at the strong gammas and long chains
        *[(10, 0.05, 128, b, d) for (b, d) in ((300, 700), (1000, 2000))],
        *[(1000, s, 128, 100, 200) for s in (0.2, 0.5)],
        *[(g, 0.5, 128, 1000, 2000) for g in (1, 10)],
        # step scale at gamma 10 and 30; step scale x length at gamma 1
        *[(g, s, 128, 100, 200) for g in (10, 30) for s in (0.2, 0.5)],
        *[(1, s, 128, 1000, 2000) for s in (0.1, 0.2)],
        # full batch: the trace is then the full-data loss, so R-hat is not padded by minibatch noise
        (100, 0.05, None, 300, 700), (1000, 0.05, None, 100, 200), (1000, 0.05, None, 300, 700),
        *[(g, 0.5, None, 100, 200) for g in (1, 10, 100, 1000)],
        (10, 0.5, None, 300, 700), (100, 0.5, None, 300, 700),
        (1, 0.5, None, 300, 700), (1, 0.2, None, 300, 700),
    ],
}


def trained_net(out: Path):
    run_dir = out / "train"
    cfg = slt.training.default_config("grokking").replace(p=53, width=256, lr=1e-3, stop_on_grok=False,
                                                          seeds=(0, 1, 2), steps=7000)
    slt.training.train(cfg, out_dir=run_dir)
    ck = load_checkpoint(run_dir)
    return ck, ck.model.select(0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="/tmp/mixing_probe")
    ap.add_argument("--grid", default="main", choices=sorted(GRIDS))
    ap.add_argument("--only", type=int, nargs="*", help="row indices to run")
    ap.add_argument("--table", action="store_true", help="print the markdown table of OUT/rows.jsonl and exit")
    args = ap.parse_args()
    out = Path(args.out)
    if args.table:
        print(table(out / "rows.jsonl"))
        return
    out.mkdir(parents=True, exist_ok=True)
    ck, net = trained_net(out)
    data = ck.data.train()
    rows_path = out / "rows.jsonl"
    done = set()
    if rows_path.exists():
        done = {tuple(json.loads(l)["key"]) for l in rows_path.read_text().splitlines() if l.strip()}
    grid = GRIDS[args.grid]
    for i, (g, s, bs, nb, nd) in enumerate(grid):
        if args.only is not None and i not in args.only:
            continue
        key = [g, s, bs, nb, nd]
        if tuple(key) in done:
            continue
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                r = slt.sampling.estimate_llc_copies(net, slt.losses.centred_mse, data, gamma=g, step_scale=s,
                                                     num_chains=CHAINS, num_burnin=nb, num_draws=nd,
                                                     batch_size=bs, seed=0)[0]
                row = dict(key=key, gamma=g, step_scale=s, batch=bs, burnin=nb, draws=nd, eps=r.eps,
                           llc=r.llc, se=r.llc_se, per_chain=[float(x) for x in r.llc_per_chain],
                           rhat=r.diagnostics.rhat, mala=r.diagnostics.mala_acceptance, ess=r.diagnostics.ess,
                           wall_s=time.perf_counter() - t0, sampler_s=r.elapsed_s, error=None)
            except ValueError as e:  # divergence at large step scales is a result, not a crash
                row = dict(key=key, gamma=g, step_scale=s, batch=bs, burnin=nb, draws=nd, error=str(e)[:200],
                           wall_s=time.perf_counter() - t0)
        print(json.dumps(row), flush=True)
        with open(rows_path, "a") as f:
            f.write(json.dumps(row) + "\n")


def table(rows_path: Path) -> str:
    """Markdown table of the rows in rows.jsonl, sorted by gamma, batch, step scale, length."""
    rows = [json.loads(l) for l in rows_path.read_text().splitlines() if l.strip()]
    rows.sort(key=lambda r: (r["gamma"], r["batch"] is None, r["step_scale"], r["burnin"] + r["draws"]))
    out = ["| gamma | step_scale | eps | batch | burn-in + draws | LLC ± SE | R-hat | MALA acc. | ESS | wall s |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        b = "full" if r["batch"] is None else r["batch"]
        if r.get("error"):
            out.append(f"| {r['gamma']} | {r['step_scale']} | - | {b} | {r['burnin']} + {r['draws']} | "
                       f"error: {r['error'][:80]} | | | | {r['wall_s']:.1f} |")
            continue
        ok = " **" if r["rhat"] <= 1.1 else " "
        out.append(f"| {r['gamma']} | {r['step_scale']} | {r['eps']:.2g} | {b} | {r['burnin']} + {r['draws']} | "
                   f"{r['llc']:.4g} ± {r['se']:.2g} |{ok}{r['rhat']:.3f}{ok.strip()} | {r['mala']:.2f} | "
                   f"{r['ess']:.0f} | {r['wall_s']:.1f} |")
    return "\n".join(out)


if __name__ == "__main__":
    main()

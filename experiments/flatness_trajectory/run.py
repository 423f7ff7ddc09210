"""LLC beside flatness (Hessian trace, SAM sharpness) along a grokking run: does the LLC tell more?

    python experiments/flatness_trajectory/run.py [--p 23 --width 128 --steps 3000 --lr 3e-3 --out DIR]

Trains one seed of the grokking preset at the size of ``slt check --quick`` (p 23, width 128, lr 3e-3,
train fraction 0.5, batch 64: it groks within ~1,200 steps) with checkpoints, then at every checkpoint (all
copies in one batched call): the SGLD LLC with the trajectory settings of ``slt check`` (4 chains, 300 +
700 steps, step_scale 0.5, minibatch 128, centred MSE), the Hutchinson Hessian trace (64 probes) and the
SAM sharpness (rho 0.05) of the same loss. Writes DIR/flatness_trajectory.json and .png.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from slt.checks.backend import stack_copies
from slt.flatness import flatness, plot_llc_and_flatness
from slt.losses import get_loss
from slt.sampling import estimate_llc_copies
from slt.training import default_config, list_checkpoints, load_checkpoint, train


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--p", type=int, default=23)
    ap.add_argument("--width", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--train-fraction", type=float, default=0.5)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--out", default=str(Path(__file__).parent / "run"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    out = Path(args.out)
    cfg = default_config("grokking").replace(p=args.p, width=args.width, seeds=(0,), steps=args.steps, lr=args.lr,
                                            train_fraction=args.train_fraction, batch_size=args.batch,
                                            checkpoint_every=args.steps // 10, n_checkpoints_log=10)
    t0 = time.perf_counter()
    res = train(cfg, out_dir=out / "train")
    t_train = time.perf_counter() - t0
    steps = [s for s in list_checkpoints(out / "train") if s > 0]
    cps = [load_checkpoint(out / "train", s) for s in steps]
    net = stack_copies([c.model for c in cps])
    a, b, y = cps[0].data.train()
    loss = get_loss(cfg.loss)
    t0 = time.perf_counter()
    llc = estimate_llc_copies(net, loss, (a, b, y), num_chains=4, num_draws=700, num_burnin=300, batch_size=128,
                              step_scale=0.5, seed=1)
    t_llc = time.perf_counter() - t0
    t0 = time.perf_counter()
    net64 = stack_copies([c.model for c in cps])
    fl = flatness(net64, loss, (a, b, y), n_probes=64, rho=0.05, seed=2)
    t_flat = time.perf_counter() - t0
    m = res.metrics
    events = {"memorised": res.memorisation_step[0], "grokked": res.grokking_step[0]}
    record = {"config": cfg.to_dict(), "steps": steps, "llc": [r.llc for r in llc], "llc_se": [r.llc_se for r in llc],
              "rhat": [r.diagnostics.rhat for r in llc], **fl.to_dict(), "events": events,
              "wall_s": {"train": t_train, "llc": t_llc, "flatness": t_flat},
              "train_acc": m["train_acc"], "test_acc": m["test_acc"], "metric_steps": m["step"]}
    (out / "flatness_trajectory.json").write_text(json.dumps(record, indent=1, default=float))
    plot_llc_and_flatness(out / "flatness_trajectory.png", steps, record["llc"], record["llc_se"], fl.trace, fl.trace_se,
                          fl.sam, fl.rho, title=f"p={args.p}, width {args.width}: LLC vs flatness",
                          events={k: v for k, v in events.items() if v is not None})
    for s, l, se, tr, sam in zip(steps, record["llc"], record["llc_se"], fl.trace, fl.sam):
        print(f"step {s:>6}: LLC {l:9.2f} +- {se:6.2f}   tr H {tr:10.4g}   SAM {sam:9.3g}")
    print(f"events {events}; wall: {record['wall_s']}")


if __name__ == "__main__":
    main()

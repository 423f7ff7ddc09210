"""`slt llc --run DIR [--step K]`: estimate the LLC of a saved checkpoint (every seed of the run in one
batched SGLD computation) and write DIR/llc.json (or llc_step_K.json) and trace.png (trace_step_K.png).

The loss is the run's own training loss (``config.loss``) on its training split; n_beta defaults to
n / log n with n the number of training pairs.
"""
from __future__ import annotations

import argparse
import math
import sys
import warnings
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("llc", help="estimate the local learning coefficient of a checkpoint by SGLD",
                              description=__doc__)
    p.add_argument("--run", required=True, help="run directory written by `slt train`")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the latest)")
    p.add_argument("--chains", type=int, default=8, help="SGLD chains per seed (default 8)")
    p.add_argument("--draws", type=int, default=1000, help="draws per chain after burn-in (default 1000)")
    p.add_argument("--burnin", type=int, default=500, help="burn-in steps (default 500)")
    p.add_argument("--eps", type=float, default=None, help="step size (default: automatic from the curvature)")
    p.add_argument("--gamma", type=float, default=1.0, help="localisation strength (default 1)")
    p.add_argument("--n-beta", type=float, default=None, help="inverse temperature n*beta (default n/log n)")
    p.add_argument("--batch-size", type=int, default=None, help="SGLD minibatch size (default: full batch)")
    p.add_argument("--seed", type=int, default=0, help="sampler seed (default 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _finite(x):
    """JSON has no NaN/inf: write them as null."""
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def run(args: argparse.Namespace) -> int:
    from slt.losses import get_loss
    from slt.sampling.llc import LLCWarning, estimate_llc_copies
    from slt.sampling.plots import plot_trace
    from slt.training import load_checkpoint
    from slt.training.checkpoints import atomic_write_json, library_version

    run_dir = Path(args.run)
    if not run_dir.is_dir():
        raise ValueError(f"--run must be an existing run directory, got {str(run_dir)!r}")
    ckpt = load_checkpoint(run_dir, args.step)
    cfg = ckpt.config
    a, b, y = ckpt.data.train()
    loss_fn = get_loss(cfg.loss)
    print(f"slt llc: {run_dir} step {ckpt.step}: p={cfg.p}, width={cfg.width}, {ckpt.model.n_copies} seed(s), "
          f"n={a.numel()} training pairs, loss={cfg.loss}", file=sys.stderr)
    with warnings.catch_warnings():  # printed below, once per seed
        warnings.simplefilter("ignore", LLCWarning)
        results = estimate_llc_copies(
            ckpt.model, loss_fn, (a, b, y), n_beta=args.n_beta, eps=args.eps, gamma=args.gamma,
            num_chains=args.chains, num_draws=args.draws, num_burnin=args.burnin, batch_size=args.batch_size,
            seed=args.seed, progress=not args.no_progress,
        )
    suffix = "" if args.step is None else f"_step_{ckpt.step}"
    out = {
        "run": str(run_dir), "step": ckpt.step, "seeds": list(cfg.seeds), "loss": cfg.loss, "n": results[0].n,
        "llc": [r.llc for r in results], "llc_se": [r.llc_se for r in results],
        "sampler": {"chains": args.chains, "draws": args.draws, "burnin": args.burnin, "eps": args.eps,
                    "gamma": args.gamma, "n_beta": args.n_beta, "batch_size": args.batch_size, "seed": args.seed},
        "train_config": cfg.to_dict(), "version": library_version(),
        "results": [r.to_dict() for r in results],
    }
    json_path = run_dir / f"llc{suffix}.json"
    atomic_write_json(json_path, _finite(out))
    plot_trace(results[0], run_dir / f"trace{suffix}.png",
               title=f"step {ckpt.step}, seed {cfg.seeds[0]}: LLC {results[0].llc:.4g} ± {results[0].llc_se:.2g}")
    for seed, r in zip(cfg.seeds, results):
        print(f"seed {seed}: LLC = {r.llc:.4g} ± {r.llc_se:.2g}  (eps={r.eps:.3g}, n_beta={r.n_beta:.4g}, "
              f"R-hat={r.diagnostics.rhat:.3f}, MALA acc={r.diagnostics.mala_acceptance:.2f})")
        for w in r.diagnostics.warnings:
            print(f"  warning: {w}", file=sys.stderr)
    print(f"wrote {json_path} and {run_dir / f'trace{suffix}.png'}")
    return 0

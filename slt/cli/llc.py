"""`slt llc --run DIR [--step K] [--out DIR2]`: estimate the LLC of a saved checkpoint (every seed of the
run in one batched SGLD computation) and write llc.json (or llc_step_K.json) and trace.png
(trace_step_K.png) into DIR2 (default: the run directory). The estimates are printed before any file is
written, so a run directory that cannot be written loses nothing.

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
    p.add_argument("--noise", choices=("torch", "counter"), default=None,
                   help="Gaussian source: torch's randn, or the compiled counter source (slt.sampling.noise; "
                        "default: $SLT_NOISE, else torch)")
    p.add_argument("--out", metavar="DIR", default=None,
                   help="where to write llc*.json and trace*.png (default: the run directory)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from slt.losses import get_loss
    from slt.sampling.llc import LLCWarning, estimate_llc_copies
    from slt.sampling.plots import plot_trace
    from slt.training import load_checkpoint
    from slt.runio import atomic_write, atomic_write_json, prepare_dir
    from slt.training.checkpoints import library_version

    run_dir = Path(args.run)
    if not run_dir.is_dir():
        raise ValueError(f"--run must be an existing run directory, got {str(run_dir)!r}")
    out_dir = prepare_dir(args.out, "--out") if args.out is not None else run_dir
    for name, v, lo in (("--chains", args.chains, 1), ("--draws", args.draws, 1), ("--burnin", args.burnin, 0)):
        if v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v}")
    ckpt = load_checkpoint(run_dir, args.step)
    cfg = ckpt.config
    a, b, y = ckpt.data.train()
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size must be an integer >= 1 (omit it for the full batch), got {args.batch_size}")
    if args.batch_size is not None and cfg.loss == "centred_mse" and args.batch_size < 2:
        raise ValueError(f"--batch-size must be >= 2 with the run's centred_mse loss (a minibatch of one pair "
                         f"centred on itself has zero loss, so every draw would be 0), got {args.batch_size}")
    loss_fn = get_loss(cfg.loss)
    print(f"slt llc: {run_dir} step {ckpt.step}: p={cfg.p}, width={cfg.width}, {ckpt.model.n_copies} seed(s), "
          f"n={a.numel()} training pairs, loss={cfg.loss}", file=sys.stderr)
    if args.chains < 2 and args.draws < 4:
        print(f"slt llc: warning: {args.chains} chain x {args.draws} draw(s) give no standard error (needs >= 2 "
              "chains, or >= 4 draws of one chain); the estimate below is a single noisy value", file=sys.stderr)
    with warnings.catch_warnings():  # printed below, once per seed
        warnings.simplefilter("ignore", LLCWarning)
        results = estimate_llc_copies(
            ckpt.model, loss_fn, (a, b, y), n_beta=args.n_beta, eps=args.eps, gamma=args.gamma,
            num_chains=args.chains, num_draws=args.draws, num_burnin=args.burnin, batch_size=args.batch_size,
            seed=args.seed, progress=not args.no_progress, noise=args.noise,
        )
    for seed, r in zip(cfg.seeds, results):
        se = f"± {r.llc_se:.2g}" if math.isfinite(r.llc_se) else "(no standard error: too few draws)"
        print(f"seed {seed}: LLC = {r.llc:.4g} {se}  (eps={r.eps:.3g}, n_beta={r.n_beta:.4g}, "
              f"R-hat={r.diagnostics.rhat:.3f}, MALA acc={r.diagnostics.mala_acceptance:.2f})")
        for w in r.diagnostics.warnings:
            print(f"  warning: {w}", file=sys.stderr)
    suffix = "" if args.step is None else f"_step_{ckpt.step}"
    out = {
        "run": str(run_dir), "step": ckpt.step, "seeds": list(cfg.seeds), "loss": cfg.loss, "n": results[0].n,
        "llc": [r.llc for r in results], "llc_se": [r.llc_se for r in results],
        "sampler": {"chains": args.chains, "draws": args.draws, "burnin": args.burnin, "eps": args.eps,
                    "gamma": args.gamma, "n_beta": args.n_beta, "batch_size": args.batch_size, "seed": args.seed},
        "train_config": cfg.to_dict(), "version": library_version(),
        "results": [r.to_dict() for r in results],
    }
    json_path, png_path = out_dir / f"llc{suffix}.json", out_dir / f"trace{suffix}.png"
    try:
        atomic_write_json(json_path, out)  # NaN/inf written as null (strict JSON)
        se0 = f" ± {results[0].llc_se:.2g}" if math.isfinite(results[0].llc_se) else ""
        title = f"step {ckpt.step}, seed {cfg.seeds[0]}: LLC {results[0].llc:.4g}{se0}"
        fig = plot_trace(results[0], None, title=title)
        try:  # saved through slt.runio so the PNG keeps the umask like the JSON
            atomic_write(png_path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
        finally:
            import matplotlib.pyplot as plt

            plt.close(fig)
    except OSError as err:
        msg = err.strerror or str(err)
        if str(out_dir) not in msg:
            msg = f"cannot write {json_path}: {msg}"
        raise ValueError(f"{msg} (the estimates are printed above); pass --out DIR to write them elsewhere") from None
    print(f"wrote {json_path} and {png_path}")
    return 0

"""`slt train`: train a config (a preset, a JSON file, or either with flags on top) and write a run dir."""
from __future__ import annotations

import argparse

import torch


def _seeds(text: str) -> tuple[int, ...]:
    """'0,1,2' -> (0, 1, 2); '5' -> five seeds (0..4); '3:7' -> (3, 4, 5, 6)."""
    try:
        if "," in text:
            return tuple(int(s) for s in text.split(",") if s.strip())
        if ":" in text:
            lo, hi = (int(s) for s in text.split(":"))
            return tuple(range(lo, hi))
        return tuple(range(int(text)))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"--seeds must be a count N (seeds 0..N-1), a list '0,3,7' or a range 'LO:HI', got {text!r}"
        ) from None


def _timing_line(config) -> str:
    """One line: the fitted timing law's predicted jump step (slt.predict_jump_step), or why there is none."""
    from slt.timing_law import predict_jump_step

    try:
        return f"  {predict_jump_step(config)}"
    except ValueError as err:
        return f"  timing law: no prediction, this config is outside the law's domain ({err})"
    except OSError as err:  # the shipped law file is missing from this installation
        return f"  timing law: not available ({err})"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train quadratic networks on modular arithmetic (all seeds at once)",
        description="Train a quadratic network on (a op b) mod p. Starts from --preset (default: grokking) or "
                    "--config FILE; the flags below override single fields. Writes metrics.json, metrics.csv, "
                    "checkpoints/ and curves.png to --out; rerunning with the same --out resumes.",
    )
    p.add_argument("--config", metavar="FILE", help="JSON TrainConfig (missing keys take defaults)")
    p.add_argument("--preset", choices=("grokking", "no_grokking"), help="shipped config (default: grokking)")
    p.add_argument("--p", type=int, help="modulus")
    p.add_argument("--op", choices=("add", "sub", "mul", "div"))
    p.add_argument("--width", type=int, help="hidden width K")
    p.add_argument("--train-fraction", type=float, dest="train_fraction")
    p.add_argument("--seeds", type=_seeds, help="N (seeds 0..N-1), '0,3,7' or 'LO:HI'")
    p.add_argument("--steps", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--weight-decay", type=float, dest="weight_decay")
    p.add_argument("--optimizer", choices=("adam", "adamw", "sgd"))
    p.add_argument("--batch-size", type=int, dest="batch_size", help="0 = full batch")
    p.add_argument("--loss", choices=("mse", "centred_mse", "cross_entropy"))
    p.add_argument("--stop-on-grok", action="store_true", default=None, dest="stop_on_grok",
                   help="stop once every seed reached the grokking threshold")
    p.add_argument("--device", help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")
    p.add_argument("--out", metavar="DIR", help="run directory (default: runs/<preset or config name>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from slt.training import default_config, load_config, train

    if args.config and args.preset:
        raise ValueError("give --config FILE or --preset NAME, not both")
    if args.config:
        config, label = load_config(args.config), Path(args.config).stem
    else:
        label = args.preset or "grokking"
        config = default_config(label)
    changes = {k: getattr(args, k) for k in ("p", "op", "width", "train_fraction", "seeds", "steps", "lr",
                                             "weight_decay", "optimizer", "batch_size", "loss", "stop_on_grok")
               if getattr(args, k) is not None}
    if changes.get("batch_size") == 0:
        changes["batch_size"] = None
    changes["device"] = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    config = config.replace(**changes)
    out = Path(args.out) if args.out else Path("runs") / label
    print(f"slt train: {len(config.seeds)} seed(s), {config.op} mod {config.p}, width {config.width}, "
          f"{config.optimizer} lr {config.lr:g} wd {config.weight_decay:g}, {config.steps} steps on "
          f"{config.device} -> {out}")
    print(_timing_line(config))
    result = train(config, out_dir=out, progress=not args.no_progress)
    print(f"done in {result.wall_time_s:.1f} s; final step {result.metrics['step'][-1]}")
    print(f"{'seed':>6} {'memorisation_step':>18} {'grokking_step':>14} {'train_acc':>10} {'test_acc':>9}")
    for c, seed in enumerate(config.seeds):
        mem, grok = result.memorisation_step[c], result.grokking_step[c]
        print(f"{seed:>6} {str(mem):>18} {str(grok):>14} {result.metrics['train_acc'][-1][c]:>10.3f} "
              f"{result.metrics['test_acc'][-1][c]:>9.3f}")
    print(f"wrote {out / 'metrics.json'}, {out / 'metrics.csv'}, {out / 'curves.png'}, {out / 'checkpoints'}/")
    return 0

"""`slt` command line: a thin skin over the Python API.

Each subcommand lives in its own module ``slt.cli.<name>`` exposing ``register(subparsers)``, which adds
its parser and sets ``func`` (called with the parsed namespace, returning an exit code).
"""
from __future__ import annotations

import argparse
import importlib
import sys

SUBCOMMANDS = ("check", "train", "llc", "derive")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="slt", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"slt.cli.{name}")
        except ModuleNotFoundError as err:  # a subcommand not built yet; any other import error surfaces
            if err.name != f"slt.cli.{name}":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    import warnings

    # library warnings (corrupt checkpoint skipped, too few draws, ...) as one line each, not source echoes
    old_format = warnings.formatwarning
    warnings.formatwarning = lambda msg, cat, *a, **k: f"slt {args.command}: warning: {msg}\n"
    try:
        return int(args.func(args) or 0)
    except ValueError as err:  # bad input: a clear one-line message, not a traceback
        print(f"slt {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # file faults (disk full, read-only, not a directory): name the file, no traceback
        msg = err.strerror or str(err)
        if err.filename and str(err.filename) not in msg:
            msg += f": {err.filename}"
        print(f"slt {args.command}: error: {msg}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"slt {args.command}: interrupted; finished points and checkpoints are kept, rerun the same "
              "command to resume", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = old_format


if __name__ == "__main__":
    sys.exit(main())

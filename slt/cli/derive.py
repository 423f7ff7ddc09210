"""`slt derive NAME [--latex]`: run one derivation script from derivations/ (`slt derive --list` lists them).

Each script prints its derivation step by step, the closed form and its checks; the exit code is the
script's (nonzero when a check failed).
"""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

DERIVATIONS_DIR = Path(__file__).resolve().parents[2] / "derivations"


def available() -> dict[str, Path]:
    """Derivation name -> script path (every derivations/*.py not starting with '_')."""
    if not DERIVATIONS_DIR.is_dir():
        return {}
    return {f.stem: f for f in sorted(DERIVATIONS_DIR.glob("*.py")) if not f.stem.startswith("_")}


def _summary(path: Path) -> str:
    text = path.read_text().lstrip()
    first = text.split('"""')[1].strip().splitlines()[0] if text.startswith('"""') else ""
    return first


def run(name: str, latex: bool = False) -> int:
    scripts = available()
    if name not in scripts:
        raise ValueError(f"NAME must be one of {sorted(scripts)}, got {name!r}")
    spec = importlib.util.spec_from_file_location(f"slt_derivation_{name}", scripts[name])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return int(module.main(latex=latex) or 0)


def _cmd(args: argparse.Namespace) -> int:
    if args.name == "generic":  # a new architecture from flags, not a script
        from slt.cli.derive_generic import run_generic

        return run_generic(args)
    if args.list or args.name is None:
        print(f"{'generic':22s} any polynomial architecture from flags (slt derive generic --help)")
        for name, path in available().items():
            print(f"{name:22s} {_summary(path)}")
        return 0
    return run(args.name, latex=args.latex)


def register(subparsers) -> None:
    parser = subparsers.add_parser("derive", help="run a derivation script (exact learning coefficients)",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", help="derivation to run (see --list)")
    parser.add_argument("--latex", action="store_true", help="print formulas as LaTeX")
    parser.add_argument("--list", action="store_true", help="list the derivations")
    from slt.cli.derive_generic import add_arguments

    add_arguments(parser)
    parser.set_defaults(func=_cmd)

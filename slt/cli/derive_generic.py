"""`slt derive generic ...`: generic rank and lambda of a polynomial architecture on a finite task.

    slt derive generic --activation 3 --depth 2 --task mul --p 7..13 --width 2..12 [--json | --latex]

Thin layer over :func:`slt.theory.families.derive_generic`: per instance (p, width) the exact generic
Jacobian rank (lower bound mod a prime = rigorous upper bounds -> proved), the numerical rank, the data
cap, the symmetry bound and lambda = rank / 2; with enough instances a closed form fitted on all but the
largest p (or width) and checked on those.
"""
from __future__ import annotations

import argparse
import json

import sympy as sp


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("generic architectures (NAME = generic)")
    g.add_argument("--activation", type=int, default=2, help="activation degree k of t -> t^k, 1..4 (default 2)")
    g.add_argument("--depth", type=int, default=1, help="hidden layers, 1..3 (default 1)")
    g.add_argument("--width", default="2", help="hidden width(s) of every layer: '2..12', '2..12:2', '3,5' (default 2)")
    g.add_argument("--task", default="add",
                   help="add, sub, mul, div, s3, s4, dihedral, parity, or a file of input tuples (default add)")
    g.add_argument("--p", default=None, help="task size(s): modulus, n of D_n, bits for parity: '7..13', '5,7'")
    g.add_argument("--train-fraction", type=float, default=1.0, help="fraction of all inputs used (1.0 = every input)")
    g.add_argument("--tied", action="store_true", help="one embedding table for every input slot")
    g.add_argument("--bias", action="store_true", help="biases in every layer")
    g.add_argument("--centred", action="store_true", help="centred loss (targets minus their mean)")
    g.add_argument("--seed", type=int, default=0, help="seeds the training split and the random points")
    g.add_argument("--no-fit", action="store_true", help="do not fit a closed form")
    g.add_argument("--json", action="store_true", help="print one JSON object (instances with rank and lambda)")


def run_generic(args: argparse.Namespace) -> int:
    from slt.theory.families import derive_generic, parse_range

    out = derive_generic(args.task, args.activation, args.depth, parse_range(args.p, "p"),
                         parse_range(args.width, "width"), args.train_fraction, args.tied, args.bias, args.centred,
                         args.seed, fit=not args.no_fit)
    if args.json:
        print(json.dumps(out, indent=1, default=str))
        return 0 if out["held_out_ok"] in (None, True) else 1
    head = (f"{args.task}: activation t^{args.activation}, depth {args.depth}, tied {args.tied}, bias {args.bias}, "
            f"centred {args.centred}, train fraction {args.train_fraction}")
    if args.latex:
        print(f"% {head}")
        print("\\begin{tabular}{rrrrrrrl}\n$p$ & $K$ & $N'$ & $d$ & rank & $\\lambda$ & upper & proved \\\\ \\hline")
        for r in out["instances"]:
            lam = sp.latex(sp.Rational(r["rank"], 2))
            print(f"{r['p']} & {r['K']} & {r['N']} & {r['d']} & {r['rank']} & ${lam}$ & {r['upper']} & "
                  f"{'yes' if r['exact'] else 'no'} \\\\")
        print("\\end{tabular}")
        if out["formula"]:
            print(f"$$\\operatorname{{rank}} J = {out['formula_latex']}, \\qquad \\lambda = \\tfrac12 \\operatorname{{rank}} J$$")
            print(f"% fitted on {len(out['fit_on'])} instances (conjectured for all sizes); misses: {out.get('fit_misses') or 'none'}")
            for h in out["held_out"]:
                print(f"% held out p={h['p']} K={h['K']}: exact {h['rank']}, formula {h['predicted']} -> "
                      f"{'agree' if h['match'] else 'DISAGREES'}")
    else:
        print(head)
        if out["skipped_p"]:
            print(f"  skipped p = {out['skipped_p']} (not prime; {args.task} needs a prime modulus)")
        print("   p    K     N'     d   rank  numerical  lambda   data cap  sym bound  proved  time")
        for r in out["instances"]:
            print(f"  {r['p']:>3} {r['K']:>4} {r['N']:>6} {r['d']:>5} {r['rank']:>6} {r['numerical_rank']:>10} "
                  f"{r['lambda']:>7} {r['data_cap']:>10} {r['symmetry_bound']:>10}  {'yes' if r['exact'] else 'no':6} "
                  f"{r['wall_s']:.2f}s")
        if out["formula"]:
            print(f"fitted on {len(out['fit_on'])} instances: rank = {out['formula']}  (lambda = rank/2; conjectured "
                  f"for all sizes){'; misses ' + str(out['fit_misses']) if out.get('fit_misses') else ''}")
            for h in out["held_out"]:
                print(f"  held out p={h['p']} K={h['K']}: exact {h['rank']}, formula {h['predicted']} -> "
                      f"{'agree' if h['match'] else 'DISAGREES'}")
    return 0 if out["held_out_ok"] in (None, True) else 1

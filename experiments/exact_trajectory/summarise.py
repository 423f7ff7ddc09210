"""Tables from the per-point records of points.py: exact lambda per (seed, checkpoint) and the basin order
(memorising = last checkpoint before the jump, test acc < 0.5; grokked = first after it, test acc >= 0.95).

    python experiments/exact_trajectory/summarise.py experiments/exact_trajectory/cpu_basins [...]
"""
from __future__ import annotations

import json
import math
import sys
from fractions import Fraction
from pathlib import Path


def _val(r: dict) -> str:
    if r.get("lam") is not None:
        return str(Fraction(str(r["lam"])))
    if r.get("lower") is not None:
        return f"[{Fraction(str(r['lower']))}, {Fraction(str(r['upper']))}]"
    return "no critical point"


def _num(x) -> float | None:
    return None if x is None else float(Fraction(str(x)))


def table(folder: Path) -> str:
    lines = []
    for pdir in sorted((folder / "points").iterdir()):
        cfg = json.loads((pdir / "config.json").read_text())
        recs = [json.loads(f.read_text()) for f in sorted(pdir.glob("seed*_step*.json"))]
        if not recs:
            continue
        lines.append(f"\n### p {cfg['p']}, width {cfg['width']}, {cfg['train_fraction']:.0%} of pairs, {cfg['optimizer']} "
                     f"lr {cfg['lr']:g} wd {cfg['weight_decay']:g}, {cfg['steps']} steps (run {pdir.name})\n")
        lines.append("| seed | checkpoint | step | train acc | test acc | lambda | rank | route / Gram | polish moved | seconds |")
        lines.append("|---|---|---|---|---|---|---|---|---|---|")
        for r in sorted(recs, key=lambda r: (r["seed"], r["step"])):
            pol = r["polish"]
            lines.append(f"| {r['seed']} | {r['kind']} | {r['step']} | {r['train_acc']:.3f} | {r['test_acc']:.3f} | {_val(r)} | "
                         f"{r.get('rank', '')} | {r.get('route', '') or ''} {r.get('gram', '') or ''} | "
                         f"{pol['rel_distance']:.2%} | {r.get('seconds_total', r.get('seconds', math.nan)):.0f} |")
        by_seed: dict = {}
        for r in recs:
            by_seed.setdefault(r["seed"], {})[r["kind"]] = r
        diffs = []
        for seed, d in sorted(by_seed.items()):
            m, g = d.get("pre_jump"), d.get("post_jump")
            if m and g and m.get("lam") is not None and g.get("lam") is not None:
                diffs.append((seed, _num(m["lam"]), _num(g["lam"])))
        if diffs:
            dl = [m - g for _, m, g in diffs]
            n = len(dl)
            mean = sum(dl) / n
            se = (sum((x - mean) ** 2 for x in dl) / (n - 1) / n) ** 0.5 if n > 1 else math.nan
            lines.append(f"\nBasin order (exact values at both checkpoints, {n} seeds): lambda(memorising) - "
                         f"lambda(grokked) = {', '.join(f'{x:g}' for x in dl)}; mean {mean:.1f} +- {se:.1f} (SE), "
                         f"{sum(x > 0 for x in dl)} of {n} strictly lower after grokking, {sum(x == 0 for x in dl)} equal, "
                         f"{sum(x < 0 for x in dl)} higher; largest relative fall "
                         f"{max((m - g) / m for _, m, g in diffs):.2%}.")
    return "\n".join(lines)


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(table(Path(arg)))

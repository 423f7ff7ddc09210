"""Tables and figures from the per-point records of points.py: exact lambda per (seed, checkpoint), the basin
order (memorising = last checkpoint before the jump, test acc < 0.5; grokked = first after it, test acc >= 0.95),
and one figure per seed (exact lambda, or its bounds, and test accuracy against step; the one-hot data cap
((p-1)N' + K)/2 drawn in) written beside the points as exact_seed<S>.png.

    python experiments/exact_trajectory/summarise.py experiments/exact_trajectory/cpu_basins [...]

For the paper's setting the figure also shows the checkpoints of the earlier 20,000-step run of the same config
(cpu_paper/exact_points.json: steps 6,666 and 13,332; the training trajectory is the same up to 15,000 steps).
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


def _extra_points(folder: Path) -> list[dict]:
    f = folder / "exact_points.json"
    if not f.exists():
        return []
    d = json.loads(f.read_text())
    return [{"seed": s, "step": row["step"], "test_acc": row["test_acc"][s], **rec}
            for row in d["rows"] for s, rec in enumerate(row["seeds"])]


def figures(folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from slt.runio import atomic_write

    out = []
    for pdir in sorted((folder / "points").iterdir()):
        cfg = json.loads((pdir / "config.json").read_text())
        recs = [json.loads(f.read_text()) for f in sorted(pdir.glob("seed*_step*.json"))] + _extra_points(folder)
        metrics_f = folder / "runs" / pdir.name / "metrics.json"
        metrics = json.loads(metrics_f.read_text())["metrics"] if metrics_f.exists() else None
        for seed in sorted({r["seed"] for r in recs}):
            rs = sorted((r for r in recs if r["seed"] == seed), key=lambda r: r["step"])
            s_idx = cfg["seeds"].index(seed)
            caps = {r["rows"] // cfg["p"] for r in rs if r.get("rows")}
            fig, ax = plt.subplots(figsize=(6.4, 3.8))
            for r in rs:
                if r.get("lam") is not None:
                    ax.plot(r["step"], _num(r["lam"]), "o", color="C0")
                elif r.get("lower") is not None:
                    lo = _num(r["lower"])
                    ax.errorbar(r["step"], lo, yerr=[[0], [0.02 * lo]], fmt="v", color="C1", capsize=3)
                else:
                    ax.plot(r["step"], 0, "x", color="C3")
            for n_rows in caps:
                cap = ((cfg["p"] - 1) * n_rows + min(cfg["width"], n_rows)) / 2
                ax.axhline(cap, color="grey", ls="--", lw=0.8, label=f"one-hot data cap {cap:g}")
            ax.set_xlabel("step")
            ax.set_ylabel("exact lambda (o); lower bound (v)")
            vals = [_num(r.get("lam") or r.get("lower")) for r in rs if (r.get("lam") or r.get("lower")) is not None]
            if vals:
                ax.set_ylim(min(vals) * 0.97, max(vals) * 1.02)
            ax2 = ax.twinx()
            if metrics is not None:
                ax2.plot(metrics["step"], [row[s_idx] for row in metrics["test_acc"]], color="C2", lw=0.8)
            ax2.plot([r["step"] for r in rs], [r["test_acc"] for r in rs], "s", color="C2", ms=3)
            ax2.set_ylabel("test accuracy", color="C2")
            ax2.set_ylim(0, 1.02)
            ax.legend(loc="lower left", fontsize=8)
            ax.set_title(f"p {cfg['p']}, width {cfg['width']}, lr {cfg['lr']:g}, wd {cfg['weight_decay']:g}: seed {seed}",
                         fontsize=9)
            fig.tight_layout()
            path = folder / f"exact_{pdir.name}_seed{seed}.png"
            atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
            plt.close(fig)
            out.append(path)
    return out


if __name__ == "__main__":
    for arg in sys.argv[1:]:
        print(table(Path(arg)))
        for f in figures(Path(arg)):
            print("figure:", f)

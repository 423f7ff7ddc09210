"""Summarise experiments/scale_demo/results.json (written by run.py) into RESULTS.md and grid_heatmap.png.

    python experiments/scale_demo/summarise.py [--results results.json] [--out-md RESULTS.md] \
        [--out-png grid_heatmap.png]

Computed: the wall-clock table (part x workers, speed-up of 2 workers over 1), whether 1 and 2 workers gave the
same per-seed numbers, the 100-seed statistics (grokked, "late" by experiments/grokking_sweep/RESULTS.md's
criterion, median and interquartile range of the memorisation and grokking steps), the seed-split check, and
the lr x wd grid of median grokking step and fraction grokked (table and heat map). The scientific numbers are
taken from the 2-worker measurement when there is one.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent


def scientific(part: dict) -> dict:
    """The entry whose numbers are reported: 2 workers if measured, else the first one recorded."""
    return part.get("2") or next(iter(part.values()))


def seeds_of(entry: dict) -> list[dict]:
    """Every per-seed row of every task of one measurement, in task order."""
    return [r for t in entry["tasks"] for r in t["per_seed"]]


def quartiles(xs: list[float]) -> tuple[float, float, float] | None:
    """(25th, 50th, 75th percentile) with linear interpolation (statistics 'inclusive'); None if empty."""
    if not xs:
        return None
    if len(xs) == 1:
        return xs[0], xs[0], xs[0]
    q1, q2, q3 = statistics.quantiles(xs, n=4, method="inclusive")
    return q1, q2, q3


def _fmt_q(q: tuple | None) -> str:
    return "-" if q is None else f"{q[1]:,.0f} (IQR {q[0]:,.0f}-{q[2]:,.0f})"


def same_numbers(part: dict) -> bool | None:
    """Do all measurements of a part give identical per-seed memorisation / grokking steps? None if < 2."""
    if len(part) < 2:
        return None
    key = [[(r["seed"], r["memorisation_step"], r["grokking_step"]) for r in seeds_of(e)] for e in part.values()]
    return all(k == key[0] for k in key)


def fresh_runs(entry: dict) -> list[dict]:
    """Timings of every measurement of this (part, workers) that started from an empty folder, oldest first."""
    return [t for t in entry.get("earlier", []) + [entry] if t["n_reused"] == 0]


def wallclock_rows(res: dict) -> list[list[str]]:
    """One row per (part, workers): wall s of each fresh run (oldest first) and their median, tasks, summed
    task training s of the latest run, 1-minute load average before -> after each run, and the speed-up (ratio
    of median wall-clocks) over 1 worker."""
    rows = []
    for part in ("hundred", "grid"):
        one = [t["wall_s"] for t in fresh_runs(res[part]["1"])] if "1" in res.get(part, {}) else []
        for key, e in sorted(res.get(part, {}).items()):
            walls = [t["wall_s"] for t in fresh_runs(e)]
            med = statistics.median(walls) if walls else None
            speed = f"{statistics.median(one) / med:.2f}x" if one and med and key != "1" else "-"
            loads = ", ".join(f"{t['loadavg_before'][0]:.1f}->{t['loadavg_after'][0]:.1f}" for t in fresh_runs(e))
            rows.append([part, str(e["workers"] or e["scheduler"]), ", ".join(f"{w:.1f}" for w in walls) or "-",
                         "-" if med is None else f"{med:.1f}", f"{e['n_tasks']}", f"{e['task_wall_s_sum']:.1f}",
                         loads, speed])
    return rows


def hundred_stats(entry: dict) -> dict:
    """Counts and quartiles over the seeds of the hundred part."""
    rows = seeds_of(entry)
    mem = [r["memorisation_step"] for r in rows if r["memorisation_step"] is not None]
    grok = [r["grokking_step"] for r in rows if r["grokking_step"] is not None]
    return {"n_seeds": len(rows), "n_memorised": len(mem), "n_grokked": len(grok),
            "n_late": sum(r["late"] for r in rows), "memorisation": quartiles(mem), "grokking": quartiles(grok),
            "mem_range": (min(mem), max(mem)) if mem else None, "grok_range": (min(grok), max(grok)) if grok else None,
            "steps_run_max": max(t["steps_done"] for t in entry["tasks"])}


def grid_cells(entry: dict) -> dict[tuple[float, float], dict]:
    """(lr, wd) -> n seeds, n grokked, n late, median grokking step over the seeds that grokked (None if none),
    steps run."""
    out = {}
    for t in entry["tasks"]:
        g = [r["grokking_step"] for r in t["per_seed"] if r["grokking_step"] is not None]
        out[(t["lr"], t["weight_decay"])] = {
            "n": len(t["per_seed"]), "n_grokked": len(g), "n_late": sum(r["late"] for r in t["per_seed"]),
            "n_memorised": sum(r["memorisation_step"] is not None for r in t["per_seed"]),
            "final_train_acc_median": statistics.median(r["final_train_acc"] for r in t["per_seed"]),
            "median_grok": statistics.median(g) if g else None, "steps_done": t["steps_done"],
            "final_test_acc_median": statistics.median(r["final_test_acc"] for r in t["per_seed"])}
    return out


def _axes(cells: dict) -> tuple[list[float], list[float]]:
    return sorted({lr for lr, _ in cells}), sorted({wd for _, wd in cells})


def grid_table(entry: dict) -> str:
    """Markdown: rows lr, columns wd; cell 'median grokking step (grokked/seeds, late)', or where no seed grokked
    '- (memorised/seeds; median final train / test accuracy)'."""
    cells = grid_cells(entry)
    lrs, wds = _axes(cells)
    lines = ["| lr \\ wd | " + " | ".join(f"{wd:g}" for wd in wds) + " |", "|---" * (len(wds) + 1) + "|"]
    for lr in lrs:
        row = []
        for wd in wds:
            c = cells.get((lr, wd))
            if c is None:
                row.append("")
                continue
            if c["median_grok"] is None:
                row.append(f"- (mem {c['n_memorised']}/{c['n']}; acc {c['final_train_acc_median']:.2f} / "
                           f"{c['final_test_acc_median']:.2f})")
            else:
                row.append(f"{c['median_grok']:,.0f} ({c['n_grokked']}/{c['n']}, late {c['n_late']})")
        lines.append(f"| {lr:g} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def heatmap(entry: dict, path: Path) -> None:
    """PNG heat map of log10 median grokking step over lr x wd; cells where no seed grokked are grey, and each
    cell is annotated with its median step and the fraction of seeds that grokked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cells = grid_cells(entry)
    lrs, wds = _axes(cells)
    z = np.full((len(lrs), len(wds)), np.nan)
    for (lr, wd), c in cells.items():
        if c["median_grok"] is not None:
            z[lrs.index(lr), wds.index(wd)] = math.log10(c["median_grok"])
    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    cmap = plt.get_cmap("viridis").with_extremes(bad="0.8")
    im = ax.imshow(np.ma.masked_invalid(z), origin="lower", cmap=cmap, aspect="auto")
    for (lr, wd), c in cells.items():
        i, j = lrs.index(lr), wds.index(wd)
        txt = ("none" if c["median_grok"] is None else f"{c['median_grok']:,.0f}") + f"\n{c['n_grokked']}/{c['n']}"
        dark = c["median_grok"] is not None and z[i, j] < np.nanmean(z)  # viridis is dark at the low end
        ax.text(j, i, txt, ha="center", va="center", fontsize=8, color="w" if dark else "k")
    ax.set_xticks(range(len(wds)), [f"{w:g}" for w in wds])
    ax.set_yticks(range(len(lrs)), [f"{lr:g}" for lr in lrs])
    ax.set_xlabel("weight decay (Adam, coupled L2)")
    ax.set_ylabel("learning rate")
    cfg = entry["config"]
    ax.set_title(f"median grokking step (test acc >= {cfg['grok_threshold']}), p {cfg['p']}, width {cfg['width']}\n"
                 f"grey: no seed grokked within {max(c['steps_done'] for c in cells.values()):,} steps")
    fig.colorbar(im, ax=ax, label="log10 median grokking step")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def render(res: dict, png_name: str = "grid_heatmap.png") -> str:
    """The whole RESULTS.md text."""
    out = ["# Scale demonstration through Dask (issue 15, item 6)", "",
           "Generated by `summarise.py` from `results.json` (written by `run.py`); every number below is measured.", ""]
    any_entry = next((scientific(res[p]) for p in ("hundred", "grid") if res.get(p)), None)
    if any_entry is not None:
        c = any_entry["config"]
        out += [f"**Reduced size** (this 2-core machine): the grokking preset's task ({c['op']} mod {c['p']}, train "
                f"fraction {c['train_fraction']}, Adam with coupled L2, batch {c['batch_size']}, centred MSE) at "
                f"**width {c['width']}** (the paper: 1,024), evaluated every {c['eval_every']} steps, each task "
                "stopped once all its seeds have test accuracy >= "
                f"{c['grok_threshold']}. Paper size on a cluster (width 1,024, lr 1e-4, wd 1e-5, ~15,000 steps):", "",
                "    python experiments/scale_demo/run.py hundred --width 1024 --lr 1e-4 --wd 1e-5 --steps 20000 \\",
                "        --scheduler tcp://SCHEDULER:8786 --fresh", ""]
    out += ["## Wall-clock", "",
            "Around `train_sweep` (embedded LocalCluster start and shutdown included), each run from an empty run folder; "
            "workers are 1-thread processes. 'task s': training time summed over tasks (inside the workers). Load "
            "average: the machine's 1-minute load before -> after (shared with other jobs; "
            f"{(any_entry or {}).get('cpu_count', '?')} cores).", "",
            "| part | workers | wall s, each run | median wall s | tasks | task s (last run) | load avg, each run "
            "| speed-up vs 1 worker (medians) |", "|---|---|---|---|---|---|---|---|"]
    out += ["| " + " | ".join(r) + " |" for r in wallclock_rows(res)]
    out += ["", "Other jobs share the 2 cores, so repeated runs of one measurement differ (compare 'wall s, each run' "
            "with the load averages): read the speed-up as that of this shared machine, not of 2 idle cores."]
    for part in ("hundred", "grid"):
        same = same_numbers(res.get(part, {}))
        if same is not None:
            out.append(f"\n{part}: per-seed memorisation and grokking steps identical on 1 and 2 workers: "
                       f"**{'yes' if same else 'NO'}**.")
    if res.get("hundred"):
        e = scientific(res["hundred"])
        h = hundred_stats(e)
        c = e["config"]
        out += ["", f"## The 100-seed experiment ({len(e['tasks'])} tasks of "
                    f"{len(e['tasks'][0]['seeds'])} seeds, {e['workers'] or e['scheduler']} workers)", "",
                f"p {c['p']}, width {c['width']}, lr {e['tasks'][0]['lr']:g}, wd {e['tasks'][0]['weight_decay']:g}, "
                f"budget {c['steps']:,} steps (the last task stopped at {h['steps_run_max']:,}).", "",
                "| seeds | memorised | grokked | late (test < 0.5 up to >= 5x memorisation) | memorisation step, "
                "median (IQR) [range] | grokking step, median (IQR) [range] |", "|---|---|---|---|---|---|",
                f"| {h['n_seeds']} | {h['n_memorised']} | {h['n_grokked']} | {h['n_late']} | "
                f"{_fmt_q(h['memorisation'])} {list(h['mem_range']) if h['mem_range'] else ''} | "
                f"{_fmt_q(h['grokking'])} {list(h['grok_range']) if h['grok_range'] else ''} |"]
    if res.get("split"):
        chk = res["split"]["check"]
        s, ref = chk["comparison"], res["hundred"][chk["compared_with"]]
        splits = ", ".join(str(t["seeds"]) for t in chk["tasks"])
        out += ["", "## Are seeds independent of how they are split into tasks?", "",
                f"The same config with seeds split as {splits} (serial) against the same seeds in the hundred part "
                f"(tasks of {len(ref['tasks'][0]['seeds'])}, {ref['workers'] or ref['scheduler']} workers): "
                f"{s['seeds_compared']} seeds compared; memorisation and grokking steps all equal: "
                f"**{'yes' if s['all_steps_equal'] else 'NO'}**; largest |difference| over the common evaluated "
                f"steps: test accuracy {s['max_abs_diff_test_acc']:.3g}, "
                f"train loss {s['max_abs_diff_train_loss']:.3g}."]
    if res.get("grid"):
        e = scientific(res["grid"])
        cells = grid_cells(e)
        n_cells_grok = sum(c["n_grokked"] > 0 for c in cells.values())
        out += ["", f"## lr x wd grid ({len(cells)} cells x {len(e['tasks'][0]['per_seed'])} seeds, "
                    f"{e['workers'] or e['scheduler']} workers)", "",
                f"Cell: median grokking step over the seeds that grokked (grokked/seeds, late count); '-': none "
                f"within {e['config']['steps']:,} steps (then: seeds that memorised, median final train / test "
                f"accuracy; chance is 1/p). {n_cells_grok} of {len(cells)} cells have a seed that "
                f"grokked. Heat map: `{png_name}`.", "", grid_table(e)]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> None:
    from slt.runio import atomic_write_text

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--results", type=Path, default=HERE / "results.json")
    ap.add_argument("--out-md", type=Path, default=HERE / "RESULTS.md")
    ap.add_argument("--out-png", type=Path, default=HERE / "grid_heatmap.png")
    a = ap.parse_args(argv)
    res = json.loads(a.results.read_text())
    if res.get("grid"):
        heatmap(scientific(res["grid"]), a.out_png)
    atomic_write_text(a.out_md, render(res, a.out_png.name))
    print(f"wrote {a.out_md}" + (f" and {a.out_png}" if res.get("grid") else ""))


if __name__ == "__main__":
    main()

"""Training-curve figure: train and test accuracy against step (log axis), the two step figures marked."""
from __future__ import annotations

from pathlib import Path

from slt.training.checkpoints import atomic_write


def plot_curves(metrics: dict[str, list], seeds: list[int], memorisation_step: list[int | None],
                grokking_step: list[int | None], path: str | Path, title: str = "") -> None:
    """Write a PNG: one faint line per seed for train (blue) and test (orange) accuracy against step
    (log x axis, step 0 omitted), dashed verticals at memorisation steps, dotted at grokking steps."""
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    steps = metrics["step"]
    keep = [i for i, s in enumerate(steps) if s > 0]
    x = [steps[i] for i in keep]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    alpha = 0.9 if len(seeds) == 1 else max(0.25, 0.9 / len(seeds) ** 0.5)
    for c, seed in enumerate(seeds):
        ax.plot(x, [metrics["train_acc"][i][c] for i in keep], color="tab:blue", alpha=alpha, lw=1.2,
                label="train" if c == 0 else None)
        ax.plot(x, [metrics["test_acc"][i][c] for i in keep], color="tab:orange", alpha=alpha, lw=1.2,
                label="test" if c == 0 else None)
        if memorisation_step[c]:
            ax.axvline(memorisation_step[c], color="tab:blue", ls="--", lw=0.8, alpha=alpha,
                       label="memorisation step" if c == 0 else None)
        if grokking_step[c]:
            ax.axvline(grokking_step[c], color="tab:orange", ls=":", lw=1.0, alpha=alpha,
                       label="grokking step" if c == 0 else None)
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("step")
    ax.set_ylabel("accuracy")
    ax.set_title(title or f"{len(seeds)} seed(s)", fontsize=10)
    ax.legend(loc="center left", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)

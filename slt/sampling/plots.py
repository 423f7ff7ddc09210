"""Plots for LLC estimates: the SGLD trace (trace.png) and the calibration sweep."""
from __future__ import annotations


import numpy as np


def _figure(*args, **kwargs):
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt.subplots(*args, **kwargs)


def _save(fig, path) -> None:
    """Atomic write with the user's umask (slt.runio.atomic_write: temp file, chmod, os.replace)."""
    from slt.runio import atomic_write

    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))


def plot_trace(result, path=None, title: str | None = None):
    """Per-chain n_beta (L_t - L(w*)) over the draws with running means, and the per-chain estimates.

    A healthy run: chains overlap, running means flatten at the same level, no drift. -> Figure.
    """
    import matplotlib.pyplot as plt

    trace = result.n_beta * (np.asarray(result.loss_trace) - result.init_loss)  # (chains, draws)
    fig, (ax, ax2) = _figure(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [3, 1]})
    t = np.arange(trace.shape[1])
    for c in range(trace.shape[0]):
        (line,) = ax.plot(t, trace[c], lw=0.4, alpha=0.35)
        ax.plot(t, np.cumsum(trace[c]) / (t + 1), lw=1.3, color=line.get_color())
    ax.axhline(result.llc, color="k", ls="--", lw=1, label=f"LLC = {result.llc:.4g} ± {result.llc_se:.2g}")
    ax.set_xlabel("draw (after burn-in)")
    ax.set_ylabel(r"$n\beta\,(L(w_t) - L(w^*))$")
    ax.legend(loc="upper right", fontsize=8)
    d = result.diagnostics
    ax.set_title(title or f"SGLD trace: eps={result.eps:.3g}, gamma={result.gamma:g}, n_beta={result.n_beta:.4g}, "
                 f"R-hat={d.rhat:.3f}, MALA acc={d.mala_acceptance:.2f}", fontsize=9)
    per = np.asarray(result.llc_per_chain)
    ax2.errorbar(np.arange(per.size), per, fmt="o", ms=3)
    ax2.axhline(result.llc, color="k", ls="--", lw=1)
    ax2.set_xlabel("chain")
    ax2.set_ylabel("per-chain LLC")
    fig.tight_layout()
    if path is not None:
        _save(fig, path)
        plt.close(fig)
    return fig


def plot_calibration(cal, path=None):
    """LLC +- SE against eps for each gamma (rejected settings hollow), the eps -> 0 line, and the MALA
    acceptance on a second axis. -> Figure."""
    import matplotlib.pyplot as plt

    fig, ax = _figure(figsize=(7, 4.5))
    acc_ax = ax.twinx()
    for g in sorted({r.gamma for r in cal.rows}):
        rows = [r for r in cal.rows if r.gamma == g and not r.diverged]
        if not rows:
            continue
        e = np.array([r.eps for r in rows])
        y = np.array([r.llc for r in rows])
        s = np.array([r.llc_se for r in rows])
        ok = np.array([r.ok for r in rows])
        eb = ax.errorbar(e[ok], y[ok], s[ok], fmt="o", label=f"gamma={g:g}")
        ax.errorbar(e[~ok], y[~ok], s[~ok], fmt="o", mfc="none", color=eb[0].get_color())
        acc_ax.plot(e, [r.mala_acceptance for r in rows], "x:", color=eb[0].get_color(), alpha=0.6)
    x = cal.extrapolation
    if x is not None:
        grid = np.linspace(0, max(x.eps), 50)
        ax.plot(grid, x.llc0 + x.slope * grid, "k--", lw=1, label=f"eps->0: {x.llc0:.4g} ± {x.llc0_se:.2g}")
        ax.errorbar([0], [x.llc0], [x.llc0_se], fmt="ks")
    if cal.chosen is not None:
        ax.axvline(cal.chosen.eps, color="grey", lw=0.8, ls=":")
    ax.set_xscale("symlog", linthresh=min(r.eps for r in cal.rows))
    ax.set_xlim(left=0)
    ax.set_xlabel("eps (step size)")
    ax.set_ylabel("LLC estimate")
    acc_ax.set_ylabel("MALA acceptance (x)")
    acc_ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(f"SGLD calibration (n_beta={cal.n_beta:.4g}); hollow = rejected", fontsize=9)
    fig.tight_layout()
    if path is not None:
        _save(fig, path)
        plt.close(fig)
    return fig

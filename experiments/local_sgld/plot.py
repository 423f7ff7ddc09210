"""Figure: SGLD vs the quadratic-approximation prediction on the (gamma x n_beta) grid -> grid.png"""
import json, sys
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from slt.sampling.quadratic_approx import soft_count_terms

files = sys.argv[1:] or ["grid_w128s10000_dense.json", "grid_w256s10000_lanczos.json"]
fig, axes = plt.subplots(1, len(files), figsize=(6 * len(files), 4.8), squeeze=False)
for ax, f in zip(axes[0], files):
    G = json.load(open(f))
    name = G["net"]["name"]
    rows = G["rows"]
    gammas = sorted({r["gamma"] for r in rows})
    try:
        h = np.load(f"nets/{name}.eig.npy")
    except FileNotFoundError:
        h = None
    nbs = np.logspace(2, 8, 100)
    for i, g in enumerate(gammas):
        c = f"C{i}"
        rs = [r for r in rows if r["gamma"] == g]
        x = [r["n_beta"] for r in rs]
        if h is not None:
            ax.plot(nbs, [soft_count_terms(h, nb, g).sum() for nb in nbs], c=c, lw=1, label=f"eq. (1) soft count, gamma={g:g}")
        else:
            ax.plot(x, [r["pred_stationary"] for r in rs], c=c, lw=1, label=f"eq. (1) soft count, gamma={g:g}")
        ax.plot(x, [r["pred_run"] for r in rs], "o", mfc="none", c=c, ms=9, label="eq. (2) this finite run" if i == 0 else None)
        ax.errorbar(x, [r["sgld"] for r in rs], [3 * r["sgld_se"] for r in rs], fmt="x", c=c, ms=7,
                    label="SGLD (+-3 SE)" if i == 0 else None)
        for r in rs:
            ax.annotate(f"{r['reach']:.2g}", (r["n_beta"], r["sgld"]), textcoords="offset points", xytext=(6, -10),
                        fontsize=7, color=c)
    import os
    ex = json.load(open(f"nets/{name}.exact.json")) if os.path.exists(f"nets/{name}.exact.json") else None
    if ex is not None and ex["reliable"]:
        ax.axhline(ex["lower"], c="k", ls="--", lw=0.8, label=f"rank(J)/2 = {ex['lower']:g} (exact_llc; lambda >= this)")
    elif h is not None:
        pos = h[h > 1e-12 * h[0]]
        lam = (int(np.argmax(np.log(pos[:-1]) - np.log(pos[1:]))) + 1) / 2
        ax.axhline(lam, c="k", ls="--", lw=0.8, label=f"rank(H)/2 at this point = {lam:g} (spectral gap)")
    ax.set(xscale="log", yscale="log", xlabel="n_beta", ylabel="LLC estimate",
           title=f"p=23 width {G['net']['width']} polished (spectrum: {G['spectrum']}); numbers: reach")
    ax.legend(fontsize=7)
fig.tight_layout()
fig.savefig("grid.png", dpi=120)
print("wrote grid.png")

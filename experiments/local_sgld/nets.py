"""Trained + polished nets for the local-SGLD experiments (p = 23, widths 64 and 256).

Train with the grokking preset (Adam, centred MSE), then polish in float64 with L-BFGS on the full training
loss (1/2N)|(F - Y)P|^2 (no weight decay) until the gradient norm is tiny: the point SGLD is localised at
must be a critical point of the loss it samples (Furman & Lau, arXiv 2402.03698). A short local polish is
used until slt.theory.polish (issue 11) lands. -> nets/<name>.pt with U, V, A (float64), a, b, y, meta.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch

torch.set_num_threads(1)
from slt.losses import centred_mse
from slt.models.quadratic import quadratic_forward
from slt.training import default_config, train

HERE = Path(__file__).parent
OUT = HERE / "nets"


def polish_lbfgs(U, V, A, a, b, y, iters=3000, tol=1e-11):
    """float64 L-BFGS on centred_mse (strong Wolfe line search); -> (U, V, A, info)."""
    w = [t.detach().double().clone().requires_grad_(True) for t in (U, V, A)]
    opt = torch.optim.LBFGS(w, lr=1.0, max_iter=iters, history_size=50, tolerance_grad=tol,
                            tolerance_change=0.0, line_search_fn="strong_wolfe")

    def loss():
        return centred_mse(quadratic_forward(w[0][None], w[1][None], w[2][None], a, b), y)[0]

    def closure():
        opt.zero_grad()
        L = loss()
        L.backward()
        return L

    with torch.no_grad():
        l0 = float(loss())
    g0 = torch.cat([g.flatten() for g in torch.autograd.grad(loss(), w)]).norm().item()
    for _ in range(5):
        opt.step(closure)
    g1 = torch.cat([g.flatten() for g in torch.autograd.grad(loss(), w)]).norm().item()
    with torch.no_grad():
        l1 = float(loss())
        w0 = torch.cat([t.double().flatten() for t in (U, V, A)])
        w1 = torch.cat([t.flatten() for t in w])
        rel = float((w1 - w0).norm() / w0.norm())
    return tuple(t.detach() for t in w), dict(loss_before=l0, loss_after=l1, grad_before=g0, grad_after=g1,
                                              rel_distance=rel)


def make(name: str, width: int, steps: int, seed: int = 0, checkpoints=()):
    OUT.mkdir(exist_ok=True)
    cfg = default_config("grokking").replace(p=23, width=width, seeds=(seed,), steps=steps)
    t0 = time.time()
    res = train(cfg, out_dir=str(OUT / f"run_{name}"))
    a, b, y = res.data.train()
    net = res.model
    (U, V, A), info = polish_lbfgs(net.U[0], net.V[0], net.A[0], a, b, y)
    meta = dict(name=name, p=23, width=width, steps=steps, seed=seed, n=int(a.shape[0]),
                train_acc=res.curve("train_acc")[-1], test_acc=res.curve("test_acc")[-1],
                memorised=res.memorisation_step, grokked=res.grokking_step, train_s=res.wall_time_s,
                total_s=time.time() - t0, **info)
    torch.save(dict(U=U, V=V, A=A, a=a, b=b, y=y, meta=meta), OUT / f"{name}.pt")
    print(json.dumps(meta))
    return meta


if __name__ == "__main__":
    which = sys.argv[1:] or ["w128s10000", "w256s10000"]  # name: w<width>s<steps>
    for nm in which:
        make(nm, width=int(nm[1:].split("s")[0]), steps=int(nm.split("s")[1]) if "s" in nm else 3000)

"""Benchmark: slt.estimate_llc against devinterp 1.3.2's estimate_learning_coeff_with_summary.

Both run in ONE process on the same model, data and SGLD settings (eps, gamma, n_beta, chains, draws,
burn-in, batch size); printed: chain-steps per second (chains x (burn-in + draws) / wall time of the
whole estimate call), the ratio, and both estimates. For the paper's setting it also measures this
machine's matmul FLOP/s, randn throughput and memory bandwidth and states the roofline bound.

devinterp is NEVER a dependency of slt. Install it in its own virtual environment that reuses an
already installed CPU torch (so pip does not pull a CUDA build), e.g.:

    # from the repository root, the project's venv in .venv:
    python -m venv ../devinterp-venv
    # let the new venv see the project's torch 2.13 (CPU) instead of downloading one:
    echo "$PWD/.venv/lib/python3.11/site-packages" \\
        > ../devinterp-venv/lib/python3.11/site-packages/project_torch.pth
    ../devinterp-venv/bin/pip install devinterp==1.3.2      # from PyPI; sees torch>=2.0.1 as satisfied
    OMP_NUM_THREADS=2 ../devinterp-venv/bin/python benchmarks/bench_llc.py [--quick] [--regime NAME]

(The .pth line appends the project's site-packages after the venv's own, so devinterp's dependencies
install into the separate venv and the project venv is left untouched; do not commit the venv.)
Without devinterp importable the script times slt alone and says so.

Timings depend on the machine and its load: the development machine has 2 cores shared with other
jobs, so absolute numbers there are measured under contention; the ratio is what to compare (both
sides run back to back in the same process).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings

import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from slt.losses import centred_mse, mse  # noqa: E402
from slt.models import QuadraticNet  # noqa: E402
from slt.sampling import LLCWarning, estimate_llc  # noqa: E402
from slt.tasks import make_data  # noqa: E402

try:
    from devinterp.slt.sampler import estimate_learning_coeff_with_summary
    from devinterp.optim.sgld import SGLD
    import devinterp

    HAVE_DEVINTERP = True
    DEVINTERP_VERSION = getattr(devinterp, "__version__", "1.3.2?")
except ImportError:
    HAVE_DEVINTERP = False
    DEVINTERP_VERSION = None


class QuadSingle(nn.Module):
    """One copy of the quadratic network as a plain module (input x = (N, 2) index pairs) for devinterp."""

    def __init__(self, net: QuadraticNet):
        super().__init__()
        self.U, self.V, self.A = (nn.Parameter(getattr(net, k).detach()[0].clone()) for k in "UVA")

    def forward(self, x):
        h = self.U[x[:, 0]] + self.V[x[:, 1]]
        return (h * h) @ self.A


def rrr_setup(n: int = 1024, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 3, bias=False), nn.Linear(3, 5, bias=False))
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    x = torch.randn(n, 5, generator=g)
    with torch.no_grad():
        y = model(x) + 0.1 * torch.randn(n, 5, generator=g)
    loss = lambda out, t: 0.5 * ((out - t) ** 2).sum(-1).mean()  # noqa: E731
    return dict(ours=(model, loss, (x, y)), theirs=(model, loss, x, y))


def quad_setup(p: int, width: int, frac: float, loss_name: str, seed: int = 0):
    net = QuadraticNet(p, width, generator=torch.Generator().manual_seed(seed))
    data = make_data(p, "add", frac, seed)
    a, b, y = data.train()
    lf = {"mse": mse, "centred_mse": centred_mse}[loss_name]
    single = QuadSingle(net)
    theirs_loss = lambda out, t: lf(out[None], t)[0]  # noqa: E731
    return dict(ours=(net, lf, (a, b, y)), theirs=(single, theirs_loss, torch.stack([a, b], 1), y))


def run_ours(setup, *, eps, gamma, n_beta, chains, draws, burnin, batch):
    model, loss, data = setup["ours"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", LLCWarning)
        t0 = time.perf_counter()
        res = estimate_llc(model, loss, data, eps=eps, gamma=gamma, n_beta=n_beta, num_chains=chains,
                           num_draws=draws, num_burnin=burnin, batch_size=batch, seed=0)
        dt = time.perf_counter() - t0
    return res.llc, res.llc_se, dt


def run_devinterp(setup, *, eps, gamma, n_beta, chains, draws, burnin, batch):
    model, loss, x, y = setup["theirs"]
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=batch or len(y),
                                         shuffle=True)
    evaluate = lambda m, data: loss(m(data[0]), data[1])  # noqa: E731
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        out = estimate_learning_coeff_with_summary(
            model, loader, evaluate=evaluate, sampling_method=SGLD,
            optimizer_kwargs=dict(lr=eps, localization=gamma, nbeta=n_beta),
            num_chains=chains, num_draws=draws, num_burnin_steps=burnin, num_steps_bw_draws=1,
            seed=0, device="cpu", verbose=False, online=False,
        )
        dt = time.perf_counter() - t0
    return out["llc/mean"], out["llc/std"] / math.sqrt(chains), dt


def compare(name, setup, **kw):
    steps = kw["chains"] * (kw["draws"] + kw["burnin"])
    llc, se, dt = run_ours(setup, **kw)
    ours = steps / dt
    line = f"{name:34s} chains={kw['chains']:3d}  slt: {ours:9.0f} chain-steps/s  LLC {llc:9.4g} ± {se:.2g}"
    if HAVE_DEVINTERP:
        llc2, se2, dt2 = run_devinterp(setup, **kw)
        theirs = steps / dt2
        line += f" | devinterp: {theirs:8.0f} chain-steps/s  LLC {llc2:9.4g} ± {se2:.2g} | ratio {ours / theirs:6.1f}x"
    print(line, flush=True)
    return ours


def roofline(p: int, width: int, batch: int, rows: int):
    """Measure matmul FLOP/s, randn samples/s and copy bandwidth here; bound chain-steps/s for the
    quadratic network: 3 matmuls of 2*b*m*p FLOPs (forward, two in backward), d = 3 p m Gaussian
    draws, and ~12 passes of d floats through memory (gather/scatter, drift, update, MALA dots)."""
    d = 3 * p * width
    x = torch.randn(rows * batch, width)
    w = torch.randn(width, p)
    for _ in range(3):
        x @ w
    t0 = time.perf_counter()
    reps = 20
    for _ in range(reps):
        x @ w
    flops = 2 * rows * batch * width * p * reps / (time.perf_counter() - t0)
    g = torch.Generator().manual_seed(0)
    buf = torch.empty(rows, d)
    buf.normal_(generator=g)
    t0 = time.perf_counter()
    for _ in range(5):
        buf.normal_(generator=g)
    randn = rows * d * 5 / (time.perf_counter() - t0)
    y = torch.empty_like(buf)
    t0 = time.perf_counter()
    for _ in range(10):
        torch.add(buf, buf, out=y)
    bw = 3 * 4 * rows * d * 10 / (time.perf_counter() - t0)  # bytes/s (2 reads + 1 write)
    t_flop = 3 * 2 * batch * width * p / flops
    t_randn = d / randn
    t_mem = 12 * 4 * d / bw
    bound = 1.0 / (t_flop + t_randn + t_mem)
    print(f"roofline (rows={rows}): matmul {flops / 1e9:.1f} GFLOP/s, randn {randn / 1e6:.0f} M/s, "
          f"bandwidth {bw / 1e9:.1f} GB/s -> per chain-step {t_flop * 1e6:.0f} us FLOPs + {t_randn * 1e6:.0f} us randn "
          f"+ {t_mem * 1e6:.0f} us memory = bound {bound:.0f} chain-steps/s")
    return bound


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
    ap.add_argument("--regime", choices=("small", "paper", "all"), default="all")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads for both libraries (default 1: on a shared machine more threads spin)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, devinterp "
          f"{DEVINTERP_VERSION if HAVE_DEVINTERP else 'NOT INSTALLED (slt timed alone)'}")
    q = 4 if args.quick else 1
    if args.regime in ("small", "all"):
        print("== small models, 64 chains (target >= 20x) ==")
        compare("RRR 5x3x5, n=1024, batch 128", rrr_setup(), eps=1e-4, gamma=100.0, n_beta=1024 / math.log(1024),
                chains=64, draws=200 // q, burnin=50 // q, batch=128)
        s = quad_setup(7, 3, 0.8, "mse")
        n = s["ours"][2][0].numel()
        compare(f"QuadNet p=7 K=3, n={n}, full batch", s, eps=1e-3, gamma=100.0, n_beta=n / math.log(n),
                chains=64, draws=200 // q, burnin=50 // q, batch=None)
    if args.regime in ("paper", "all"):
        print("== paper's setting: p=53, K=1024, 40% train, batch 128, centred MSE (target >= 3x) ==")
        s = quad_setup(53, 1024, 0.4, "centred_mse")
        n = s["ours"][2][0].numel()
        for chains in (3, 32):
            ours = compare(f"QuadNet p=53 K=1024, n={n}, batch 128", s, eps=5e-4, gamma=5.0,
                           n_beta=n / math.log(n), chains=chains, draws=60 // q, burnin=10 // q, batch=128)
            bound = roofline(53, 1024, 128, chains)
            print(f"   slt reaches {ours / bound:.0%} of the roofline bound at {chains} chains")
    return 0


if __name__ == "__main__":
    sys.exit(main())

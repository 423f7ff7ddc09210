"""Why the trained-network LLC estimates sit near the lazy count (p/2) min(K, N'): a check, not a derivation.

    python experiments/check/readout_count.py RUN_DIR [--sd 0 0.1 0.3 1] [--draws 3]

For the readout A alone (U, V held fixed) the centred loss is quadratic, with Hessian I_p (x) Phi^T P Phi / N,
Phi = (U[a] + V[b])^2 the N x K features and P the centring. Under the tempered, localised posterior its
contribution to the SGLD estimate is exactly
    lambda_A(U, V) = (p/2) sum_k n_beta mu_k / (n_beta mu_k + gamma),   mu_k the eigenvalues of Phi^T P Phi / N.
This script evaluates lambda_A at the checkpoint (sd = 0) and at the checkpoint with U, V displaced by
N(0, sd^2) per entry (mean over --draws draws), at n_beta = n/log n and gamma = 1, for the first and the last
checkpoint of the run's first seed. The localising Gaussian at gamma = 1 lets the soft embedding directions
move by up to ~1 per entry, while trained entries are ~0.1: if lambda_A at displaced points matches the SGLD
estimate while lambda_A at the checkpoint does not, the estimate is set by the neighbourhood, not by w*.
"""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import torch

from slt.training import list_checkpoints, load_checkpoint


def readout_count(U: torch.Tensor, V: torch.Tensor, a, b, p: int, n_beta: float, gamma: float) -> float:
    phi = (U[a] + V[b]) ** 2
    phi = phi - phi.mean(0, keepdim=True)
    mu = torch.linalg.eigvalsh(phi.T @ phi / a.numel()).clamp_min(0)
    return float(0.5 * p * (n_beta * mu / (n_beta * mu + gamma)).sum())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path)
    ap.add_argument("--sd", type=float, nargs="+", default=[0.0, 0.1, 0.3, 1.0])
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--gamma", type=float, default=1.0)
    args = ap.parse_args()
    cfg = json.loads((args.run / "config.json").read_text())
    p, K = cfg["p"], cfg["width"]
    gen = torch.Generator().manual_seed(0)
    saved = [s for s in list_checkpoints(args.run) if s > 0]
    for step in (saved[0], saved[-1]):
        cp = load_checkpoint(args.run, step)
        a, b, _ = cp.data.train()
        n = a.numel()
        n_beta = n / math.log(n)
        U = cp.model.U[0].detach().double()
        V = U if cp.model.V is None else cp.model.V[0].detach().double()
        row = []
        for sd in args.sd:
            vals = [readout_count(U + sd * torch.randn(U.shape, generator=gen, dtype=U.dtype),
                                  V + sd * torch.randn(V.shape, generator=gen, dtype=V.dtype), a, b, p, n_beta,
                                  args.gamma) for _ in range(args.draws if sd > 0 else 1)]
            row.append(sum(vals) / len(vals))
        print(f"p {p} K {K} step {step}: rms(U) {float(U.pow(2).mean().sqrt()):.3f}; readout count at sd "
              + ", ".join(f"{sd:g}: {v:,.0f}" for sd, v in zip(args.sd, row))
              + f"; lazy (p/2)min(K, N') = {p * min(K, n - 1) / 2:,.0f}")


if __name__ == "__main__":
    main()

"""Independent check of the quadratic network's per-unit count by volume scaling (no ranks, no SGLD):
tiny networks on all pairs, truth realised at a generic point w0, Vol{|F(w) - F(w0)|^2 < eps} near w0.

Untied p = 2, K = 1: 6 parameters, scaling + shift symmetries -> lambda = (3p - 2)/2 = 2 (the paper's
per-unit count would give (3p - 1)/2 = 5/2). Tied p = 2, K = 1: lambda = (2p - 1)/2 = 3/2.
Run: python derivations/volume_quadratic.py   or   slt derive volume_quadratic
"""
from __future__ import annotations

import sys

import numpy as np

from slt.tasks import all_pairs
from slt.theory.quadratic import quadratic_llc
from slt.theory.volume import volume_scaling

SE_TOL = 4.0  # |volume estimate - exact| <= 4 SE across replicates


def _K(p: int, a, b, tied: bool, w0: np.ndarray):
    def F(w):
        U = w[..., :p]
        V = U if tied else w[..., p:2 * p]
        A = w[..., p if tied else 2 * p:]
        s = U[..., a] + V[..., b]  # (..., N)
        return (s ** 2)[..., :, None] * A[..., None, :]  # (..., N, q)

    F0 = F(w0)
    return lambda w: ((F(w) - F0) ** 2).sum((-1, -2))


def main(latex: bool = False) -> int:
    ok = True
    p = 2
    a, b, _ = (t.numpy() for t in all_pairs(p))
    rng = np.random.default_rng(3)
    for tied in (False, True):
        d = 2 * p if tied else 3 * p
        w0 = rng.uniform(0.5, 1.5, size=d)
        est = volume_scaling(_K(p, a, b, tied, w0), d, center=w0, radius=0.2, levels=14, fit_levels=7,
                             n_mcmc=20, seed=4)
        n_inputs = 3 if tied else 4  # tied: distinct unordered pairs {0,0}, {0,1}, {1,1}
        lam = quadratic_llc(p, 1, n_inputs, tied=tied)
        good = abs(est.lam - float(lam)) <= SE_TOL * est.se
        print(f"  p = 2, K = 1, tied = {tied}: volume {est.lam:.3f} +- {est.se:.3f}; ours {lam}; "
              f"paper-style count {(3 * p - 1) / 2 if not tied else (2 * p) / 2} ; {'ok' if good else 'DISAGREES'}")
        ok &= good
    print("all checks passed" if ok else "CHECK FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main("--latex" in sys.argv))

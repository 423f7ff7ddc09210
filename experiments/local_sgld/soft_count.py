"""Why a local recipe reads low: the soft count of the Hessian spectrum at a polished trained checkpoint.

    python soft_count.py RUN_DIR STEP SEED_INDEX      (e.g. the p 23 run of `slt check`: OUT/runs/<hash>)

Polishes copy SEED_INDEX of checkpoint STEP as the exact claim does, forms its dense full-data Hessian (d <= 10,000)
and prints the number of eigenvalues per decade and, per (n_beta, gamma), eq. (1) of slt.sampling.quadratic_approx
(the estimator's stationary value under the quadratic approximation), the hard count and eq. (2) for plain SGLD
runs of the LOCAL recipe's length at step_scale 0.5.
"""
import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "2")
import numpy as np  # noqa: E402
import torch  # noqa: E402

from slt.checks import backend  # noqa: E402
from slt.checks.local_llc import _net_from_points  # noqa: E402
from slt.losses import get_loss  # noqa: E402
from slt.sampling.quadratic_approx import hessian_spectrum, predict_llc  # noqa: E402
from slt.theory.jacobian import point_from_net  # noqa: E402
from slt.theory.polish import polish  # noqa: E402

run, step, s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
_, (cp,) = backend.load_checkpoints(run, [step])
a, b, y = cp.data.train()
m = cp.model
centred = cp.config.loss == "centred_mse"
pol = polish(*point_from_net(m, s), *(t.cpu().numpy() for t in (a, b, y)), centred=centred, max_iter=20, newton_iter=0)
print(f"polish: critical {pol.critical}, {pol.kind}, moved {pol.rel_distance:.3f} of |w|")
net = _net_from_points([(pol.U, pol.V, pol.A)], m.config.p, m.config.width, m.tied, m.config.out_dim)
sp = hessian_spectrum(net, get_loss("centred_mse" if centred else "mse"), (a, b, y), dense_max_dim=10_000)
h = sp.top
print(f"d = {sp.dim}, top eigenvalue {h[0]:.4g}, dense spectrum in {sp.elapsed_s:.0f} s")
for e in range(0, -14, -1):
    k = int(((h < 10.0 ** e) & (h >= 10.0 ** (e - 1))).sum())
    if k:
        print(f"  eigenvalues in [1e{e - 1}, 1e{e}): {k}")
for nb, g in ((1e8, 1e4), (1e9, 1e4), (1e10, 1e4), (1e11, 1e4), (1e8, 1e3), (1e8, 1e2)):
    p1 = predict_llc(sp, nb, g)
    eps = 0.5 / (nb * h[0] + g)
    runs = ", ".join(f"{st}+{st}: {predict_llc(sp, nb, g, eps=eps, num_burnin=st, num_draws=st).llc:.1f}"
                     for st in (2000, 10_000, 40_000))
    print(f"n_beta {nb:.0e} gamma {g:.0e}: eq. (1) {p1.llc:.1f}, hard count {p1.hard_count:.1f}; eq. (2) plain SGLD "
          f"at step_scale 0.5: {runs}")

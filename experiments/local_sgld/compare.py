"""Local recipe at a polished trained net: plain vs preconditioned SGLD at large n_beta against the exact lambda.

For each (n_beta, gamma) and precondition in (None, "diagonal", "rmsprop", "lowrank"): C chains, automatic eps
(step_scale 0.5), the estimate, its SE, the reach rms(w - w*)/rms(w*), wall time; beside them the exact lambda
(rank of the Hessian spectrum at w*, = rank(J)/2 at an interpolating point; llc_at_point when it has finished)
and the quadratic-approximation soft count eq. (1) (what an ideal sampler of the quadratic law returns).
Usage: python compare.py NET -> compare_<NET>.json
"""
import json, os, sys, time
os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
import torch
torch.set_num_threads(1)
sys.path.insert(0, os.path.dirname(__file__))
from common import load
from slt.losses import centred_mse
from slt.sampling import estimate_llc
from slt.sampling.quadratic_approx import HessianSpectrum, predict_llc

name = sys.argv[1]
SETTINGS = [tuple(float(v) for v in s.split(":")) for s in os.environ.get("SETTINGS", "1e7:1e3,1e8:1e4").split(",")]
KINDS = [None if k == "none" else k for k in os.environ.get("KINDS", "none,diagonal,rmsprop,lowrank").split(",")]
C, BURN, DRAWS = int(os.environ.get("CHAINS", 4)), int(os.environ.get("BURN", 2000)), int(os.environ.get("DRAWS", 2000))
net, data, meta = load(name)
sp, rank = None, None
if os.path.exists(f"nets/{name}.eig.npy"):
    h = np.load(f"nets/{name}.eig.npy")
    sp = HessianSpectrum(h.size, h, np.zeros((0, 0)), np.zeros((0, 0)), "dense")
    pos = h[h > 1e-12 * h[0]]
    gap = int(np.argmax(np.log(pos[:-1]) - np.log(pos[1:])))
    rank = int(gap + 1)  # the largest multiplicative gap in the spectrum separates the range from the null space
    print(f"Hessian rank by spectral gap {rank} (h {pos[gap]:.3g} -> {pos[gap + 1]:.3g})", flush=True)
exact = json.load(open(f"nets/{name}.exact.json"))  # exact.py: slt.theory.exact_scale at the polished point
# lambda itself when exact_llc pins it, else its lower bound rank(J)/2 (the Morse-Bott value)
lam = exact["lam"] if exact["lam"] is not None else exact["lower"]
print(f"exact_llc: {exact}; compared with {lam}", flush=True)
rows = []
for nb, g in SETTINGS:
    pred = predict_llc(sp, nb, g).llc if sp is not None else float('nan')
    for kind in KINDS:
        t = time.time()
        r = estimate_llc(net, centred_mse, data, n_beta=nb, gamma=g, num_chains=C, num_burnin=BURN, num_draws=DRAWS,
                         step_scale=0.5, seed=1, precondition=kind)
        row = dict(n_beta=nb, gamma=g, precondition=kind or "none", llc=r.llc, se=r.llc_se, exact=lam,
                   rel_err=(r.llc - lam) / lam, z_exact=(r.llc - lam) / r.llc_se, soft_count=pred,
                   z_soft=(r.llc - pred) / r.llc_se, reach=r.extra["displacement_ratio"], eps=r.eps,
                   rhat=r.diagnostics.rhat, mala=r.diagnostics.mala_acceptance, seconds=time.time() - t)
        rows.append(row)
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
json.dump(dict(net=meta, hessian_rank_gap=rank, exact=exact, compared_with=lam, chains=C, burnin=BURN, draws=DRAWS, rows=rows),
          open(f"compare_{name}.json", "w"), indent=1, default=float)

"""SGLD vs the quadratic-approximation prediction on a (gamma x n_beta) grid at a polished trained net.

For each (n_beta, gamma): plain full-batch SGLD (automatic eps at step_scale 0.5, C chains) and the
predictions from the Hessian spectrum at w*: eq. (1) stationary soft count, eq. (2) the same finite run
(its eps, burn-in and draws). z = (SGLD - eq. 2) / sqrt(se_sgld^2 + se_pred^2); the excess SGLD - eq. 2 is
what the quadratic approximation misses (the singular contribution). Reach = rms(w - w*) / rms(w*).
Usage: python grid.py NET [spectrum: dense|lanczos] -> grid_<NET>.json
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
from slt.sampling.quadratic_approx import HessianSpectrum, hessian_spectrum, predict_llc

name = sys.argv[1]
mode = sys.argv[2] if len(sys.argv) > 2 else "dense"
NB = [float(x) for x in os.environ.get("NB", "1e3,1e5,1e7").split(",")]
GAMMAS = [float(x) for x in os.environ.get("GAMMAS", "1,100,10000").split(",")]
C, BURN, DRAWS = int(os.environ.get("CHAINS", 4)), int(os.environ.get("BURN", 1000)), int(os.environ.get("DRAWS", 2000))
net, data, meta = load(name)
eig_path = f"nets/{name}.eig.npy"
t0 = time.time()
if mode == "dense" and os.path.exists(eig_path):
    h = np.load(eig_path)
    sp = HessianSpectrum(h.size, h, np.zeros((0, 0)), np.zeros((0, 0)), "dense")
else:
    sp = hessian_spectrum(net, centred_mse, data, dense_max_dim=10 ** 9 if mode == "dense" else 0)
    if mode == "dense":
        np.save(eig_path, sp.top)
t_spec = time.time() - t0
print(f"spectrum {sp.method} {t_spec:.1f}s", flush=True)
rows = []
for nb in NB:
    for g in GAMMAS:
        t = time.time()
        r = estimate_llc(net, centred_mse, data, n_beta=nb, gamma=g, num_chains=C, num_burnin=BURN, num_draws=DRAWS,
                         step_scale=0.5, seed=1)
        p1 = predict_llc(sp, nb, g)
        p2 = predict_llc(sp, nb, g, eps=r.eps, num_burnin=BURN, num_draws=DRAWS)
        z = (r.llc - p2.llc) / np.hypot(r.llc_se, p2.llc_se)
        row = dict(n_beta=nb, gamma=g, sgld=r.llc, sgld_se=r.llc_se, pred_stationary=p1.llc, pred_stationary_se=p1.llc_se,
                   pred_run=p2.llc, pred_run_se=p2.llc_se, hard_count=p1.hard_count, z=z, excess=r.llc - p2.llc,
                   eps=r.eps, reach=r.extra["displacement_ratio"], rhat=r.diagnostics.rhat,
                   mala=r.diagnostics.mala_acceptance, seconds=time.time() - t)
        rows.append(row)
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
json.dump(dict(net=meta, spectrum=sp.method, spectrum_s=t_spec, chains=C, burnin=BURN, draws=DRAWS, rows=rows),
          open(f"grid_{name}_{mode}.json", "w"), indent=1, default=float)

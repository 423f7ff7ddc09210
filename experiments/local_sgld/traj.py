"""The paper's SGLD protocol along a grokking trajectory, beside the soft count of the Hessian spectrum.

Protocol "paper App. H": eps 1e-4, n_beta 30, gamma 5, 3 chains, 100 burn-in, 600 draws (full batch here, so
that the quadratic prediction has no minibatch term). At each checkpoint of the p = 23 width 256 run (NOT
polished: these are the trained weights as saved, the paper's setting), the prediction is eq. (2) of
slt.sampling.quadratic_approx for that finite run (eps 1e-4, 100 + 600 steps) from a cheap Lanczos/SLQ
spectrum, and the Hutchinson trace term n_beta tr(H) / (2 gamma) beside it. Question: is the curve the
soft count of the spectrum (a flatness measure)? -> traj_w256.json
"""
import json, os, sys, time
os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np
import torch
torch.set_num_threads(1)
from slt.losses import centred_mse
from slt.sampling import estimate_llc
from slt.sampling.quadratic_approx import hessian_spectrum, predict_llc
from slt.training.checkpoints import list_checkpoints, load_checkpoint

run = "nets/run_w256s10000"
d = torch.load("nets/w256s10000.pt")
data = (d["a"], d["b"], d["y"])
steps = [s for s in list_checkpoints(run) if s in (0, 12, 66, 152, 351, 811, 1500, 2500, 3500, 4000, 4500) or s >= 5000]
steps = [s for s in steps if s in (0, 66, 351, 811, 1500, 2500, 3500, 4000, 4500, 6000, 8000, 10000)]
NB, G, EPS, BURN, DRAWS = 30.0, 5.0, 1e-4, 100, 600
rows = []
for s in steps:
    t = time.time()
    net = load_checkpoint(run, s).model.double()
    r = estimate_llc(net, centred_mse, data, n_beta=NB, gamma=G, eps=EPS, num_chains=3, num_burnin=BURN,
                     num_draws=DRAWS, seed=0)
    sp = hessian_spectrum(net, centred_mse, data, top_steps=20, probes=8, probe_steps=25, dense_max_dim=0, seed=0)
    p2 = predict_llc(sp, NB, G, eps=EPS, num_burnin=BURN, num_draws=DRAWS)
    p1 = predict_llc(sp, NB, G)
    tr, tr_se = sp.trace(lambda h: np.asarray(h))
    row = dict(step=s, sgld=r.llc, sgld_se=r.llc_se, pred_run=p2.llc, pred_run_se=p2.llc_se, pred_stationary=p1.llc,
               trace_term=NB * tr / (2 * G), trace=tr, top_h=float(sp.top[0]) if sp.top.size else float("nan"),
               reach=r.extra["displacement_ratio"], seconds=time.time() - t)
    rows.append(row)
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
json.dump(dict(protocol=dict(n_beta=NB, gamma=G, eps=EPS, chains=3, burnin=BURN, draws=DRAWS, batch="full"),
               rows=rows), open("traj_w256.json", "w"), indent=1)

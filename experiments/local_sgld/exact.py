"""Exact lambda at the polished nets by slt.theory.exact_scale.exact_llc (structured Jacobian rank) -> nets/<name>.exact.json"""
import json, sys, time, os
os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch
import numpy as np
from slt.theory.exact_scale import exact_llc
from slt.theory.polish import polish
# the L-BFGS point of nets.py (|grad| ~1e-8) is polished further by the library's Levenberg-Marquardt until
# exact_llc accepts it as critical; rel_distance says how far that moved it (the SGLD runs used the former)
for name in sys.argv[1:]:
    d = torch.load(f"nets/{name}.pt")
    t0 = time.time()
    ab = (d["a"].numpy(), d["b"].numpy(), d["y"].numpy())
    P = polish(d["U"].numpy(), d["V"].numpy(), d["A"].numpy(), *ab, centred=True)
    r = exact_llc(P.U, P.V, P.A, *ab, centred=True, n_probe=2)  # Morse-Bott probes where the rank meets no bound
    out = dict(rank=r.rank, lam=None if r.lam is None else float(r.lam), lower=float(r.lower), upper=float(r.upper),
               morse_bott=r.morse_bott, route=r.route, sv_gap=r.sv_gap, reliable=r.reliable, reason=r.reason,
               residual=r.residual, probes=[dict(p) for p in r.probes], polish_rel_distance=P.rel_distance, polish_critical=P.critical, elapsed_s=time.time() - t0)
    print(name, out, flush=True)
    json.dump(out, open(f"nets/{name}.exact.json", "w"))

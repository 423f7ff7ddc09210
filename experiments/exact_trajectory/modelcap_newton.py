"""Model-cap regime (K (3p - 2) < p N': no interpolant exists): is a trained checkpoint near a critical point of the
DATA loss? Dense modified Newton (positive-eigenspace step, backtracking) from a checkpoint, printing the loss,
|grad|, the criticality cosine |J^T R| / (sigma_max |R|) (slt.polish's stationary test, 1e-8) and the Hessian's
negative eigenvalues each step. Measured at p 23, width 48 (experiments/exact_trajectory/modelcap_newton.log).

    python experiments/exact_trajectory/modelcap_newton.py RUN_DIR STEP SEED_INDEX
"""
import torch, numpy as np, time, sys
torch.set_num_threads(1)
from slt.training import load_checkpoint
from slt.theory.jacobian import point_from_net
from slt.theory.residual import ResidualMap
from slt.theory.polish import _sigma_max
rd, step, s = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
cp = load_checkpoint(rd, step)
a, b, y = (t.cpu().numpy() for t in cp.data.train())
U, V, A = point_from_net(cp.model, s)
rm = ResidualMap.build(U, V, A, a, b, y, centred=True, device=torch.device("cpu"))
w = rm.flat(U, V, A)
def hess(w):
    eye = torch.eye(rm.dim, dtype=w.dtype)
    hvp = lambda v: torch.func.jvp(rm.gradient, (w,), (v,))[1]
    H = torch.cat([torch.vmap(hvp)(eye[i:i+256]) for i in range(0, rm.dim, 256)])
    return 0.5 * (H + H.T)
for it in range(15):
    t = time.perf_counter()
    g = rm.gradient(w); R = rm.residual(w)
    cos = float(g.norm()) / (_sigma_max(rm, w) * float(R.norm()))
    H = hess(w); ev, Q = torch.linalg.eigh(H)
    tol = rm.dim * 2.2e-16 * float(ev.abs().max())
    pos = ev > tol
    gq = Q.T @ g
    step_ = -(Q[:, pos] @ (gq[pos] / ev[pos]))
    print(it, f"L {0.5*float(R.norm())**2:.6e} |g| {float(g.norm()):.3e} cos {cos:.3e} rank+ {int(pos.sum())} neg {int((ev < -tol).sum())} min {float(ev.min()):.2e} |g on null| {float(gq[~pos].norm()):.2e} {time.perf_counter()-t:.1f}s", flush=True)
    if cos < 1e-8: break
    # backtracking on L
    L0 = 0.5 * float(R.norm())**2; al = 1.0
    while al > 1e-4:
        w2 = w + al * step_
        if 0.5 * float(rm.residual(w2).norm())**2 <= L0: break
        al /= 2
    w = w2

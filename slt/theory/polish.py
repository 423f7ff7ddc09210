"""From a trained checkpoint to the critical point its learning coefficient refers to.

A checkpoint of SGD/Adam training is not a critical point of anything: float32 weights, a minibatch
gradient, and (with weight decay) an objective L + (wd/2)|w|^2 whose stationary points are NOT critical
points of the data loss L. The learning coefficient is a property of K(w) = L(w) - L(w*) at a minimiser w* of
the DATA loss (Watanabe 2009, ch. 7; the prior, here the weight decay, does not scale with n and does not enter
lambda). So :func:`polish` moves the checkpoint to the nearest critical point of

    L(w) = |R(w)|^2 / 2,   R = P (F(w) - Y) / sqrt(N)      (mse / centred_mse of slt.losses)

by Levenberg-Marquardt in float64 (Levenberg 1944, Marquardt 1963; More 1978): each step solves the damped
linear least-squares problem  min_dx |J dx + R|^2 + mu |dx|^2  with LSQR (Paige & Saunders 1982, scipy) on the
matrix-free products of :class:`slt.theory.residual.ResidualMap`; mu shrinks after a successful step and grows
after a failed one. From zero damping LSQR returns the minimum-norm step, so on an interpolating (zero-residual)
manifold the iteration is Gauss-Newton towards the NEAREST interpolant and converges quadratically.

Two outcomes count as critical (``critical=True``), and :func:`slt.theory.exact_scale.exact_llc` uses the
matching route:
  * ``"interpolating"``: |R| <= interp_rtol * |R(0)| (the zero network's residual): w is a global minimiser
    of L, the minimum set is {R = 0}, and lambda is read from rank J (Jacobian route);
  * ``"stationary"``: |grad L| = |J^T R| <= grad_rtol * sigma_max(J) |R|, i.e. the residual is orthogonal to
    the tangent space of the image to relative precision grad_rtol (a non-interpolating critical point, e.g.
    when the width caps the Jacobian rank below the number of residuals): Hessian route.
With ``weight_decay > 0`` the objective is L + (wd/2)|w|^2 instead (``objective="data+wd"``): its minimisers
are where training with coupled L2 would stop, so the report says how far the checkpoint was from that; such a
point is not critical for L (grad L = -wd w there) and gets no exact learning coefficient.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from scipy.optimize import minimize
from scipy.sparse.linalg import LinearOperator, lsqr

from slt.theory.residual import ResidualMap

__all__ = ["PolishResult", "polish", "polish_net", "NotCriticalError"]

INTERP_RTOL = 1e-9  # |R| / |R(0)|: float64 Gauss-Newton reaches ~1e-14; trained float32 nets start ~1e-2
GRAD_RTOL = 1e-8    # |J^T R| / (sigma_max(J) |R|): cosine between R and the image's tangent space
STALL_STEPS = 3     # interpolants only (newton_iter=0): give up after this many LM steps in a row not halving L


class NotCriticalError(ValueError):
    """Raised when an exact learning coefficient is requested at a point that is not critical."""


@dataclass(frozen=True)
class PolishResult:
    """The polished point (float64 arrays) and how it was reached.

    objective: "data" (L) or "data+wd" (L + wd/2 |w|^2). kind: "interpolating", "stationary" or "none".
    grad_norm_*: |grad| of the objective; loss_*: the objective; rel_residual: |R| / |R(0)|;
    rel_distance: |w - w_start| / |w_start|; grad_cos: |J^T R| / (sigma_max |R|) at the end.
    """

    U: np.ndarray
    V: np.ndarray | None
    A: np.ndarray
    critical: bool
    kind: str
    objective: str
    grad_norm_before: float
    grad_norm_after: float
    loss_before: float
    loss_after: float
    rel_residual: float
    grad_cos: float
    rel_distance: float
    iterations: int
    lsqr_iterations: int
    seconds: float
    message: str

    def summary(self) -> str:
        return (f"{self.kind} ({self.objective}) after {self.iterations} LM steps / {self.lsqr_iterations} LSQR "
                f"iterations, {self.seconds:.1f} s: |grad| {self.grad_norm_before:.2e} -> {self.grad_norm_after:.2e}, "
                f"loss {self.loss_before:.3e} -> {self.loss_after:.3e}, moved {self.rel_distance:.2e} of |w|")


def _sigma_max(rm: ResidualMap, w: torch.Tensor, iters: int = 30, seed: int = 0) -> float:
    """Largest singular value of J by power iteration on J^T J (a normalisation, 30 steps are ample)."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    v = torch.randn(rm.dim, generator=g, dtype=torch.float64).to(w.device)
    s = rm.hidden(w)
    lam = 0.0
    for _ in range(iters):
        v = v / v.norm()
        u = rm.vjp(w, rm.jvp(w, v, s), s)
        lam = float(u.norm())
        v = u
    return math.sqrt(max(lam, 0.0))


def jacobian_operator(rm: ResidualMap, w: torch.Tensor, wd: float) -> LinearOperator:
    """[J; sqrt(wd) I] as a scipy LinearOperator, J the residual Jacobian at w (the wd block makes LM steps on
    L + wd/2 |w|^2; wd = 0 gives J alone, for least-squares solves against it)."""
    s = rm.hidden(w)
    nr = rm.n * rm.q
    extra = rm.dim if wd > 0 else 0
    dev = w.device
    sw = math.sqrt(wd)

    def mv(x):
        xt = torch.as_tensor(np.ascontiguousarray(x).reshape(-1), dtype=torch.float64, device=dev)
        out = rm.jvp(w, xt, s).reshape(-1)
        if extra:
            out = torch.cat([out, sw * xt])
        return out.cpu().numpy()

    def rmv(x):
        xt = torch.as_tensor(np.ascontiguousarray(x).reshape(-1), dtype=torch.float64, device=dev)
        out = rm.vjp(w, xt[:nr].view(rm.n, rm.q), s)
        if extra:
            out = out + sw * xt[nr:]
        return out.cpu().numpy()

    return LinearOperator((nr + extra, rm.dim), matvec=mv, rmatvec=rmv, dtype=np.float64)


def _test(rm, w, grad, wd, r0, smax, interp_rtol, grad_rtol) -> str:
    R = float(rm.residual(w).norm())
    if wd == 0 and R <= interp_rtol * r0:
        return "interpolating"
    if float(grad(w).norm()) <= grad_rtol * max(smax * R, 1e-300) + wd * grad_rtol * float(w.norm()):
        return "stationary"
    return "none"


def polish(U, V, A, a, b, y, centred: bool = False, weight_decay: float = 0.0, max_iter: int = 30,
           lsqr_iter: int = 2_000, newton_iter: int = 50, interp_rtol: float = INTERP_RTOL, grad_rtol: float = GRAD_RTOL,
           device: str | torch.device = "cpu") -> PolishResult:
    """Levenberg-Marquardt (float64, matrix-free LSQR steps) from (U, V, A) to a critical point of the data
    loss (``weight_decay=0``) or of L + (wd/2)|w|^2. Arrays as in :func:`slt.theory.llc_at_point`; ``y`` class
    labels (N,) or real targets (N, q). See the module docstring for the criticality tests."""
    if not (isinstance(max_iter, int) and max_iter >= 1):
        raise ValueError(f"max_iter must be an integer >= 1, got {max_iter!r}")
    if not (isinstance(newton_iter, int) and newton_iter >= 0):
        raise ValueError(f"newton_iter must be an integer >= 0, got {newton_iter!r}")
    if not (isinstance(lsqr_iter, int) and lsqr_iter >= 1):
        raise ValueError(f"lsqr_iter must be an integer >= 1, got {lsqr_iter!r}")
    if not (weight_decay >= 0 and math.isfinite(weight_decay)):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}")
    for name, v in (("interp_rtol", interp_rtol), ("grad_rtol", grad_rtol)):
        if not 0 < v < 1:
            raise ValueError(f"{name} must be in (0, 1), got {v!r}")
    t0 = time.perf_counter()
    rm = ResidualMap.build(U, V, A, a, b, y, centred=centred, device=device)
    w0 = rm.flat(U, V, A)
    wd = float(weight_decay)
    r0 = float(rm.residual(torch.zeros_like(w0)).norm())  # the zero network's residual: the scale of R

    def objective(w):
        return rm.loss(w) + 0.5 * wd * float(w.pow(2).sum())

    def grad(w):
        return rm.gradient(w) + wd * w

    w = w0.clone()
    f = objective(w)
    f0, g0 = f, float(grad(w).norm())
    stalled = 0
    mu = 0.0  # start as Gauss-Newton: near an interpolant the undamped minimum-norm step is the right one
    it = total_lsqr = 0
    smax = _sigma_max(rm, w)
    kind = "none"
    for it in range(1, max_iter + 1):
        R = rm.residual(w)
        kind = _test(rm, w, grad, wd, r0, smax, interp_rtol, grad_rtol)
        if kind != "none":
            break
        op = jacobian_operator(rm, w, wd)
        rhs = -R.reshape(-1)
        if wd > 0:
            rhs = torch.cat([rhs, -math.sqrt(wd) * w])
        # inexact Newton (Dembo, Eisenstat & Steihaug 1982): solve each linear problem only to a relative accuracy
        # eta that shrinks with the residual, which keeps the final convergence superlinear at a fraction of the
        # LSQR iterations of exact steps
        eta = min(1e-2, max(float(R.norm()) / r0, 1e-14))
        sol = lsqr(op, rhs.cpu().numpy(), damp=math.sqrt(mu), atol=eta, btol=eta, iter_lim=lsqr_iter)
        total_lsqr += int(sol[2])
        dx = torch.as_tensor(sol[0], dtype=torch.float64, device=w.device)
        trial = w + dx
        ft = objective(trial)
        slow = not (math.isfinite(ft) and ft < 0.5 * f)
        if math.isfinite(ft) and ft < f:
            w, f = trial, ft
            mu = mu / 4 if mu > 1e-12 * smax**2 else 0.0
        else:
            mu = max(4 * mu, 1e-6 * smax**2)
        # near an interpolant Gauss-Newton converges quadratically, so STALL_STEPS steps in a row that do not even
        # halve the objective mean no interpolant is near: stop early (the costly case at 162k parameters)
        stalled = stalled + 1 if slow else 0
        if stalled >= STALL_STEPS and wd == 0 and newton_iter == 0:
            kind = _test(rm, w, grad, wd, r0, smax, interp_rtol, grad_rtol)
            break
    else:
        kind = _test(rm, w, grad, wd, r0, smax, interp_rtol, grad_rtol)
    newton_steps = 0
    if kind == "none" and newton_iter > 0:
        # Gauss-Newton ignores the residual's curvature, so on a non-interpolating minimum it converges only
        # linearly; finish with exact-Hessian Newton steps in a trust region (scipy's trust-krylov, Gould et
        # al. 1999) on Hessian-vector products (forward-over-reverse AD of the gradient)
        def fg(x):
            xt = torch.as_tensor(x, dtype=torch.float64, device=w.device)
            return objective(xt), grad(xt).cpu().numpy()

        def hessp(x, v):
            xt = torch.as_tensor(x, dtype=torch.float64, device=w.device)
            vt = torch.as_tensor(v, dtype=torch.float64, device=w.device)
            return torch.func.jvp(grad, (xt,), (vt,))[1].cpu().numpy()

        R = rm.residual(w)
        gtol = grad_rtol * smax * float(R.norm()) + wd * grad_rtol * float(w.norm())
        opt = minimize(fg, w.cpu().numpy(), jac=True, hessp=hessp, method="trust-krylov",
                       options={"gtol": gtol, "maxiter": newton_iter})
        newton_steps = int(opt.nit)
        wt = torch.as_tensor(opt.x, dtype=torch.float64, device=w.device)
        if objective(wt) <= f:
            w, f = wt, objective(wt)
        kind = _test(rm, w, grad, wd, r0, smax, interp_rtol, grad_rtol)
    R = rm.residual(w)
    gdata = rm.gradient(w)
    cos = float(gdata.norm()) / max(smax * float(R.norm()), 1e-300)
    U1, V1, A1 = rm.unflat(w)
    critical = kind != "none" and wd == 0
    if kind == "none":
        msg = (f"not critical after {max_iter} LM steps: |grad| {float(grad(w).norm()):.2e}, |R|/|R(0)| "
               f"{float(R.norm()) / r0:.2e}; raise max_iter/lsqr_iter or start closer to a minimum")
    elif wd > 0:
        msg = ("critical for L + wd/2 |w|^2, which is not a critical point of the data loss (grad L = -wd w): "
               "no exact learning coefficient refers to it; polish with weight_decay=0 for that")
    else:
        msg = "interpolating minimiser of the data loss" if kind == "interpolating" else \
            "non-interpolating critical point of the data loss"
    return PolishResult(U=U1, V=V1, A=A1, critical=critical, kind=kind,
                        objective="data" if wd == 0 else "data+wd",
                        grad_norm_before=g0, grad_norm_after=float(grad(w).norm()), loss_before=f0, loss_after=f,
                        rel_residual=float(R.norm()) / r0, grad_cos=cos,
                        rel_distance=float((w - w0).norm()) / max(float(w0.norm()), 1e-300), iterations=it + newton_steps,
                        lsqr_iterations=total_lsqr, seconds=time.perf_counter() - t0, message=msg)


def polish_net(net, a, b, y, copy: int = 0, centred: bool = False, weight_decay: float = 0.0, **kwargs) -> PolishResult:
    """:func:`polish` at copy ``copy`` of a :class:`slt.models.QuadraticNet` (e.g. a loaded checkpoint)."""
    from slt.theory.jacobian import point_from_net

    to_np = lambda t: t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    return polish(*point_from_net(net, copy), to_np(a), to_np(b), to_np(y), centred=centred,
                  weight_decay=weight_decay, **kwargs)

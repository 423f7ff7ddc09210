"""Constant preconditioners that scale to large nets (no d x d matrix): diagonal and top-eigenspace + diagonal.

Every constant symmetric positive-definite metric M leaves the target law exp(-U) of preconditioned Langevin
unchanged (slt.sampling.sgld module docstring); M only changes how fast each direction relaxes. The ideal
metric is A^(-1), A = n_beta H + gamma I the precision of the quadratic approximation at w*
(``precondition="hessian"``, dense, d <= 3000). The kinds here approximate it at O(R d) or O(R d k) per step:

- "diagonal" (Jacobi): M = diag(1 / A_ii). A_ii = n_beta H_ii + gamma with diag(H) estimated by Hutchinson's
  diagonal estimator diag(H) ~ mean_k z_k * (H z_k), z_k Rademacher (Bekas, Kokiopoulou & Saad, Appl. Numer.
  Math. 57 (2007) 1214). This is the stationary value of the RMSprop statistic: for a Gaussian target,
  E[g g^T] = A Sigma A = A, so E[g_i^2] = A_ii for the drift g = grad U.
- "rmsprop": M = diag(A_ii^(-1/2)), the metric of RMSprop-preconditioned SGLD (Li, Chen, Carlson & Carin,
  AAAI 2016; devinterp 2.x ``rmsprop_sgld``) with its second-moment statistic at stationarity, frozen
  (an adaptive metric changes the stationary law unless a correction term is added; a frozen one does not).
- "lowrank": M^(1/2) = Q diag(a^(-1/2)) Q^T + P diag(A'_ii^(-1/2)) P, Q the converged top-k Hessian
  eigenvectors (Lanczos on Hessian-vector products), a_i = n_beta theta_i + gamma, P = I - Q Q^T and A' the
  Jacobi diagonal of the deflated precision (diag(H) - sum_i theta_i q_i^2). The stiff top directions are
  whitened exactly, so the step size is no longer set by the largest eigenvalue.
"""
from __future__ import annotations

import torch

from slt.sampling.sgld import DiagonalPreconditioner, LowRankPreconditioner, flatten, unflatten

SCALABLE = ("diagonal", "rmsprop", "lowrank")
DIAG_PROBES = 64  # Hutchinson probes for diag(H) (batched in one forward-over-reverse pass per 64 rows)
LOWRANK_STEPS = 200  # Lanczos steps for the top eigenspace
LOWRANK_RESIDUAL = 1e-2  # a Ritz pair is kept when |H y - theta y| <= this * theta_max: any SPD metric is
# exact (the law is unchanged), so roughly converged directions are whitened too; the top of a trained net's
# spectrum is clustered and only ~4 pairs reach 1e-4 in 80 steps (p = 23, width 128)


def _copy_matvec(problem, copy: int):
    anchor = tuple(w[copy:copy + 1].detach() for w in problem.anchor)
    x0 = flatten(anchor)

    def total_loss(x):
        return problem.row_loss(unflatten(x, anchor), None).sum()

    grad_fn = torch.func.grad(total_loss)

    def matvec(v):
        return torch.func.jvp(grad_fn, (x0.expand(v.shape[0], -1).contiguous(),), (v,))[1].detach()

    return matvec, x0


def hutchinson_diagonal(matvec, d: int, probes: int, generator: torch.Generator, like: torch.Tensor,
                        chunk: int = 64) -> torch.Tensor:
    """diag(H) ~ mean_k z_k * (H z_k) with Rademacher z_k (unbiased): -> (d,)."""
    acc = torch.zeros(d, dtype=like.dtype, device=like.device)
    done = 0
    while done < probes:
        k = min(chunk, probes - done)
        z = torch.randint(0, 2, (k, d), generator=generator, device=like.device).to(like.dtype) * 2 - 1
        acc += (z * matvec(z)).sum(0)
        done += k
    return acc / probes


def scalable_preconditioner(problem, n_beta: torch.Tensor, gamma: torch.Tensor, kind: str, seed: int = 0):
    """Per copy, the metric of ``kind`` (module docstring) at w*. n_beta, gamma: (B,). -> (preconditioner,
    per-copy info dicts)."""
    from slt.sampling.quadratic_approx import _tridiag_eig, lanczos

    if kind not in SCALABLE:
        raise ValueError(f"kind must be one of {SCALABLE}, got {kind!r}")
    g = torch.Generator(problem.device).manual_seed(int(seed) + 15485863)
    diags, bases, tops, infos = [], [], [], []
    for c in range(problem.n_copies):
        matvec, x0 = _copy_matvec(problem, c)
        d = x0.shape[1]
        nb, gm = float(n_beta[c]), float(gamma[c])
        info = {}
        hdiag = hutchinson_diagonal(matvec, d, DIAG_PROBES, g, x0)
        if kind == "lowrank":
            v0 = torch.randn(1, d, generator=g, dtype=x0.dtype, device=x0.device)
            alpha, beta, V = lanczos(matvec, v0, min(LOWRANK_STEPS, d))
            theta, S = _tridiag_eig(alpha[0], beta[0, :-1])
            Y = S.T @ V[0]
            res = (matvec(Y) - theta[:, None] * Y).norm(dim=1)
            keep = (res <= LOWRANK_RESIDUAL * theta.abs().max()) & (theta > 0)
            Q = torch.linalg.qr(Y[keep].flip(0).T)[0]  # (d, k), stiffest first
            th = theta[keep].flip(0)
            # the deflated diagonal: diag(H) minus the top part sum_i theta_i q_i^2
            hdiag = hdiag - (Q.pow(2) * th).sum(1)
            bases.append(Q)
            tops.append((nb * th + gm).rsqrt())
            info.update(rank=int(keep.sum()), top_eigenvalue=float(th.max()) if th.numel() else 0.0)
        a = nb * hdiag.clamp_min(0) + gm
        if bool((a <= 0).any()):
            raise ValueError(f"precondition={kind!r} needs gamma > 0 (some estimated diagonal entries are 0)")
        diags.append(a.rsqrt() if kind != "rmsprop" else a.pow(-0.25))
        info.update(diag_min=float(a.min()), diag_max=float(a.max()))
        infos.append(info)
    if kind == "lowrank":
        k = min(Q.shape[1] for Q in bases)  # same k for every copy (batched products)
        return LowRankPreconditioner(torch.stack([Q[:, :k] for Q in bases]), torch.stack([t[:k] for t in tops]),
                                     torch.stack(diags)), infos
    return DiagonalPreconditioner(torch.stack(diags)), infos

"""The SGLD drift of the quadratic network in closed form: loss, potential and gradient without autograd.

For f(a, b) = A^T (U[a] + V[b])^2 (storage of :mod:`slt.models.quadratic`: U, V (R, p, m), A (R, m, q)) on a batch
of b pairs, with h = U[a] + V[b] (R, b, m), s = h * h, out = s A (R, b, q) and the residual r = out - Y (Y the
one-hot labels):

    mse           L = (1/2b) sum_i |r_i|^2,            dL/d out = r / b
    centred_mse   L = (1/2b) |P r|^2,  P = I - 11^T/b, dL/d out = P r / b    (P symmetric and idempotent)

and with G = n_beta dL/d out (n_beta folded in here, so nothing of size d is rescaled afterwards):

    n_beta dL/dA = s^T G                 (R, m, q)
    n_beta dL/dh = 2 h * (G A^T)         (R, b, m)
    n_beta dL/dU[c] = sum_{i: a_i = c} n_beta dL/dh_i,   n_beta dL/dV[c] = sum_{i: b_i = c} n_beta dL/dh_i

(for tied V = U both sums go into U). The SGLD drift g = n_beta grad L + gamma (w - w*) (slt.sampling.sgld) is
built in place: g = gamma (w - w*), then the data term is scattered into it (``index_add_``) and added by
``baddbmm`` for A; |w - w*|^2 and |g|^2 give the potential and the MALA term. That is the same arithmetic as
autograd through :func:`slt.models.quadratic.quadratic_forward` and :mod:`slt.losses`, in fewer passes over the d
parameters and with no graph: measured at the paper's setting (p 53, width 1,024, batch 128) in
benchmarks/bench_llc.py. Results agree with autograd to float rounding (tests/test_sampling.py).
"""
from __future__ import annotations

import torch

from slt.sampling.sgld import tree_dot

Position = tuple[torch.Tensor, ...]


def _residual(out: torch.Tensor, y: torch.Tensor, centred: bool) -> torch.Tensor:
    """out - Y for integer labels y (N,) or (R, N), centred over the samples when ``centred``: (R, N, q)."""
    r = out.clone()
    idx = (y if y.dim() == 2 else y.expand(out.shape[0], -1)).unsqueeze(-1)
    r.scatter_add_(-1, idx, torch.full(idx.shape, -1.0, dtype=out.dtype, device=out.device))
    if centred:
        r -= r.mean(-2, keepdim=True)
    return r


def _gather(U: torch.Tensor, V: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                                         torch.Tensor]:
    """h = U[a] + V[b] (R, N, m) and the flat row indices of a and b into the (R p, m) tables."""
    R, p, m = U.shape
    off = torch.arange(R, device=U.device).unsqueeze(1) * p
    ia = ((a if a.dim() == 2 else a.expand(R, -1)) + off).reshape(-1)
    ib = ((b if b.dim() == 2 else b.expand(R, -1)) + off).reshape(-1)
    h = U.reshape(R * p, m).index_select(0, ia)
    h += V.reshape(R * p, m).index_select(0, ib)
    return h.view(R, -1, m), ia, ib


def _per_row(x: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor | float:
    """A scalar, or an (R,) tensor viewed to broadcast against ``like`` (R, ...)."""
    if isinstance(x, torch.Tensor) and x.dim():
        return x.view(-1, *([1] * (like.dim() - 1)))
    return x


def quadratic_potential_and_drift(position: Position, a: torch.Tensor, b: torch.Tensor, y: torch.Tensor,
                                  anchor: Position, n_beta: torch.Tensor, gamma: torch.Tensor,
                                  diagnostics: bool = True, *, centred: bool,
                                  tied: bool) -> tuple[torch.Tensor, torch.Tensor | None, Position, torch.Tensor | None]:
    """(L, U, g, |g|^2) at ``position`` = (U, V, A) or (U, A) when tied, rows R = B * C (copy-major, anchor B rows);
    a, b, y: (N,) shared or (R, N) per row; n_beta, gamma scalars or (R,). Same contract as
    :func:`slt.sampling.sgld.potential_and_drift` with the loss ``mse`` / ``centred_mse`` of the quadratic net."""
    U, A = position[0], position[-1]
    V = U if tied else position[1]
    R, nb = U.shape[0], a.shape[-1]
    h, ia, ib = _gather(U, V, a, b)
    s = h * h
    out = torch.bmm(s, A)  # (R, b, q)
    r = _residual(out, y, centred)
    loss = 0.5 * r.pow(2).sum((-2, -1)) / nb  # (R,)
    G = r.mul_(_per_row(n_beta / nb, r))  # n_beta dL/d out
    B = anchor[0].shape[0]
    drift, dist_sq = [], None
    for w, w0 in zip(position, anchor):
        diff = (w.view(B, -1, *w.shape[1:]) - w0.unsqueeze(1)).view(w.shape)
        drift.append(diff)  # gamma (w - w*), the data term added below
    dist_sq = tree_dot(drift, drift) if diagnostics else None
    drift = [d.mul_(_per_row(gamma, d)) for d in drift]  # gamma (w - w*), the data term added below
    # s^T G as (G^T s)^T: the (q, b) x (b, m) product runs ~1.3-1.8x faster on CPU than a transposed-operand bmm
    gA = drift[-1].add_(torch.bmm(G.mT, s).mT)  # gamma (A - A*) + s^T G
    dh = torch.bmm(G, A.mT).mul_(h)  # (G A^T) * h; the factor 2 goes into the scatter
    m = U.shape[-1]
    gU = drift[0].view(R * U.shape[1], m)
    gU.index_add_(0, ia, dh.view(-1, m), alpha=2.0)
    gV = gU if tied else drift[1].view(R * U.shape[1], m)
    gV.index_add_(0, ib, dh.view(-1, m), alpha=2.0)
    drift[-1] = gA
    drift = tuple(drift)
    if not diagnostics:
        return loss, None, drift, None
    potential = n_beta * loss + 0.5 * gamma * dist_sq
    return loss, potential, drift, tree_dot(drift, drift)

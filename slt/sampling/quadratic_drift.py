"""The SGLD drift of the quadratic network in closed form: loss, potential and gradient without autograd.

For f(a, b) = A^T (U[a] + V[b])^2 with the loss ``mse`` or ``centred_mse`` on integer labels, the data term of the
drift, n_beta grad L, is :func:`slt.models.quadratic.quadratic_loss_and_grad` with ``scale = n_beta`` (n_beta
folded into dL/d out, so nothing of size d is rescaled afterwards). The drift g = n_beta grad L + gamma (w - w*)
(slt.sampling.sgld) is built in place: g = gamma (w - w*), then the data term is added into it (``index_add_`` for U
and V, a baddbmm of s^T G for A); |w - w*|^2 and |g|^2 give the potential and the MALA term. The same arithmetic as
autograd through :func:`slt.models.quadratic.quadratic_forward` and :mod:`slt.losses`, in fewer passes over the d
parameters and with no graph (benchmarks/bench_llc.py at the paper's setting: p 53, width 1,024, batch 128). Agrees
with autograd to float rounding (tests/test_sampling.py).
"""
from __future__ import annotations

import torch

from slt.models.quadratic import quadratic_loss_and_grad
from slt.sampling.noise import Local
from slt.sampling.sgld import _rows, tree_dot

Position = tuple[torch.Tensor, ...]


def quadratic_potential_and_drift(position: Position, a: torch.Tensor, b: torch.Tensor, y: torch.Tensor,
                                  anchor: Position, n_beta: torch.Tensor, gamma: torch.Tensor,
                                  diagnostics: bool = True, local: Local | None = None, *, centred: bool,
                                  tied: bool) -> tuple[torch.Tensor, torch.Tensor | None, Position, torch.Tensor | None]:
    """(L, U, g, |g|^2) at ``position`` = (U, V, A) or (U, A) when tied, rows R = B * C (copy-major, anchor B rows);
    a, b, y: (N,) shared or (R, N) per row; n_beta, gamma scalars or (R,). Same contract as
    :func:`slt.sampling.sgld.potential_and_drift` with the loss ``mse`` / ``centred_mse`` of the quadratic net
    (``local``: gamma (w - w*) and |w - w*|^2 computed ahead; the data term is added into its buffers)."""
    U, A = position[0], position[-1]
    V = U if tied else position[1]
    B = anchor[0].shape[0]
    if local is None:
        drift = [(w.view(B, -1, *w.shape[1:]) - w0.unsqueeze(1)).view(w.shape) for w, w0 in zip(position, anchor)]
        dist_sq = tree_dot(drift, drift) if diagnostics else None
        drift = tuple(d.mul_(_rows(gamma, d)) for d in drift)  # gamma (w - w*); the data term is added into it
    else:
        drift, dist_sq = local.drift, local.dist_sq
    loss, drift = quadratic_loss_and_grad(U, V, A, a, b, y, centred=centred, tied=tied, scale=n_beta, into=drift)
    if not diagnostics:
        return loss, None, drift, None
    potential = n_beta * loss + 0.5 * gamma * dist_sq
    return loss, potential, drift, tree_dot(drift, drift)

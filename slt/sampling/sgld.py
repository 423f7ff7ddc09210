"""The SGLD kernel as pure functions over chain-batched parameter tuples.

A position is a tuple of tensors, each with a leading row axis R (one row per chain; for several
model copies, copies x chains). Every function here is pure: inputs are never modified, randomness
comes from an explicit ``torch.Generator``, and the same code runs 1 row or 10,000.

Update (Welling & Teh 2011, localised as in Lau et al., arXiv 2308.12108, eq. 8):

    w' = w - (eps/2) g(w) + sqrt(eps) xi,   xi ~ N(0, I),
    g(w) = n_beta grad L(w) + gamma (w - w*)          (the drift: gradient of the potential)
    U(w) = n_beta L(w) + (gamma/2) |w - w*|^2          (the potential, -log of the target density)

Metropolis-adjusted Langevin (MALA) acceptance of the same proposal (Roberts & Tweedie 1996), used as a
health diagnostic only (the chain is never corrected):

    log alpha = U(w) - U(w') + log q(w | w') - log q(w' | w),   q(y | x) = N(y; x - (eps/2) g(x), eps I)
              = U(w) - U(w') + delta.(g(w) + g(w'))/2 - (eps/8)(|g(w')|^2 - |g(w)|^2),   delta = w' - w.

Preconditioned Langevin with a CONSTANT symmetric positive-definite metric M (Girolami & Calderhead 2011,
sec. 5, constant metric; Li, Chen, Carlson & Carin 2016, "Preconditioned SGLD"):

    w' = w - (eps/2) M g(w) + sqrt(eps) M^(1/2) xi,   xi ~ N(0, I).

It is plain Langevin in the coordinates z = M^(-1/2) w (drift M^(1/2) g, unit noise), so its continuous-time
stationary law is exp(-U) for ANY constant M; with M = (n_beta H + gamma I)^(-1), H the Hessian of L at w*,
every direction of the quadratic approximation has curvature 1 in z and relaxes at the same rate.
Its proposal is q(y | x) = N(y; x - (eps/2) M g(x), eps M). Writing delta = w' - w,

    -2 eps log q(w' | w) = delta^T M^-1 delta + eps delta.g(w) + (eps^2/4) g(w)^T M g(w) + const
    -2 eps log q(w | w') = delta^T M^-1 delta - eps delta.g(w') + (eps^2/4) g(w')^T M g(w') + const

so the MALA log acceptance is the plain formula with |g|^2 replaced by the M-norm g^T M g:

    log alpha = U(w) - U(w') + delta.(g(w) + g(w'))/2 - (eps/8)(g(w')^T M g(w') - g(w)^T M g(w)).

Preconditioned positions are kept as the same tuples of leaves; the d x d products act on the flattened
(R, d) view, rows of one model copy (R = B * C, copy-major) sharing that copy's M.
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch

from slt.sampling.noise import Local, langevin_step, standard_normal_like

Position = tuple[torch.Tensor, ...]
# loss_fn(position, batch) -> (R,) losses, differentiable w.r.t. position. batch is opaque here.
RowLoss = Callable[[Position, object], torch.Tensor]


_DOT_LOOP_MIN = 8192
_DOT_LOOP_MAX_ROWS = 256


class SGLDState(NamedTuple):
    position: Position  # each (R, ...)
    loss: torch.Tensor  # (R,) L(position) on the batch that gave the drift
    potential: torch.Tensor | None  # (R,) U(position); None when skipped (sgld_step(next_mala=False))
    drift: Position  # g(position), same shapes as position
    drift_sq: torch.Tensor | None  # (R,) |g(position)|^2, or g^T M g when preconditioned; None when skipped
    precond_drift: Position | None = None  # M^(1/2) g(position) (preconditioned runs only)


class SGLDInfo(NamedTuple):
    loss: torch.Tensor  # (R,) loss at the new position
    log_accept: torch.Tensor  # (R,) MALA log acceptance ratio of the transition just made


def tree_dot(xs: Position, ys: Position) -> torch.Tensor:
    """Row-wise inner product sum_k <x_k[r], y_k[r]> -> (R,)."""
    out = None
    for x, y in zip(xs, ys):
        r = x.shape[0]
        x2, y2 = x.reshape(r, -1), y.reshape(r, -1)
        if x2.shape[1] >= _DOT_LOOP_MIN and r <= _DOT_LOOP_MAX_ROWS:
            # long rows: one BLAS dot per row is ~3x faster than vecdot and ~10x faster than bmm on CPU
            d = torch.stack([torch.dot(x2[i], y2[i]) for i in range(r)])
        else:
            d = torch.linalg.vecdot(x2, y2)
        out = d if out is None else out + d
    return out


def _rows(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Reshape a per-row (R, 1) or scalar tensor so it broadcasts against ``like`` (R, ...)."""
    if t.dim() == 0:
        return t
    return t.view(t.shape[0], *([1] * (like.dim() - 1)))


def _anchor_diff(position: Position, anchor: Position) -> Position:
    """w - w*, where the anchor has B rows and the position R = B * C rows (C chains per copy)."""
    out = []
    for w, a in zip(position, anchor):
        b = a.shape[0]
        out.append((w.view(b, -1, *w.shape[1:]) - a.unsqueeze(1)).view(w.shape))
    return tuple(out)


def potential_and_drift(
    loss_fn: RowLoss,
    position: Position,
    batch: object,
    anchor: Position,
    n_beta: torch.Tensor,
    gamma: torch.Tensor,
    diagnostics: bool = True,
    local: Local | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None, Position, torch.Tensor | None]:
    """Evaluate L, U and g = grad U at ``position`` (rows independent): -> (loss, U, g, |g|^2).

    n_beta and gamma are scalars or (R,) tensors (one value per row). U and |g|^2 serve only the MALA
    diagnostic: ``diagnostics=False`` skips them (returned as None; two passes over the parameters saved). A
    ``loss_fn`` with a ``potential_and_drift(position, batch, anchor, n_beta, gamma, diagnostics, local)``
    attribute computes all four itself (the quadratic network's closed-form gradient,
    :mod:`slt.sampling.quadratic_drift`). ``local``: gamma (w - w*) and |w - w*|^2 already computed (the counter
    kernel's fused step); its buffers become the drift.
    """
    fast = getattr(loss_fn, "potential_and_drift", None)
    if fast is not None:
        return fast(position, batch, anchor, n_beta, gamma, diagnostics, local)
    leaves = tuple(w.detach().requires_grad_(True) for w in position)
    with torch.enable_grad():
        loss = loss_fn(leaves, batch)  # (R,)
        # rows are independent, so the gradient of the sum is the per-row gradient
        grads = torch.autograd.grad(loss.sum(), leaves)
    loss = loss.detach()
    if local is None:
        diff = _anchor_diff(position, anchor)
        drift = tuple(g.mul_(_rows(n_beta, g)).addcmul_(dw, _rows(gamma, dw)) for g, dw in zip(grads, diff))
    else:
        drift = tuple(loc.add_(g.mul_(_rows(n_beta, g))) for loc, g in zip(local.drift, grads))
    if not diagnostics:
        return loss, None, drift, None
    dist_sq = tree_dot(diff, diff) if local is None else local.dist_sq
    potential = n_beta * loss + 0.5 * gamma * dist_sq
    return loss, potential, drift, tree_dot(drift, drift)


def langevin_update(
    position: Position, drift: Position, noise: Position, eps: torch.Tensor
) -> tuple[Position, Position]:
    """One Euler-Maruyama step w' = w - (eps/2) g + sqrt(eps) xi -> (w', delta = w' - w).

    eps is a scalar or an (R,) tensor. ``noise`` holds standard normal draws shaped like position.
    """
    return _langevin_update_into_noise(position, drift, tuple(xi.clone() for xi in noise), eps)


def _langevin_update_into_noise(
    position: Position, drift: Position, noise: Position, eps: torch.Tensor
) -> tuple[Position, Position]:
    """:func:`langevin_update` writing delta into ``noise`` (the kernel's own fresh draws, unused after the step:
    a new (R, d) buffer per leaf and step would cost as much as the arithmetic)."""
    deltas = tuple(
        xi.mul_(_rows(eps.sqrt(), xi)).addcmul_(g, _rows(-eps / 2, g)) for xi, g in zip(noise, drift)
    )
    return tuple(w + dw for w, dw in zip(position, deltas)), deltas


def mala_log_accept(
    u0: torch.Tensor,
    u1: torch.Tensor,
    g0: Position,
    g1: Position,
    g0_sq: torch.Tensor,
    g1_sq: torch.Tensor,
    delta: Position,
    eps: torch.Tensor,
    cross0: torch.Tensor | None = None,
) -> torch.Tensor:
    """log alpha of the Langevin proposal w -> w' = w + delta (formula in the module docstring); ``cross0``:
    delta . g0, when already computed."""
    cross = (tree_dot(delta, g0) if cross0 is None else cross0) + tree_dot(delta, g1)
    return u0 - u1 + 0.5 * cross - (eps / 8) * (g1_sq - g0_sq)


def sgld_init(
    loss_fn: RowLoss, position: Position, batch: object, anchor: Position, n_beta, gamma
) -> SGLDState:
    loss, u, g, g_sq = potential_and_drift(loss_fn, position, batch, anchor, n_beta, gamma)
    return SGLDState(tuple(w.detach() for w in position), loss, u, g, g_sq)


def sgld_step(
    generator: torch.Generator,
    state: SGLDState,
    loss_fn: RowLoss,
    batch: object,
    anchor: Position,
    *,
    eps: torch.Tensor,
    n_beta: torch.Tensor,
    gamma: torch.Tensor,
    mala: bool = True,
    next_mala: bool = True,
    noise: str = "torch",
) -> tuple[SGLDState, SGLDInfo]:
    """One SGLD transition of every row, then L, U, g at the new point on ``batch``.

    The drift used for the move was computed at the current position on the previous batch (stored in
    ``state``), so each step costs one forward/backward. ``mala=False``: no MALA log acceptance for this
    transition (NaN; e.g. during burn-in, where it is not recorded); ``next_mala=False``: the new state omits U
    and |g|^2, which only the next transition's MALA term reads. The chain itself is the same either way.
    ``noise``: the Gaussian source, "torch" (torch.randn from ``generator``) or "counter" (one key from
    ``generator`` per step, fused with the update, the localisation term and delta . g into one compiled pass:
    :func:`slt.sampling.noise.langevin_step`).
    """
    local = cross0 = None
    if noise == "counter":
        new_pos, delta, local, cross0 = langevin_step(state.position, state.drift, anchor, eps, gamma, generator)
    else:
        xi = standard_normal_like(state.position, generator, noise)
        new_pos, delta = _langevin_update_into_noise(state.position, state.drift, xi, eps)
    loss, u, g, g_sq = potential_and_drift(loss_fn, new_pos, batch, anchor, n_beta, gamma,
                                           diagnostics=mala or next_mala, local=local)
    if mala:
        log_a = mala_log_accept(state.potential, u, state.drift, g, state.drift_sq, g_sq, delta, eps, cross0)
    else:
        log_a = torch.full_like(loss, math.nan)
    return SGLDState(new_pos, loss, u, g, g_sq), SGLDInfo(loss, log_a)


# ----------------------------------------------------------------------------------------------------
# Constant preconditioner


class Preconditioner(NamedTuple):
    """A constant metric per model copy: M (B, d, d) symmetric positive definite and its symmetric square
    root S = M^(1/2) (B, d, d), acting on the flattened (R, d) view of a position, R = B * C rows
    (copy-major: row r belongs to copy r // C)."""

    matrix: torch.Tensor  # (B, d, d) M
    sqrt: torch.Tensor  # (B, d, d) M^(1/2)

    def apply_sqrt(self, flat: torch.Tensor) -> torch.Tensor:
        """M^(1/2) x for each row x of the (R, d) ``flat`` (row r uses copy r // C)."""
        return apply_metric(self.sqrt, flat)


class DiagonalPreconditioner(NamedTuple):
    """A constant diagonal metric per copy, M = diag(m), stored as its square root s = m^(1/2): (B, d).
    O(R d) per step, any d (slt.sampling.precondition)."""

    sqrt_diag: torch.Tensor  # (B, d)

    def apply_sqrt(self, flat: torch.Tensor) -> torch.Tensor:
        b, d = self.sqrt_diag.shape
        return (flat.reshape(b, -1, d) * self.sqrt_diag.unsqueeze(1)).reshape(flat.shape)


class LowRankPreconditioner(NamedTuple):
    """A constant structured metric per copy given by its symmetric square root

        S = Q diag(s) Q^T + P diag(t) P,   P = I - Q Q^T,   M = S^2,

    Q (B, d, k) orthonormal (the top Hessian eigenvectors at w*), s (B, k) > 0 on their span, t (B, d) > 0 a
    diagonal acting on the complement. S is symmetric and positive definite (Q^T S P = 0), so M is a valid
    constant metric. O(R d k) per step (slt.sampling.precondition)."""

    basis: torch.Tensor  # (B, d, k)
    top_sqrt: torch.Tensor  # (B, k)
    rest_sqrt_diag: torch.Tensor  # (B, d)

    def apply_sqrt(self, flat: torch.Tensor) -> torch.Tensor:
        b, d = self.rest_sqrt_diag.shape
        x = flat.reshape(b, -1, d)  # (B, C, d)
        Q = self.basis
        c = torch.bmm(x, Q)  # (B, C, k) = Q^T x per row
        px = x - torch.bmm(c, Q.mT)  # P x
        tpx = px * self.rest_sqrt_diag.unsqueeze(1)
        tpx = tpx - torch.bmm(torch.bmm(tpx, Q), Q.mT)  # P diag(t) P x
        return (torch.bmm(c * self.top_sqrt.unsqueeze(1), Q.mT) + tpx).reshape(flat.shape)


def flatten(position: Position) -> torch.Tensor:
    """(R, d) view of a tuple of (R, ...) leaves, leaves concatenated in order."""
    r = position[0].shape[0]
    return torch.cat([w.reshape(r, -1) for w in position], dim=1)


def unflatten(flat: torch.Tensor, like: Position) -> Position:
    """Inverse of :func:`flatten`: split (R, d) into leaves shaped like ``like`` (R may differ)."""
    r = flat.shape[0]
    sizes = [w[0].numel() for w in like]
    return tuple(x.reshape(r, *w.shape[1:]) for x, w in zip(torch.split(flat, sizes, dim=1), like))


def apply_metric(mats: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
    """Row-wise product mats[copy(r)] @ flat[r] for symmetric (B, d, d) ``mats`` and (R, d) ``flat``."""
    b, d = mats.shape[0], mats.shape[-1]
    # (B, C, d) @ (B, d, d) = per row x^T M = (M x)^T because M is symmetric
    return torch.bmm(flat.reshape(b, -1, d), mats).reshape(flat.shape)


def preconditioned_update(
    position: Position, precond_drift: Position, noise: Position, eps: torch.Tensor, precond: Preconditioner
) -> tuple[Position, Position]:
    """One step w' = w - (eps/2) M g + sqrt(eps) M^(1/2) xi = w + M^(1/2) (sqrt(eps) xi - (eps/2) M^(1/2) g)
    -> (w', delta = w' - w).

    ``precond_drift`` is M^(1/2) g (already multiplied); ``noise`` holds standard normal draws shaped like
    position; eps is a scalar or an (R,) tensor. One (R, d) x (d, d) product.
    """
    sg = flatten(precond_drift)
    e = eps.view(-1, 1) if eps.dim() else eps
    delta = precond.apply_sqrt((flatten(noise) * e.sqrt()).addcmul_(sg, -e / 2))
    return unflatten(flatten(position) + delta, position), unflatten(delta, position)


def preconditioned_potential_and_drift(
    loss_fn: RowLoss,
    position: Position,
    batch: object,
    anchor: Position,
    n_beta: torch.Tensor,
    gamma: torch.Tensor,
    precond: Preconditioner,
) -> tuple[torch.Tensor, torch.Tensor, Position, Position, torch.Tensor]:
    """(L, U, g, M^(1/2) g, g^T M g = |M^(1/2) g|^2) at ``position``; g as in :func:`potential_and_drift`."""
    loss, u, g, _ = potential_and_drift(loss_fn, position, batch, anchor, n_beta, gamma)
    sg = precond.apply_sqrt(flatten(g))
    return loss, u, g, unflatten(sg, position), torch.linalg.vecdot(sg, sg)


def psgld_init(
    loss_fn: RowLoss, position: Position, batch: object, anchor: Position, n_beta, gamma,
    precond: Preconditioner,
) -> SGLDState:
    loss, u, g, sg, g_m = preconditioned_potential_and_drift(loss_fn, position, batch, anchor, n_beta, gamma,
                                                             precond)
    return SGLDState(tuple(w.detach() for w in position), loss, u, g, g_m, sg)


def psgld_step(
    generator: torch.Generator,
    state: SGLDState,
    loss_fn: RowLoss,
    batch: object,
    anchor: Position,
    *,
    eps: torch.Tensor,
    n_beta: torch.Tensor,
    gamma: torch.Tensor,
    precond: Preconditioner,
    noise: str = "torch",
) -> tuple[SGLDState, SGLDInfo]:
    """One preconditioned Langevin transition of every row (module docstring), then L, U, g, M g at the new
    point on ``batch``; the MALA log acceptance uses the preconditioned proposal N(x - (eps/2) M g, eps M).
    One forward/backward and two (R, d) x (d, d) products per step. ``noise`` as in :func:`sgld_step`."""
    xi = standard_normal_like(state.position, generator, noise)
    new_pos, delta = preconditioned_update(state.position, state.precond_drift, xi, eps, precond)
    loss, u, g, sg, g_m = preconditioned_potential_and_drift(loss_fn, new_pos, batch, anchor, n_beta, gamma,
                                                             precond)
    log_a = mala_log_accept(state.potential, u, state.drift, g, state.drift_sq, g_m, delta, eps)
    return SGLDState(new_pos, loss, u, g, g_m, sg), SGLDInfo(loss, log_a)

"""Per-copy losses for batched models. Every loss returns a tensor of shape (B,), one value per copy.

Normalisation (shared by training and LLC estimation): the loss is the AVERAGE PER-SAMPLE negative
log-likelihood up to an additive constant. For Gaussian regression with unit noise on one-hot targets
that is  L = (1/N) sum_i (1/2) |e_{y_i} - f(x_i)|^2  ("mse"). The centred variant is the paper's
(1/2N) |(Y - Y_hat) P|_F^2 with P = I - 11^T/N (Cullen et al., arXiv 2603.01192): residuals centred over
the N samples of the batch. Summing over copies before ``backward`` gives each copy its own gradient.
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(1/N) sum_i (1/2)|e_{y_i} - out_i|^2 for out (B, N, q), labels y (N,) or (B, N) -> (B,).

    Uses |e_y - o|^2 = |o|^2 - 2 o_y + 1, so no one-hot target is materialised.
    """
    sq = out.pow(2).sum(-1)  # (B, N)
    oy = out.gather(-1, y.expand(out.shape[:-1]).unsqueeze(-1)).squeeze(-1)  # (B, N)
    return 0.5 * (sq - 2 * oy + 1).mean(-1)


def centred_mse(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(1/2N) |(Y - out) P|_F^2, residuals R = Y - out centred over samples: (B, N, q), (N,) -> (B,).

    sum |R - mean R|^2 = sum |R|^2 - N |mean R|^2, with mean R = counts(y)/N - mean(out).
    """
    n, q = out.shape[-2], out.shape[-1]
    sq = 2 * mse(out, y) * n  # sum_i |e_{y_i} - out_i|^2, (B,)
    if y.dim() == 1:
        freq = torch.bincount(y, minlength=q).to(out.dtype) / n  # (q,)
    else:  # one minibatch per copy
        freq = torch.zeros(y.shape[0], q, dtype=out.dtype, device=out.device)
        freq.scatter_add_(1, y, torch.ones_like(y, dtype=out.dtype)).div_(n)  # (B, q)
    mean_r = freq - out.mean(-2)  # (B, q)
    return 0.5 * (sq - n * mean_r.pow(2).sum(-1)) / n


def cross_entropy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean softmax cross-entropy per copy: (B, N, q), (N,) -> (B,)."""
    B, n, q = out.shape
    yy = y.expand(B, n).reshape(B * n)
    ce = F.cross_entropy(out.reshape(B * n, q), yy, reduction="none")
    return ce.view(B, n).mean(-1)


LOSSES: dict[str, LossFn] = {"mse": mse, "centred_mse": centred_mse, "cross_entropy": cross_entropy}


def get_loss(name: str) -> LossFn:
    if name not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, got {name!r}")
    return LOSSES[name]


def accuracy(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Fraction of argmax predictions equal to y, per copy: (B, N, q), (N,) -> (B,)."""
    return (out.argmax(-1) == y).to(torch.float32).mean(-1)

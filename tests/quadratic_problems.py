"""Exactly quadratic test problems shared by the sampler tests (not a test module)."""
import math

import torch
from torch import nn

F64 = torch.float64


def half_sq(out, t):
    return 0.5 * ((out - t) ** 2).sum(-1).mean()


def regression(d=8, cond=1e3, seed=0):
    """Realisable linear regression whose loss Hessian is H = Q diag(h) Q^T, h log-spaced in [1/cond, 1].

    Returns (model, data, h, H)."""
    g = torch.Generator().manual_seed(seed)
    Q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=F64))
    h = torch.logspace(0, -math.log10(cond), d, dtype=F64)
    X = (math.sqrt(d) * Q * h.sqrt()) @ Q.T
    w0 = torch.randn(1, d, generator=g, dtype=F64)
    model = nn.Linear(d, 1, bias=False).to(F64)
    with torch.no_grad():
        model.weight.copy_(w0)
    return model, (X, X @ w0.T), h.numpy(), ((Q * h) @ Q.T).numpy()

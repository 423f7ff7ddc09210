"""Modular-arithmetic tasks: (a op b) mod p as index pairs and labels, with seeded train/test splits.

Data are integer index tensors, never dense one-hot matrices: the quadratic network gathers embedding
rows directly (see :mod:`slt.models.quadratic`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

OPS = ("add", "sub", "mul", "div")
PRIME_OPS = ("mul", "div")


def is_prime(n: int) -> bool:
    """Deterministic trial division; p is small (< 10^4) in every use here."""
    if n < 2:
        return False
    if n % 2 == 0:
        return n == 2
    f = 3
    while f * f <= n:
        if n % f == 0:
            return False
        f += 2
    return True


def _check_task(p: int, op: str) -> None:
    if op not in OPS:
        raise ValueError(f"op must be one of {OPS}, got {op!r}")
    if not isinstance(p, int) or isinstance(p, bool) or p < 2:
        raise ValueError(f"p must be an integer >= 2, got {p!r}")
    if op in PRIME_OPS and not is_prime(p):
        raise ValueError(f"p must be prime for op={op!r} (so that every nonzero b is invertible), got p={p}")


def all_pairs(p: int, op: str = "add") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every valid pair (a, b) with label (a op b) mod p, as int64 tensors (a, b, y).

    add/sub/mul: all p^2 pairs. div: the p(p-1) pairs with b != 0, y = a * b^(p-2) mod p (Fermat inverse).
    Pairs are ordered by (a, b) lexicographically.
    """
    _check_task(p, op)
    a = torch.arange(p).repeat_interleave(p)
    b = torch.arange(p).repeat(p)
    if op == "div":
        keep = b != 0
        a, b = a[keep], b[keep]
    if op == "add":
        y = (a + b) % p
    elif op == "sub":
        y = (a - b) % p
    elif op == "mul":
        y = (a * b) % p
    else:
        inv = torch.tensor([pow(int(v), p - 2, p) if v else 0 for v in range(p)], dtype=torch.int64)
        y = (a * inv[b]) % p
    return a, b, y


@dataclass(frozen=True)
class ModularData:
    """All pairs of one task and a seeded split into train and test index sets."""

    p: int
    op: str
    train_fraction: float
    seed: int
    a: torch.Tensor  # (P,) int64
    b: torch.Tensor  # (P,)
    y: torch.Tensor  # (P,)
    train_idx: torch.Tensor  # (N,) indices into the pair arrays
    test_idx: torch.Tensor  # (P - N,)

    @property
    def n_train(self) -> int:
        return int(self.train_idx.numel())

    @property
    def n_test(self) -> int:
        return int(self.test_idx.numel())

    def train(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        i = self.train_idx
        return self.a[i], self.b[i], self.y[i]

    def test(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        i = self.test_idx
        return self.a[i], self.b[i], self.y[i]


def make_data(p: int, op: str = "add", train_fraction: float = 0.4, seed: int = 0) -> ModularData:
    """All pairs of (a op b) mod p split at random: N = floor(train_fraction * P) pairs for training.

    The permutation comes from a ``torch.Generator`` seeded with ``seed`` (no global RNG is touched),
    so the same (p, op, fraction, seed) gives the same split on any machine.
    p = 53, fraction 0.4 gives N = 1123, as in Cullen et al. (arXiv 2603.01192).
    """
    _check_task(p, op)
    frac = float(train_fraction)
    if not (0.0 < frac < 1.0):
        raise ValueError(f"train_fraction must lie in the open interval (0, 1), got {train_fraction!r}")
    a, b, y = all_pairs(p, op)
    total = a.numel()
    n_train = int(frac * total)
    if not (1 <= n_train <= total - 1):
        raise ValueError(
            f"train_fraction={train_fraction} gives {n_train} training pairs out of {total}; "
            f"need between 1 and {total - 1}"
        )
    g = torch.Generator().manual_seed(int(seed))
    perm = torch.randperm(total, generator=g)
    train_idx = perm[:n_train].sort().values
    test_idx = perm[n_train:].sort().values
    return ModularData(p, op, frac, int(seed), a, b, y, train_idx, test_idx)

"""Polynomial networks on finite inputs: one description, one torch forward.

    z_0 = x,   z_l = (z_{l-1} W_l + b_l)^k   (l = 1..L, elementwise power k),   f(x) = z_L A + c

with activation degree k in 1..4, depth L in 1..3 hidden layers, biases b_l, c optional (all or none).
Inputs are either index tuples (x_1, .., x_s) into one-hot alphabets of sizes n_1..n_s (the modular and
group tasks: x is the concatenated one-hot [e_{x_1}; ..; e_{x_s}], and x W_1 is the sum of s gathered
rows), or dense vectors of a fixed dimension. ``tied``: every slot uses the same table, so the first
layer sees the sum of the s one-hot vectors.

The quadratic network of :mod:`slt.models.quadratic` is ``PolyNet(alphabets=(p, p), widths=(K,),
n_out=p, activation=2)``: z_1 W... = (U[a] + V[b])^2 with W_1 = [U; V] and A the readout.

Parameter order (also the Jacobian's column order in :mod:`slt.theory.polynomial`):
W1 (d_in, m_1), b1 (m_1), W2 (m_1, m_2), b2, .., A (m_L, q), c (q); biases only when ``bias``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

__all__ = ["PolyNet", "PolyNetModule", "encode_inputs"]

MAX_DEGREE = 4
MAX_DEPTH = 3


def _pos_int(name: str, v, lo: int = 1, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo or (hi is not None and v > hi):
        rng = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ValueError(f"{name} must be an integer in {rng}, got {v!r}")
    return int(v)


@dataclass(frozen=True)
class PolyNet:
    """Description of a polynomial network on finite inputs (see the module docstring for the formula).

    alphabets: one-hot input slots and their alphabet sizes, e.g. (p, p) for (a, b) pairs; or
    dense_dim: the dimension of dense input vectors (exactly one of the two is given).
    widths: hidden widths m_1..m_L (1 <= L <= 3); activation: k in 1..4 (t -> t^k);
    n_out: q outputs; bias: biases in every layer (b_1..b_L and c); tied: one embedding table shared by
    every one-hot slot (needs equal alphabet sizes).
    """

    widths: tuple[int, ...]
    n_out: int
    activation: int = 2
    alphabets: tuple[int, ...] | None = None
    dense_dim: int | None = None
    bias: bool = False
    tied: bool = False

    def __post_init__(self) -> None:
        if (self.alphabets is None) == (self.dense_dim is None):
            raise ValueError("give exactly one of alphabets (one-hot index inputs) and dense_dim (dense inputs)")
        if self.alphabets is not None:
            al = tuple(self.alphabets)
            if not al:
                raise ValueError("alphabets must list at least one slot size")
            for i, n in enumerate(al):
                _pos_int(f"alphabets[{i}]", n, 1)
            object.__setattr__(self, "alphabets", tuple(int(n) for n in al))
            if self.tied and len(set(al)) != 1:
                raise ValueError(f"tied embeddings need equal alphabet sizes, got alphabets={al}")
        else:
            _pos_int("dense_dim", self.dense_dim, 1)
            if self.tied:
                raise ValueError("tied applies to one-hot inputs (alphabets), not to dense_dim")
        w = tuple(self.widths) if not isinstance(self.widths, (int, np.integer)) else (int(self.widths),)
        if not 1 <= len(w) <= MAX_DEPTH:
            raise ValueError(f"widths must list 1 to {MAX_DEPTH} hidden widths (the depth), got {w}")
        for i, m in enumerate(w):
            _pos_int(f"widths[{i}]", m, 1)
        object.__setattr__(self, "widths", tuple(int(m) for m in w))
        _pos_int("activation", self.activation, 1, MAX_DEGREE)
        _pos_int("n_out", self.n_out, 1)

    # ---------------------------------------------------------------------------------------- shapes
    @property
    def depth(self) -> int:
        return len(self.widths)

    @property
    def one_hot(self) -> bool:
        return self.alphabets is not None

    @property
    def d_in(self) -> int:
        """Columns of W_1: the one-hot length (sum of alphabets, or one alphabet when tied) or dense_dim."""
        if not self.one_hot:
            return int(self.dense_dim)
        return self.alphabets[0] if self.tied else sum(self.alphabets)

    @property
    def degree(self) -> int:
        """Total degree k^L of f in x (homogeneous without biases)."""
        return self.activation ** self.depth

    def shapes(self) -> list[tuple[str, tuple[int, ...]]]:
        """(name, shape) of every parameter, in the canonical order."""
        out, prev = [], self.d_in
        for l, m in enumerate(self.widths, start=1):
            out.append((f"W{l}", (prev, m)))
            if self.bias:
                out.append((f"b{l}", (m,)))
            prev = m
        out.append(("A", (prev, self.n_out)))
        if self.bias:
            out.append(("c", (self.n_out,)))
        return out

    @property
    def n_params(self) -> int:
        return sum(int(np.prod(s)) for _, s in self.shapes())

    def label(self) -> str:
        inp = ("x".join(map(str, self.alphabets)) + ("-tied" if self.tied else "")) if self.one_hot else f"dense{self.dense_dim}"
        return f"k{self.activation}-L{self.depth}-w{'x'.join(map(str, self.widths))}-{inp}-q{self.n_out}" + (
            "-bias" if self.bias else "")

    # ---------------------------------------------------------------------------------------- points
    def init_params(self, seed: int = 0, scale: float = 1.0, dtype=torch.float64) -> dict[str, torch.Tensor]:
        """Seeded Gaussian parameters N(0, scale^2 / fan_in), fan_in = number of active inputs of a unit
        (slots for one-hot inputs, d for dense, m_{l-1} deeper), so pre-activations are O(scale)."""
        g = torch.Generator().manual_seed(int(seed))
        fan = len(self.alphabets) if self.one_hot else self.d_in
        out = {}
        for name, shape in self.shapes():
            if name.startswith("W") and name != "W1":
                fan = shape[0]
            if name == "A":
                fan = shape[0]
            std = scale / np.sqrt(fan) if name[0] in "WA" else scale / np.sqrt(max(fan, 1))
            out[name] = torch.randn(shape, generator=g, dtype=dtype) * std
        return out


def encode_inputs(spec: PolyNet, x) -> np.ndarray:
    """The dense first-layer input X (N, d_in): concatenated one-hots of index tuples (x (N, s) ints), the
    sum of the one-hots when tied, or the dense vectors themselves (x (N, d_in))."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"inputs must be a nonempty (N, slots) or (N, d) array, got shape {x.shape}")
    if not spec.one_hot:
        if x.shape[1] != spec.dense_dim:
            raise ValueError(f"dense inputs must have {spec.dense_dim} columns, got {x.shape[1]}")
        return x
    if x.shape[1] != len(spec.alphabets):
        raise ValueError(f"index inputs must have {len(spec.alphabets)} columns (slots), got {x.shape[1]}")
    if not np.issubdtype(x.dtype, np.integer):
        raise ValueError("index inputs must be integers")
    for j, n in enumerate(spec.alphabets):
        if x[:, j].min() < 0 or x[:, j].max() >= n:
            raise ValueError(f"inputs[:, {j}] must hold indices in [0, {n - 1}]")
    X = np.zeros((x.shape[0], spec.d_in), dtype=np.int64)
    rows = np.arange(x.shape[0])
    off = 0
    for j, n in enumerate(spec.alphabets):
        np.add.at(X, (rows, (0 if spec.tied else off) + x[:, j]), 1)
        off += n
    return X


class PolyNetModule(nn.Module):
    """Torch forward of a :class:`PolyNet` (one parameter copy; the sampler vmaps over chains).

    forward(x): x (N, s) int64 indices (one-hot inputs: the first layer is a gather of s rows of W_1,
    never a product with a one-hot matrix) or (N, d) float (dense). Returns (N, q)."""

    def __init__(self, spec: PolyNet, params: dict[str, torch.Tensor] | None = None, seed: int = 0,
                 scale: float = 1.0, dtype=torch.float64):
        super().__init__()
        self.spec = spec
        params = spec.init_params(seed, scale, dtype) if params is None else params
        for name, shape in spec.shapes():
            t = torch.as_tensor(params[name], dtype=dtype)
            if tuple(t.shape) != shape:
                raise ValueError(f"parameter {name} must have shape {shape}, got {tuple(t.shape)}")
            self.register_parameter(name, nn.Parameter(t.clone()))
        offs = [0] if spec.tied or not spec.one_hot else np.cumsum((0,) + spec.alphabets[:-1]).tolist()
        self.register_buffer("offsets", torch.as_tensor(offs, dtype=torch.long), persistent=False)

    def first_layer(self, x: torch.Tensor) -> torch.Tensor:
        if self.spec.one_hot:
            idx = x.long() + self.offsets  # (N, s): row of W_1 for each slot
            h = self.W1[idx].sum(-2)
        else:
            h = x.to(self.W1.dtype) @ self.W1
        return h + self.b1 if self.spec.bias else h

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        k = self.spec.activation
        z = self.first_layer(x) ** k
        for l in range(2, self.spec.depth + 1):
            h = z @ getattr(self, f"W{l}")
            if self.spec.bias:
                h = h + getattr(self, f"b{l}")
            z = h ** k
        out = z @ self.A
        return out + self.c if self.spec.bias else out

    def param_dict(self) -> dict[str, np.ndarray]:
        return {n: getattr(self, n).detach().cpu().double().numpy() for n, _ in self.spec.shapes()}

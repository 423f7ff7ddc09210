"""The quadratic network of Cullen et al. (arXiv 2603.01192, sec. 3) and Gromov (arXiv 2301.02679).

    f(a, b) = A (U[:, a] + V[:, b])^2        (square elementwise)

with U, V in R^{m x p} (m = width K) and A in R^{p_out x m}. On the concatenated one-hot input
x = [e_a; e_b] this is the paper's readout A (W^T x)^2 with W^T = [U V]; because x is one-hot,
W^T x = U[:, a] + V[:, b] is computed as a gather, never as a product with a one-hot matrix.

Storage (chosen so the forward is gather + square + batched matmul on contiguous rows):

    U: (B, p, m)      U[c, a, :] is column a of the paper's U for copy c
    V: (B, p, m)      absent when tied (then V = U)
    A: (B, m, p_out)  A[c] is the transpose of the paper's readout

B is a leading axis of independent parameter copies (seeds, SGLD chains): one call evaluates all.
No biases. Initialisation mimics ``torch.nn.Linear`` defaults of the paper's code: first layer
U(-1/sqrt(2p), 1/sqrt(2p)) (fan-in 2p of the one-hot input), readout U(-1/sqrt(m), 1/sqrt(m)),
each multiplied by ``init_scale``.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from slt.models.matmul import baddbmm_, bmm, bmm_mul


@dataclass(frozen=True)
class QuadraticConfig:
    p: int
    width: int
    n_copies: int = 1
    tied: bool = False
    n_out: int | None = None  # defaults to p
    init_scale: float = 1.0

    def __post_init__(self) -> None:
        if not isinstance(self.p, int) or self.p < 2:
            raise ValueError(f"p must be an integer >= 2, got {self.p!r}")
        if not isinstance(self.width, int) or self.width < 1:
            raise ValueError(f"width must be an integer >= 1, got {self.width!r}")
        if not isinstance(self.n_copies, int) or self.n_copies < 1:
            raise ValueError(f"n_copies must be an integer >= 1, got {self.n_copies!r}")
        if self.n_out is not None and (not isinstance(self.n_out, int) or self.n_out < 1):
            raise ValueError(f"n_out must be None or an integer >= 1, got {self.n_out!r}")
        if not (self.init_scale > 0 and math.isfinite(self.init_scale)):
            raise ValueError(f"init_scale must be a finite number > 0, got {self.init_scale!r}")

    @property
    def out_dim(self) -> int:
        return self.p if self.n_out is None else self.n_out

    def to_dict(self) -> dict:
        return asdict(self)


_CHUNK_FLOATS = 2**18  # activations per chunk of a shared-index forward: 1 MiB of float32


def quadratic_forward(
    U: torch.Tensor, V: torch.Tensor, A: torch.Tensor, a: torch.Tensor, b: torch.Tensor
) -> torch.Tensor:
    """Pure forward: U, V (B, p, m), A (B, m, p_out) -> outputs (B, N, p_out).

    a, b: (N,) int64, the same inputs for every copy, or (B, N), a different minibatch per copy
    (e.g. one per SGLD chain). Also accepts unbatched parameters U, V (p, m), A (m, p_out) with
    a, b (N,) -> (N, p_out), so it composes with ``torch.func.vmap`` / ``functional_call``.
    """
    if a.dim() == 1 and U.dim() == 2:  # unbatched parameters (vmap / functional_call)
        h = U.index_select(-2, a) + V.index_select(-2, b)
        return torch.matmul(h * h, A)
    B, p, m = U.shape
    if a.dim() == 1:
        chunk = max(16, _CHUNK_FLOATS // (B * m))
        if a.shape[0] > chunk:
            # in chunks of samples whose (B, chunk, m) activations stay in cache: ~4x faster than one (B, N, m)
            # pass for a full-data evaluation at p 53, width 1,024, 3 copies (benchmarks/bench_llc.py)
            return torch.cat([quadratic_forward(U, V, A, a[i:i + chunk], b[i:i + chunk])
                              for i in range(0, a.shape[0], chunk)], dim=-2)
    # one row gather from the (B*p, m) flattened table: index_select (backward: index_add) is ~1.5x faster on CPU
    # than torch.gather with expanded (B, N, m) indices (benchmarks/bench_training.py), and ~5x faster than
    # index_select along dim -2 of the (B, p, m) tensor
    h, _, _ = _gather_rows(U, V, a, b)  # (B, N, m)
    if torch.is_grad_enabled() and (U.requires_grad or V.requires_grad or A.requires_grad):
        return torch.matmul(h * h, A)  # (B, N, p_out)
    return bmm(h.mul_(h), A)  # no graph: square in place


def _gather_rows(U: torch.Tensor, V: torch.Tensor, a: torch.Tensor, b: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """h = U[a] + V[b] (B, N, m) for a, b (N,) or (B, N), and the flat row indices of a and b into (B p, m)."""
    B, p, m = U.shape
    off = torch.arange(B, device=U.device).unsqueeze(1) * p
    ia = ((a if a.dim() == 2 else a.expand(B, -1)) + off).reshape(-1)
    ib = ((b if b.dim() == 2 else b.expand(B, -1)) + off).reshape(-1)
    h = U.reshape(B * p, m).index_select(0, ia)
    h += V.reshape(B * p, m).index_select(0, ib)
    return h.view(B, -1, m), ia, ib


def _label_residual(out: torch.Tensor, y: torch.Tensor, centred: bool) -> torch.Tensor:
    """out - Y for integer labels y (N,) or (B, N) (Y one-hot), centred over the samples when ``centred``."""
    r = out.clone()
    idx = (y if y.dim() == 2 else y.expand(out.shape[0], -1)).unsqueeze(-1)
    r.scatter_add_(-1, idx, torch.full(idx.shape, -1.0, dtype=out.dtype, device=out.device))
    if centred:
        r -= r.mean(-2, keepdim=True)
    return r


# activation bytes per chunk of copies in quadratic_loss_and_grad (see copies_per_chunk)
_CHUNK_BYTES = 8 << 20


def copies_per_chunk(nb: int, m: int, q: int, elem: int) -> int:
    """How many copies :func:`quadratic_loss_and_grad` processes at once: as many as keep their step's
    activations (h, s = h^2, G A^T: 3 nb m, and the outputs, 2 nb q) within ``_CHUNK_BYTES`` = 8 MiB, at least
    one. A fixed rule of the shapes (never a timing), so the numbers do not depend on the machine's load.
    Measured here (one thread; benchmarks/README.md): training the grokking preset (p 53, width 512, batch 128) with
    100 seeds took 41.7 ms a step in one pass, 38.1 in chunks of 4 or 10, 39.9 in chunks of 2, 44.7 one copy at a
    time; SGLD at the paper's setting (width 1,024), 32 chains in chunks of 5: 936 -> 1,042 chain-steps/s."""
    return max(1, _CHUNK_BYTES // (elem * nb * (3 * m + 2 * q)))


@torch.no_grad()
def quadratic_loss_and_grad(U: torch.Tensor, V: torch.Tensor, A: torch.Tensor, a: torch.Tensor, b: torch.Tensor,
                            y: torch.Tensor, *, centred: bool, tied: bool = False,
                            scale: torch.Tensor | float = 1.0, into: tuple[torch.Tensor, ...] | None = None
                            ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
    """Per-copy loss (B,) of ``mse`` (centred=False) or ``centred_mse`` (slt.losses) on integer labels, and
    ``scale`` x its gradient w.r.t. (U, V, A) ((U, A) when tied, V is U), in closed form, no autograd graph.

    With h = U[a] + V[b], s = h * h, out = s A, r = out - Y (centred over the b samples: P r, P = I - 11^T/b):
        L = |r|^2 / (2b),  G = scale dL/d out = scale r / b,
        scale dL/dA = s^T G,  scale dL/dh = 2 h * (G A^T),  scatter-added into the rows a (U) and b (V).
    ``scale``: a scalar or (B,) (e.g. SGLD's n_beta per chain). ``into``: buffers the gradient is ADDED to (e.g. a
    drift already holding gamma (w - w*)); fresh zeros when None. Returns (loss, the gradient tuple).
    Same arithmetic as autograd through :func:`quadratic_forward` and the loss, with fewer passes over the
    parameters and no graph. Copies are processed in chunks of :func:`copies_per_chunk` (a rule of the shapes)."""
    B, p, m = U.shape
    nb = a.shape[-1]
    if into is None:
        into = tuple(torch.zeros_like(w) for w in ((U, A) if tied else (U, V, A)))
    per = copies_per_chunk(nb, m, A.shape[-1], U.element_size())
    if B > per:
        # chunks of copies whose activations stay in the last-level cache between the gather, the three products
        # and the scatter. Each copy's arithmetic is unchanged; a batched kernel may sum in another order for another
        # number of copies (float rounding: bit-identical at the grokking preset's size, tests/test_model.py)
        per = -(-B // -(-B // per))  # the same number of chunks, of near-equal sizes
        idx = [x if x.dim() == 1 else None for x in (a, b, y)]  # (N,) shared by every copy: not split
        k_all = scale if isinstance(scale, torch.Tensor) and scale.dim() else None
        losses = []
        for lo in range(0, B, per):
            sl = slice(lo, lo + per)
            aa, bb, yy = (s if s is not None else x[sl] for s, x in zip(idx, (a, b, y)))
            losses.append(quadratic_loss_and_grad(
                U[sl], V[sl], A[sl], aa, bb, yy, centred=centred, tied=tied,
                scale=scale if k_all is None else k_all[sl], into=tuple(g[sl] for g in into))[0])
        return torch.cat(losses), into
    h, ia, ib = _gather_rows(U, V, a, b)
    s = h * h
    r = _label_residual(bmm(s, A), y, centred)
    loss = 0.5 * r.pow(2).sum((-2, -1)) / nb
    k = scale / nb
    G = r.mul_(k.view(-1, 1, 1) if isinstance(k, torch.Tensor) and k.dim() else k)
    baddbmm_(into[-1], s.mT, G)
    dh = bmm_mul(G, A.mT, h).view(-1, m)  # (G A^T) * h; the factor 2 goes into the scatter
    into[0].view(B * p, m).index_add_(0, ia, dh, alpha=2.0)
    into[0 if tied else 1].view(B * p, m).index_add_(0, ib, dh, alpha=2.0)
    return loss, into


class QuadraticNet(nn.Module):
    """B independent copies of f(a, b) = A (U[:, a] + V[:, b])^2, evaluated in one call.

    ``forward(a, b)`` takes index tensors of shape (N,) (shared) or (B, N) (per copy) and returns
    (B, N, p_out).
    """

    def __init__(
        self,
        p: int,
        width: int,
        n_copies: int = 1,
        tied: bool = False,
        n_out: int | None = None,
        init_scale: float = 1.0,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        self.config = QuadraticConfig(p, width, n_copies, tied, n_out, init_scale)
        B, m, q = n_copies, width, self.config.out_dim
        g = generator if generator is not None else torch.Generator().manual_seed(0)

        def uniform(shape: tuple[int, ...], bound: float) -> torch.Tensor:
            # drawn on CPU with the explicit generator so results do not depend on the device
            t = (torch.rand(shape, generator=g, dtype=torch.float64) * 2 - 1) * bound
            return t.to(dtype=dtype, device=device)

        s = init_scale
        self.U = nn.Parameter(uniform((B, p, m), s / math.sqrt(2 * p)))
        if tied:
            self.register_parameter("V", None)
        else:
            self.V = nn.Parameter(uniform((B, p, m), s / math.sqrt(2 * p)))
        self.A = nn.Parameter(uniform((B, m, q), s / math.sqrt(m)))

    @property
    def n_copies(self) -> int:
        return self.U.shape[0]

    @property
    def tied(self) -> bool:
        return self.V is None

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        V = self.U if self.V is None else self.V
        return quadratic_forward(self.U, V, self.A, a, b)

    def select(self, idx: int | list[int] | torch.Tensor) -> "QuadraticNet":
        """A new network holding the copies ``idx`` (parameters cloned, detached)."""
        idx_t = torch.as_tensor([idx] if isinstance(idx, int) else idx, dtype=torch.long)
        cfg = self.config
        new = QuadraticNet(cfg.p, cfg.width, int(idx_t.numel()), cfg.tied, cfg.n_out, cfg.init_scale,
                           dtype=self.U.dtype, device=self.U.device)
        with torch.no_grad():
            for name, param in self.named_parameters():
                getattr(new, name).copy_(param.index_select(0, idx_t.to(param.device)))
        return new

    def weight_norm(self) -> torch.Tensor:
        """Euclidean norm of all parameters, per copy: (B,)."""
        sq = sum(p.detach().pow(2).flatten(1).sum(1) for p in self.parameters())
        return sq.sqrt()

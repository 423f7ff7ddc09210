"""The quadratic network's residual map and its Jacobian products, matrix-free, in float64.

    F(w)[i, q] = sum_k A[k, q] s_ik^2,   s_ik = U[a_i, k] + V[b_i, k]          (V = U when tied)
    R(w) = P (F(w) - Y) / sqrt(N)        (P = I - 11^T/N on the sample axis when centred, else I)

so the data loss of :mod:`slt.losses` is L(w) = |R(w)|^2 / 2 (mse / centred_mse: the average per-sample
Gaussian negative log-likelihood). Products with J = dR/dw, never J itself (J has p N rows and 3 p K
columns: 59,466 x 162,816 at the paper's scale):

    J dw   = P (2 s o ds) A + P s^2 dA) / sqrt(N),          ds_ik = dU[a_i, k] + dV[b_i, k]
    J^T G  : dA = (s^2)^T (P G),  dU[c, k] = sum_{i: a_i = c} 2 s_ik (P G A^T)_ik,  dV likewise with b,
             all divided by sqrt(N).

Storage as in :mod:`slt.theory.jacobian` (one copy): U (p, m), V (p, m) or None (tied), A (m, q).
Targets: class labels y (N,) (one-hot targets, as in training) or real targets (N, q) (e.g. a teacher's outputs).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["ResidualMap", "targets_matrix"]


def targets_matrix(y, n: int, q: int) -> np.ndarray:
    """Y (N, q) float64 from class labels (N,) or real-valued targets (N, q)."""
    y = np.asarray(y)
    if y.ndim == 1:
        if y.shape[0] != n:
            raise ValueError(f"y (labels) must have length N = {n}, got {y.shape[0]}")
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError("y of shape (N,) must hold integer class labels; pass real targets as (N, q)")
        if y.min() < 0 or y.max() >= q:
            raise ValueError(f"y must hold labels in [0, {q - 1}]")
        return np.eye(q)[y]
    if y.ndim == 2:
        if y.shape != (n, q):
            raise ValueError(f"y (real targets) must have shape (N, q) = {(n, q)}, got {y.shape}")
        if not np.all(np.isfinite(y)):
            raise ValueError("y holds NaN or inf")
        return y.astype(np.float64)
    raise ValueError(f"y must be labels (N,) or targets (N, q), got shape {y.shape}")


@dataclass
class ResidualMap:
    """R(w) and products with its Jacobian for fixed data. ``flat`` vectors order (U, V, A), row-major."""

    a: torch.Tensor  # (N,) long
    b: torch.Tensor  # (N,) long
    Y: torch.Tensor  # (N, q) float64
    p: int
    m: int
    q: int
    tied: bool
    centred: bool

    @classmethod
    def build(cls, U, V, A, a, b, y, centred: bool = False, device: str | torch.device = "cpu") -> "ResidualMap":
        from slt.theory.jacobian import _check_inputs

        U = np.asarray(U)
        A = np.asarray(A)
        a = np.asarray(a, dtype=np.int64)
        b = np.asarray(b, dtype=np.int64)
        _check_inputs(U, None if V is None else np.asarray(V), A, a, b)  # shapes and index ranges, as llc_at_point
        if a.ndim != 1 or a.size < 2:
            raise ValueError(f"a and b must be 1-D with at least 2 samples, got shape {a.shape}")
        p, m = U.shape
        for name, X in (("U", U), ("V", V), ("A", A)):
            if X is not None and not np.all(np.isfinite(np.asarray(X, dtype=np.float64))):
                raise ValueError(f"{name} holds NaN or inf")
        q = A.shape[1]
        Y = targets_matrix(y, a.size, q)
        dev = torch.device(device)
        return cls(torch.as_tensor(a, device=dev), torch.as_tensor(b, device=dev),
                   torch.as_tensor(Y, device=dev), p, m, q, V is None, centred)

    # ---- parameter vectors ---------------------------------------------------------------------------------
    @property
    def n(self) -> int:
        return int(self.a.shape[0])

    @property
    def sizes(self) -> list[int]:
        return [self.p * self.m] * (1 if self.tied else 2) + [self.m * self.q]

    @property
    def dim(self) -> int:
        return sum(self.sizes)

    @property
    def rows(self) -> int:
        """Number of residual components that vary: q N, or q (N - 1) once centred."""
        return self.q * (self.n - int(self.centred))

    def flat(self, U, V, A) -> torch.Tensor:
        parts = [U] + ([] if self.tied else [V]) + [A]
        return torch.cat([torch.as_tensor(np.asarray(t), dtype=torch.float64, device=self.Y.device).reshape(-1)
                          for t in parts])

    def split(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        parts = torch.split(w, self.sizes)
        U = parts[0].view(self.p, self.m)
        V = U if self.tied else parts[1].view(self.p, self.m)
        A = parts[-1].view(self.m, self.q)
        return U, V, A

    def unflat(self, w: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        U, V, A = (t.detach().cpu().numpy().copy() for t in self.split(w))
        return U, (None if self.tied else V), A

    # ---- the map and its products -------------------------------------------------------------------------
    def _P(self, X: torch.Tensor) -> torch.Tensor:
        return X - X.mean(0, keepdim=True) if self.centred else X

    def hidden(self, w: torch.Tensor) -> torch.Tensor:
        U, V, _ = self.split(w)
        return U[self.a] + V[self.b]  # (N, m)

    def residual(self, w: torch.Tensor) -> torch.Tensor:
        """R(w), shape (N, q)."""
        _, _, A = self.split(w)
        s = self.hidden(w)
        return self._P((s * s) @ A - self.Y) / np.sqrt(self.n)

    def loss(self, w: torch.Tensor) -> float:
        return 0.5 * float(self.residual(w).pow(2).sum())

    def jvp(self, w: torch.Tensor, dw: torch.Tensor, s: torch.Tensor | None = None) -> torch.Tensor:
        """J dw, shape (N, q)."""
        _, _, A = self.split(w)
        dU, dV, dA = self.split(dw)
        s = self.hidden(w) if s is None else s
        ds = dU[self.a] + dV[self.b]
        return self._P((2 * s * ds) @ A + (s * s) @ dA) / np.sqrt(self.n)

    def vjp(self, w: torch.Tensor, G: torch.Tensor, s: torch.Tensor | None = None) -> torch.Tensor:
        """J^T G for G of shape (N, q); returns a flat (d,) vector."""
        _, _, A = self.split(w)
        s = self.hidden(w) if s is None else s
        G = self._P(G) / np.sqrt(self.n)
        dA = (s * s).T @ G
        h = 2 * s * (G @ A.T)  # (N, m): dL/ds
        dU = torch.zeros(self.p, self.m, dtype=h.dtype, device=h.device).index_add_(0, self.a, h)
        if self.tied:
            dU.index_add_(0, self.b, h)
            return torch.cat([dU.reshape(-1), dA.reshape(-1)])
        dV = torch.zeros_like(dU).index_add_(0, self.b, h)
        return torch.cat([dU.reshape(-1), dV.reshape(-1), dA.reshape(-1)])

    def gradient(self, w: torch.Tensor) -> torch.Tensor:
        """grad of L = |R|^2/2: J^T R."""
        s = self.hidden(w)
        _, _, A = self.split(w)
        R = self._P((s * s) @ A - self.Y) / np.sqrt(self.n)
        return self.vjp(w, R, s)

    def orbit_dim(self, w: torch.Tensor, rtol: float = 1e-12) -> int:
        """Dimension of the orbit of the continuous symmetries through w: per unit k the rescaling
        (u_k, v_k, a_k) -> (t u_k, t v_k, a_k / t^2) and, untied, the shift u_k += c 1, v_k -= c 1 (a unit
        sees only U[a, k] + V[b, k]). Both leave F unchanged for any data, so their tangents lie in ker J
        everywhere. Generators of different units have disjoint supports, so the dimension is a sum over units
        of the rank of each unit's (at most) two tangents, read off their 2 x 2 Gram matrix."""
        U, V, A = self.split(w)
        scale2 = U.pow(2).sum(0) + (0 if self.tied else V.pow(2).sum(0)) + 4 * A.pow(2).sum(1)  # |t_scale|^2
        live = scale2 > rtol * max(float(scale2.max()), 1e-300)
        if self.tied:
            return int(live.sum())
        shift2 = torch.full_like(scale2, 2.0 * self.p)
        cross = U.sum(0) - V.sum(0)
        det = scale2 * shift2 - cross * cross
        indep = det > 1e-10 * scale2 * shift2
        return int(self.m + (live & indep).sum())

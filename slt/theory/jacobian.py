"""Rank of the quadratic network's parameter-to-function map on training inputs, and lambda at a point.

The map is  w = (U, V, A) -> F(w) = (f(a_i, b_i))_{i=1..N} in R^{N x q},  f(a, b) = A^T (U[a] + V[b])^2
(storage of :mod:`slt.models.quadratic`: U, V (p, m), A (m, q); tied: V = U). For the Gaussian loss
L = (1/2N) |Y - F|^2 (or the centred (1/2N) |(Y - F)P|^2, P = I - 11^T/N) the population-like K(w) is a
quadratic form in F(w) - F(w*), so near an interpolating w* the learning coefficient is governed by the
Jacobian J = dF/dw (resp. P J):

* lower bound (always):  lambda(w*) >= rank J(w*) / 2  (choose coordinates in which rank-J of the components
  of F are coordinates; K dominates their sum of squares). For a non-interpolating minimum the same holds
  with the Hessian of L (splitting lemma: K - K* = sum_{i <= h} y_i^2 + g(rest)).
* equality (Morse-Bott, Watanabe 2009 sec. 7.1; Lau et al. 2308.12108 sec. 3): if the rank is constant on
  the minimum set near w*, that set is a manifold of codimension r and lambda(w*) = r/2, m = 1.
* upper bound: lambda(w*) <= lambda(w') for minimisers w' arbitrarily close to w* (local RLCT is the
  minimum over a neighbourhood), so a nearby Morse-Bott minimiser of rank r' gives lambda(w*) <= r'/2.

Exact ranks: with integer parameters every Jacobian entry is an integer polynomial value; rank over the
prime field F_P (P = 2^31 - 1) is <= rank over Q (a nonzero minor mod P is nonzero), and the rank at any
point is <= the generic rank. So ``rank_mod_prime`` at a random integer point is a rigorous LOWER bound on
the generic rank, which is exactly what is needed to prove a symmetry upper bound tight.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import sympy as sp
import torch

__all__ = [
    "PRIME",
    "quadratic_jacobian",
    "rank_mod_prime",
    "exact_rank_at",
    "random_integer_point",
    "numerical_rank",
    "PointLLC",
    "llc_at_point",
    "llc_at_net",
    "point_from_net",
]

PRIME = 2_147_483_647  # 2^31 - 1: products of two residues fit in int64
# A probe at distance delta along ker J returns to a smooth minimum set by O(delta^2); 0.05 delta
# separates that (relative size ~ delta = 1e-3) from the O(delta) return of a non-tangent direction.
TANGENT_RATIO = 0.05


def _check_inputs(U, V, A, a, b) -> None:
    if U.ndim != 2 or A.ndim != 2 or (V is not None and V.shape != U.shape):
        raise ValueError("U must be (p, m), V None or (p, m), A (m, q)")
    if A.shape[0] != U.shape[1]:
        raise ValueError(f"A must have {U.shape[1]} rows (the width), got {A.shape[0]}")
    if len(a) != len(b) or len(a) < 1:
        raise ValueError(f"a and b must be nonempty and of equal length, got {len(a)} and {len(b)}")
    p = U.shape[0]
    for name, idx in (("a", a), ("b", b)):
        if np.min(idx) < 0 or np.max(idx) >= p:
            raise ValueError(f"{name} must hold indices in [0, {p - 1}]")


def quadratic_jacobian(U, V, A, a, b, centred: bool = False, integer: bool = False) -> np.ndarray:
    """J = dF/dw, rows (i, q) of F (N x q, row-major), columns (U, V, A) flattened row-major. -> (Nq, d).

    Entries: dF[i,q]/dA[k,q] = s_ik^2,  dF[i,q]/dU[c,k] = 2 A[k,q] s_ik [a_i = c]  (+ [b_i = c] if tied),
    dF[i,q]/dV[c,k] = 2 A[k,q] s_ik [b_i = c], with s_ik = U[a_i,k] + V[b_i,k]. ``V=None``: tied (V = U,
    no V columns). ``centred``: rows multiplied by N P = N I - 11^T (same rank as P J, stays integral).
    ``integer``: int64 arithmetic (U, V, A must be integer arrays) for exact ranks.
    """
    U = np.asarray(U)
    A = np.asarray(A)
    Vn = None if V is None else np.asarray(V)
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    _check_inputs(U, Vn, A, a, b)
    dt = np.int64 if integer else np.float64
    U, A = U.astype(dt), A.astype(dt)
    tied = Vn is None
    Vv = U if tied else Vn.astype(dt)
    p, m = U.shape
    q = A.shape[1]
    n = len(a)
    s = U[a] + Vv[b]  # (N, m)
    dA = np.zeros((n, q, m, q), dtype=dt)
    for j in range(q):
        dA[:, j, :, j] = s * s
    g = 2 * s[:, None, :] * A.T[None, :, :]  # (N, q, m): 2 A[k,q] s_ik
    dU = np.zeros((n, q, p, m), dtype=dt)
    np.add.at(dU, (np.arange(n), slice(None), a), g)
    blocks = [dU.reshape(n * q, p * m)]
    if tied:
        dU2 = np.zeros((n, q, p, m), dtype=dt)
        np.add.at(dU2, (np.arange(n), slice(None), b), g)
        blocks[0] = blocks[0] + dU2.reshape(n * q, p * m)
    else:
        dV = np.zeros((n, q, p, m), dtype=dt)
        np.add.at(dV, (np.arange(n), slice(None), b), g)
        blocks.append(dV.reshape(n * q, p * m))
    blocks.append(dA.reshape(n * q, m * q))
    J = np.concatenate(blocks, axis=1)
    if centred:
        J3 = J.reshape(n, q, -1)
        J = (n * J3 - J3.sum(0, keepdims=True)).reshape(n * q, -1)
    return J


def rank_mod_prime(M: np.ndarray, prime: int = PRIME) -> int:
    """Rank of an integer matrix over F_prime by Gaussian elimination (row ops vectorised). Exact.

    rank_F_prime(M) <= rank_Q(M) for integer M, with equality unless prime divides every maximal nonzero
    minor (probability ~ 1/prime at a random point).
    """
    if prime > 3_037_000_499:
        raise ValueError("prime must be < 3.04e9 so that products of residues fit in int64")
    R = np.mod(np.asarray(M, dtype=np.int64), prime)
    if R.ndim != 2:
        raise ValueError("M must be a 2-D integer matrix")
    if R.shape[0] < R.shape[1]:
        R = R.T.copy()  # eliminate along the shorter side
    rows, cols = R.shape
    rank = 0
    for c in range(cols):
        if rank == rows:
            break
        nz = np.nonzero(R[rank:, c])[0]
        if nz.size == 0:
            continue
        piv = rank + nz[0]
        if piv != rank:
            R[[rank, piv]] = R[[piv, rank]]
        inv = pow(int(R[rank, c]), prime - 2, prime)
        R[rank, c:] = (R[rank, c:] * inv) % prime
        below = R[rank + 1:, c]
        idx = np.nonzero(below)[0] + rank + 1
        if idx.size:
            R[idx, c:] = (R[idx, c:] - (R[idx, c, None] * R[rank, None, c:]) % prime) % prime
        rank += 1
    return rank


def random_integer_point(p: int, m: int, q: int | None = None, tied: bool = False, seed: int = 0,
                         bound: int = 10_000) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Integer parameters uniform in [-bound, bound] (U, V or None, A); seeded numpy Generator.

    A large range keeps accidental zeros (s = U[a] + V[b] = 0 kills a unit's gradient on that input) rare:
    with bound 50 they dropped the rank below the generic one on 2 of ~800 grid instances."""
    rng = np.random.default_rng(seed)
    q = p if q is None else q
    U = rng.integers(-bound, bound + 1, size=(p, m))
    V = None if tied else rng.integers(-bound, bound + 1, size=(p, m))
    A = rng.integers(-bound, bound + 1, size=(m, q))
    return U, V, A


def exact_rank_at(U, V, A, a, b, centred: bool = False) -> int:
    """Exact rank (over F_P, a lower bound on the rank over Q) of the Jacobian at integer parameters."""
    for name, X in (("U", U), ("V", V), ("A", A)):
        if X is not None and not np.issubdtype(np.asarray(X).dtype, np.integer):
            raise ValueError(f"{name} must be an integer array for an exact rank")
    return rank_mod_prime(quadratic_jacobian(U, V, A, a, b, centred=centred, integer=True))


@contextmanager
def _one_thread():
    """Small dense LAPACK calls in a loop: run them on one thread (restored after). On a shared, busy CPU
    multi-threaded BLAS/LAPACK on ~100x300 matrices was measured 50-100x slower than single-threaded."""
    prev = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(prev)


def numerical_rank(J: np.ndarray | torch.Tensor, rtol: float | None = None) -> tuple[int, np.ndarray, float]:
    """float64 SVD rank: singular values above rtol * s_max (default max(shape) * eps64).

    Returns (rank, singular values, gap) with gap = s_r / s_{r+1} (inf when r is full).
    """
    with _one_thread():
        s = torch.linalg.svdvals(torch.as_tensor(J, dtype=torch.float64)).numpy()
    if s.size == 0 or s[0] == 0:
        return 0, s, float("inf")
    tol = (max(np.shape(J)) * np.finfo(np.float64).eps if rtol is None else rtol) * s[0]
    r = int(np.sum(s > tol))
    gap = float("inf") if r >= s.size else float(s[r - 1] / max(s[r], np.finfo(np.float64).tiny)) if r else 0.0
    return r, s, gap


def _residual_fn(a, b, y, q, centred, tied):
    """Torch residual R(U, V, A) = (F - Y)(P) / sqrt(N), flattened (for the Hessian via torch.func)."""
    n = len(a)
    at = torch.as_tensor(np.asarray(a), dtype=torch.long)
    bt = torch.as_tensor(np.asarray(b), dtype=torch.long)
    Y = torch.nn.functional.one_hot(torch.as_tensor(np.asarray(y), dtype=torch.long), q).to(torch.float64)

    def res(U, V, A):
        s = U[at] + (U if tied else V)[bt]
        R = (s * s) @ A - Y
        if centred:
            R = R - R.mean(0, keepdim=True)
        return R.reshape(-1) / np.sqrt(n)

    return res


@dataclass(frozen=True)
class PointLLC:
    """lambda at a given parameter. ``lam`` is r/2 (exact Rational) only when ``morse_bott``; else None.

    rank: Jacobian rank (interpolating point) or Hessian rank of L (non-interpolating); lower = rank/2
    always holds. upper = (d - dim of the symmetry orbit through w*)/2 (K <= C dist^2 to that orbit, which
    lies in the minimum set) unless Morse-Bott. nearby_ranks: ranks at probed nearby minimisers;
    upper_nearby: min r'/2 over probed minimisers w' whose own rank was stable under a further probe
    (lambda(w*) <= lambda(w') = r'/2, the local RLCT being the minimum over a neighbourhood), else None.
    sv_gap: s_r / s_{r+1} of the matrix whose rank is taken (large = trustworthy numerical rank).
    """

    rank: int
    lam: sp.Rational | None
    lower: sp.Rational
    upper: sp.Rational
    morse_bott: bool
    nearby_ranks: tuple[int, ...]
    upper_nearby: sp.Rational | None
    sv_gap: float
    residual: float
    interpolating: bool
    n_params: int
    method: str


def llc_at_point(U, V, A, a, b, y, centred: bool = False, n_probe: int = 3, step: float = 1e-3,
                 seed: int = 0, rtol: float | None = None, interp_tol: float = 1e-9) -> PointLLC:
    """lambda at w* = (U, V, A) (one copy, float arrays; V=None when tied) for labels y on inputs (a, b).

    Interpolating w* (|R| <= interp_tol, R = (F - Y)(P)/sqrt(N)): rank r of J = dR/dw, float64 SVD.
    Otherwise: rank h of the Hessian of L(w) = |R(w)|^2 / 2 (eigenvalues above rtol * max).
    Morse-Bott test: ``n_probe`` random kernel directions, step ``step`` * max(|w*|, 1), then Gauss-Newton
    back to the minimum set of |R|; Morse-Bott iff every probe came back by O(step^2) (tangent) and the
    rank there (same absolute threshold) equals r. Then lambda = r/2, m = 1.
    """
    with _one_thread():
        return _llc_at_point(U, V, A, a, b, y, centred, n_probe, step, seed, rtol, interp_tol)


def _llc_at_point(U, V, A, a, b, y, centred, n_probe, step, seed, rtol, interp_tol) -> PointLLC:
    if isinstance(n_probe, bool) or not isinstance(n_probe, int) or n_probe < 1:
        raise ValueError(f"n_probe must be an integer >= 1, got {n_probe!r}")
    if not step > 0:
        raise ValueError(f"step must be > 0, got {step}")
    tied = V is None
    U = np.asarray(U, dtype=np.float64)
    A = np.asarray(A, dtype=np.float64)
    V = None if tied else np.asarray(V, dtype=np.float64)
    a = np.asarray(a, dtype=np.int64)
    b = np.asarray(b, dtype=np.int64)
    y = np.asarray(y, dtype=np.int64)
    _check_inputs(U, V, A, a, b)
    if y.shape != a.shape:
        raise ValueError(f"y must have the shape of a, {a.shape}, got {y.shape}")
    n, q = len(a), A.shape[1]
    shapes = [U.shape] + ([] if tied else [V.shape]) + [A.shape]
    sizes = [int(np.prod(s)) for s in shapes]
    Y = np.eye(q)[y]

    def unflat(w):
        parts = [t.reshape(s) for t, s in zip(np.split(w, np.cumsum(sizes)[:-1]), shapes)]
        return (parts[0], None, parts[1]) if tied else tuple(parts)

    def R(w):
        Uw, Vw, Aw = unflat(w)
        s = Uw[a] + (Uw if tied else Vw)[b]
        res = (s * s) @ Aw - Y
        if centred:
            res = res - res.mean(0)
        return res.reshape(-1) / np.sqrt(n)

    def Jac(w):
        J = quadratic_jacobian(*unflat(w), a, b, centred=centred)
        return J / (n * np.sqrt(n) if centred else np.sqrt(n))  # rows of N P J -> P J / sqrt(N)

    def hess(w):
        res = _residual_fn(a, b, y, q, centred, tied)
        sh = [torch.Size(s) for s in shapes]

        def L(wt):
            parts = [t.reshape(s) for t, s in zip(torch.split(wt, sizes), sh)]
            Uw, Vw, Aw = (parts[0], None, parts[1]) if tied else parts
            return 0.5 * res(Uw, Vw, Aw).pow(2).sum()

        return torch.func.hessian(L)(torch.as_tensor(w)).numpy()

    w0 = np.concatenate([t.reshape(-1) for t in ([U] if tied else [U, V]) + [A]])
    res0 = float(np.linalg.norm(R(w0)))
    interp = res0 <= interp_tol

    def rank_at(w, tol=None):
        # torch, not numpy: numpy's OpenBLAS threads collapse under CPU contention (100x slower here)
        if interp:
            M = Jac(w)
            vals = torch.linalg.svdvals(torch.from_numpy(M)).numpy()
        else:
            M = hess(w)
            vals = torch.linalg.eigvalsh(torch.from_numpy(M)).numpy()[::-1]
        if tol is None:  # relative at w*, then reused as an absolute threshold at the probes
            tol = (max(M.shape) * np.finfo(np.float64).eps if rtol is None else rtol) * max(abs(vals[0]), 1e-300)
        k = int(np.sum(vals > tol))
        gap = float("inf") if k >= vals.size else float(vals[k - 1] / max(abs(vals[k]), 1e-300)) if k else 0.0
        return k, gap, tol, M

    def kernel(w, k, M):
        Mt = torch.from_numpy(M)
        if interp:
            return torch.linalg.svd(Mt, full_matrices=True)[2][k:].T.numpy()
        return torch.linalg.eigh(Mt)[1][:, : M.shape[0] - k].numpy()

    rng = np.random.default_rng(seed)
    delta = step * max(float(np.linalg.norm(w0)), 1.0)

    def probe(w, k, tol, M):
        ker = kernel(w, k, M)
        if ker.shape[1] == 0:
            return None
        d = ker @ rng.standard_normal(ker.shape[1])
        w_probe = w + delta * d / np.linalg.norm(d)
        x = w_probe
        for _ in range(40):  # Gauss-Newton onto the minimum set of |R|
            dx = torch.linalg.lstsq(torch.from_numpy(Jac(x)), torch.from_numpy(R(x))[:, None],
                                    driver="gelsd").solution[:, 0].numpy()
            x = x - dx
            if np.linalg.norm(dx) <= 1e-13 * max(float(np.linalg.norm(x)), 1.0):
                break
        # on a Morse-Bott minimum set a kernel direction is tangent: the way back is O(delta^2), not O(delta)
        tangent = float(np.linalg.norm(x - w_probe)) <= TANGENT_RATIO * delta
        kk, _, _, Mx = rank_at(x, tol)
        return x, kk, tangent, Mx

    r, gap, tol, M0 = rank_at(w0)
    nearby, tangent, stable = [], [], []
    for _ in range(n_probe):
        out = probe(w0, r, tol, M0)
        if out is None:
            break
        x, kk, tg, Mx = out
        nearby.append(kk)
        tangent.append(tg)
        again = probe(x, kk, tol, Mx)
        stable.append(kk if again is None or (again[1] == kk and again[2]) else None)
    mb = all(k == r for k in nearby) and all(tangent)
    lower = sp.Rational(r, 2)
    # rigorous upper bound: K <= C dist(w, Z)^2 for the smooth orbit Z of the continuous symmetries through
    # w* (per unit: scaling (u, v, c) -> (t u, t v, c / t^2); untied also the shift u += s, v -= s)
    gens = []
    for k in range(U.shape[1]):
        Zu, Za = np.zeros_like(U), np.zeros_like(A)
        Zu[:, k], Za[k] = U[:, k], -2 * A[k]
        if tied:
            gens.append(np.concatenate([Zu.reshape(-1), Za.reshape(-1)]))
        else:
            Zv = np.zeros_like(V)
            Zv[:, k] = V[:, k]
            gens.append(np.concatenate([Zu.reshape(-1), Zv.reshape(-1), Za.reshape(-1)]))
            Su, Sv = np.zeros_like(U), np.zeros_like(V)
            Su[:, k], Sv[:, k] = 1.0, -1.0
            gens.append(np.concatenate([Su.reshape(-1), Sv.reshape(-1), np.zeros(A.size)]))
    orbit_dim = numerical_rank(np.stack(gens))[0]
    upper = lower if mb else sp.Rational(w0.size - orbit_dim, 2)
    good = [k for k in stable if k is not None]
    return PointLLC(rank=r, lam=lower if mb else None, lower=lower, upper=upper, morse_bott=mb,
                    nearby_ranks=tuple(nearby), upper_nearby=sp.Rational(min(good), 2) if good else None,
                    sv_gap=gap, residual=res0, interpolating=interp, n_params=int(w0.size),
                    method="jacobian" if interp else "hessian")


def point_from_net(net, copy: int = 0) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(U, V or None, A) of one copy of a :class:`slt.models.quadratic.QuadraticNet`, as float64 numpy."""
    if not 0 <= copy < net.n_copies:
        raise ValueError(f"copy must be in [0, {net.n_copies - 1}], got {copy}")
    U = net.U[copy].detach().cpu().double().numpy()
    V = None if net.V is None else net.V[copy].detach().cpu().double().numpy()
    A = net.A[copy].detach().cpu().double().numpy()
    return U, V, A


def llc_at_net(net, a, b, y, copy: int = 0, centred: bool = False, **kwargs) -> PointLLC:
    """:func:`llc_at_point` at copy ``copy`` of a QuadraticNet (e.g. a trained checkpoint) on training
    inputs (a, b) with labels y (tensors or arrays). A float32 checkpoint is rarely an exact interpolant:
    pass ``interp_tol`` to decide which route (Jacobian or Hessian) applies."""
    to_np = lambda t: t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    return llc_at_point(*point_from_net(net, copy), to_np(a), to_np(b), to_np(y), centred=centred, **kwargs)

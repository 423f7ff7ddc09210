"""Exact learning coefficient of the quadratic network at a given critical point, at the paper's scale.

Jacobian route (interpolating point, R(w*) = 0; notation of :mod:`slt.theory.residual`). With s_ik = U[a_i,k] +
V[b_i,k], S2 = P (s_ik^2) (N x K), alpha_k = A[k, :] and g_ck = 2 s_:k o 1[a = c] (U columns; V likewise with b;
tied: the sum), the columns of J are

    readout:    (S2 e_k) (x) e_q                       -> col(J_A) = col(S2) (x) R^q,  rank = q rank(S2)
    embedding:  (P g_ck) (x) alpha_k                   (shared/reference/science.md, section 9)

so, with Q an orthonormal basis of (col(S2) + span 1)^perp (of span 1 only when centred, since P g is
orthogonal to 1 then), the embedding columns projected off col(J_A) are (Q^T g_ck) (x) alpha_k and

    rank J = q rank(S2) + rank M,     M = [ X_k (x) alpha_k ]_k,   X_k = Q^T [g_ck]_c   (N_q x 2p).

rank M is read from the smaller of its two Gram matrices,
    rows:  M M^T = sum_k (X_k X_k^T) (x) (alpha_k alpha_k^T)          (N_q q square)
    cols:  M^T M = [ (X_k^T X_l) (alpha_k . alpha_l) ]_{k,l}          (2 p K_live square),
so the paper's size (p 53, K 1,024, N 1,123: J is 59,466 x 162,816) costs one 1,123 x 1,025 SVD and one
~5,200-square symmetric eigenproblem, never J itself.

Hessian route (non-interpolating critical point, grad L = 0 but R != 0): rank of the dense Hessian of
L = |R|^2/2 (forward-over-reverse products), for d <= ``max_dense_hessian``.

One-hot labels with the centred loss (the paper's setting): Y 1_q = 1_N, so P Y 1_q = 0 and R = 0 forces
P S2 (A 1_q) = 0, i.e. A 1_q = 0 whenever rank S2 = K <= N'; every x (x) 1_q with x orthogonal to col(S2) is then
orthogonal to the rows of J, and rank J <= (q - 1) N' + K: the data cap of a polished interpolant of one-hot labels
is ((q - 1) N' + K)/2, not q N'/2 (see :func:`_independent_equations`).

Bounds (Watanabe 2009 sec. 7.1; Lau et al. arXiv 2308.12108 sec. 3; the lower bound by the splitting lemma):
    lambda >= rank / 2                              (rank of J, resp. of the Hessian)
    lambda <= (d - orbit_dim) / 2                   (K <= C dist^2 to the symmetry orbit, a smooth set of minima)
and lambda = rank/2 EXACTLY (minimum set a manifold of codimension = rank near w*, i.e. Morse-Bott) when
    * J has full row rank q N' (rank is lower semicontinuous, so {R = 0} is a submanifold of codimension q N'), or
    * rank = d - orbit_dim (lower bound meets the upper bound).
Otherwise both bounds are returned and ``lam`` is None. "Exact" is modulo the numerical rank decisions, which
are float64 spectral gaps reported in ``gaps``: each factor's singular values are cut at max(shape) * eps64
relative to its largest (Gram eigenvalues at max(shape) * eps64 relative, i.e. singular values at ~sqrt of
that), and a rank with gap < GAP_WARN is flagged ``reliable=False``.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np
import sympy as sp
import torch

from slt.theory.jacobian import TANGENT_RATIO
from slt.theory.polish import GRAD_RTOL, INTERP_RTOL, NotCriticalError, _sigma_max
from slt.theory.residual import ResidualMap

__all__ = ["ExactLLC", "exact_llc", "exact_llc_net", "GAP_WARN"]

GAP_WARN = 1e3  # s_r / s_{r+1} below this: the numerical rank is not clearly separated from the noise floor
EPS = float(np.finfo(np.float64).eps)


@dataclass(frozen=True)
class ExactLLC:
    """lambda at a critical point. ``lam`` (sympy Rational) when it is determined exactly, else None with
    lower <= lambda <= upper. route: "jacobian" (interpolating) or "hessian". rank_squares = rank(S2),
    rank_embedding = rank M (Jacobian route). gaps: spectral gap s_r/s_{r+1} of each factor whose rank was
    taken; sv_gap: the smallest of them. timings: seconds per stage."""

    rank: int
    lam: sp.Rational | None
    lower: sp.Rational
    upper: sp.Rational
    morse_bott: bool
    reason: str
    route: str
    rows: int
    n_params: int
    orbit_dim: int
    rank_squares: int | None
    rank_embedding: int | None
    gram: str | None
    sv_gap: float
    gaps: dict
    reliable: bool
    residual: float
    grad_cos: float
    seconds: float
    timings: dict = field(default_factory=dict)
    device: str = "cpu"
    probes: tuple = ()

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for k in ("lam", "lower", "upper"):
            d[k] = None if d[k] is None else str(d[k])
        d["lam_float"] = None if self.lam is None else float(self.lam)
        return d


def _rank_from_values(vals: torch.Tensor, size: int, squared: bool = False) -> tuple[int, float, float]:
    """(rank, gap, top) from singular values (or Gram eigenvalues when ``squared``), sorted or not.

    Cut at size * eps * top; for Gram eigenvalues the gap is reported in singular-value terms (sqrt)."""
    v = torch.sort(vals.abs() if squared else vals, descending=True).values.cpu().numpy()
    if v.size == 0 or v[0] <= 0:
        return 0, float("inf"), 0.0
    tol = size * EPS * v[0]
    r = int(np.sum(v > tol))
    if r >= v.size:
        gap = float("inf")
    elif r == 0:
        gap = 0.0
    else:
        gap = float(v[r - 1] / max(v[r], 1e-300))
        if squared:
            gap = math.sqrt(gap)
    return r, gap, float(v[0])


def _jacobian_rank(rm: ResidualMap, w: torch.Tensor, timings: dict, max_gram: int,
                   max_pivoted: int = 0) -> tuple[int, int, int, str, dict]:
    t = time.perf_counter()
    U, V, A = rm.split(w)
    s = rm.hidden(w)  # (N, K)
    n = rm.n
    S2 = s * s
    if rm.centred:
        S2 = S2 - S2.mean(0, keepdim=True)
    sv = torch.linalg.svdvals(S2)
    r2, gap2, _ = _rank_from_values(sv, max(S2.shape))
    # Q: orthonormal basis of (col S2 + span 1)^perp when centred (P g is orthogonal to 1), else (col S2)^perp
    basis = S2 / max(float(sv[0]), 1e-300)
    if rm.centred:
        basis = torch.cat([basis, torch.full((n, 1), 1 / math.sqrt(n), dtype=S2.dtype, device=S2.device)], 1)
    Uf = torch.linalg.svd(basis, full_matrices=True)[0]
    Q = Uf[:, r2 + int(rm.centred):]  # (N, N_q)
    nq = Q.shape[1]
    timings["squares_svd"] = time.perf_counter() - t
    t = time.perf_counter()
    live = A.abs().sum(1) > 0  # readout-free units contribute only their S2 columns
    E = 2 * s[:, live]  # (N, K_live)
    al = A[live]  # (K_live, q)
    kl = int(live.sum())
    n_emb = rm.p * (1 if rm.tied else 2)
    X = torch.zeros(nq, n_emb, kl, dtype=s.dtype, device=s.device)  # X[:, c, k] = Q^T g_ck
    for c in range(rm.p):
        for j, idx in enumerate((rm.a, rm.b)):
            sel = idx == c
            if bool(sel.any()):
                blk = Q[sel].T @ E[sel]  # (N_q, K_live)
                if rm.tied:
                    X[:, c] += blk
                else:
                    X[:, j * rm.p + c] = blk
    timings["project"] = time.perf_counter() - t
    t = time.perf_counter()
    rows_m, cols_m = nq * rm.q, kl * n_emb
    if min(rows_m, cols_m) == 0:
        timings["gram"] = 0.0
        return rm.q * r2 + 0, r2, 0, "none", {"squares": gap2}
    n_gram = min(rows_m, cols_m)
    if n_gram > max_gram:
        if n_gram > max_pivoted:
            raise MemoryError(f"the embedding Gram matrix would be {n_gram} square (> max_gram = {max_gram} for the "
                              f"eigenvalue route, > max_pivoted = {max_pivoted} for pivoted Cholesky); raise them "
                              "(memory ~ 8 * size^2 bytes) or run on a GPU (device='cuda')")
        rM, gapM, gram = _pivoted_gram_rank(X, al, rm.q, rows_m <= cols_m, max(rows_m, cols_m))
        timings["gram"] = time.perf_counter() - t
        return rm.q * r2 + rM, r2, rM, gram, {"squares": gap2, "embedding": gapM}
    if rows_m <= cols_m:
        gram = "rows"
        Bk = torch.einsum("rck,sck->krs", X, X).reshape(kl, nq * nq)
        Ak = (al[:, :, None] * al[:, None, :]).reshape(kl, rm.q * rm.q)
        G = (Bk.T @ Ak).reshape(nq, nq, rm.q, rm.q).permute(0, 2, 1, 3).reshape(rows_m, rows_m)
    else:
        gram = "cols"
        Xf = X.permute(0, 2, 1).reshape(nq, cols_m)  # column (k, c)
        G = Xf.T @ Xf
        C = al @ al.T  # (K_live, K_live)
        G = (G.view(kl, n_emb, kl, n_emb) * C[:, None, :, None]).reshape(cols_m, cols_m)
    ev = torch.linalg.eigvalsh(G)
    rM, gapM, _ = _rank_from_values(ev, max(rows_m, cols_m), squared=True)
    timings["gram"] = time.perf_counter() - t
    return rm.q * r2 + rM, r2, rM, gram, {"squares": gap2, "embedding": gapM}


def _pivoted_gram_rank(X: torch.Tensor, al: torch.Tensor, q: int, rows: bool, size: int,
                       block: int = 16) -> tuple[int, float, str]:
    """rank M from its rows (or cols) Gram by pivoted Cholesky (LAPACK dpstrf), for Grams too large for eigvalsh.

    The Gram is built block by block straight into one float64 array (never the (N_q^2, q^2) intermediate of the
    eigenvalue route), then factored in place: ~size^3/3 flops and 8 size^2 bytes, against ~4 size^3 and 3x the
    memory for eigvalsh. Rank: the number of pivots above size * eps * max diag(G) (the eigenvalue route cuts at
    size * eps * largest eigenvalue, which is at most size * max diag). Pivoted Cholesky is rank-revealing for
    positive semi-definite matrices in practice (Higham, "Analysis of the Cholesky decomposition of a
    semi-definite matrix", 1990; Lucas 2004, the LAPACK dpstrf reference); the gap reported is
    sqrt(last accepted pivot / largest diagonal of the remaining Schur complement), in singular-value terms."""
    from scipy.linalg.lapack import dpstrf

    nq, n_emb, kl = X.shape
    Xc = X.detach().to("cpu", torch.float64)
    alc = al.detach().to("cpu", torch.float64)
    n = nq * q if rows else kl * n_emb
    G = np.empty((n, n), dtype=np.float64)  # symmetric: its C-order buffer is also its Fortran-order transpose
    Gt = torch.from_numpy(G)
    if rows:
        Ak = (alc[:, :, None] * alc[:, None, :]).reshape(kl, q * q)
        for i0 in range(0, nq, block):
            i1 = min(nq, i0 + block)
            Bk = torch.einsum("rck,sck->krs", Xc[i0:i1], Xc).reshape(kl, (i1 - i0) * nq)
            Gt[i0 * q:i1 * q] = (Bk.T @ Ak).reshape(i1 - i0, nq, q, q).permute(0, 2, 1, 3).reshape((i1 - i0) * q, n)
    else:
        Xf = Xc.permute(0, 2, 1).reshape(nq, n)  # column (k, c)
        C = alc @ alc.T
        cb = block * n_emb
        for j0 in range(0, n, cb):
            j1 = min(n, j0 + cb)
            k0, k1 = j0 // n_emb, j1 // n_emb
            blk = (Xf[:, j0:j1].T @ Xf).view(k1 - k0, n_emb, kl, n_emb) * C[k0:k1, None, :, None]
            Gt[j0:j1] = blk.reshape(j1 - j0, n)
    del Gt
    diag = np.diag(G).copy()
    tol = size * EPS * float(diag.max()) if diag.size else 0.0
    L, piv, rank, info = dpstrf(G.T, tol=tol, lower=1, overwrite_a=1)
    if info < 0:
        raise RuntimeError(f"dpstrf failed (info {info})")
    rank = int(rank)
    if rank >= n:
        gap = float("inf")
    elif rank == 0:
        gap = 0.0
    else:
        d_rest = diag[piv[rank:] - 1]
        sq = np.zeros(n - rank)
        for i0 in range(0, rank, 4096):  # L[rank:, :rank] holds the computed columns' entries of the rejected rows
            sq += np.einsum("ij,ij->i", L[rank:, i0:min(rank, i0 + 4096)], L[rank:, i0:min(rank, i0 + 4096)])
        rest = float(np.max(d_rest - sq)) if d_rest.size else 0.0
        gap = math.sqrt(float(L[rank - 1, rank - 1]) ** 2 / max(rest, 1e-300))
    return rank, gap, ("rows" if rows else "cols") + "-pivoted-cholesky"


def _hessian_rank(rm: ResidualMap, w: torch.Tensor, timings: dict, max_dense_hessian: int) -> tuple[int, float, float]:
    if rm.dim > max_dense_hessian:
        raise MemoryError(f"the Hessian route builds a dense d x d Hessian; d = {rm.dim} > max_dense_hessian = "
                          f"{max_dense_hessian} (raise it: memory ~ 8 d^2 bytes, time ~ d^3; or use device='cuda')")
    t = time.perf_counter()

    def hvp(v):
        return torch.func.jvp(rm.gradient, (w,), (v,))[1]

    eye = torch.eye(rm.dim, dtype=w.dtype, device=w.device)
    H = torch.cat([torch.vmap(hvp)(eye[i:i + 256]) for i in range(0, rm.dim, 256)])
    H = 0.5 * (H + H.T)
    ev = torch.linalg.eigvalsh(H)
    timings["hessian"] = time.perf_counter() - t
    top = float(ev.abs().max())
    neg = float(-ev.min()) / max(top, 1e-300)
    r, gap, _ = _rank_from_values(ev.clamp_min(0), rm.dim)
    return r, gap, neg


def _row_sums_constant(rm: ResidualMap) -> bool:
    """Centred loss on targets whose rows sum to one constant (one-hot labels)."""
    if not rm.centred:
        return False
    sums = rm.Y.sum(1)
    return float((sums - sums.mean()).abs().max()) <= 1e-12 * max(float(sums.abs().max()), 1.0)


def _independent_equations(rm: ResidualMap, r2: int) -> int:
    """Number of independent equations cutting out {R = 0} near w*: q N' in general; (q - 1) N' + rank S2 for the
    centred loss on targets whose rows sum to a constant (one-hot labels), when rank S2 = min(K, N') is maximal.

    Why: with Y 1_q = c 1_N, P Y 1_q = 0, so the output-sum component of R = 0 reads P S2 (A 1_q) = 0, i.e. (rank S2
    maximal, hence locally constant) A 1_q in ker(P S2): rank S2 smooth equations on A instead of N' equations, and
    at A 1_q = 0 their differential spans the same rows of J as the output-sum rows. So {R = 0} is locally the
    zero set of (q - 1) N' + rank S2 functions, and a rank of J equal to that count makes it a manifold of that
    codimension. (Without the row-sum structure, e.g. a teacher's real outputs, the count stays q N'.)"""
    if not _row_sums_constant(rm):
        return rm.rows
    if r2 != min(rm.m, rm.n - 1):
        return rm.rows
    return (rm.q - 1) * (rm.n - 1) + r2


def exact_llc(U, V, A, a, b, y, centred: bool = False, device: str | torch.device = "cpu",
              interp_rtol: float = INTERP_RTOL, grad_rtol: float = GRAD_RTOL, max_gram: int = 20_000,
              max_pivoted: int = 40_000, max_dense_hessian: int = 12_000, n_probe: int = 0, probe_step: float = 1e-3,
              seed: int = 0) -> ExactLLC:
    """lambda at the critical point w* = (U, V, A) of the data loss (see the module docstring).

    Arrays as in :func:`slt.theory.llc_at_point` (float, one copy, V=None when tied); y class labels (N,) or
    real targets (N, q). The point must be critical (use :func:`slt.theory.polish.polish` on a checkpoint):
    otherwise :class:`NotCriticalError`, never a number. Interpolating (|R| <= interp_rtol |R(0)|): Jacobian
    route; stationary (|J^T R| <= grad_rtol sigma_max |R|): Hessian route.

    The embedding Gram (``gram`` in the result: rows or cols, whichever is smaller) gets a dense eigvalsh on
    ``device`` up to ``max_gram`` square, and a pivoted Cholesky (LAPACK dpstrf, CPU, float64, in place) up to
    ``max_pivoted`` square (8 size^2 bytes: 8.4 GB at the grokking preset's 32,436); above that, MemoryError.

    ``n_probe`` > 0 (Jacobian route, where the rank meets no bound): the Morse-Bott probe of
    :func:`slt.theory.llc_at_point`, matrix-free: a random direction of ker J (LSQR projection), a step of
    probe_step * |w*| along it, :func:`slt.theory.polish.polish` back onto {R = 0}, the structured rank there.
    Morse-Bott (numerically, as in llc_at_point) iff every probe returned by O(step^2) (<= TANGENT_RATIO of the
    step: the direction is tangent to the minimum set) to a point of the same rank; then lambda = rank/2."""
    if isinstance(n_probe, bool) or not isinstance(n_probe, int) or n_probe < 0:
        raise ValueError(f"n_probe must be an integer >= 0, got {n_probe!r}")
    if not 0 < probe_step < 1:
        raise ValueError(f"probe_step must be in (0, 1), got {probe_step!r}")
    t0 = time.perf_counter()
    timings: dict = {}
    dev = torch.device(device)
    rm = ResidualMap.build(U, V, A, a, b, y, centred=centred, device=dev)
    w = rm.flat(U, V, A)
    R = rm.residual(w)
    r0 = float(rm.residual(torch.zeros_like(w)).norm())
    res = float(R.norm()) / r0
    smax = _sigma_max(rm, w)
    cos = float(rm.gradient(w).norm()) / max(smax * float(R.norm()), 1e-300)
    orbit = rm.orbit_dim(w)
    d = rm.dim
    r2 = rM = None
    gram = None
    projected = 0.0
    if res <= interp_rtol and _row_sums_constant(rm):
        # centred one-hot labels: every exact interpolant with rank S2 = K has A 1_q = 0 (module docstring). A
        # polished point is an interpolant only to |R| ~ interp_rtol, and where S2 is ill-conditioned its A 1_q can
        # be far larger than |R| (seen at p 53, K 1,024: the rank then counts the A 1_q directions as live). Remove
        # A 1_q, keep the point if it is still an interpolant to the same tolerance, and report the move.
        Uw, Vw, Aw = rm.split(w)
        A0 = Aw - Aw.mean(1, keepdim=True)
        w_proj = torch.cat([Uw.reshape(-1)] + ([] if rm.tied else [Vw.reshape(-1)]) + [A0.reshape(-1)])
        res_p = float(rm.residual(w_proj).norm()) / r0
        if res_p <= interp_rtol:
            projected = float((w_proj - w).norm() / w.norm())
            w, res = w_proj, res_p
            cos = float(rm.gradient(w).norm()) / max(smax * float(rm.residual(w).norm()), 1e-300)
    timings["projected_A1"] = projected
    if res <= interp_rtol:
        route = "jacobian"
        r, r2, rM, gram, gaps = _jacobian_rank(rm, w, timings, max_gram, max_pivoted)
        n_eq = _independent_equations(rm, r2)
        full_row = r == n_eq
    elif cos <= grad_rtol:
        route = "hessian"
        r, gap, neg = _hessian_rank(rm, w, timings, max_dense_hessian)
        gaps = {"hessian": gap}
        if neg > 1e3 * d * EPS:
            raise NotCriticalError(f"the Hessian has a negative eigenvalue ({-neg:.2e} of the largest): a saddle, "
                                   "not a minimum; the learning coefficient is defined at minima")
        full_row = False
    else:
        raise NotCriticalError(f"not a critical point of the data loss: |R|/|R(0)| = {res:.2e} (> interp_rtol "
                               f"{interp_rtol:.0e}) and |grad L|/(sigma_max |R|) = {cos:.2e} (> grad_rtol {grad_rtol:.0e}); "
                               "run slt.theory.polish.polish first")
    lower = sp.Rational(r, 2)
    upper = sp.Rational(d - orbit, 2)
    if full_row:
        exact, why = True, (f"rank = {r} independent equations of {{R = 0}}: a manifold of that codimension near w* "
                            "(Morse-Bott)" + ("" if r == rm.rows else "; centred targets with constant row sums "
                                              "force A 1 = 0 (module docstring)"))
    elif r == d - orbit:
        exact, why = True, "rank = d - dim(symmetry orbit): lower bound meets upper bound"
    else:
        exact, why = False, "rank below both the row count and d - orbit dim: bounds only"
    probes: list = []
    if not exact and route == "jacobian" and n_probe:
        t = time.perf_counter()
        probes = [_probe(rm, w, r, probe_step, seed + i, max_gram, max_pivoted) for i in range(n_probe)]
        timings["probes"] = time.perf_counter() - t
        if all(pr["tangent"] and pr["rank"] == r for pr in probes):
            exact, why = True, (f"Morse-Bott by {n_probe} probe(s): kernel directions of J are tangent to {{R = 0}} "
                                f"(returned by <= {TANGENT_RATIO} of the step) and the rank there is {r} (numerical "
                                "test, as llc_at_point)")
        else:
            why += f"; probes {[(pr['rank'], round(pr['return_ratio'], 4)) for pr in probes]} (rank, return/step)"
            # a probe that landed on a minimiser w' whose rank equals its equation count has lambda(w') = rank'/2
            # exactly, and lambda(w*) <= lambda(w') for minimisers arbitrarily near w* (the local RLCT is the minimum
            # over a neighbourhood; llc_at_point's upper_nearby, same numerical caveat: one probe step)
            near = [pr["rank"] for pr in probes if pr.get("exact_there")]
            if near and sp.Rational(min(near), 2) < upper:
                upper = sp.Rational(min(near), 2)
                why += f"; upper bound {upper} from a nearby Morse-Bott minimiser (rank {min(near)})"
    sv_gap = min(gaps.values()) if gaps else float("inf")
    return ExactLLC(rank=r, lam=lower if exact else None, lower=lower, upper=lower if exact else upper,
                    morse_bott=exact, reason=why, route=route, rows=rm.rows, n_params=d, orbit_dim=orbit,
                    rank_squares=r2, rank_embedding=rM, gram=gram, sv_gap=sv_gap, gaps=gaps,
                    reliable=sv_gap >= GAP_WARN, residual=res, grad_cos=cos, seconds=time.perf_counter() - t0,
                    timings=timings, device=str(dev), probes=tuple(probes))


def _probe(rm: ResidualMap, w: torch.Tensor, r: int, step: float, seed: int, max_gram: int,
           max_pivoted: int = 0) -> dict:
    """One Morse-Bott probe (see :func:`exact_llc`): returns rank at the returned point, return distance / step."""
    from scipy.sparse.linalg import lsqr

    from slt.theory.polish import jacobian_operator, polish

    g = torch.Generator(device="cpu").manual_seed(seed)
    v = torch.randn(rm.dim, generator=g, dtype=torch.float64).to(w.device)
    Jv = rm.jvp(w, v).reshape(-1)
    x = lsqr(jacobian_operator(rm, w, 0.0), Jv.cpu().numpy(), atol=1e-12, btol=1e-12, iter_lim=20_000)[0]
    dvec = v - torch.as_tensor(x, dtype=torch.float64, device=w.device)  # v minus its row-space part: in ker J
    leak = float(rm.jvp(w, dvec).norm()) / max(float(Jv.norm()), 1e-300)
    delta = step * max(float(w.norm()), 1.0)
    wp = w + delta * dvec / dvec.norm()
    U, V, A = rm.unflat(wp)
    pol = polish(U, V, A, rm.a.cpu().numpy(), rm.b.cpu().numpy(), rm.Y.cpu().numpy(), centred=rm.centred,
                 device=w.device)
    back = rm.flat(pol.U, pol.V, pol.A)
    ratio = float((back - wp).norm()) / delta
    rank, n_eq = -1, -1
    if pol.critical and pol.kind == "interpolating":
        rank, r2 = _jacobian_rank(rm, back, {}, max_gram, max_pivoted)[:2]
        n_eq = _independent_equations(rm, r2)
    return {"rank": rank, "return_ratio": ratio, "tangent": ratio <= TANGENT_RATIO, "kernel_leak": leak,
            "critical": pol.critical, "exact_there": rank == n_eq}


def exact_llc_net(net, a, b, y, copy: int = 0, centred: bool = False, **kwargs) -> ExactLLC:
    """:func:`exact_llc` at copy ``copy`` of a :class:`slt.models.QuadraticNet` (already critical: polish first)."""
    from slt.theory.jacobian import point_from_net

    to_np = lambda t: t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)
    return exact_llc(*point_from_net(net, copy), to_np(a), to_np(b), to_np(y), centred=centred, **kwargs)

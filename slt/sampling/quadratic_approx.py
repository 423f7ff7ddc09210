"""What SGLD should return at a trained net if the loss were its quadratic approximation at w*.

Near a critical point w* with loss Hessian H = sum_i h_i q_i q_i^T, the localised tempered law
exp(-n_beta L(w) - (gamma/2)|w - w*|^2) is Gaussian with precision a_i = n_beta h_i + gamma along q_i, so

    E[lambda_hat] = n_beta E[L(w) - L(w*)] = 1/2 sum_i n_beta h_i / (n_beta h_i + gamma)            (1)

(shared/reference/science.md sec. 7; our derivation). Directions with n_beta h_i >> gamma count 1/2, flat
ones ~0: (1) is a SOFT COUNT of the Hessian spectrum above gamma / n_beta. At a Morse-Bott minimum with
H = J^T J / N it tends to rank(J)/2 = lambda as n_beta -> infinity; what SGLD measures beyond (1) comes from
the non-quadratic (singular) part of the loss.

The same Gaussian calculation also gives what a FINITE plain SGLD run returns: along q_i the Euler-Maruyama
chain x' = (1 - eps a_i/2) x + sqrt(eps) xi started at w* has variance
v_i(t) = (1 - rho_i^(2t)) / (a_i (1 - eps a_i / 4)), rho_i = 1 - eps a_i / 2, after t steps, so the estimate
averaged over draws t = burnin+1 .. burnin+draws is

    E[lambda_hat] = 1/2 sum_i n_beta h_i * mean_t v_i(t)                                               (2)

which includes the step-size bias (the 1/(1 - eps a/4) inflation) and the unrelaxed flat directions (the
rho^(2t) term). (2) -> (1) as eps -> 0 with eps * steps -> infinity.

Both are spectral sums tr f(H). They are evaluated without a dense Hessian: the top of the spectrum by
Lanczos on Hessian-vector products (exact eigenvalues, full reorthogonalisation), the rest by stochastic
Lanczos quadrature (Ubaru, Chen & Saad, SIAM J. Matrix Anal. Appl. 38 (2017) 1075) on the operator deflated
by the converged top eigenvectors, with Rademacher probes (Hutchinson 1989): tr f(H) ~ sum_top f(theta_j)
+ (1/K) sum_k |z_k|^2 sum_l tau_kl^2 f(theta_kl), the standard error from the spread over the K probes.
Up to ``DENSE_MAX_DIM`` parameters the Hessian is formed densely and (1), (2) are exact.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn

from slt.sampling.sgld import flatten, unflatten

DENSE_MAX_DIM = 3000


@dataclass(frozen=True)
class HessianSpectrum:
    """Spectral data of the full-data loss Hessian H at w* (one model copy), enough to evaluate tr f(H).

    Dense: ``top`` holds all d eigenvalues, no probes. Lanczos: ``top`` the converged top eigenvalues,
    ``nodes``/``weights`` (K, m) the Gauss quadrature of each deflated probe (weights include |z|^2)."""

    dim: int
    top: np.ndarray  # eigenvalues treated exactly (descending)
    nodes: np.ndarray  # (K, m) Ritz values of each probe's Lanczos run on the deflated operator
    weights: np.ndarray  # (K, m) |z_k|^2 tau_kl^2 (sum over l = |P z_k|^2)
    method: str  # "dense" | "lanczos"
    elapsed_s: float = 0.0
    residual_tol: float = 0.0  # relative Ritz residual accepted as converged (lanczos)

    @property
    def num_probes(self) -> int:
        return int(self.nodes.shape[0])

    def trace(self, f: Callable[[np.ndarray], np.ndarray]) -> tuple[float, float]:
        """(estimate, standard error) of tr f(H) for a vectorised f with f(0) = 0."""
        exact = float(np.sum(f(self.top)))
        if self.num_probes == 0:
            return exact, 0.0
        per = (self.weights * f(self.nodes)).sum(1)  # (K,)
        se = float(per.std(ddof=1) / math.sqrt(per.size)) if per.size > 1 else float("nan")
        return exact + float(per.mean()), se

    def soft_count(self, n_beta: float, gamma: float, eps: float | None = None, num_burnin: int | None = None,
                   num_draws: int | None = None) -> tuple[float, float]:
        """(E[lambda_hat], SE) under the quadratic approximation: eq. (1) of the module docstring, or with
        ``eps`` (plain SGLD step size) eq. (2): stationary with the step-size inflation when the chain
        lengths are None, otherwise averaged over draws burnin+1 .. burnin+draws started at w*."""
        _check_positive("n_beta", n_beta)
        if not (math.isfinite(gamma) and gamma >= 0):
            raise ValueError(f"gamma must be a finite number >= 0, got {gamma!r}")
        if eps is not None:
            _check_positive("eps", eps)
        return self.trace(lambda h: soft_count_terms(h, n_beta, gamma, eps, num_burnin, num_draws))


def _check_positive(name, v):
    if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {v!r}")


def soft_count_terms(h: np.ndarray, n_beta: float, gamma: float, eps: float | None = None,
                     num_burnin: int | None = None, num_draws: int | None = None) -> np.ndarray:
    """Per-eigenvalue contribution n_beta h_+ v(h) / 2 with v the (SGLD) variance along that direction
    (module docstring, eqs. 1-2); negative eigenvalues are clipped to 0 (they contribute nothing)."""
    h = np.clip(np.asarray(h, dtype=np.float64), 0.0, None)
    a = n_beta * h + gamma
    with np.errstate(divide="ignore", invalid="ignore"):
        if eps is None:
            v = 1.0 / a
        else:
            x = eps * a
            if np.any(x >= 4):
                raise ValueError(f"eps={eps:.3g} is unstable for the stiffest direction (eps * a = {x.max():.3g} >= 4)")
            v = 1.0 / (a * (1 - x / 4))
            if num_draws is not None:
                burn = 0 if num_burnin is None else int(num_burnin)
                r2 = (1 - x / 2) ** 2
                # mean over t = burn+1 .. burn+draws of (1 - r2^t)
                geo = np.where(r2 < 1 - 1e-15, r2 ** (burn + 1) * (1 - r2 ** num_draws) / (num_draws * (1 - r2)), 1.0)
                v = v * (1 - geo)
        out = np.where(h > 0, 0.5 * n_beta * h * v, 0.0)
    return out


# ---------------------------------------------------------------------------------------------------- operator


def hessian_operator(model: nn.Module, loss_fn: Callable, data: Sequence[torch.Tensor], copy: int = 0
                     ) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.Tensor]:
    """(matvec, w*) for the full-data loss Hessian of one model copy: matvec maps (k, d) -> (k, d), the k
    products computed as one batched forward-over-reverse pass (the copy replicated into k rows)."""
    from slt.sampling.llc import _make_problem

    problem = _make_problem(model, loss_fn, data)
    if not 0 <= copy < problem.n_copies:
        raise ValueError(f"copy must be in [0, {problem.n_copies}), got {copy!r}")
    anchor = tuple(w[copy:copy + 1].detach() for w in problem.anchor)
    x0 = flatten(anchor)  # (1, d)

    def total_loss(x: torch.Tensor) -> torch.Tensor:
        return problem.row_loss(unflatten(x, anchor), None).sum()

    grad_fn = torch.func.grad(total_loss)

    def matvec(v: torch.Tensor) -> torch.Tensor:
        x = x0.expand(v.shape[0], -1).contiguous()
        return torch.func.jvp(grad_fn, (x,), (v.to(x0.dtype),))[1].detach()

    return matvec, x0[0]


def lanczos(matvec: Callable[[torch.Tensor], torch.Tensor], v0: torch.Tensor, steps: int,
            basis: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Batched Lanczos with full reorthogonalisation for K start vectors at once.

    v0 (K, d); ``basis`` (d, k) orthonormal columns to deflate: the operator is P H P with P = I - Q Q^T.
    -> (alpha (K, m), beta (K, m), Lanczos vectors (K, m, d)), m <= steps (stops early on breakdown);
    beta[:, :m-1] are the off-diagonals of T_m and beta[:, m-1] the norm of the last residual (the next
    off-diagonal, used by the Gauss-Radau rule).
    """
    K, d = v0.shape
    P = (lambda x: x - (x @ basis) @ basis.T) if basis is not None and basis.shape[1] else (lambda x: x)
    q = P(v0)
    q = q / q.norm(dim=1, keepdim=True)
    Qs = [q]
    alphas, betas = [], []
    for j in range(steps):
        w = P(matvec(Qs[-1]))
        a = (w * Qs[-1]).sum(1)
        alphas.append(a)
        V = torch.stack(Qs, 1)  # (K, j+1, d)
        for _ in range(2):  # full reorthogonalisation, twice is enough (Parlett)
            w = w - torch.einsum("kj,kjd->kd", torch.einsum("kjd,kd->kj", V, w), V)
            w = P(w)
        b = w.norm(dim=1)
        betas.append(b)
        if j == steps - 1 or bool((b < 1e-10 * max(1.0, float(a.abs().max()))).any()):
            break
        Qs.append(w / b.unsqueeze(1))
    return torch.stack(alphas, 1), torch.stack(betas, 1), torch.stack(Qs, 1)


def _tridiag_eig(alpha: torch.Tensor, beta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigen-decomposition of each (m, m) symmetric tridiagonal (alpha, beta): (theta (K, m), S (K, m, m))."""
    T = torch.diag_embed(alpha) + torch.diag_embed(beta, 1) + torch.diag_embed(beta, -1)
    return torch.linalg.eigh(T)


def gauss_radau(alpha: torch.Tensor, beta: torch.Tensor, node: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Gauss-Radau rule with one node fixed at ``node`` (Golub & Meurant, "Matrices, Moments and Quadrature
    with Applications", 2010, sec. 6.2): extend T_m by alpha~ = node + delta_m, (T_m - node I) delta =
    beta_m^2 e_m. For a PSD operator with a large null space (a trained net's Hessian), the fixed node at 0
    takes the null space's weight, which plain Gauss quadrature smears over small positive nodes.
    alpha (K, m), beta (K, m) from :func:`lanczos` -> (nodes (K, m+1), weights (K, m+1)) (weights sum to 1)."""
    K, m = alpha.shape
    off, last = beta[:, :m - 1], beta[:, m - 1]
    T = torch.diag_embed(alpha) + torch.diag_embed(off, 1) + torch.diag_embed(off, -1)
    rhs = torch.zeros(K, m, 1, dtype=alpha.dtype, device=alpha.device)
    rhs[:, -1, 0] = last ** 2
    eye = torch.eye(m, dtype=alpha.dtype, device=alpha.device)
    delta = torch.linalg.solve(T - node * eye, rhs)[:, -1, 0]
    a_ext = torch.cat([alpha, (node + delta).unsqueeze(1)], 1)
    th, S = _tridiag_eig(a_ext, beta)
    return th, S[:, 0, :].pow(2)


def hessian_spectrum(model: nn.Module, loss_fn: Callable, data: Sequence[torch.Tensor], *, copy: int = 0,
                     top_steps: int = 300, probes: int = 30, probe_steps: int = 60, residual_tol: float = 1e-6,
                     seed: int = 0, dense_max_dim: int = DENSE_MAX_DIM, radau: bool = True) -> HessianSpectrum:
    """Spectral data of the full-data loss Hessian at the model's parameters (module docstring).

    d <= dense_max_dim: dense Hessian, exact eigenvalues. Otherwise: Lanczos (``top_steps`` steps from a
    random start) for the top; Ritz pairs whose residual |H y - theta y| <= residual_tol * |theta_max| are
    deflated and counted exactly; ``probes`` Rademacher probes x ``probe_steps`` Lanczos steps on the
    deflated operator give the rest by stochastic Lanczos quadrature. Cost: top_steps + probes * probe_steps
    Hessian-vector products (batched over the probes), memory (top_steps + probes * probe_steps) * d floats.
    """
    for name, v, lo in (("top_steps", top_steps, 1), ("probes", probes, 2), ("probe_steps", probe_steps, 2)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
    if not residual_tol > 0:
        raise ValueError(f"residual_tol must be > 0, got {residual_tol!r}")
    t0 = time.perf_counter()
    matvec, w0 = hessian_operator(model, loss_fn, data, copy)
    d = w0.numel()
    empty = np.zeros((0, 0))
    if d <= dense_max_dim:
        H = torch.cat([matvec(torch.eye(d, dtype=w0.dtype, device=w0.device)[i:i + 256]) for i in range(0, d, 256)])
        H = 0.5 * (H + H.T).double()
        h = torch.linalg.eigvalsh(H).flip(0).cpu().numpy()
        return HessianSpectrum(d, h, empty, empty, "dense", time.perf_counter() - t0)
    g = torch.Generator(w0.device).manual_seed(int(seed))
    v0 = torch.randn(1, d, generator=g, dtype=w0.dtype, device=w0.device)
    alpha, beta, Q = lanczos(matvec, v0, min(top_steps, d))
    theta, S = _tridiag_eig(alpha[0], beta[0, :-1])  # ascending
    Y = S.T @ Q[0]  # (m, d) Ritz vectors
    HY = torch.cat([matvec(Y[i:i + 64]) for i in range(0, Y.shape[0], 64)])
    res = (HY - theta[:, None] * Y).norm(dim=1)
    conv = res <= residual_tol * theta.abs().max()
    basis = torch.linalg.qr(Y[conv].T)[0] if bool(conv.any()) else Y.new_zeros(d, 0)
    top = theta[conv].flip(0).cpu().numpy()
    z = (torch.randint(0, 2, (probes, d), generator=g, device=w0.device).to(w0.dtype) * 2 - 1)
    zn2 = (z - (z @ basis) @ basis.T).pow(2).sum(1)  # |P z|^2
    a2, b2, _ = lanczos(matvec, z, probe_steps, basis=basis)
    if radau:
        th, tau2 = gauss_radau(a2, b2, 0.0)
    else:
        th, S2 = _tridiag_eig(a2, b2[:, :-1])
        tau2 = S2[:, 0, :].pow(2)
    weights = tau2 * zn2[:, None]
    return HessianSpectrum(d, top, th.cpu().double().numpy(), weights.cpu().double().numpy(), "lanczos",
                           time.perf_counter() - t0, residual_tol)


@dataclass(frozen=True)
class QuadraticPrediction:
    """E[lambda_hat] of SGLD at (n_beta, gamma) under the quadratic approximation at w* (module docstring)."""

    llc: float
    llc_se: float  # stochastic-quadrature standard error (0 for the dense path)
    n_beta: float
    gamma: float
    eps: float | None
    num_burnin: int | None
    num_draws: int | None
    dim: int
    method: str
    hard_count: float  # half the number of eigenvalues above gamma / n_beta (the "sharp" count)


def predict_llc(spectrum: HessianSpectrum, n_beta: float, gamma: float, *, eps: float | None = None,
                num_burnin: int | None = None, num_draws: int | None = None) -> QuadraticPrediction:
    """Quadratic-approximation prediction of SGLD's estimate at (n_beta, gamma) from a
    :func:`hessian_spectrum`: stationary exact law (eq. 1) by default, the finite plain-SGLD run with
    ``eps`` (and chain lengths) by eq. (2)."""
    v, se = spectrum.soft_count(n_beta, gamma, eps, num_burnin, num_draws)
    hard, _ = spectrum.trace(lambda h: 0.5 * (np.asarray(h) * n_beta > gamma))
    return QuadraticPrediction(v, se, float(n_beta), float(gamma), eps, num_burnin, num_draws, spectrum.dim,
                               spectrum.method, hard)

"""Generic Jacobian rank, symmetries, data cap and lambda for any :class:`slt.models.polynomial.PolyNet`.

The map w -> F(w) = (f_w(x_i))_{i <= N} in R^{N x q} on the training inputs. For the Gaussian loss (plain
or centred, P = I - 11^T/N) K(w) is a quadratic form in F(w) - F(w*), so at a generic interpolating
point (a teacher's own outputs as targets) lambda = rank J / 2, m = 1:

* the rank of J is lower semicontinuous and polynomial in w, so it takes its maximum (the generic rank
  r) on an open dense set; there it is locally constant, the fibre {F = F(w*)} is a manifold of
  codimension r (constant rank theorem) and K is Morse-Bott normal to it (Watanabe 2009 sec. 7.1;
  Lau et al. arXiv 2308.12108 sec. 3): lambda = r/2.
* LOWER bound, rigorous: J at an integer point w has integer entries (they are polynomials with integer
  coefficients in w and x); its rank over F_P is <= its rank over Q <= r. Entries are computed modulo P
  exactly (never by rounding floats) and the rank is python-flint's ``nmod_mat.rank``.
* UPPER bounds, rigorous: (i) the data cap q N_f, N_f = dim of the functions a degree-k^L polynomial of
  x can take on the distinct inputs (rank of the polynomial-kernel Gram matrix (x_i.x_j + [bias])^(k^L),
  exact over Z with ``fmpz_mat``), minus one when centred and constants are among them; (ii) d minus
  the dimension of the orbit of the named continuous symmetries at the point (their tangent vectors lie
  in ker J everywhere, so rank J <= d - dim span):
    - unit rescaling (k >= 2): (w_in, w_out) -> (t w_in, t^-k w_out) per hidden unit;
    - GL(m_l) between layers when k = 1 (and translations h_l -> h_l + c when biased);
    - first-layer null space: directions n with X_aug n = 0 on the data (X_aug = [X, 1] with bias), per
      first-layer unit. For one-hot slots these are the shifts "add t to one slot's rows, subtract it
      from another's" (the one-hot of each slot sums to 1), generalising the quadratic net's shift;
    - the output bias c under a centred loss.
  When the exact lower bound meets min(cap, d - orbit) the generic rank is PROVED for that instance.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import flint
import numpy as np
import sympy as sp
import torch

from slt.models.polynomial import PolyNet, PolyNetModule, encode_inputs
from slt.theory.jacobian import numerical_rank

__all__ = [
    "ENGINE_PRIME",
    "GenericRank",
    "poly_jacobian",
    "random_integer_params",
    "exact_rank",
    "data_cap",
    "symmetry_generators",
    "generic_rank",
    "morse_bott_probe",
    "quadratic_instance",
]

# Largest prime below 2^26: residues < 2^26, products < 2^52, and sums of up to 2^11 products stay below
# 2^63, so matrix products of residues are exact in int64 (widths are capped at MAX_WIDTH for this).
ENGINE_PRIME = 67_108_859
MAX_WIDTH = 2048
TANGENT_RATIO = 0.05  # as slt.theory.jacobian: a tangent probe returns by O(delta^2), a normal one by O(delta)


def _integer_rows(X: np.ndarray) -> np.ndarray:
    """X scaled by one common power of 2 to integers, exactly (every float64 is m / 2^e). Scaling all
    inputs by c != 0 is the reparametrisation W_1 -> W_1 / c, so ranks, caps and null spaces are unchanged;
    the scale is invertible mod an odd prime. Integer X is returned as is."""
    return _integer_rows_scaled(X)[0]


def _integer_rows_scaled(X: np.ndarray) -> tuple[np.ndarray, int]:
    """(integer rows, the common factor 2^e they were multiplied by)."""
    if np.issubdtype(X.dtype, np.integer):
        return X.astype(np.int64), 1
    if not np.all(np.isfinite(X)):
        raise ValueError("dense inputs must be finite")
    from fractions import Fraction

    fr = [[Fraction(float(v)) for v in row] for row in X.tolist()]
    den = max((f.denominator for row in fr for f in row), default=1)  # all powers of 2: the max is the lcm
    out = np.array([[int(f * den) for f in row] for row in fr], dtype=object)
    if all(abs(int(v)) < 2**62 for v in out.ravel()):
        out = out.astype(np.int64)
    return out, den


def _check_widths(spec: PolyNet) -> None:
    if max(spec.widths) > MAX_WIDTH or spec.d_in > MAX_WIDTH:
        raise ValueError(f"widths and d_in must be <= {MAX_WIDTH} for exact int64 arithmetic mod P")


def _forward_backward(spec: PolyNet, params: dict, X, red):
    """Activations h_l, z_l and G_l[i, o, j] = dF[i, o]/dh_l[i, j] (red reduces mod P, or is identity)."""
    k, L = spec.activation, spec.depth
    hs, zs = [], [X]
    z = X
    for l in range(1, L + 1):
        h = red(z @ params[f"W{l}"])
        if spec.bias:
            h = red(h + params[f"b{l}"])
        zk = h
        for _ in range(k - 1):
            zk = red(zk * h)
        hs.append(h)
        zs.append(zk)
        z = zk

    def dact(h):  # k h^(k-1)
        out = red(np.ones_like(h) * k) if isinstance(h, np.ndarray) else h * 0 + k
        for _ in range(k - 1):
            out = red(out * h)
        return out

    G = [None] * (L + 1)
    A = params["A"]
    G[L] = red(A.T[None, :, :] * dact(hs[L - 1])[:, None, :])  # (N, q, m_L)
    for l in range(L, 1, -1):
        back = red(np.einsum("ioj,aj->ioa", G[l], params[f"W{l}"]))
        G[l - 1] = red(back * dact(hs[l - 2])[:, None, :])
    return hs, zs, G


def poly_jacobian(spec: PolyNet, params: dict, inputs, centred: bool = False, prime: int | None = None) -> np.ndarray:
    """J = dF/dw, rows (i, o) (sample-major), columns in the order of ``spec.shapes()``. -> (N q, d).

    Entries (z_0 = X the encoded inputs, G_l = dF/dh_l by the chain rule through t -> t^k):
        dF[i,o]/dW_l[a,j] = z_{l-1}[i,a] G_l[i,o,j],  dF[i,o]/db_l[j] = G_l[i,o,j],
        dF[i,o]/dA[j,o'] = z_L[i,j] [o = o'],          dF[i,o]/dc[o'] = [o = o'],
        G_L[i,o,j] = A[j,o] k h_L[i,j]^(k-1),  G_{l-1}[i,o,a] = sum_j G_l[i,o,j] W_l[a,j] k h_{l-1}[i,a]^(k-1).
    ``prime``: integer params, every entry reduced mod prime (exact; prime <= ENGINE_PRIME). Else float64.
    ``centred``: rows multiplied by N P = N I - 11^T along the samples (same rank as P J; stays integral).
    """
    X = encode_inputs(spec, inputs)
    if prime is None:
        red = lambda t: t  # noqa: E731
        P = {n: np.asarray(params[n], dtype=np.float64) for n, _ in spec.shapes()}
        X = X.astype(np.float64)
    else:
        if prime > ENGINE_PRIME:
            raise ValueError(f"prime must be <= {ENGINE_PRIME} so that int64 matrix products are exact")
        _check_widths(spec)
        red = lambda t: np.mod(t, prime)  # noqa: E731
        P = {}
        for n, _ in spec.shapes():
            v = np.asarray(params[n])
            if not np.issubdtype(v.dtype, np.integer):
                raise ValueError(f"params[{n!r}] must be an integer array for an exact rank")
            P[n] = np.mod(v.astype(np.int64), prime)
        X = np.mod(_integer_rows(X), prime).astype(np.int64)
    for n, s in spec.shapes():
        if tuple(P[n].shape) != s:
            raise ValueError(f"params[{n!r}] must have shape {s}, got {tuple(P[n].shape)}")
    hs, zs, G = _forward_backward(spec, P, X, red)
    N, q = X.shape[0], spec.n_out
    eye = np.eye(q, dtype=X.dtype)
    cols = []
    for l in range(1, spec.depth + 1):
        zin = zs[l - 1]
        cols.append(red(np.einsum("ia,ioj->ioaj", zin, G[l])).reshape(N, q, -1))
        if spec.bias:
            cols.append(G[l])
    cols.append(np.einsum("ij,op->iojp", zs[spec.depth], eye).reshape(N, q, -1))
    if spec.bias:
        cols.append(np.broadcast_to(eye, (N, q, q)))
    J = np.concatenate(cols, axis=2)
    if centred:
        J = red(N * J - J.sum(0, keepdims=True))
    return np.ascontiguousarray(J.reshape(N * q, -1))


def random_integer_params(spec: PolyNet, seed: int = 0, prime: int = ENGINE_PRIME) -> dict[str, np.ndarray]:
    """Integer parameters uniform in [0, prime): a random point of F_P^d (Schwartz-Zippel: a fixed
    nonzero maximal minor of degree D vanishes there with probability <= D / prime)."""
    rng = np.random.default_rng(seed)
    return {n: rng.integers(0, prime, size=s, dtype=np.int64) for n, s in spec.shapes()}


def _rank_mod(M: np.ndarray, prime: int) -> int:
    r, c = M.shape
    if r == 0 or c == 0:
        return 0
    if r < c:
        M = M.T
        r, c = c, r
    return int(flint.nmod_mat(r, c, np.mod(M, prime).ravel().tolist(), prime).rank())


def exact_rank(spec: PolyNet, inputs, centred: bool = False, seed: int = 0, n_points: int = 1,
               prime: int = ENGINE_PRIME) -> int:
    """max over ``n_points`` random integer points of rank_{F_P} J: a rigorous lower bound on the
    generic rank (python-flint ``nmod_mat.rank``)."""
    if n_points < 1:
        raise ValueError(f"n_points must be >= 1, got {n_points}")
    return max(_rank_mod(poly_jacobian(spec, random_integer_params(spec, seed + 7919 * s, prime), inputs,
                                       centred, prime), prime) for s in range(n_points))


def _distinct_rows(X: np.ndarray) -> np.ndarray:
    return np.unique(X, axis=0)


def data_cap(spec: PolyNet, inputs, centred: bool = False) -> tuple[int, int]:
    """(q N_f', N_f): N_f = dim of the functions on the distinct inputs that f can take, i.e. of the span
    of the monomials of degree k^L in x (all degrees <= k^L with biases) evaluated there = rank of the Gram
    matrix (x_i.x_j + [bias])^(k^L) (its feature map is those monomials with positive weights), exact
    over Z. N_f' = N_f - 1 when centred and the constants lie in that span (rank(G + 11^T) = rank G)."""
    X = _integer_rows(_distinct_rows(encode_inputs(spec, inputs)))
    D = spec.degree
    Xi = [[int(v) for v in row] for row in X.tolist()]  # Python ints: no overflow for scaled float inputs
    base = [[sum(a * b for a, b in zip(r1, r2)) + int(spec.bias) for r2 in Xi] for r1 in Xi]
    gram = [[v ** D for v in row] for row in base]
    nf = int(flint.fmpz_mat(gram).rank())
    if centred:
        with_one = int(flint.fmpz_mat([[v + 1 for v in row] for row in gram]).rank())
        nf_eff = nf - 1 if with_one == nf else nf
    else:
        nf_eff = nf
    return spec.n_out * nf_eff, nf


def _first_layer_null(spec: PolyNet, inputs, centred: bool = False, exact_model: bool = True) -> list[list[int]]:
    """Integer basis of {n : X_aug n = 0} on the distinct inputs (X_aug = [X, 1] with a bias). Linear
    activation and a centred loss: {n : X_aug n constant} (a constant pre-activation shift then moves f
    by a constant, which centring removes)."""
    X, den = _integer_rows_scaled(_distinct_rows(encode_inputs(spec, inputs)))
    if spec.bias:
        # the exact path evaluates the model on X_s = den X (a reparametrisation of W_1): null space of
        # [X_s, 1]; the float path on X itself: X n + b = 0 <=> X_s n + den b = 0, null space of [X_s, den]
        col = np.array([[1 if exact_model else den]] * X.shape[0], dtype=object)
        X = np.concatenate([X.astype(object), col], axis=1)
    if centred and spec.activation == 1:
        X = X[1:] - X[:1] if X.shape[0] > 1 else np.zeros_like(X)
    if X.shape[0] == 0 or not np.any(X != 0):
        return [[int(i == j) for i in range(X.shape[1])] for j in range(X.shape[1])]
    ns, nullity = flint.fmpz_mat([[int(v) for v in row] for row in X.tolist()]).nullspace()
    cols = [[int(ns[i, j]) for i in range(X.shape[1])] for j in range(int(nullity))]
    return cols


@dataclass(frozen=True)
class SymmetryFamily:
    name: str
    vectors: np.ndarray  # (count, d) tangent vectors at the point


def symmetry_generators(spec: PolyNet, params: dict, inputs, centred: bool = False,
                        prime: int | None = None) -> list[SymmetryFamily]:
    """Tangent vectors (at ``params``) of the named continuous symmetries, grouped by family (module
    docstring). Every one lies in ker J(params) exactly; with ``prime`` they are integer vectors mod P."""
    red = (lambda t: t) if prime is None else (lambda t: np.mod(t, prime))  # noqa: E731
    dt = np.float64 if prime is None else np.int64
    shapes = spec.shapes()
    offs, o = {}, 0
    for n, s in shapes:
        offs[n] = (o, s)
        o += int(np.prod(s))
    d = o
    P = {n: red(np.asarray(params[n]).astype(dt)) for n, _ in shapes}

    def put(vec, name, arr):
        start, s = offs[name]
        vec[start:start + int(np.prod(s))] = red(vec[start:start + int(np.prod(s))] + arr.reshape(-1))

    k, L = spec.activation, spec.depth
    out_name = lambda l: "A" if l == L else f"W{l + 1}"  # noqa: E731
    fams = []
    if k >= 2:
        vecs = []
        for l in range(1, L + 1):
            for j in range(spec.widths[l - 1]):
                v = np.zeros(d, dtype=dt)
                Win = np.zeros_like(P[f"W{l}"])
                Win[:, j] = P[f"W{l}"][:, j]
                put(v, f"W{l}", Win)
                if spec.bias:
                    b = np.zeros_like(P[f"b{l}"])
                    b[j] = P[f"b{l}"][j]
                    put(v, f"b{l}", b)
                Wout = np.zeros_like(P[out_name(l)])
                Wout[j] = -k * P[out_name(l)][j]
                put(v, out_name(l), Wout)
                vecs.append(v)
        fams.append(SymmetryFamily("unit rescaling (t w_in, t^-k w_out)", np.array(vecs)))
    else:
        vecs, trans = [], []
        for l in range(1, L + 1):
            m = spec.widths[l - 1]
            Wl, Wo = P[f"W{l}"], P[out_name(l)]
            for a in range(m):
                for b in range(m):
                    v = np.zeros(d, dtype=dt)  # h_l -> h_l (I + t E_ab), W_{l+1} -> (I - t E_ab) W_{l+1}
                    Win = np.zeros_like(Wl)
                    Win[:, b] = Wl[:, a]
                    put(v, f"W{l}", Win)
                    if spec.bias:
                        bb = np.zeros_like(P[f"b{l}"])
                        bb[b] = P[f"b{l}"][a]
                        put(v, f"b{l}", bb)
                    Wout = np.zeros_like(Wo)
                    Wout[a] = -Wo[b]
                    put(v, out_name(l), Wout)
                    vecs.append(v)
                if spec.bias:  # h_l -> h_l + t e_a, next bias -= t W_{l+1}[a]
                    v = np.zeros(d, dtype=dt)
                    bb = np.zeros_like(P[f"b{l}"])
                    bb[a] = 1
                    put(v, f"b{l}", bb)
                    put(v, "c" if l == L else f"b{l + 1}", -Wo[a])
                    trans.append(v)
        fams.append(SymmetryFamily("GL(m_l) between linear layers", np.array(vecs)))
        if trans:
            fams.append(SymmetryFamily("translations of hidden layers (linear, biased)", np.array(trans)))
    null = _first_layer_null(spec, inputs, centred, exact_model=prime is not None)
    if null:
        conv = (lambda x: float(x)) if prime is None else (lambda x: int(x) % prime)  # noqa: E731
        vecs = []
        for nvec in null:
            col = np.array([conv(x) for x in nvec[:spec.d_in]], dtype=dt)
            for j in range(spec.widths[0]):
                v = np.zeros(d, dtype=dt)
                W = np.zeros((spec.d_in, spec.widths[0]), dtype=dt)
                W[:, j] = col
                put(v, "W1", W)
                if spec.bias:
                    b = np.zeros(spec.widths[0], dtype=dt)
                    b[j] = conv(nvec[spec.d_in])
                    put(v, "b1", b)
                vecs.append(v)
        fams.append(SymmetryFamily("first-layer null space on the data (one-hot shifts)", np.array(vecs)))
    if centred and spec.bias:
        vecs = []
        for o in range(spec.n_out):
            v = np.zeros(d, dtype=dt)
            e = np.zeros(spec.n_out, dtype=dt)
            e[o] = 1
            put(v, "c", e)
            vecs.append(v)
        fams.append(SymmetryFamily("output bias under the centred loss", np.array(vecs)))
    return fams


def _orbit_dims(fams: list[SymmetryFamily], prime: int) -> tuple[int, dict[str, int]]:
    """dim of the span of all generators (exact rank mod prime, a lower bound on the rank over Q) and
    each family's marginal contribution, in order."""
    total, named, stack = 0, {}, []
    for f in fams:
        stack.extend(list(f.vectors))
        r = _rank_mod(np.array(stack), prime) if stack else 0
        named[f.name] = r - total
        total = r
    return total, named


@dataclass(frozen=True)
class GenericRank:
    """Generic Jacobian rank and lambda of a PolyNet on given training inputs.

    rank: exact rank over F_P at random integer points (rigorous lower bound on the generic rank r).
    numerical_rank, sv_gap: float64 SVD rank at a random Gaussian point, and s_r / s_{r+1}.
    data_cap: q N_f' (rigorous upper bound); symmetry_bound: d - orbit dim (rigorous upper bound);
    upper = min of the two; exact: rank == upper, so r is proved for this instance.
    symmetries: each named family's contribution to the orbit dimension.
    unexplained_kernel: d - rank - orbit dim (kernel directions no named symmetry accounts for: the
    data cap binding, or a symmetry not named here).
    lam = rank / 2 (exact Rational); morse_bott: outcome of the numerical probe (None if not run).
    """

    rank: int
    numerical_rank: int
    sv_gap: float
    n_params: int
    n_inputs: int
    n_distinct: int
    data_cap: int
    function_dim: int
    symmetry_bound: int
    symmetries: dict[str, int] = field(hash=False)
    upper: int = 0
    exact: bool = False
    unexplained_kernel: int = 0
    lam: sp.Rational = sp.Integer(0)
    morse_bott: bool | None = None
    wall_s: float = float("nan")

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["lam"] = float(self.lam)
        d["lambda"] = str(self.lam)
        return d


def generic_rank(spec: PolyNet, inputs, centred: bool = False, seed: int = 0, n_points: int = 1,
                 numerical: bool = True, probe: bool = False, prime: int = ENGINE_PRIME) -> GenericRank:
    """Exact generic-point rank of J for ``spec`` on ``inputs`` (index tuples or dense vectors), with the
    numerical rank beside it, the symmetry and data upper bounds, and lambda = rank/2 (see module doc).
    ``probe``: also run the numerical Morse-Bott probe at a random float point (:func:`morse_bott_probe`)."""
    t0 = time.perf_counter()
    X = encode_inputs(spec, inputs)
    n_in = X.shape[0]
    n_dist = _distinct_rows(X).shape[0]
    r = exact_rank(spec, inputs, centred, seed, n_points, prime)
    cap, nf = data_cap(spec, inputs, centred)
    pint = random_integer_params(spec, seed + 104729, prime)
    orbit, named = _orbit_dims(symmetry_generators(spec, pint, inputs, centred, prime), prime)
    sym = spec.n_params - orbit
    upper = min(cap, sym)
    nr, gap = -1, float("nan")
    if numerical:
        w = {k: v.numpy() for k, v in spec.init_params(seed).items()}
        Jf = poly_jacobian(spec, w, inputs, centred)
        if centred:
            Jf = Jf / n_in
        nr, _, gap = numerical_rank(Jf)
    mb = None
    if probe:
        mb = morse_bott_probe(spec, {k: v.numpy() for k, v in spec.init_params(seed).items()}, inputs, centred,
                              seed=seed)[0]
    return GenericRank(rank=r, numerical_rank=nr, sv_gap=gap, n_params=spec.n_params, n_inputs=n_in,
                       n_distinct=n_dist, data_cap=cap, function_dim=nf, symmetry_bound=sym, symmetries=named,
                       upper=upper, exact=r == upper, unexplained_kernel=spec.n_params - r - orbit,
                       lam=sp.Rational(r, 2), morse_bott=mb, wall_s=time.perf_counter() - t0)


def morse_bott_probe(spec: PolyNet, params: dict, inputs, centred: bool = False, n_probe: int = 3,
                     step: float = 1e-3, seed: int = 0) -> tuple[bool, int, tuple[int, ...]]:
    """Numerical Morse-Bott test at a float point w*: rank r of J (float64 SVD), then ``n_probe`` random
    kernel directions at distance step * max(|w*|, 1), Gauss-Newton back to the fibre {F = F(w*)}: w* is
    Morse-Bott iff every probe came back by O(step^2) (tangent) and the rank there (same absolute
    threshold) is r. Returns (morse_bott, r, nearby ranks). As :func:`slt.theory.jacobian.llc_at_point`."""
    names = [n for n, _ in spec.shapes()]
    shapes = dict(spec.shapes())
    sizes = [int(np.prod(shapes[n])) for n in names]
    w0 = np.concatenate([np.asarray(params[n], dtype=np.float64).reshape(-1) for n in names])
    X = encode_inputs(spec, inputs)
    n = X.shape[0]

    def unflat(w):
        return {nm: t.reshape(shapes[nm]) for nm, t in zip(names, np.split(w, np.cumsum(sizes)[:-1]))}

    def F(w):
        _, zs, _ = _forward_backward(spec, unflat(w), X.astype(np.float64), lambda t: t)
        out = zs[-1] @ unflat(w)["A"] + (unflat(w)["c"] if spec.bias else 0)
        if centred:
            out = out - out.mean(0)
        return out.reshape(-1)

    def Jac(w):
        J = poly_jacobian(spec, unflat(w), inputs, centred)
        return J / n if centred else J

    def rank_at(w, tol=None):
        s = torch.linalg.svdvals(torch.from_numpy(Jac(w))).numpy()
        if tol is None:
            tol = max(Jac(w).shape) * np.finfo(np.float64).eps * s[0]
        return int(np.sum(s > tol)), tol

    rng = np.random.default_rng(seed)
    F0 = F(w0)
    r, tol = rank_at(w0)
    delta = step * max(float(np.linalg.norm(w0)), 1.0)
    Vt = torch.linalg.svd(torch.from_numpy(Jac(w0)), full_matrices=True)[2].numpy()
    ker = Vt[r:].T
    if ker.shape[1] == 0:
        return True, r, ()
    nearby, tangent = [], []
    for _ in range(n_probe):
        dvec = ker @ rng.standard_normal(ker.shape[1])
        wp = w0 + delta * dvec / np.linalg.norm(dvec)
        x = wp
        for _ in range(40):
            dx = torch.linalg.lstsq(torch.from_numpy(Jac(x)), torch.from_numpy(F(x) - F0)[:, None],
                                    driver="gelsd").solution[:, 0].numpy()
            x = x - dx
            if np.linalg.norm(dx) <= 1e-13 * max(float(np.linalg.norm(x)), 1.0):
                break
        tangent.append(float(np.linalg.norm(x - wp)) <= TANGENT_RATIO * delta)
        nearby.append(rank_at(x, tol)[0])
    return all(tangent) and all(k == r for k in nearby), r, tuple(nearby)


def quadratic_instance(p: int, width: int, tied: bool = False, n_out: int | None = None) -> PolyNet:
    """The quadratic network f(a, b) = A^T (U[a] + V[b])^2 of :mod:`slt.models.quadratic` as a PolyNet."""
    return PolyNet(widths=(width,), n_out=p if n_out is None else n_out, activation=2, alphabets=(p, p), tied=tied)

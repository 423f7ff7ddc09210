"""Structured exact lambda (slt.theory.exact_scale) and polishing (slt.theory.polish) against the dense
references: float64 SVD of the full Jacobian, rank mod a prime at integer points, and llc_at_point's probes."""
import numpy as np
import pytest
import sympy as sp

from slt.theory.basins import fourier_solution, memorising_solution, pad_units
from slt.theory.exact_scale import exact_llc
from slt.theory.jacobian import exact_rank_at, llc_at_point, numerical_rank, quadratic_jacobian, random_integer_point
from slt.theory.polish import NotCriticalError, polish


def _F(U, V, A, a, b):
    s = U[a] + (U if V is None else V)[b]
    return (s * s) @ A


def _pairs(p, n, seed):
    idx = np.random.default_rng(seed).choice(p * p, n, replace=False)
    return idx // p, idx % p


# (p, K, N, centred, tied): model cap, data cap, both near the boundary, plain / centred / tied
GENERIC = [(5, 3, 12, False, False), (7, 8, 20, True, False), (7, 2, 30, False, False), (5, 4, 15, True, True),
           (11, 6, 40, True, False), (7, 30, 25, True, False), (6, 5, 20, False, True)]


@pytest.mark.parametrize("p,K,N,centred,tied", GENERIC)
def test_generic_teacher_point_matches_dense_and_mod_prime(p, K, N, centred, tied):
    seed = 17 * p + K + N  # new seed per case, not tuned
    U, V, A = random_integer_point(p, K, seed=seed, tied=tied, bound=50)
    a, b = _pairs(p, N, seed)
    exact = exact_rank_at(U, V, A, a, b, centred=centred)
    Uf, Vf, Af = U.astype(float), None if V is None else V.astype(float), A.astype(float)
    dense = numerical_rank(quadratic_jacobian(Uf, Vf, Af, a, b, centred=centred))[0]
    r = exact_llc(Uf, Vf, Af, a, b, _F(Uf, Vf, Af, a, b), centred=centred)  # teacher targets: R = 0 exactly
    assert r.route == "jacobian"
    assert r.rank == dense == exact
    assert r.lower == sp.Rational(r.rank, 2) and r.lower <= r.upper
    if r.lam is not None:
        assert r.lam == r.lower == r.upper


def _dense_vs_structured(U, V, A, a, b, y, centred):
    r = exact_llc(U, V, A, a, b, y, centred=centred)
    d = llc_at_point(U, V, A, a, b, y, centred=centred, interp_tol=1e-9)
    assert d.interpolating
    assert r.rank == d.rank, (r.rank, d.rank, r.gaps, d.sv_gap)
    if r.lam is not None and d.morse_bott:
        assert r.lam == d.lam
    # the rigorous bounds of the two must overlap
    assert r.lower <= d.upper and d.lower <= r.upper
    return r, d


@pytest.mark.parametrize("p", [5, 7])
def test_fourier_solution_matches_dense(p):
    U, V, A = fourier_solution(p, centred=True)
    a, b = np.divmod(np.arange(p * p), p)
    y = (a + b) % p
    _dense_vs_structured(U, V, A, a, b, y, centred=True)


@pytest.mark.parametrize("kind", ["dead", "readout_dead", "duplicate"])
def test_padded_memorising_solution_matches_dense(kind):
    p, K, N = 7, 24, 22
    a, b = _pairs(p, N, 3)
    y = (a + b) % p
    U, V, A = memorising_solution(p, K, a, b, y, centred=True, seed=1)
    U, V, A = pad_units(U, V, A, 3, kind=kind, seed=2)
    r, _ = _dense_vs_structured(U, V, A, a, b, y, centred=True)
    assert r.n_params == 3 * p * (K + 3)


def test_trained_net_polished_exact_value_matches_dense_probes():
    """A trained p = 11 net (data cap binds): polish to an interpolant, then the structured lambda is exact and
    equals half the rank the dense probes find at nearby minimisers (the Morse-Bott check of llc_at_point)."""
    from slt.training import default_config, train

    cfg = default_config("grokking").replace(p=11, width=40, seeds=(0,), steps=300, train_fraction=0.6,
                                             batch_size=None)
    res = train(cfg)
    a, b, y = (t.numpy() for t in res.data.train())
    from slt.theory.jacobian import point_from_net

    U, V, A = point_from_net(res.model)
    with pytest.raises(NotCriticalError):
        exact_llc(U, V, A, a, b, y, centred=True)  # a raw checkpoint is no critical point: no number
    pol = polish(U, V, A, a, b, y, centred=True)
    assert pol.critical and pol.kind == "interpolating"
    assert pol.loss_after < 1e-12 * pol.loss_before and pol.grad_norm_after < pol.grad_norm_before
    assert 0 < pol.rel_distance < 1
    r = exact_llc(pol.U, pol.V, pol.A, a, b, y, centred=True)
    d = llc_at_point(pol.U, pol.V, pol.A, a, b, y, centred=True, interp_tol=1e-8)
    assert r.lam is not None and set(d.nearby_ranks) == {r.rank}
    # centred one-hot labels force A 1 = 0: the count of independent equations is (q-1)N' + K, not q N'
    n1, K, q = len(a) - 1, 40, 11
    assert r.rank == (q - 1) * n1 + K < q * n1
    assert np.abs(pol.A.sum(1)).max() < 1e-6


def test_one_hot_reduction_absent_for_teacher_targets():
    p, K, N = 7, 24, 30
    a, b = _pairs(p, N, 5)
    U, V, A = (np.random.default_rng(9).normal(size=s) for s in ((p, K), (p, K), (K, p)))
    r = exact_llc(U, V, A, a, b, _F(U, V, A, a, b), centred=True)
    assert r.rank == p * (N - 1) and r.lam == sp.Rational(p * (N - 1), 2)  # full row rank: no forced A 1 = 0


def test_bad_inputs_and_non_critical_points():
    p, K, N = 5, 6, 12
    a, b = _pairs(p, N, 0)
    U, V, A = (np.random.default_rng(0).normal(size=s) for s in ((p, K), (p, K), (K, p)))
    y = (a + b) % p
    with pytest.raises(NotCriticalError, match="polish"):
        exact_llc(U, V, A, a, b, y)
    with pytest.raises(ValueError, match="y"):
        exact_llc(U, V, A, a, b, y[:-1])
    with pytest.raises(ValueError, match="indices"):
        exact_llc(U, V, A, a + p, b, y)
    with pytest.raises(ValueError, match="rows"):
        exact_llc(U, V, A[:-1], a, b, y)
    with pytest.raises(ValueError, match="weight_decay"):
        polish(U, V, A, a, b, y, weight_decay=-1.0)
    with pytest.raises(ValueError, match="NaN"):
        polish(U * np.nan, V, A, a, b, y)


def test_weight_decay_polish_is_not_critical_for_the_data_loss():
    p, K, N = 7, 24, 30
    a, b = _pairs(p, N, 1)
    y = (a + b) % p
    U, V, A = (0.3 * np.random.default_rng(2).normal(size=s) for s in ((p, K), (p, K), (K, p)))
    pol = polish(U, V, A, a, b, y, centred=True, weight_decay=1e-3)
    assert pol.objective == "data+wd" and not pol.critical  # never an exact value at a weight-decay point
    assert pol.loss_after < pol.loss_before
    if pol.kind != "none":
        assert "not a critical point of the data loss" in pol.message


def test_polish_and_exact_are_deterministic():
    p, K, N = 7, 24, 30
    a, b = _pairs(p, N, 4)
    y = (a + b) % p
    U, V, A = (0.3 * np.random.default_rng(3).normal(size=s) for s in ((p, K), (p, K), (K, p)))
    r1 = polish(U, V, A, a, b, y, centred=True)
    r2 = polish(U, V, A, a, b, y, centred=True)
    assert np.array_equal(r1.U, r2.U) and np.array_equal(r1.A, r2.A)
    assert exact_llc(r1.U, r1.V, r1.A, a, b, y, centred=True).rank == exact_llc(r2.U, r2.V, r2.A, a, b, y,
                                                                                  centred=True).rank


def test_probes_tighten_the_upper_bound_at_a_singular_point():
    """Fourier solution + dead units (singular: dead units can revive): the probes land on nearby minimisers; an
    upper bound they give is never below the lower bound and never above the orbit bound, and agrees with the
    dense reference's bounds."""
    p = 5
    U, V, A = fourier_solution(p, centred=True)
    U, V, A = pad_units(U, V, A, 3, "dead")
    a, b = np.divmod(np.arange(p * p), p)
    y = (a + b) % p
    plain = exact_llc(U, V, A, a, b, y, centred=True)
    probed = exact_llc(U, V, A, a, b, y, centred=True, n_probe=2, seed=1)
    assert probed.rank == plain.rank and probed.lower == plain.lower
    assert probed.lower <= probed.upper <= plain.upper
    assert len(probed.probes) == (0 if plain.lam is not None else 2)
    d = llc_at_point(U, V, A, a, b, y, centred=True)
    assert probed.lower <= d.upper and d.lower <= probed.upper


def _pivoted_cases():
    out = []
    for p, K, N, centred, tied in GENERIC[:5]:
        seed = 31 * p + K + N
        U, V, A = random_integer_point(p, K, seed=seed, tied=tied, bound=50)
        U, V, A = U.astype(float), None if V is None else V.astype(float), A.astype(float)
        a, b = _pairs(p, N, seed)
        out.append((f"generic{p},{K},{N}", (U, V, A, a, b, _F(U, V, A, a, b), centred)))
    a, b = np.divmod(np.arange(49), 7)
    out.append(("fourier7", (*fourier_solution(7, centred=True), a, b, (a + b) % 7, True)))
    for kind in ("dead", "readout_dead", "duplicate"):  # rank-deficient embedding Grams with known structure
        U, V, A = pad_units(*fourier_solution(7, centred=True), 4, kind=kind, seed=1)
        out.append((f"fourier7+{kind}", (U, V, A, a, b, (a + b) % 7, True)))
    return out


@pytest.mark.parametrize("name,args", _pivoted_cases(), ids=[c[0] for c in _pivoted_cases()])
def test_pivoted_cholesky_gram_rank_matches_eigenvalue_route(name, args):
    U, V, A, a, b, y, centred = args
    ref = exact_llc(U, V, A, a, b, y, centred=centred)
    piv = exact_llc(U, V, A, a, b, y, centred=centred, max_gram=0)  # every Gram through dpstrf
    assert piv.gram.endswith("pivoted-cholesky") and not ref.gram.endswith("pivoted-cholesky")
    assert piv.rank == ref.rank and piv.rank_embedding == ref.rank_embedding, (piv.gaps, ref.gaps)
    assert piv.lam == ref.lam and piv.lower == ref.lower
    assert piv.gaps["embedding"] > 1e3 or ref.gaps["embedding"] < 1e3


def test_gram_size_limits_raise_memory_error():
    p, K, N = 7, 8, 20
    U, V, A = random_integer_point(p, K, seed=2, bound=50)
    U, V, A = U.astype(float), V.astype(float), A.astype(float)
    a, b = _pairs(p, N, 2)
    with pytest.raises(MemoryError, match="max_pivoted"):
        exact_llc(U, V, A, a, b, _F(U, V, A, a, b), max_gram=0, max_pivoted=0)

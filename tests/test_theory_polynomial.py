"""The generic polynomial-network engine: Jacobian formula vs autograd, exact ranks vs the quadratic engine,
symmetries in the kernel, data caps vs independent counts, closed-form fits with held-out checks."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import sympy as sp
import torch

from slt.models.polynomial import PolyNet, PolyNetModule, encode_inputs
from slt.tasks import all_pairs, make_data
from slt.tasks_finite import dihedral_group, get_task, group_task, parity_task, symmetric_group, tuple_file_task
from slt.theory.families import FAMILIES, K_s, N_s, Family, fit_family, fit_min_linear, p_s
from slt.theory.jacobian import numerical_rank
from slt.theory.polynomial import (data_cap, exact_rank, generic_rank, poly_jacobian, quadratic_instance,
                                   random_integer_params, symmetry_generators)
from slt.theory.quadratic import quadratic_llc_data


def _pairs(p, frac, seed=0):
    a, b, _ = (t.numpy() for t in (all_pairs(p) if frac == 1.0 else make_data(p, "add", frac, seed).train()))
    return a, b, np.stack([a, b], 1)


@pytest.mark.parametrize("p,frac,K,tied,centred", [
    (3, 1.0, 2, False, False), (5, 1.0, 3, False, True), (5, 0.4, 4, False, False), (5, 0.4, 2, True, True),
    (7, 0.3, 6, False, True), (7, 1.0, 20, True, False), (5, 0.2, 3, False, False), (7, 0.5, 9, True, True)])
def test_quadratic_instance_reproduces_quadratic_engine(p, frac, K, tied, centred):
    """The quadratic net as a PolyNet gets the rank of slt.theory.jacobian/quadratic (independent code)."""
    a, b, x = _pairs(p, frac)
    g = generic_rank(quadratic_instance(p, K, tied), x, centred, n_points=2)
    q = quadratic_llc_data(p, K, a, b, tied, centred)
    assert g.rank == q.verified_rank
    assert g.lam == q.lam
    assert g.data_cap == q.data_cap
    assert g.numerical_rank == g.rank


SPECS = [
    PolyNet((3,), 4, 1, alphabets=(4, 4)),
    PolyNet((3,), 4, 3, alphabets=(4, 4), bias=True),
    PolyNet((2, 3), 4, 2, alphabets=(4, 4), tied=True),
    PolyNet((2, 2, 2), 3, 4, alphabets=(3, 3, 3)),
    PolyNet((3, 2), 2, 2, dense_dim=4, bias=True),
    PolyNet((2, 2, 3), 4, 1, alphabets=(4, 4), bias=True),
]


def _inputs(spec):
    if spec.one_hot:
        return np.array(list(itertools.product(*[range(n) for n in spec.alphabets])))
    return np.array(list(itertools.product((-1, 1), repeat=spec.dense_dim)))


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.label())
def test_jacobian_formula_matches_autograd_of_the_torch_forward(spec):
    x = _inputs(spec)
    m = PolyNetModule(spec, seed=1)
    names = [n for n, _ in spec.shapes()]
    xt = torch.as_tensor(x)

    def f(*ps):
        return torch.func.functional_call(m, dict(zip(names, ps)), (xt,)).reshape(-1)

    Jt = torch.func.jacrev(f, argnums=tuple(range(len(names))))(*[getattr(m, n) for n in names])
    Jt = torch.cat([j.reshape(Jt[0].shape[0], -1) for j in Jt], 1).detach().numpy()
    J = poly_jacobian(spec, m.param_dict(), x)
    assert np.allclose(J, Jt, rtol=1e-10, atol=1e-10 * np.abs(J).max())


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.label())
@pytest.mark.parametrize("centred", [False, True])
def test_bounds_bracket_the_rank_and_symmetries_lie_in_the_kernel(spec, centred):
    x = _inputs(spec)
    g = generic_rank(spec, x, centred, probe=True)
    assert g.rank <= g.upper and g.numerical_rank <= g.upper  # both <= the generic rank <= rigorous bounds
    if spec.degree <= 16:  # float64 SVD loses the rank of degree-64 maps (k4-L3: 14 of 22): exact ranks only there
        assert g.rank == g.numerical_rank
        assert g.morse_bott
    w = {k: v.numpy() for k, v in spec.init_params(5).items()}
    J = poly_jacobian(spec, w, x, centred)
    for fam in symmetry_generators(spec, w, x, centred):
        assert np.abs(J @ fam.vectors.T).max() <= 1e-9 * np.abs(J).max() * np.abs(fam.vectors).max(), fam.name
    # the same generators mod P: J v = 0 exactly over F_P at an integer point
    P = 67_108_859
    wi = random_integer_params(spec, 3, P)
    Ji = poly_jacobian(spec, wi, x, centred, prime=P)
    for fam in symmetry_generators(spec, wi, x, centred, prime=P):
        prod = np.zeros((Ji.shape[0], fam.vectors.shape[0]), dtype=object)
        prod = (Ji.astype(object) @ fam.vectors.T.astype(object)) % P
        assert not np.any(prod), fam.name


def test_proved_on_polynomial_nets_of_degree_two_and_more():
    """k >= 2: exact lower bound meets min(data cap, d - named orbit) on a spread of architectures."""
    _, _, x = _pairs(5, 1.0)
    for spec in [PolyNet((4,), 5, 3, alphabets=(5, 5)), PolyNet((3, 3), 5, 2, alphabets=(5, 5), bias=True),
                 PolyNet((3, 3, 2), 5, 2, alphabets=(5, 5)), PolyNet((3,), 5, 4, alphabets=(5, 5), tied=True),
                 PolyNet((30,), 5, 2, alphabets=(5, 5))]:
        for centred in (False, True):
            g = generic_rank(spec, x, centred)
            assert g.exact, (spec.label(), centred, g)


def test_linear_net_rank_is_the_dimension_of_low_rank_matrices():
    """f = x W A with x ranging over a basis of R^d: the image is {rank <= m} in R^{d x q}, of dimension
    m (d + q - m) (m < min(d, q)): an independent count, not from the engine."""
    d, q = 6, 5
    x = np.eye(d, dtype=np.int64) + np.triu(np.ones((d, d), dtype=np.int64), 1)
    for m in (1, 2, 3, 4):
        g = generic_rank(PolyNet((m,), q, 1, dense_dim=d), x)
        assert g.rank == m * (d + q - m)
        assert g.exact  # GL(m) is the whole kernel here


def test_data_cap_counts():
    # quadratic on +-1 bits, no bias: functions spanned by 1 (= x_i^2) and x_i x_j: 1 + C(n, 2)
    for n in (3, 4, 5):
        t = parity_task(n)
        spec = t.net(3)
        assert data_cap(spec, t.inputs) == (2 * (1 + math.comb(n, 2)), 1 + math.comb(n, 2))
    # linear activation on one-hot pairs: u[a] + v[b], a space of dimension 2p - 1
    p = 5
    _, _, x = _pairs(p, 1.0)
    spec = PolyNet((2,), p, 1, alphabets=(p, p))
    assert data_cap(spec, x) == (p * (2 * p - 1), 2 * p - 1)
    assert data_cap(spec, x, centred=True)[0] == p * (2 * p - 2)


def test_exact_rank_is_a_lower_bound_and_reproducible():
    _, _, x = _pairs(5, 0.5)
    spec = PolyNet((3, 2), 5, 3, alphabets=(5, 5))
    assert exact_rank(spec, x, seed=4) == exact_rank(spec, x, seed=4)
    w = {k: v.numpy() for k, v in spec.init_params(0).items()}
    assert exact_rank(spec, x) <= numerical_rank(poly_jacobian(spec, w, x))[0] + 0


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="activation"):
        PolyNet((2,), 3, 5, alphabets=(3, 3))
    with pytest.raises(ValueError, match="widths"):
        PolyNet((2, 2, 2, 2), 3, 2, alphabets=(3, 3))
    with pytest.raises(ValueError, match="exactly one"):
        PolyNet((2,), 3, 2)
    with pytest.raises(ValueError, match="tied"):
        PolyNet((2,), 3, 2, alphabets=(3, 4), tied=True)
    spec = PolyNet((2,), 3, 2, alphabets=(3, 3))
    with pytest.raises(ValueError, match=r"inputs\[:, 1\]"):
        encode_inputs(spec, np.array([[0, 3]]))
    with pytest.raises(ValueError, match="integer array"):
        poly_jacobian(spec, {k: v.numpy() for k, v in spec.init_params().items()}, np.array([[0, 1]]), prime=101)


def test_finite_tasks(tmp_path):
    s3 = group_task(symmetric_group(3), "S3")
    assert s3.size == 36 and s3.n_classes == 6
    table = s3.labels.reshape(6, 6)
    assert not np.array_equal(table, table.T)  # non-abelian
    assert all(sorted(row) == list(range(6)) for row in table)  # Latin square: a group table
    d4 = group_task(dihedral_group(4), "D4")
    assert d4.n_classes == 8 and not np.array_equal(d4.labels.reshape(8, 8), d4.labels.reshape(8, 8).T)
    assert get_task("s4").n_classes == 24
    par = parity_task(4, 2)
    assert np.array_equal(par.labels, (par.inputs[:, 0] * par.inputs[:, 1] < 0).astype(int))
    f = tmp_path / "tuples.txt"
    f.write_text("# a b label\n0 1 1\n1, 2, 0\n2 0 2\n")
    t = tuple_file_task(f)
    assert t.alphabets == (3, 3) and t.n_classes == 3 and t.size == 3
    assert get_task(str(f)).size == 3
    x, _ = get_task("add", 5).split(0.4, seed=1)
    x2, _ = get_task("add", 5).split(0.4, seed=1)
    assert len(x) == 10 and np.array_equal(x, x2)
    with pytest.raises(ValueError, match="train_fraction"):
        get_task("add", 5).split(0.0)
    with pytest.raises(ValueError, match="task must be one of"):
        get_task("nosuchtask", 5)


def test_fit_recovers_a_min_of_linear_terms():
    """Synthetic ranks from a known formula: the fitter returns that formula (up to simplification)."""
    truth = lambda p, K, N: min(p * N, (3 * p - 2) * K, K * (p + N - K))  # noqa: E731
    rows = [{"p": p, "K": K, "N": N, "rank": truth(p, K, N)}
            for p in (3, 4, 5, 6, 7) for K in (1, 2, 3, 5, 8, 12, 20) for N in (2 * p, p * p)]
    formula, terms, bad = fit_min_linear(rows)
    assert not bad and len(terms) == 3
    f = sp.lambdify((p_s, K_s, N_s), formula)
    for p, K, N in ((9, 7, 30), (11, 40, 121), (13, 3, 20)):  # off the grid
        assert f(p, K, N) == truth(p, K, N)


def test_small_family_fit_holds_out():
    fam = Family("cubic-small", "add", activation=3, fit_grid=tuple((p, K) for p in (3, 4, 5) for K in (1, 2, 3, 4, 8, 12)),
                 held_out=((6, 5), (6, 20)))
    r = fit_family(fam, numerical=False)
    assert r.formula is not None and not r.fit_misses
    assert r.held_out_ok and r.all_proved
    assert sp.simplify(r.formula - sp.Min(p_s * N_s, (3 * p_s - 2) * K_s)) == 0
    assert set(r.term_kind) == {"data cap (proved bound)", "symmetry bound (proved bound)"}
    assert set(FAMILIES) >= {"cubic", "deep2", "dihedral", "parity"}


def test_unnamed_kernel_is_reported_not_hidden():
    """Widths (2, 3, 2), k = 2: layer 2's three units are quadratic forms in 2 variables (a 3-dim space),
    so W2 and W3 have directions no named symmetry covers. The engine must say so (exact=False,
    unexplained_kernel > 0) and still return the proved lower bound as the rank."""
    _, _, x = _pairs(5, 1.0)
    g = generic_rank(PolyNet((2, 3, 2), 5, 2, alphabets=(5, 5)), x)
    assert not g.exact and g.unexplained_kernel > 0
    assert g.rank == g.numerical_rank < g.upper


def test_dense_float_inputs_are_exact_and_scale_free():
    """Float inputs are scaled exactly to integers (a reparametrisation of W_1): same rank as the integer
    inputs they are scaled copies of; an affine dependency (x3 = x1 + 1/2) is found as a first-layer null
    direction with a bias, and lies in the float Jacobian's kernel."""
    rng = np.random.default_rng(0)
    Xi = rng.integers(-3, 4, size=(15, 3))
    Xi[:, 2] = 2 * Xi[:, 0] + 1
    X = Xi / 4.0  # x3 = 2 x1 + 1/4
    for spec in (PolyNet((2,), 2, 2, dense_dim=3, bias=True), PolyNet((2, 2), 2, 3, dense_dim=3, bias=True)):
        for centred in (False, True):
            g, gi = generic_rank(spec, X, centred), generic_rank(spec, Xi, centred)
            assert (g.rank, g.upper, g.data_cap, g.symmetries) == (gi.rank, gi.upper, gi.data_cap, gi.symmetries)
            assert g.rank == g.numerical_rank and g.exact
            assert g.symmetries["first-layer null space on the data (one-hot shifts)"] == spec.widths[0]
            w = {k: v.numpy() for k, v in spec.init_params(1).items()}
            J = poly_jacobian(spec, w, X, centred)
            for fam in symmetry_generators(spec, w, X, centred):
                assert np.abs(J @ fam.vectors.T).max() <= 1e-9 * np.abs(J).max() * np.abs(fam.vectors).max()


@pytest.mark.slow
@pytest.mark.parametrize("p", [11, 13])
def test_quadratic_instance_at_larger_p(p):
    """Both regimes and the boundary at p = 11, 13 (plain/centred, tied/untied, full and 40% data)."""
    for frac in (1.0, 0.4):
        a, b, x = _pairs(p, frac)
        for tied in (False, True):
            for centred in (False, True):
                n = quadratic_llc_data(p, 1, a, b, tied, centred).data_cap // p
                unit = 2 * p - 1 if tied else 3 * p - 2
                kb = -(-p * n // unit)
                for K in (2, kb - 1, kb):
                    g = generic_rank(quadratic_instance(p, K, tied), x, centred, numerical=False)
                    assert g.rank == quadratic_llc_data(p, K, a, b, tied, centred).verified_rank

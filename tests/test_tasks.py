"""Tasks: labels of every op against plain Python arithmetic, pair counts, seeded splits, bad input."""
import pytest
import torch

from slt.tasks import OPS, all_pairs, is_prime, make_data


def python_label(a: int, b: int, op: str, p: int) -> int:
    if op == "add":
        return (a + b) % p
    if op == "sub":
        return (a - b) % p
    if op == "mul":
        return (a * b) % p
    # div: the c with c * b = a (mod p), found by search (independent of the Fermat inverse used by slt)
    return next(c for c in range(p) if (c * b) % p == a)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("p", [2, 5, 7, 13])
def test_every_op_labels_match_python(op, p):
    a, b, y = all_pairs(p, op)
    expected_pairs = p * (p - 1) if op == "div" else p * p
    assert a.numel() == b.numel() == y.numel() == expected_pairs
    assert a.dtype == b.dtype == y.dtype == torch.int64
    seen = set()
    for ai, bi, yi in zip(a.tolist(), b.tolist(), y.tolist()):
        assert yi == python_label(ai, bi, op, p)
        seen.add((ai, bi))
    assert len(seen) == expected_pairs  # no duplicates
    if op == "div":
        assert (b != 0).all()


def test_non_prime_add_sub_allowed():
    a, b, y = all_pairs(12, "sub")
    assert a.numel() == 144 and int(y.max()) == 11


@pytest.mark.parametrize("frac", [0.1, 0.4, 0.5, 0.9])
@pytest.mark.parametrize("op", ["add", "div"])
def test_split_sizes_disjoint_and_complete(frac, op):
    d = make_data(13, op, frac, seed=3)
    total = 13 * 12 if op == "div" else 13 * 13
    assert d.n_train == int(frac * total)
    assert d.n_train + d.n_test == total
    tr, te = set(d.train_idx.tolist()), set(d.test_idx.tolist())
    assert not tr & te and tr | te == set(range(total))
    a, b, y = d.train()
    assert a.shape == (d.n_train,) and torch.equal(y, d.y[d.train_idx])


def test_paper_split_size():
    assert make_data(53, "add", 0.4, 0).n_train == 1123  # Cullen et al.: N = 1123 for p = 53


def test_split_is_seeded():
    d1, d2, d3 = make_data(11, "add", 0.4, 0), make_data(11, "add", 0.4, 0), make_data(11, "add", 0.4, 1)
    assert torch.equal(d1.train_idx, d2.train_idx)
    assert not torch.equal(d1.train_idx, d3.train_idx)


def test_split_does_not_touch_global_rng():
    torch.manual_seed(123)
    x = torch.rand(3)
    torch.manual_seed(123)
    make_data(11, "add", 0.4, 5)
    assert torch.equal(torch.rand(3), x)


@pytest.mark.parametrize(
    "kwargs, word",
    [
        (dict(p=1), "p"),
        (dict(p=0), "p"),
        (dict(p=2.5), "p"),
        (dict(p=9, op="mul"), "prime"),
        (dict(p=15, op="div"), "prime"),
        (dict(p=7, op="pow"), "op"),
        (dict(p=7, train_fraction=0.0), "train_fraction"),
        (dict(p=7, train_fraction=1.0), "train_fraction"),
        (dict(p=7, train_fraction=-0.2), "train_fraction"),
        (dict(p=7, train_fraction=1e-4), "train_fraction"),  # rounds to zero training pairs
    ],
)
def test_bad_input_raises_value_error_naming_parameter(kwargs, word):
    with pytest.raises(ValueError, match=word):
        make_data(**kwargs)


def test_is_prime():
    primes = [n for n in range(60) if is_prime(n)]
    assert primes == [2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59]

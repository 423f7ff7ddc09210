"""Quadratic network and losses against dense one-hot references (float64), finite differences, batching."""
import math

import pytest
import torch
import torch.nn.functional as F

from slt.losses import accuracy, centred_mse, cross_entropy, get_loss, mse
from slt.models.quadratic import QuadraticConfig, QuadraticNet, quadratic_forward

DT = torch.float64
TOL = dict(rtol=1e-10, atol=1e-12)  # float64: only summation order differs between the two computations


def dense_forward(net: QuadraticNet, a: torch.Tensor, b: torch.Tensor, c: int) -> torch.Tensor:
    """The paper's form for copy c: A (W^T x)^2 with x = [e_a; e_b] a dense one-hot matrix and W^T = [U V]."""
    p = net.config.p
    x = torch.cat([F.one_hot(a, p), F.one_hot(b, p)], dim=1).to(DT)  # (N, 2p)
    V = net.U if net.V is None else net.V
    W = torch.cat([net.U[c], V[c]], dim=0)  # (2p, m)
    return ((x @ W) ** 2) @ net.A[c]  # (N, p_out)


def make(p=7, width=5, B=3, tied=False, seed=0, **kw):
    return QuadraticNet(p, width, B, tied=tied, generator=torch.Generator().manual_seed(seed), dtype=DT, **kw)


def inputs(p, n, seed=1, B=None):
    g = torch.Generator().manual_seed(seed)
    shape = (n,) if B is None else (B, n)
    return torch.randint(p, shape, generator=g), torch.randint(p, shape, generator=g)


@pytest.mark.parametrize("tied", [False, True])
def test_forward_matches_dense_one_hot(tied):
    net = make(tied=tied)
    a, b = inputs(7, 20)
    out = net(a, b)
    assert out.shape == (3, 20, 7)
    for c in range(3):
        torch.testing.assert_close(out[c], dense_forward(net, a, b, c), **TOL)


def test_batched_equals_per_copy():
    net = make(B=4)
    a, b = inputs(7, 15)
    out = net(a, b)
    for c in range(4):
        torch.testing.assert_close(out[c], net.select(c)(a, b)[0], **TOL)


def test_per_copy_indices_equal_separate_calls():
    net = make(B=3)
    a, b = inputs(7, 11, B=3)  # (B, N): a different minibatch per copy
    out = net(a, b)
    assert out.shape == (3, 11, 7)
    for c in range(3):
        torch.testing.assert_close(out[c], net.select(c)(a[c], b[c])[0], **TOL)
        torch.testing.assert_close(out[c], dense_forward(net, a[c], b[c], c), **TOL)


def test_unbatched_pure_forward():
    net = make(B=2)
    a, b = inputs(7, 9)
    out = quadratic_forward(net.U[1], net.V[1], net.A[1], a, b)
    assert out.shape == (9, 7)
    torch.testing.assert_close(out, net(a, b)[1], **TOL)


@pytest.mark.parametrize("per_copy", [False, True])
def test_gradients_match_dense_reference(per_copy):
    net = make(B=2)
    a, b = inputs(7, 13, B=2 if per_copy else None)
    y = inputs(7, 13, seed=5, B=2 if per_copy else None)[0]
    centred_mse(net(a, b), y).sum().backward()
    for c in range(2):
        ref = make(B=2)  # same seed: same parameters
        U = ref.U[c].detach().clone().requires_grad_()
        V = ref.V[c].detach().clone().requires_grad_()
        A = ref.A[c].detach().clone().requires_grad_()
        ac, bc = (a[c], b[c]) if per_copy else (a, b)
        yc = y[c] if per_copy else y
        x = torch.cat([F.one_hot(ac, 7), F.one_hot(bc, 7)], 1).to(DT)
        out = ((x @ torch.cat([U, V], 0)) ** 2) @ A
        R = F.one_hot(yc, 7).to(DT) - out
        R = R - R.mean(0, keepdim=True)
        (0.5 * (R ** 2).sum() / len(yc)).backward()
        torch.testing.assert_close(net.U.grad[c], U.grad, **TOL)
        torch.testing.assert_close(net.V.grad[c], V.grad, **TOL)
        torch.testing.assert_close(net.A.grad[c], A.grad, **TOL)


@pytest.mark.parametrize("tied", [False, True])
def test_gradients_finite_differences(tied):
    net = make(p=5, width=3, B=2, tied=tied)
    a, b = inputs(5, 8, B=2)
    params = [net.U.detach().clone().requires_grad_(), net.A.detach().clone().requires_grad_()]
    if not tied:
        params.insert(1, net.V.detach().clone().requires_grad_())

    def f(*ps):
        U, A = ps[0], ps[-1]
        V = U if tied else ps[1]
        return quadratic_forward(U, V, A, a, b)

    assert torch.autograd.gradcheck(f, tuple(params), eps=1e-6, atol=1e-6)


def test_copies_do_not_share_gradients():
    net = make(B=3)
    a, b = inputs(7, 10)
    y = inputs(7, 10, seed=2)[0]
    mse(net(a, b), y)[1].backward()  # loss of copy 1 only
    assert net.U.grad[0].abs().sum() == 0 and net.U.grad[2].abs().sum() == 0
    assert net.U.grad[1].abs().sum() > 0


def test_init_bounds_and_seeding():
    p, m = 11, 64
    net = QuadraticNet(p, m, 2, generator=torch.Generator().manual_seed(4), init_scale=2.0)
    assert net.U.abs().max() <= 2.0 / math.sqrt(2 * p)
    assert net.A.abs().max() <= 2.0 / math.sqrt(m)
    # uniform on [-s, s]: the sample std is near s / sqrt(3), far from the bound or zero
    assert abs(net.U.std().item() - 2.0 / math.sqrt(2 * p) / math.sqrt(3)) < 0.05 * net.U.std().item()
    same = QuadraticNet(p, m, 2, generator=torch.Generator().manual_seed(4), init_scale=2.0)
    other = QuadraticNet(p, m, 2, generator=torch.Generator().manual_seed(5), init_scale=2.0)
    assert torch.equal(net.U, same.U) and not torch.equal(net.U, other.U)


def test_weight_norm_select_tied_and_shapes():
    net = make(B=3, tied=True)
    assert net.V is None and net.tied
    assert sum(p.numel() for p in net.parameters()) == 3 * (7 * 5 + 5 * 7)
    wn = net.weight_norm()
    for c in range(3):
        torch.testing.assert_close(wn[c], torch.sqrt(net.U[c].pow(2).sum() + net.A[c].pow(2).sum()), **TOL)
    sub = net.select([2, 0])
    assert sub.n_copies == 2 and torch.equal(sub.U[0], net.U[2]) and torch.equal(sub.A[1], net.A[0])
    assert make(n_out=4).A.shape == (3, 5, 4)


@pytest.mark.parametrize(
    "kwargs, word",
    [(dict(p=1, width=3), "p"), (dict(p=5, width=0), "width"), (dict(p=5, width=3, n_copies=0), "n_copies"),
     (dict(p=5, width=3, init_scale=0.0), "init_scale"), (dict(p=5, width=3, n_out=0), "n_out")],
)
def test_bad_model_config(kwargs, word):
    with pytest.raises(ValueError, match=word):
        QuadraticConfig(**kwargs)


# ---------------------------------------------------------------------------------------------- losses

def dense_losses(out, y):
    """Direct formulas with materialised one-hot targets, per copy: out (B, N, q), y (B, N)."""
    q = out.shape[-1]
    Y = F.one_hot(y, q).to(out.dtype)
    R = Y - out
    m = 0.5 * (R ** 2).sum((-1, -2)) / out.shape[-2]
    Rc = R - R.mean(-2, keepdim=True)
    c = 0.5 * (Rc ** 2).sum((-1, -2)) / out.shape[-2]
    ce = torch.stack([F.cross_entropy(out[i], y[i]) for i in range(out.shape[0])])
    return m, c, ce


@pytest.mark.parametrize("per_copy", [False, True])
def test_losses_match_dense_reference(per_copy):
    g = torch.Generator().manual_seed(0)
    out = torch.randn(3, 17, 6, generator=g, dtype=DT)
    y = torch.randint(6, (3, 17) if per_copy else (17,), generator=g)
    yB = y if per_copy else y.expand(3, 17)
    m, c, ce = dense_losses(out, yB)
    torch.testing.assert_close(mse(out, y), m, **TOL)
    torch.testing.assert_close(centred_mse(out, y), c, **TOL)
    torch.testing.assert_close(cross_entropy(out, y), ce, **TOL)
    assert torch.equal(get_loss("centred_mse")(out, y), centred_mse(out, y))


def test_centred_loss_ignores_constant_offset():
    g = torch.Generator().manual_seed(1)
    out = torch.randn(2, 9, 5, generator=g, dtype=DT)
    y = torch.randint(5, (9,), generator=g)
    shift = torch.randn(2, 1, 5, generator=g, dtype=DT)
    torch.testing.assert_close(centred_mse(out + shift, y), centred_mse(out, y), **TOL)
    assert not torch.allclose(mse(out + shift, y), mse(out, y))


def test_accuracy_and_unknown_loss():
    out = torch.tensor([[[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]]])
    assert accuracy(out, torch.tensor([1, 0, 0])).item() == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="loss"):
        get_loss("l1")


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("loss_name", ["mse", "centred_mse"])
@pytest.mark.parametrize("per_copy", [False, True])
@pytest.mark.parametrize("chunk_bytes,per_chunk", [(None, 3), (1, 1), (2 * 8 * 20 * (3 * 5 + 2 * 7), 2)])
def test_closed_form_loss_and_grad_matches_autograd(tied, loss_name, per_copy, chunk_bytes, per_chunk, monkeypatch):
    """quadratic_loss_and_grad (training and SGLD use it for mse / centred_mse) against autograd, float64, with a
    per-copy scale and accumulation into given buffers; in one pass and in chunks of copies (1 and 2 of the 3)."""
    from slt.losses import get_loss
    from slt.models import quadratic as Q
    from slt.models.quadratic import quadratic_loss_and_grad

    if chunk_bytes is not None:
        monkeypatch.setattr(Q, "_CHUNK_BYTES", chunk_bytes)
    assert min(3, Q.copies_per_chunk(20, 5, 7, 8)) == per_chunk  # 8-byte h, s, G A^T (20 x 5) and outputs (20 x 7)

    g = torch.Generator().manual_seed(5)
    net = QuadraticNet(7, 5, n_copies=3, tied=tied, generator=g, dtype=torch.float64)
    n = 20
    a, b, y = (torch.randint(0, 7, (3, n) if per_copy else (n,), generator=g) for _ in range(3))
    loss = get_loss(loss_name)(net(a, b), y)
    scale = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    (loss * scale).sum().backward()
    params = list(net.parameters())
    base = tuple(torch.randn(p.shape, generator=g, dtype=torch.float64) for p in params)
    V = net.U if tied else net.V
    got, grads = quadratic_loss_and_grad(net.U, V, net.A, a, b, y, centred=loss_name == "centred_mse", tied=tied,
                                         scale=scale, into=tuple(t.clone() for t in base))
    assert torch.allclose(got, loss.detach(), rtol=1e-12, atol=1e-14)
    assert len(grads) == len(params)
    for p, b0, gr in zip(params, base, grads):
        assert torch.allclose(gr - b0, p.grad, rtol=1e-10, atol=1e-12)


def test_chunks_of_copies_give_the_numbers_of_one_pass(monkeypatch):
    """At the grokking preset's size (float32, 10 copies, batch 128, width 512: chunks of 5 by the fixed rule) the
    chunked loss and gradient are bit-identical to one pass over all copies: each copy's arithmetic is the same."""
    from slt.models import quadratic as Q

    g = torch.Generator().manual_seed(3)
    B, p, m, nb = 10, 53, 512, 128
    U, V, A = torch.randn(B, p, m, generator=g), torch.randn(B, p, m, generator=g), torch.randn(B, m, p, generator=g)
    a, b, y = (torch.randint(0, p, (B, nb), generator=g) for _ in range(3))
    assert 1 < Q.copies_per_chunk(nb, m, p, 4) < B
    one = Q.quadratic_loss_and_grad(U, V, A, a, b, y, centred=True)
    monkeypatch.setattr(Q, "_CHUNK_BYTES", 1 << 40)
    whole = Q.quadratic_loss_and_grad(U, V, A, a, b, y, centred=True)
    assert torch.equal(one[0], whole[0])
    assert all(torch.equal(x, z) for x, z in zip(one[1], whole[1]))

"""slt.models.matmul: the float32 products on oneDNN agree with torch.bmm, and the rule that picks them is fixed."""
import pytest
import torch

from slt.models import matmul
from slt.models.matmul import baddbmm_, bmm, bmm_mul, uses_onednn

needs_onednn = pytest.mark.skipif(matmul.onednn_linear() is None, reason="this torch build has no oneDNN linear op")


def _operands(shape, dtype=torch.float32, seed=0):
    B, n, k, m = shape
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, n, k, generator=g, dtype=dtype)
    y = torch.randn(B, k, m, generator=g, dtype=dtype)
    return x, y, torch.randn(B, n, m, generator=g, dtype=dtype)


@needs_onednn
@pytest.mark.parametrize("transposed", [False, True])
def test_onednn_products_agree_with_torch_bmm_to_float_rounding(transposed):
    """At the paper's size (b 128, width 1,024, p 53) the three products the quadratic network uses, with the
    operands' strides it passes (transposed views), against torch.bmm in float64."""
    x, y, other = _operands((3, 128, 1024, 53))
    if transposed:  # s^T G: x a transposed view (m, b), y (b, q)
        x, y = x.mT, torch.randn(3, 128, 53, generator=torch.Generator().manual_seed(1))
        other = torch.randn(3, 1024, 53, generator=torch.Generator().manual_seed(2))
    assert uses_onednn(x, y)
    exact = torch.bmm(x.double(), y.double())
    scale = exact.abs().max()
    assert (bmm(x, y).double() - exact).abs().max() / scale < 1e-5
    assert torch.allclose(bmm_mul(x, y, other).double(), exact * other.double(), rtol=1e-4, atol=1e-5 * scale)
    acc = other.clone()
    assert baddbmm_(acc, x, y) is acc
    assert (acc.double() - (other.double() + exact)).abs().max() / scale < 1e-5
    # the same inputs give the same bits (one thread or several: the kernel's order is fixed)
    assert torch.equal(bmm(x, y), bmm(x, y))


@pytest.mark.parametrize("case", ["small", "float64", "autograd"])
def test_torch_bmm_where_the_rule_says_so(case):
    """Below the size threshold, in float64 and under autograd the products are torch.bmm's, bit for bit."""
    shape = (4, 16, 3, 7) if case == "small" else (2, 128, 1024, 53)
    x, y, other = _operands(shape, torch.float64 if case == "float64" else torch.float32)
    if case == "autograd":
        x.requires_grad_(True)
    assert not uses_onednn(x, y)
    assert torch.equal(bmm(x, y), torch.bmm(x, y))
    assert torch.equal(bmm_mul(x, y, other), torch.bmm(x, y) * other)
    if case != "autograd":
        assert torch.equal(baddbmm_(other.clone(), x, y), other.clone().baddbmm_(x, y))


def test_environment_switch(monkeypatch):
    x, y, _ = _operands((2, 128, 1024, 53))
    monkeypatch.setenv("SLT_MATMUL", "torch")
    assert not uses_onednn(x, y)
    assert torch.equal(bmm(x, y), torch.bmm(x, y))
    small = _operands((2, 4, 3, 5))
    monkeypatch.setenv("SLT_MATMUL", "onednn")
    assert uses_onednn(*small[:2]) == (matmul.onednn_linear() is not None)
    assert torch.allclose(bmm(*small[:2]), torch.bmm(*small[:2]), atol=1e-5)
    monkeypatch.setenv("SLT_MATMUL", "fast")
    with pytest.raises(ValueError, match="SLT_MATMUL.*'auto', 'torch' or 'onednn'"):
        bmm(x, y)


@needs_onednn
@pytest.mark.parametrize("centred", [False, True])
def test_closed_form_gradient_in_float32_on_onednn_matches_float64(centred):
    """quadratic_loss_and_grad at a size where all three products go to oneDNN, in float32, against the same
    closed form in float64 (torch.bmm): the loss and each gradient to float32 accuracy."""
    from slt.models.quadratic import QuadraticNet, quadratic_loss_and_grad

    g = torch.Generator().manual_seed(3)
    net = QuadraticNet(53, 1024, n_copies=2, generator=g)
    a, b, y = (torch.randint(0, 53, (2, 128), generator=g) for _ in range(3))
    args32 = (net.U.detach(), net.V.detach(), net.A.detach())
    assert uses_onednn(torch.empty(2, 128, 1024), torch.empty(2, 1024, 53))
    loss32, g32 = quadratic_loss_and_grad(*args32, a, b, y, centred=centred, scale=100.0)
    loss64, g64 = quadratic_loss_and_grad(*(t.double() for t in args32), a, b, y, centred=centred, scale=100.0)
    assert torch.allclose(loss32.double(), loss64, rtol=1e-5)
    for x32, x64 in zip(g32, g64):
        assert (x32.double() - x64).abs().max() <= 1e-4 * x64.abs().max()


@needs_onednn
def test_onednn_output_dtype_does_not_follow_the_default_dtype():
    """A float64 default dtype must not turn a float32 product into float64."""
    x, y, _ = _operands((2, 128, 1024, 53))
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        assert bmm(x, y).dtype == torch.float32
    finally:
        torch.set_default_dtype(old)

"""Batched float32 matrix products on the CPU's fastest available kernel.

torch sends a float32 CPU ``bmm`` to MKL's sgemm. On AMD processors MKL does not use its AVX-512 kernels,
and on the development machine (AMD EPYC, Zen 5, 1 thread) it reached 59-68 GFLOP/s on the quadratic
network's products. oneDNN chooses its kernels by instruction set, not by vendor. Through
``torch.ops.mkldnn._linear_pointwise``, the op torch's own compiler emits for linear layers, it ran the same
products at 107-168 GFLOP/s (benchmarks/bench_llc.py prints both rates in its roofline). Both compute the
float32 product; they differ only in summation order, at float rounding (relative 1e-6).

The choice is a fixed rule, never a timing, so the same seed gives the same numbers on the same machine:
oneDNN for float32 CPU tensors without autograd, on x86-64, when each product has at least
``_MIN_MACS`` multiply-adds (below it oneDNN was no faster here, and the Python loop over the batch costs ~5 us
a call).
``SLT_MATMUL=torch`` in the environment turns it off (torch's bmm everywhere), ``SLT_MATMUL=onednn`` forces it
on every eligible product regardless of size.
"""
from __future__ import annotations

import functools
import os
import platform

import torch

# per batch element. Measured here (3 products, x (n, k) y (k, q)): at (128, 1024, 53) = 7.0e6 oneDNN is 1.7x MKL,
# (128, 512, 53) = 3.5e6 1.3x, (128, 384, 53) = 2.6e6 1.1x; below 2e6 it is 0.9-1.4x ((317, 128, 23) = 9.3e5: 0.93x,
# (128, 256, 53) = 1.7e6: 0.89x), and at (64, 3, 7) 17x slower (the per-call cost of the Python loop)
_MIN_MACS = 1 << 21


@functools.cache
def onednn_linear():
    """torch.ops.mkldnn._linear_pointwise (Y = X W^T) if this build has it and it computes a known product, else
    None (checked once, on first use)."""
    if platform.machine().lower() not in ("x86_64", "amd64") or not torch.backends.mkldnn.is_available():
        return None
    try:
        op = torch.ops.mkldnn._linear_pointwise
        x, w = torch.ones(2, 3), torch.ones(4, 3)
        ok = torch.equal(op(x, w, None, "none", [], ""), torch.full((2, 4), 3.0))
    except (AttributeError, RuntimeError):
        return None
    return op if ok else None


def _mode() -> str:
    mode = os.environ.get("SLT_MATMUL", "auto")
    if mode not in ("auto", "torch", "onednn"):
        raise ValueError(f"SLT_MATMUL must be 'auto', 'torch' or 'onednn', got {mode!r}")
    return mode


def uses_onednn(x: torch.Tensor, y: torch.Tensor) -> bool:
    """Whether :func:`bmm` sends x (B, n, k) @ y (B, k, m) to oneDNN (the rule in the module docstring)."""
    if onednn_linear() is None or x.dtype != torch.float32 or y.dtype != torch.float32 or x.device.type != "cpu":
        return False
    if torch.is_grad_enabled() and (x.requires_grad or y.requires_grad):
        return False
    mode = _mode()
    if mode == "torch":
        return False
    return mode == "onednn" or x.shape[-2] * x.shape[-1] * y.shape[-1] >= _MIN_MACS


def bmm(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """x (B, n, k) @ y (B, k, m) -> (B, n, m), as torch.bmm (any strides)."""
    if not uses_onednn(x, y):
        return torch.bmm(x, y)
    out, lin = torch.empty(x.shape[0], x.shape[1], y.shape[2], dtype=x.dtype), onednn_linear()
    for i in range(x.shape[0]):
        out[i] = lin(x[i], y[i].T, None, "none", [], "")
    return out


def bmm_mul(x: torch.Tensor, y: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """(x @ y) * other for x (B, n, k), y (B, k, m), other (B, n, m): the product and the elementwise factor
    in one pass over the (n, m) output."""
    if not uses_onednn(x, y):
        return torch.bmm(x, y).mul_(other)
    out, lin = torch.empty_like(other), onednn_linear()
    for i in range(x.shape[0]):
        torch.mul(lin(x[i], y[i].T, None, "none", [], ""), other[i], out=out[i])
    return out


def baddbmm_(c: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """c += x @ y in place for c (B, n, m), x (B, n, k), y (B, k, m); returns c."""
    if not uses_onednn(x, y):
        return c.baddbmm_(x, y)
    lin = onednn_linear()
    for i in range(x.shape[0]):
        # as (x y)^T = y^T x^T with the small y^T made contiguous: at the quadratic network's s^T G (x = s^T a
        # transposed view, y = G of 53 columns) oneDNN runs 1.5-2.5x faster this way than on x y directly. The
        # transposed copy back costs 23 us there; adding through a transposed view of c instead costs 100 us.
        c[i].add_(lin(y[i].T.contiguous(), x[i], None, "none", [], "").T.contiguous())
    return c

"""The FLOP side of the benchmarks' rooflines: the three products of one quadratic-network step, timed here.

The step (SGLD or training) costs three products of 2 b m q FLOPs per copy: the forward s A (b x m by m x q),
the readout gradient s^T G (m x b by b x q) and the hidden gradient G A^T (b x q by q x m). Each is timed with
every float32 GEMM this torch build offers: torch.bmm (MKL on x86) and oneDNN through
``torch.ops.mkldnn._linear_pointwise`` in the orientations slt.models.matmul uses and their transposes. The
roofline takes the FASTEST time of each product, so it bounds any implementation built from these
libraries, slt's included; on AMD processors MKL runs well below the hardware and oneDNN does not.
"""
from __future__ import annotations

import contextlib
import statistics
import time

import torch


def synchronize(device: torch.device | str = "cpu") -> None:
    """Wait for the device's queued work (CUDA kernels run asynchronously); nothing to wait for on the CPU."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def median_time(fn, n: int = 10, repeats: int = 5, device: torch.device | str = "cpu") -> float:
    """Median seconds per call of ``fn`` over ``repeats`` blocks of ``n`` calls, after max(2, n // 5) warm-up calls;
    on a GPU the device is synchronised before each block's clock starts and stops."""
    for _ in range(max(2, n // 5)):
        fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        synchronize(device)
        times.append((time.perf_counter() - t0) / n)
    return statistics.median(times)


def step_gemm_seconds(copies: int, b: int, m: int, q: int, repeats: int = 5,
                      device: torch.device | str = "cpu") -> dict:
    """Seconds for the three products of one step with ``copies`` copies: per library and the best.
    On a GPU only torch's bmm (cuBLAS) is timed: oneDNN is a CPU library.

    Returns dict(torch=..., best=..., flops=6 copies b m q, rates in FLOP/s: torch_rate, best_rate)."""
    s = torch.randn(copies, b, m, device=device)
    A = torch.randn(copies, m, q, device=device)
    G = torch.randn(copies, b, q, device=device)
    ways = {
        "forward": {"torch": lambda: torch.bmm(s, A)},
        "readout": {"torch": lambda: torch.bmm(s.mT, G)},
        "hidden": {"torch": lambda: torch.bmm(G, A.mT)},
    }
    lin = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)
    if lin is not None and torch.backends.mkldnn.is_available() and torch.device(device).type == "cpu":
        def each(f):
            return lambda: [f(i) for i in range(copies)]

        ways["forward"]["onednn"] = each(lambda i: lin(s[i], A[i].T, None, "none", [], ""))
        ways["forward"]["onednn_t"] = each(lambda i: lin(A[i].T.contiguous(), s[i], None, "none", [], ""))
        ways["readout"]["onednn"] = each(lambda i: lin(s[i].T, G[i].T, None, "none", [], ""))
        ways["readout"]["onednn_t"] = each(lambda i: lin(G[i].T.contiguous(), s[i].T, None, "none", [], ""))
        ways["hidden"]["onednn"] = each(lambda i: lin(G[i], A[i], None, "none", [], ""))
        ways["hidden"]["onednn_t"] = each(lambda i: lin(A[i], G[i], None, "none", [], ""))
    # ~20 MFLOP of products a block on the CPU; a GPU runs that in microseconds, so at least 50 calls a block there
    n = max(1 if torch.device(device).type == "cpu" else 50, int(2e7 // (copies * b * m * q)))
    times = {prod: {lib: median_time(fn, n, repeats, device) for lib, fn in libs.items()} for prod, libs in ways.items()}
    t_torch = sum(t["torch"] for t in times.values())
    t_best = sum(min(t.values()) for t in times.values())
    flops = 6 * copies * b * m * q
    return dict(torch=t_torch, best=t_best, flops=flops, torch_rate=flops / t_torch, best_rate=flops / t_best,
                per_product=times)


def timed(fn, acc: dict, device: torch.device | str = "cpu"):
    """``fn`` wrapped so that each call adds its wall seconds to ``acc["seconds"]`` and 1 to ``acc["calls"]``
    (the device synchronised before and after, so a GPU's kernels are timed, not their launch)."""
    def call(*args, **kwargs):
        synchronize(device)
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            synchronize(device)
            acc["seconds"] += time.perf_counter() - t0
            acc["calls"] += 1
    return call


@contextlib.contextmanager
def time_products(device: torch.device | str = "cpu"):
    """Within the block, accumulate the wall seconds slt spends in the step's three products as it calls them
    (``bmm``, ``bmm_mul``, ``baddbmm_`` of slt.models.matmul, looked up by slt.models.quadratic): yields a dict
    {"seconds", "calls"} filled as the block runs. Set against the roofline's FLOP term (the same products at their
    fastest isolated time), the difference is what calling them inside the step costs: operands that come from
    the last-level cache or memory, the per-copy calls, the transposed copies and the fused factor of the wrappers.
    On a GPU each call is bracketed by device synchronisations (so the kernels are timed, not their launch), which
    slows the step it measures: time the step itself in a separate run."""
    from slt.models import quadratic

    acc = {"seconds": 0.0, "calls": 0}
    saved = {name: getattr(quadratic, name) for name in ("bmm", "bmm_mul", "baddbmm_")}
    for name, fn in saved.items():
        setattr(quadratic, name, timed(fn, acc, device))
    try:
        yield acc
    finally:
        for name, fn in saved.items():
            setattr(quadratic, name, fn)

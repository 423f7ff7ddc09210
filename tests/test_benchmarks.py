"""The benchmarks' measuring helpers (benchmarks/roofline.py, bench_training.py): they time the library's own code
paths, so a change to those paths must not silently break what they measure. Small sizes; no timing asserted."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_training  # noqa: E402
import roofline  # noqa: E402

from slt.models import quadratic  # noqa: E402
from slt.training import default_config  # noqa: E402


def test_time_products_counts_each_product_and_restores_the_library():
    """Inside the block every product of quadratic_loss_and_grad is timed (3 per chunk of copies); afterwards the
    module's functions are the originals again, also when the block raises."""
    originals = {name: getattr(quadratic, name) for name in ("bmm", "bmm_mul", "baddbmm_")}
    g = torch.Generator().manual_seed(0)
    B, p, m, nb = 4, 7, 6, 10
    U, V, A = torch.randn(B, p, m, generator=g), torch.randn(B, p, m, generator=g), torch.randn(B, m, p, generator=g)
    a, b, y = (torch.randint(0, p, (B, nb), generator=g) for _ in range(3))
    ref = quadratic.quadratic_loss_and_grad(U, V, A, a, b, y, centred=True)
    with roofline.time_products() as acc:
        got = quadratic.quadratic_loss_and_grad(U, V, A, a, b, y, centred=True)
    assert acc["calls"] == 3 and acc["seconds"] > 0
    assert torch.equal(ref[0], got[0]) and all(torch.equal(x, z) for x, z in zip(ref[1], got[1]))
    assert {name: getattr(quadratic, name) for name in originals} == originals
    with pytest.raises(RuntimeError, match="inside"):
        with roofline.time_products():
            raise RuntimeError("inside")
    assert {name: getattr(quadratic, name) for name in originals} == originals


def test_step_breakdown_parts_add_up_to_the_measured_step():
    """bench_training's breakdown of the training loop's own step: products and Adam are seen (not zero), the rest
    is what remains of the total, and the optimiser is the library's (its step runs, the weights move)."""
    cfg = default_config("grokking").replace(p=11, width=16, batch_size=16, seeds=(0, 1))
    step, opt = bench_training.training_step(cfg)
    before = [prm.detach().clone() for prm in opt.param_groups[0]["params"]]
    step()
    assert any(not torch.equal(b, prm) for b, prm in zip(before, opt.param_groups[0]["params"]))
    parts = bench_training.step_breakdown(cfg, 5)
    assert parts["products"] > 0 and parts["optimizer"] > 0
    assert parts["total"] == pytest.approx(parts["products"] + parts["optimizer"] + parts["other"])
    assert parts["products"] + parts["optimizer"] < parts["total"]

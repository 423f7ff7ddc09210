"""Verdict rules of claim 7 (exact lambda at polished checkpoints) on synthetic trajectories."""
import math

import pytest

from slt.checks.cache import PointCache
from slt.checks.claims import Context
from slt.checks.exact import claim_exact_trajectory

STEPS = [100, 500, 1000, 2000, 4000]


def _traj(values, tests, exact=True, S=3):
    """values[i][s] lambda at step i for seed s (bounds [v, v + 10] when not exact)."""
    rows = []
    for i, st in enumerate(STEPS):
        seeds = []
        for s in range(S):
            v = values[i][s]
            seeds.append({"lam": v if exact else None, "lower": v, "upper": v if exact else v + 10,
                          "polish": {"kind": "interpolating", "critical": True, "rel_distance": 0.01,
                                     "grad_before": 1.0, "grad_after": 1e-15}, "seconds": 0.1})
        rows.append({"step": st, "train_acc": [1.0] * S, "test_acc": [tests[i]] * S, "seeds": seeds})
    curves = {"step": STEPS, "train_acc": [[1.0] * S for _ in STEPS], "test_acc": [[t] * S for t in tests]}
    cfg = {"p": 23, "width": 128, "loss": "centred_mse", "tied": False, "seeds": list(range(S)), "lr": 1e-3,
           "weight_decay": 1e-4, "train_fraction": 0.6}
    return {"config": cfg, "rows": rows, "summary": {"grokking_step": [1500] * S, "memorisation_step": [50] * S,
                                                     "metrics": curves}, "wall_s": 1.0, "n_train": 317}


@pytest.fixture
def ctx(tmp_path):
    return Context(tmp_path, PointCache(tmp_path / "cache"), log=lambda *_: None)


def _by(res):
    return {v.claim: v for v in res.verdicts}


TESTS = [0.05, 0.1, 0.3, 0.99, 1.0]


def test_a_fall_before_the_jump_agrees(ctx):
    vals = [[3540, 3540, 3540], [3540, 3540, 3540], [3300, 3200, 3250], [3000, 3010, 2990], [3000, 3000, 3005]]
    traj = _traj(vals, TESTS)
    traj["flatness"] = [{"step": st, "trace": [10.0 * (i + 1)] * 3, "sam": [1e-3] * 3, "rho": 0.05}
                        for i, st in enumerate(STEPS)]
    v = _by(claim_exact_trajectory(ctx, traj))
    assert v["exact/falls"].status == "agree"
    assert v["exact/fall_vs_jump"].status == "agree"  # falls between 500 and 1000, jump at 1500
    assert v["exact/basin_order"].status == "agree"  # memorising (step 100) above grokked (step 4000)
    assert (ctx.out / "exact_trajectory_seed0.png").exists()


def test_constant_exact_values_disagree_with_a_fall_and_a_basin_order(ctx):
    vals = [[3540] * 3 for _ in STEPS]
    v = _by(claim_exact_trajectory(ctx, _traj(vals, TESTS)))
    assert v["exact/falls"].status == "disagree"
    assert v["exact/basin_order"].status == "disagree" and "no basin difference" in v["exact/basin_order"].reason
    assert v["exact/fall_vs_jump"].status == "inconclusive"
    assert v["exact/grokked_vs_onehot_cap"].status == "agree"  # ((p-1)N' + K)/2 = (22*316 + 128)/2 = 3540
    assert v["exact/grokked_vs_generic"].status == "disagree"  # generic formula pN'/2 = 3634 misses A 1 = 0


def test_bounds_only_make_the_verdict_inconclusive(ctx):
    vals = [[3540, 3540, 3540], [3540, 3540, 3540], [3300, 3200, 3250], [3000, 3010, 2990], [3000, 3000, 3005]]
    v = _by(claim_exact_trajectory(ctx, _traj(vals, TESTS, exact=False)))
    assert v["exact/falls"].status == "inconclusive"
    assert v["exact/falls"].details["if_diagnostics_ignored"] == "agree"
    assert math.isfinite(v["exact/falls"].estimate)

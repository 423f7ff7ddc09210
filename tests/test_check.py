"""Tests of slt.checks: verdict rules, LLC-drop detection, GSM, statistics, resumable cache, the report,
and a reduced ``slt check`` end to end (the ``quick`` profile)."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import torch
import pytest

from slt.checks import cache as cache_mod
from slt.checks.cache import PointCache, atomic_write_json, config_hash
from slt.checks.gsm import gsm
from slt.checks.profiles import PROFILES, CheckProfile, profile
from slt.checks.report import ClaimResult, build_report, render_markdown, summary_table
from slt.checks.stats import linear_fit, spearman
from slt.checks.timing import lag_stats, llc_drop_step
from slt.checks.verdict import (AGREE, DISAGREE, INCONCLUSIVE, compare_correlation, compare_interval, compare_sign,
                                compare_value)


# ---------------------------------------------------------------------------------------------- verdicts

def test_compare_value_agree_disagree_inconclusive():
    v = compare_value("c", "s", 10.5, 0.3, 10.0)
    assert v.status == AGREE and v.z == pytest.approx(5 / 3) and v.rel_error == pytest.approx(0.05)
    v = compare_value("c", "s", 11.0, 0.3, 10.0)
    assert v.status == DISAGREE and v.z == pytest.approx(10 / 3) and "above" in v.reason
    v = compare_value("c", "s", 8.0, 0.5, 10.0)
    assert v.status == DISAGREE and v.z < 0 and "below" in v.reason
    # a huge SE cannot confirm agreement ...
    v = compare_value("c", "s", 10.0, 5.0, 10.0)
    assert v.status == INCONCLUSIVE and "too large" in v.reason
    # ... but can still reveal a disagreement
    assert compare_value("c", "s", 100.0, 5.0, 10.0).status == DISAGREE


def test_compare_value_needs_se_and_diagnostics():
    assert compare_value("c", "s", 10.0, 0.0, 10.0).status == INCONCLUSIVE
    assert compare_value("c", "s", math.nan, 1.0, 10.0).status == INCONCLUSIVE
    v = compare_value("c", "s", 10.0, 0.1, 10.0, diagnostics_ok=False, diagnostics_note="R-hat 2")
    assert v.status == INCONCLUSIVE and "R-hat 2" in v.reason and v.z == 0.0  # numbers still reported


def test_compare_sign_and_interval_and_correlation():
    assert compare_sign("c", "s", 5.0, 1.0).status == AGREE
    assert compare_sign("c", "s", -5.0, 1.0).status == DISAGREE
    assert compare_sign("c", "s", 2.0, 1.0).status == INCONCLUSIVE
    assert compare_sign("c", "s", 2.0, math.nan).status == INCONCLUSIVE
    assert compare_interval("c", "s", 5.0, 1.0, 4.0, 6.0).status == AGREE
    v = compare_interval("c", "s", 10.0, 1.0, 4.0, 6.0)
    assert v.status == DISAGREE and v.z == pytest.approx(4.0)
    assert compare_interval("c", "s", 3.5, 1.0, 4.0, 6.0).status == AGREE
    assert compare_correlation("c", "s", -0.9, 0.001, 12, -1).status == AGREE
    assert compare_correlation("c", "s", 0.9, 0.001, 12, -1).status == DISAGREE
    assert compare_correlation("c", "s", -0.3, 0.4, 12, -1).status == INCONCLUSIVE
    assert compare_correlation("c", "s", -1.0, 0.0, 3, -1).status == INCONCLUSIVE
    with pytest.raises(ValueError, match="predicted_sign"):
        compare_correlation("c", "s", 0.1, 0.5, 10, 0)


def test_verdict_to_dict_is_strict_json():
    d = compare_sign("c", "s", 1.0, math.nan).to_dict()
    json.dumps(d, allow_nan=False)
    assert d["se"] is None and d["status"] == INCONCLUSIVE


# ---------------------------------------------------------------------------------------------- timing

def test_drop_step_interpolates_the_midpoint_crossing():
    steps = [10, 100, 200, 300, 400]
    llc = [5.0, 20.0, 18.0, 10.0, 8.0]  # plateau 20, final 8, midpoint 14: crossed between 200 and 300
    d = llc_drop_step(steps, llc)
    assert d.plateau == 20 and d.final == 8 and d.midpoint == 14
    assert d.step == pytest.approx(250.0)


def test_drop_step_none_without_a_significant_drop():
    assert llc_drop_step([1, 2, 3], [1.0, 2.0, 3.0]) is None  # rising: the max is the final value
    assert llc_drop_step([1, 2, 3], [10.0, 10.2, 10.0]) is None  # 2% dip < 5%
    # a 20% drop buried in noise (SE 1 each: 3 SE of the difference = 4.2 > 2)
    assert llc_drop_step([1, 2, 3], [10.0, 10.0, 8.0], se=[1.0, 1.0, 1.0]) is None
    assert llc_drop_step([1, 2, 3], [10.0, 10.0, 8.0], se=[0.1, 0.1, 0.1]).step == pytest.approx(2.5)
    assert llc_drop_step([1, 2, 3], [10.0, math.nan, 8.0]) is None
    with pytest.raises(ValueError, match="increasing"):
        llc_drop_step([2, 1, 3], [1.0, 2.0, 3.0])


def test_lag_stats_uses_seeds_with_both_steps():
    lag = lag_stats([1000, 1200, None, 900], [800, 1000, 500, None])
    assert lag.lags == (200.0, 200.0) and lag.n == 2 and lag.n_seeds == 4
    assert lag.mean == 200.0 and lag.se == 0.0
    assert math.isnan(lag_stats([1], [0]).se)


# ---------------------------------------------------------------------------------------------- gsm, stats

def test_gsm_time_average_of_the_gap():
    steps = [0, 100, 200, 400]
    train = [0.0, 1.0, 1.0, 1.0]
    test = [0.0, 0.0, 0.0, 1.0]
    # gap 0 -> 1 over [0,100] (area 50), 1 over [100,200] (100), 1 -> 0 over [200,400] (100): 250 / 400
    assert gsm(steps, train, test) == pytest.approx(250 / 400)
    assert gsm(steps, train, [0.0, 0.0, 0.0, 0.9]) == 0.0  # never generalised: the indicator is 0
    assert gsm(steps, [1.0] * 4, [1.0] * 4) == 0.0
    with pytest.raises(ValueError):
        gsm([0, 1], [1.0], [1.0])


def test_spearman_censored_and_dropped():
    c = spearman([1, 2, 3, 4, 5], [50, 40, 30, 20, 10])
    assert c.rho == pytest.approx(-1.0) and c.n == 5
    c = spearman([1, 2, 3, 4, 5], [None, 40, 30, 20, 10], none_as_inf=True)  # never reached = latest
    assert c.rho == pytest.approx(-1.0) and c.n == 5
    c = spearman([1, 2, 3, 4, 5], [None, 40, 30, 20, 10])
    assert c.n == 4
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]).rho)


def test_linear_fit_recovers_a_line():
    x = np.arange(5.0)
    f = linear_fit(x, 3 * x + 1, se=[0.1] * 5)
    assert f.slope == pytest.approx(3) and f.intercept == pytest.approx(1)


# ---------------------------------------------------------------------------------------------- cache / resume

def test_point_cache_resumes_without_recompute(tmp_path):
    calls = []

    def work(x):
        calls.append(x)
        return {"value": x * 2}

    c1 = PointCache(tmp_path)
    assert c1.get_or_compute("pt", {"x": 1}, lambda: work(1)) == {"value": 2}
    assert c1.get_or_compute("pt", {"x": 2}, lambda: work(2)) == {"value": 4}
    c2 = PointCache(tmp_path)  # a new process after an interruption
    assert c2.get_or_compute("pt", {"x": 1}, lambda: work(1)) == {"value": 2}
    assert calls == [1, 2] and c2.reused == 1 and c2.computed == 0
    assert c2.get_or_compute("pt", {"x": 3}, lambda: work(3)) == {"value": 6}
    assert calls == [1, 2, 3]


def test_point_cache_interrupted_point_leaves_no_file(tmp_path):
    c = PointCache(tmp_path)

    def boom():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        c.get_or_compute("pt", {"x": 1}, boom)
    assert not list(tmp_path.glob("*.json"))
    # a torn file (e.g. from another writer) is recomputed, never trusted
    c.path("pt", {"x": 1}).write_text("{not json")
    assert c.get_or_compute("pt", {"x": 1}, lambda: {"ok": True}) == {"ok": True}


def test_atomic_write_leaves_old_file_on_failure(tmp_path, monkeypatch):
    path = tmp_path / "a.json"
    atomic_write_json(path, {"v": 1})

    def fail(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(cache_mod.os, "replace", fail)
    with pytest.raises(OSError):
        atomic_write_json(path, {"v": 2})
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})


# ---------------------------------------------------------------------------------------------- profiles, report

@pytest.mark.parametrize("name", PROFILES)
def test_profiles_round_trip_json(name):
    prof = profile(name)
    assert CheckProfile.from_dict(json.loads(json.dumps(prof.to_dict()))) == prof
    with pytest.raises(ValueError, match="profile"):
        profile("nope")
    with pytest.raises(ValueError, match="unknown key"):
        CheckProfile.from_dict({**prof.to_dict(), "bogus": 1})


def test_experiment_configs_match_shipped_defaults():
    """experiments/check/*.json hold the same settings the library ships (they must not drift apart)."""
    root = os.path.join(os.path.dirname(__file__), "..", "experiments", "check")
    for name in PROFILES:
        prof = profile(name).to_dict()
        for key in ("closed_form", "trajectory", "lr_sweep", "paper_sweeps"):
            with open(os.path.join(root, f"{key}.json")) as f:
                assert json.load(f)[name] == json.loads(json.dumps(prof[key])), (name, key)


def test_report_lists_every_verdict_with_numbers():
    claims = [ClaimResult("a", "A", (compare_value("a/1", "s", 11.0, 0.3, 10.0),
                                     compare_sign("a/2", "t", 5.0, 1.0)), notes=("note",))]
    rep = build_report(claims, {"profile": "x", "wall_s": 1.0})
    assert rep["summary"] == {AGREE: 1, DISAGREE: 1, INCONCLUSIVE: 0}
    md = render_markdown(claims, {"profile": "x", "wall_s": 1.0})
    assert "Where experiment and theory disagree" in md and "a/1" in md and "+10.0%" in md
    table = summary_table(claims)
    assert "DISAGREE" in table and "11 ± 0.3" in table


# ---------------------------------------------------------------------------------------------- end to end

VERDICT_KEYS = {"claim", "statement", "status", "estimate", "se", "theory", "z", "rel_error", "rule", "reason",
                "details"}


def test_quick_check_end_to_end_and_resume(tmp_path, capsys):
    """``slt check --quick`` runs every claim, writes a well-formed report, and a rerun recomputes nothing."""
    from slt.cli import main

    out = tmp_path / "chk"
    assert main(["check", "--quick", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "claim" in printed and "estimate ± SE" in printed and "wall time" in printed
    rep = json.loads((out / "report.json").read_text())  # strict JSON: no NaN literals
    assert rep["meta"]["profile"] == "quick" and rep["rules"]
    keys = [c["key"] for c in rep["claims"]]
    assert keys == ["closed_form", "trajectory", "timing", "basins", "lr", "gsm", "paper_sweeps", "exact_trajectory",
                    "local_llc/paper-apph"]  # the quick profile has no timing-law runs (p 53, width 512 only)
    total = 0
    for c in rep["claims"]:
        assert "error" not in c["data"], (c["key"], c["data"].get("error"))  # every experiment ran
        assert c["verdicts"], c["key"]
        for v in c["verdicts"]:
            total += 1
            assert set(v) == VERDICT_KEYS and v["status"] in (AGREE, DISAGREE, INCONCLUSIVE)
            assert v["rule"] and v["reason"]
            if v["status"] != INCONCLUSIVE:  # a decided verdict always carries its deciding numbers
                assert v["estimate"] is not None and (v["z"] is not None or v["details"].get("pvalue") is not None
                                                      or v["details"].get("exact"))  # exact vs exact: no z
        for fig in c["figures"]:
            assert (out / fig).stat().st_size > 0
    assert sum(rep["summary"].values()) == total
    ids = [v["claim"] for c in rep["claims"] for v in c["verdicts"]]
    assert len(ids) == len(set(ids))  # a point on both sweep axes is judged once, not twice
    # the closed-form grid always has an exact value and a finite estimate with its SE and z
    for v in rep["claims"][0]["verdicts"]:
        assert v["theory"] > 0 and v["estimate"] is not None and v["se"] > 0 and v["z"] is not None
        assert v["rel_error"] == pytest.approx((v["estimate"] - v["theory"]) / v["theory"])
    md = (out / "report.md").read_text()
    assert "## Summary" in md and all(c["title"] in md for c in rep["claims"])
    computed = rep["meta"]["points_computed"]
    assert computed > 0
    # resume: the same command again reuses every finished point and gives the same verdicts
    assert main(["check", "--quick", "--out", str(out)]) == 0
    rep2 = json.loads((out / "report.json").read_text())
    assert rep2["meta"]["points_computed"] == 0 and rep2["meta"]["points_reused"] >= computed
    assert [v["estimate"] for c in rep2["claims"] for v in c["verdicts"]] == \
        [v["estimate"] for c in rep["claims"] for v in c["verdicts"]]


def test_cli_check_rejects_unknown_claim(tmp_path, capsys):
    from slt.cli import main

    assert main(["check", "--quick", "--out", str(tmp_path), "--only", "nonsense"]) == 2
    assert "only must name" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- claim logic on fakes

def _fake_traj(mem_llc, grok_llc, ok=True, grok_steps=(900, 950, 1000)):
    """A trajectory as run_trajectory returns it: 3 seeds, checkpoints 100 (memorised), 500, 1000 (grokked)."""
    cfg = {"p": 7, "width": 4, "op": "add", "train_fraction": 0.5, "data_seed": 0, "loss": "mse", "tied": False,
           "seeds": [0, 1, 2], "lr": 1e-3, "weight_decay": 0.0}
    llc = {"step": [100, 500, 1000],
           "llc": [list(mem_llc), [0.5 * (m + g) for m, g in zip(mem_llc, grok_llc)], list(grok_llc)],
           "se": [[0.1] * 3] * 3, "ok": [[ok] * 3] * 3, "note": [[""] * 3] * 3,
           "train_acc": [[1.0] * 3] * 3, "test_acc": [[0.1] * 3, [0.5] * 3, [1.0] * 3], "n_beta": 10.0}
    summary = {"grokking_step": list(grok_steps), "memorisation_step": [100] * 3, "metrics": {}}
    return {"config": cfg, "run_dir": "unused", "summary": summary, "llc": llc}


def test_basins_claim_reports_the_order_whichever_way(tmp_path):
    from slt.checks.claims import Context, claim_basins

    ctx = Context(tmp_path, PointCache(tmp_path / "cache"), log=lambda s: None)
    res = claim_basins(ctx, _fake_traj([20.0, 21.0, 22.0], [10.0, 10.5, 11.0]), max_point_params=0)
    order = res.verdicts[0]
    assert order.claim == "basins/order" and order.status == AGREE and order.estimate == pytest.approx(10.5)
    assert "grokked solution has the lower" in res.notes[0]
    res = claim_basins(ctx, _fake_traj([10.0, 10.5, 11.0], [20.0, 21.0, 22.0]), max_point_params=0)
    assert res.verdicts[0].status == DISAGREE and "memorising solution has the lower" in res.notes[0]
    # the same numbers with failed sampler diagnostics: inconclusive, but the numbers' verdict is kept
    res = claim_basins(ctx, _fake_traj([10.0, 10.5, 11.0], [20.0, 21.0, 22.0], ok=False), max_point_params=0)
    assert res.verdicts[0].status == INCONCLUSIVE and res.verdicts[0].details["if_diagnostics_ignored"] == DISAGREE
    # every theory comparison carries its theory value
    assert all(v.theory == v.theory for v in res.verdicts[1:])


def test_timing_claim_sign_of_the_lag(tmp_path):
    from slt.checks.claims import Context, claim_timing

    ctx = Context(tmp_path, PointCache(tmp_path / "cache"), log=lambda s: None)
    # LLC falls 20 -> 10 between steps 100 and 1000: midpoint 15 crossed at step 500
    traj = _fake_traj([20.0, 20.0, 20.0], [10.0, 10.0, 10.0], grok_steps=(900, 950, 1000))
    v = claim_timing(ctx, traj).verdicts[0]
    assert v.status == AGREE and v.estimate == pytest.approx(450.0)  # drop precedes grokking
    traj = _fake_traj([20.0, 20.0, 20.0], [10.0, 10.0, 10.0], grok_steps=(200, 210, 190))
    v = claim_timing(ctx, traj).verdicts[0]
    assert v.status == DISAGREE and v.estimate == pytest.approx(-300.0)


# ---------------------------------------------------------------------------------------------- claim 1 pieces

def test_gaussian_transient_relaxes_to_half_per_direction():
    """Quadratic approximation of SGLD from w*: each stiff direction contributes 1/2 (1 + O(eps a)) at
    equilibrium; after few steps the contribution is far below that, after many it reaches it."""
    from slt.checks.backend import gaussian_transient

    h, nb, g = [1.0, 0.1, 1e-3], 1e5, 1.0
    eps = 0.01 / (nb * h[0])
    short, eq = gaussian_transient(h, nb, g, eps, 10, 10)
    long_, eq2 = gaussian_transient(h, nb, g, eps, 10 ** 7, 1000)
    assert eq == eq2 and eq == pytest.approx(1.5, rel=0.02)  # n_beta h >> gamma: 3 x 1/2
    assert long_ == pytest.approx(eq, rel=1e-6) and short < 0.5 * eq
    # the flattest direction (n_beta h eps = 1e-5 per step) is the last to relax
    mid, _ = gaussian_transient(h, nb, g, eps, 20000, 1000)
    assert eq - mid == pytest.approx(0.5, rel=0.3)


def test_hessian_spectrum_rank_matches_the_closed_form():
    """The Hessian used for the relaxation check has rank 2 lambda (the theory's Jacobian rank)."""
    import torch

    from slt.checks import backend
    from slt.models.quadratic import QuadraticNet
    from slt.tasks import make_data

    a, b, _ = make_data(5, "add", 0.9, seed=0).train()
    for tied, centred in ((False, False), (True, False), (False, True)):
        net = QuadraticNet(5, 3, 1, tied, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        hs = backend.hessian_spectrum(net, a, b, centred)
        lam = backend.generic_llc(5, 3, a.numpy(), b.numpy(), tied, centred)["lam"]
        assert hs["rank"] == pytest.approx(2 * lam) and hs["condition"] >= 1 and len(hs["h"]) == hs["rank"]


def test_compare_sign_with_a_material_effect():
    """min_effect: agree only if the whole 3-SE band lies above it, disagree if it lies below (a fall that is
    significant but smaller than the material size counts against the prediction)."""
    from slt.checks.verdict import compare_sign

    assert compare_sign("c", "s", 0.20, 0.02, min_effect=0.05).status == AGREE
    small = compare_sign("c", "s", 0.002, 0.0004, min_effect=0.05)
    assert small.status == DISAGREE and small.z == pytest.approx(5.0)  # significant but immaterial
    assert compare_sign("c", "s", 0.002, 0.0004).status == AGREE  # the same numbers without the threshold
    assert compare_sign("c", "s", 0.06, 0.01, min_effect=0.05).status == INCONCLUSIVE
    v = compare_sign("c", "s", 0.002, 0.0004, min_effect=0.05, diagnostics_ok=False)
    assert v.status == INCONCLUSIVE and v.details["if_diagnostics_ignored"] == DISAGREE


def test_trajectory_claim_needs_a_material_fall(tmp_path):
    from slt.checks.claims import Context, claim_trajectory

    ctx = Context(tmp_path, PointCache(tmp_path / "cache"), log=lambda s: None)
    traj = _fake_traj([20.0, 20.2, 19.9], [10.0, 10.1, 9.9])
    traj["summary"]["metrics"] = {"step": [0, 1000], "train_acc": [[0.0] * 3, [1.0] * 3],
                                  "test_acc": [[0.0] * 3, [1.0] * 3]}
    assert claim_trajectory(ctx, traj).verdicts[0].status == AGREE  # falls by half
    flat = _fake_traj([20.0, 20.2, 19.9], [19.95, 20.1, 19.85])
    flat["summary"]["metrics"] = traj["summary"]["metrics"]
    v = claim_trajectory(ctx, flat).verdicts[0]
    assert v.status == DISAGREE and 0 < v.estimate < 0.05  # a fall well below 5%: no material fall


def test_timing_claim_without_any_drop_says_so(tmp_path):
    from slt.checks.claims import Context, claim_timing

    ctx = Context(tmp_path, PointCache(tmp_path / "cache"), log=lambda s: None)
    v = claim_timing(ctx, _fake_traj([20.0, 20.0, 20.0], [19.9, 19.9, 19.9])).verdicts[0]
    assert v.status == INCONCLUSIVE and "no seed has an LLC drop" in v.reason


def test_run_check_rejects_a_bad_device(tmp_path):
    from slt.checks import profile, run_check

    with pytest.raises(ValueError, match="device"):
        run_check(profile("quick"), tmp_path, device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            run_check(profile("quick"), tmp_path, device="cuda")


def test_run_check_refuses_the_counter_noise_source(tmp_path, monkeypatch):
    from slt.checks import profile, run_check

    monkeypatch.setenv("SLT_NOISE", "counter")  # cached points do not record the source: refused, nothing computed
    with pytest.raises(ValueError, match="SLT_NOISE must be unset or 'torch' for slt check"):
        run_check(profile("quick"), tmp_path)
    assert not (tmp_path / "report.md").exists()


def test_run_check_rejects_a_bad_scheduler(tmp_path, capsys):
    from slt.checks import profile, run_check
    from slt.cli import main

    with pytest.raises(ValueError, match="scheduler must be"):
        run_check(profile("quick"), tmp_path, scheduler="nowhere")
    with pytest.raises(ValueError, match="n_workers must be None or 1 with scheduler='serial'"):
        run_check(profile("quick"), tmp_path, scheduler="serial", n_workers=2)
    assert main(["check", "--quick", "--out", str(tmp_path), "--workers", "0"]) == 2
    assert "n_workers must be" in capsys.readouterr().err
    assert not (tmp_path / "report.json").exists()

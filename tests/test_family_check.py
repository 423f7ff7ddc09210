"""`slt check --family`: the closed-form claim on a new architecture family, same result type as claim 1."""
from __future__ import annotations

import json
import math

import pytest
import sympy

from slt.checks.cache import PointCache
from slt.checks.claims import Context
from slt.checks.family import FAMILY_CHECKS, claim_family, family_spec, run_family_check
from slt.checks.report import ClaimResult
from slt.cli import main as cli_main
from slt.theory.families import FAMILIES, family_instance
from slt.theory.polynomial import generic_rank


def test_quick_family_claim_structure_theory_and_cache(tmp_path):
    ctx = Context(tmp_path, PointCache(tmp_path / "cache"), log=lambda s: None)
    spec = family_spec("parity", quick=True)
    res = claim_family(ctx, spec)
    assert isinstance(res, ClaimResult) and res.key == "family_parity"
    assert len(res.verdicts) == len(spec.cases) == 1
    row = res.data["cases"][0]
    pspec, x, _ = family_instance(FAMILIES["parity"], *spec.cases[0])
    g = generic_rank(pspec, x)
    assert row["lambda"] == g.rank / 2 == res.verdicts[0].theory
    assert row["closed_form"] == row["lambda"]  # the fitted closed form at this instance
    assert math.isfinite(row["estimate"]) and row["se"] > 0
    assert res.verdicts[0].status in ("agree", "disagree", "inconclusive")
    n = ctx.cache.computed
    claim_family(ctx, spec)  # rerun: every point from the cache
    assert ctx.cache.computed == n


def test_family_check_runs_its_cases_as_units_and_matches_the_direct_claim(tmp_path):
    """run_family_check submits the closed-form fit and each case as units (here serially); the verdict then
    reads them from the cache (nothing computed twice) and equals the claim computed directly."""
    lines = []
    res = run_family_check(["parity"], tmp_path / "units", quick=True, scheduler="serial", log=lines.append)
    assert any(ln.startswith("[1/2] family parity closed form done") for ln in lines), lines
    assert any("family parity/p3-K2 done" in ln for ln in lines), lines
    direct = claim_family(Context(tmp_path / "direct", PointCache(tmp_path / "direct" / "cache"), log=lambda s: None),
                          family_spec("parity", quick=True))
    assert res[0].data["cases"][0]["estimate"] == direct.data["cases"][0]["estimate"]
    report = json.loads((tmp_path / "units" / "report.json").read_text())
    assert report["meta"]["scheduler"] == "serial"
    again = []
    run_family_check(["parity"], tmp_path / "units", quick=True, scheduler="serial", log=again.append)
    assert not any("done in" in ln for ln in again)  # every point cached: no task submitted


def test_family_names_and_cli_errors(tmp_path, capsys):
    assert set(FAMILY_CHECKS) <= set(FAMILIES)
    with pytest.raises(ValueError, match="family must be one of"):
        family_spec("nosuch")
    with pytest.raises(ValueError, match="family must be one of"):
        run_family_check(["nosuch"], tmp_path)
    assert cli_main(["check", "--family", "nosuch", "--out", str(tmp_path)]) == 2


def test_cli_derive_generic_json(capsys):
    assert cli_main(["derive", "generic", "--activation", "3", "--depth", "2", "--task", "mul", "--p", "3..5",
                     "--width", "1..3", "--json", "--no-fit"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["skipped_p"] == [4]
    assert [(r["p"], r["K"]) for r in out["instances"]] == [(3, 1), (3, 2), (3, 3), (5, 1), (5, 2), (5, 3)]
    for r in out["instances"]:
        assert sympy.Rational(r["lambda"]) == sympy.Rational(r["rank"], 2)
        assert r["rank"] <= r["upper"]
    assert cli_main(["derive", "generic", "--task", "s3", "--width", "1..12:2"]) == 0
    assert "held out" in capsys.readouterr().out
    assert cli_main(["derive", "generic", "--task", "add", "--p", "x..y"]) == 2


@pytest.mark.slow
def test_cubic_family_sgld_agrees_with_closed_form(tmp_path):
    """The validated recipe on the smallest cubic case: |z| <= 3 against rank/2 (about a minute)."""
    ctx = Context(tmp_path, PointCache(tmp_path / "cache"), log=lambda s: None)
    spec = family_spec("cubic")
    from dataclasses import replace

    res = claim_family(ctx, replace(spec, cases=spec.cases[:1]))
    assert res.verdicts[0].status == "agree", res.verdicts[0]

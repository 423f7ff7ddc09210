"""Theory versus experiment: the claims of ``slt check``, their verdicts and the report.

Public API:
    run_check(profile, out_dir, only=None, log=print, device="cpu", scheduler=None, n_workers=None)
        -> list[ClaimResult]: units of every claim on the task layer (slt.execution), then the verdicts
                                                                                (slt.checks.runner)
    claims: one module per claim with units(ctx, prof, want) and verdict(ctx, prof, want)  (slt.checks.claims)
    profile(name) -> CheckProfile, PROFILES = ("quick", "default", "full")     (slt.checks.profiles)
    compare_value / compare_sign / compare_correlation / compare_interval -> Verdict (slt.checks.verdict)
    llc_drop_step(steps, llc, se=None) -> Drop | None, lag_stats(grok, drop) -> Lag (slt.checks.timing)
    gsm(steps, train_acc, test_acc) -> float                                    (slt.checks.gsm)
    spearman(x, y, none_as_inf=False) -> Correlation, linear_fit(x, y, se)      (slt.checks.stats)
    PointCache(root).get_or_compute(name, config, fn), .lookup(name, config)     (slt.checks.cache)
"""
from slt.checks.cache import PointCache, atomic_write_json, config_hash
from slt.checks.gsm import gsm
from slt.checks.profiles import PROFILES, CheckProfile, SGLDSettings, profile
from slt.checks.report import ClaimResult, summary_table
from slt.checks.runner import CLAIM_KEYS, load_report, run_check
from slt.checks.stats import linear_fit, spearman
from slt.checks.timing import Drop, Lag, lag_stats, llc_drop_step
from slt.checks.verdict import (AGREE, DISAGREE, INCONCLUSIVE, Verdict, compare_correlation, compare_interval,
                                compare_sign, compare_value)

__all__ = [
    "AGREE", "CLAIM_KEYS", "CheckProfile", "ClaimResult", "DISAGREE", "Drop", "INCONCLUSIVE", "Lag", "PROFILES",
    "PointCache", "SGLDSettings", "Verdict", "atomic_write_json", "compare_correlation", "compare_interval",
    "compare_sign", "compare_value", "config_hash", "gsm", "lag_stats", "linear_fit", "llc_drop_step",
    "load_report", "profile", "run_check", "spearman", "summary_table",
]

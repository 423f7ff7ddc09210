"""The verdict report: ``report.json`` (every number), ``report.md`` (the same for people) and a summary
table for the terminal. Rendering only: the claims have been decided before anything is written here.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from slt.checks.cache import atomic_write_json, atomic_write_text
from slt.checks.verdict import AGREE, DISAGREE, INCONCLUSIVE, K_SE, REL_BAND_MAX, STATUSES, Verdict, _jsonable

RULES_TEXT = (
    f"Point predictions: z = (estimate - theory)/SE with SE across independent SGLD chains or seeds; "
    f"agree if |z| <= {K_SE:g}, disagree if |z| > {K_SE:g}, inconclusive if there is no SE, the sampler's "
    f"diagnostics failed, or {K_SE:g} SE exceeds {REL_BAND_MAX:.0%} of the predicted value. "
    f"Orderings (a difference predicted > 0): agree if it is > {K_SE:g} SE above 0, disagree if > {K_SE:g} SE "
    f"below, else inconclusive (also when the sampler's diagnostics failed). Where diagnostics made a verdict "
    f"inconclusive, '(numbers: ...)' shows what the estimate and SE alone would give. Trends: Spearman rho with the predicted sign and p < 0.05 agrees, the "
    f"opposite sign with p < 0.05 disagrees, else inconclusive."
)


@dataclass(frozen=True)
class ClaimResult:
    """One claim of ``slt check``: its verdicts, the data behind them and the figures drawn from them."""

    key: str  # e.g. "closed_form"
    title: str
    verdicts: tuple[Verdict, ...]
    data: dict = field(default_factory=dict)  # tables and curves, JSON-serialisable
    figures: tuple[str, ...] = ()  # file names inside the output folder
    notes: tuple[str, ...] = ()  # plain statements for the report (e.g. which formula the data support)
    wall_s: float = math.nan

    def to_dict(self) -> dict:
        return _jsonable({"key": self.key, "title": self.title, "verdicts": [v.to_dict() for v in self.verdicts],
                          "data": self.data, "figures": list(self.figures), "notes": list(self.notes),
                          "wall_s": self.wall_s})


def count_statuses(claims: list[ClaimResult]) -> dict[str, int]:
    counts = {s: 0 for s in STATUSES}
    for c in claims:
        for v in c.verdicts:
            counts[v.status] += 1
    return counts


def _num(x: float, digits: int = 4) -> str:
    if x is None or not isinstance(x, (int, float)) or not math.isfinite(x):
        return "-"
    if x != 0 and (abs(x) >= 1e5 or abs(x) < 1e-3):
        return f"{x:.3g}"
    return f"{x:.{digits}g}"


def _est(v: Verdict) -> str:
    if not math.isfinite(v.se):
        return _num(v.estimate)
    return f"{_num(v.estimate)} ± {_num(v.se, 2)}"


def _status(v: Verdict) -> str:
    """DISAGREE in capitals; an inconclusive-by-diagnostics verdict shows what its numbers alone say."""
    s = v.status.upper() if v.status == DISAGREE else v.status
    alt = v.details.get("if_diagnostics_ignored") if isinstance(v.details, dict) else None
    return f"{s} (numbers: {alt})" if alt and alt != v.status else s


def summary_rows(claims: list[ClaimResult]) -> list[list[str]]:
    rows = []
    for c in claims:
        for v in c.verdicts:
            rel = f"{v.rel_error:+.1%}" if math.isfinite(v.rel_error) else "-"
            z = f"{v.z:+.1f}" if math.isfinite(v.z) else "-"
            lo, hi = v.details.get("lo"), v.details.get("hi")
            theory = f"[{_num(lo)}, {_num(hi)}]" if lo is not None and hi is not None else _num(v.theory)
            rows.append([v.claim, _status(v), _est(v), theory, z, rel])
    return rows


SUMMARY_HEADER = ["claim", "verdict", "estimate ± SE", "theory", "z", "rel.err"]


def format_table(header: list[str], rows: list[list[str]], markdown: bool = False) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*r) for r in rows])


def summary_table(claims: list[ClaimResult]) -> str:
    counts = count_statuses(claims)
    tail = ", ".join(f"{counts[s]} {s}" for s in (AGREE, DISAGREE, INCONCLUSIVE))
    return format_table(SUMMARY_HEADER, summary_rows(claims)) + f"\n\n{tail}"


def build_report(claims: list[ClaimResult], meta: dict) -> dict:
    return _jsonable({"meta": meta, "rules": RULES_TEXT, "summary": count_statuses(claims),
                      "claims": [c.to_dict() for c in claims]})


def render_markdown(claims: list[ClaimResult], meta: dict) -> str:
    counts = count_statuses(claims)
    out = ["# slt check: theory versus experiment", ""]
    out.append(f"Profile `{meta.get('profile')}`, slt {meta.get('version')}, torch {meta.get('torch')}, "
               f"{meta.get('threads')} threads, device {meta.get('gpu') or meta.get('device', 'cpu')}, "
               f"wall time {meta.get('wall_s', float('nan')):.0f} s.")
    out += ["", f"**{counts[AGREE]} agree, {counts[DISAGREE]} disagree, {counts[INCONCLUSIVE]} inconclusive.**", ""]
    out += ["## Rules", "", RULES_TEXT, "", "## Summary", "", format_table(SUMMARY_HEADER, summary_rows(claims), True), ""]
    disagreements = [v for c in claims for v in c.verdicts if v.status == DISAGREE]
    if disagreements:
        out += ["## Where experiment and theory disagree", ""]
        for v in disagreements:
            out.append(f"- **{v.claim}**: {v.statement}. Measured {_est(v)}"
                       + (f" against {_num(v.theory)}" if math.isfinite(v.theory) else "")
                       + f": {v.reason}.")
        out.append("")
    for c in claims:
        out += [f"## {c.title}", ""]
        for note in c.notes:
            out += [note, ""]
        rows = []
        for v in c.verdicts:
            rows.append([v.claim, v.statement, _status(v), _est(v),
                         _num(v.theory), f"{v.z:+.2f}" if math.isfinite(v.z) else "-",
                         f"{v.rel_error:+.1%}" if math.isfinite(v.rel_error) else "-", v.reason])
        if rows:
            out += [format_table(["claim", "prediction", "verdict", "estimate ± SE", "theory", "z", "rel.err",
                                  "why"], rows, True), ""]
        for fig in c.figures:
            out += [f"![{fig}]({fig})", ""]
        if math.isfinite(c.wall_s):
            out += [f"_{c.wall_s:.0f} s._", ""]
    return "\n".join(out)


def write_report(out_dir: str | Path, claims: list[ClaimResult], meta: dict) -> tuple[Path, Path]:
    out = Path(out_dir)
    json_path, md_path = out / "report.json", out / "report.md"
    atomic_write_json(json_path, build_report(claims, meta))
    atomic_write_text(md_path, render_markdown(claims, meta) + "\n")
    return json_path, md_path

# SPDX-License-Identifier: Apache-2.0
"""Comparing two profiles function by function, for differential graphs and pull requests.

Functions are keyed by name and file without the line number (:func:`profkit.model.function_key`),
shares are percentages of each profile's own total (the normalised view), and deltas are in
percentage points (``shared/CONTRACT.md``, "Comparing profiles").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Sequence

from profkit.markdown import markdown_escape
from profkit.model import FunctionStat, Number, Profile

__all__ = ["FunctionDelta", "compare_functions", "markdown_escape", "markdown_report", "regressions"]


@dataclass(frozen=True)
class FunctionDelta:
    """One function's self and total share (in %) before and after, and the raw weights."""

    key: str
    before_self: float
    after_self: float
    before_total: float
    after_total: float
    before_weight: Number
    after_weight: Number

    @property
    def delta_self(self) -> float:
        """Change of the self share, in percentage points."""
        return self.after_self - self.before_self

    @property
    def delta_total(self) -> float:
        """Change of the total (inclusive) share, in percentage points."""
        return self.after_total - self.before_total


def _shares(profile: Profile) -> Dict[str, FunctionStat]:
    return profile.function_stats()


def compare_functions(before: Profile, after: Profile) -> List[FunctionDelta]:
    """Every function of either profile with its shares before and after, sorted by key."""
    if before.unit != after.unit:
        raise ValueError(f"cannot compare a profile in {before.unit} with one in {after.unit}")
    b, a = _shares(before), _shares(after)
    bt, at = before.total or 1, after.total or 1
    zero = FunctionStat("", 0, 0)
    out = []
    for key in sorted(set(b) | set(a)):
        sb, sa = b.get(key, zero), a.get(key, zero)
        out.append(FunctionDelta(key, 100.0 * sb.self / bt, 100.0 * sa.self / at,
                                 100.0 * sb.total / bt, 100.0 * sa.total / at, sb.total, sa.total))
    return out


def regressions(deltas: Sequence[FunctionDelta], threshold: float) -> List[FunctionDelta]:
    """The functions whose total share grew by more than ``threshold`` points, worst first."""
    hit = [d for d in deltas if d.delta_total > threshold]
    return sorted(hit, key=lambda d: (-d.delta_total, d.key))


def _pp(x: float) -> str:
    return f"{x:+.2f}"


def markdown_report(deltas: Sequence[FunctionDelta], *, top: int = 10, before_label: str = "before",
                    after_label: str = "after", threshold: float = None) -> str:
    """A Markdown summary of the biggest changes: regressed and improved functions by total
    share, and the biggest self-time changes, as GitHub-friendly tables."""
    by_total_up = sorted((d for d in deltas if d.delta_total > 0), key=lambda d: (-d.delta_total, d.key))[:top]
    by_total_down = sorted((d for d in deltas if d.delta_total < 0), key=lambda d: (d.delta_total, d.key))[:top]
    by_self = sorted((d for d in deltas if d.delta_self), key=lambda d: (-abs(d.delta_self), d.key))[:top]
    bl, al = markdown_escape(before_label), markdown_escape(after_label)
    lines = [f"## Profile comparison: {bl} → {al}", "",
             "Shares are percentages of each profile's total; deltas are in percentage points.", ""]

    def table(title: str, rows: Sequence[FunctionDelta], kind: str) -> None:
        lines.append(f"### {title}")
        lines.append("")
        if not rows:
            lines.extend(["_none_", ""])
            return
        lines.append(f"| function | {kind} before | {kind} after | Δ points |")
        lines.append("|---|---:|---:|---:|")
        for d in rows:
            b, a, dd = ((d.before_total, d.after_total, d.delta_total) if kind == "total"
                        else (d.before_self, d.after_self, d.delta_self))
            lines.append(f"| {markdown_escape(d.key)} | {b:.2f}% | {a:.2f}% | {_pp(dd)} |")
        lines.append("")

    table("Regressed (total share grew)", by_total_up, "total")
    table("Improved (total share shrank)", by_total_down, "total")
    table("Biggest self-time changes", by_self, "self")
    if threshold is not None:
        bad = regressions(deltas, threshold)
        verdict = (f"**Regression gate: FAILED** — {len(bad)} function(s) grew by more than {threshold:g} points "
                   f"(worst: {markdown_escape(bad[0].key)}, {_pp(bad[0].delta_total)})" if bad
                   else f"Regression gate: passed (no function grew by more than {threshold:g} points)")
        lines.extend([verdict, ""])
    return "\n".join(lines)

# SPDX-License-Identifier: Apache-2.0
"""Comparing two profiles function by function, for differential graphs and pull requests.

Functions are keyed by name and file without the line number (:func:`profkit.model.function_key`),
shares are percentages of each profile's own total (the normalised view), and deltas are in
percentage points (``shared/CONTRACT.md``, "Comparing profiles").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional, Sequence

from profkit.markdown import markdown_escape
from profkit.model import Frame, FrameKind, FunctionStat, Number, Profile

__all__ = ["FunctionDelta", "ProcessDelta", "compare_functions", "compare_processes", "improved", "markdown_escape",
           "markdown_report", "processes", "regressed", "regressions"]


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

    @property
    def synthetic(self) -> bool:
        """A frame profkit or a tool made up (a process, a thread, ``[self]``): not a function,
        so never a regression and never a row of the function tables."""
        return self.key[-1:] == "]" and Frame.parse(self.key).synthetic


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
    """The functions whose total share grew by more than ``threshold`` points, worst first
    (process, thread and other synthetic frames are not functions: never counted)."""
    hit = [d for d in deltas if d.delta_total > threshold and not d.synthetic]
    return sorted(hit, key=lambda d: (-d.delta_total, d.key))


def _first(rows: Iterable[FunctionDelta], n: int) -> List[FunctionDelta]:
    out: List[FunctionDelta] = []
    for d in rows:
        if not d.synthetic:
            out.append(d)
            if len(out) >= n:
                break
    return out


def regressed(deltas: Sequence[FunctionDelta], n: int = 10) -> List[FunctionDelta]:
    """The ``n`` functions whose total share grew most (synthetic frames left out)."""
    return _first(sorted((d for d in deltas if d.delta_total > 0), key=lambda d: (-d.delta_total, d.key)), n)


def improved(deltas: Sequence[FunctionDelta], n: int = 10) -> List[FunctionDelta]:
    """The ``n`` functions whose total share shrank most (synthetic frames left out)."""
    return _first(sorted((d for d in deltas if d.delta_total < 0), key=lambda d: (d.delta_total, d.key)), n)


def processes(profile: Profile) -> Dict[str, Profile]:
    """Process key (``[process api]``) → that process's stacks, for a keyed profile of several
    targets (each stack under its process root frame); ``{}`` for a profile of one process.

    Processes are keyed by name (or their ``service`` label), never by PID
    (``docs/contract.md``), so that base A is compared with head A."""
    if not profile.is_keyed:
        profile = profile.keyed()
    frames = profile.frames
    out: Dict[str, Profile] = {}
    for key, w in profile.items():
        if not key or frames[key[0]].kind is not FrameKind.PROCESS:
            return {}
        part = out.get(key[0])
        if part is None:
            part = out[key[0]] = Profile(profile.unit, keyed=True)
        part.add_tokens(key, w)
    return out


@dataclass(frozen=True)
class ProcessDelta:
    """One process of a multi-process comparison: its share of each run and, when it is in
    both, its own functions compared (shares of that process's total)."""

    key: str
    before_share: float
    after_share: float
    deltas: Optional[List[FunctionDelta]]  #: None when the process is in one run only

    @property
    def name(self) -> str:
        """The process name (or service label) without the ``[process …]`` brackets."""
        return self.key[len("[process "):-1] if self.key.startswith("[process ") else self.key


def compare_processes(before: Profile, after: Profile) -> List[ProcessDelta]:
    """Base A against head A, for every process of either multi-process profile (by name)."""
    b, a = processes(before), processes(after)
    if not b and not a:
        return []
    bt, at = before.total or 1, after.total or 1
    out = []
    for key in sorted(set(b) | set(a)):
        pb, pa = b.get(key), a.get(key)
        out.append(ProcessDelta(key, 100.0 * (pb.total if pb else 0) / bt, 100.0 * (pa.total if pa else 0) / at,
                                compare_functions(pb, pa) if pb is not None and pa is not None else None))
    return out


def _pp(x: float) -> str:
    return f"{x:+.2f}"


def markdown_report(deltas: Sequence[FunctionDelta], *, top: int = 10, before_label: str = "before",
                    after_label: str = "after", threshold: float = None) -> str:
    """A Markdown summary of the biggest changes: regressed and improved functions by total
    share, and the biggest self-time changes, as GitHub-friendly tables."""
    by_total_up = regressed(deltas, top)
    by_total_down = improved(deltas, top)
    by_self = _first(sorted((d for d in deltas if d.delta_self), key=lambda d: (-abs(d.delta_self), d.key)), top)
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

# SPDX-License-Identifier: Apache-2.0
"""The tables of a run's conclusions, in the order a reader needs them, for ``summary.md`` and
``report.html`` alike: application functions first (where in our code), then what the mode
adds, then the plain self and total tables.

A :class:`Table` holds formatted cells; the columns listed in ``names`` hold untrusted frame
names, which each destination escapes its own way (Markdown here, jinja2's autoescape in the
report).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, List, Optional, Set

from profkit.attribution import Rules, allocated_types, allocation_sites, app_functions, rule_text, without_type_leaf
from profkit.model import Frame, Profile
from profkit.reports.text import format_quantity

__all__ = ["Table", "markdown_tables", "rules_for", "run_tables"]


@dataclass
class Table:
    """One table of a report: a title, column headings, rows of formatted cells, notes."""

    title: str
    columns: List[str]
    rows: List[List[str]]
    names: Set[int] = field(default_factory=set)   #: columns that hold frame names (untrusted)
    notes: List[str] = field(default_factory=list)  #: sentences under the table (names in them escaped too)
    numeric: Set[int] = field(default_factory=set)  #: right-aligned columns
    empty: str = "no samples"


def rules_for(record, app=None, lib=None) -> Rules:
    """The attribution rules of a run: ``--app``/``--lib`` given now, else those it was recorded
    with; the leaf is a type in JVM allocation and lock profiles."""
    recorded = getattr(record, "attribution", None) or {}
    app = tuple(app if app else recorded.get("app", ()))
    lib = tuple(lib if lib else recorded.get("lib", ()))
    type_leaf = record.mode in ("alloc", "lock") and record.primary in ("async-profiler", "jfr")
    return Rules(app, lib, type_leaf)


def _pct(x: float) -> str:
    return f"{x:.1f}%"


def app_table(profile: Optional[Profile], rules: Rules, unit: str, n: int = 10) -> Table:
    """``Application functions``: each sample at its deepest frame in the target's own code."""
    rows, none = app_functions(profile, rules, n)
    t = Table("Application functions", ["application function", unit, "share", "mostly in (below it)"],
              [[r.key, format_quantity(r.weight, unit), _pct(r.share),
                f"{r.spent_in} ({r.spent_in_share:.0f}%)" if r.spent_in else "itself"] for r in rows],
              names={0, 3}, numeric={1, 2})
    t.notes.append(f"Attribution: {rule_text(rules)}.")
    if none >= 0.5:
        t.notes.append(f"{none:.1f}% of the {unit} have no application frame (threads of the runtime or of "
                       "libraries only).")
    if profile and not rows:
        t.empty = "no frame of the application's own code: name it with --app PATTERN"
    return t


def top_table(profile: Optional[Profile], by: str, unit: str, n: int = 10, title: Optional[str] = None) -> Table:
    """``Top functions by self``/``by total`` (synthetic frames, which are not functions, left out)."""
    rows = []
    if profile:
        total = profile.total or 1
        for s in profile.top_functions(n + 20, by=by):
            w = s.self if by == "self" else s.total
            if not w or (s.key[-1:] == "]" and Frame.parse(s.key).synthetic):
                continue
            rows.append([s.key, format_quantity(w, unit), _pct(100.0 * w / total)])
            if len(rows) >= n:
                break
    return Table(title or f"Top functions by {by}", ["function", unit, "share"], rows, names={0}, numeric={1, 2})


def site_table(profile: Optional[Profile], rules: Rules, unit: str, n: int = 10) -> Table:
    """``Allocation sites``: the frames that allocate, the application function above each, and
    (JVM) the types allocated there."""
    rows = allocation_sites(profile, rules, n)
    cols = ["allocation site", "application function", unit, "share"] + (["types"] if rules.type_leaf else [])
    t = Table("Allocation sites", cols,
              [[r.site, r.app or ("itself" if r.app is None and rules.classify(Frame.parse(r.site)) == "app" else "—"),
                format_quantity(r.weight, unit), _pct(r.share)]
               + ([", ".join(f"{name} {pct:.0f}%" for name, pct in r.types)] if rules.type_leaf else [])
               for r in rows], names={0, 1, 4}, numeric={2, 3})
    t.notes.append("The site is the frame that allocates (the caller of the allocated type); the application "
                   "function is the deepest frame of the target's own code above it.")
    return t


def type_table(profile: Optional[Profile], unit: str, n: int = 10) -> Table:
    """``Allocated types``: the leaf frames of a JVM allocation profile, which are classes, not code."""
    return Table("Allocated types", ["type", unit, "share"],
                 [[name, format_quantity(w, unit), _pct(pct)] for name, w, pct in allocated_types(profile, n)],
                 names={0}, numeric={1, 2})


def run_tables(record, profile: Optional[Profile], rules: Optional[Rules] = None) -> List[Table]:
    """Every table of a run's profile, in reading order: application functions; for allocation
    profiles the allocation sites (and the types, when the leaf is one); then self and total
    (of the allocating code, the types left out)."""
    unit = profile.unit if profile is not None else record.unit
    rules = rules or rules_for(record)
    if record.mode == "wall":
        return wall_tables(profile, rules, unit)
    tables = [app_table(profile, rules, unit)]
    if record.mode == "alloc":
        tables.append(site_table(profile, rules, unit))
    if rules.type_leaf:
        code = without_type_leaf(profile) if profile else profile
        kind = "allocated types" if record.mode == "alloc" else "lock classes"
        tables += [type_table(profile, unit, 10) if record.mode == "alloc" else
                   _retitle(type_table(profile, unit, 10), "Lock classes", "lock class"),
                   top_table(code, "total", unit, title=f"Top functions by total (the {kind} left out)")]
        return tables
    return tables + [top_table(profile, "self", unit), top_table(profile, "total", unit)]


def wall_tables(profile: Optional[Profile], rules: Rules, unit: str) -> List[Table]:
    """A wall-clock profile: idle threads apart (their share said), the working threads' time
    ranked, running against waiting, and each wait with the application function that waits."""
    from profkit.wall import wall_split

    split = wall_split(profile, rules)
    work = split.working if split.total else profile
    apps = app_table(work, rules, unit)
    if split.idle:
        apps.notes.insert(0, f"Working threads only: {split.pct(split.idle):.1f}% of the {unit} were idle threads "
                             "waiting for work (see Wall time), left out of this table and of the ones below.")
    q = lambda w: format_quantity(w, unit)  # noqa: E731
    summary = Table("Wall time", ["threads", unit, "share"],
                    [["idle: waiting for work, no request in progress", q(split.idle), _pct(split.pct(split.idle))],
                     ["working: running", q(split.running), _pct(split.pct(split.running))],
                     ["working: waiting (below)", q(split.waiting), _pct(split.pct(split.waiting))]], numeric={1, 2})
    for who, kind, pct in split.idle_points:
        summary.notes.append(f"idle: {who} waiting ({kind}), {pct:.1f}% of all {unit}")
    waits = Table("Wall-time waits (working threads)",
                  ["application function", "waits on", "in", unit, "share of working"],
                  [[r.app or "(no application frame)", r.kind, r.frame, q(r.weight), _pct(r.working_share)]
                   for r in split.waits], names={0, 2}, numeric={3, 4}, empty="no working thread waited")
    waits.notes.append("A wait is a blocking call read from the frame names (socket read, lock, sleep, subprocess, "
                       "queue, select, accept); py-spy shows the Python frame that makes a C call, so code that calls "
                       "time.sleep or socket.recv itself counts as running unless recorded with --native.")
    return [apps, summary, waits, top_table(work, "self", unit, title="Top functions by self (working threads)"),
            top_table(work, "total", unit, title="Top functions by total (working threads)")]


def _retitle(t: Table, title: str, first: str) -> Table:
    t.title, t.columns[0] = title, first
    return t


def markdown_tables(tables: List[Table], esc: Callable[[str], str]) -> List[str]:
    """The tables as Markdown lines (``esc`` for names: Markdown escaping, or terminal-safe text)."""
    lines: List[str] = []
    for t in tables:
        lines.extend([f"## {t.title}", ""])
        if not t.rows:
            lines.extend([f"_{t.empty}_", ""])
        else:
            lines.append("| " + " | ".join(t.columns) + " |")
            lines.append("|" + "|".join("---:" if i in t.numeric else "---" for i in range(len(t.columns))) + "|")
            for row in t.rows:
                lines.append("| " + " | ".join(esc(c) if i in t.names else c for i, c in enumerate(row)) + " |")
            lines.append("")
        for note in t.notes:
            lines.extend([f"_{esc(note)}_", ""])
    return lines

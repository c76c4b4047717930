# SPDX-License-Identifier: Apache-2.0
"""The heap section of ``summary.md`` and ``report.html``, from ``heap.json`` alone.

Hooked in through :data:`profkit.reports.SECTIONS`. The chart is inline SVG built from numbers
only (coordinates computed here); every name (classes, functions, files) reaches the template as
data and is autoescaped, and Markdown goes through :func:`profkit.compare.markdown_escape`.
"""
from __future__ import annotations

import json
from typing import List, Optional, Tuple

from profkit.markdown import markdown_escape
from profkit.rundir import RunDir

__all__ = ["heap_chart", "html_section", "load_heap", "markdown_section"]


def load_heap(run: RunDir) -> Optional[dict]:
    """``heap.json`` of a run, or None if missing or unreadable."""
    try:
        with open(run.file("heap.json"), encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _mib(n) -> str:
    if not isinstance(n, (int, float)):  # None, or a template's undefined field
        return "n/a"
    if abs(n) < 2**20:
        return f"{n / 1024:.1f} KiB"
    return f"{n / 2**20:.1f} MiB"


def _rate(fit: Optional[dict]) -> str:
    if not fit:
        return "n/a"
    lo, hi = fit.get("ci95_bytes_per_min") or (None, None)
    text = f"{fit['bytes_per_min'] / 2**20:+.2f} MiB/min"
    if lo is not None:
        text += f" (95% CI {lo / 2**20:+.2f} … {hi / 2**20:+.2f})"
    return text


def markdown_section(run: RunDir, for_terminal: bool = False) -> str:
    """``## Heap``: verdict, rate, limit and projection, OOM events, leak suspects."""
    from profkit.reports import plain_text

    esc = plain_text if for_terminal else markdown_escape
    h = load_heap(run)
    if h is None:
        return "## Heap\n\n_heap.json is missing or unreadable_\n"
    lines = ["## Heap", "", "| | |", "|---|---|"]
    lines.append(f"| classification | **{esc(str(h.get('classification', '?')))}** ({esc(str(h.get('basis', '')))}) |")
    window = (h.get("rss") or {}).get("window") if h.get("basis") == "rss" else None
    lines.append(f"| growth | {_rate(h.get('fit'))}{f' ({esc(window)})' if window else ''} |")
    lim = h.get("limit")
    lines.append(f"| binding limit | {esc(lim['name']) + ' ' + _mib(lim['bytes']) if lim else 'none found'} |")
    lines.append(f"| projection | {esc(str((h.get('projection') or {}).get('text', 'n/a')))} |")
    if h.get("gc"):
        lines.append(f"| GC | {h['gc']['count']} collections, {h['gc']['time_s']:.2f} s |")
    rss = h.get("rss") or {}
    if h.get("basis") != "rss" and rss:
        lines.append(f"| RSS | {esc(str(rss.get('classification')))}, {_rate(rss.get('fit'))} |")
    lines += _memray_rows(h, esc)
    oom = h.get("oom_events")
    if oom:
        lines.append(f"| OOM kills (cgroup) | {oom.get('oom_kill', 0)} |")
    if h.get("heap_dump_on_oom") is not None:
        lines.append(f"| HeapDumpOnOutOfMemoryError | {'on' if h['heap_dump_on_oom'] else 'off'} |")
    lines.append("")
    if h.get("reason"):
        lines.extend([esc(str(h["reason"])), ""])
    for advice in h.get("advice") or []:
        lines.append(f"> advice: {esc(str(advice))}")
    if h.get("advice"):
        lines.append("")
    lines.extend(["### Leak suspects", ""])
    suspects = h.get("suspects") or []
    if not suspects:
        lines.extend(["_none_", ""])
    else:
        lines.extend(["| # | name | site | bytes | growth | growth/min | held by |", "|---:|---|---|---:|---:|---:|---|"])
        for i, s in enumerate(suspects[:10], 1):
            g = s.get("growth") or {}
            lines.append(f"| {i} | {esc(str(s.get('name', '')))} | {esc(str(s.get('site') or ''))} | {_mib(s.get('bytes'))} "
                         f"| {_mib(g.get('bytes'))} | {_mib(g.get('bytes_per_min'))} | {esc(str(s.get('holder') or ''))} |")
        lines.append("")
    lines += dump_lines(h, esc)
    return "\n".join(lines)


def dump_text(d: dict) -> str:
    """One line on the run's heap dump: when, size, pause, what became of it."""
    a = d.get("analysis") or {}
    if d.get("taken_at_s") is None:  # the JVM's own, on OutOfMemoryError
        parts = [f"{_mib(d.get('bytes'))} written {d.get('trigger', '')}"]
    else:
        parts = [f"{_mib(d.get('bytes'))} taken {d.get('trigger', '')}, {d.get('taken_at_s', 0):.0f} s into the run; "
                 f"the JVM paused {d.get('pause_s') or 0:.1f} s to write it"]
    if a:
        parts.append(f"analysed in {a.get('seconds', 0):.1f} s ({a.get('objects', 0):,} objects)")
    parts.append(f"kept as {d['file']}" if d.get("file") else "deleted")
    if d.get("taken_at_s") is None and d.get("file"):
        parts[-1] = f"at {d['file']} (left where the JVM wrote it)"
    return "; ".join(parts)


def path_text(path) -> str:
    return " → ".join(str(x) for x in path or [])


def dump_lines(h: dict, esc) -> List[str]:
    """``### What holds them``: each suspect's retaining paths from the heap dump."""
    d = h.get("heap_dump")
    if not d:
        return []
    lines = ["### What holds them (heap dump)", "", esc(dump_text(d)), ""]
    for s in h.get("suspects") or []:
        for r in s.get("retained_by") or []:
            lines.append(f"- **{esc(str(s.get('name', '')))}**: {r.get('instances', 0):,} instances ({_mib(r.get('bytes'))}) held by "
                         f"{' → '.join(esc(str(x)) for x in r.get('path') or [])} (the holder retains {_mib(r.get('retained_bytes'))})")
    if h.get("oom_verdict"):
        lines.extend(["", esc(str(h["oom_verdict"]))])
    lines.append("")
    return lines


def _memray_rows(h: dict, esc) -> List[str]:
    """The rows of a Python heap run with memray: its own cost, the rate with it, what it tracked."""
    rows = []
    cost = h.get("memray_cost")
    if cost:
        with_memray = h.get("rss_with_memray") or {}
        rows.append(f"| RSS with memray attached (from {cost['attached_s']:.0f} s) | "
                    f"{esc(str(with_memray.get('classification', 'n/a')))}, {_rate(with_memray.get('fit'))}: "
                    "not the target's own rate, never projected |")
        extra = cost.get("extra_bytes_per_min")
        jump = cost.get("rss_jump_bytes")
        span = cost["attached_s"] - cost["started_s"]
        parts = ([f"RSS {jump / 2**20:+.1f} MiB across its {span:.1f} s attach (the target's own growth in it "
                  "included)"] if jump is not None else []) + (
            [f"{extra / 2**20:+.2f} MiB/min while tracking against the rate without it (its own memory, and how "
             "much it slows the target)"] if extra is not None else [])
        if parts:
            rows.append(f"| memray's own memory | {'; '.join(parts)} |")
    if h.get("memray_heap"):
        mh = h["memray_heap"]
        label = mh.get("label") or "memray-tracked heap"
        kind = f"; mostly {mh['growth_kind']}" if mh.get("growth_kind") else ""
        rows.append(f"| {esc(label)} | {esc(str(mh.get('classification')))}, {_rate(mh.get('fit'))}{esc(kind)} |")
    alloc = h.get("memray_allocators")
    if alloc:
        rows.append(f"| live at the end, by allocator (memray) | native {_mib(alloc.get('native'))}, "
                    f"Python objects {_mib(alloc.get('python'))} |")
    return rows


def _scale(lo: float, hi: float, a: float, b: float):
    span = (hi - lo) or 1.0
    return lambda v: a + (b - a) * (v - lo) / span


def heap_chart(h: dict, width: int = 640, height: int = 220) -> Optional[dict]:
    """Polylines (numbers only) of the memory series, the fit line and the limit line, for the template."""
    lines: List[Tuple[str, str, List[Tuple[float, float]]]] = []
    series = h.get("series") or []
    if h.get("jvm_series"):
        lines.append(("heap used", "#c0392b", [(r["t"], r["heap_used"]) for r in h["jvm_series"]]))
        lines.append(("heap committed", "#e67e22", [(r["t"], r["heap_committed"]) for r in h["jvm_series"]]))
    lines.append(("RSS", "#2c3e50", [(r["t"], r["rss"]) for r in series if r.get("rss")]))
    lines.append(("USS", "#7f8c8d", [(r["t"], r["uss"]) for r in series if r.get("uss")]))
    if h.get("memray_series"):
        lines.append(("memray-tracked heap", "#8e44ad", [(r["t"], r["heap"]) for r in h["memray_series"]]))
    lines = [ln for ln in lines if len(ln[2]) >= 2]
    if not lines:
        return None
    ts = [t for _, _, pts in lines for t, _ in pts]
    t0, t1 = min(ts), max(ts)
    fit = h.get("fit")
    fit_pts = []
    if fit:
        fit_pts = [(fit["t_start"], fit["intercept"] + fit["slope"] * fit["t_start"]),
                   (t1, fit["intercept"] + fit["slope"] * t1)]
    lim = h.get("limit")
    vals = [v for _, _, pts in lines for _, v in pts] + [v for _, v in fit_pts]
    v_max = max(vals)
    show_limit = lim is not None and lim["bytes"] <= 4 * v_max  # a far limit would flatten the chart
    if show_limit:
        v_max = max(v_max, lim["bytes"])
    x = _scale(t0, t1, 50, width - 10)
    y = _scale(0, v_max * 1.05, height - 25, 10)
    poly = lambda pts: " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in pts)  # noqa: E731
    return {
        "width": width, "height": height,
        "lines": [{"label": label, "colour": colour, "points": poly(pts)} for label, colour, pts in lines],
        "fit": poly(fit_pts) if fit_pts else None,
        "limit": {"y": round(y(lim["bytes"]), 1), "label": f"{lim['name']} {lim['bytes'] / 2**20:.0f} MiB"} if show_limit else None,
        "y_max_label": f"{v_max * 1.05 / 2**20:.0f} MiB", "t_max_label": f"{t1:.0f} s", "t_min_label": f"{t0:.0f} s",
    }


def html_section(run: RunDir, env) -> str:
    """The heap section of ``report.html`` (``heap.html.j2``, autoescaped)."""
    h = load_heap(run)
    if h is None:
        return ""
    tmpl = env.get_template("heap.html.j2")
    return tmpl.render(h=h, chart=heap_chart(h), rate=_rate(h.get("fit")), mib=_mib,
                       suspects=(h.get("suspects") or [])[:15], dump_text=dump_text, path_text=path_text)

# SPDX-License-Identifier: Apache-2.0
"""Run reports: ``summary.md`` (also printed) and ``report.html`` (jinja2, autoescaped, offline).

Templates are package data (``templates/``), rendered with autoescape on; frame names reach
them only as data. The flame graph SVG is embedded as produced by :mod:`flamegraph`, which
escapes every name itself.
"""
from __future__ import annotations

import os
from typing import List, Optional

from profkit.attribution import Rules
from profkit.markdown import markdown_escape as _md_escape
from profkit.model import Profile
from profkit.reports.conclusions import markdown_tables, run_tables
from profkit.reports.text import fmt_bytes as _fmt_bytes
from profkit.reports.text import format_quantity, plain_text
from profkit.rundir import RunDir

__all__ = ["format_quantity", "plain_text", "render_report", "summary_markdown"]


def _mode_line(r) -> str:
    """The mode and its real sampling parameter, as the primary collector recorded it
    (``alloc, one sample per 512 KiB allocated``); ``cpu at 100 Hz`` when it recorded none."""
    primary = next((p for p in r.profilers if p.id == r.primary), None) or next(iter(r.profilers), None)
    sampling = (primary.detail.get("sampling") if primary is not None else None) if r.mode != "heap" else None
    if sampling:
        return f"{r.mode}: {sampling}"
    if r.mode in ("cpu", "wall"):
        return f"{r.mode} at {r.rate:g} Hz" if r.rate else r.mode
    if r.mode == "heap":
        return f"heap, every {r.interval:g} s" if r.interval else "heap"
    return r.mode


def _on_cpu(run: RunDir, profile: Optional[Profile]):
    from profkit.outputs import on_cpu_check

    return on_cpu_check(run, profile) if profile else None


def _metrics(run: RunDir):
    from profkit.metrics import read_metrics, summarise

    path = run.file("metrics.jsonl")
    return summarise(path), (list(read_metrics(path)) if os.path.exists(path) else [])


def summary_markdown(run: RunDir, profile: Optional[Profile], *, for_terminal: bool = False,
                     rules: Optional[Rules] = None) -> str:
    """The run's ``summary.md``: what ran, how long, samples, application functions, top
    functions, CPU and RSS (``rules``: the attribution rules, else the run's own).

    ``for_terminal`` gives the same text with names left readable (control characters still
    neutralised) instead of Markdown-escaped, for printing at the end of a run.
    """
    markdown_escape = plain_text if for_terminal else _md_escape
    r = run.record
    t = r.target
    unit = profile.unit if profile is not None else r.unit
    lines = [f"# profkit run: {markdown_escape(t.name or '?')}", ""]
    lines.append("| | |")
    lines.append("|---|---|")
    lines.append(f"| target | pid {', '.join(str(p) for p in r.pids)} ({markdown_escape(t.runtime)}) |")
    commands = [x for x in r.targets if x.cmdline]
    for x in commands[:5]:
        who = f"command (pid {x.pid})" if len(commands) > 1 else "command"
        lines.append(f"| {who} | {markdown_escape(x.command[:200])} |")
    if len(commands) > 5:
        lines.append(f"| commands | … and {len(commands) - 5} more targets |")
    cols = ", ".join(f"{c.id} {c.version}".strip() for c in r.profilers)
    lines.append(f"| collectors | {markdown_escape(cols) or 'none'} |")
    lines.append(f"| mode | {_mode_line(r)} |")
    if r.duration is not None:
        asked = f"{r.duration_requested:g}" if r.duration_requested is not None else "?"
        lines.append(f"| duration | {r.duration:.1f} s (asked {asked} s) |")
    lines.append(f"| status | {markdown_escape(r.status)} |")
    total = profile.total if profile is not None else 0
    what = {"nanoseconds": "sampled time", "bytes": "sampled bytes"}.get(unit, unit)
    lines.append(f"| {what} | {format_quantity(total, unit)} in {len(profile) if profile is not None else 0:,} unique stacks |")
    summ, _ = _metrics(run)
    if summ:
        cpu = f"{summ['cpu_mean_pct']:.0f}% mean, {summ['cpu_max_pct']:.0f}% max" if summ["cpu_mean_pct"] is not None else "n/a"
        lines.append(f"| CPU (of one core) | {cpu} |")
        lines.append(f"| RSS | {_fmt_bytes(summ['rss_start'])} → {_fmt_bytes(summ['rss_end'])} (peak {_fmt_bytes(summ['rss_peak'])}) |")
        lines.append(f"| threads (max) | {summ['threads_max']} |")
        check = _on_cpu(run, profile)
        if check is not None:
            queue = f" and waited {check[2]:.2f} s runnable for a CPU" if check[2] is not None else ""
            host = f"; host CPU pressure {check[3]:.0f}% (PSI)" if check[3] is not None else ""
            lines.append(f"| on-CPU check | {check[0]:.2f} s sampled at {r.rate:g} Hz; the targets used {check[1]:.2f} s "
                         f"of CPU{queue} (/proc){host} |")
    lines.append("")
    for w in r.warnings:
        lines.append(f"> warning: {markdown_escape(str(w))}")
    if r.warnings:
        lines.append("")
    sections = [s.markdown_section(run, for_terminal=for_terminal).rstrip("\n") + "\n" for s in _sections(run)]
    steps = _investigation(run)
    if steps:  # bench --jaeger over a chain: RED → traces → code first, then the whole run's profile
        lines += ["## Investigation", ""] + [f"{i}. {markdown_escape(s)}" for i, s in enumerate(steps, 1)] + [""]
        lines += sections + ["## All targets' profile", ""]
    lines.extend(markdown_tables(run_tables(r, profile, rules), markdown_escape))
    if not steps:
        lines += sections
    lines.append("Files: `flamegraph.svg`, `profile.folded`, `metrics.jsonl`, `report.html`, `raw/`.")
    return "\n".join(lines) + "\n"


#: Optional report sections: (module, the run file that means the run did that thing).
SECTIONS = (("profkit.reports.heap", "heap.json"), ("profkit.reports.load", "load.json"),
            ("profkit.reports.traces", "traces.json"), ("profkit.reports.focus", "focus.json"))


def _investigation(run: RunDir) -> List[str]:
    """RED → traces → code lines of a run with ``focus.json`` (profkit/reports/focus.py), else []."""
    if not os.path.exists(run.file("focus.json")):
        return []
    from profkit.reports.focus import investigation_lines

    return investigation_lines(run)


def _sections(run: RunDir):
    """The section modules that apply to this run (``heap.json`` → heap, ``load.json`` → load).

    Each module offers ``markdown_section(run, for_terminal=False) -> str`` and
    ``html_section(run, env) -> str`` (``env`` is the autoescaping jinja2 Environment; the
    module renders its own template, e.g. ``heap.html.j2``)."""
    import importlib
    import importlib.util

    out = []
    for module, marker in SECTIONS:
        if os.path.exists(run.file(marker)) and importlib.util.find_spec(module) is not None:
            out.append(importlib.import_module(module))
    return out


def _chart(series: List[dict], key: str, width: int = 560, height: int = 140) -> Optional[dict]:
    pts = [(r["t"], r[key]) for r in series if r.get(key) is not None]
    if len(pts) < 2:
        return None
    t_max = max(p[0] for p in pts) or 1
    v_max = max(p[1] for p in pts) or 1
    coords = " ".join(f"{40 + (width - 50) * t / t_max:.1f},{height - 20 - (height - 35) * v / v_max:.1f}" for t, v in pts)
    return {"points": coords, "max": v_max, "t_max": t_max, "width": width, "height": height}


def render_report(run: RunDir, profile: Optional[Profile], svg_text: Optional[str],
                  rules: Optional[Rules] = None) -> str:
    """The run's self-contained ``report.html``."""
    from jinja2 import Environment, PackageLoader, select_autoescape
    from markupsafe import Markup

    from profkit.textsafe import display_text

    # Every value a template prints is escaped (autoescape) and, first, made safe to display:
    # control and bidi characters in names become visible escapes (finalize).
    env = Environment(loader=PackageLoader("profkit.reports", "templates"),
                      autoescape=select_autoescape(["html", "svg", "xml", "j2"], default=True),
                      finalize=lambda v: display_text(v) if isinstance(v, str) and not isinstance(v, Markup) else v)
    summ, series = _metrics(run)
    cpu_series = [dict(r, cpu=(r["cpu_user_pct"] or 0) + (r["cpu_system_pct"] or 0)) for r in series
                  if r.get("cpu_user_pct") is not None]
    tmpl = env.get_template("report.html.j2")
    from profkit.reports.timeline import script_json, timeline_data, timeline_script

    data = timeline_data(profile) if profile is not None else None
    # Each section module renders its own (autoescaped) template; the result is trusted markup.
    sections = [Markup(section.html_section(run, env)) for section in _sections(run)]
    return tmpl.render(
        sections=sections, investigation=_investigation(run), r=run.record, mode_line=_mode_line(run.record), profile=profile,
        unit=profile.unit if profile is not None else run.record.unit,
        tables=run_tables(run.record, profile, rules), metrics=summ,
        fmt_bytes=_fmt_bytes, fmt_q=lambda v: format_quantity(v, profile.unit if profile is not None else "samples"),
        cpu_chart=_chart(cpu_series, "cpu"), rss_chart=_chart(series, "rss"),
        # The SVG comes from our own renderer, which escapes every frame name.
        flamegraph=Markup(svg_text.split("?>", 1)[-1]) if svg_text else None,
        # script-safe JSON (no '<', '>' or '&' left in it) and profkit's own script
        timeline_json=Markup(script_json(data)) if data else None,
        timeline_js=Markup(timeline_script()) if data else None,
    )

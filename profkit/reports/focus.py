# SPDX-License-Identifier: Apache-2.0
"""The *Code* section of a run benched with ``--jaeger`` over several services (``focus.json``):
the profile of the service that owns the top trace segment, focused on the frames under that
segment's operation (profkit/traces/investigate.py), and the run's investigation in three lines —
RED, then the trace comparison, then the code — which ``bench`` also prints on stdout and which
head ``summary.md``. Names (services, operations, frames) are untrusted: Markdown-escaped in
``summary.md``, autoescaped in ``report.html``.
"""
from __future__ import annotations

from typing import Dict, List, Optional

from profkit.markdown import markdown_escape
from profkit.rundir import RunDir

__all__ = ["html_section", "investigation_lines", "markdown_section"]


def _ms(v) -> str:
    return "n/a" if v is None else f"{v:,.1f} ms"


def red_line(load: Optional[Dict]) -> str:
    """RED of the run in one line: Prometheus' figures when read, else the load generator's."""
    if not load:
        return "RED: no load figures"
    prom = load.get("prometheus") or {}
    if prom.get("rate") is not None:
        route = max(prom.get("routes") or [{}], key=lambda r: r.get("p99_ms") or 0).get("route")
        return (f"RED (Prometheus{', route ' + str(route) if route else ''}): {prom['rate']:.1f} req/s, "
                f"{100 * (prom.get('error_ratio') or 0):.1f}% errors, p50 {_ms(prom.get('p50_ms'))}, "
                f"p99 {_ms(prom.get('p99_ms'))}")
    lat = load.get("latency_ms") or {}
    rate = load.get("rate")
    return (f"RED ({load.get('generator', 'load')}): {rate:.1f} req/s, {load.get('error_pct') or 0:.1f}% errors, "
            f"p50 {_ms(lat.get('p50'))}, p99 {_ms(lat.get('p99'))}") if rate is not None else "RED: no load figures"


def code_line(focus: Dict) -> str:
    """The code step in one line: whose profile, focused how, and its top function."""
    seg = focus.get("segment") or {}
    if not focus.get("owners"):
        return f"code: {focus.get('note') or 'no service to profile'}"
    who = f"{focus.get('service')} [{', '.join(str(p) for p in focus['owners'])}]"
    top = (focus.get("top") or [{}])[0]
    hot = (f"; top: {top['function']} {100 * top['self_share']:.0f}% self" if top.get("function") else "")
    if focus.get("focused"):
        return (f"code: {who} ({focus.get('collector')}, {focus.get('mode')}), focused on the frames under "
                f"{seg.get('operation')} ({', '.join(focus.get('frames') or [])}; "
                f"{100 * (focus.get('share') or 0):.0f}% of the service's samples){hot}")
    return f"code: {who}: {focus.get('note') or 'the whole profile'}{hot}"


def investigation_lines(run: RunDir) -> List[str]:
    """RED → traces → code, one line each (empty when the run has no focus.json)."""
    focus = run.read_json("focus.json")
    if focus is None:
        return []
    traces = run.read_json("traces.json") or {}
    return [red_line(run.read_json("load.json")), f"traces: {traces.get('verdict') or 'no trace comparison'}",
            code_line(focus)]


def _rows(focus: Dict) -> List[List[str]]:
    return [[str(t.get("function")), f"{100 * (t.get('self_share') or 0):.1f}%", f"{100 * (t.get('total_share') or 0):.1f}%"]
            for t in focus.get("top") or []]


def _targets(focus: Dict) -> List[List[str]]:
    return [[str(t.get("pid")), str(t.get("name")), str(t.get("service") or "—"), str(t.get("mapped_by") or "not mapped")]
            for t in focus.get("targets") or []]


def markdown_section(run: RunDir, for_terminal: bool = False) -> str:
    """``## Code: SERVICE`` of summary.md."""
    from profkit.reports.text import plain_text

    esc = plain_text if for_terminal else markdown_escape
    focus = run.read_json("focus.json")
    if focus is None:
        return "## Code\n\n_focus.json is unreadable_\n"
    seg = focus.get("segment") or {}
    lines = [f"## Code: {esc(str(focus.get('service') or '?'))}", "",
             f"**{esc(code_line(focus))}**", ""]
    if seg:
        lines += [f"Top segment: {esc(' → '.join(seg.get('path') or []))} ({seg.get('delta_ms', 0):+,.1f} ms per trace). "
                  + (f"Focus ({focus.get('rule')}): {esc(str(focus.get('match')))}." if focus.get("rule") else ""), ""]
    if focus.get("note"):
        lines += [f"> note: {esc(str(focus['note']))}", ""]
    rows = _rows(focus)
    if rows:
        lines += ["| function | self | total |", "|---|---:|---:|"]
        lines += [f"| `{esc(r[0])}` | {r[1]} | {r[2]} |" for r in rows]
        lines.append("")
    lines += ["| pid | process | service | mapped by |", "|---:|---|---|---|"]
    lines += [f"| {r[0]} | {esc(r[1])} | {esc(r[2])} | {r[3]} |" for r in _targets(focus)]
    lines += ["", "Files: `focus.json`, `focus.folded`, `focus.svg`; each target's own profile in `targets/`."]
    return "\n".join(lines) + "\n"


def html_section(run: RunDir, env) -> str:
    """The Code section of report.html (``focus.html.j2``, autoescaped), with ``focus.svg``."""
    from profkit.reports.traces import _svg

    focus = run.read_json("focus.json")
    if focus is None:
        return ""
    return env.get_template("focus.html.j2").render(f=focus, line=code_line(focus), rows=_rows(focus),
                                                    targets=_targets(focus), svg=_svg(run, "focus.svg"))

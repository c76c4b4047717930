# SPDX-License-Identifier: Apache-2.0
"""The trace-comparison section of the reports (``traces.json`` present: ``profkit traces``).

The verdict, both sets (count, mean/p50/p99 duration, how they were chosen), the segments that
grew and shrank most on the critical path, and the span issues (missing parents, cycles, clock
skew). Span, service and operation names come from the traced services: Markdown-escaped in
``summary.md``, autoescaped (after :func:`profkit.textsafe.display_text`) in ``report.html``.
"""
from __future__ import annotations

from typing import Dict, List, Optional

from profkit.markdown import markdown_escape
from profkit.rundir import RunDir

__all__ = ["html_page", "html_section", "markdown_section"]

TOP = 10


def _load(run: RunDir) -> Optional[Dict]:
    from profkit.fastjson import loads

    try:
        with open(run.file("traces.json"), "rb") as fh:
            data = loads(fh.read())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _ms(v) -> str:
    return "n/a" if v is None else f"{v:,.1f} ms"


def set_rows(doc: Dict) -> List[List[str]]:
    rows = []
    for key in ("base", "head"):
        s = doc.get(key) or {}
        d = s.get("duration_ms") or {}
        rows.append([str(s.get("label", key)), str(s.get("selection", "")), str(s.get("count", 0)),
                     _ms(d.get("mean")), _ms(d.get("p50")), _ms(d.get("p99"))])
    return rows


def segment_rows(doc: Dict, n: int = TOP) -> List[List[str]]:
    segs = doc.get("segments") or []
    grown = [s for s in segs if s.get("delta_ms", 0) > 0][:n]
    shrunk = [s for s in reversed(segs) if s.get("delta_ms", 0) < 0][: max(0, min(3, n - len(grown)))]
    out = []
    for s in grown + shrunk:
        share = "" if s.get("delta_share") is None else f"{100 * s['delta_share']:.0f}%"
        out.append([f"{s.get('service')}: {s.get('operation')}", " → ".join(s.get("path") or []),
                    _ms(s.get("base_ms")), _ms(s.get("head_ms")), f"{s.get('delta_ms', 0):+,.1f} ms", share])
    return out


def issue_rows(doc: Dict) -> List[List[str]]:
    return [[str(v.get("meaning", k)), str(v.get("spans")), str(v.get("traces")), ", ".join(v.get("examples") or [])]
            for k, v in sorted((doc.get("issues") or {}).items())]


def markdown_section(run: RunDir, for_terminal: bool = False) -> str:
    """The ``## Traces`` section of ``summary.md`` (also the whole summary of ``profkit traces``)."""
    from profkit.reports.text import plain_text

    esc = plain_text if for_terminal else markdown_escape
    doc = _load(run)
    if doc is None:
        return "## Traces\n\n_traces.json is unreadable_\n"
    lines = [f"## Traces: {esc(str(doc.get('service')))}" + (f" / {esc(str(doc['operation']))}" if doc.get("operation") else ""),
             "", f"**{esc(str(doc.get('verdict', '')))}**", "",
             f"From {esc(str(doc.get('jaeger')))} (Jaeger query API v3), {doc.get('mode')}; critical path per trace.", "",
             "| set | chosen by | traces | mean | p50 | p99 |", "|---|---|---:|---:|---:|---:|"]
    lines += [f"| {esc(r[0])} | {esc(r[1])} | {r[2]} | {r[3]} | {r[4]} | {r[5]} |" for r in set_rows(doc)]
    lines += ["", "### Critical-path segments (per-trace mean)", ""]
    rows = segment_rows(doc)
    if rows:
        lines += ["| segment | path | base | head | delta | share of growth |", "|---|---|---:|---:|---:|---:|"]
        lines += [f"| {esc(r[0])} | {esc(r[1])} | {r[2]} | {r[3]} | {r[4]} | {r[5]} |" for r in rows]
    else:
        lines.append("_no segment changed_")
    issues = issue_rows(doc)
    if issues:
        lines += ["", "### Span issues (handled, reported)", "", "| issue | spans | traces | e.g. |", "|---|---:|---:|---|"]
        lines += [f"| {esc(r[0])} | {r[1]} | {r[2]} | {esc(r[3])} |" for r in issues]
    for w in doc.get("warnings") or []:
        lines.append(f"> warning: {esc(str(w))}")
    lines += ["", "Files: `traces.json`, `spans-base.svg`, `spans-head.svg`, `spans-diff.svg`, `spans-*.folded`."]
    return "\n".join(lines) + "\n"


def _env():
    from jinja2 import Environment, PackageLoader, select_autoescape
    from markupsafe import Markup

    from profkit.textsafe import display_text

    return Environment(loader=PackageLoader("profkit.reports", "templates"),
                       autoescape=select_autoescape(["html", "svg", "xml", "j2"], default=True),
                       finalize=lambda v: display_text(v) if isinstance(v, str) and not isinstance(v, Markup) else v)


def _svg(run: RunDir, name: str):
    from markupsafe import Markup

    try:
        with open(run.file(name), encoding="utf-8") as fh:
            # Our own renderer's SVG, which escapes every frame name itself.
            return Markup(fh.read().split("?>", 1)[-1])
    except OSError:
        return None


def html_section(run: RunDir, env, graphs: bool = True) -> str:
    """The traces section of ``report.html`` (``traces.html.j2``, autoescaped)."""
    doc = _load(run)
    if doc is None:
        return ""
    svgs = [(cap, _svg(run, f)) for cap, f in (("differential, base → head", "spans-diff.svg"),
                                                 ("head", "spans-head.svg"), ("base", "spans-base.svg"))] if graphs else []
    return env.get_template("traces.html.j2").render(doc=doc, sets=set_rows(doc), segments=segment_rows(doc),
                                                     issues=issue_rows(doc), svgs=[(c, s) for c, s in svgs if s])


def html_page(run: RunDir) -> str:
    """``report.html`` of a ``profkit traces`` directory: the section with its graphs, self-contained."""
    from markupsafe import Markup

    env = _env()
    doc = _load(run) or {}
    return env.get_template("traces_page.html.j2").render(doc=doc, section=Markup(html_section(run, env, graphs=True)))

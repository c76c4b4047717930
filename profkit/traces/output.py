# SPDX-License-Identifier: Apache-2.0
"""``profkit traces``' output directory: traces.json, span profiles, flame graphs, reports.

    traces.json          the traces used, the segments (sorted by delta_ms), issues, verdict, fetch figures
    spans-base.folded    the base (or fast) set's span paths, nanoseconds of critical path
    spans-head.folded    the head (or slow) set's
    spans-base.svg       flame graph of each set (the core's renderer: span paths are stacks)
    spans-head.svg
    spans-diff.svg       differential graph base → head (the core's differential renderer)
    summary.md           the trace comparison section (profkit/reports/traces.py)
    report.html          the same section with the three graphs, self-contained
"""
from __future__ import annotations

import io
import os
from typing import Dict

from profkit.errors import UsageError
from profkit.rundir import RunDir
from profkit.traces.compare import TraceSet

__all__ = ["prepare_dir", "write_outputs"]


def prepare_dir(path: str) -> RunDir:
    """A new or empty directory (profkit never writes into one holding other files)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError(f"{path} exists and is not a directory; choose another -o directory")
    if os.path.isdir(path) and os.listdir(path):
        raise UsageError(f"{path} is not empty; refusing to write into it", hint="choose a new or empty -o directory")
    os.makedirs(path, exist_ok=True)
    return RunDir(path)


def _svgs(out: RunDir, base: TraceSet, head: TraceSet, title: str) -> Dict[str, str]:
    from flamegraph import render_diff, render_svg
    from flamegraph.options import FlameGraphOptions

    written = {}
    profiles = {"base": base.profile(), "head": head.profile()}
    for key, s in (("base", base), ("head", head)):
        out.write_profile(f"spans-{key}.folded", profiles[key])
        if profiles[key]:
            buf = io.StringIO()
            render_svg(profiles[key], FlameGraphOptions(title=f"{title}: {s.label} traces",
                                                        subtitle=f"critical path, {len(s.traces)} traces, {s.selection}",
                                                        countname="ns", name_prefix=f"spans{key}"), buf)
            written[key] = out.write_text(f"spans-{key}.svg", buf.getvalue())
    if profiles["base"] and profiles["head"]:
        buf = io.StringIO()
        render_diff(profiles["base"], profiles["head"],
                    FlameGraphOptions(title=f"{title}: {base.label} → {head.label}", countname="ns",
                                      subtitle="critical path per trace; red grew, blue shrank", name_prefix="spansdiff"),
                    buf)
        written["diff"] = out.write_text("spans-diff.svg", buf.getvalue())
    return written


def write_outputs(out: RunDir, doc: Dict, base: TraceSet, head: TraceSet, reports: bool = True) -> Dict[str, str]:
    """Write every file of the directory (``reports``: summary.md and report.html too; a run
    directory renders its own, with this section); returns what → path."""
    from profkit.reports.traces import html_page, markdown_section

    from profkit.fastjson import dumps

    # Keys in the documented order (write_json sorts them).
    written = {"traces": out.write_text("traces.json", dumps(doc))}
    written.update(_svgs(out, base, head, f"{doc['service']}"))
    if reports:
        written["summary"] = out.write_text("summary.md", markdown_section(out))
        written["report"] = out.write_text("report.html", html_page(out))
    return written

# SPDX-License-Identifier: Apache-2.0
"""Writing a run's outputs: folded profiles, then everything derived from what is on disk.

:func:`write_outputs` writes ``profile.folded`` (the primary collector's profile — never a
sum of several collectors) and ``profile-ID.folded`` when several ran, then calls
:func:`render_run`, which ``profkit render RUN_DIR`` also uses: it reads the run directory
alone and rebuilds ``flamegraph.svg``, ``summary.md`` and ``report.html``.
"""
from __future__ import annotations

import io
import os
from typing import Dict, Optional, Sequence

from profkit.errors import Diagnostics
from profkit.folded import read_folded, write_folded
from profkit.inputs import Source
from profkit.model import Profile, ProfileMeta
from profkit.rundir import RunDir

__all__ = ["render_run", "write_outputs"]


def _atomic_text(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8", errors="surrogateescape", newline="\n") as fh:
        fh.write(text)
    os.replace(tmp, path)


def write_outputs(run: RunDir, profiles: Dict[str, Profile], order: Sequence[str], targets, options) -> None:
    """Write the folded profiles of a finished capture, then render the run."""
    primary = next((cid for cid in order if cid in profiles), None)
    for cid, prof in profiles.items():
        if len(profiles) > 1:
            buf = io.StringIO()
            write_folded(prof, buf)
            _atomic_text(run.file(f"profile-{cid}.folded"), buf.getvalue())
    if primary is not None:
        prof = profiles[primary]
        buf = io.StringIO()
        write_folded(prof, buf)
        _atomic_text(run.file("profile.folded"), buf.getvalue())
        run.manifest.update({"primary": primary, "unit": prof.unit, "samples": prof.total,
                             "unique_stacks": len(prof)})
        if not prof:
            run.warn("no samples were collected (an idle target, or one that exited at once)")
        elif prof.unit == "samples" and run.manifest.get("rate") and run.manifest.get("duration"):
            expected = run.manifest["rate"] * run.manifest["duration"] * len((run.manifest.get("target") or {}).get("pids", [1]))
            if prof.total < 0.1 * expected:
                run.warn(f"only {prof.total:g} samples where about {expected:.0f} were possible at {run.manifest['rate']} Hz: "
                         "the target was mostly idle or off-CPU; --mode wall shows where it waits")
    run.save()
    render_run(run)


def load_run_profile(run: RunDir, *, keyed: bool = False) -> Optional[Profile]:
    """``profile.folded`` of a run, with the unit and metadata from its manifest; None if absent.
    ``keyed`` names frames by function as they are read (for comparisons)."""
    path = run.file("profile.folded")
    if not os.path.exists(path):
        return None
    m = run.manifest
    target = m.get("target") or {}
    meta = ProfileMeta(collector=m.get("primary"), pid=(target.get("pids") or [None])[0],
                       command=" ".join(target.get("cmdline") or []) or target.get("name"),
                       start=m.get("start"), duration=m.get("duration"), sample_rate=m.get("rate"))
    if os.path.getsize(path) == 0:
        return Profile(m.get("unit", "samples"), meta, keyed=keyed)
    from profkit.loading import gc_paused

    diag = Diagnostics(path)
    with gc_paused():
        return read_folded(Source(path, diag).text_lines(), diag, unit=m.get("unit", "samples"), meta=meta,
                           keyed=keyed)


def render_run(run: RunDir) -> Dict[str, str]:
    """Rebuild ``flamegraph.svg``, ``summary.md`` and ``report.html`` from the run directory."""
    from flamegraph import render_svg
    from flamegraph.options import FlameGraphOptions
    from profkit.reports import render_report, summary_markdown

    written: Dict[str, str] = {}
    profile = load_run_profile(run)
    svg_text = None
    if profile:
        m = run.manifest
        title = f"{m.get('primary', 'profile')}: {(m.get('target') or {}).get('name', '')} ({m.get('mode', 'cpu')})"
        buf = io.StringIO()
        render_svg(profile, FlameGraphOptions(title=title, subtitle=_subtitle(run)), buf)
        svg_text = buf.getvalue()
        _atomic_text(run.file("flamegraph.svg"), svg_text)
        written["flamegraph"] = run.file("flamegraph.svg")
    summary = summary_markdown(run, profile)
    _atomic_text(run.file("summary.md"), summary)
    written["summary"] = run.file("summary.md")
    _atomic_text(run.file("report.html"), render_report(run, profile, svg_text))
    written["report"] = run.file("report.html")
    return written


def _subtitle(run: RunDir) -> str:
    m = run.manifest
    parts = [f"pid {', '.join(str(p) for p in (m.get('target') or {}).get('pids', []))}"]
    if m.get("rate"):
        parts.append(f"{m['rate']} Hz")
    if m.get("duration") is not None:
        parts.append(f"{m['duration']:.1f} s")
    if m.get("status") and m["status"] != "running":
        parts.append(m["status"])
    return ", ".join(parts)

# SPDX-License-Identifier: Apache-2.0
"""``profkit render RUN_DIR --from/--until``: one time range of a run, from its timed samples.

The range's samples (``timeline.bin``, offsets from the run's start) become a profile of their
own, written with its flame graph and a summary into OUT_DIR: by default a new directory
``ranges/<from>-<until>/`` inside the run, never over the run's own files. TIME values follow
``shared/CONTRACT.md``: a bare DURATION (``12``, ``12s``, ``500ms``) is an offset from the run's
start; ``now``, ``-DURATION`` and RFC 3339 are points in time.
"""
from __future__ import annotations

import io
import os
import re
from typing import Dict, Optional

from profkit.errors import EnvironmentProblem, UsageError
from profkit.model import Profile
from profkit.rundir import RunDir

__all__ = ["offset_of", "range_profile", "render_range"]


def offset_of(text: Optional[str], run_start: float, flag: str) -> Optional[float]:
    """Seconds since the run's start of a ``--from``/``--until`` value (None stays None)."""
    from profkit.timeparse import parse_duration, parse_time

    if text is None:
        return None
    s = str(text).strip()
    if re.fullmatch(r"(?:\d+(?:\.\d+)?|\.\d+)(?:ms|s|m|h)?", s, re.ASCII):  # a bare DURATION
        return parse_duration(s, flag)
    return parse_time(s, flag).timestamp() - run_start


def _label(v: Optional[float], default: str) -> str:
    return default if v is None else (f"{v:g}s" if v >= 0 else f"minus{-v:g}s")


def target_of(run: RunDir, which: str):
    """The run's target named by ``--target`` (its PID, process name or service label)."""
    found = [t for t in run.record.targets if which in (str(t.pid), t.name, t.service)]
    listed = ", ".join(f"{t.pid} ({t.process_name})" for t in run.record.targets[:20])
    if not found:
        raise UsageError(f"--target {which!r} is not a target of this run", hint=f"its targets: {listed}")
    if len(found) > 1:
        raise UsageError(f"--target {which!r} names {len(found)} targets of this run", hint=f"give a PID: {listed}")
    return found[0]


def _target_profile(run: RunDir, which: str) -> Profile:
    """One target's own profile (``targets/<pid>-<name>/profile.folded``) with its timed samples."""
    from profkit.errors import Diagnostics
    from profkit.folded import read_folded
    from profkit.inputs import Source
    from profkit.model import ProfileMeta
    from profkit.timeline import TimelineFormatError, read

    t = target_of(run, which)
    if not t.dir or not t.timeline or not os.path.exists(run.file(t.timeline["file"])):
        raise EnvironmentProblem(f"target {t.pid} ({t.process_name}) has no timed samples of its own in this run",
                                 hint="a run of one target keeps them in RUN_DIR/timeline.bin: leave out --target")
    path = run.file(f"{t.dir}/profile.folded")
    diag = Diagnostics(path)
    r = run.record
    base = read_folded(Source(path, diag).text_lines(), diag, unit=r.unit,
                       meta=ProfileMeta(collector=r.primary, pid=t.pid, start=r.start or None, sample_rate=r.rate))
    try:
        base.timeline = read(run.file(t.timeline["file"]), base.intern)
    except (OSError, TimelineFormatError) as e:
        raise EnvironmentProblem(f"{t.timeline['file']}: {e}") from None
    return base


def range_profile(run: RunDir, since: Optional[float], until: Optional[float],
                  thread: Optional[str] = None, target: Optional[str] = None) -> Profile:
    """The run's profile of samples in ``[since, until)`` (seconds from its start) and, with
    ``thread`` (a regex), of the threads whose names match it; with ``target`` (a PID, process
    name or service label), of that target alone (its own ``timeline.bin``)."""
    from profkit.outputs import load_run_profile, load_timeline

    if target is not None:
        base = _target_profile(run, target)
    else:
        base = load_run_profile(run)
        if base is not None:
            load_timeline(run, base)
    if base is None or base.timeline is None:
        raise EnvironmentProblem(f"{run.path}: this run has no timed samples, so it cannot be cut by time",
                                 hint="perf, JFR and py-spy record them (py-spy's --subprocesses and --gil do "
                                      "not); async-profiler's collapsed output does not")
    tl = base.timeline
    names = None
    if thread is not None:
        try:
            rx = re.compile(thread)
        except re.error as e:
            raise UsageError(f"--thread {thread!r}: not a regular expression ({e})") from None
        names = [n for n in tl.threads if rx.search(n)]
        if not names:
            raise EnvironmentProblem(f"no thread matches --thread {thread!r}",
                                     hint="threads: " + ", ".join(tl.threads[:20]))
    out = Profile(base.unit, base.meta)
    out._adopt(base)
    for key, w in tl.select(since, until, names).items():
        out.add_ids(key, w)
    if not out:
        raise EnvironmentProblem(f"no samples between {_label(since, '0s')} and {_label(until, 'the end')} of the run",
                                 hint=f"its samples span 0 to {tl.duration:.1f} s from the run's start")
    return out


def render_range(run: RunDir, since: Optional[float], until: Optional[float], out_dir: Optional[str] = None,
                 thread: Optional[str] = None, target: Optional[str] = None) -> Dict[str, str]:
    """Write the range's ``profile.folded``, ``flamegraph.svg`` and ``summary.md``; returns them."""
    from flamegraph import render_svg
    from flamegraph.options import FlameGraphOptions
    from profkit.atomic import atomic_write
    from profkit.folded import write_folded
    from profkit.markdown import markdown_escape
    from profkit.reports.text import format_quantity

    if since is not None and until is not None and until <= since:
        raise UsageError(f"--until ({until:g} s) must come after --from ({since:g} s)")
    prof = range_profile(run, since, until, thread, target)
    label = f"{_label(since, '0s')}-{_label(until, 'end')}" + (f"-pid{target_of(run, target).pid}" if target else "")
    out = out_dir or os.path.join(run.path, "ranges", label)
    real = os.path.realpath(out)
    if real == os.path.realpath(run.path) or os.path.exists(os.path.join(out, "manifest.json")):
        raise UsageError(f"{out} is a run directory: the range is written elsewhere, never over a run's own files",
                         hint="leave -o out (a new ranges/ subdirectory of the run) or name a new directory")
    os.makedirs(out, exist_ok=True)
    r = run.record
    written: Dict[str, str] = {}
    buf = io.StringIO()
    write_folded(prof, buf)
    written["profile"] = os.path.join(out, "profile.folded")
    atomic_write(written["profile"], buf.getvalue())
    span = f"{_label(since, '0s')} to {_label(until, 'the end')}"
    svg = io.StringIO()
    render_svg(prof, FlameGraphOptions(title=f"{r.primary or 'profile'}: {r.target.name} ({r.mode}), {span}",
                                       subtitle=f"pid {', '.join(map(str, r.pids))}" + (f", threads /{thread}/" if thread else "")), svg)
    written["flamegraph"] = os.path.join(out, "flamegraph.svg")
    atomic_write(written["flamegraph"], svg.getvalue())
    lines = [f"# profkit range: {markdown_escape(r.target.name or '?')}, {span}", "",
             "| | |", "|---|---|", f"| run | {markdown_escape(os.path.basename(os.path.abspath(run.path)))} |",
             f"| range | {span} from the run's start ({r.start}) |",
             f"| {prof.unit} | {format_quantity(prof.total, prof.unit)} in {len(prof):,} unique stacks |"]
    if thread:
        lines.append(f"| threads | matching {markdown_escape(thread)} |")
    if target:
        t = target_of(run, target)
        lines.append(f"| target | {t.pid} ({markdown_escape(t.process_name)}) |")
    lines += ["", "| self | function |", "|---:|---|"]
    total = prof.total or 1
    for st in prof.top_functions(10):
        lines.append(f"| {100 * st.self / total:.1f}% | {markdown_escape(st.key)} |")
    written["summary"] = os.path.join(out, "summary.md")
    atomic_write(written["summary"], "\n".join(lines) + "\n")
    return written

# SPDX-License-Identifier: Apache-2.0
"""Orchestration of a live run: targets → collectors → raw captures → profiles → outputs.

    resolve targets (pids, --name, --children) ─┐
    choose collectors for (runtime, mode)       ├─ RunDir.create (status: running)
    start psutil + each collector's Recording   ┘
    wait: duration | stop() (Ctrl-C / SIGTERM) | every target gone
    stop and finish each Recording → raw captures (already on disk)
    parse each capture with its collector → Profile → profile[-ID].folded, flamegraph.svg
    summary.md, report.html, manifest status: complete | interrupted | collector-error

Only profkit's own child tools are ever signalled; a launched command (``profkit run``) is
profkit's child too and is stopped at the end of the run.
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import collectors
from collectors.base import Availability, Collector, RecordRequest, Recording
from profkit.errors import (CollectorNotInstalled, Diagnostics, EnvironmentProblem,
                            ProfkitError, TargetNotFound, UsageError)
from profkit.inputs import Source
from profkit.model import Frame, FrameKind, Profile
from profkit.rundir import RunDir, default_run_path
from profkit.targets import Target, children_of, find_by_name, inspect, process_state

__all__ = ["DEFAULT_COLLECTORS", "SessionOptions", "choose_collectors", "resolve_targets", "run_session"]

MODES = ("cpu", "wall", "alloc", "lock")

#: shared/CONTRACT.md "Modes": the default collector(s) per runtime and mode, in order of preference.
DEFAULT_COLLECTORS: Dict[Tuple[str, str], Tuple[str, ...]] = {
    ("python", "cpu"): ("py-spy",),
    ("python", "wall"): ("py-spy",),
    ("python", "alloc"): ("memray",),
    ("jvm", "cpu"): ("async-profiler", "jfr"),
    ("jvm", "wall"): ("async-profiler",),
    ("jvm", "alloc"): ("async-profiler", "jfr"),
    ("jvm", "lock"): ("async-profiler", "jfr"),
    ("native", "cpu"): ("perf",),
}
REFUSALS = {
    ("native", "wall"): ("perf samples on-CPU time only; it is not a wall-clock profiler",
                         "use --mode cpu, or profile off-CPU time with perf sched/offcputime tools"),
    ("native", "alloc"): ("there is no allocation profiler for native processes here", "use profkit heap --pid PID for RSS growth"),
    ("native", "lock"): ("there is no lock profiler for native processes here", "use --mode cpu"),
    ("python", "lock"): ("py-spy cannot profile lock contention", "use --mode wall to see where threads wait"),
}


@dataclass(frozen=True)
class SessionOptions:
    """What a live run does; filled from the ``attach``/``run`` flags."""

    duration: float = 30.0
    rate: int = 100
    mode: str = "cpu"
    collectors: Tuple[str, ...] = ()
    output: Optional[str] = None
    interval: float = 1.0
    #: record-option values given on the command line, by field name; each applies to every
    #: chosen collector whose RecordOptions has that field
    record_options: Dict[str, object] = field(default_factory=dict)


def resolve_targets(pids: Sequence[int], name: Optional[str], children: bool) -> List[Target]:
    """The processes to profile: given PIDs, plus those matching ``name``, plus children."""
    wanted: List[int] = list(pids)
    if name:
        found = find_by_name(name)
        if not found:
            raise TargetNotFound(f"no process matches --name {name!r}")
        wanted += found
    if not wanted:
        raise UsageError("give --pid PID (repeatable) or --name PATTERN")
    targets: List[Target] = []
    for pid in dict.fromkeys(wanted):
        targets.append(inspect(pid))
    if children:
        for t in list(targets):
            for kid in children_of(t.pid):
                if kid not in {x.pid for x in targets}:
                    try:
                        targets.append(inspect(kid))
                    except TargetNotFound:
                        pass
    return targets


def choose_collectors(runtime: str, mode: str, explicit: Sequence[str],
                      given: Optional[Dict[str, object]] = None) -> List[Tuple[Collector, Availability]]:
    """The collectors to run: the explicit ones (all must be usable), else the contract's default
    for (runtime, mode) — the first that can run here, e.g. JFR when async-profiler cannot."""
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    if explicit:
        out = []
        for cid in explicit:
            c = collectors.get(cid)
            avail = c.check(runtime, mode, _record_options(c, given or {}))
            if not avail.ok:
                raise _unavailable(c, avail)
            out.append((c, avail))
        return out
    if (runtime, mode) in REFUSALS:
        what, hint = REFUSALS[(runtime, mode)]
        raise UsageError(f"--mode {mode} is not available for a {runtime} process: {what}", hint=hint)
    candidates = DEFAULT_COLLECTORS.get((runtime, mode), ())
    problems = []
    for cid in candidates:
        try:
            c = collectors.get(cid)
        except ProfkitError as e:
            problems.append((cid, Availability(False, reason=e.message)))
            continue
        avail = c.check(runtime, mode, _record_options(c, given or {}))
        if avail.ok:
            return [(c, avail)]
        problems.append((c, avail))
    if not problems:
        raise UsageError(f"no collector records --mode {mode} for {runtime} processes")
    first = problems[0]
    if isinstance(first[0], str):
        raise CollectorNotInstalled(f"{first[0]}: {first[1].reason}")
    raise _unavailable(*first)


def _unavailable(c: Collector, avail: Availability) -> EnvironmentProblem:
    cls = CollectorNotInstalled if "not installed" in avail.reason or "not found" in avail.reason else EnvironmentProblem
    return cls(f"{c.id} cannot run: {avail.reason}", hint=avail.hint or None)


def run_session(targets: List[Target], options: SessionOptions, *, stop: threading.Event,
                progress: Optional[Callable[[float, float, str], None]] = None,
                launched=None) -> RunDir:
    """Profile ``targets`` for ``options.duration`` seconds (or until ``stop`` is set or they exit)
    and write the run directory. Returns the RunDir whatever happened; raises only when nothing
    could be started at all."""
    runtime = targets[0].runtime
    mixed = {t.runtime for t in targets}
    if len(mixed) > 1 and not options.collectors:
        raise UsageError(f"the targets mix runtimes ({', '.join(sorted(mixed))}); name the collector with --collector")
    chosen = choose_collectors(runtime, options.mode, options.collectors, options.record_options)
    first = targets[0]
    used = {name for c, _ in chosen if c.RecordOptions is not None
            for name in c.RecordOptions.__dataclass_fields__}
    unused = sorted(set(options.record_options) - used)
    run = RunDir.create(options.output or default_run_path(first.pid, first.name),
                        target={"pids": [t.pid for t in targets], "runtime": runtime, "name": first.name,
                                "cmdline": first.cmdline, "exe": first.exe},
                        mode=options.mode, rate=options.rate, duration_requested=options.duration)
    for name in unused:
        run.warn(f"--{name.replace('_', '-')} does not apply to {', '.join(c.id for c, _ in chosen)}; ignored")
    pids = tuple(t.pid for t in targets)
    recordings: List[Tuple[Collector, Recording]] = []
    errors: List[str] = []
    first_failure: Optional[ProfkitError] = None
    from collectors.psutil_metrics import PsutilCollector, PsutilOptions

    metrics = PsutilCollector().record(RecordRequest(pids, runtime, options.mode, options.rate, options.duration + 5,
                                                     run.path, PsutilOptions(interval=options.interval)))
    t0 = time.monotonic()
    try:
        for c, avail in chosen:
            entry = run.collector_entry(c.id)
            entry["version"] = avail.version
            req = RecordRequest(pids, runtime, options.mode, options.rate, options.duration, run.raw_dir,
                                _record_options(c, options.record_options))
            try:
                rec = c.record(req)
            except ProfkitError as e:
                entry["status"] = "failed"
                entry["error"] = e.message
                errors.append(f"{c.id}: {e.message}")
                first_failure = first_failure or e
                continue
            entry["commands"] = rec.commands
            recordings.append((c, rec))
        run.save()
        if not recordings:
            metrics.stop()
            metrics.finish()
            run.finish("collector-error")
            if first_failure is not None:
                raise first_failure  # its own message, exit code and hint
            raise EnvironmentProblem("no collector could start")
        report = progress or (lambda elapsed, remaining, status: None)
        gone_reason = None
        while True:
            elapsed = time.monotonic() - t0
            if stop.is_set() or elapsed >= options.duration:
                break
            if all(process_state(p) in (None, "Z") for p in pids):
                gone_reason = "the target exited during the run; the profile covers the time until then"
                break
            if not any(rec.poll() for _, rec in recordings):
                break
            report(elapsed, max(0.0, options.duration - elapsed), _status_line(metrics.last, run.raw_dir))
            stop.wait(0.5)
    finally:
        interrupted = stop.is_set()
        for _, rec in recordings:
            rec.stop()
        metrics.stop()
        if launched is not None:
            launched.stop(grace=5.0)
    run.manifest["duration"] = round(time.monotonic() - t0, 3)
    if gone_reason:
        run.warn(gone_reason)
    profiles: Dict[str, Profile] = {}
    for c, rec in recordings:
        entry = run.collector_entry(c.id)
        try:
            raws = rec.finish()
        except ProfkitError as e:
            entry["status"] = "failed"
            entry["error"] = e.message
            errors.append(f"{c.id}: {e.message}")
            raws = [os.path.join(run.raw_dir, f) for f in run.raw_files() if f.startswith(c.id)]
        entry["raw"] = [os.path.relpath(r, run.path) for r in raws]
        try:
            profiles[c.id] = _parse_raws(c, raws, targets, options)
            entry.setdefault("status", "ok")
        except ProfkitError as e:
            entry["status"] = "failed"
            entry["error"] = e.message
            errors.append(f"{c.id}: {e.message}")
    metrics.finish()
    status = "interrupted" if interrupted else ("collector-error" if errors else "complete")
    for e in errors:
        run.warn(e)
    run.finish(status)
    from profkit.outputs import write_outputs

    write_outputs(run, profiles, [c.id for c, _ in recordings], targets, options)
    return run


def _record_options(c: Collector, given: Dict[str, object]):
    """The collector's RecordOptions with the values given on the command line that it has."""
    if c.RecordOptions is None:
        return None
    fields = c.RecordOptions.__dataclass_fields__
    return c.RecordOptions(**{k: v for k, v in given.items() if k in fields})


def _status_line(last: Optional[dict], raw_dir: str) -> str:
    """``recording · target 98% CPU, 13 MiB RSS · 120 KiB captured`` for the progress display."""
    parts = ["recording"]
    if last and last.get("cpu_user_pct") is not None:
        parts.append(f"target {last['cpu_user_pct'] + last['cpu_system_pct']:.0f}% CPU, {last['rss'] / 2**20:.0f} MiB RSS")
    try:
        size = sum(e.stat().st_size for e in os.scandir(raw_dir) if e.is_file())
    except OSError:
        size = 0
    parts.append(f"{size / 1024:.0f} KiB captured")
    return " · ".join(parts)


def _parse_raws(c: Collector, raws: Sequence[str], targets: List[Target], options: SessionOptions) -> Profile:
    """Parse a collector's raw captures; several processes get a process root frame each."""
    diag = Diagnostics()
    merged: Optional[Profile] = None
    by_pid = {t.pid: t for t in targets}
    for raw in raws:
        if not os.path.exists(raw) or os.path.getsize(raw) == 0:
            continue
        prof = c.parse(Source(raw, diag, binary_ok=c.binary_input), _parse_options_for(c, options), diag)
        pid = _pid_of_raw(raw)
        if len(targets) > 1 and pid in by_pid:
            root = Frame(f"{by_pid[pid].name} [{pid}]", FrameKind.PROCESS)
            framed = Profile(prof.unit, prof.meta)
            for stack, w in prof.stacks():
                framed.add((root,) + stack, w)
            prof = framed
        merged = prof if merged is None else merged.merge(prof)
    if merged is None:
        merged = Profile()
    merged.meta.collector = c.id
    merged.meta.pid = targets[0].pid
    merged.meta.command = targets[0].command
    merged.meta.sample_rate = options.rate
    merged.meta.duration = options.duration
    return merged


def _parse_options_for(c: Collector, options: SessionOptions):
    hook = getattr(c, "parse_options_for", None)
    return hook(options.mode) if hook else c.Options()


def _pid_of_raw(path: str) -> Optional[int]:
    import re

    m = re.search(r"-(\d+)\.[^/]*$", os.path.basename(path))
    return int(m.group(1)) if m else None

# SPDX-License-Identifier: Apache-2.0
"""One window of one target: an ordinary run of the recording engine into its own run
directory (``DIR/windows/<start>-<pid>-<name>/``), then its labels, its line of the index and
its place in the spool."""
from __future__ import annotations

import os
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List, Optional

from profkit.agent.windows import WINDOWS, ensure_private_dir, index_entry, window_dir_name
from profkit.errors import ProfkitError
from profkit.exporters.base import Window, clean_labels
from profkit.targets import Target

if TYPE_CHECKING:  # pragma: no cover
    from profkit.agent import Agent

__all__ = ["OVERLAPPING", "labels_of", "record_window", "window_from_run"]

#: collectors of which two runs may sample one process at once (so windows can overlap)
OVERLAPPING = {"py-spy"}
#: how often a window's engine run looks at its profilers and target (seconds): a stop wakes it at
#: once and its end is timed, so this only bounds how late a target's exit is seen (each look
#: costs the agent about 0.2 ms of CPU per target: at 2 s, 0.9 ms of a 10 s window)
TICK = 5.0


def labels_of(agent: "Agent", target: Target, collector: str) -> Dict[str, str]:
    """The window's labels: service, host, pid, runtime, collector, mode (+ version and the
    user's other ``--label``s), cleaned (untrusted process names)."""
    o = agent.options
    labels: Dict[str, object] = {"service": o.labels.get("service") or target.name, "host": agent.host,
                                 "pid": str(target.pid), "runtime": target.runtime, "collector": collector,
                                 "mode": o.mode}
    labels.update({k: v for k, v in o.labels.items() if k != "service"})
    return clean_labels(labels)


def _end_window(ctx, start: datetime, keep_raw: bool) -> None:
    """An analysis step of the window's engine run (after its collectors stopped, before its
    profiles and final manifest are written), so the manifest's last write has it all: the
    window's span (it ends when the engine stopped its collectors, not when its files were
    written; perf kept attached: exactly between two cuts) in ``ctx.results["window_times"]``,
    and without --keep-raw, raw/ no longer listed (removed once that write is done: a kill before
    it leaves the manifest naming raw/, still there to recover)."""
    from profkit.timeparse import format_time

    end = start + timedelta(seconds=ctx.record.duration or 0.0)
    if ctx.results.get("window_span"):
        a, b = ctx.results["window_span"]
        start, end = datetime.fromtimestamp(a, timezone.utc), datetime.fromtimestamp(b, timezone.utc)
    ctx.record.window["start"], ctx.record.window["end"] = format_time(start), format_time(end)
    ctx.results["window_times"] = (start, end)
    for p in ctx.record.probes if not keep_raw else ():
        if p.raw:
            p.detail["raw_not_kept"] = len(p.raw)
            p.raw = []


def _probes(agent: "Agent", target: Target, length: float, overlap: float):
    """The window's probes and warnings, and how long it records: perf and async-profiler (cpu,
    wall) stay attached (a cut per window, no overlap); a collector restarted per window runs
    ``overlap`` seconds longer."""
    probes, warnings = agent.probes_for(target)
    if probes and probes[0].id == "perf" and len(probes) == 1:
        from profkit.agent.perfswitch import SwitchedPerfProbe

        return [SwitchedPerfProbe(agent.perf_session(target.pid), probes[0].availability.version)], warnings, length, False
    if probes and probes[0].id == "async-profiler" and len(probes) == 1 and agent.options.mode in ("cpu", "wall"):
        from profkit.agent.asprofswitch import SwitchedAsprofProbe

        session = agent.asprof_session(target.pid)
        return [SwitchedAsprofProbe(session, probes[0].availability.version)], warnings, length, False
    if all(p.id in OVERLAPPING for p in probes):
        return probes, warnings, length + overlap, False
    # one session per process at a time (async-profiler, JFR): wait for the previous window's to end
    scheduled_end = time.monotonic() + length
    agent.exclusive(target.pid).acquire()
    return probes, warnings, max(1.0, scheduled_end - time.monotonic()), True


def record_window(agent: "Agent", target: Target, seq: int, length: float, overlap: float = 0.0) -> Optional[Window]:
    """Record ``target`` for ``length`` seconds (or until the agent stops) and hand the window on."""
    from profkit.engine import record
    from profkit.live import new_run
    from profkit.outputs import load_run_profile
    from profkit.timeparse import format_time

    o = agent.options
    start = datetime.now(timezone.utc)
    rel = f"{WINDOWS}/{window_dir_name(start, target.pid, target.name)}"
    path = os.path.join(agent.root, rel)
    ensure_private_dir(path)
    agent.busy(os.path.basename(path), True)
    try:
        held = False
        probes, warnings, length, held = _probes(agent, target, length, overlap)
        service = o.labels.get("service")
        run = new_run([target], path, mode=o.mode, rate=o.rate, duration=length,
                      services={0: service} if service else None)
        run.durable = False  # written atomically, not fsync'd: see docs/contract.md "Durability"
        collector = probes[0].id if probes else "none"
        labels = labels_of(agent, target, collector)
        run.record.window = {"start": format_time(start), "labels": labels, "sequence": seq}
        for w in warnings:
            run.warn(w)
        start = datetime.now(timezone.utc)  # after waiting for the collector's previous session
        run.record.window["start"] = format_time(start)
        ctx = record(run, [target], probes, duration=length, stop=agent.stop, render=o.render, tick=TICK,
                     analyses=(lambda c: _end_window(c, start, o.keep_raw),))
    except Exception as e:  # noqa: BLE001 - one window's failure never stops the agent
        if held:
            agent.release(target.pid)
        if not isinstance(e, ProfkitError):
            e = ProfkitError(f"internal error: {type(e).__name__}: {e}")
        agent.window_failed(target, e)
        if not agent.output or not os.path.exists(os.path.join(path, "manifest.json")):
            shutil.rmtree(path, ignore_errors=True)
        agent.busy(os.path.basename(path), False)
        return None
    # the window ends when the engine stopped its collectors (not when its files were written)
    if held:
        agent.release(target.pid)
    start, end = ctx.results["window_times"]
    if not o.keep_raw:
        shutil.rmtree(run.raw_dir, ignore_errors=True)
    # the profile just written to profile.folded (not read back from it: the same stacks)
    primary = run.record.profile.primary if run.record.profile else None
    profile = ctx.profiles.get(primary) if primary else None
    if profile is None:
        profile = load_run_profile(run)
    if profile is None:
        from profkit.model import Profile

        profile = Profile()
    window = Window(profile=profile, labels=labels, start=start, end=end, mode=o.mode, rate=o.rate,
                    run_dir=Path(path) if agent.output else None, sequence=seq)
    entry = index_entry(rel_dir=rel, start=start, end=end, labels=labels, mode=o.mode, rate=o.rate, unit=profile.unit,
                        samples=profile.total, status=run.record.status, sequence=seq, warnings=run.record.warnings)
    agent.window_done(window, entry, os.path.basename(path))
    if not agent.output:
        shutil.rmtree(path, ignore_errors=True)
    return window


def window_from_run(path: str) -> Optional[Window]:
    """The window of a run directory an agent left ``running`` (it was killed): its profiles are
    recovered from raw/ (as ``profkit render`` does) and it is marked interrupted."""
    from profkit.outputs import load_run_profile, recover_profiles
    from profkit.rundir import RunDir
    from profkit.timeparse import format_time, parse_time

    try:
        run = RunDir.open(path)
    except ProfkitError:
        return None
    r = run.record
    if r.status != "running" or not r.window or (r.owner is not None and r.owner.alive()):
        return None
    problems: List[str] = recover_profiles(run)
    run.warn("the agent was killed during this window; its profile was recovered from raw/ by the next agent"
             + (f" (not recovered: {'; '.join(problems)})" if problems else ""))
    start = parse_time(r.window["start"])
    end = datetime.fromtimestamp(os.path.getmtime(run.file("manifest.json")), timezone.utc)
    for raw in (run.file(x) for p in r.profilers for x in p.raw):
        if os.path.exists(raw):
            end = max(end, datetime.fromtimestamp(os.path.getmtime(raw), timezone.utc))
    r.window["end"] = format_time(end)
    run.finish("interrupted")
    profile = load_run_profile(run)
    if profile is None or not profile:
        return None
    return Window(profile=profile, labels=dict(r.window.get("labels") or {}), start=start, end=max(end, start),
                  mode=r.mode, rate=r.rate, run_dir=Path(path), sequence=int(r.window.get("sequence") or 0))

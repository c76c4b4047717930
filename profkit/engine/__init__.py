# SPDX-License-Identifier: Apache-2.0
"""The recording engine: the one lifecycle of every run (``attach``, ``run``, ``heap``, ``bench``).

    RunDir.create (status running)          ← the caller made the run record (targets, mode, …)
    start every probe                       profilers, metrics, load generator, heap tools, command
    wait: duration | stop request | every target gone | no essential probe still running
    stop every probe (reverse order)
    finish every probe                      each reads its raw captures and publishes results
    analyses (callables)                    heap.json, overhead, … from the published results
    profiles written                        profile.folded, profile-ID.folded, targets/<pid>-<name>/
    status decided here, once               interrupted | collector-error | complete
    reports rendered once, from the complete run directory (summary.md, report.html, SVG)

Only profkit's own child tools are ever signalled, never a target. Probes live in
:mod:`profkit.engine.probes`; how collectors are chosen in :mod:`profkit.engine.choose`.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, List, Optional, Sequence

from profkit.engine.losses import account_losses
from profkit.engine.probe import Probe, RunContext
from profkit.errors import DiskFull, EnvironmentProblem, ProfkitError
from profkit.outputs import record_disk_full
from profkit.rundir import RunDir
from profkit.targets import Target, parent_death_problem, process_state

__all__ = ["Analysis", "Probe", "Progress", "RunContext", "record"]

Progress = Callable[[float, float, str], None]
#: A step after the probes finished: reads ``ctx.results``/``ctx.profiles``, writes its own files.
Analysis = Callable[[RunContext], None]
#: How often the wait loop looks at the probes and the targets (seconds).
TICK = 0.5


def _start(ctx: RunContext, probes: Sequence[Probe]) -> List[Probe]:
    """Start each probe in turn (a delayed one only gets its record: the wait loop starts it);
    a failure is recorded (and aborts the run for ``must_start``)."""
    started: List[Probe] = []
    failures: List[ProfkitError] = []
    for p in probes:
        entry = p.attach_record(ctx)
        if p.delay > 0:
            entry.detail["delay_s"] = p.delay
            continue
        try:
            p.start(ctx)
        except ProfkitError as e:
            entry.fail(e.message)
            ctx.warn(f"{p.id}: {e.message}" + (f" ({e.hint})" if e.hint else "")
                     + (f"; so {p.without}" if p.without else ""))
            if p.must_start:
                _stop_all(started, "stop")
                ctx.run.finish("collector-error")
                raise
            if p.essential:
                failures.append(e)
            continue
        started.append(p)
    ctx.run.save()
    if not any(p.essential for p in started) and any(p.essential for p in probes if p.delay <= 0):
        _stop_all(started, "stop")
        for p in started:
            _finish_one(ctx, p)
        ctx.run.finish("collector-error")
        raise failures[0] if failures else EnvironmentProblem("no profiler could start")
    return started


def _stop_all(probes: Sequence[Probe], reason: str) -> None:
    for p in reversed(probes):
        p.stop(reason)


def _finish_one(ctx: RunContext, p: Probe) -> None:
    try:
        p.finish(ctx)
    except ProfkitError as e:
        p.attach_record(ctx).fail(e.message)
        ctx.warn(f"{p.id}: {e.message}" + (f" ({e.hint})" if e.hint else "") + (f"; so {p.without}" if p.without else ""))
    else:
        if p.entry is not None and p.entry.status == "running":
            p.entry.status = "ok"


def _start_late(ctx: RunContext, pending: List[Probe], started: List[Probe], elapsed: float) -> None:
    """Start the delayed probes whose time has come, recording when (seconds since the run's
    start: ``started_s`` when asked, ``attached_s`` once running)."""
    for p in [p for p in pending if p.delay <= elapsed]:
        pending.remove(p)
        p.attach_record(ctx).detail["started_s"] = round(elapsed, 3)
        delay, p.delay = p.delay, 0.0
        if _start(ctx, [p]):
            started.append(p)
            p.attach_record(ctx).detail["attached_s"] = round(time.monotonic() - ctx.t0, 3)
        p.delay = delay
        ctx.run.save()


def _wait(ctx: RunContext, probes: List[Probe], progress: Optional[Progress], watch_targets: bool,
          pending: Optional[List[Probe]] = None, tick: float = TICK) -> str:
    """Wait until the run should end; returns why: ``stop``, ``duration``, ``targets-gone`` or ``done``.
    ``pending`` probes are started (and appended to ``probes``) when their delay has passed. It looks
    every ``tick`` seconds, and wakes at once on a stop and on time for the duration and the delays."""
    essential = [p for p in probes if p.essential] or list(probes)
    pending = pending if pending is not None else []
    while True:
        elapsed = time.monotonic() - ctx.t0
        if pending and not ctx.stop.is_set():
            _start_late(ctx, pending, probes, elapsed)
            elapsed = time.monotonic() - ctx.t0
        if ctx.stop.is_set():
            return "stop"
        if elapsed >= ctx.duration:
            return "duration"
        if watch_targets and all(process_state(pid) in (None, "Z") for pid in ctx.pids):
            return "targets-gone"
        for p in probes:  # when each profiler's tool ended, for the losses (engine/losses.py)
            if p.kind == "profiler" and p.ended_s is None and not p.poll():
                p.ended_s = round(elapsed, 3)
        if not any(p.poll() for p in essential):
            return "done"
        if progress is not None:
            status = " · ".join(s for s in (p.status() for p in probes) if s) or "recording"
            progress(elapsed, max(0.0, ctx.duration - elapsed), status)
        wake = min([tick, ctx.duration - elapsed] + [p.delay - elapsed for p in pending])
        ctx.stop.wait(max(0.01, wake))


def record(run: RunDir, targets: List[Target], probes: Sequence[Probe], *, duration: float,
           stop: Optional[threading.Event] = None, progress: Optional[Progress] = None,
           analyses: Sequence[Analysis] = (), render: bool = True, watch_targets: bool = True,
           tick: float = TICK) -> RunContext:
    """Run ``probes`` against ``targets`` for up to ``duration`` seconds and write ``run``.
    ``tick``: how often the wait looks at the probes and the targets (``profkit agent``'s windows,
    whose profilers end by themselves with their target, look less often).

    Returns the context (profiles and results) whatever happened to the probes; raises only
    when nothing essential could be started at all (the run directory then records why).
    A full disk while writing raises :class:`~profkit.errors.DiskFull` after recording, where
    it can, what was not written.
    """
    from profkit.outputs import render_run, write_profiles

    ctx = RunContext(run, list(targets), stop or threading.Event(), duration)
    problem = parent_death_problem()
    if problem:
        ctx.warn(f"the tools profkit starts will not stop by themselves if profkit is killed: {problem}")
    ctx.t0, ctx.t0_epoch = time.monotonic(), time.time()
    started = _start(ctx, probes)
    pending = [p for p in probes if p.delay > 0]
    why = "stop"
    try:
        why = _wait(ctx, started, progress, watch_targets, pending, tick)
    finally:
        _stop_all(started, why if not ctx.stop.is_set() else "stop")
    ctx.elapsed = time.monotonic() - ctx.t0
    run.record.duration = round(ctx.elapsed, 3)
    if why == "targets-gone":
        ctx.warn("the target exited during the run; what was recorded covers the time until then")
    for p in pending:
        ctx.warn(f"{p.id} was to start {p.delay:g} s into the run, which ended before" + (f"; so {p.without}" if p.without else ""))
    for p in started:
        _finish_one(ctx, p)
    lost = account_losses(ctx, started, why, run.record.rate or 100.0)
    full: Optional[DiskFull] = None
    try:
        for analysis in analyses:
            analysis(ctx)
        write_profiles(run, ctx.profiles, ctx.profiler_order, ctx.per_target, save=False)  # run.finish saves
    except DiskFull as e:
        full = e
    # a collector that failed or lost part of the run (engine/losses.py) makes it collector-error
    failed = lost or any(p.status in ("failed", "partial") for p in run.record.probes)
    status = "interrupted" if ctx.stop.is_set() else ("collector-error" if failed else "complete")
    if full is not None:
        record_disk_full(run, full)
    run.finish(status)
    if render:
        try:
            render_run(run)
        except DiskFull:
            # render_run said what it could not write; a run without its reports is not complete
            try:
                run.finish("interrupted")
            except DiskFull:
                pass
            raise
    return ctx

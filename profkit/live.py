# SPDX-License-Identifier: Apache-2.0
"""Live profiling (``attach``, ``run``, and the profiling side of ``bench``): which targets,
which probes, then the recording engine.

    resolve targets (pids, --name, --children)  ─ never profkit, its ancestors or its own tools
    choose collectors for (runtime, mode)       ─ profkit.engine.choose
    RunDir.create with the run record           ─ status running
    engine.record: profilers + metrics (+ the launched command, + a load generator …)
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from profkit.engine import Analysis, Probe, Progress, RunContext, record
from profkit.engine.choose import MODES, choose_collectors, record_options
from profkit.engine.probes import CommandProbe, MetricsProbe, ProfilerProbe
from profkit.errors import TargetNotFound, UsageError
from profkit.rundir import RunDir, default_run_path
from profkit.runrecord import RunRecord, TargetRecord
from profkit.targets import Target, children_of, find_by_name, inspect

__all__ = ["MODES", "SessionOptions", "new_run", "profiler_probes", "resolve_targets", "run_session",
           "target_records"]


@dataclass(frozen=True)
class SessionOptions:
    """What a live run does; filled from the ``attach``/``run``/``bench`` flags."""

    duration: float = 30.0
    rate: int = 100
    mode: str = "cpu"
    collectors: Tuple[str, ...] = ()
    output: Optional[str] = None
    interval: float = 1.0
    #: record-option values given on the command line, by field name; each applies to every
    #: chosen collector whose RecordOptions has that field
    record_options: Dict[str, object] = field(default_factory=dict)
    #: ``--label service=``: pid → the name its process is keyed by (pid 0: every target)
    services: Dict[int, str] = field(default_factory=dict)
    #: ``--app``/``--lib`` patterns of the conclusions (recorded in the run record)
    attribution: Dict[str, List[str]] = field(default_factory=dict)


def resolve_targets(pids: Sequence[int], name: Optional[str], children: bool) -> List[Target]:
    """The processes to profile: given PIDs, plus those matching ``name``, plus children."""
    wanted: List[int] = list(pids)
    if name:
        found = find_by_name(name)
        if not found:
            raise TargetNotFound(f"no process matches --name {name!r}",
                                 hint="the pattern is a regex searched in each command line (see ps -eo args)")
        wanted += found
    if not wanted:
        raise UsageError("give --pid PID (repeatable) or --name PATTERN")
    targets = [inspect(pid) for pid in dict.fromkeys(wanted)]
    if children:
        for t in list(targets):
            for kid in children_of(t.pid):
                if kid not in {x.pid for x in targets}:
                    try:
                        targets.append(inspect(kid))
                    except TargetNotFound:
                        pass  # a child that ended between listing and reading it
    return targets


def target_records(targets: Sequence[Target]) -> List[TargetRecord]:
    """The run record's view of the targets."""
    return [TargetRecord(t.pid, t.name, t.runtime, list(t.cmdline), t.exe) for t in targets]


def new_run(targets: Sequence[Target], output: Optional[str], *, mode: str, rate: Optional[float],
            duration: float, interval: Optional[float] = None, services: Optional[Dict[int, str]] = None) -> RunDir:
    """Create the run directory (``-o`` or ``runs/<time>-<pid>-<name>/``) with its first record.
    ``services`` (``--label service=``) names processes by pid (0: every target)."""
    first = targets[0]
    rec = RunRecord(mode=mode, rate=rate, interval=interval, duration_requested=duration,
                    targets=target_records(targets))
    services = services or {}
    unknown = sorted(set(services) - {0} - {t.pid for t in targets})
    if unknown:
        raise UsageError(f"--label service={unknown[0]}:…: PID {unknown[0]} is not a target of this run")
    for t in rec.targets:
        t.service = services.get(t.pid, services.get(0))
    return RunDir.create(output or default_run_path(first.pid, first.name), rec)


def profiler_probes(targets: Sequence[Target], options: SessionOptions) -> Tuple[List[ProfilerProbe], List[str]]:
    """The profiler probes for the targets and options, and warnings for record options that no
    chosen collector has."""
    runtimes = {t.runtime for t in targets}
    if len(runtimes) > 1 and not options.collectors:
        raise UsageError(f"the targets mix runtimes ({', '.join(sorted(runtimes))}); name the collector with --collector")
    chosen = choose_collectors(targets[0].runtime, options.mode, options.collectors, options.record_options)
    used = {n for c, _ in chosen if c.RecordOptions is not None for n in c.RecordOptions.__dataclass_fields__}
    warnings = [f"--{n.replace('_', '-')} does not apply to {', '.join(c.id for c, _ in chosen)}; ignored"
                for n in sorted(set(options.record_options) - used)]
    probes = [ProfilerProbe(c, avail, options.mode, options.rate, record_options(c, options.record_options))
              for c, avail in chosen]
    return probes, warnings


def run_session(targets: List[Target], options: SessionOptions, *, stop: Optional[threading.Event] = None,
                progress: Optional[Progress] = None, launched=None, extra: Sequence[Probe] = (),
                analyses: Sequence[Analysis] = (), render: bool = True) -> Tuple[RunDir, RunContext]:
    """Profile ``targets`` for ``options.duration`` seconds (or until ``stop`` is set, they exit or
    every profiler ended) and write the run directory. ``extra`` probes (a load generator) run
    alongside; ``launched`` is the command ``profkit run`` started, stopped at the end."""
    probes, warnings = profiler_probes(targets, options)
    run = new_run(targets, options.output, mode=options.mode, rate=options.rate, duration=options.duration,
                  interval=options.interval, services=options.services)
    run.record.attribution = dict(options.attribution)
    for w in warnings:
        run.warn(w)
    everything: List[Probe] = ([CommandProbe(launched)] if launched is not None else [])
    everything += [*extra, MetricsProbe(options.interval), *probes]
    ctx = record(run, targets, everything, duration=options.duration, stop=stop, progress=progress,
                 analyses=analyses, render=render)
    return run, ctx

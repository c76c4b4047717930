# SPDX-License-Identifier: Apache-2.0
"""``profkit heap``: what is growing in a process, how fast, and when it will run out.

    probes of the run:  psutil RSS/USS (essential: the run lasts as long as it does)
                        JVM:    jcmd (VM flags, class histograms), jstat, an allocation profiler
                        Python: memray (attached with lldb, else gdb)
    engine.record       the one lifecycle (start, wait, stop, finish, status, render)
    analysis            growth.analyse per series → heap.json (heap.analysis, heap.jvm, heap.python)

Everything gathered is kept: a tool that fails becomes a warning in the run record and
heap.json still has the memory series; only a target that cannot be read at all is an error.
Only profkit's own children are signalled (jstat, jcmd, memray, async-profiler's jcmd calls).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Dict, List, Optional

from profkit.engine import Probe, Progress, RunContext, record
from profkit.engine.choose import choose_collectors, record_options
from profkit.engine.probes import MetricsProbe, ProfilerProbe
from profkit.errors import ProfkitError, UsageError
from profkit.heap.limits import limits_for, oom_kills
from profkit.rundir import RunDir
from profkit.targets import Target

__all__ = ["HeapOptions", "limits_for", "oom_kills", "run_heap"]


@dataclass(frozen=True)
class HeapOptions:
    """What ``profkit heap`` does; filled from its flags."""

    duration: float = 60.0
    interval: float = 1.0
    output: Optional[str] = None
    #: seconds at the start left out of the fit (None: a quarter of the window, at most 60 s)
    warmup: Optional[float] = None
    #: an allocation profile (memray for Python, async-profiler/JFR alloc for a JVM)
    allocations: bool = True
    #: Python: seconds measured with RSS/USS only before memray attaches (its own memory would
    #: inflate the growth rate); None: a third of the window; 0: memray from the start
    baseline: Optional[float] = None
    #: JVM: a heap dump (early when the heap is projected to run out before the end) → retaining paths
    heap_dump: bool = False
    #: keep the heap dump in raw/ (it holds the application's data: mode 0600)
    keep_dump: bool = False


def _probes(target: Target, options: HeapOptions, warnings: List[str]) -> List[Probe]:
    from profkit.heap.jvm import JcmdProbe, JstatProbe

    probes: List[Probe] = [MetricsProbe(options.interval, uss=True, children=False, essential=True)]
    if target.runtime == "jvm":
        from profkit.heap.oom import OomDumpProbe

        probes += [JcmdProbe(target.pid), JstatProbe(target.pid, options.interval), OomDumpProbe(target.pid)]
        if options.heap_dump:  # (a JVM only)
            from profkit.heap.dump import HeapDumpProbe

            probes.append(HeapDumpProbe(target.pid, keep=options.keep_dump))
    if options.heap_dump and target.runtime != "jvm":
        warnings.append(f"--heap-dump is for a JVM; {target.name} [{target.pid}] is {target.runtime or 'not a JVM'}: no heap dump")
    if options.allocations and target.runtime in ("jvm", "python"):
        mode = "alloc"
        try:
            (c, avail), = choose_collectors(target.runtime, mode, ())
        except ProfkitError as e:
            warnings.append(f"no allocation profile: {e.message}" + (f" ({e.hint})" if e.hint else ""))
        else:
            probe = ProfilerProbe(c, avail, mode, 100, record_options(c, {}), essential=False)
            probe.without = "no allocation profile" if target.runtime == "jvm" else "RSS/USS only (no memray heap)"
            if target.runtime == "python":
                probe.delay = baseline_seconds(options)
            probes.append(probe)
    return probes


def heap_dump_results(ctx: RunContext, heap: Dict[str, object], probe) -> None:
    """``heap.json``'s ``heap_dump`` and each top suspect's ``retained_by``, from the run's dump
    (deleted afterwards unless --keep-dump). A dump that cannot be read is a warning."""
    from profkit.heap.dump import analyse_dump

    if probe.result is None:
        heap["heap_dump"] = None
        return
    info: Dict[str, object] = dict(probe.result)
    try:
        heap.setdefault("suspects", [])
        info["analysis"] = analyse_dump(probe.host_path, heap["suspects"])  # type: ignore[arg-type]
    except ProfkitError as e:
        ctx.warn(f"heap dump not analysed: {e.message}")
        info["analysis"] = None
    finally:
        info["file"] = probe.dispose(ctx)
    heap["heap_dump"] = info


def baseline_seconds(options: HeapOptions) -> float:
    """How long a Python heap run watches RSS/USS alone before memray attaches."""
    if options.baseline is not None:
        return max(0.0, min(options.baseline, options.duration - 2 * options.interval))
    return round(options.duration / 3.0, 1) if options.duration >= 9 * options.interval else 0.0


def run_heap(target: Target, options: HeapOptions, *, stop: threading.Event,
             progress: Optional[Progress] = None) -> RunDir:
    """Sample ``target``'s memory for ``options.duration`` seconds (or until ``stop``), analyse the
    growth and write the run directory (heap.json, summary.md, report.html). Returns the RunDir."""
    from profkit.heap.analysis import analyse_heap
    from profkit.heap.jvm import suspects
    from profkit.heap.python import memray_results
    from profkit.live import new_run

    if not 0 < options.duration < float("inf"):
        raise UsageError("--duration must be a positive number of seconds")
    if options.interval <= 0 or options.interval > options.duration:
        raise UsageError("--interval must be positive and not longer than --duration")
    warnings: List[str] = []
    probes = _probes(target, options, warnings)
    run = new_run([target], options.output, mode="heap", rate=round(1.0 / options.interval, 2),
                  duration=options.duration, interval=options.interval)
    for w in warnings:
        run.warn(w)
    heap: Dict[str, object] = {"schema": 1, "pid": target.pid, "runtime": target.runtime, "interval": options.interval}

    def analyse(ctx: RunContext) -> None:
        oom = next((p for p in probes if p.id == "oom-dump"), None)
        if target.runtime == "jvm":
            alloc = next((ctx.profiles[c] for c in ctx.profiler_order if c in ctx.profiles), None)
            found = suspects(ctx.results.get("jvm") or {}, alloc, target.pid)
            if found:
                heap.update(found)
            dump = next((p for p in probes if p.id == "heap-dump"), None)
            if dump is not None:
                heap_dump_results(ctx, heap, dump)
        else:
            memray_results(ctx, heap)
        analyse_heap(ctx, heap, interval=options.interval, warmup=options.warmup)
        if oom is not None:
            from profkit.heap.oom import oom_results

            oom_results(ctx, heap, oom)
        ctx.run.write_json("heap.json", heap, indent=1)

    record(run, [target], probes, duration=options.duration, stop=stop, progress=progress, analyses=[analyse])
    return run

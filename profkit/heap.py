# SPDX-License-Identifier: Apache-2.0
"""``profkit heap``: what is growing in a process, how fast, and when it will run out.

    RunDir.create (mode heap, status running)
    start: psutil RSS/USS (a thread) ─┬─ JVM: VM.flags, class histogram, one jstat, alloc profile
                                      └─ Python: memray attach (lldb, else gdb)
    wait: duration | stop() (Ctrl-C / SIGTERM) | target gone
    stop everything; JVM: second class histogram; Python: memray capture → live allocations
    growth.analyse(series, limits) → heap.json; profile.folded (allocations, bytes) → outputs

Everything gathered is kept: a collector that fails becomes a warning in the manifest and
heap.json still has the memory series; only a target that cannot be read at all is an error.
Only profkit's own children are signalled (jstat, jcmd, memray, async-profiler's jcmd calls).
"""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable, Dict, List, Optional, Tuple

from profkit import growth
from profkit.errors import EnvironmentProblem, ProfkitError, UsageError
from profkit.model import Profile
from profkit.rundir import RunDir, default_run_path
from profkit.targets import Target, process_state

__all__ = ["HeapOptions", "limits_for", "oom_kills", "run_heap"]

#: Suspects listed in heap.json.
TOP_SUSPECTS = 15
#: Seconds to wait after the window for memray's tracker to end by itself (its attach took that long).
MEMRAY_WAIT = 15.0


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


# -- limits and OOM kills (all read from /proc and /sys; nothing touches the target) --------
def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def _cgroup_dir(pid: int) -> Optional[str]:
    text = _read(f"/proc/{pid}/cgroup") or ""
    for line in text.splitlines():
        if line.startswith("0::"):  # cgroup v2 (unified)
            return "/sys/fs/cgroup" + line[3:].strip()
    return None


def limits_for(pid: int, max_heap: Optional[int] = None) -> List[growth.Limit]:
    """The memory limits that apply to a process: -Xmx (given), cgroup memory.max, RLIMIT_AS, RAM."""
    out: List[growth.Limit] = []
    if max_heap:
        out.append(growth.Limit("-Xmx", int(max_heap), "jcmd VM.flags MaxHeapSize"))
    cg = _cgroup_dir(pid)
    if cg:
        text = (_read(os.path.join(cg, "memory.max")) or "").strip()
        if text.isdigit():
            out.append(growth.Limit("cgroup memory.max", int(text), os.path.join(cg, "memory.max")))
    for line in (_read(f"/proc/{pid}/limits") or "").splitlines():
        if line.startswith("Max address space"):
            soft = line.split()[3]
            if soft.isdigit():
                out.append(growth.Limit("RLIMIT_AS", int(soft), f"/proc/{pid}/limits"))
    try:
        import psutil

        out.append(growth.Limit("machine RAM", int(psutil.virtual_memory().total), "/proc/meminfo"))
    except Exception:
        pass
    return out


def oom_kills(pid: int) -> Optional[dict]:
    """The cgroup's ``memory.events`` OOM counters (``oom``, ``oom_kill``), or None without cgroup v2."""
    cg = _cgroup_dir(pid)
    text = _read(os.path.join(cg, "memory.events")) if cg else None
    if text is None:
        return None
    events = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
    return {"oom": int(events.get("oom", 0)), "oom_kill": int(events.get("oom_kill", 0)),
            "source": os.path.join(cg, "memory.events")}


# -- the run -----------------------------------------------------------------------------------
class _Parts:
    """What a heap run started, so that everything is stopped whatever happens."""

    def __init__(self):
        self.metrics = None
        self.jstat = None
        self.alloc: Optional[Tuple[object, object]] = None   # (collector, Recording)
        self.memray = None
        self.t0_epoch = time.time()
        self.t0 = time.monotonic()
        self.jstat_offset = 0.0

    def stop(self) -> None:
        for part in (self.alloc[1] if self.alloc else None, self.memray, self.jstat, self.metrics):
            if part is not None:
                try:
                    part.stop()
                except ProfkitError:
                    pass


def run_heap(target: Target, options: HeapOptions, *, stop: threading.Event,
             progress: Optional[Callable[[float, float, str], None]] = None) -> RunDir:
    """Sample ``target``'s memory for ``options.duration`` seconds (or until ``stop``), analyse the
    growth and write the run directory (heap.json, summary.md, report.html). Returns the RunDir."""
    if options.duration <= 0:
        raise UsageError("--duration must be positive")
    if options.interval <= 0 or options.interval > options.duration:
        raise UsageError("--interval must be positive and not longer than --duration")
    from collectors.base import RecordRequest
    from collectors.psutil_metrics import PsutilCollector, PsutilOptions

    pid, runtime = target.pid, target.runtime
    run = RunDir.create(options.output or default_run_path(pid, target.name),
                        target={"pids": [pid], "runtime": runtime, "name": target.name, "cmdline": target.cmdline,
                                "exe": target.exe},
                        mode="heap", rate=round(1.0 / options.interval, 2), interval=options.interval, duration_requested=options.duration)
    parts = _Parts()
    heap: Dict[str, object] = {"schema": 1, "pid": pid, "runtime": runtime, "interval": options.interval}
    jvm_state: Dict[str, object] = {}
    gone = False
    try:
        parts.metrics = PsutilCollector().record(RecordRequest(
            (pid,), runtime, "heap", 1, options.duration + 5, run.path,
            PsutilOptions(interval=options.interval, children=False, uss=True)))
        run.collector_entry("psutil")["commands"] = parts.metrics.commands
        if runtime == "jvm":
            _start_jvm(run, target, options, parts, jvm_state)
        elif runtime == "python" and options.allocations:
            _start_memray(run, target, options, parts)
        run.save()
        while True:
            elapsed = time.monotonic() - parts.t0
            if stop.is_set() or elapsed >= options.duration:
                break
            if process_state(pid) in (None, "Z"):
                gone = True
                break
            if progress:
                last = parts.metrics.last or {}
                status = f"RSS {(last.get('rss') or 0) / 2**20:.0f} MiB"
                if last.get("uss"):
                    status += f", USS {last['uss'] / 2**20:.0f} MiB"
                progress(elapsed, max(0.0, options.duration - elapsed), status)
            stop.wait(min(0.5, options.interval))
    finally:
        interrupted = stop.is_set()
        parts.stop()
    run.manifest["duration"] = round(time.monotonic() - parts.t0, 3)
    if gone:
        run.warn("the target exited during the run; the report covers the time until then")
    profile: Optional[Profile] = None
    if runtime == "jvm":
        profile = _finish_jvm(run, target, parts, jvm_state, heap, gone)
    elif runtime == "python" and parts.memray is not None:
        profile = _finish_memray(run, parts, heap)
    parts.metrics.finish()
    _analyse(run, target, options, parts, heap, jvm_state)
    _write_json(run.file("heap.json"), heap)
    errors = [e for e in run.manifest.get("collectors", []) if e.get("status") == "failed"]
    run.finish("interrupted" if interrupted else ("collector-error" if errors else "complete"))
    from profkit.outputs import write_outputs

    profiles = {profile.meta.collector or "alloc": profile} if profile is not None else {}
    write_outputs(run, profiles, list(profiles), [target], None)
    return run


def _fail(run: RunDir, cid: str, e: ProfkitError, what: str) -> None:
    entry = run.collector_entry(cid)
    entry["status"] = "failed"
    entry["error"] = e.message
    run.warn(f"{what}: {e.message}" + (f" ({e.hint})" if e.hint else ""))


# -- JVM ---------------------------------------------------------------------------------------
def _start_jvm(run: RunDir, target: Target, options: HeapOptions, parts: _Parts, state: Dict[str, object]) -> None:
    from collectors.jvm_heap import JstatStream, class_histogram, vm_flags

    pid = target.pid
    try:
        state["flags"] = vm_flags(pid)
        run.collector_entry("jcmd")["commands"] = [["jcmd", str(pid), "VM.flags"], ["jcmd", str(pid), "GC.class_histogram"]]
    except ProfkitError as e:
        _fail(run, "jcmd", e, "JVM flags unavailable (no -Xmx limit, no class histograms)")
        state["jcmd_failed"] = True
    started = time.monotonic()
    try:
        parts.jstat = JstatStream(pid, options.interval, options.duration, run.raw_dir)
        parts.jstat_offset = started - parts.t0
        run.collector_entry("jstat")["commands"] = [parts.jstat.argv]
    except ProfkitError as e:
        _fail(run, "jstat", e, "JVM heap pools unavailable")
    if not state.get("jcmd_failed"):
        try:
            state["hist_start"] = class_histogram(pid, os.path.join(run.raw_dir, f"histogram-start-{pid}.txt"))
            state["hist_start_t"] = time.monotonic() - parts.t0
        except ProfkitError as e:
            _fail(run, "jcmd", e, "class histogram at the start failed")
    if options.allocations:
        _start_alloc_profile(run, target, options, parts)


def _start_alloc_profile(run: RunDir, target: Target, options: HeapOptions, parts: _Parts) -> None:
    """The JVM allocation flame graph, through the live-profiling collectors (async-profiler alloc, else JFR)."""
    from collectors.base import RecordRequest
    from profkit.session import _record_options, choose_collectors

    try:
        (c, avail), = choose_collectors("jvm", "alloc", ())
        entry = run.collector_entry(c.id)
        entry["version"] = avail.version
        rec = c.record(RecordRequest((target.pid,), "jvm", "alloc", 100, options.duration, run.raw_dir,
                                     _record_options(c, {})))
        entry["commands"] = rec.commands
        parts.alloc = (c, rec)
    except ProfkitError as e:
        _fail(run, "alloc", e, "no allocation flame graph")


def _finish_jvm(run: RunDir, target: Target, parts: _Parts, state: Dict[str, object], heap: Dict[str, object],
                gone: bool) -> Optional[Profile]:
    from collectors.jvm_heap import class_histogram, diff_histograms, parse_jstat

    pid = target.pid
    if parts.jstat is not None:
        err = parts.jstat.error()
        with open(parts.jstat.path, encoding="utf-8", errors="replace") as fh:
            state["jstat_rows"] = parse_jstat(fh.read())
        if err and not state["jstat_rows"] and not gone:
            run.warn(f"jstat: {' '.join(err.split())[:200]}")
    profile = None
    if parts.alloc is not None:
        profile = _finish_alloc(run, target, parts)
    if "hist_start" in state and not gone and process_state(pid) not in (None, "Z"):
        try:
            state["hist_end"] = class_histogram(pid, os.path.join(run.raw_dir, f"histogram-end-{pid}.txt"))
            state["hist_end_t"] = time.monotonic() - parts.t0
        except ProfkitError as e:
            _fail(run, "jcmd", e, "class histogram at the end failed")
    if "hist_end" in state:
        span = max(1e-3, float(state["hist_end_t"]) - float(state["hist_start_t"]))
        rows = diff_histograms(state["hist_start"], state["hist_end"], top=TOP_SUSPECTS)
        sites = _alloc_sites(profile) if profile is not None else {}
        heap["suspects"] = [{
            "name": r.name, "kind": "application class" if r.application else "JDK or array type",
            "site": sites.get(r.name, ""), "bytes": r.bytes_end, "instances": r.instances_end,
            "growth": {"bytes": r.bytes_growth, "instances": r.instances_growth,
                       "bytes_per_min": round(r.bytes_growth * 60 / span, 1)},
            "holder": r.holder,
        } for r in rows]
        heap["histograms"] = {"start_s": round(float(state["hist_start_t"]), 2), "end_s": round(float(state["hist_end_t"]), 2),
                              "live_bytes_start": sum(b for _, b in state["hist_start"].values()),
                              "live_bytes_end": sum(b for _, b in state["hist_end"].values()),
                              "files": [f"raw/histogram-start-{pid}.txt", f"raw/histogram-end-{pid}.txt"]}
    elif "hist_start" in state:
        run.warn("no class histogram at the end (the target exited): no JVM leak suspects")
    return profile


def _finish_alloc(run: RunDir, target: Target, parts: _Parts) -> Optional[Profile]:
    from profkit.session import SessionOptions, _parse_raws

    c, rec = parts.alloc
    entry = run.collector_entry(c.id)
    try:
        raws = rec.finish()
    except ProfkitError as e:
        _fail(run, c.id, e, "allocation profile")
        raws = [os.path.join(run.raw_dir, f) for f in run.raw_files() if f.startswith(c.id)]
    entry["raw"] = [os.path.relpath(r, run.path) for r in raws]
    try:
        profile = _parse_raws(c, raws, [target], SessionOptions(mode="alloc", duration=run.manifest.get("duration", 0)))
        entry.setdefault("status", "ok")
        return profile
    except ProfkitError as e:
        _fail(run, c.id, e, "allocation profile")
        return None


def _alloc_sites(profile: Profile) -> Dict[str, str]:
    """Allocated class → the frame that allocates most of it (the caller of the class leaf frame)."""
    by_class: Dict[str, Dict[str, float]] = {}
    for stack, w in profile.stacks():
        if len(stack) < 2:
            continue
        leaf = stack[-1].name.replace("/", ".")
        parent = stack[-2].name
        # the allocating frame is the innermost frame that is not the JDK's own allocation code
        for frame in reversed(stack[:-1]):
            if not frame.name.replace("/", ".").startswith(("java.", "jdk.", "sun.", "com.sun.")):
                parent = frame.name
                break
        by_class.setdefault(leaf, {}).setdefault(parent, 0)
        by_class[leaf][parent] += w
    return {cls: max(sites.items(), key=lambda kv: kv[1])[0] for cls, sites in by_class.items()}


# -- Python --------------------------------------------------------------------------------------
def _start_memray(run: RunDir, target: Target, options: HeapOptions, parts: _Parts) -> None:
    import collectors
    from collectors.base import RecordRequest
    from collectors.memray import MemrayRecordOptions

    entry = run.collector_entry("memray")
    try:
        c = collectors.get("memray")
        avail = c.check("python", "heap")
        entry["version"] = avail.version
        if not avail.ok:
            raise EnvironmentProblem(f"memray cannot run: {avail.reason}", hint=avail.hint or None)
        t = time.monotonic()
        left = max(1.0, options.duration - (t - parts.t0))
        parts.memray = c.record(RecordRequest((target.pid,), "python", "alloc", 1, left, run.raw_dir,
                                              MemrayRecordOptions()))
        entry["commands"] = parts.memray.commands
        entry["attach_seconds"] = round(time.monotonic() - t, 2)
    except ProfkitError as e:
        _fail(run, "memray", e, "memray unavailable, RSS/USS only")


def _finish_memray(run: RunDir, parts: _Parts, heap: Dict[str, object]) -> Optional[Profile]:
    from collectors.memray import live_allocations, memory_snapshots

    entry = run.collector_entry("memray")
    entry["commands"] = parts.memray.commands
    left = parts.memray.remaining()
    if left > MEMRAY_WAIT:
        # never detached (a second injection can crash the target): it ends by itself
        _fail(run, "memray", EnvironmentProblem(
            f"the memray tracker in the target ends by itself in {left:.0f} s; its capture will then be complete in "
            f"{', '.join(os.path.relpath(p, run.path) for p in parts.memray.raw.values())}"), "memray capture not read")
        return None
    try:
        raws = parts.memray.finish(timeout=left + 20)
    except ProfkitError as e:
        _fail(run, "memray", e, "memray capture")
        return None
    entry["raw"] = [os.path.relpath(r, run.path) for r in raws]
    if not raws:
        _fail(run, "memray", EnvironmentProblem("memray wrote no capture"), "memray capture")
        return None
    try:
        profile = live_allocations(raws[0])
        snaps = memory_snapshots(raws[0])
    except ProfkitError as e:
        _fail(run, "memray", e, "memray capture")
        return None
    entry["status"] = "ok"
    heap["memray_series"] = [{"t": round(s["time"] - parts.t0_epoch, 3), "heap": s["heap"], "rss": s["rss"]}
                             for s in _thin(snaps, 600)]
    window = max(1e-3, (snaps[-1]["time"] - snaps[0]["time"]) if len(snaps) > 1 else run.manifest.get("duration", 1))
    by_stack = sorted(((w, stack) for stack, w in profile.stacks()), key=lambda x: -x[0])
    suspects = []
    for w, stack in by_stack:
        if stack[-1].name.startswith("["):
            continue
        name, _, where = stack[-1].name.rpartition(" (")
        suspects.append({"name": name, "site": where.rstrip(")"), "bytes": int(w),
                         "growth": {"bytes": int(w), "bytes_per_min": round(w * 60 / window, 1)},
                         "stack": [f.name for f in reversed(stack[-8:])]})
        if len(suspects) >= TOP_SUSPECTS:
            break
    heap["suspects"] = suspects
    profile.meta.collector = "memray"
    return profile


def _thin(rows: List[dict], limit: int) -> List[dict]:
    if len(rows) <= limit:
        return rows
    step = len(rows) / limit
    return [rows[int(i * step)] for i in range(limit)] + [rows[-1]]


# -- analysis ------------------------------------------------------------------------------------
def _metrics_series(run: RunDir, parts: _Parts) -> List[dict]:
    from collectors.psutil_metrics import read_metrics

    path = run.file("metrics.jsonl")
    rows = list(read_metrics(path)) if os.path.exists(path) else []
    if rows:
        # align the thread's clock with the run's: its first record's wall time
        try:
            first = datetime.fromisoformat(rows[0]["time"]).timestamp() - rows[0]["t"]
            shift = first - parts.t0_epoch
        except (KeyError, ValueError):
            shift = 0.0
        for r in rows:
            r["t"] = round(r["t"] + shift, 3)
    return [{"t": r["t"], "rss": r.get("rss"), "uss": r.get("uss"),
             "cpu_pct": None if r.get("cpu_user_pct") is None else round(r["cpu_user_pct"] + r["cpu_system_pct"], 2)}
            for r in rows]


def _analyse(run: RunDir, target: Target, options: HeapOptions, parts: _Parts, heap: Dict[str, object],
             state: Dict[str, object]) -> None:
    pid = target.pid
    series = _metrics_series(run, parts)
    heap["series"] = series
    flags = state.get("flags") or {}
    max_heap = int(flags["MaxHeapSize"]) if str(flags.get("MaxHeapSize", "")).isdigit() else None
    limits = limits_for(pid, None)
    heap["limits"] = [{"name": lim.name, "bytes": lim.bytes, "source": lim.source} for lim in limits]
    rss_pts = [(r["t"], r["rss"]) for r in series if r.get("rss")]
    heap["rss"] = growth.analyse(rss_pts, limits, warmup=options.warmup, what="RSS")
    uss_pts = [(r["t"], r["uss"]) for r in series if r.get("uss")]
    if uss_pts:
        heap["uss"] = growth.analyse(uss_pts, limits, warmup=options.warmup, what="USS")
    primary = heap["rss"]
    heap["basis"] = "rss"
    rows = state.get("jstat_rows") or []
    if rows:
        t_first = rows[0]["jvm_t"] or 0.0
        jvm_series = []
        marks = []
        prev_gc = None
        for i, r in enumerate(rows):
            t = (r["jvm_t"] - t_first if r["jvm_t"] is not None else i * options.interval) + parts.jstat_offset + 0.3
            jvm_series.append({"t": round(t, 3), "heap_used": r["heap_used"], "heap_committed": r["heap_committed"],
                               "heap_max": max_heap, "pools": r["pools"], "gc_count": r["gc_count"],
                               "young_gc": r["young_gc"], "full_gc": r["full_gc"], "gc_time_s": r["gc_time_s"]})
            marks.append(prev_gc is not None and r["gc_count"] > prev_gc)
            prev_gc = r["gc_count"]
        heap["jvm_series"] = jvm_series
        heap_limits = ([growth.Limit("-Xmx", max_heap, "jcmd VM.flags MaxHeapSize")] if max_heap else []) + limits
        primary = growth.analyse([(r["t"], r["heap_used"]) for r in jvm_series], heap_limits, gc_marks=marks,
                                 warmup=options.warmup, what="heap")
        heap["jvm_heap"] = primary
        heap["basis"] = "jvm heap (post-GC floor)"
        heap["gc"] = {"count": rows[-1]["gc_count"] - rows[0]["gc_count"],
                      "time_s": round(rows[-1]["gc_time_s"] - rows[0]["gc_time_s"], 3)}
        primary = _check_live_set(primary, heap.get("histograms"))
    if "memray_series" in heap:
        pts = [(r["t"], r["heap"]) for r in heap["memray_series"]]
        heap["memray_heap"] = growth.analyse(pts, limits, warmup=options.warmup, what="Python heap")
    for key in ("classification", "fit", "limit", "projection", "reason", "warmup_s", "start_level"):
        if key in primary:
            heap[key] = primary[key]
    heap["basis_detail"] = primary.get("basis")
    heap.setdefault("suspects", [])
    heap["oom_events"] = oom_kills(pid)
    if heap["oom_events"] and heap["oom_events"]["oom_kill"]:
        run.warn(f"the cgroup has recorded {heap['oom_events']['oom_kill']} OOM kill(s) ({heap['oom_events']['source']})")
    if target.runtime == "jvm":
        dump = flags.get("HeapDumpOnOutOfMemoryError")
        heap["heap_dump_on_oom"] = dump == "true" if flags else None
        if flags and dump != "true":
            heap["advice"] = ["-XX:+HeapDumpOnOutOfMemoryError is off: add it (with -XX:HeapDumpPath=DIR) so that an "
                              "OutOfMemoryError leaves a heap dump to find what filled the heap"]
    heap["memray_overhead"] = _memray_cost(run)


def _check_live_set(verdict: dict, hist: Optional[dict]) -> dict:
    """Overrule a rising post-GC floor that the live set does not confirm.

    After a young collection, G1's used bytes still hold old-generation garbage until the next
    mixed or full collection, so over a short window that floor can rise without a leak. Each
    class histogram runs a full GC first: the totals at the start and the end are the live set.
    """
    if not hist or verdict.get("classification") == "steady":
        return verdict
    start, end = hist["live_bytes_start"], hist["live_bytes_end"]
    # the same 5% as the floor's own test, of the floor's starting level (a fresh JVM's live set
    # is a megabyte or two, of which a warming-up service's caches are already a good share)
    if end - start > growth.GROWTH_THRESHOLD * max(start, verdict.get("start_level") or 0, 1):
        return verdict
    out = dict(verdict)
    out["classification"] = "steady"
    out["reason"] = (f"{verdict['reason']}; but the live set after full GCs (class histograms) went only from "
                     f"{start / 2**20:.1f} to {end / 2**20:.1f} MiB: old-generation garbage, not a leak")
    out["projection"] = {"seconds_to_limit": None, "text": growth.projection_text(None, growth.Limit(
        **{k: verdict["limit"][k] for k in ("name", "bytes", "source")}) if verdict.get("limit") else None, None)}
    return out


def _memray_cost(run: RunDir) -> Optional[dict]:
    entry = next((e for e in run.manifest.get("collectors", []) if e.get("id") == "memray"), None)
    if not entry or entry.get("status") == "failed":
        return None
    return {"attach_seconds": entry.get("attach_seconds"),
            "note": "memray runs inside the target: its cost is in the target's CPU figures while it tracks"}


def _write_json(path: str, data: dict) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=1, sort_keys=True, default=str)
        fh.write("\n")
    os.replace(tmp, path)

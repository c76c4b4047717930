# SPDX-License-Identifier: Apache-2.0
"""``psutil``: process metrics once an interval — the USE view of a run.

For the target and (optionally) its children: CPU user/system (as % of one core over the
interval), the time their threads waited runnable for a CPU (the run queue: USE's CPU
saturation), RSS, USS where cheap, threads, open file descriptors, context switches and I/O
bytes; and the host's CPU pressure (PSI: the share of the interval some task waited for a CPU). One JSON object per interval, appended to ``metrics.jsonl`` and flushed as it goes.
It runs as a thread inside profkit (no child process) and only reads ``/proc``.
"""
from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from profkit.errors import Diagnostics, UsageError
from profkit.inputs import Source
from profkit.model import Profile
from profkit.options import option
from profkit.targets import children_of

from collectors.base import Availability, Collector, RecordRequest, Recording

__all__ = ["MetricsRecording", "PsutilCollector", "PsutilOptions", "read_metrics", "summarise"]

# Reading metrics.jsonl back is the reports' business too: it lives in profkit.metrics.
from profkit.metrics import read_metrics, summarise  # noqa: E402


@dataclass(frozen=True)
class PsutilOptions:
    """Options of the metrics sampler."""

    interval: float = option(1.0, "seconds between samples")
    children: bool = option(True, "include the target's child processes")
    uss: bool = option(False, "also read USS (unique set size; reads smaps_rollup, used by profkit heap)")


def _run_queue_ns(pid: int, seen: Dict[int, int]) -> Optional[int]:
    """Nanoseconds the threads of ``pid`` waited runnable for a CPU since the last call with the
    same ``seen`` (tid → that thread's total so far; updated): the second field of each
    ``/proc/PID/task/TID/schedstat``. A thread new since then counts from its start; one that
    exited in between loses its last interval. None where the kernel has no schedstat."""
    waited = 0
    now: Dict[int, int] = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as fh:
                total = int(fh.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        now[int(tid)] = total
        waited += max(0, total - seen.get(int(tid), 0))
    if not now:
        return None
    seen.clear()
    seen.update(now)
    return waited


def _host_cpu_pressure_us() -> Optional[int]:
    """Microseconds in which some task on the host waited runnable for a CPU (PSI ``some``
    total of ``/proc/pressure/cpu``); None where the kernel has no PSI."""
    try:
        with open("/proc/pressure/cpu", "rb") as fh:
            return int(fh.readline().rsplit(b"total=", 1)[1])
    except (OSError, IndexError, ValueError):
        return None


def _sample(proc, include_children: bool, cache: Dict[int, object], uss: bool = False):
    import psutil

    procs = [proc]
    if include_children:
        # /proc/PID/task/*/children, not psutil's children(), which reads every process on the
        # machine each time: this keeps profkit's own cost per sample flat.
        for pid in children_of(proc.pid):
            child = cache.get(pid)
            if child is None:
                try:
                    child = cache[pid] = psutil.Process(pid)
                except psutil.Error:
                    continue
            procs.append(child)
    out = {}
    for p in procs:
        try:
            with p.oneshot():
                cpu = p.cpu_times()
                mem = p.memory_info()
                ctx = p.num_ctx_switches()
                try:
                    io = p.io_counters()
                    rb, wb = io.read_bytes, io.write_bytes
                except (psutil.AccessDenied, AttributeError):
                    rb = wb = None
                try:
                    fds = p.num_fds()
                except psutil.AccessDenied:
                    fds = None
                out[p.pid] = {"user": cpu.user, "system": cpu.system, "rss": mem.rss, "threads": p.num_threads(),
                              "fds": fds, "ctx_vol": ctx.voluntary, "ctx_invol": ctx.involuntary,
                              "read_bytes": rb, "write_bytes": wb}
                if uss:
                    try:
                        out[p.pid]["uss"] = p.memory_full_info().uss
                    except psutil.AccessDenied:
                        out[p.pid]["uss"] = None
        except psutil.Error:
            continue
    return out


class MetricsRecording(Recording):
    """A sampler thread writing ``metrics.jsonl``; ends at the duration, on stop(), or when the targets exit."""

    def __init__(self, request: RecordRequest, options: PsutilOptions):
        import psutil

        self.request, self.options = request, options
        self.path = os.path.join(request.raw_dir, "metrics.jsonl")
        self.raw = {(request.pids[0] if request.pids else 0): self.path}
        self.commands = [["psutil", f"interval={options.interval}", f"children={options.children}"]]
        self._stop = threading.Event()
        self._procs = {}
        for pid in request.pids:
            try:
                self._procs[pid] = psutil.Process(pid)
            except psutil.NoSuchProcess:
                pass
        self._children: Dict[int, object] = {}
        self._queued: Dict[int, Dict[int, int]] = {}  #: pid → tid → run-queue ns so far (schedstat)
        self.last: Optional[dict] = None  #: the latest record, for progress displays
        self.samples = 0
        self.targets_alive = bool(self._procs)
        self._thread = threading.Thread(target=self._run, name="profkit-psutil", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        t0 = time.monotonic()
        prev: Dict[int, dict] = {}
        prev_t = t0
        prev_pressure: Optional[int] = None
        with open(self.path, "a", encoding="utf-8") as fh:
            while True:
                # stopped (the profilers ended): one last record, so that the CPU seconds cover the
                # whole run, unless the interval since the last one is too short to measure (CPU
                # times move in clock ticks)
                stopping = self._stop.is_set()
                now = time.monotonic()
                if stopping and prev and now - prev_t < min(0.2, self.options.interval / 2):
                    break
                per = {}
                for pid, proc in list(self._procs.items()):
                    if not proc.is_running():
                        del self._procs[pid]
                        continue
                    per.update(_sample(proc, self.options.children, self._children, self.options.uss))
                for pid, m in per.items():
                    m["runq_ns"] = _run_queue_ns(pid, self._queued.setdefault(pid, {}))
                for pid in set(self._queued) - set(per):
                    del self._queued[pid]
                if not self._procs:
                    self.targets_alive = False
                    break
                pressure = _host_cpu_pressure_us()
                dt = max(now - prev_t, 1e-6)
                rec = {"t": round(now - t0, 3), "time": datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                       "pids": sorted(per)}
                keys = ("rss", "threads", "fds", "ctx_vol", "ctx_invol", "read_bytes", "write_bytes")
                tot = {k: 0 for k in keys + (("uss",) if self.options.uss else ())}
                cpu_u = cpu_s = 0.0
                waited: Optional[float] = None  # run-queue seconds, where the kernel keeps schedstat
                for pid, m in per.items():
                    p = prev.get(pid)
                    if p:
                        cpu_u += m["user"] - p["user"]
                        cpu_s += m["system"] - p["system"]
                        if m["runq_ns"] is not None and p["runq_ns"] is not None:
                            waited = (waited or 0.0) + m["runq_ns"] / 1e9
                    for k in tot:
                        tot[k] += m.get(k) or 0
                rec.update({"cpu_user_pct": round(100 * cpu_u / dt, 2) if prev else None,
                            "cpu_system_pct": round(100 * cpu_s / dt, 2) if prev else None,
                            "cpu_wait_pct": round(100 * waited / dt, 2) if prev and waited is not None else None,
                            "host_cpu_pressure_pct": round(min(100.0, (pressure - prev_pressure) / 1e4 / dt), 2)
                            if prev and pressure is not None and prev_pressure is not None else None,
                            **tot})
                prev, prev_t, prev_pressure = per, now, pressure
                fh.write(json.dumps(rec, sort_keys=True) + "\n")
                fh.flush()
                self.last = rec
                self.samples += 1
                if stopping or now - t0 >= self.request.duration:
                    break
                self._stop.wait(self.options.interval)

    def poll(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()

    def finish(self, timeout: float = 30.0) -> List[str]:
        self._thread.join(timeout)
        return [self.path]


class PsutilCollector(Collector):
    """Process metrics (CPU, RSS, threads, fds, context switches, I/O) — always on during a run."""

    id = "psutil"
    summary = "process metrics once a second (CPU user/system, RSS, threads, fds, I/O): not stacks"
    RecordOptions = PsutilOptions
    #: it records process metrics beside every run, not stacks: "metrics" is no --mode
    modes = {"python": ("metrics",), "jvm": ("metrics",), "native": ("metrics",)}

    def check(self, runtime: str = "", mode: str = "", options: Any = None) -> Availability:
        try:
            import psutil
        except ImportError:
            return Availability(False, reason="psutil is not installed", hint="pip install psutil", kind="not-installed")
        refused = self.refusal(runtime, mode, psutil.__version__)
        if refused:
            return Availability(False, psutil.__version__, reason="psutil records process metrics (CPU, memory, threads), "
                                "not stacks; every run has them in metrics.jsonl", hint="choose a stack collector, or "
                                "none: the default for the runtime and mode", kind="unsupported")
        return Availability(True, version=psutil.__version__)

    def record(self, request: RecordRequest) -> MetricsRecording:
        return MetricsRecording(request, request.options or PsutilOptions())

    def parse(self, source: Source, options, diag: Diagnostics) -> Profile:
        raise UsageError("psutil metrics (metrics.jsonl) are not stacks; see summary.md of the run")

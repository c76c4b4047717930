# SPDX-License-Identifier: Apache-2.0
"""``profkit agent``: continuous profiling in windows, on the recording engine.

    every --window seconds:  re-resolve the targets (--pid/--name/--cgroup, --children)
                             one engine run per target (profkit.agent.window), its own run directory
    at each window's end:    labels → windows.jsonl → the spool → one sender per exporter
    on SIGINT/SIGTERM:       the windows in progress end now (partial, status interrupted), are
                             spooled, one final delivery within --flush-timeout; exit 0

perf and async-profiler (cpu, wall) stay attached and are cut at each window's end
(:mod:`profkit.agent.perfswitch`, :mod:`profkit.agent.asprofswitch`); py-spy, which writes only
when it ends, is restarted each window, the next run starting while the previous one still
samples (``overlap`` seconds), so no time goes unsampled; JFR and async-profiler's alloc and lock
windows take turns. ``benchmarks/bench_agent.py`` measures the gap or overlap each collector has.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Set, Tuple

from profkit.agent.spool import Sender, Spool, exporter_id
from profkit.agent.status import Status
from profkit.agent.targets import TargetSpec
from profkit.agent.windows import WINDOWS, append_index, ensure_private_dir, rotate
from profkit.errors import ProfkitError
from profkit.exporters.base import ExportOptions, Exporter, Window
from profkit.targets import Target

if TYPE_CHECKING:  # pragma: no cover
    from profkit.agent.asprofswitch import AsprofSession
    from profkit.agent.perfswitch import PerfSession

__all__ = ["Agent", "AgentOptions", "default_spool_dir"]

#: seconds by which a restarted collector's next window starts before the previous one ends
OVERLAP = 1.0


def default_spool_dir() -> str:
    """``$XDG_STATE_HOME/profkit/agent-spool`` (``~/.local/state/profkit/agent-spool``)."""
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(os.path.expanduser("~"), ".local", "state")
    return os.path.join(base, "profkit", "agent-spool")


@dataclass
class AgentOptions:
    spec: TargetSpec
    mode: str = "cpu"
    rate: int = 100
    window: float = 10.0
    duration: Optional[float] = None
    output: Optional[str] = None
    keep: Optional[int] = None
    keep_size: Optional[int] = None
    keep_raw: bool = False
    render: bool = False
    exports: Sequence[str] = ()
    labels: Dict[str, str] = field(default_factory=dict)
    spool_dir: Optional[str] = None
    spool_size: int = 200_000_000
    flush_timeout: float = 10.0
    collectors: Tuple[str, ...] = ()
    overlap: float = OVERLAP
    #: ``--threads``: a root frame per thread (each collector's own spelling), as attach's --threads
    threads: bool = False
    #: ``--timeline``: py-spy windows time each sample (timeline.bin), at the CPU cost of a
    #: per-sample capture and a time poll; without it py-spy writes its own folded profile
    timeline: bool = False
    export_options: ExportOptions = ExportOptions()


class Agent:
    """One agent run; :meth:`run` returns when --duration ends or ``stop`` is set."""

    def __init__(self, options: AgentOptions, status: Optional[Status] = None, stop: Optional[threading.Event] = None):
        from profkit.exporters import exporter_for

        self.options, self.status = options, status or Status()
        self.stop = stop or threading.Event()
        self.host = socket.gethostname()
        self.output = options.output
        self.exporters: Dict[str, Exporter] = {}
        for spec in options.exports:
            self.exporters.setdefault(exporter_id(spec), exporter_for(spec, options.export_options))
        spool_dir = options.spool_dir or (os.path.join(options.output, "spool") if options.output else default_spool_dir())
        self.root = ensure_private_dir(options.output) if options.output else ensure_private_dir(os.path.join(spool_dir, "work"))
        ensure_private_dir(os.path.join(self.root, WINDOWS))
        self.spool = Spool(ensure_private_dir(spool_dir), options.spool_size, self.exporters)
        self.lock = threading.Lock()
        self.active: Set[str] = set()
        self.failed_pids: Set[int] = set()
        self.senders = {eid: Sender(self.spool, eid, exp, max(1.0, options.window), self._export_result)
                        for eid, exp in self.exporters.items()}
        self.names = {eid: f"{exp.kind}" if sum(e.kind == exp.kind for e in self.exporters.values()) == 1
                      else f"{exp.kind}#{i}" for i, (eid, exp) in enumerate(self.exporters.items(), 1)}
        self.seq = 0
        self.perf: Dict[int, "PerfSession"] = {}
        self.asprof: Dict[int, "AsprofSession"] = {}
        self.locks: Dict[int, threading.Lock] = {}
        self.chosen: Dict[str, list] = {}
        self.choosing: Dict[str, threading.Lock] = {}

    # -- what windows report ------------------------------------------------------------------
    def busy(self, name: str, recording: bool) -> None:
        """Mark a window directory as being recorded (rotation leaves it alone) or not."""
        with self.lock:
            (self.active.add if recording else self.active.discard)(name)

    def window_done(self, window: Window, entry: Dict[str, object], name: str) -> None:
        """A window ended: index, rotation, spool, counters."""
        with self.lock:
            if self.output:
                append_index(self.root, entry)
                rotate(self.root, self.options.keep, self.options.keep_size, protect=self.active - {name})
            self.active.discard(name)
            self.status.windows += 1
            self.status.samples += window.profile.total
        self._spool(window)
        self.status.event("window", f"window of {window.labels.get('service')} [{window.labels.get('pid')}]: "
                          f"{window.profile.total:g} samples", dir=entry.get("dir"), pid=window.labels.get("pid"),
                          service=window.labels.get("service"), samples=window.profile.total,
                          start=entry.get("start"), end=entry.get("end"), status=entry.get("status"))

    def _spool(self, window: Window) -> None:
        if not self.exporters or not window.profile:
            return  # an empty window (the target idle, or gone) is in the index only
        _, dropped = self.spool.put(window)
        self.status.dropped = self.spool.dropped
        self.status.spool_bytes = self.spool.size()
        if dropped:
            self.status.event("dropped", f"the spool is full ({self.options.spool_size / 1e6:g} MB): dropped the "
                              f"{dropped} oldest window(s) not yet delivered ({self.spool.dropped} in all)",
                              important=True, dropped=dropped, dropped_total=self.spool.dropped)
        for s in self.senders.values():
            s.wake.set()

    def perf_session(self, pid: int) -> "PerfSession":
        """The perf kept attached to ``pid`` across windows (made on first use)."""
        from profkit.agent.perfswitch import PerfSession

        with self.lock:
            if pid not in self.perf:
                self.perf[pid] = PerfSession(pid, self.options.rate, ensure_private_dir(os.path.join(self.spool.path, "perf")),
                                             threads=self.options.threads)
            return self.perf[pid]

    def asprof_session(self, pid: int) -> "AsprofSession":
        """The async-profiler kept running in JVM ``pid`` across windows (made on first use; its
        state sits in the spool, so that the next agent can adopt a session a killed one left)."""
        from profkit.agent.asprofswitch import AsprofSession

        with self.lock:
            if pid not in self.asprof:
                self.asprof[pid] = AsprofSession(pid, self.options.mode, self.options.rate, ensure_private_dir(
                    os.path.join(self.spool.path, "async-profiler")), self.options.window, threads=self.options.threads)
            return self.asprof[pid]

    def _close_asprof(self, keep: Set[int]) -> None:
        with self.lock:
            sessions = [self.asprof.pop(pid) for pid in [p for p in self.asprof if p not in keep]]
        for s in sessions:
            s.close()

    def probes_for(self, target: Target):
        """Fresh profiler probes for a window of ``target``: the collectors are chosen (and checked,
        which runs each tool) once per runtime, then reused window after window."""
        from profkit.engine.choose import choose_collectors, record_options
        from profkit.engine.probes import ProfilerProbe

        with self.lock:
            choosing = self.choosing.setdefault(target.runtime, threading.Lock())
        with choosing:  # the first windows of several targets start at once: one check per runtime
            chosen = self.chosen.get(target.runtime)
            if chosen is None:
                chosen = self.chosen[target.runtime] = choose_collectors(target.runtime, self.options.mode,
                                                                         self.options.collectors, {})
        from collectors.pyspy_placed import AGENT_POLL

        given: Dict[str, object] = {"time_poll": AGENT_POLL,  # py-spy's cpu-mode time placement, if --timeline
                                    "timeline": self.options.timeline}
        if self.options.threads:
            given["threads"] = True
        return [ProfilerProbe(c, avail, self.options.mode, self.options.rate, record_options(c, given))
                for c, avail in chosen], []

    def exclusive(self, pid: int) -> threading.Lock:
        """The lock a window of ``pid`` holds while a collector that allows one session per
        process records it (async-profiler, JFR): the next window waits for it."""
        with self.lock:
            return self.locks.setdefault(pid, threading.Lock())

    def release(self, pid: int) -> None:
        lock = self.locks.get(pid)
        if lock is not None and lock.locked():
            try:
                lock.release()
            except RuntimeError:
                pass

    def _close_perf(self, keep: Set[int]) -> None:
        with self.lock:
            gone = [pid for pid in self.perf if pid not in keep]
            sessions = [self.perf.pop(pid) for pid in gone]
        for s in sessions:
            s.close()

    def window_failed(self, target: Target, e: ProfkitError) -> None:
        if target.pid not in self.failed_pids:
            self.failed_pids.add(target.pid)
            self.status.event("window-failed", f"{target.name} [{target.pid}]: {e.message}"
                              + (f" ({e.hint})" if e.hint else ""), important=True, pid=target.pid)

    def _export_result(self, eid: str, result: str, window: Optional[Window], message: str) -> None:
        name = self.names.get(eid, eid)
        sender = self.senders.get(eid)
        self.status.exports[name] = sender.last if sender else result
        self.status.spool_bytes = self.spool.size()
        if result == "refused":
            self.status.refused += 1
        if result != "sent" or (sender is not None and sender.failures and sender.sent == 1):
            self.status.event("export", f"{name}: {result}: {message}" if message else f"{name}: {result}",
                              important=result != "sent" and (result == "refused" or sender is None
                                                              or sender.failures == 1),
                              exporter=name, result=result, detail=message,
                              start=window.start.isoformat() if window else None)
        else:
            self.status.event("export", "", exporter=name, result=result,
                              start=window.start.isoformat() if window else None)

    # -- the loop -----------------------------------------------------------------------------
    def run(self) -> Dict[str, object]:
        """Profile until --duration or a stop; then flush the spool once. Returns a summary."""
        for s in self.senders.values():
            s.start()
        self._recover()
        t0 = time.monotonic()
        jobs: List[threading.Thread] = []
        k = 0
        o = self.options
        while not self.stop.is_set():
            elapsed = time.monotonic() - t0
            if o.duration is not None and o.duration - elapsed < min(1.0, o.window / 2):
                break  # too little left for a window of its own: the windows running now end it
            left = (o.duration - elapsed) if o.duration is not None else None
            length = o.window if left is None else min(o.window, left)
            last = left is not None and left <= o.window + 0.05
            jobs = [j for j in jobs if j.is_alive()]
            jobs += self._start_windows(length, 0.0 if last else o.overlap)
            k += 1
            self._wait_until(t0 + k * o.window if left is None or not last else t0 + o.duration)
        for j in jobs:
            j.join(timeout=max(30.0, o.window + 30))
        self._close_perf(set())
        self._close_asprof(set())
        return self._flush()

    def _start_windows(self, length: float, overlap: float) -> List[threading.Thread]:
        from profkit.agent.window import record_window

        try:
            targets = self.options.spec.resolve()
        except OSError as e:  # /proc changing under our feet: try again next window
            self.status.event("resolve-failed", f"could not list the targets this window: {e}", important=True)
            return []
        self.status.targets = len(targets)
        self._close_perf({t.pid for t in targets})
        self._close_asprof({t.pid for t in targets})
        if not targets:
            msg = f"waiting: no process matches {self.options.spec.describe()} yet"
            if self.status.waiting != msg:
                self.status.event("waiting", msg, important=True)
            self.status.waiting = msg
            return []
        if self.status.waiting:
            self.status.event("targets", f"profiling {', '.join(f'{t.name} [{t.pid}]' for t in targets)}", important=True)
        self.status.waiting = ""
        jobs = []
        for t in targets:
            self.seq += 1
            j = threading.Thread(target=record_window, args=(self, t, self.seq, length, overlap),
                                 name=f"profkit-window-{t.pid}", daemon=True)
            j.start()
            jobs.append(j)
        return jobs

    def _wait_until(self, when: float) -> None:
        """Until ``when`` (or a stop); the status line, on a terminal only, is redrawn every second."""
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= when:
                return
            self.status.show()
            self.stop.wait(min(1.0, when - now) if self.status.tty else when - now)

    def _recover(self) -> None:
        """Windows a killed agent left in -o DIR: recovered from raw/, indexed and spooled."""
        from profkit.agent.window import window_from_run
        from profkit.agent.windows import index_entry

        wdir = os.path.join(self.root, WINDOWS)
        for name in sorted(os.listdir(wdir)):
            w = window_from_run(os.path.join(wdir, name))
            if w is None:
                continue
            self.status.event("recovered", f"recovered window {name} left by an agent that was killed", important=True)
            self.window_done(w, index_entry(rel_dir=f"{WINDOWS}/{name}", start=w.start, end=w.end, labels=w.labels,
                                            mode=w.mode, rate=w.rate, unit=w.profile.unit, samples=w.profile.total,
                                            status="interrupted", sequence=w.sequence), name)

    def _flush(self) -> Dict[str, object]:
        """One final delivery of the whole spool within --flush-timeout; what remains stays spooled."""
        deadline = time.monotonic() + self.options.flush_timeout
        for s in self.senders.values():
            s.stop()
        for s in self.senders.values():
            s.join(timeout=max(0.1, deadline - time.monotonic()))
        for s in self.senders.values():
            if not s.is_alive():
                s.halt.clear()
                s.deliver_once(deadline)
        left = {self.names[eid]: len(self.spool.pending(eid)) for eid in self.senders}
        for e in self.exporters.values():
            e.close()
        self.status.spool_bytes = self.spool.size() if self.exporters else 0
        self.status.show()
        self.status.done()
        summary = {"windows": self.status.windows, "samples": self.status.samples, "dropped": self.spool.dropped,
                   "refused": self.status.refused, "left_in_spool": left,
                   "sent": {self.names[eid]: s.sent for eid, s in self.senders.items()}}
        kept = sum(left.values())
        self.status.event("stopped", f"stopped after {self.status.windows} windows"
                          + (f"; {kept} window deliveries stay spooled for the next run" if kept else ""),
                          important=True, **summary)
        return summary

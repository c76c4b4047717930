# SPDX-License-Identifier: Apache-2.0
"""async-profiler kept running in a JVM across the agent's windows (cpu and wall).

One session per JVM: async-profiler is started once with ``jfr,file=SPOOL/async-profiler/
async-profiler-PID.jfr`` and ``timeout=`` :data:`SESSION` seconds. At each window's end the
agent sends it ``dump``, which in JFR mode finishes the chunk being written and starts the next
one where it ended (async-profiler:src/flightRecorder.cpp ``switchChunk``) without stopping
the profiler; the window takes the finished chunks written since the last cut
(:func:`collectors.asprof_jfr.finished_chunks`) and its span is theirs: consecutive windows
abut to the nanosecond, each sample in exactly one. The bytes handed on are punched out of the
session file (``fallocate(PUNCH_HOLE)``), so its disk use stays one window's.

* A session nearing its own timeout is cut with ``stop`` instead, and the next window starts a
  new one: one seam per :data:`SESSION` seconds has the gap of that start (a jcmd call).
* The target exits: the window keeps the chunks finished by then (async-profiler 4.1 does not
  always finish its last one as the JVM exits: that part is lost, and said so).
* The agent stops (SIGINT/SIGTERM): the windows in progress are cut (their partial windows
  written), then each session is stopped; nothing stays loaded and running in the JVM.
* The agent is killed (SIGKILL): the JVM is not touched; its async-profiler keeps writing the
  session file until the session's own timeout stops it. The session's state file
  (``async-profiler-PID.json``: the JVM's start time, the file, the offset of the last cut) lets
  the next agent on the same spool adopt it: its first window is everything since the killed
  agent's last cut. A session of an agent whose state is gone is someone else's: the window
  fails with async-profiler's "already started" and the hint to stop it.
"""
from __future__ import annotations

import ctypes
import json
import os
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from profkit.engine.probe import Probe, RunContext
from profkit.errors import CollectorFailed, ProfkitError

__all__ = ["SESSION", "AsprofSession", "SwitchedAsprofProbe"]

#: seconds an async-profiler session runs (its own timeout=) before the agent starts a new one
SESSION = 3600.0
_PUNCH_HOLE = 0x02 | 0x01  # FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE


def _jvm_started(pid: int) -> Optional[str]:
    """The process's start time (field 22 of /proc/PID/stat): a restarted PID has another."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
        return stat[stat.rindex(")") + 2:].split()[19]
    except (OSError, ValueError, IndexError):
        return None


def _punch(path: str, length: int) -> None:
    """Free the disk blocks of the first ``length`` bytes of ``path`` (the file keeps its size)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
        try:
            libc.fallocate(fd, _PUNCH_HOLE, ctypes.c_long(0), ctypes.c_long(length))
        finally:
            os.close(fd)
    except (OSError, AttributeError):
        pass  # best effort: without it the file grows until the session ends (SESSION seconds)


class AsprofSession:
    """async-profiler in one JVM, cut at each window's end (see the module docstring)."""

    def __init__(self, pid: int, mode: str, rate: int, workdir: str, window: float, threads: bool = False):
        self.pid, self.mode, self.rate, self.workdir, self.window = pid, mode, rate, workdir, window
        self.threads = threads  #: --threads: a root frame [NAME tid=N] per thread, at parse (the JFR has them all)
        self.file = os.path.join(workdir, f"async-profiler-{pid}.jfr")
        self.state_file = os.path.join(workdir, f"async-profiler-{pid}.json")
        self.rec: Any = None
        self.offset = 0
        self.ends = 0.0  #: epoch seconds at which the session's own timeout stops it
        self.sessions = 0  #: sessions started (or adopted) by this agent
        self.adopted = False
        self.lock = threading.Lock()

    @property
    def event(self) -> str:
        return self.rec.event if self.rec is not None else self.mode

    @property
    def commands(self) -> List[List[str]]:
        return self.rec.commands if self.rec is not None else []

    def alive(self) -> bool:
        return self.rec is not None and self.rec.poll()

    def ensure(self) -> None:
        """Start async-profiler in the JVM (or adopt a killed agent's session) unless it runs."""
        from collectors.jvm import target_alive
        from profkit.errors import TargetNotFound

        with self.lock:
            if self.alive():
                return
            if self.rec is not None:  # ended by itself (the JVM exited, or its timeout)
                self._end()
            if not target_alive(self.pid):  # gone, or a zombie not reaped yet
                raise TargetNotFound(f"process {self.pid} exited")
            if not self._adopt():
                self._start()
            self.sessions += 1
            self._save()

    def _recording(self, duration: float, restart: bool = False):
        import collectors
        from collectors.async_profiler import AsyncProfilerRecording, AsyncProfilerRecordOptions
        from collectors.async_profiler_lib import find_library
        from collectors.base import RecordRequest
        from collectors.jvm import find_jdk_tool

        options = AsyncProfilerRecordOptions(capture="jfr", dump_interval=2 * SESSION, restart=restart)
        request = RecordRequest((self.pid,), "jvm", self.mode, self.rate, duration, self.workdir, options)
        jcmd = find_jdk_tool("jcmd")
        if jcmd is None:
            return collectors.get("async-profiler").record(request)  # raises its not-installed error
        return AsyncProfilerRecording(jcmd, find_library(), request, options)

    def _start(self) -> None:
        mine = self._state() is not None  # a killed agent's session past adoption: ours to replace
        for stale in (self.file, self.state_file):
            if os.path.exists(stale):
                os.unlink(stale)
        self.rec = self._recording(SESSION, restart=mine).begin()
        self.offset, self.adopted = 0, False
        self.ends = time.time() + self.rec.limit

    def _state(self) -> Optional[Dict[str, Any]]:
        try:
            with open(self.state_file, encoding="utf-8") as fh:
                state = json.load(fh)
        except (OSError, ValueError):
            return None
        if not isinstance(state, dict) or state.get("jvm_started") != _jvm_started(self.pid):
            return None
        return state

    def _adopt(self) -> bool:
        """Take over the session a killed agent left running in this JVM (same JVM, same file)."""
        from collectors.async_profiler_lib import loaded_agent

        state = self._state()
        left = float(state.get("ends", 0)) - time.time() if state else 0.0
        if not state or left < 2 * self.window + 5 or not loaded_agent(self.pid) or not os.path.exists(self.file):
            return False
        try:
            rec = self._recording(left)
        except ProfkitError:
            return False
        rec.event = state.get("event") or rec.event
        rec._describe()
        rec._started.append(self.pid)
        rec._ends[self.pid] = time.monotonic() + left
        self.rec, self.offset, self.ends, self.adopted = rec, int(state.get("offset", 0)), float(state["ends"]), True
        return True

    def _save(self) -> None:
        state = {"pid": self.pid, "jvm_started": _jvm_started(self.pid), "file": self.file, "offset": self.offset,
                 "ends": self.ends, "event": self.event, "agent": os.getpid()}
        tmp = self.state_file + ".tmp"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as fh:
            json.dump(state, fh)
        os.replace(tmp, self.state_file)

    def cut(self, dest: str) -> Tuple[Optional[str], float, float, Optional[ProfkitError]]:
        """End the window now: (``dest`` holding its chunks or None, its start, its end, a failure)."""
        from collectors.asprof_jfr import finished_chunks

        with self.lock:
            now = time.time()
            if self.rec is None:
                return None, now, now, None
            failure: Optional[ProfkitError] = None
            try:
                if self.rec._running(self.pid):
                    if self.ends - now < 2 * self.window + 5:
                        self.rec.stop()  # the next window starts a new session
                        self.rec.finish(timeout=10.0)
                    else:
                        with self.rec._lock:  # one agent call at a time (its log directory is one name)
                            self.rec._dump(self.pid)
                            self.rec._fetch(self.pid)
            except ProfkitError as e:
                failure = e
            except OSError as e:
                failure = ProfkitError(f"async-profiler dump: {e}")
            size = os.path.getsize(self.file) if os.path.exists(self.file) else 0
            with open(self.file if size else os.devnull, "rb") as fh:
                chunks = finished_chunks(lambda o, n: (fh.seek(o), fh.read(n))[1], self.offset, size)
                if not chunks:
                    return None, now, now, failure
                end = chunks[-1].offset + chunks[-1].size
                fh.seek(self.offset)
                with open(dest, "wb") as out:
                    left = end - self.offset
                    while left > 0:
                        block = fh.read(min(left, 1 << 20))
                        if not block:
                            break
                        out.write(block)
                        left -= len(block)
            self.offset = end
            _punch(self.file, end)
            if self.rec is not None and os.path.exists(self.state_file):
                self._save()
            return dest, chunks[0].start, chunks[-1].end, failure

    def _end(self) -> None:
        try:
            self.rec.finish(timeout=10.0)
        except ProfkitError:
            pass
        self.rec = None

    def close(self) -> None:
        """Stop async-profiler in the JVM (if it still runs) and remove the session's files."""
        with self.lock:
            if self.rec is not None:
                self.rec.stop()
                self._end()
            for path in (self.file, self.state_file):
                if os.path.exists(path):
                    os.unlink(path)


class SwitchedAsprofProbe(Probe):
    """One window's share of an :class:`AsprofSession`: ``stop`` cuts, ``finish`` parses the cut."""

    id = "async-profiler"
    kind = "profiler"
    essential = True

    def __init__(self, session: AsprofSession, version: str = ""):
        super().__init__()
        self.session, self.version = session, version
        self.dest = ""
        self.chunk: Optional[str] = None
        self.span: Tuple[float, float] = (0.0, 0.0)
        self.failure: Optional[ProfkitError] = None

    def start(self, ctx: RunContext) -> None:
        from collectors.base import raw_path

        self.session.ensure()
        self.dest = raw_path(ctx.run.raw_dir, "async-profiler", self.session.pid, "jfr")
        entry = self.attach_record(ctx)
        entry.version = self.version
        entry.set_commands(self.session.commands)
        entry.detail["attached"] = ("async-profiler kept running across windows (-o jfr), cut by its dump action "
                                    "(a new JFR chunk per window)" + (": adopted from a killed agent"
                                                                      if self.session.adopted else ""))
        ctx.profiler_order.append(self.id)

    def poll(self) -> bool:
        return self.session.alive()

    def stop(self, reason: str) -> None:
        if self.chunk is None and self.span == (0.0, 0.0):
            self.chunk, a, b, self.failure = self.session.cut(self.dest)
            self.span = (a, b)

    def finish(self, ctx: RunContext) -> None:
        import collectors
        from collectors.async_profiler import AsyncProfilerOptions
        from profkit.engine.captures import options_dict, parse_captures
        from profkit.errors import Diagnostics

        self.stop("finish")
        entry = self.attach_record(ctx)
        entry.set_commands(self.session.commands)
        if self.chunk is None:
            from collectors.jvm import target_alive
            from profkit.errors import TargetNotFound

            if self.failure is not None:
                raise self.failure
            if not target_alive(self.session.pid):  # async-profiler 4.1 leaves its last chunk unfinished then
                raise TargetNotFound(f"process {self.session.pid} exited before async-profiler finished this "
                                     "window's JFR chunk (the time since the last cut is lost)")
            raise CollectorFailed(self.session.commands[-1] if self.session.commands else ["async-profiler"], 1,
                                  "async-profiler wrote no finished JFR chunk this window")
        ctx.results["window_span"] = self.span
        entry.raw = [ctx.run.relative(self.chunk)]
        options = AsyncProfilerOptions(event=self.session.event, threads=self.session.threads)
        entry.parse = options_dict(options)
        diag = Diagnostics()
        try:
            merged, _ = parse_captures(collectors.get("async-profiler"), [self.chunk], options,
                                       ctx.record.process_names(), diag)
        finally:
            for msg in diag.messages():
                ctx.warn(f"{self.id}: {msg}")
        ctx.profiles[self.id] = merged
        if self.failure is not None:
            ctx.warn(f"{self.id}: {self.failure.message}")


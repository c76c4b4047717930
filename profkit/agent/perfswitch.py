# SPDX-License-Identifier: Apache-2.0
"""perf kept attached across windows: one ``perf record --switch-output`` per target, cut at
each window's end by SIGUSR2 (perf then writes what it has to ``BASE.<timestamp>`` and goes on
recording). A window's profile is exactly the data between two cuts: no gap and no overlap.

:class:`PerfSession` is the long-lived tool (a :class:`~profkit.targets.ChildTool`, so it dies
with profkit); :class:`SwitchedPerfProbe` is the engine probe of one window that uses it: its
``stop`` cuts, its ``finish`` runs ``perf script`` on the chunk and parses it as the perf
collector does.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import threading
import time
from typing import List, Optional, Tuple

from profkit.engine.probe import Probe, RunContext
from profkit.errors import CollectorFailed, CollectorNotInstalled
from profkit.targets import ChildTool

__all__ = ["PerfSession", "SwitchedPerfProbe"]

_DUMP = re.compile(r"\[ perf record: Dump (\S+) \]")


class PerfSession:
    """``perf record -g -p PID --switch-output -o DIR/perf-PID.data`` kept running (started by a
    thread of its own that waits for it: see :meth:`ensure`)."""

    def __init__(self, pid: int, rate: int, workdir: str, threads: bool = False):
        self.pid, self.rate, self.workdir = pid, rate, workdir
        #: ``--threads``: ``perf script -F +pid`` and a ``comm-PID/TID`` root frame per thread
        self.threads = threads
        self.tool: Optional[ChildTool] = None
        self.base = os.path.join(workdir, f"perf-{pid}.data")
        self.err = self.base + ".stderr"
        self.argv: List[str] = []
        self.version = ""
        self.last_cut = time.time()
        #: how far perf's stderr has been read (it grows by two lines a window, for as long as the
        #: agent runs: only what is new is read) and the Dump lines found there not yet handed out
        self.err_pos = 0
        self.err_tail = b""
        self.dumps: List[str] = []
        self.lock = threading.Lock()

    def ensure(self) -> None:
        """Start perf if it is not running (the first window, or after perf died); the first windows
        start together when the agent starts: one perf for all of them."""
        with self.lock:
            self._ensure()

    def _ensure(self) -> None:
        if self.tool is not None and self.tool.poll() is None:
            return
        from collectors.perf import hardware_events_available

        perf = shutil.which("perf")
        if perf is None:
            raise CollectorNotInstalled("perf is not installed", hint="apt-get install linux-perf")
        os.makedirs(self.workdir, mode=0o700, exist_ok=True)
        event = "cycles" if hardware_events_available(perf) else "cpu-clock"
        self.argv = [perf, "record", "-e", event, "-F", str(self.rate), "-g", "-p", str(self.pid),
                     "--switch-output", "-o", self.base]
        started = threading.Event()
        failed: List[BaseException] = []

        def keeper() -> None:
            # perf is started, and waited for, by a thread of its own that lives as long as perf:
            # the parent-death signal (PR_SET_PDEATHSIG) comes when the *thread* that started a
            # child ends, so perf started by a window's thread got SIGTERM when that window ended
            try:
                with open(self.err, "ab") as err:  # appended: a restarted perf keeps the earlier lines
                    self.err_pos, self.err_tail, self.dumps = err.tell(), b"", []
                    self.tool = ChildTool(self.argv, stderr=err).start()
            except BaseException as e:  # noqa: BLE001 - handed to ensure()'s caller
                failed.append(e)
                return
            finally:
                started.set()
            self.tool.wait()

        threading.Thread(target=keeper, name=f"profkit-perf-{self.pid}", daemon=True).start()
        started.wait()
        if failed:
            raise failed[0]
        self.last_cut = time.time()

    def _new_dumps(self) -> None:
        """The Dump lines perf wrote since the last look."""
        try:
            with open(self.err, "rb") as fh:
                fh.seek(self.err_pos)
                data = fh.read(1 << 20)
        except OSError:
            return
        self.err_pos += len(data)
        lines = (self.err_tail + data).split(b"\n")
        self.err_tail = lines.pop()  # an unfinished line: read again with the rest of it
        self.dumps += _DUMP.findall(b"\n".join(lines).decode("utf-8", "replace"))

    def alive(self) -> bool:
        return self.tool is not None and self.tool.poll() is None

    def cut(self, timeout: float = 10.0, final: bool = False) -> Tuple[List[str], float, float]:
        """Make perf write what it has; returns (the chunks' paths, their start, their end: epoch s).
        Usually one chunk; a dump that came too late for the previous cut comes with this one."""
        with self.lock:
            start = self.last_cut
            if self.tool is None:
                return [], start, start
            sig = signal.SIGINT if final else signal.SIGUSR2
            if self.tool.poll() is None:
                try:
                    self.tool.proc.send_signal(sig)
                except ProcessLookupError:
                    pass
            end = time.time()
            self.last_cut = end
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                self._new_dumps()
                if self.dumps:
                    dumps, self.dumps = self.dumps, []
                    paths = [d if os.path.isabs(d) else os.path.join(self.workdir, os.path.basename(d)) for d in dumps]
                    return [p for p in paths if os.path.exists(p)], start, end
                if self.tool.poll() is not None and not final:
                    break
                time.sleep(0.05)
            return [], start, end

    def tail(self, limit: int = 2000) -> str:
        """The end of perf's stderr (its last words, for an error)."""
        try:
            with open(self.err, "rb") as fh:
                fh.seek(max(0, os.path.getsize(self.err) - limit))
                return fh.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def close(self) -> None:
        if self.tool is not None and self.tool.poll() is None:
            self.cut(final=True)  # SIGINT: perf writes its last chunk and ends
            if self.tool.wait(5.0) is None:  # a second SIGINT at once made perf write its end twice
                self.tool.stop(grace=5.0)


class SwitchedPerfProbe(Probe):
    """One window's share of a :class:`PerfSession` (see the module docstring)."""

    id = "perf"
    kind = "profiler"
    essential = True

    def __init__(self, session: PerfSession, version: str = ""):
        super().__init__()
        self.session, self.version = session, version
        self.chunks: List[str] = []
        self.span: Tuple[float, float] = (0.0, 0.0)

    def start(self, ctx: RunContext) -> None:
        self.session.ensure()
        entry = self.attach_record(ctx)
        entry.version = self.version
        entry.set_commands([self.session.argv])
        entry.detail["attached"] = "perf record --switch-output: kept running across windows, cut by SIGUSR2"
        entry.detail["perf_pid"] = self.session.tool.pid if self.session.tool is not None else None
        ctx.profiler_order.append(self.id)

    def poll(self) -> bool:
        return self.session.alive()

    def stop(self, reason: str) -> None:
        paths, start, end = self.session.cut()
        self.span = (start, end)
        self.chunks = paths

    def finish(self, ctx: RunContext) -> None:
        import collectors
        from collectors.perf import _perf_script
        from collectors.perf_script import PerfOptions
        from profkit.engine.captures import parse_captures

        ctx.results["window_span"] = self.span
        entry = self.attach_record(ctx)
        if not self.chunks:
            raise CollectorFailed(self.session.argv, self.session.tool.poll() if self.session.tool else None,
                                  self.session.tail())
        perf = self.session.argv[0]
        threads = self.session.threads
        raws, texts, scripts = [], [], []
        for i, chunk in enumerate(self.chunks):
            data = os.path.join(ctx.run.raw_dir, f"perf-{self.session.pid}" + (f".{i}" if i else "") + ".data")
            shutil.move(chunk, data)
            text = data[: -len(".data")] + ".txt"
            scripts.append([perf, "script", "-i", data] + (["-F", "+pid"] if threads else []))
            rc, err = _perf_script(perf, data, text, threads)
            if rc != 0 and os.path.getsize(text) == 0:
                raise CollectorFailed(scripts[-1], rc, err)
            if not err.strip():
                os.unlink(text + ".stderr")
            raws += [ctx.run.relative(data), ctx.run.relative(text)]
            texts.append(text)
        entry.set_commands([self.session.argv] + scripts)
        entry.raw = raws
        options = PerfOptions(all=True, tid=threads)
        entry.parse = {"all": True, "tid": True} if threads else {"all": True}
        merged, per = parse_captures(collectors.get("perf"), texts, options, ctx.record.process_names())
        ctx.profiles[self.id] = merged

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
from profkit.targets import ChildTool, read_small

__all__ = ["PerfSession", "SwitchedPerfProbe"]

_DUMP = re.compile(r"\[ perf record: Dump (\S+) \]")


class PerfSession:
    """``perf record -g -p PID --switch-output -o DIR/perf-PID.data`` kept running."""

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
        self.dumps_seen = 0
        self.lock = threading.Lock()

    def ensure(self) -> None:
        """Start perf if it is not running (the first window, or after perf died)."""
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
        with open(self.err, "wb") as err:
            self.tool = ChildTool(self.argv, stderr=err).start()
        self.dumps_seen = 0
        self.last_cut = time.time()

    def alive(self) -> bool:
        return self.tool is not None and self.tool.poll() is None

    def cut(self, timeout: float = 10.0, final: bool = False) -> Tuple[Optional[str], float, float]:
        """Make perf write what it has; returns (the chunk's path or None, its start, its end: epoch s)."""
        with self.lock:
            start = self.last_cut
            if self.tool is None:
                return None, start, start
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
                dumps = _DUMP.findall(read_small(self.err, 1 << 20))
                if len(dumps) > self.dumps_seen:
                    self.dumps_seen = len(dumps)
                    path = dumps[-1] if os.path.isabs(dumps[-1]) else os.path.join(self.workdir, os.path.basename(dumps[-1]))
                    return (path if os.path.exists(path) else None), start, end
                if self.tool.poll() is not None and not final:
                    break
                time.sleep(0.05)
            return None, start, end

    def close(self) -> None:
        if self.tool is not None and self.tool.poll() is None:
            self.cut(final=True)
            self.tool.stop(grace=5.0)


class SwitchedPerfProbe(Probe):
    """One window's share of a :class:`PerfSession` (see the module docstring)."""

    id = "perf"
    kind = "profiler"
    essential = True

    def __init__(self, session: PerfSession, version: str = ""):
        super().__init__()
        self.session, self.version = session, version
        self.chunk: Optional[str] = None
        self.span: Tuple[float, float] = (0.0, 0.0)

    def start(self, ctx: RunContext) -> None:
        self.session.ensure()
        entry = self.attach_record(ctx)
        entry.version = self.version
        entry.set_commands([self.session.argv])
        entry.detail["attached"] = "perf record --switch-output: kept running across windows, cut by SIGUSR2"
        ctx.profiler_order.append(self.id)

    def poll(self) -> bool:
        return self.session.alive()

    def stop(self, reason: str) -> None:
        path, start, end = self.session.cut()
        self.span = (start, end)
        self.chunk = path

    def finish(self, ctx: RunContext) -> None:
        import collectors
        from collectors.perf import _perf_script
        from collectors.perf_script import PerfOptions
        from profkit.engine.captures import parse_captures

        ctx.results["window_span"] = self.span
        entry = self.attach_record(ctx)
        if self.chunk is None:
            raise CollectorFailed(self.session.argv, self.session.tool.poll() if self.session.tool else None,
                                  read_small(self.session.err)[-2000:])
        data = os.path.join(ctx.run.raw_dir, f"perf-{self.session.pid}.data")
        shutil.move(self.chunk, data)
        text = data[: -len(".data")] + ".txt"
        perf = self.session.argv[0]
        threads = self.session.threads
        entry.set_commands([self.session.argv, [perf, "script", "-i", data] + (["-F", "+pid"] if threads else [])])
        rc, err = _perf_script(perf, data, text, threads)
        if rc != 0 and os.path.getsize(text) == 0:
            raise CollectorFailed([perf, "script", "-i", data], rc, err)
        if not err.strip():
            os.unlink(text + ".stderr")
        entry.raw = [ctx.run.relative(data), ctx.run.relative(text)]
        options = PerfOptions(all=True, tid=threads)
        entry.parse = {"all": True, "tid": True} if threads else {"all": True}
        merged, per = parse_captures(collectors.get("perf"), [text], options, ctx.record.process_names())
        ctx.profiles[self.id] = merged

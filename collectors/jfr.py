# SPDX-License-Identifier: Apache-2.0
"""``jfr``: JDK Flight Recorder recordings, read through the JDK's ``jfr print --json``.

The reading side (``.jfr`` files and their ``jfr print --json`` text, event by event) is
:mod:`collectors.jfr_print`; this module re-exports its public names (:func:`parse`,
:class:`JfrOptions`, :func:`check_recording`, :func:`iter_events`, :func:`parse_events`,
:data:`EVENT_TYPES`, :func:`find_jfr`) so that ``from collectors.jfr import parse`` keeps working.

Live recording (``profkit attach -c jfr``, modes cpu and alloc) drives the target JVM's own
recorder with ``jcmd`` (:class:`JfrRecording`) into ``raw/jfr-PID.jfr``. The jcmd machinery and
its target-safety checks (:class:`JcmdRecording`, :func:`attach_preconditions`) are shared with
the async-profiler collector.
"""
from __future__ import annotations

import math
import os
import re
import time
from dataclasses import dataclass
from typing import Any, Dict, List

from profkit.errors import (CollectorFailed, CollectorNotInstalled, Diagnostics, InputError, TargetUnsupported,
                            UsageError)
from profkit.inputs import Source
from profkit.model import Profile

from collectors.base import Availability, Collector, RecordRequest, Sniff, option, raw_path
from collectors.hotspot_attach import socket_path
from collectors.jfr_print import (EVENT_TYPES, JFR_MAGIC, JfrOptions, check_recording, find_jfr, iter_events, parse,
                                  parse_events)
from collectors.jvm import (INSTALL_HINT, SELF_STOP_MARGIN, JcmdRecording, agent_path, find_jdk_tool,
                            jdk_version, run_jcmd, target_alive, target_java_version)

__all__ = ["EVENT_TYPES", "JfrCollector", "JfrOptions", "JfrRecordOptions", "JfrRecording", "check_recording",
           "find_jfr", "iter_events", "parse", "parse_events"]


# -- JFR live recording ---------------------------------------------------------------------------

@dataclass(frozen=True)
class JfrRecordOptions:
    """Options for recording with JDK Flight Recorder (``jcmd PID JFR.start``)."""

    settings: str = option("profile", "JFR settings: a JDK preset (profile, default) or a .jfc file the JVM can read")
    threads: bool = option(False, "add a root frame per thread, [NAME tid=N], to the profile")
    dump_interval: float = option(10.0, "seconds between JFR.dump calls that write the recording so far into raw/")


class JfrRecording(JcmdRecording):
    """``JFR.start`` with ``duration=`` (so the JVM ends it by itself), ``JFR.dump`` every few
    seconds and ``JFR.stop`` at the end, each writing the same raw ``jfr-PID.jfr``.

    The commands are those of https://docs.oracle.com/en/java/javase/17/docs/specs/man/jcmd.html
    (JFR.start, JFR.dump, JFR.stop); jcmd exits 0 whatever the JVM answers, so each answer is
    checked for the JVM's success message.
    """

    label = "jfr"

    def __init__(self, jcmd: str, request: RecordRequest, options: JfrRecordOptions):
        raw = {pid: agent_path(raw_path(request.raw_dir, "jfr", pid, "jfr"), "JFR") for pid in request.pids}
        limit = math.ceil(request.duration) + SELF_STOP_MARGIN
        super().__init__(raw, limit, options.dump_interval)
        #: how to read the captures: the event of the mode, threads as asked
        self.parse_options = JfrOptions(event="alloc" if request.mode == "alloc" else "cpu", threads=options.threads)
        self.jcmd = jcmd
        self.name = f"profkit-{os.getpid()}-{int(time.time())}"
        self.args: Dict[int, Dict[str, List[str]]] = {}
        settings = options.settings
        self.detail = {"sampling": (
            f"JFR jdk.ObjectAllocationSample, throttled by the {settings} settings (300 samples/s in profile.jfc, "
            "150/s in default.jfc), each weighed in the bytes its thread allocated since its last sample"
            if request.mode == "alloc" else
            f"JFR jdk.ExecutionSample every {max(1, round(1000 / max(1, request.rate)))} ms of each running Java thread "
            "(Java 17+; older JVMs keep the settings' period)")}
        if "/" in settings:
            settings = agent_path(settings, "JFR settings")
        self.settings, self.mode, self.rate = settings, request.mode, request.rate
        for pid, path in raw.items():
            version = target_java_version(pid)
            if request.mode == "alloc" and version is not None and version < (16,):
                raise TargetUnsupported(f"JVM {pid} runs Java {'.'.join(map(str, version))}: JFR allocation samples "
                                         "(jdk.ObjectAllocationSample) need Java 16 or later",
                                         hint="use -c async-profiler --mode alloc")
            self.args[pid] = self._jfr_args(pid, path, version)
            self.commands += [[jcmd, str(pid), *self.args[pid][k]] for k in ("start", "dump", "stop")]

    def _jfr_args(self, pid: int, path: str, version) -> Dict[str, List[str]]:
        """The JFR.start/dump/stop arguments for one JVM writing ``path`` (as the JVM sees it)."""
        start = [f"name={self.name}", f"settings={self.settings}", f"duration={self.limit}s",
                 f"filename={path}", "dumponexit=true"]
        if self.mode == "cpu" and version is not None and version >= (17,):
            # Event settings on the command line came with Java 17 (JDK-8265271); older JVMs
            # keep the preset's period (10 ms in profile.jfc, 20 ms in default.jfc).
            period = max(1, round(1000 / max(1, self.rate)))
            start.append(f"jdk.ExecutionSample#period={period}ms")
        return {"start": ["JFR.start", *start],
                "dump": ["JFR.dump", f"name={self.name}", f"filename={path}"],
                "stop": ["JFR.stop", f"name={self.name}", f"filename={path}"]}

    def _call(self, pid: int, action: str, ok: str) -> None:
        argv, rc, text = run_jcmd(self.jcmd, pid, self.args[pid][action])
        if rc != 0 or ok not in text:
            raise CollectorFailed(argv, rc if rc else 1, text or "no answer")

    def _start(self, pid: int) -> None:
        self._place(pid)
        if self.written[pid] != self.raw[pid]:
            # a JVM in a container writes inside its own /tmp, spoken to over the attach protocol
            self.args[pid] = self._jfr_args(pid, self.written[pid], target_java_version(pid))
            self.commands = [c for c in self.commands if c[1:2] != [str(pid)]]
            sock = f"attach:{socket_path(pid)}"
            self.commands += [[sock, "jcmd", " ".join(self.args[pid][k])] for k in ("start", "dump", "stop")]
        self._call(pid, "start", "Started recording")

    def _dump(self, pid: int) -> None:
        self._call(pid, "dump", "Dumped recording")

    def _stop(self, pid: int) -> None:
        self._call(pid, "stop", "Stopped recording")

    def _settle(self, pid: int, deadline: float) -> None:
        # A recording past its duration, or of a JVM on its way out, is written by the JVM
        # itself: wait until the file is a whole recording (a successful JFR.stop already did).
        path = self.raw[pid]
        until = min(deadline, time.monotonic() + (10.0 if target_alive(pid) else 2.0))
        while True:
            self._fetch(pid)
            try:
                if os.path.getsize(path) > 0:
                    check_recording(path, path)
                    return
            except (OSError, InputError):
                pass
            if time.monotonic() >= until:
                return
            time.sleep(0.2)


class JfrCollector(Collector):
    """JDK Flight Recorder: ``.jfr`` files (through the JDK's ``jfr print``) or their ``--json`` print."""

    id = "jfr"
    summary = "JDK Flight Recorder: a .jfr recording, or jfr print --json output; --event cpu|alloc"
    Options = JfrOptions
    binary_input = True
    RecordOptions = JfrRecordOptions
    #: lock contention (jdk.JavaMonitorEnter) is not read by the parser yet
    modes = {"jvm": ("cpu", "alloc")}
    defaults = {"jvm": 2}

    def check(self, runtime: str = "", mode: str = "", options: Any = None) -> Availability:
        """OK for a JVM in cpu or alloc mode when ``jcmd`` (to record) and ``jfr`` (to read) are here."""
        refused = self.refusal(runtime, mode)
        if refused:
            return refused
        missing = [t for t in ("jcmd", "jfr") if find_jdk_tool(t) is None]
        if missing:
            return Availability(False, reason=f"{' and '.join(missing)} (JDK tools) not found on PATH nor in $JAVA_HOME/bin",
                                hint=INSTALL_HINT, kind="not-installed")
        return Availability(True, version=jdk_version(find_jdk_tool("jcmd") or "") or "unknown")

    def record(self, request: RecordRequest) -> JfrRecording:
        """Start a JFR recording in each target JVM; see :class:`JfrRecording`."""
        jcmd = find_jdk_tool("jcmd")
        if jcmd is None:
            raise CollectorNotInstalled("jcmd (a JDK tool) not found on PATH nor in $JAVA_HOME/bin", hint=INSTALL_HINT)
        if request.mode not in self.modes["jvm"]:
            raise UsageError(f"JFR does not record --mode {request.mode}", hint="use -c async-profiler")
        return JfrRecording(jcmd, request, request.options or JfrRecordOptions()).begin()

    def sniff(self, head: bytes) -> Sniff:
        """YES for the JFR magic ``FLR\\0`` and for text starting ``{"recording"``."""
        if head[:4] == JFR_MAGIC:
            return Sniff.YES
        if re.match(rb'\s*\{\s*"recording"\s*:', head):
            return Sniff.YES
        return Sniff.NO

    def parse(self, source: Source, options: JfrOptions, diag: Diagnostics) -> Profile:
        """Read a recording or its JSON print; see :func:`parse`."""
        return parse(source, options, diag)

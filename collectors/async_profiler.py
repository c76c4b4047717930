# SPDX-License-Identifier: Apache-2.0
"""``async-profiler``: its ``collapsed`` output (``shared/FORMATS.md`` §3), read line by line.

Each line is ``frame;…;leaf count``, root first; the count is samples, or with ``--total`` the
summed metric (bytes for ``alloc``, nanoseconds for the time-based events and ``lock``).
Java frames keep async-profiler's default slash class names (``java/lang/Thread.run``); with
``ann`` they carry ``_[j]`` (JIT), ``_[i]`` (inlined), ``_[0]`` (interpreted) and ``_[1]``
(C1) suffixes, and kernel frames always carry ``_[k]``: those become frame kinds. With
``threads`` the root frame is ``[NAME tid=N]`` or ``[tid=N]``: kind THREAD.

In ``alloc`` and ``lock`` profiles the *leaf* frame is a class (the allocated type, the lock's
class), and its ``_[i]``/``_[k]`` mean *inside*/*outside TLAB*, not inlined/kernel: those
leaves become :attr:`FrameKind.ALLOC_INSIDE_TLAB`/:attr:`FrameKind.ALLOC_OUTSIDE_TLAB`, whose
folded suffixes are the same ``_[i]``/``_[k]``, so the text round-trips unchanged. A
collapsed file does not say which event it holds: the ``event`` option does.

Live recording (``profkit attach``) loads the agent library into the target JVM with the JDK's
``jcmd PID JVMTI.agent_load`` (see :class:`AsyncProfilerRecording`): cpu (itimer where perf
events are refused) and wall are written as ``jfr`` to ``raw/async-profiler-PID.jfr`` and read
by :mod:`collectors.asprof_jfr` (each sample's time and thread: the run's ``timeline.bin``);
alloc and lock (and cpu/wall with ``--format collapsed``) as ``collapsed,ann`` (plus ``total``
for alloc and lock, so weights are bytes and nanoseconds) to ``raw/async-profiler-PID.collapsed``.
The library comes from :func:`find_library` (the Maven Central jar in ``~/.m2`` by default).
"""
from __future__ import annotations

import math
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

from profkit.errors import (CaptureFormatError, CollectorFailed, CollectorNotInstalled, Diagnostics, EnvironmentProblem,
                            InputError)
from profkit.folded import folded_lines, parse_count
from profkit.inputs import Source, looks_binary
from profkit.model import Frame, FrameKind, Profile, ProfileMeta

from collectors.asprof_jfr import SAMPLE_EVENTS, iter_chunks, parse_jfr
from collectors.base import Availability, Collector, RecordRequest, Sniff, option, raw_path
from collectors.jfr_print import JFR_MAGIC
# Where the agent library comes from, and the JDK attach machinery (jcmd, target-safety checks,
# the dump/stop lifecycle) shared with JFR.
from collectors.async_profiler_lib import (INSTALL_HINT, LIBRARY, AgentLibrary, find_library, library_for,
                                           loaded_agent)
from collectors.hotspot_attach import socket_path
from collectors.jvm import (SELF_STOP_MARGIN, JcmdRecording, agent_path, find_jdk_tool, give_to_target, in_container,
                            run_jcmd, target_alive)

__all__ = ["AgentLibrary", "AsyncProfilerCollector", "AsyncProfilerOptions", "AsyncProfilerRecordOptions",
           "AsyncProfilerRecording", "EVENTS", "find_library", "library_for", "loaded_agent", "parse",
           "parse_collapsed", "unit_of"]

#: The events a collapsed capture may hold (async-profiler ``-e``).
EVENTS = ("cpu", "wall", "alloc", "lock", "itimer")

_THREAD_ROOT = re.compile(r"\[(?:.* )?tid=\d+\]\Z", re.S)
# Markers only async-profiler's JVM output has: its --ann suffixes, its thread roots, and
# slash-form Java frames (java/lang/Thread.run).
_STRONG = re.compile(rb"_\[[ji01]\](?:;| \d+$)|(?:^|;)\[(?:[^;\]]* )?tid=\d+\];"
                     rb"|(?:^|;)(?:java|javax|jdk|sun|com|org|net|io)/[\w$/]+\.[\w$<>]+(?:_\[[ji01]\])?(?:;| \d+$)",
                     re.M)
# Weaker hints: kernel annotations (perf writes them too) and async-profiler's error frames.
_WEAK = re.compile(rb"_\[k\](?:;| \d+$)|\[(?:unknown_Java|not_walkable_Java|stale_jmethodID|unknown|deoptimization)\]"
                   rb"|(?:^|;)java\.lang\.\w", re.M)
_PY_LOCATION = re.compile(rb"\([^();]*\.pyx?(?::\d+)?\)(?:;| \d+$)", re.M)


@dataclass(frozen=True)
class AsyncProfilerOptions:
    """Options for reading async-profiler collapsed output."""

    event: str = option("cpu", "the event the capture was recorded with (async-profiler -e); in alloc and lock "
                               "profiles the leaf's _[i]/_[k] mean inside/outside TLAB", choices=EVENTS)
    total: bool = option(False, "the capture was recorded with --total: counts are bytes (alloc) or "
                                "nanoseconds (the other events), not samples")
    threads: bool = option(False, "a .jfr capture (-o jfr): a root frame [NAME tid=N] per thread (collapsed "
                                  "captures have them when recorded with --threads)")


def unit_of(options: AsyncProfilerOptions) -> str:
    """The unit of a capture's counts: samples, or with ``--total`` bytes (alloc) / nanoseconds."""
    if not options.total:
        return "samples"
    return "bytes" if options.event == "alloc" else "nanoseconds"


def _leaf_class(token: str) -> Union[str, Frame]:
    """An alloc/lock leaf: ``_[i]``/``_[k]`` are TLAB kinds there."""
    if token.endswith("_[i]"):
        return Frame(token[:-4], FrameKind.ALLOC_INSIDE_TLAB)
    if token.endswith("_[k]"):
        return Frame(token[:-4], FrameKind.ALLOC_OUTSIDE_TLAB)
    return token


def _thread_root(token: str) -> Union[str, Frame]:
    return Frame(token, FrameKind.THREAD) if _THREAD_ROOT.match(token) else token


def parse_collapsed(lines: Iterable[str], options: AsyncProfilerOptions, diag: Diagnostics,
                    meta: Optional[ProfileMeta] = None) -> Profile:
    """Read collapsed lines into a profile in :func:`unit_of` ``options``.

    The count is the last whitespace-separated field; lines without one are counted as malformed.
    """
    profile = Profile(unit_of(options), meta)
    add = profile.add
    class_leaf = options.event in ("alloc", "lock")
    leaves: Dict[str, Union[str, Frame]] = {}
    roots: Dict[str, Union[str, Frame]] = {}
    for lineno, line in enumerate(lines, 1):
        stack, _, count = line.rstrip().rpartition(" ")
        if stack and count.isdigit() and count.isascii():
            n: Union[int, float] = int(count)
        else:
            # async-profiler writes one space and an integer; accept any whitespace and decimals too
            parts = line.rsplit(None, 1)
            n_ = parse_count(parts[1]) if len(parts) == 2 else None
            if n_ is None or not parts[0].strip():
                if line.strip():
                    diag.malformed(lineno, line)
                continue
            stack, n = parts[0], n_
        frames = stack.split(";")
        first = frames[0]
        if first[:1] == "[" and "tid=" in first:
            root = roots.get(first)
            if root is None:
                root = roots[first] = _thread_root(first)
            frames[0] = root  # type: ignore[call-overload]
        if class_leaf:
            leaf = frames[-1]
            if isinstance(leaf, str):
                cls = leaves.get(leaf)
                if cls is None:
                    cls = leaves[leaf] = _leaf_class(leaf)
                frames[-1] = cls  # type: ignore[call-overload]
        add(frames, n)
    return profile


def parse(source: Source, options: AsyncProfilerOptions = AsyncProfilerOptions(),
          diag: Optional[Diagnostics] = None) -> Profile:
    """Read an async-profiler capture into a Profile: collapsed text, or its ``-o jfr`` output
    (:func:`parse_jfr_capture`: each sample's time and thread kept)."""
    diag = diag if diag is not None else source.diag
    meta = ProfileMeta(collector="async-profiler", extra={"event": options.event, "total": options.total})
    head = source.head()
    if head[:4] == JFR_MAGIC:
        return parse_jfr_capture(source, options, diag, meta)
    if looks_binary(head):
        raise InputError(f"{source.name}: binary data, neither async-profiler collapsed text nor its .jfr output")
    return parse_collapsed(source.text_lines(), options, diag, meta)


def parse_jfr_capture(source: Source, options: AsyncProfilerOptions, diag: Diagnostics, meta: ProfileMeta) -> Profile:
    """async-profiler's ``.jfr`` output read by :mod:`collectors.asprof_jfr` (no JVM); a file it
    cannot read falls back to the JDK's ``jfr print`` (slower), and the run says so."""
    if options.event not in SAMPLE_EVENTS:
        raise CaptureFormatError(f"profkit reads async-profiler's .jfr for cpu, itimer and wall samples, not "
                                 f"{options.event}", location=source.name)
    tail = [0]
    try:
        profile = parse_jfr(iter_chunks(lambda n: source.read_bytes(None if n < 0 else n), tail),
                            options.event, options.threads, diag, meta)
    except CaptureFormatError as e:
        if not source.path or source.compressed:
            raise
        from collectors.jfr_print import JfrOptions, check_recording, parse as jfr_parse

        check_recording(source.path, source.name)
        diag.warn(f"{source.name}: profkit's JFR reader failed ({e.message}); read with the JDK's jfr print instead")
        profile = jfr_parse(Source(source.path, diag, binary_ok=True), JfrOptions(threads=options.threads,
                                                                                 stack_depth=2048), diag)
        profile.meta = meta
    if tail[0]:
        diag.warn(f"{source.name}: {tail[0]} bytes after the last finished JFR chunk (still being written) not read")
    return profile


# -- live recording: the agent loaded into the target JVM through jcmd ------------------------------
#
# async-profiler is a JVMTI agent (libasyncProfiler.so). profkit loads it with the JDK's own
#   jcmd PID JVMTI.agent_load /path/libasyncProfiler.so "ACTION,option=value,…"
# whose argument string is the agent's (https://github.com/async-profiler/async-profiler/blob/master/docs/ProfilerOptions.md,
# "Launch as agent" column). The agent's answer is "return code: N" on jcmd's output and its
# messages go to the file named by ``log=`` (otherwise they would land on the target's stderr).
# ``timeout=N`` on start makes the agent stop (and write ``file=``) by itself after N seconds.

JDK_HINT = "apt-get install openjdk-17-jdk-headless (profkit loads the agent with the JDK's jcmd)"
_RETURN_CODE = re.compile(r"return code: (-?\d+)")


@dataclass(frozen=True)
class AsyncProfilerRecordOptions:
    """Options for recording with async-profiler."""

    asprof: str = option("", "the async-profiler to use: asprof, libasyncProfiler.so, an async-profiler directory or "
                             "the Maven jar (default: $PROFKIT_ASPROF, $ASYNC_PROFILER_HOME, asprof on PATH, ~/.m2)")
    threads: bool = option(False, "profile threads separately: a root frame [NAME tid=N] per thread")
    capture: str = option("jfr", "what async-profiler writes for cpu and wall: jfr (each sample's time and thread, so the run "
                                "gets timeline.bin) or collapsed (no times); alloc and lock always write collapsed",
                         choices=("jfr", "collapsed"))
    restart: bool = option(False, "stop an async-profiler session already running in the target (someone else's) "
                                  "and start profkit's, instead of refusing")
    dump_interval: float = option(10.0, "seconds between dumps of the profile so far into raw/")
    alloc_interval: int = option(524288, "alloc mode: one sample per this many bytes allocated (async-profiler alloc=)")


def _loaded_inside(pid: int) -> Optional[str]:
    """The async-profiler a JVM in a container already runs, by the path it was loaded from
    (``dlopen`` finds a loaded library by that name even after profkit removed its copy)."""
    loaded = loaded_agent(pid)
    return loaded[:-len(" (deleted)")] if loaded and loaded.endswith(" (deleted)") else loaded


class AsyncProfilerRecording(JcmdRecording):
    """async-profiler inside each target JVM: started with ``timeout=`` (so it stops by itself),
    dumped (``dump``) every few seconds and stopped (``stop``) at the end, each writing the
    collapsed profile to the same raw ``async-profiler-PID.collapsed``.

    A JVM in a container (:func:`collectors.jvm.in_container`) gets the library copied into a
    directory of profkit's inside its /tmp, is spoken to over the attach protocol, writes its
    profile and messages there, and profkit copies the profile back to ``raw/`` after each
    dump and removes the directory at the end."""

    label = "async-profiler"

    def __init__(self, jcmd: str, lib: AgentLibrary, request: RecordRequest, options: AsyncProfilerRecordOptions):
        #: jfr (timed samples) for cpu and wall unless collapsed is asked for; alloc and lock: collapsed
        self.format = "jfr" if options.capture == "jfr" and request.mode in ("cpu", "wall") else "collapsed"
        raw = {pid: agent_path(raw_path(request.raw_dir, "async-profiler", pid, self.format), "async-profiler")
               for pid in request.pids}
        super().__init__(raw, math.ceil(request.duration) + SELF_STOP_MARGIN, options.dump_interval)
        self.jcmd, self.options, self.mode = jcmd, options, request.mode
        #: the event actually recorded: cpu falls back to itimer where perf events are refused
        self.event = request.mode
        self.interval = max(1, round(1e9 / max(1, request.rate))) if request.mode in ("cpu", "wall") else None
        # alloc and lock weigh by the metric (bytes, nanoseconds of contention), not sample counts
        self.total = request.mode in ("alloc", "lock")
        self.rate = request.rate
        self.lib = lib.path
        # a JVM in a container gets its library copied inside at the start (see _inside)
        self.libs = {pid: agent_path(_loaded_inside(pid) or f"/tmp/profkit-async-profiler-…/{LIBRARY}", "async-profiler")
                     if in_container(pid) else agent_path(library_for(lib.path, pid), "async-profiler") for pid in raw}
        # a fresh name for the agent's messages, made again for each call (see _agent)
        self.logs = agent_path(tempfile.mkdtemp(prefix="profkit-asprof-"), "async-profiler")
        os.rmdir(self.logs)
        self._describe()

    @property
    def detail(self) -> Dict[str, Any]:
        """The sampling parameter of the event actually recorded, for the run record and the reports."""
        return {"sampling": sampling_text(self.event, self.interval, self.options.alloc_interval)}

    @property
    def parse_options(self) -> AsyncProfilerOptions:
        """How to read the captures: the event actually recorded (itimer where cpu fell back)."""
        return AsyncProfilerOptions(event=self.event, total=self.total, threads=self.options.threads and self.format == "jfr")

    def _args(self, pid: int, action: str) -> str:
        """The agent's argument string for one action."""
        args = [action]
        if action == "start":
            args.append(f"event={self.event}")
            if self.interval:
                args.append(f"interval={self.interval}")
            if self.event == "alloc":
                args.append(f"alloc={self.options.alloc_interval}")
            args.append(f"timeout={self.limit}")
        if action in ("start", "dump", "stop"):
            if self.format == "jfr":  # its dump finishes the chunk being written and starts the next one
                args.append("jfr")
            else:
                args += ["collapsed", "ann"] + (["total"] if self.total else []) + (["threads"] if self.options.threads else [])
            args.append(f"file={self.written[pid]}")
        args.append(f"log={self._log(pid)}")
        return ",".join(args)

    def _log(self, pid: int) -> str:
        """Where the agent writes its messages, as the JVM sees it."""
        box = self.boxes.get(pid)
        return box.path("agent.log") if box is not None else os.path.join(self.logs, f"agent-{pid}.log")

    def _argv(self, pid: int, action: str) -> List[str]:
        # the quotes keep jcmd's own parser from splitting the agent's string at '='
        return ["JVMTI.agent_load", self.libs[pid], f'"{self._args(pid, action)}"']

    def _describe(self) -> None:
        self.commands = [[f"attach:{socket_path(pid)}", "jcmd", " ".join(self._argv(pid, a))] if in_container(pid)
                         else [self.jcmd, str(pid), *self._argv(pid, a)] for pid in self.raw for a in ("start", "dump", "stop")]

    def _inside(self, pid: int, action: str) -> Tuple[List[str], int, str, str]:
        """One agent call for a JVM in a container, its log inside the JVM's /tmp read back:
        (argv, exit code, the attach answer, the agent's messages)."""
        box = self.boxes[pid]
        log = box.outer("agent.log")
        box.make_file("agent.log")
        try:
            argv, rc, out = run_jcmd(self.jcmd, pid, self._argv(pid, action))
            msg = box.read_text("agent.log").strip()
        finally:
            os.unlink(log)
        return argv, rc, out, msg

    def _agent(self, pid: int, action: str) -> Tuple[List[str], int, str]:
        """Run one agent action; returns (argv, agent return code, its messages).

        The agent writes its messages to ``log=``, in a directory that exists only for the
        duration of the call (so even a killed profkit leaves nothing behind): profkit's own
        (mode 0711, so a JVM of another user can write the file profkit made for it but cannot
        swap it for a link), and read without following links.
        """
        if pid in self.boxes:
            argv, rc, out, msg = self._inside(pid, action)
            m = _RETURN_CODE.search(out)
            return argv, rc if rc else (int(m.group(1)) if m else 1), msg or out
        log = os.path.join(self.logs, f"agent-{pid}.log")
        os.mkdir(self.logs, 0o711)  # fails if anyone else has taken the name meanwhile
        try:
            os.close(os.open(log, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
            give_to_target(log, pid)
            argv, rc, out = run_jcmd(self.jcmd, pid, self._argv(pid, action))
            try:
                with os.fdopen(os.open(log, os.O_RDONLY | os.O_NOFOLLOW), encoding="utf-8", errors="replace") as fh:
                    msg = fh.read(8192).strip()
            except OSError:
                msg = ""
        finally:
            shutil.rmtree(self.logs, ignore_errors=True)
        m = _RETURN_CODE.search(out)
        code = rc if rc else (int(m.group(1)) if m else 1)
        return argv, code, msg or out

    def _call(self, pid: int, action: str) -> None:
        argv, code, msg = self._agent(pid, action)
        if code:
            raise CollectorFailed(argv, code, f"async-profiler {action}: {msg}")

    def _start(self, pid: int) -> None:
        self._place(pid)
        if pid in self.boxes:
            # the library the JVM already runs (by name: a deleted copy stays loaded), else a copy
            # inside the container, loaded by its path there and removed with the directory
            self.libs[pid] = _loaded_inside(pid) or agent_path(self.boxes[pid].copy_in(self.lib, LIBRARY), "async-profiler")
            self._describe()
        argv, code, msg = self._agent(pid, "start")
        if code and "already started" in msg:
            if not self.options.restart:
                raise EnvironmentProblem(
                    f"async-profiler is already profiling JVM {pid} (another tool's session, or a killed profkit "
                    "run's, which stops at its own timeout)",
                    hint=f"wait for it to end, or stop it: jcmd {pid} JVMTI.agent_load {self.libs[pid]} '\"stop\"'")
            self._call(pid, "stop")
            argv, code, msg = self._agent(pid, "start")
        if code and self.event == "cpu":
            # perf_events refused (perf_event_paranoid, seccomp in containers): itimer samples
            # CPU time through setitimer instead, with no kernel frames.
            first = (argv, code, msg)
            self.event = "itimer"
            self._describe()
            argv, code, msg = self._agent(pid, "start")
            if code:
                self.event = "cpu"
                self._describe()
                argv, code, msg = first
        if code:
            raise CollectorFailed(argv, code, f"async-profiler start: {msg}")

    def _dump(self, pid: int) -> None:
        self._call(pid, "dump")

    def _stop(self, pid: int) -> None:
        self._call(pid, "stop")

    def _settle(self, pid: int, deadline: float) -> None:
        # an agent at its timeout writes its file as it stops: give it a moment to finish
        if target_alive(pid):
            time.sleep(max(0.0, min(self._ends[pid] + 1.0, deadline) - time.monotonic()))


def sampling_text(event: str, interval: Optional[int], alloc_bytes: int) -> str:
    """What one sample of an async-profiler event stands for, in words."""
    if event == "alloc":
        size = f"{alloc_bytes >> 10} KiB" if alloc_bytes % 1024 == 0 else f"{alloc_bytes} bytes"
        return f"one sample per {size} allocated (async-profiler alloc={alloc_bytes}), weighed in bytes"
    if event == "lock":
        return "contended Java monitors and locks (async-profiler lock), weighed in nanoseconds waited"
    ms = f"{interval / 1e6:g} ms" if interval else "its default interval"
    if event == "wall":
        return f"every thread every {ms}, running or waiting (async-profiler wall)"
    return f"one sample per {ms} of CPU time (async-profiler {event}{f' interval={interval}' if interval else ''})"


class AsyncProfilerCollector(Collector):
    """async-profiler ``collapsed`` output (``-o collapsed``), any event, with or without ``--ann``."""

    id = "async-profiler"
    summary = "async-profiler collapsed output (-o collapsed; --event says which event it holds) or its .jfr output"
    binary_input = True
    Options = AsyncProfilerOptions
    RecordOptions = AsyncProfilerRecordOptions
    modes = {"jvm": ("cpu", "wall", "alloc", "lock")}
    defaults = {"jvm": 1}

    def check(self, runtime: str = "", mode: str = "", options: Any = None) -> Availability:
        """OK for a JVM when the agent library (see :func:`find_library`) and ``jcmd`` are here."""
        refused = self.refusal(runtime, mode)
        if refused:
            return refused
        if find_jdk_tool("jcmd") is None:
            return Availability(False, reason="jcmd (a JDK tool) not found on PATH nor in $JAVA_HOME/bin", hint=JDK_HINT,
                                kind="not-installed")
        try:
            lib = find_library(getattr(options, "asprof", "") or "")
        except CollectorNotInstalled as e:
            return Availability(False, reason=e.message, hint=e.hint or INSTALL_HINT, kind="not-installed")
        return Availability(True, version=lib.version or "unknown")

    def record(self, request: RecordRequest) -> AsyncProfilerRecording:
        """Load the agent into each target JVM and start it; see :class:`AsyncProfilerRecording`."""
        options = request.options or AsyncProfilerRecordOptions()
        jcmd = find_jdk_tool("jcmd")
        if jcmd is None:
            raise CollectorNotInstalled("jcmd (a JDK tool) not found on PATH nor in $JAVA_HOME/bin", hint=JDK_HINT)
        return AsyncProfilerRecording(jcmd, find_library(options.asprof), request, options).begin()

    def sniff(self, head: bytes) -> Sniff:
        """YES for folded text with async-profiler's JVM markers (``_[j]``, ``[tid=N]``,
        ``java/lang/…`` frames); MAYBE with only weak hints (``_[k]``, ``[unknown_Java]``);
        NO otherwise, so that plain folded text and py-spy's raw output are not claimed."""
        lines = folded_lines(head)
        if lines is None:
            return Sniff.NO
        if any(_STRONG.search(l) for l in lines):
            return Sniff.YES
        if any(_PY_LOCATION.search(l) for l in lines):
            return Sniff.NO
        return Sniff.MAYBE if any(_WEAK.search(l) for l in lines) else Sniff.NO

    def parse(self, source: Source, options: AsyncProfilerOptions, diag: Diagnostics) -> Profile:
        """Read a collapsed capture; see :func:`parse`."""
        return parse(source, options, diag)

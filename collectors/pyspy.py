# SPDX-License-Identifier: Apache-2.0
"""``py-spy``: the two capture formats of ``py-spy record`` that profkit reads.

* ``--format raw`` is folded text (``frame;frame;… count``, root first). Frames are
  ``name (file:line)``, ``name (file)`` with ``--nolineno`` or a bare ``name``. With
  ``--threads`` the root frame is ``thread (TID)`` or ``thread (TID): NAME`` (py-spy 0.4 writes
  the tid in decimal, older versions in hex); with ``--subprocesses`` one ``process PID:"CMD"``
  frame per process comes first. Those root frames become :attr:`FrameKind.THREAD` and
  :attr:`FrameKind.PROCESS`; the others keep the kind their text implies (``PYTHON``).
  Read line by line.
* ``--format speedscope`` is JSON (``shared/FORMATS.md`` §8): one ``sampled`` profile per
  thread, stacks root → leaf as indices into ``shared.frames``, weights in seconds, each sample
  weighing ``1/rate``. By default the weights become sample counts (``round(weight / period)``,
  the period being ``1/--rate`` or, if not given, the smallest weight in the file); with
  ``--unit nanoseconds`` they become nanoseconds of sampled time. The file is streamed
  (:mod:`collectors.speedscope_stream`, memory ~12 bytes a sample plus the distinct stacks). py-spy writes its
  ``--threads``/``--subprocesses`` frames into these stacks itself, as file-less frames with
  the same text as in raw output; they get the same kinds.
"""
from __future__ import annotations

import json
import math
import os
import re
import signal
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Union

from profkit.errors import CaptureFormatError, CollectorFailed, CollectorNotInstalled, Diagnostics
from profkit.folded import folded_lines, parse_line
from profkit.inputs import Source
from profkit.frames import strip_folded_lines
from profkit.model import Frame, FrameKind, Profile, ProfileMeta, function_key

from profkit.targets import ChildTool, ptrace_problem, read_small

from collectors.base import Availability, Collector, RecordRequest, Recording, Sniff, option, pid_of_raw, raw_path
from collectors.pyspy_speedscope import _NS_PER, _sampled_profiles, _units
from collectors.speedscope_stream import BAD, Speedscope, read_speedscope
from collectors.pyspy_tool import _pyspy_hint, _tool_version, find_pyspy

__all__ = ["PySpyCollector", "PySpyOptions", "PySpyRecordOptions", "PySpyRecording", "find_pyspy",
           "parse", "parse_raw", "parse_speedscope"]

#: The frame of a sample py-spy took of a thread without Python frames (a raw line `` COUNT``).
NO_PYTHON_FRAME = "[no Python frame]"
_THREAD = re.compile(r"thread \((?:0x[0-9a-fA-F]+|\d+)\)(?:: .*)?\Z", re.S)
_PROCESS = re.compile(r'process \d+:".*"\Z', re.S)
# A py-spy frame's location: "(file.py:12)", "(file.py)", "(<frozen abc>:3)", "(<string>:1)".
_PY_LOCATION = re.compile(rb"\((?:[^();\n]*\.pyx?|<[^<>;\n]*>)(?::\d+)?\)(?:;| \d+\r?$)", re.M)
_PY_FILE = re.compile(r"(?:.*\.pyx?|<[^<>]*>)\Z", re.S)


@dataclass(frozen=True)
class PySpyOptions:
    """Options for reading py-spy captures."""

    format: str = option("auto", "capture format: raw (folded), speedscope or chrometrace (JSON, timed); auto looks "
                         "at the first bytes", choices=("auto", "raw", "speedscope", "chrometrace"))
    unit: str = option("samples", "speedscope: count samples, or keep the sampled time in nanoseconds",
                       choices=("samples", "nanoseconds"))
    rate: float = option(0.0, "speedscope: the sampling rate in Hz (py-spy --rate); 0 infers it from the weights")
    threads: bool = option(True, "chrometrace: keep the thread root frames (profkit records it with --threads)")
    lines: bool = option(False, "chrometrace: frames carry line numbers (recorded without --function)")
    start: float = option(0.0, "chrometrace: epoch seconds py-spy started (its times count from it)")
    placed: bool = option(False, "speedscope: place samples in time by the threads' on-CPU time profkit recorded "
                                 "beside the capture (FILE.runtime; profkit's cpu mode)")


def _root_frame(token: str, keyed: bool = False) -> Union[str, Frame]:
    """A leading raw frame as the Frame it stands for (process/thread), else the token itself
    (named by its function key with ``keyed``)."""
    if token.startswith("process ") and _PROCESS.match(token):
        return Frame(function_key(token) if keyed else token, FrameKind.PROCESS)
    if token.startswith("thread ") and _THREAD.match(token):
        return Frame(function_key(token) if keyed else token, FrameKind.THREAD)
    return token


def parse_raw(lines: Iterable[str], diag: Diagnostics, meta: Optional[ProfileMeta] = None, *,
              keyed: bool = False) -> Profile:
    """Read py-spy ``--format raw`` lines into a profile in samples.

    Lines that are not ``stack count`` (or carry two counts, which py-spy never writes) are
    counted as malformed. With ``keyed`` frames are named by function as they are read (the
    profile :meth:`~profkit.model.Profile.keyed` would make of the plain one).
    """
    profile = Profile("samples", meta, keyed=keyed)
    add = profile.add
    add_tokens = profile.add_tokens
    roots: Dict[str, Union[str, Frame]] = {}
    for lineno, line in enumerate(lines, 1):
        stack, _, count = line.rstrip().rpartition(" ")
        if stack and count.isdigit() and count.isascii() and not stack[-1:].isdigit():
            n = int(count)
        else:
            parsed = parse_line(line)
            if parsed is None and line[:1] == " " and line.strip().isdigit() and line.strip().isascii():
                # py-spy writes a sample of a thread it found without Python frames as " COUNT"
                add_tokens([NO_PYTHON_FRAME], int(line.strip()))
                continue
            if parsed is None or parsed[2] is not None:
                if line.strip():
                    diag.malformed(lineno, line)
                continue
            stack, n, _ = parsed
        if keyed and stack[:1] not in ("p", "t"):  # no process/thread root frames: key the whole text
            stack = strip_folded_lines(stack)
            keyed_rest = False
        else:
            keyed_rest = keyed
        frames: List[Union[str, Frame]] = stack.split(";")  # type: ignore[assignment]
        # process frames (parents first), then at most one thread frame, are always at the root
        i = 0
        while i < len(frames) and frames[i][:1] in ("p", "t"):
            tok = frames[i]
            frame = roots.get(tok)  # type: ignore[arg-type]
            if frame is None:
                frame = roots[tok] = _root_frame(tok, keyed)  # type: ignore[index]
            if isinstance(frame, str):
                break
            frames[i] = frame
            i += 1
            if frame.kind is FrameKind.THREAD:  # type: ignore[union-attr]
                break
        if keyed_rest and i < len(frames):
            frames[i:] = strip_folded_lines(";".join(frames[i:])).split(";")  # type: ignore[arg-type]
        if i == 0:  # no process/thread root frames: plain tokens, the fast path
            add_tokens(frames, n)  # type: ignore[arg-type]
            continue
        add(frames, n)
    return profile.normalise_keyed() if keyed else profile


# -- speedscope ---------------------------------------------------------------------------

def _frame_of(entry: object, pyspy: bool) -> Frame:
    """A speedscope frame object as a profkit Frame, in py-spy's raw text form."""
    if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
        raise ValueError("frame without a name")
    name = _clean(entry["name"])
    file = entry.get("file")
    line = entry.get("line")
    if isinstance(file, str) and file:
        if _PY_FILE.match(file):
            kind = FrameKind.PYTHON
        else:
            kind = FrameKind.NATIVE if pyspy else FrameKind.UNKNOWN
        return Frame(name, kind, _clean(file), line if isinstance(line, int) and not isinstance(line, bool) else None)
    # py-spy puts its --threads/--subprocesses frames into the stacks as file-less frames
    root = _root_frame(name)
    return root if isinstance(root, Frame) else Frame.parse(name, FrameKind.UNKNOWN)


def _clean(text: str) -> str:
    """';' separates frames in folded output (async-profiler's replacement is '|'), a newline lines."""
    return text.replace(";", "|").replace("\n", " ")


def parse_speedscope(source: Source, options: PySpyOptions, diag: Diagnostics,
                     meta: Optional[ProfileMeta] = None) -> Profile:
    """Read a speedscope JSON file (as ``py-spy --format speedscope`` writes it) into a profile.

    Sampled profiles in time units become samples (or nanoseconds with ``unit="nanoseconds"``);
    ``none`` counts as samples and ``bytes`` as bytes. Evented profiles are skipped with a
    warning. Samples whose frame indices are out of range are counted as malformed.
    """
    name = source.name
    data = read_speedscope(source)
    if data.profiles is None:
        raise CaptureFormatError("not a speedscope file (no \"profiles\" list)", location=name)
    if data.frames is None:
        raise CaptureFormatError("not a speedscope file (no \"shared.frames\" list)", location=name)
    exporter = data.exporter
    pyspy = bool(exporter and exporter.startswith("py-spy"))
    try:
        frames = [_frame_of(f, pyspy) for f in data.frames]
    except ValueError:
        raise CaptureFormatError("speedscope frame without a name in shared.frames", location=name) from None

    sampled = _sampled_profiles(data.profiles, name, diag)
    units = _units(sampled, name)
    timed = units & set(_NS_PER)
    out_unit = "bytes" if "bytes" in units else ("nanoseconds" if timed and options.unit == "nanoseconds" else "samples")
    period_ns = 0.0
    if timed and out_unit == "samples":
        if options.rate > 0:
            period_ns = 1e9 / options.rate
        else:
            positive = [min((w for w in p.weights if w > 0), default=math.inf) * _NS_PER[str(p.fields["unit"])]
                        for p in sampled]
            period_ns = min(positive, default=math.inf)
            period_ns = period_ns if period_ns < math.inf else 1e9 / 100
    meta = meta if meta is not None else ProfileMeta()
    if period_ns:
        meta.sample_rate = round(1e9 / period_ns, 6)
    if exporter:
        meta.extra["exporter"] = exporter
    profile = Profile(out_unit, meta)
    inexact = _add_samples(profile, data, sampled, [profile.intern(f) for f in frames], period_ns, diag, name)
    if inexact:
        diag.warn(f"{name}: speedscope weights are not whole multiples of the sampling period "
                  f"({period_ns / 1e6:g} ms); sample counts are rounded")
    return profile


def _add_samples(profile: Profile, data: Speedscope, sampled: list, ids: List[str], period_ns: float,
                 diag: Diagnostics, name: str) -> bool:
    """Add the sampled profiles' samples to ``profile``; True when weights were rounded to samples."""
    out_unit = profile.unit
    keys: List[Optional[tuple]] = []  # stack id → profile stack (None: an index out of range)
    for stack in data.stacks:
        keys.append(tuple(ids[k] for k in stack) if min(stack, default=0) >= 0 and max(stack, default=0) < len(ids)
                    else None)
    inexact = False
    for p in sampled:
        factor = _NS_PER.get(str(p.fields.get("unit", "none")), 1)
        for j, (sid, w) in enumerate(zip(p.samples, p.weights)):
            key = keys[sid] if sid != BAD else None
            if key is None or not w >= 0:  # a malformed stack, or a weight negative or not a number (NaN)
                stack = json.loads(p.texts[j]) if j in p.texts else list(data.stacks[sid]) if sid != BAD else "?"
                weight_text = p.wtexts[j] if j in p.wtexts else json.dumps(w)
                diag.malformed(j, f"[{json.dumps(stack)}, {weight_text}]"[:200],
                               source=f"{name} profile {p.index} sample")
                continue
            if not key or not w:
                continue
            if out_unit == "samples" and period_ns:
                exact = w * factor / period_ns
                weight: Union[int, float] = max(1, round(exact))
                inexact = inexact or abs(exact - weight) > 0.01 * weight
            elif out_unit == "nanoseconds":
                weight = round(w * factor)
            else:
                weight = int(w) if float(w).is_integer() else w
            profile.add_ids(key, weight)
    return inexact


# -- the collector ---------------------------------------------------------------------------

def _looks_like_speedscope(head: bytes) -> bool:
    text = head.lstrip()
    return text[:1] == b"{" and (b"speedscope.app" in text and b"file-format-schema" in text
                                 or re.search(rb'"exporter"\s*:\s*"py-spy@', text) is not None)


def parse(source: Source, options: PySpyOptions = PySpyOptions(), diag: Optional[Diagnostics] = None, *,
          keyed: bool = False) -> Profile:
    """Read a py-spy capture (raw folded text or speedscope JSON) into a Profile (with ``keyed``,
    frames named by function, see :meth:`~profkit.model.Profile.keyed`)."""
    diag = diag if diag is not None else source.diag
    fmt = options.format
    if fmt == "auto":
        first = source.head().lstrip()[:1]
        fmt = "speedscope" if first == b"{" else "chrometrace" if first == b"[" else "raw"
    meta = ProfileMeta(collector="py-spy", extra={"format": fmt})
    if fmt == "chrometrace":
        from collectors.pyspy_trace import parse_chrometrace

        profile = parse_chrometrace(source, diag, meta, rate=options.rate or 100, start=options.start,
                                    lines=options.lines, threads=options.threads, pid=pid_of_raw(source.name))
        return profile.keyed() if keyed else profile
    if fmt == "speedscope":
        if options.placed:
            from collectors.pyspy_placed import parse_placed

            profile = parse_placed(source, diag, meta, start=options.start, pid=pid_of_raw(source.name))
            return profile.keyed() if keyed else profile
        profile = parse_speedscope(source, options, diag, meta)
        return profile.keyed() if keyed else profile
    return parse_raw(source.text_lines(), diag, meta, keyed=keyed)


class PySpyCollector(Collector):
    """py-spy captures: ``--format raw`` (folded, streamed) and ``--format speedscope`` (JSON)."""

    id = "py-spy"
    summary = "py-spy record output: --format raw (folded) or --format speedscope (JSON)"
    Options = PySpyOptions

    def sniff(self, head: bytes) -> Sniff:
        """YES for speedscope JSON; MAYBE for folded text whose frames carry py-spy's ``(file.py:N)``."""
        from collectors.pyspy_trace import looks_like_chrometrace

        if _looks_like_speedscope(head) or looks_like_chrometrace(head):
            return Sniff.YES
        lines = folded_lines(head)
        if lines is None:
            return Sniff.NO
        return Sniff.MAYBE if any(_PY_LOCATION.search(l) for l in lines) else Sniff.NO

    def parse(self, source: Source, options: PySpyOptions, diag: Diagnostics) -> Profile:
        """Read a py-spy capture; see :func:`parse`."""
        return parse(source, options, diag)

    def parse_keyed(self, source: Source, options: PySpyOptions, diag: Diagnostics) -> Profile:
        """Read a py-spy capture with frames named by function as they are read."""
        return parse(source, options, diag, keyed=True)

    # -- live recording ---------------------------------------------------------------------
    RecordOptions = None  # set below (PySpyRecordOptions)
    modes = {"python": ("cpu", "wall")}
    defaults = {"python": 1}

    def check(self, runtime: str = "", mode: str = "", options: Any = None) -> Availability:
        """py-spy installed, the target a Python process, and ptrace allowed."""
        exe = find_pyspy()
        if exe is None:
            return Availability(False, reason="py-spy is not installed", hint="pip install py-spy", kind="not-installed")
        version = _tool_version(exe)
        refused = self.refusal(runtime, mode, version)
        if refused:
            return refused
        problem = ptrace_problem()
        if problem:
            return Availability(False, version, reason=problem[0], hint=problem[1], kind="no-permission")
        return Availability(True, version)

    def record(self, request: RecordRequest) -> "PySpyRecording":
        """Start one ``py-spy record`` per target process (see :class:`PySpyRecording`)."""
        return PySpyRecording(request, request.options or PySpyRecordOptions(), find_pyspy() or "py-spy")


@dataclass(frozen=True)
class PySpyRecordOptions:
    """py-spy's own switches, surfaced (``profkit attach … --collector py-spy``)."""

    subprocesses: bool = option(False, "also profile the target's subprocesses (py-spy --subprocesses)")
    native: bool = option(False, "include native C/C++/Cython frames (py-spy --native)")
    gil: bool = option(False, "only samples holding the GIL (py-spy --gil)")
    idle: bool = option(False, "include idle threads (py-spy --idle); implied by --mode wall")
    nonblocking: bool = option(False, "do not pause the target while sampling: lower overhead, less exact (py-spy "
                                      "--nonblocking); profkit's cpu mode always samples this way")
    blocking: bool = option(False, "cpu mode: pause the target for each sample, as py-spy does by default; its "
                                   "threads then look running for a moment after each pause, so blocked threads "
                                   "are counted on-CPU")
    threads: bool = option(False, "a root frame per thread (py-spy --threads)")
    timeline: bool = option(True, "cpu mode: time each sample (speedscope, placed by profkit's time poll: the run "
                                  "gets timeline.bin); --no-timeline: py-spy's own folded output, no time, less "
                                  "CPU for profkit (the agent's default)")
    lines: bool = option(False, "a frame per source line (without it py-spy aggregates by function: --function)")
    time_poll: float = option(0.02, "cpu mode: seconds between profkit's reads of the target threads' on-CPU time "
                                    "(/proc), which place py-spy's samples in time: shorter is finer and costs "
                                    "profkit more CPU (the agent reads every 0.1 s)")


PySpyCollector.RecordOptions = PySpyRecordOptions


class PySpyRecording(Recording):
    """``py-spy record -p PID`` per process, each told the duration so it ends by itself: cpu mode
    as ``--format speedscope`` with profkit's on-CPU time poll beside it (``raw/py-spy-PID.json``
    and ``.runtime``, :mod:`collectors.pyspy_placed`), wall mode as ``chrometrace``
    (:mod:`collectors.pyspy_trace`), ``--subprocesses``/``--gil``/``--no-timeline`` as ``raw``
    (``.folded``, no time).

    py-spy writes its output when it ends (on its duration or on SIGINT), straight into
    ``raw/``; on SIGTERM it exits *without* writing it. So its parent-death
    signal is SIGINT: a profkit killed by SIGKILL still leaves every sample on disk. Blocking
    mode (the default) pauses the target for each sample; py-spy resumes it before it exits.
    """

    parse_options = PySpyOptions(format="raw")

    def __init__(self, request: RecordRequest, options: PySpyRecordOptions, exe: str):
        import math

        self.request, self.options = request, options
        idle = options.idle or request.mode == "wall"
        # py-spy reads each thread's state in /proc before it pauses the target; pausing (its
        # default) interrupts every blocking call, and a thread is then briefly running again as
        # it restarts the call: the next read finds it 'R' (on a busy machine, often). Without
        # pausing, the states are the kernel's own: cpu mode means on-CPU.
        nonblocking = options.nonblocking or (not idle and not options.blocking)
        self.detail = {"sampling": f"{request.rate} samples/s of " + (
            "every thread, running or waiting (py-spy --idle)" if idle else
            "each thread running on a CPU, by its state in /proc (py-spy " +
            ("--gil: only the thread holding the GIL)" if options.gil else
             "--nonblocking: the target is never paused, so its blocked threads are not counted running)"
             if nonblocking else "pausing the target for each sample: blocked threads may be counted running)"))}
        self.tools: List[ChildTool] = []
        self.outputs: List[str] = []
        self.raw: Dict[int, str] = {}
        self.commands = []
        # wall mode samples every thread at every tick: chrometrace's spans then are the samples,
        # with their times (collectors/pyspy_trace.py); cpu mode records speedscope, placed in
        # time by the threads' on-CPU time (collectors/pyspy_placed.py); --subprocesses/--gil and
        # --no-timeline: raw (py-spy aggregates, profkit parses one line per stack)
        from collectors.pyspy_placed import RuntimePoller, runtime_path

        timed = idle and not options.subprocesses
        placed = not idle and not options.subprocesses and not options.gil and options.timeline
        fmt = "chrometrace" if timed else "speedscope" if placed else "raw"
        import time as _time

        self.parse_options = (PySpyOptions(format="chrometrace", rate=float(request.rate), threads=options.threads,
                                           lines=options.lines, start=_time.time()) if timed else
                              PySpyOptions(format="speedscope", placed=True, start=_time.time()) if placed else
                              PySpyOptions(format="raw"))
        self.pollers: List[RuntimePoller] = []
        for pid in request.pids:
            out = raw_path(request.raw_dir, "py-spy", pid, "folded" if fmt == "raw" else "json")
            self.raw[pid] = out
            if placed:  # py-spy says "Sampling process …" on stdout once attached; its exit ends sampling
                said_path, n = out + ".stdout", len(self.tools)
                self.pollers.append(RuntimePoller(
                    pid, runtime_path(out), begun=lambda p=said_path: os.path.exists(p) and os.path.getsize(p) > 0,
                    alive=lambda n=n: len(self.tools) <= n or self.tools[n].poll() is None,
                    interval=options.time_poll).start())
            cmd = [exe, "record", "--pid", str(pid), "--rate", str(request.rate),
                   "--duration", str(max(1, math.ceil(request.duration)) + 1), "--format", fmt, "--output", out]
            for flag in ("subprocesses", "native", "gil", "threads"):
                if getattr(options, flag) or (timed and flag == "threads"):
                    cmd.append("--" + flag)
            if nonblocking:
                cmd.append("--nonblocking")
            if not options.lines:
                cmd.append("--function")
            if options.idle or request.mode == "wall":
                cmd.append("--idle")
            self.commands.append(cmd)
            self.outputs.append(out)
            err, said = open(out + ".stderr", "wb"), open(out + ".stdout", "wb")
            try:
                self.tools.append(ChildTool(cmd, stdout=said, stderr=err, death_signal=signal.SIGINT).start())
            except FileNotFoundError:
                for poller in self.pollers:
                    poller.stop()
                raise CollectorNotInstalled("py-spy is not installed", hint="pip install py-spy") from None
            finally:
                err.close()
                said.close()

    def poll(self) -> bool:
        return any(t.poll() is None for t in self.tools)

    def progress(self) -> str:
        return "py-spy writes its capture when it ends" if self.poll() else ""

    def stop(self) -> None:
        for t in self.tools:
            if t.poll() is None:
                try:
                    t.proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
                except ProcessLookupError:
                    pass

    def finish(self, timeout: float = 30.0) -> List[str]:
        failures = []
        for tool, out in zip(self.tools, self.outputs):
            if tool.wait(timeout) is None:
                tool.stop(grace=1.0)
        for poller in self.pollers:  # after py-spy's last sample
            poller.stop()
        for tool, out in zip(self.tools, self.outputs):
            rc = tool.proc.returncode
            err_path = out + ".stderr"
            err = read_small(err_path)
            if rc != 0 and not (os.path.exists(out) and os.path.getsize(out) > 0):
                failures.append(CollectorFailed(tool.argv, rc, err, hint=_pyspy_hint(err)))
            elif not err.strip():
                os.unlink(err_path)
            self._count_errors(out)
        got = [o for o in self.outputs if os.path.exists(o)]
        if failures and not got:
            raise failures[0]
        return got


    #: samples py-spy could not take ("Samples: N Errors: M" when it ends), as engine losses
    losses: List[Dict[str, Any]] = []

    def _count_errors(self, out: str) -> None:
        said = read_small(out + ".stdout")
        m = re.search(r"Samples: (\d+) Errors: (\d+)", said)
        if m and int(m.group(2)):
            self.losses = self.losses + [{"reason": f"py-spy could not read the target {m.group(2)} times",
                                          "seconds": int(m.group(2)) / self.request.rate, "pid": pid_of_raw(out)}]
        try:
            os.unlink(out + ".stdout")
        except OSError:
            pass

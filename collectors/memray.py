# SPDX-License-Identifier: Apache-2.0
"""``memray``: Python allocations, recorded inside the target by ``memray attach``.

Recording (``profkit attach --mode alloc`` on a Python process, and ``profkit heap``):

    memray attach --method lldb --trace-python-allocators --aggregate --duration S -o raw/memray-PID.bin PID

* ``--method lldb`` first: on some kernels gdb cannot attach ("Couldn't write extended state
  status"); gdb is the fallback when lldb is missing or fails to attach.
* ``--trace-python-allocators`` records pymalloc's small objects too, so that a leak made of many
  small strings is blamed on the line that made them, not on the arena allocation that happened
  to hold them. https://bloomberg.github.io/memray/run.html#python-allocators
* ``--aggregate`` keeps the capture small (stacks are merged in the target; the file carries
  memory snapshots over time and the allocations still live when tracking ends).
* ``--duration`` makes the tracker inside the target end by itself, so nothing is left running
  if profkit dies. profkit never runs ``memray detach``: a second injection while a tracker is
  active crashed targets here (see :meth:`MemrayRecording.stop`), so on Ctrl-C profkit waits
  for the tracker's own end (or leaves it to end by itself and says so).

memray runs *inside* the target: the target's interpreter must be able to import memray (the
same one profkit's memray comes from, or one with memray installed). Attaching while another
tracker is still active crashed a target here (SIGSEGV in a gunicorn worker), so profkit attaches
once per process and run, and waits for its tracker to end (or detaches it) before returning.
A tracker that has ended leaves memray's module loaded; attaching again then is fine.

Parsing reads the capture with memray's own reader (``memray.FileReader``): the live (leaked)
allocations at the end of tracking, by Python stack, in bytes.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from profkit.errors import (CaptureFormatError, CollectorFailed, Diagnostics, EnvironmentProblem, PermissionDenied,
                            TargetUnsupported)
from profkit.inputs import Source
from profkit.model import Frame, FrameKind, Profile, ProfileMeta
from profkit.namespaces import ContainerDir, Namespaces, host_path, namespaces_of
from profkit.options import option
from profkit.targets import ChildTool, ptrace_problem

from collectors.base import Availability, Collector, NoOptions, RecordRequest, Recording, Sniff

__all__ = ["MemrayCollector", "MemrayRecordOptions", "MemrayRecording", "allocator_totals",
           "live_allocations", "memory_snapshots", "reader_errors"]

#: memray's capture files start with this magic (``MEMRAY`` plus NUL).
MAGIC = b"memray\x00"
INSTALL_HINT = "pip install memray (into the target's interpreter too: memray runs inside it)"
#: Seconds one ``memray attach`` may take (lldb loads symbols first; against an interpreter without
#: symbols, e.g. a distribution's stripped python3, lldb was seen to hang instead of failing).
ATTACH_TIMEOUT = 20.0
#: Frames kept per stack.
MAX_STACK = 64
#: The module ``memray attach`` injects; allocations under it are memray's own.
HOOK_FILE = "_memray_attach_hook.py"


@dataclass(frozen=True)
class MemrayRecordOptions:
    """Options of ``memray attach``."""

    native: bool = option(False, "include native C/C++/Cython frames (memray attach --native; slower)")


def _memray_version() -> Optional[str]:
    try:
        import memray
    except ImportError:
        return None
    return getattr(memray, "__version__", "")


def debuggers() -> List[str]:
    """The attach methods available here, in the order to try them (lldb first, gdb as fallback)."""
    return [m for m in ("lldb", "gdb") if shutil.which(m)]


class MemrayCollector(Collector):
    """memray: Python allocations in bytes (live at the end), recorded with ``memray attach``."""

    id = "memray"
    summary = "Python allocations (memray attach): live bytes by stack, and heap size over time"
    binary_input = True
    RecordOptions = MemrayRecordOptions
    modes = {"python": ("alloc", "heap")}
    defaults = {"python": 1}

    def sniff(self, head: bytes) -> Sniff:
        return Sniff.YES if head.startswith(MAGIC) else Sniff.NO

    def check(self, runtime: str = "", mode: str = "", options: Any = None) -> Availability:
        """memray importable here, lldb or gdb installed, a Python target and ptrace allowed."""
        version = _memray_version()
        if version is None:
            return Availability(False, reason="memray is not installed", hint=INSTALL_HINT, kind="not-installed")
        refused = self.refusal(runtime, mode, version)
        if refused:
            return refused
        if not debuggers():
            return Availability(False, version, reason="memray attach needs lldb or gdb, and neither is installed",
                                hint="apt-get install lldb", kind="not-installed")
        problem = ptrace_problem()
        if problem:
            return Availability(False, version, reason=problem[0], hint=problem[1], kind="no-permission")
        return Availability(True, version)

    def record(self, request: RecordRequest) -> "MemrayRecording":
        """Attach memray to each target process; raises if it could attach to none."""
        return MemrayRecording(request, request.options or MemrayRecordOptions()).begin()

    def parse(self, source: Source, options: Any, diag: Diagnostics) -> Profile:
        path = source.path
        if path is None:
            raise CaptureFormatError("memray captures are binary files: give a path, not stdin")
        return live_allocations(path, diag)


def _attach_argv(method: str, pid: int, duration: float, out: str, options: MemrayRecordOptions) -> List[str]:
    argv = [sys.executable, "-m", "memray", "attach", "--method", method, "--trace-python-allocators",
            "--aggregate", "--duration", str(max(1, int(round(duration)))), "-f", "-o", out]
    if options.native:
        argv.append("--native")
    return argv + [str(pid)]


def _run(argv: List[str], timeout: float) -> Tuple[int, str]:
    """Run a short memray command as profkit's child; (exit code, output). A command still
    running after ``timeout`` is stopped and gives exit code 124 (as timeout(1) does)."""
    with tempfile.TemporaryFile() as buf:
        tool = ChildTool(argv, stdout=buf, stderr=subprocess.STDOUT)
        tool.start()
        rc = tool.wait(timeout)
        if rc is None:
            tool.stop(grace=3.0, term_grace=3.0)
            rc = 124
        buf.seek(0)
        return rc, buf.read(16384).decode("utf-8", "replace")


class MemrayRecording(Recording):
    """memray trackers inside the targets, each ending by itself after ``duration`` seconds."""

    parse_options = NoOptions()
    #: Seconds :meth:`finish` waits for trackers to end by themselves; one that ends later is left
    #: to do so (never detached) and its capture is complete in raw/ then (``profkit render`` reads it).
    MAX_WAIT = 15.0

    def __init__(self, request: RecordRequest, options: MemrayRecordOptions):
        self.request, self.options = request, options
        self.commands: List[List[str]] = []
        self.raw: Dict[int, str] = {}
        self.ends: Dict[int, float] = {}
        self.methods: Dict[int, str] = {}
        self.attach_seconds: Dict[int, float] = {}
        #: figures for the run record: the slowest attach, in seconds, and what memray samples
        self.detail: Dict[str, Any] = {"sampling": "every allocation while tracking (memray records each one, "
                                                   "no sampling), weighed in bytes still live at its end"}
        self._stopped = False
        #: profkit's directory inside each target that lives in a container
        self.boxes: Dict[int, ContainerDir] = {}

    def begin(self) -> "MemrayRecording":
        failures: List[EnvironmentProblem] = []
        for pid in self.request.pids:
            try:
                self._attach(pid)
            except EnvironmentProblem as e:
                failures.append(e)
                box = self.boxes.pop(pid, None)
                if box is not None:
                    box.remove()
        if not self.raw and failures:
            raise failures[0]
        return self

    def _fetch(self, pid: int) -> None:
        box = self.boxes.get(pid)
        if box is not None and pid in self.raw:
            box.fetch(os.path.basename(self.raw[pid]), self.raw[pid])

    def _attach(self, pid: int) -> None:
        out = os.path.join(self.request.raw_dir, f"memray-{pid}.bin")
        written, prefix = out, []
        ns = namespaces_of(pid)
        if ns.isolated:
            # in a container: the tracker writes inside it; profkit copies the capture back
            prefix = container_prerequisites(pid, ns)
            box = self.boxes[pid] = ContainerDir(pid, "memray")
            written = box.path(os.path.basename(out))
        failures: List[Tuple[str, str]] = []
        for method in debuggers():
            argv = prefix + _attach_argv(method, pid, self.request.duration, written, self.options)
            self.commands.append(argv)
            t0 = time.monotonic()
            rc, text = _run(argv, ATTACH_TIMEOUT)
            if rc == 124:
                # memray's debugger script waits for the target's next call to malloc, free or
                # PyMem_*: a process that is idle, or loops over objects Python keeps in free
                # lists, may make none for as long as it likes. Another debugger would wait too.
                raise EnvironmentProblem(
                    f"memray could not attach to process {pid} within {ATTACH_TIMEOUT:.0f} s: it starts at the "
                    f"process's next call to malloc or free, and this one made none (idle, or a pure-computation "
                    f"loop); nothing in the process was changed",
                    hint="profile allocations while the process serves requests, or use profkit heap --no-allocations")
            if prefix and "reassociate to namespace" in text:
                raise PermissionDenied(f"cannot enter process {pid}'s network namespace for memray attach: "
                                       f"{_last_words(text)}",
                                       hint="entering another network namespace (setns) needs CAP_SYS_ADMIN: add it "
                                            "(docker --cap-add SYS_ADMIN), or run profkit in the target's network "
                                            "namespace (a sidecar in the same pod)")
            if "No module named 'memray'" in text or "No module named \"memray\"" in text:
                raise TargetUnsupported(f"process {pid} cannot import memray, so memray cannot track it",
                                               hint="install memray into the target's interpreter (pip install memray)")
            if rc == 0 and "tracking" in text.lower():
                self.raw[pid] = out
                self.methods[pid] = method
                self.attach_seconds[pid] = round(time.monotonic() - t0, 2)
                self.detail["attach_seconds"] = max(self.attach_seconds.values())
                self.ends[pid] = time.monotonic() + max(1, int(round(self.request.duration)))
                return
            failures.append((method, text))
        problem = ptrace_problem()
        if problem:
            raise PermissionDenied(f"memray cannot attach to process {pid}: {problem[0]}", hint=problem[1])
        # lldb's answer first: gdb, the fallback, fails on some kernels for reasons of its own
        method, text = failures[0] if failures else ("lldb", "")
        raise CollectorFailed(self.commands[-1] if self.commands else ["memray", "attach"], 1,
                              f"{method}: {_last_words(text)}",
                              hint="memray attach needs lldb (or gdb), ptrace, and a Python 3.7+ target with symbols")

    def poll(self) -> bool:
        return not self._stopped and any(time.monotonic() < end for end in self.ends.values())

    def stop(self) -> None:
        """Stop waiting. The trackers are *not* detached: on this kind of machine a second lldb
        injection (``memray detach``, or another attach) while a tracker is active crashed the
        target with SIGSEGV, so each tracker always ends by itself at its ``--duration``."""
        self._stopped = True

    def remaining(self) -> float:
        """Seconds until the last tracker ends by itself."""
        return max([0.0] + [end - time.monotonic() for end in self.ends.values()])

    def finish(self, timeout: float = 30.0) -> List[str]:
        """Wait for each tracker to end and its capture to be readable; return the complete
        captures. Trackers that end more than :attr:`MAX_WAIT` seconds from now are not waited
        for (nor detached): that is an error saying when their captures will be complete."""
        self.stop()
        left = self.remaining()
        if left > self.MAX_WAIT:
            files = ", ".join(f"raw/{os.path.basename(p)}" for p in self.raw.values())
            raise EnvironmentProblem(f"the memray tracker in the target ends by itself in {left:.0f} s (it is never "
                                     f"detached: that can crash the target); its capture will then be complete in "
                                     f"{files}", hint="run profkit render RUN_DIR after that to read it")
        out = []
        deadline = time.monotonic() + max(timeout, left + 20)
        for pid, path in self.raw.items():
            while time.monotonic() < deadline:
                self._fetch(pid)
                if time.monotonic() >= self.ends[pid] and _readable(path):
                    break
                if not os.path.exists(f"/proc/{pid}") and time.monotonic() >= self.ends[pid]:
                    break
                time.sleep(0.2)
            if os.path.exists(path) and os.path.getsize(path) > 0 and _readable(path):
                out.append(path)
        for box in self.boxes.values():
            box.remove()
        return out


def container_prerequisites(pid: int, ns: Namespaces) -> List[str]:
    """What ``memray attach`` needs for a target in a container, checked through ``/proc/PID/root``
    (raising a specific error where it is missing), and the command prefix that runs it in the
    target's network namespace when that is not profkit's.

    memray's debugger script makes the target load memray's ``_inject`` library *by the path it
    has in profkit's own memray*, the injected code connects back to ``memray attach`` over TCP
    on localhost, then imports ``memray`` in the target's interpreter: so the container must
    hold memray at the same path (the same image as profkit's, or a volume mounted at that path),
    and share profkit's network namespace or let profkit enter it (``nsenter --net``, which needs
    CAP_SYS_ADMIN)."""
    import memray._memray as native

    lib_dir = os.path.dirname(native.__file__)
    injector = [n for n in os.listdir(lib_dir) if n.startswith("_inject.")]
    if not injector or not os.path.exists(host_path(pid, os.path.join(lib_dir, injector[0]))):
        raise TargetUnsupported(
            f"process {pid} runs in a container that has no memray at {lib_dir}: memray attach makes the target load "
            "memray's injector by the path of profkit's own memray and import memray in the target's interpreter",
            hint=f"install memray into the container's Python at the same path as profkit's ({lib_dir}), e.g. run "
                 "profkit from the target's image, or use profkit heap --no-allocations (RSS/USS only)")
    if not ns.other_net:
        return []
    nsenter = shutil.which("nsenter")
    if nsenter is None:
        raise TargetUnsupported(f"process {pid} has a network namespace of its own and nsenter is not installed: "
                                "memray attach talks to its tracker over localhost inside the target",
                                hint="apt-get install util-linux, or run profkit in the target's network namespace")
    return [nsenter, f"--net=/proc/{pid}/ns/net", "--"]


def _last_words(text: str) -> str:
    """The end of a debugger's output without Python traceback lines (the last error line)."""
    lines = [l.strip() for l in text.splitlines() if l.strip()]
    meaningful = [l for l in lines if not l.startswith(("File \"", "Traceback", "^")) and set(l) != {"^"}]
    return " ".join(" ".join(meaningful[-3:]).split()[-40:])


def _readable(path: str) -> bool:
    try:
        import memray
    except ImportError:
        return False
    try:
        with memray.FileReader(path) as reader:
            return reader.metadata.end_time is not None
    except (OSError, ValueError):  # memray's answer for a file still being written
        return False


def _reader(path: str):
    try:
        import memray
    except ImportError:
        raise CaptureFormatError(f"{path}: reading a memray capture needs memray", hint=INSTALL_HINT) from None
    try:
        return memray.FileReader(path)
    except (OSError, ValueError, RuntimeError) as e:  # memray's reader raises OSError for a bad file
        raise CaptureFormatError(f"not a readable memray capture ({e})", location=path) from None


@contextlib.contextmanager
def reader_errors(diag: Optional[Diagnostics], what: str = "memray"):
    """Turn what memray's C++ reader writes to file descriptor 2 while the block runs (``Failed to
    process aggregated allocation record``…) into warnings, each distinct line once with its count:
    an error a tool wrote during a run is never lost on a terminal."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines = [l.strip() for l in tmp.read(1 << 20).decode("utf-8", "replace").splitlines() if l.strip()]
    if diag is not None:
        for line, n in Counter(lines).items():
            diag.warn(f"{what}: {line}" + (f" ({n} times)" if n > 1 else ""))


def memory_snapshots(path: str, diag: Optional[Diagnostics] = None) -> List[dict]:
    """Heap size over time from a capture: ``[{"time": epoch seconds, "rss": bytes, "heap": bytes}]``."""
    with reader_errors(diag, "memray reader"):
        reader = _reader(path)
        try:
            return [{"time": s.time / 1000.0, "rss": s.rss, "heap": s.heap} for s in reader.get_memory_snapshots()]
        finally:
            reader.close()


def allocator_totals(path: str, diag: Optional[Diagnostics] = None) -> Dict[str, int]:
    """Bytes live at the end of tracking by kind of allocator: ``python`` (pymalloc: Python
    objects, with ``--trace-python-allocators``) and ``native`` (malloc, calloc, realloc, mmap…:
    C libraries and extension modules, and Python's own large buffers)."""
    out = {"python": 0, "native": 0}
    with reader_errors(diag, "memray reader"):
        reader = _reader(path)
        try:
            for rec in reader.get_leaked_allocation_records(merge_threads=True):
                kind = "python" if "PYMALLOC" in str(getattr(rec, "allocator", "")).upper() else "native"
                out[kind] += int(rec.size)
        finally:
            reader.close()
    return out


def _frame(fn: str, file: str, line: int) -> Frame:
    def clean(s: str) -> str:  # ';' separates frames in folded text; a newline ends its line
        return s.replace(";", "|").replace("\n", " ")

    return Frame(clean(fn), FrameKind.PYTHON, clean(file), line if isinstance(line, int) else None)


def live_allocations(path: str, diag: Optional[Diagnostics] = None) -> Profile:
    """The allocations made while tracking and still live at its end, by stack (root first), in bytes."""
    with reader_errors(diag, "memray reader"):
        return _live_allocations(path, diag)


def _live_allocations(path: str, diag: Optional[Diagnostics]) -> Profile:
    reader = _reader(path)
    try:
        meta = reader.metadata
        prof = Profile("bytes", ProfileMeta(collector="memray", pid=meta.pid, command=meta.command_line))
        unresolved = 0
        for rec in reader.get_leaked_allocation_records(merge_threads=True):
            try:
                stack = rec.stack_trace(max_stacks=MAX_STACK)
            except (ValueError, RuntimeError, NotImplementedError, OSError):  # a stack memray could not resolve
                stack = []
                unresolved += 1
            if stack and stack[-1][1].endswith(HOOK_FILE):
                continue  # memray's own tracker thread, started by the attach: not the target's
            frames = tuple(_frame(fn, file, line) for fn, file, line in reversed(stack))
            if not frames:
                frames = (Frame("[no Python frame]", FrameKind.SYNTHETIC),)
            prof.add(frames, int(rec.size))
        if unresolved and diag is not None:
            diag.warn(f"{path}: memray could not resolve the stacks of {unresolved} allocation record(s): "
                      "they are shown as [no Python frame]")
        return prof
    finally:
        reader.close()

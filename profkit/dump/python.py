# SPDX-License-Identifier: Apache-2.0
"""Python targets: ``py-spy dump --pid N`` (``--json`` where this py-spy has it).

py-spy pauses the interpreter while it reads the stacks (its default, blocking mode) and
resumes it before it exits; it runs under the guard like the other ptrace tools. Thread states:
py-spy's ``active`` is ``running``, ``idle`` is ``waiting``; the thread that owns the GIL holds
a ``GIL`` lock; a thread that sleeps in futex() waits on that futex word (from ``/proc``).
"""
from __future__ import annotations

import json
import re
import subprocess
from typing import Dict, List, Optional

from profkit.dump import DumpOptions, Frame, Local, Lock, Snapshot, Thread
from profkit.dump.attach import TaskInfo, check_attachable, now_rfc3339, run_guarded, tasks_of, tool_failed
from profkit.errors import CaptureFormatError, CollectorNotInstalled
from profkit.targets import Target

__all__ = ["INSTALL_HINT", "parse_json", "parse_text", "take"]

INSTALL_HINT = "pip install py-spy"
_HELP_CACHE: Dict[str, str] = {}

# "Thread 4872 (idle): "profkit-waiter"" / "Thread 0x7F1C2B3FF640 (active+gil)" (older, no name)
_THREAD = re.compile(r'^Thread (?P<id>0x[0-9A-Fa-f]+|\d+) \((?P<status>[^)]*)\)(?:: "(?P<name>.*)")?\s*$')
# "    wait_for_the_lock (lockwait.py:24)" / "    0x7f89254a3f16 (libc.so.6)"
_FRAME = re.compile(r"^    (?P<name>\S.*?) \((?P<where>[^()]*)\)\s*$")
_VAR = re.compile(r"^            (?P<name>[^:]+): (?P<repr>.*)$")


def _help(exe: str) -> str:
    if exe not in _HELP_CACHE:
        try:
            out = subprocess.run([exe, "dump", "--help"], capture_output=True, text=True, timeout=10)
            _HELP_CACHE[exe] = out.stdout + out.stderr
        except (OSError, subprocess.TimeoutExpired):
            _HELP_CACHE[exe] = ""
    return _HELP_CACHE[exe]


def _version(exe: str) -> str:
    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout.split()
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out[-1] if out else ""


def _state(active: bool, info: Optional[TaskInfo]) -> tuple:
    """(state, detail, futex lock) of a Python thread from py-spy's flag and the kernel's view."""
    if active:
        return "running", "active", None
    detail = "idle" + (f", in {info.wchan}" if info and info.wchan else "")
    lock = Lock("futex", hex(info.futex)) if info and info.futex is not None else None
    return "waiting", detail, lock


def _frame(raw: dict) -> Frame:
    line = raw.get("line") or None
    name = str(raw.get("name") or "?")
    short = raw.get("short_filename") or raw.get("filename")
    module = raw.get("module")
    native = module is not None or (not line and name.startswith("0x"))
    variables = [Local(str(v.get("name", "?")), str(v.get("repr") if v.get("repr") is not None else ""),
                       bool(v.get("arg"))) for v in raw.get("locals") or []]
    if native:  # a native frame: its "file" is the shared object
        return Frame(name, None, None, module=str(module or short or "") or None, locals=variables)
    return Frame(name, str(raw.get("filename") or short or "") or None, int(line) if line else None,
                 locals=variables)


def parse_json(text: str, tasks: Optional[Dict[int, TaskInfo]] = None) -> List[Thread]:
    """Threads from ``py-spy dump --json`` output (a list of thread objects), in py-spy's order."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise CaptureFormatError(f"py-spy dump --json gave no JSON: {e}") from None
    if not isinstance(data, list):
        raise CaptureFormatError("py-spy dump --json: expected a list of threads")
    tasks = tasks or {}
    threads: List[Thread] = []
    for raw in data:
        if not isinstance(raw, dict):
            continue
        tid = raw.get("os_thread_id")
        info = tasks.get(tid) if isinstance(tid, int) else None
        state, detail, futex = _state(bool(raw.get("active")), info)
        name = raw.get("thread_name") or (info.name if info else "") or f"thread {raw.get('thread_id')}"
        t = Thread(str(name), tid if isinstance(tid, int) else None, state, detail,
                   [_frame(f) for f in raw.get("frames") or [] if isinstance(f, dict)],
                   waits_on=futex, runtime_id=hex(raw["thread_id"]) if isinstance(raw.get("thread_id"), int) else "")
        if raw.get("owns_gil"):
            t.holds.append(Lock("GIL"))
        threads.append(t)
    return threads


def parse_text(text: str, tasks: Optional[Dict[int, TaskInfo]] = None) -> List[Thread]:
    """Threads from ``py-spy dump`` text (for a py-spy without ``--json``): ``Thread N (idle):
    "name"`` headers, indented ``function (file:line)`` frames, ``--locals`` sections."""
    tasks = tasks or {}
    threads: List[Thread] = []
    frame: Optional[Frame] = None
    section = ""  # "Arguments:" or "Locals:": where the next --locals variables belong
    for line in text.splitlines():
        m = _THREAD.match(line)
        if m:
            raw_id, status = m.group("id"), m.group("status")
            tid = int(raw_id) if raw_id.isdigit() else None
            info = tasks.get(tid) if tid is not None else None
            state, detail, futex = _state("active" in status, info)
            name = m.group("name") or (info.name if info else "") or f"thread {raw_id}"
            threads.append(Thread(name, tid, state, detail, waits_on=futex,
                                  runtime_id="" if tid is not None else raw_id.lower()))
            if "gil" in status:
                threads[-1].holds.append(Lock("GIL"))
            frame = None
            continue
        if not threads:
            continue
        m = _FRAME.match(line)
        if m:
            frame, section = _text_frame(m.group("name"), m.group("where")), ""
            threads[-1].frames.append(frame)
            continue
        v = _VAR.match(line)
        if v and frame is not None:
            frame.locals.append(Local(v.group("name").strip(), v.group("repr"), arg=section == "Arguments:"))
        elif line.strip() in ("Arguments:", "Locals:"):
            section = line.strip()
    return threads


def _text_frame(name: str, where: str) -> Frame:
    file, sep, line = where.rpartition(":")
    if sep and line.isdigit():
        return Frame(name, file, int(line) or None)
    return Frame(name, module=where or None)  # a native frame: "(libc.so.6)"


def take(target: Target, opts: DumpOptions) -> Snapshot:
    """Dump a Python process with py-spy (run under the guard, with ``opts.timeout``)."""
    from collectors.pyspy import find_pyspy

    exe = find_pyspy()
    if exe is None:
        raise CollectorNotInstalled("py-spy is not installed (it reads Python stacks)", hint=INSTALL_HINT)
    check_attachable(target.pid, "py-spy")
    use_json = "--json" in _help(exe)
    argv = [exe, "dump", "--pid", str(target.pid)]
    argv += ["--native"] if opts.native else []
    argv += ["--locals"] if opts.locals else []
    argv += ["--json"] if use_json else []
    tasks = tasks_of(target.pid)
    started = now_rfc3339()
    run = run_guarded(argv, target.pid, opts.timeout)
    if run.rc != 0:
        raise tool_failed(run, target.pid, hint="is it a CPython or PyPy process? `profkit dump --tool eu-stack` "
                                                "shows native stacks of any process")
    threads = parse_json(run.out, tasks) if use_json else parse_text(run.out, tasks)
    threads.sort(key=lambda t: (t.id is None, t.id or 0))  # the main thread first, as the other tools
    return Snapshot(target.pid, "python", "py-spy", run.argv, started, threads, name=target.name,
                    tool_version=_version(exe), seconds=run.seconds, warnings=list(run.notes))

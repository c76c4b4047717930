# SPDX-License-Identifier: Apache-2.0
"""Native targets (and native stacks of any process): eu-stack, else gdb in batch mode.

eu-stack (elfutils) stops **one thread at a time**, only while it unwinds that thread, and is
run without source lookups (``-a -m``): file:line come afterwards from ``eu-addr2line --pid``,
which reads the process's maps and debug info without stopping it. gdb stops every thread from
its attach to its detach, while it reads symbols (hundreds of milliseconds and more); it is run
with ``-nx``, ``auto-load`` and debuginfod off (a root gdb must not run scripts found beside
the target's files, nor wait on the network). Both run under the guard
(:mod:`profkit.dump.guard`).

The kernel's view, read just before: thread names (comm), state, wait channel, and the futex
word a thread sleeps on; a thread whose innermost frames lock a pthread mutex is ``blocked`` on
that mutex, and glibc's ``__owner`` field of the mutex (read from ``/proc/PID/mem``, which stops
nothing) names the thread that holds it.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

from profkit.dump import DumpOptions, Frame, Lock, Snapshot, Thread
from profkit.dump.attach import (TaskInfo, ToolRun, check_attachable, now_rfc3339, run_guarded, run_plain, tasks_of,
                                 tool_failed)
from profkit.errors import CollectorNotInstalled
from profkit.targets import Target

__all__ = ["apply_tasks", "parse_addr2line", "parse_eu_stack", "parse_gdb", "resolve", "take"]

HINTS = {"eu-stack": "apt-get install elfutils", "gdb": "apt-get install gdb"}
#: Addresses per eu-addr2line call (the command line stays short).
ADDR2LINE_CHUNK = 500

_EU_THREAD = re.compile(r"^TID (\d+):\s*$")
_EU_FRAME = re.compile(r"^#(\d+)\s+0x([0-9a-fA-F]+)( - 1)?\s*(.*)$")
_SYMBOL_VERSION = re.compile(r"@@?[A-Za-z_]+[0-9][0-9.]*$")
_A2L_HEAD = re.compile(r"^0x([0-9a-fA-F]+): (.*)$")
_A2L_INLINED = re.compile(r"^ \(inlined by\) (.*)$")
_A2L_PLACE = re.compile(r"^(?P<name>.*?) at (?P<file>.*?)(?::(?P<line>\d+))?(?::\d+)?$")
_GDB_THREAD = re.compile(r"^Thread \d+ \((?P<what>.*)\):\s*$")
_GDB_LWP = re.compile(r"\(LWP (\d+)\)|^LWP (\d+)|process (\d+)")
_GDB_NAME = re.compile(r'"(.*)"\s*$')
_GDB_FRAME = re.compile(r"^#(\d+)\s+(?:0x([0-9a-fA-F]+) in )?(.*)$")
_GDB_AT = re.compile(r"^(.*\)) at (.+):(\d+)$")
_GDB_FROM = re.compile(r"^(.*\)) from (.+)$")
_MUTEX_LOCK = re.compile(r"pthread_mutex_(?:timed|clock)?lock|lll_lock_wait|lll_mutex_lock")


def parse_eu_stack(text: str) -> List[Tuple[Thread, List[int]]]:
    """Threads from ``eu-stack -p PID -a -m``, each with the address to look up per frame
    (the pc of the innermost frame, return address - 1 for callers, as eu-stack's ``- 1`` says)."""
    out: List[Tuple[Thread, List[int]]] = []
    for line in text.splitlines():
        m = _EU_THREAD.match(line)
        if m:
            out.append((Thread(f"thread {m.group(1)}", int(m.group(1))), []))
            continue
        f = _EU_FRAME.match(line)
        if not f or not out:
            continue
        pc = int(f.group(2), 16)
        name, module = _eu_symbol(f.group(4).strip())
        out[-1][0].frames.append(Frame(name or hex(pc), module=module, address=pc))
        out[-1][1].append(pc - 1 if f.group(3) else pc)
    return out


def _eu_symbol(rest: str) -> Tuple[str, Optional[str]]:
    """``name - /module`` (either may be missing) → (name without symbol version, module)."""
    name, module = rest, None
    if rest.startswith("- ") and rest[2:3] in ("/", "["):
        name, module = "", rest[2:]
    else:
        head, sep, tail = rest.rpartition(" - ")
        if sep and tail[:1] in ("/", "["):
            name, module = head, tail
    return _SYMBOL_VERSION.sub("", name.strip()), module


def parse_addr2line(text: str) -> Dict[int, List[Tuple[str, Optional[str], Optional[int]]]]:
    """``eu-addr2line -a -f -i -C --pretty-print`` output → address → [(function, file, line)],
    the innermost inlined function first, the real (outermost) function last."""
    table: Dict[int, List[Tuple[str, Optional[str], Optional[int]]]] = {}
    current: Optional[int] = None
    for line in text.splitlines():
        m = _A2L_HEAD.match(line)
        if m:
            current = int(m.group(1), 16)
            table[current] = [_place(m.group(2))]
            continue
        i = _A2L_INLINED.match(line)
        if i and current is not None:
            table[current].append(_place(i.group(1)))
    return table


def _place(text: str) -> Tuple[str, Optional[str], Optional[int]]:
    m = _A2L_PLACE.match(text)
    if not m:
        return text.strip(), None, None
    file, line = m.group("file"), m.group("line")
    if file in ("??", ""):
        return m.group("name"), None, None
    if not os.path.isabs(file):
        file = os.path.normpath(file)
    return m.group("name"), file, int(line) if line and int(line) > 0 else None


def resolve(threads: List[Tuple[Thread, List[int]]],
            table: Dict[int, List[Tuple[str, Optional[str], Optional[int]]]]) -> List[Thread]:
    """Give eu-stack's frames their file:line, and the inlined functions as frames of their own."""
    out: List[Thread] = []
    for thread, lookups in threads:
        frames: List[Frame] = []
        for frame, addr in zip(thread.frames, lookups):
            chain = table.get(addr) or []
            for name, file, line in chain[:-1]:
                frames.append(Frame(name, file, line, module=frame.module, note="inlined"))
            if chain:
                name, file, line = chain[-1]
                frame.file, frame.line = file, line
                if frame.name.startswith("0x") and name not in ("??", ""):
                    frame.name = name
            frames.append(frame)
        thread.frames = frames
        out.append(thread)
    return out


def parse_gdb(text: str) -> List[Thread]:
    """Threads from gdb's ``thread apply all bt`` (``Thread 2 (Thread 0x… (LWP 5417) "name"):``
    headers, ``#1  0x… in function (args) at file.c:30`` or ``… from /lib/libc.so.6`` frames)."""
    threads: List[Thread] = []
    for line in text.splitlines():
        m = _GDB_THREAD.match(line)
        if m:
            what = m.group("what")
            lwp, name = _GDB_LWP.search(what), _GDB_NAME.search(what)
            tid = int(next(g for g in lwp.groups() if g)) if lwp else None
            threads.append(Thread(name.group(1) if name else f"thread {tid}", tid))
            continue
        f = _GDB_FRAME.match(line)
        if f and threads:
            threads[-1].frames.append(_gdb_frame(f.group(3), f.group(2)))
    return threads


def _gdb_frame(rest: str, address: Optional[str]) -> Frame:
    file = module = None
    line = None
    at, frm = _GDB_AT.match(rest), _GDB_FROM.match(rest)
    if at:
        rest, file, line = at.group(1), os.path.normpath(at.group(2)), int(at.group(3))
    elif frm:
        rest, module = frm.group(1), frm.group(2)
    name, _args = _split_args(rest)
    return Frame(name or "??", file, line, module=module, address=int(address, 16) if address else None)


def _split_args(rest: str) -> Tuple[str, str]:
    """``name (args)`` → (name, args): the last balanced parenthesis group is the arguments."""
    rest = rest.rstrip()
    if not rest.endswith(")"):
        return rest, ""
    depth = 0
    for i in range(len(rest) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(rest[i], 0)
        if depth == 0:
            return rest[:i].rstrip(), rest[i + 1:-1]
    return rest, ""


# -- the kernel's view -----------------------------------------------------------------------
_KERNEL_STATES = {"R": "running", "S": "waiting", "D": "waiting", "I": "waiting", "T": "stopped", "t": "stopped"}


def _mutex_owner(pid: int, address: int) -> Optional[int]:
    """glibc's ``pthread_mutex_t.__data.__owner`` (the TID holding it; at byte 8 on Linux ABIs),
    read from ``/proc/PID/mem`` (no stop, no ptrace attach); None if unreadable."""
    try:
        fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    except OSError:
        return None
    try:
        raw = os.pread(fd, 4, address + 8)
    except OSError:
        return None
    finally:
        os.close(fd)
    return int.from_bytes(raw, sys.byteorder) if len(raw) == 4 else None


def apply_tasks(threads: List[Thread], tasks: Dict[int, TaskInfo], pid: Optional[int] = None) -> List[Thread]:
    """Names, states and futex waits from the kernel (read before the tool stopped anything);
    a thread locking a pthread mutex is ``blocked`` on it, and with ``pid`` the mutex's owner
    (read from the process's memory) holds it. Threads come back in TID order."""
    by_tid = {t.id: t for t in threads if t.id is not None}
    for t in threads:
        info = tasks.get(t.id) if t.id is not None else None
        if info is None:
            continue
        if info.name and (t.name.startswith("thread ") or not t.name):
            t.name = info.name
        t.state = _KERNEL_STATES.get(info.state, "unknown")
        t.detail = info.state + (f" in {info.wchan}" if info.wchan else "")
        if info.futex is None:
            continue
        locking = any(_MUTEX_LOCK.search(f.name) for f in t.frames[:6])
        t.waits_on = Lock("mutex" if locking else "futex", hex(info.futex))
        if locking:
            t.state = "blocked"
            owner = _mutex_owner(pid, info.futex) if pid is not None else None
            if owner in by_tid and owner != t.id:
                by_tid[owner].holds.append(Lock("mutex", hex(info.futex)))
    return sorted(threads, key=lambda t: (t.id is None, t.id or 0))


# -- running the tools -----------------------------------------------------------------------
def _find(tool: Optional[str]) -> Tuple[str, str]:
    """(tool id, path): the one asked for, else eu-stack, else gdb; CollectorNotInstalled if none."""
    for name in ([tool] if tool else ["eu-stack", "gdb"]):
        path = shutil.which(name)
        if path:
            return name, path
    if tool:
        raise CollectorNotInstalled(f"{tool} is not installed", hint=HINTS[tool])
    raise CollectorNotInstalled("no native stack tool: neither eu-stack (elfutils) nor gdb is installed",
                                hint="apt-get install elfutils (or: apt-get install gdb)")


def _version(path: str) -> str:
    try:
        first = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    words = first.splitlines()[0].split() if first.strip() else []
    return words[-1] if words else ""


def _eu_stack(path: str, pid: int, deadline: float, warnings: List[str]) -> Tuple[ToolRun, List[Thread]]:
    run = run_guarded([path, "-p", str(pid), "-a", "-m"], pid, max(0.1, deadline - time.monotonic()))
    parsed = parse_eu_stack(run.out)
    if run.rc not in (0, 1) or not parsed:
        raise tool_failed(run, pid)
    if run.rc == 1:
        problems = [line for line in run.err.splitlines() if line.strip()]
        warnings.append(f"eu-stack: some frames could not be unwound ({len(problems)} messages"
                        + (f"; first: {problems[0][:160]}" if problems else "") + ")")
    lookups = sorted({a for _, addrs in parsed for a in addrs})
    table: Dict[int, List[Tuple[str, Optional[str], Optional[int]]]] = {}
    a2l = shutil.which("eu-addr2line") or os.path.join(os.path.dirname(path), "eu-addr2line")
    for i in range(0, len(lookups), ADDR2LINE_CHUNK):
        remaining = deadline - time.monotonic()
        chunk = [hex(a) for a in lookups[i:i + ADDR2LINE_CHUNK]]
        res = run_plain([a2l, "-p", str(pid), "-a", "-f", "-i", "-C", "--pretty-print", *chunk],
                        max(1.0, remaining)) if remaining > 0 and os.access(a2l, os.X_OK) else None
        found = parse_addr2line(res.out) if res is not None else {}
        if not found:  # (it exits 1 when some address is in no module, JIT code: the rest is fine)
            warnings.append("no file:line for native frames: eu-addr2line "
                            + ("is missing or out of time" if res is None else
                               f"failed (exit status {res.rc}{': ' + res.err.strip()[:160] if res.err.strip() else ''})"))
            break
        table.update(found)
    return run, resolve(parsed, table)


def _gdb(path: str, pid: int, deadline: float) -> Tuple[ToolRun, List[Thread]]:
    argv = [path, "-batch", "-nx", "-iex", "set debuginfod enabled off", "-iex", "set auto-load no",
            "-ex", "set pagination off", "-ex", f"attach {pid}", "-ex", "thread apply all bt", "-ex", "detach",
            f"/proc/{pid}/exe"]
    run = run_guarded(argv, pid, max(0.1, deadline - time.monotonic()))
    threads = parse_gdb(run.out)
    if not threads:
        raise tool_failed(run, pid)
    return run, threads


def take(target: Target, opts: DumpOptions, tool: Optional[str] = None) -> Snapshot:
    """Native stacks of every thread with eu-stack (else gdb, or ``tool``), under the guard."""
    name, path = _find(tool)
    check_attachable(target.pid, name)
    tasks = tasks_of(target.pid)
    started, deadline = now_rfc3339(), time.monotonic() + opts.timeout
    warnings: List[str] = []
    if name == "eu-stack":
        run, threads = _eu_stack(path, target.pid, deadline, warnings)
    else:
        run, threads = _gdb(path, target.pid, deadline)
    threads = apply_tasks(threads, tasks, target.pid)
    return Snapshot(target.pid, target.runtime, name, run.argv, started, threads, name=target.name,
                    tool_version=_version(path), seconds=run.seconds, warnings=run.notes + warnings)

# SPDX-License-Identifier: Apache-2.0
"""What the dump tools share: refusing targets a tool could harm, running a tool under the
guard (:mod:`profkit.dump.guard`), reading each thread's kernel state, mapping tool failures
to one-line errors."""
from __future__ import annotations

import os
import re
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Dict, List, Optional, Sequence

from profkit.errors import CollectorFailed, EnvironmentProblem, PermissionDenied, TargetNotFound
from profkit.targets import ChildTool, process_state, ptrace_problem

__all__ = ["GUARD", "TaskInfo", "ToolRun", "check_attachable", "futex_syscall", "now_rfc3339", "run_guarded",
           "run_plain", "tasks_of", "tool_failed"]

#: The guard script, run by path with ``python -I -S`` (it imports nothing of profkit).
GUARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "guard.py")
#: At most this much of a tool's output is read (a dump of thousands of threads fits).
OUTPUT_LIMIT = 256 * 1024 * 1024
#: The futex syscall number by machine (``/proc/PID/task/TID/syscall`` shows the number and args).
FUTEX_SYSCALL = {"x86_64": 202, "aarch64": 98, "riscv64": 98, "ppc64le": 221, "s390x": 238}
_PERMISSION = re.compile(r"operation not permitted|permission denied|EPERM|ptrace: ", re.I)


def now_rfc3339() -> str:
    """The current UTC time as RFC3339, to the millisecond."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _read(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "surrogateescape")
    except OSError:
        return None


def _status_field(pid: int, key: str) -> str:
    for line in (_read(f"/proc/{pid}/status") or "").splitlines():
        if line.startswith(key + ":"):
            return line.split(":", 1)[1].strip()
    return ""


@dataclass
class TaskInfo:
    """One thread as the kernel shows it, read just before a tool attaches."""

    tid: int
    name: str                       #: comm (untrusted: the program sets it)
    state: str                      #: R, S, D, T, t, …
    wchan: str = ""                 #: the kernel function it sleeps in ("" when running)
    futex: Optional[int] = None     #: the futex word it waits on, when it is in futex()


def futex_syscall(text: Optional[str], machine: Optional[str] = None) -> Optional[int]:
    """The futex address from a ``/proc/PID/task/TID/syscall`` line, when the thread is in futex()."""
    number = FUTEX_SYSCALL.get(machine or os.uname().machine)
    parts = (text or "").split()
    if number is None or len(parts) < 2 or not parts[0].isdigit() or int(parts[0]) != number:
        return None
    try:
        return int(parts[1], 16)
    except ValueError:
        return None


def tasks_of(pid: int) -> Dict[int, TaskInfo]:
    """Every thread of ``pid`` (name, state, wait channel, futex), by TID; {} if it is gone."""
    out: Dict[int, TaskInfo] = {}
    try:
        tids = sorted(int(t) for t in os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return out
    for tid in tids:
        base = f"/proc/{pid}/task/{tid}"
        stat = _read(f"{base}/stat")
        if stat is None:
            continue
        state = stat[stat.rindex(")") + 2:].split(" ", 1)[0]
        name = (_read(f"{base}/comm") or "").rstrip("\n")
        wchan = (_read(f"{base}/wchan") or "").strip()
        futex = futex_syscall(_read(f"{base}/syscall")) if state in ("S", "D") else None
        out[tid] = TaskInfo(tid, name, state, "" if wchan == "0" else wchan, futex)
    return out


def check_attachable(pid: int, tool: str, *, ptrace: bool = True) -> None:
    """Refuse a target the tool would hang on or that is not ours to resume.

    Gone or a zombie: TargetNotFound. Stopped (``T``: SIGSTOP, a shell's Ctrl-Z) or traced by
    a debugger (``t``, a TracerPid): refused, because a ptrace tool cannot attach to a traced
    process and a stopped one is somebody else's stop (profkit never resumes it). With
    ``ptrace``: PermissionDenied when this process may not ptrace at all.
    """
    state = process_state(pid)
    if state in (None, "Z", "X"):
        raise TargetNotFound(f"process {pid} exited")
    tracer = _status_field(pid, "TracerPid")
    if tracer not in ("", "0"):
        raise EnvironmentProblem(f"process {pid} is being traced by process {tracer} (a debugger?); "
                                 f"{tool} cannot attach", hint=f"detach the debugger (PID {tracer}), then retry")
    if state in ("T", "t"):
        raise EnvironmentProblem(f"process {pid} is stopped (state {state}: SIGSTOP or Ctrl-Z); "
                                 f"its stacks will not change until it runs",
                                 hint=f"resume it (kill -CONT {pid}), then retry")
    if ptrace:
        problem = ptrace_problem()
        if problem is not None:
            reason, fix = problem
            raise PermissionDenied(f"{tool} cannot attach to process {pid}: {reason}", hint=fix)


@dataclass
class ToolRun:
    """What one tool run gave: its command, exit status, output, time, and the guard's notes."""

    argv: List[str]
    rc: int
    out: str
    err: str
    seconds: float
    notes: List[str] = field(default_factory=list)


def _read_back(fh, limit: int) -> str:
    fh.seek(0)
    return fh.read(limit).decode("utf-8", "surrogateescape")


def _run(argv: Sequence[str], launch: Sequence[str], timeout: float, stop_grace: float) -> ToolRun:
    start = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        child = ChildTool(launch, stdout=out, stderr=err, death_signal=signal.SIGTERM)
        child.start()
        try:
            rc = child.wait(timeout)
            if rc is None:
                child.stop(grace=stop_grace, term_grace=2.0)
                rc = 124
        except BaseException:  # Ctrl-C, SIGTERM: stop the tool (the guard resumes the target) first
            if child.poll() is None:
                child.stop(grace=stop_grace, term_grace=2.0)
            raise
        text, errors = _read_back(out, OUTPUT_LIMIT), _read_back(err, 1024 * 1024)
    notes = [line.split(": ", 1)[1] for line in errors.splitlines() if line.startswith("profkit-guard: ")]
    errors = "\n".join(line for line in errors.splitlines() if not line.startswith("profkit-guard: "))
    return ToolRun(list(argv), rc, text, errors, time.monotonic() - start, notes)


def run_guarded(argv: Sequence[str], pid: int, timeout: float) -> ToolRun:
    """Run a ptrace-based tool under the guard: killed after ``timeout`` s, or when profkit
    dies or is interrupted, and the target resumed if the tool did not end cleanly."""
    launch = [sys.executable, "-I", "-S", GUARD, str(pid), f"{timeout:.3f}", *argv]
    # profkit's own deadline is later than the guard's, which kills the tool and resumes the target
    run = _run(argv, launch, timeout + 10.0, stop_grace=5.0)
    if run.rc == 124 and not any("timed out" in n for n in run.notes):
        run.notes.append(f"{os.path.basename(argv[0])} timed out")
    return run


def run_plain(argv: Sequence[str], timeout: float) -> ToolRun:
    """Run a tool that does not stop the target (eu-addr2line) as profkit's child, with a timeout."""
    return _run(argv, argv, timeout, stop_grace=1.0)


def tool_failed(run: ToolRun, pid: int, hint: Optional[str] = None) -> Exception:
    """The one-line error for a failed tool run: gone target, permission, timeout, or failure."""
    tool = os.path.basename(run.argv[0])
    resumed = [n for n in run.notes if "SIGCONT" in n]
    if process_state(pid) in (None, "Z"):
        return TargetNotFound(f"process {pid} exited during the dump")
    if run.rc == 124:
        return CollectorFailed(run.argv, 124, f"no stacks after the timeout; {'; '.join(run.notes)}",
                               hint=hint or "a process with very many threads takes longer: raise --timeout")
    if _PERMISSION.search(run.err) and "No such process" not in run.err:
        problem = ptrace_problem()
        fix = problem[1] if problem else ("run profkit as the target's user or as root" if os.geteuid() != 0 else
                                          "a security module (SELinux, AppArmor, Yama) or a container refuses "
                                          "ptrace: docker run --cap-add SYS_PTRACE")
        return PermissionDenied(f"{tool} may not attach to process {pid}: {_first_line(run.err)}", hint=fix)
    detail = run.err.strip() or run.out.strip()
    if resumed:
        detail = f"{detail} ({resumed[0]})" if detail else resumed[0]
    return CollectorFailed(run.argv, run.rc, detail, hint=hint)


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if _PERMISSION.search(line):
            return " ".join(line.split())[:200]
    return " ".join(text.split())[:200]

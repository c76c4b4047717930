# SPDX-License-Identifier: Apache-2.0
"""Target processes and child tools: validation, runtime detection, permission probes, a safe runner.

Target safety rules (STYLE.md lesson 13) live here:

- a target is only ever *read* (``/proc``); profkit never signals it;
- every external tool is profkit's own child, started with a parent-death signal so that it
  stops by itself if profkit dies (even by SIGKILL), in its own session so that a terminal's
  Ctrl-C reaches profkit first and profkit stops the tool in order;
- a child tool is stopped with SIGINT (profilers save what they have on it), then SIGTERM,
  then SIGKILL after timeouts.
"""
from __future__ import annotations

import ctypes
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from typing import IO, List, Optional, Sequence, Tuple

from profkit.errors import PermissionDenied, TargetNotFound, UsageError

__all__ = [
    "ChildTool",
    "Target",
    "ancestors_of",
    "compile_pattern",
    "find_by_name",
    "children_of",
    "own_family",
    "parent_death_problem",
    "inspect",
    "perf_event_paranoid",
    "ptrace_problem",
    "read_small",
    "ptrace_scope",
    "has_cap",
    "in_container",
    "process_state",
]

PF_KTHREAD = 0x00200000
CAP_SYS_ADMIN = 21
CAP_SYS_PTRACE = 19
CAP_PERFMON = 38


@dataclass
class Target:
    """A process to profile, as read from ``/proc``."""

    pid: int
    name: str                       #: the kernel's short name (comm)
    exe: str                        #: resolved executable path ("" if unreadable)
    cmdline: List[str] = field(default_factory=list)
    runtime: str = "native"         #: ``python``, ``jvm`` or ``native``
    uid: int = -1

    @property
    def command(self) -> str:
        """The command line as one string (for manifests and titles)."""
        return " ".join(self.cmdline) if self.cmdline else self.name


def _read(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as fh:
            return fh.read().decode("utf-8", "replace")
    except (FileNotFoundError, ProcessLookupError):
        return None


def process_state(pid: int) -> Optional[str]:
    """The one-letter state of a process (R, S, D, T, t, Z, …), or None if it is gone."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    return stat[stat.rindex(")") + 2:].split(" ", 1)[0]


def _detect_runtime(pid: int, exe: str, cmdline: Sequence[str]) -> str:
    maps = _read(f"/proc/{pid}/maps") or ""
    if "libjvm.so" in maps:
        return "jvm"
    base = os.path.basename(exe)
    if re.match(r"python[0-9.]*$", base) or "libpython" in maps or re.match(r"pypy[0-9.]*$", base):
        return "python"
    if cmdline and re.match(r"python[0-9.]*$", os.path.basename(cmdline[0])) and not maps:
        return "python"
    return "native"


def inspect(pid: int) -> Target:
    """Read a target from ``/proc``; raise TargetNotFound for a missing, zombie or kernel process."""
    if pid <= 0:
        raise UsageError(f"invalid PID {pid}")
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        raise TargetNotFound(f"no process with PID {pid}", hint="check the PID with `ps -p PID` or use --name PATTERN")
    name = stat[stat.index("(") + 1: stat.rindex(")")]
    rest = stat[stat.rindex(")") + 2:].split()
    state, flags = rest[0], int(rest[6])
    if flags & PF_KTHREAD:
        raise TargetNotFound(f"PID {pid} ({name}) is a kernel thread; it has no user stacks to profile",
                             hint="profile a user process, or use `perf record -a` for the whole system")
    if state == "Z":
        raise TargetNotFound(f"PID {pid} ({name}) has exited (zombie)")
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except PermissionError:
        raise PermissionDenied(f"cannot inspect PID {pid}: permission denied", hint=_inspect_hint()) from None
    except (FileNotFoundError, ProcessLookupError):
        exe = ""
    raw = _read(f"/proc/{pid}/cmdline") or ""
    cmdline = [a for a in raw.split("\0") if a]
    try:
        uid = os.stat(f"/proc/{pid}").st_uid
    except FileNotFoundError:
        raise TargetNotFound(f"process {pid} exited") from None
    return Target(pid, name, exe, cmdline, _detect_runtime(pid, exe, cmdline), uid)


def compile_pattern(pattern: str, flag: str = "--name") -> "re.Pattern[str]":
    """A user's regular expression; a bad one is a usage error (exit 2) naming the problem."""
    try:
        return re.compile(pattern)
    except re.error as e:
        raise UsageError(f"{flag} {pattern!r} is not a valid regular expression: {e}") from None


def parent_of(pid: int) -> Optional[int]:
    """The parent PID of a process (None if it is gone)."""
    stat = _read(f"/proc/{pid}/stat")
    if stat is None:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[1])


def ancestors_of(pid: int) -> List[int]:
    """The parent, grandparent, … of a process, up to PID 1 (``timeout``, ``sudo``, a wrapper
    script, the shell)."""
    out: List[int] = []
    p = parent_of(pid)
    while p and p not in out:
        out.append(p)
        p = parent_of(p)
    return out


#: PIDs of the tools profkit started (:class:`ChildTool`), so that --name never picks one.
_started: set = set()


def own_family() -> set:
    """profkit itself, its ancestors and the tools it started (and their children): never a target."""
    me = os.getpid()
    tools = set()
    for p in _started.copy():  # copy: threads add to it
        if process_state(p) in (None, "Z"):
            _started.discard(p)  # ended: forgotten (a long-running agent starts tools every window)
        else:
            tools.add(p)
    return {me, *ancestors_of(me), *tools, *(c for p in tools for c in children_of(p))}


def _inspect_hint() -> str:
    """How to be allowed to read another process's /proc entries, for who profkit runs as."""
    if os.geteuid() != 0:
        return "run profkit as the target's user or as root"
    if not has_cap(CAP_SYS_PTRACE):
        return "profkit runs as root without CAP_SYS_PTRACE (a container?): docker run --cap-add SYS_PTRACE"
    return "a security module (SELinux, AppArmor, Yama) refuses it; check its policy for profkit"


def find_by_name(pattern: str) -> List[int]:
    """PIDs whose command line matches the regex ``pattern`` — never profkit itself, its ancestors
    (``timeout 30 profkit …`` must not profile ``timeout``) nor the tools it started."""
    rx = compile_pattern(pattern)
    skip = own_family()
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in skip:
            continue
        raw = _read(f"/proc/{entry}/cmdline")
        if raw and rx.search(raw.replace("\0", " ").strip()):
            out.append(int(entry))
    return sorted(out)


def children_of(pid: int, recursive: bool = True) -> List[int]:
    """The PIDs of a process's children (and their children, with ``recursive``)."""
    found: List[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        kids: List[int] = []
        try:
            tids = os.listdir(f"/proc/{parent}/task")
        except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
            tids = []  # it ended meanwhile
        for tid in tids:
            text = _read(f"/proc/{parent}/task/{tid}/children") or ""
            kids.extend(int(x) for x in text.split())
        for k in sorted(set(kids)):
            if k not in found:
                found.append(k)
                if recursive:
                    todo.append(k)
    return found


def _int_file(path: str) -> Optional[int]:
    text = _read(path)
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def ptrace_scope() -> Optional[int]:
    """Yama's ``kernel.yama.ptrace_scope`` (0 classic, 1 restricted, 2 admin-only, 3 none), or None."""
    return _int_file("/proc/sys/kernel/yama/ptrace_scope")


def perf_event_paranoid() -> Optional[int]:
    """``kernel.perf_event_paranoid`` (-1 … 4), or None if perf events are not available."""
    return _int_file("/proc/sys/kernel/perf_event_paranoid")


def has_cap(cap: int) -> bool:
    """Whether this process has the effective capability ``cap`` (bit number)."""
    for line in (_read("/proc/self/status") or "").splitlines():
        if line.startswith("CapEff:"):
            return bool(int(line.split()[1], 16) >> cap & 1)
    return False


def in_container() -> bool:
    """A best guess whether profkit runs inside a container (Docker, Podman, Kubernetes)."""
    if os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv"):
        return True
    cg = _read("/proc/1/cgroup") or ""
    return any(k in cg for k in ("docker", "kubepods", "containerd", "libpod"))


# -- the child-tool runner -------------------------------------------------------------------
_PR_SET_PDEATHSIG = 1
_PR_GET_PDEATHSIG = 2
_prctl = None
_prctl_problem: Optional[str] = None


def _load_prctl():
    """libc's prctl, loaded once in profkit itself (never between fork and exec)."""
    global _prctl, _prctl_problem
    if _prctl is None and _prctl_problem is None:
        try:
            fn = ctypes.CDLL(None, use_errno=True).prctl
            probe = ctypes.c_int(0)
            if fn(_PR_GET_PDEATHSIG, ctypes.byref(probe), 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
            _prctl = fn
        except (OSError, AttributeError) as e:  # not Linux, or a libc without prctl
            _prctl_problem = f"prctl(PR_SET_PDEATHSIG) is unavailable ({e})"
    return _prctl


def parent_death_problem() -> Optional[str]:
    """Why child tools cannot be told to die with profkit here (None: they can)."""
    _load_prctl()
    return _prctl_problem


_SETPRIV: Optional[str] = None


def _setpriv() -> str:
    """util-linux's ``setpriv`` when it can set a parent-death signal (checked once), else "".

    A tool started through it (``setpriv --pdeathsig SIG -- TOOL ...``, exec'd in place: the same
    PID) needs no Python code between fork and exec, so the start can use ``vfork``: with a
    ``preexec_fn``, ``fork`` copies profkit's page tables and every page profkit then writes
    faults, measured at 1.6 ms of profkit's system CPU a start at 20 MB of RSS and 6 ms at 80 MB
    (an agent starts a py-spy per target and window)."""
    global _SETPRIV
    if _SETPRIV is None:
        exe = shutil.which("setpriv") or ""
        try:
            ok = exe and "--pdeathsig" in subprocess.run([exe, "--help"], capture_output=True, text=True,
                                                         timeout=5, start_new_session=True).stdout
        except (OSError, subprocess.SubprocessError):
            ok = False
        _SETPRIV = exe if ok and _load_prctl() is not None else ""
    return _SETPRIV


def _executable(argv0: str, env: Optional[dict], cwd: Optional[str]) -> bool:
    """Whether ``argv0`` names an executable file (as the exec of a tool would find it)."""
    if "/" in argv0:
        path = os.path.join(cwd or "", argv0)
        return os.path.isfile(path) and os.access(path, os.X_OK)
    return shutil.which(argv0, path=(env if env is not None else os.environ).get("PATH", os.defpath)) is not None


def _die_with_parent(sig: int, default: bool = False):
    """The function the child runs between fork and exec: die (by ``sig``) with profkit, and sit
    in a session of its own (a terminal's Ctrl-C reaches profkit, which stops the tool in order).
    ``default``: ``sig`` back to its default action first (profkit ignores it, started in the
    background by a shell: an ignored signal stays ignored across exec, so a tool without a
    handler of its own would neither stop on it nor die with profkit)."""
    prctl = _load_prctl()

    def child() -> None:
        if default:
            signal.signal(sig, signal.SIG_DFL)
        if prctl is not None:
            prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
        os.setsid()

    return child


def _ignored(sig: int) -> bool:
    """Whether profkit ignores ``sig`` (SIG_IGN, inherited from a shell that ran it with ``&``)."""
    try:
        return signal.getsignal(sig) is signal.SIG_IGN
    except (ValueError, OSError):
        return False


class ChildTool:
    """An external tool run as profkit's child: it dies with profkit, and is stopped in order.

    ``stdout``/``stderr`` are open files (the raw capture goes straight to the run directory);
    by default stdout is discarded and stderr kept for error messages. ``inherit_output`` passes
    both through to profkit's own (for a command launched by ``profkit run``).
    """

    def __init__(self, argv: Sequence[str], *, stdout: Optional[IO] = None, stderr: Optional[IO] = None,
                 env: Optional[dict] = None, cwd: Optional[str] = None, inherit_output: bool = False,
                 death_signal: int = signal.SIGTERM):
        self.argv = list(argv)
        self.inherit_output = inherit_output
        #: the signal the tool gets when profkit dies: the one it saves its capture on
        #: (py-spy writes its output on SIGINT, and exits without it on SIGTERM)
        self.death_signal = death_signal
        self._stdout, self._stderr, self._env, self._cwd = stdout, stderr, env, cwd
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> "ChildTool":
        """Start the tool (raises FileNotFoundError if its binary is missing)."""
        if self.inherit_output:
            out = err = None
        else:
            out = self._stdout if self._stdout is not None else subprocess.DEVNULL
            err = self._stderr if self._stderr is not None else subprocess.PIPE
        setpriv = "" if self.inherit_output else _setpriv()
        ignored = _ignored(self.death_signal)
        if setpriv and not ignored and self.argv and _executable(self.argv[0], self._env, self._cwd):
            # a tool: through setpriv (no preexec_fn, so vfork); a command profkit launches and
            # profiles from its first instruction is started by fork and exec of itself
            argv = [setpriv, f"--pdeathsig={signal.Signals(self.death_signal).name[3:]}", "--", *self.argv]
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                                         env=self._env, cwd=self._cwd, start_new_session=True)
        else:
            self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=self._env,
                                         cwd=self._cwd, preexec_fn=_die_with_parent(self.death_signal, ignored))
        _started.add(self.proc.pid)
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def poll(self) -> Optional[int]:
        """The exit code if the tool has ended, else None."""
        return self.proc.poll() if self.proc else None

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        """Wait for the tool to end; None if it is still running after ``timeout``."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float = 10.0, term_grace: float = 5.0) -> int:
        """SIGINT, then SIGTERM after ``grace`` s, then SIGKILL after ``term_grace`` s; returns the exit code."""
        assert self.proc is not None
        for sig, wait in ((signal.SIGINT, grace), (signal.SIGTERM, term_grace), (signal.SIGKILL, 5.0)):
            if self.proc.poll() is not None:
                break
            try:
                self.proc.send_signal(sig)
            except ProcessLookupError:
                break
            if self.wait(wait) is not None:
                break
        return self.proc.wait()

    def stderr_text(self, limit: int = 4000) -> str:
        """What the tool wrote on stderr (when it was captured by a pipe), truncated to ``limit``."""
        if self.proc is None or self.proc.stderr is None:
            return ""
        try:
            data = self.proc.stderr.read() or b""
        except (OSError, ValueError):
            return ""
        return data.decode("utf-8", "replace")[-limit:]


def read_small(path: str, limit: int = 8192) -> str:
    """The first ``limit`` bytes of a small text file (a tool's saved stderr), "" if unreadable."""
    try:
        with open(path, "rb") as fh:
            return fh.read(limit).decode("utf-8", "replace")
    except OSError:
        return ""


def ptrace_problem() -> Optional[Tuple[str, str]]:
    """``(reason, fix)`` when this process may not ptrace others (py-spy, memray attach), else None."""
    scope = ptrace_scope()
    root = os.geteuid() == 0
    if scope is not None and scope >= 3:
        return ("ptrace is disabled (kernel.yama.ptrace_scope=3)", "it can only be changed by rebooting with another setting")
    if scope == 2 and not has_cap(CAP_SYS_PTRACE):
        return ("kernel.yama.ptrace_scope=2 allows ptrace only with CAP_SYS_PTRACE",
                "run as root" + ("; in a container: docker run --cap-add SYS_PTRACE" if in_container() else ""))
    if root and not has_cap(CAP_SYS_PTRACE):
        return ("root without CAP_SYS_PTRACE (a container?)", "docker run --cap-add SYS_PTRACE (or --privileged)")
    if scope == 1 and not root and not has_cap(CAP_SYS_PTRACE):
        return ("kernel.yama.ptrace_scope=1 allows attaching only to your own child processes",
                "run as root, or `sudo sysctl kernel.yama.ptrace_scope=0`")
    return None

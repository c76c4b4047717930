# SPDX-License-Identifier: Apache-2.0
"""``profkit dump``: one snapshot of every thread's stack of a running process, now.

    dump(pid)          Target.runtime picks the tool:
                         python  py-spy dump (--json where py-spy has it)        profkit.dump.python
                         jvm     jcmd PID Thread.print -l (locks, deadlocks)     profkit.dump.jvm
                         native  eu-stack, else gdb in batch mode                profkit.dump.native
    Snapshot           threads (name, id, state, frames innermost first, locks held and waited
                       on) and the deadlocks the runtime found; .to_json() is the --json file
    render_text        the terminal view                                         profkit.dump.render

Safety: the target is never killed and never left stopped. Each tool runs as profkit's child
(it dies with profkit) with a timeout; the ptrace-based ones (py-spy, eu-stack, gdb) run under
:mod:`profkit.dump.guard`, which resumes the target if a tool dies while attached. A target
that is already stopped, or a JVM that attaching could harm, is refused before any tool runs.
Each runtime module has a pure parser of its tool's output, unit-tested on recorded captures
(``tests/data/dump/``).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from profkit.errors import UsageError

__all__ = ["DEFAULT_TIMEOUT", "TOOLS", "Deadlock", "DeadlockLink", "DumpOptions", "Frame", "Local", "Lock",
           "Snapshot", "Thread", "choose_tool", "dump", "render_text"]

#: Seconds one stack tool may run before it is stopped (and the target resumed).
DEFAULT_TIMEOUT = 60.0
#: Every tool ``dump`` can use, and the runtimes it reads.
TOOLS: Dict[str, tuple] = {
    "py-spy": ("python",),
    "jcmd": ("jvm",),
    "eu-stack": ("python", "jvm", "native"),
    "gdb": ("python", "jvm", "native"),
}
#: The default tool of each runtime (native: eu-stack, else gdb).
DEFAULT_TOOLS = {"python": "py-spy", "jvm": "jcmd", "native": None}


def _drop_empty(d: Dict[str, Any]) -> Dict[str, Any]:
    return {k: v for k, v in d.items() if v not in (None, "", [], {})}


@dataclass
class Local:
    """A local variable or argument of a frame (py-spy ``--locals``); ``repr`` is untrusted."""

    name: str
    repr: str = ""
    arg: bool = False

    def to_json(self) -> Dict[str, Any]:
        """The JSON object of this variable."""
        return {"name": self.name, "repr": self.repr, "arg": self.arg}


@dataclass
class Frame:
    """One stack frame; ``file``/``line`` are None where the tool does not know them."""

    name: str
    file: Optional[str] = None
    line: Optional[int] = None
    #: the shared object or Java module the code is in, where known
    module: Optional[str] = None
    #: "native method", "inlined", …: what the tool says about the frame besides its place
    note: str = ""
    locals: List[Local] = field(default_factory=list)
    #: the program counter (native frames; a return address for callers)
    address: Optional[int] = None

    @property
    def location(self) -> str:
        """``file:line``, ``file``, the module, or "" — for display."""
        if self.file:
            return f"{self.file}:{self.line}" if self.line else self.file
        return self.module or ""

    def to_json(self) -> Dict[str, Any]:
        """The JSON object of this frame: always name, file and line; module, note, locals if known."""
        out: Dict[str, Any] = {"name": self.name, "file": self.file, "line": self.line}
        out.update(_drop_empty({"module": self.module, "note": self.note,
                                "locals": [v.to_json() for v in self.locals],
                                "address": hex(self.address) if self.address is not None else None}))
        return out


@dataclass
class Lock:
    """A lock a thread holds or waits on.

    ``kind`` is ``monitor`` (Java ``synchronized``), ``synchronizer`` (a Java ownable
    synchronizer such as ReentrantLock), ``mutex`` (a pthread mutex), ``futex`` (some futex
    word: a condition, a semaphore, a Python lock) or ``GIL``. ``id`` is the object's or
    futex word's address as the tool prints it ("" when unknown); ``type`` its class or symbol.
    """

    kind: str
    id: str = ""
    type: str = ""

    def describe(self) -> str:
        """``<0x…> (a java.lang.Object)``-style text, as jstack prints it."""
        if self.kind == "GIL":
            return "the GIL"
        what = f"<{self.id}>" if self.id else "<unknown>"
        if self.type:
            what += f" (a {self.type})" if self.kind in ("monitor", "synchronizer") else f" ({self.type})"
        return f"{self.kind} {what}" if self.kind in ("mutex", "futex") else what

    def to_json(self) -> Dict[str, Any]:
        """The JSON object of this lock."""
        return _drop_empty({"kind": self.kind, "id": self.id, "type": self.type})


@dataclass
class Thread:
    """One thread: names and ids as the tool and the kernel give them, state, frames, locks.

    ``state`` is one of ``running``, ``waiting``, ``blocked`` (waiting for a lock another
    thread holds), ``sleeping``, ``stopped`` or ``unknown``; ``detail`` is the tool's or the
    kernel's own word (``BLOCKED (on object monitor)``, ``idle``, ``futex_do_wait``).
    """

    name: str
    id: Optional[int] = None            #: the OS thread id (TID), where known
    state: str = "unknown"
    detail: str = ""
    frames: List[Frame] = field(default_factory=list)
    holds: List[Lock] = field(default_factory=list)
    waits_on: Optional[Lock] = None
    #: the runtime's own id: ``#12`` (Java), the Python thread id
    runtime_id: str = ""

    def to_json(self) -> Dict[str, Any]:
        """The JSON object of this thread."""
        out: Dict[str, Any] = {"name": self.name, "id": self.id, "state": self.state,
                               "frames": [f.to_json() for f in self.frames],
                               "holds": [h.to_json() for h in self.holds],
                               "waits_on": self.waits_on.to_json() if self.waits_on else None}
        out.update(_drop_empty({"detail": self.detail, "runtime_id": self.runtime_id}))
        return out


@dataclass
class DeadlockLink:
    """One edge of a deadlock cycle: ``thread`` waits on ``lock``, which ``held_by`` holds."""

    thread: str
    lock: Lock
    held_by: str

    def to_json(self) -> Dict[str, Any]:
        """The JSON object of this edge."""
        return {"thread": self.thread, "waits_on": self.lock.to_json(), "held_by": self.held_by}


@dataclass
class Deadlock:
    """A cycle of threads each waiting for a lock the next one holds (as the runtime found it)."""

    links: List[DeadlockLink] = field(default_factory=list)

    @property
    def threads(self) -> List[str]:
        """The names of the threads in the cycle."""
        return [link.thread for link in self.links]

    def to_json(self) -> Dict[str, Any]:
        """The JSON object of this deadlock."""
        return {"threads": self.threads, "cycle": [link.to_json() for link in self.links]}


@dataclass
class Snapshot:
    """Every thread of one process at one moment, and how it was taken."""

    pid: int
    runtime: str
    tool: str
    command: List[str] = field(default_factory=list)
    time: str = ""                      #: RFC3339 UTC, when the tool started
    threads: List[Thread] = field(default_factory=list)
    deadlocks: List[Deadlock] = field(default_factory=list)
    name: str = ""                      #: the process's short name (comm)
    tool_version: str = ""
    seconds: float = 0.0                #: how long the tool took (wall)
    warnings: List[str] = field(default_factory=list)

    def holder_of(self, lock: Lock) -> Optional[Thread]:
        """The thread that holds ``lock`` (same kind and id), if the snapshot shows one."""
        if not lock.id:
            return None
        for t in self.threads:
            if any(h.id == lock.id and h.kind == lock.kind for h in t.holds):
                return t
        return None

    def to_json(self) -> Dict[str, Any]:
        """The ``--json`` document (every string valid UTF-8: undecodable bytes become U+FFFD)."""
        return _utf8({"pid": self.pid, "name": self.name, "runtime": self.runtime, "tool": self.tool,
                "tool_version": self.tool_version, "command": list(self.command), "time": self.time,
                "seconds": round(self.seconds, 3), "threads": [t.to_json() for t in self.threads],
                "deadlocks": [d.to_json() for d in self.deadlocks], "warnings": list(self.warnings)})


def _utf8(value: Any) -> Any:
    from profkit.textsafe import utf8_text

    if isinstance(value, str):
        return utf8_text(value)
    if isinstance(value, dict):
        return {k: _utf8(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_utf8(v) for v in value]
    return value


@dataclass(frozen=True)
class DumpOptions:
    """What a runtime module's ``take`` is asked for."""

    native: bool = False
    locals: bool = False
    timeout: float = DEFAULT_TIMEOUT


def choose_tool(runtime: str, tool: Optional[str]) -> Optional[str]:
    """The tool to use for ``runtime`` (``tool`` if given, checked); None: native's own choice."""
    if tool is None:
        return DEFAULT_TOOLS[runtime]
    if tool not in TOOLS:
        raise UsageError(f"unknown dump tool {tool!r}; choose one of {', '.join(TOOLS)}")
    if runtime not in TOOLS[tool]:
        raise UsageError(f"{tool} cannot read a {runtime} process",
                         hint="use eu-stack or gdb for native stacks of any process")
    return tool


def dump(pid: int, native: bool = False, locals: bool = False, *, tool: Optional[str] = None,
         timeout: float = DEFAULT_TIMEOUT) -> Snapshot:
    """Every thread's stack of process ``pid`` now, with the tool of its runtime (or ``tool``).

    ``native`` adds native frames to a Python dump (py-spy ``--native``); ``locals`` adds
    Python local variables (py-spy ``--locals``). Raises :class:`~profkit.errors.ProfkitError`:
    TargetNotFound, PermissionDenied, CollectorNotInstalled (with the install command),
    CollectorFailed, EnvironmentProblem (a stopped target), UsageError.
    """
    import math

    from profkit.targets import inspect

    if not (math.isfinite(timeout) and timeout > 0):
        raise UsageError(f"the timeout must be a positive number of seconds, not {timeout!r}")
    target = inspect(pid)
    chosen = choose_tool(target.runtime, tool)
    opts = DumpOptions(native=native, locals=locals, timeout=timeout)
    notes: List[str] = []
    if chosen != "py-spy":
        # eu-stack and gdb show native frames anyway; jcmd cannot, and only py-spy has locals
        ignored = [flag for flag, on in (("--native", native and chosen == "jcmd"), ("--locals", locals)) if on]
        if ignored:
            notes.append(f"{' and '.join(ignored)} {'are' if len(ignored) > 1 else 'is'} only for Python targets "
                         f"(py-spy); ignored"
                         + (" (--tool eu-stack shows a JVM's native stacks)" if native and chosen == "jcmd" else ""))
    if chosen == "py-spy":
        from profkit.dump.python import take
        snap = take(target, opts)
    elif chosen == "jcmd":
        from profkit.dump.jvm import take
        snap = take(target, opts)
    else:
        from profkit.dump.native import take
        snap = take(target, opts, tool=chosen)
    snap.warnings[:0] = notes
    return snap


def render_text(snapshot: Snapshot, group: bool = True) -> str:
    """The terminal view of a snapshot (see :mod:`profkit.dump.render`); ``group`` prints threads
    with the same state, locks and stack once."""
    from profkit.dump.render import render_text as render

    return render(snapshot, group)

# SPDX-License-Identifier: Apache-2.0
"""JVM targets: ``jcmd PID Thread.print -l``, parsed into threads, locks and deadlocks.

jcmd talks to the JVM's attach listener; nothing ptraces or stops the process (the JVM itself
takes a safepoint of about a millisecond to print the threads). The attach preconditions of
:func:`collectors.jvm.attach_preconditions` refuse a stopped JVM and one that SIGQUIT would kill.

What the dump says, read here: per thread the header (``"name" #12 daemon … nid=0x72d8
waiting for monitor entry``), ``java.lang.Thread.State: BLOCKED (on object monitor)``, frames
``at pkg.Class.method(File.java:42)`` and, under them, ``- locked <0x…> (a pkg.Lock)``,
``- waiting to lock <…>``, ``- waiting on <…>`` (Object.wait: the monitor was released),
``- parking to wait for <…>``; with ``-l`` the ``Locked ownable synchronizers``; and at the
end each ``Found one Java-level deadlock:`` with its cycle (``"t1": waiting to lock monitor …
(object 0x…, a pkg.Lock), which is held by "t2"``).
"""
from __future__ import annotations

import re
import time
from typing import List, Optional, Tuple

from profkit.dump import Deadlock, DeadlockLink, DumpOptions, Frame, Lock, Snapshot, Thread
from profkit.dump.attach import now_rfc3339
from profkit.errors import CollectorFailed, CollectorNotInstalled
from profkit.targets import Target

__all__ = ["parse_thread_print", "take"]

#: Bytes of jcmd's answer read: the deadlock report comes last, after every thread.
OUTPUT_LIMIT = 64 * 1024 * 1024

# The name is everything up to the last quote followed by the header's fields (names may hold quotes).
_HEADER = re.compile(r'^"(?P<name>.*)"(?P<rest> (?:#\d+|\[\d+\]|daemon|prio=|os_prio=|tid=).*)$')
_NUMBER = re.compile(r" #(\d+)")
_NID = re.compile(r" nid=(0x[0-9a-fA-F]+|\d+)")
_WHAT = re.compile(r" nid=\S+ (.*?)\s*(?:\[0x[0-9a-fA-F]+\])?\s*$")
_STATE = re.compile(r"^\s+java\.lang\.Thread\.State: (?P<state>\S+)(?: \((?P<why>.*)\))?")
_FRAME = re.compile(r"^\s+at (?P<name>.+?)\((?P<src>[^()]*)\)\s*$")
_LOCK = re.compile(r"^\s+- (?P<what>locked|waiting to lock|waiting on|waiting to re-lock in wait\(\)|"
                   r"parking to wait for|eliminated) +<(?P<id>[^>]*)>(?: \(a (?P<type>.*)\))?\s*$")
_OWNABLE = re.compile(r"^\s+- <(?P<id>0x[0-9a-fA-F]+)> \(a (?P<type>.*)\)\s*$")
_DL_THREAD = re.compile(r'^"(?P<name>.*)":\s*$')
_DL_MONITOR = re.compile(r"waiting to lock monitor \S+ \(object (?P<id>0x[0-9a-fA-F]+), a (?P<type>.*?)\),?")
_DL_SYNC = re.compile(r"waiting for ownable synchronizer (?P<id>0x[0-9a-fA-F]+), \(a (?P<type>.*?)\),?")
_DL_HELD = re.compile(r'which is held by (?:"(?P<name>.*)"|(?P<other>\S+))\s*$')

_STATES = {"RUNNABLE": "running", "BLOCKED": "blocked", "WAITING": "waiting", "TIMED_WAITING": "waiting",
           "NEW": "unknown", "TERMINATED": "unknown"}


def _header_state(what: str) -> str:
    """A state for threads the JVM gives no java.lang.Thread.State (its own VM and GC threads)."""
    if what.startswith("runnable"):
        return "running"
    if "monitor entry" in what:
        return "blocked"
    if what.startswith("sleeping"):
        return "sleeping"
    return "waiting" if what else "unknown"


def _frame(name: str, src: str) -> Frame:
    module, _, place = src.rpartition("/") if "/" in src else ("", "", src)
    if place == "Native Method":
        return Frame(name, module=module or None, note="native method")
    if place in ("Unknown Source", ""):
        return Frame(name, module=module or None)
    file, sep, line = place.rpartition(":")
    if sep and line.isdigit():
        return Frame(name, file, int(line), module=module or None)
    return Frame(name, place, module=module or None)


def _thread(m: "re.Match[str]") -> Thread:
    rest = m.group("rest")
    number, nid, what = _NUMBER.search(rest), _NID.search(rest), _WHAT.search(rest)
    tid = None
    if nid:
        tid = int(nid.group(1), 16) if nid.group(1).startswith("0x") else int(nid.group(1))
    detail = what.group(1) if what else ""
    return Thread(m.group("name"), tid, _header_state(detail), detail, runtime_id=f"#{number.group(1)}" if number else "")


def _lock_line(t: Thread, m: "re.Match[str]", released: List[str]) -> None:
    what, lid, kind_type = m.group("what"), m.group("id"), m.group("type") or ""
    lock_id = lid if lid.startswith("0x") else ""
    if what in ("locked", "eliminated"):
        if lock_id and lock_id not in released and all(h.id != lock_id for h in t.holds):
            t.holds.append(Lock("monitor", lock_id, kind_type))
        return
    kind = "synchronizer" if what == "parking to wait for" else "monitor"
    if t.waits_on is None:
        t.waits_on = Lock(kind, lock_id, kind_type)
    if what in ("waiting on", "waiting to re-lock in wait()"):
        # Object.wait(): the monitor its caller entered ("- locked" below) is released meanwhile
        released.append(lock_id)
    if what in ("waiting to lock", "waiting to re-lock in wait()"):
        t.state = "blocked"


def parse_thread_print(text: str) -> Tuple[List[Thread], List[Deadlock]]:
    """Threads (in the dump's order) and deadlocks from ``jcmd PID Thread.print [-l]`` output."""
    threads: List[Thread] = []
    released: List[str] = []
    ownable = False
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Found one Java-level deadlock"):
            return _parked_on_held(threads), _deadlocks(lines[i:])
        m = _HEADER.match(line)
        if m:
            threads.append(_thread(m))
            released, ownable = [], False
            continue
        if not threads:
            continue
        t = threads[-1]
        if line.strip() == "Locked ownable synchronizers:":
            ownable = True
        elif ownable and _OWNABLE.match(line):
            o = _OWNABLE.match(line)
            t.holds.append(Lock("synchronizer", o.group("id"), o.group("type")))
        elif _STATE.match(line):
            s = _STATE.match(line)
            t.state = _STATES.get(s.group("state"), "unknown")
            t.detail = s.group("state") + (f" ({s.group('why')})" if s.group("why") else "")
        elif _FRAME.match(line):
            f = _FRAME.match(line)
            t.frames.append(_frame(f.group("name"), f.group("src")))
        elif _LOCK.match(line):
            _lock_line(t, _LOCK.match(line), released)
    return _parked_on_held(threads), []


def _parked_on_held(threads: List[Thread]) -> List[Thread]:
    """A thread parked on a synchronizer (a ReentrantLock) that another thread holds is blocked."""
    held = {h.id for t in threads for h in t.holds if h.kind == "synchronizer"}
    for t in threads:
        if t.waits_on is not None and t.waits_on.kind == "synchronizer" and t.waits_on.id in held:
            t.state = "blocked"
    return threads


def _deadlocks(lines: List[str]) -> List[Deadlock]:
    """The cycles of every ``Found one Java-level deadlock:`` section (stacks after them skipped)."""
    found: List[Deadlock] = []
    name: Optional[str] = None
    lock: Optional[Lock] = None
    in_cycle = False
    for line in lines:
        if line.startswith("Found one Java-level deadlock"):
            found.append(Deadlock())
            in_cycle, name, lock = True, None, None
            continue
        if line.startswith("Java stack information for the threads listed above"):
            in_cycle = False
        if not in_cycle or not found:
            continue
        m = _DL_THREAD.match(line)
        if m:
            name, lock = m.group("name"), None
            continue
        mon, sync, held = _DL_MONITOR.search(line), _DL_SYNC.search(line), _DL_HELD.search(line)
        if mon or sync:
            g = mon or sync
            lock = Lock("monitor" if mon else "synchronizer", g.group("id"), g.group("type"))
        if held and name is not None:
            owner = held.group("name") if held.group("name") is not None else held.group("other")
            found[-1].links.append(DeadlockLink(name, lock or Lock("monitor"), owner))
            name, lock = None, None
    return [d for d in found if d.links]


def take(target: Target, opts: DumpOptions) -> Snapshot:
    """Dump a JVM with ``jcmd PID Thread.print -l`` (its timeout: ``opts.timeout``)."""
    from collectors.jvm import INSTALL_HINT, attach_preconditions, find_jdk_tool, jdk_version, run_jcmd

    jcmd = find_jdk_tool("jcmd")
    if jcmd is None:
        raise CollectorNotInstalled("jcmd (the JDK's attach tool) is not on PATH or in $JAVA_HOME/bin",
                                    hint=INSTALL_HINT)
    attach_preconditions(target.pid)
    started = now_rfc3339()
    t0 = time.monotonic()
    argv, rc, out = run_jcmd(jcmd, target.pid, ["Thread.print", "-l"], timeout=opts.timeout, limit=OUTPUT_LIMIT)
    seconds = time.monotonic() - t0
    threads, deadlocks = parse_thread_print(out)
    if rc != 0 or not threads:
        raise CollectorFailed(argv, rc, out or "no thread dump in jcmd's answer",
                              hint="is it a HotSpot JVM of your user? `profkit dump --tool eu-stack` shows its "
                                   "native stacks")
    return Snapshot(target.pid, "jvm", "jcmd", argv, started, threads, deadlocks, name=target.name,
                    tool_version=jdk_version(jcmd), seconds=seconds)

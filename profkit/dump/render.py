# SPDX-License-Identifier: Apache-2.0
"""The terminal view of a :class:`~profkit.dump.Snapshot`: deadlocks first, then each thread
with its state, the lock it waits on (and who holds it), the locks it holds, and its frames
innermost first; threads with the same stack and state (a pool of idle workers) once. Every name in it comes from the target (thread names, frames, files, lock
classes, variable reprs) and is printed through :func:`profkit.textsafe.terminal_text`."""
from __future__ import annotations

import shlex
from collections import Counter
from typing import Dict, List

from profkit.dump import Deadlock, Frame, Lock, Snapshot, Thread
from profkit.textsafe import terminal_text

__all__ = ["render_text"]

INDENT = "    "
#: Ids and names listed for a group of threads with the same stack.
SHOW_IDS, SHOW_NAMES = 12, 5


def _q(name: str) -> str:
    return '"' + terminal_text(name) + '"'


def _lock(lock: Lock) -> str:
    return terminal_text(lock.describe())


def _header(snap: Snapshot) -> List[str]:
    states = Counter(t.state for t in snap.threads)
    counts = ", ".join(f"{n} {s}" for s, n in sorted(states.items(), key=lambda x: (-x[1], x[0])))
    tool = snap.tool + (f" {snap.tool_version}" if snap.tool_version else "")
    return [f"PID {snap.pid} ({terminal_text(snap.name)}) · {snap.runtime} · {terminal_text(tool)} · {snap.time} · "
            f"took {snap.seconds:.2f} s",
            f"{len(snap.threads)} thread{'' if len(snap.threads) == 1 else 's'}" + (f": {counts}" if counts else "")]


def _deadlock(i: int, total: int, d: Deadlock) -> List[str]:
    names = ", ".join(_q(n) for n in d.threads)
    title = "DEADLOCK" + (f" {i} of {total}" if total > 1 else "") + f": {len(d.links)} threads ({names})"
    lines = [title]
    for link in d.links:
        lines.append(f"{INDENT}{_q(link.thread)} waits for {_lock(link.lock)}, held by {_q(link.held_by)}")
    return lines


def _frame(f: Frame) -> List[str]:
    where = terminal_text(f.location)
    text = f"{INDENT}{INDENT}{terminal_text(f.name)}" + (f" ({where})" if where else "")
    if f.note:
        text += f" [{terminal_text(f.note)}]"
    out = [text]
    for v in f.locals:
        kind = "arg " if v.arg else ""
        out.append(f"{INDENT * 3}{kind}{terminal_text(v.name)} = {terminal_text(v.repr)}")
    return out


def _thread(snap: Snapshot, t: Thread, deadlocked: set) -> List[str]:
    ident = f"Thread {t.id}" if t.id is not None else "Thread"
    # the JVM's "#12" helps to read jstack output beside this; a Python thread's address does not
    extra = f" {terminal_text(t.runtime_id)}" if t.runtime_id.startswith("#") else ""
    state = t.state + (f" ({terminal_text(t.detail)})" if t.detail and t.detail.lower() != t.state else "")
    mark = " · IN DEADLOCK" if t.name in deadlocked else ""
    lines = [f"{ident} {_q(t.name)}{extra} · {state}{mark}"]
    if t.waits_on is not None:
        holder = snap.holder_of(t.waits_on)
        by = f", held by {_q(holder.name)}" + (f" (thread {holder.id})" if holder.id is not None else "") \
            if holder is not None and holder is not t else ""
        lines.append(f"{INDENT}waits on {_lock(t.waits_on)}{by}")
    for h in t.holds:
        lines.append(f"{INDENT}holds {_lock(h)}")
    if not t.frames:
        lines.append(f"{INDENT}{INDENT}(no frames)")
    for f in t.frames:
        lines.extend(_frame(f))
    return lines


def _signature(t: Thread) -> str:
    """What makes two threads print the same, but for their names and ids."""
    return repr((t.state, t.detail, t.waits_on, t.holds,
                 [(f.name, f.file, f.line, f.module, f.note, f.locals) for f in t.frames]))


def _groups(threads: List[Thread]) -> List[List[Thread]]:
    """Threads with the same state, locks and stack (a pool of idle workers), in first-seen order."""
    by_sig: Dict[str, List[Thread]] = {}
    for t in threads:
        by_sig.setdefault(_signature(t), []).append(t)
    return list(by_sig.values())


def _alike(others: List[Thread]) -> str:
    ids = [str(t.id) if t.id is not None else "?" for t in others]
    shown = ", ".join(ids[:SHOW_IDS]) + (", …" if len(ids) > SHOW_IDS else "")
    names = sorted({t.name for t in others})
    named = ", ".join(_q(n) for n in names[:SHOW_NAMES]) + (", …" if len(names) > SHOW_NAMES else "")
    return f"{INDENT}and {len(others)} more thread{'' if len(others) == 1 else 's'} with this same stack: {shown} ({named})"


def render_text(snap: Snapshot, group: bool = True) -> str:
    """The whole snapshot as text for a terminal (ends with a newline). With ``group``, threads
    with the same state, locks and stack are printed once, with the others' ids and names."""
    lines = _header(snap)
    if snap.command:
        lines.append("$ " + terminal_text(shlex.join(snap.command)))
    deadlocked = {n for d in snap.deadlocks for n in d.threads}
    for i, d in enumerate(snap.deadlocks, 1):
        lines.append("")
        lines.extend(_deadlock(i, len(snap.deadlocks), d))
    for members in (_groups(snap.threads) if group else [[t] for t in snap.threads]):
        lines.append("")
        first = _thread(snap, members[0], deadlocked)
        if len(members) > 1:
            first.insert(1, _alike(members[1:]))
        lines.extend(first)
    return "\n".join(lines) + "\n"

# SPDX-License-Identifier: Apache-2.0
"""py-spy ``--format chrometrace``: the one py-spy format that says *when* stacks were seen.

py-spy's ``raw`` (folded) output has no time and its ``speedscope`` output keeps only each
thread's sample order (every weight is ``1/rate``). ``chrometrace`` is a JSON array of Chrome
trace events, ``{"name", "ph": "B"|"E", "pid", "tid", "ts" (µs since py-spy started),
"args": {"filename", "line"}}``: for each sample of a thread, ``E`` events for the frames that
left its stack and ``B`` events for the frames that joined it, at the sample's time; a sample
equal to the thread's previous one writes nothing, and at the end every open frame is closed.
So a thread's stack is known from each event time to the next, and that span holds
``round(length × rate)`` samples (at least one). That is exact where py-spy samples every
thread at every tick (``--idle``, profkit's wall mode); in cpu mode py-spy skips a thread while
it is idle, so its last stack would seem to last through the idle time: profkit records wall
mode as ``chrometrace`` and cpu mode as ``speedscope`` placed by on-CPU time
(:mod:`collectors.pyspy_placed`).

Frames are named as py-spy's raw output names them: ``name (file:line)`` (``--lines``) or
``name (file)``, the file shortened as py-spy shortens it (the path below the outermost
directory of its package: a directory chain with ``__init__.py``), so that folded profiles look
the same whichever format was recorded. profkit records it with ``--threads`` always: the
``thread (TID): NAME`` frame names the sample's thread in the timeline, and is kept as a root
frame only with ``threads``. Read incrementally, one event object at a time.
"""
from __future__ import annotations

import codecs
import json
import os
from typing import Callable, Dict, Iterator, Optional, Tuple

from profkit.errors import CaptureFormatError, Diagnostics
from profkit.inputs import Source
from profkit.model import Frame, FrameKind, Profile, ProfileMeta
from profkit.timeline import Timeline

#: the frame of a sample of a thread without Python frames (as the raw reader names it)
NO_PYTHON_FRAME = "[no Python frame]"

__all__ = ["iter_array", "looks_like_chrometrace", "parse_chrometrace", "short_filename"]

_CHUNK = 1 << 20
_MAX_EVENT = 16 << 20


def looks_like_chrometrace(head: bytes) -> bool:
    text = head.lstrip()
    return text[:1] == b"[" and b'"cat":"py-spy"' in text.replace(b" ", b"")


def iter_array(read: Callable[[int], bytes], name: str) -> Iterator[dict]:
    """The objects of a top-level JSON array, decoded one at a time from a bounded buffer."""
    dec = codecs.getincrementaldecoder("utf-8")("replace")
    decoder = json.JSONDecoder()
    buf, pos, eof, started = "", 0, False, False

    def more() -> bool:
        nonlocal buf, pos, eof
        chunk = read(_CHUNK)
        if not chunk:
            eof = True
            buf = buf[pos:] + dec.decode(b"", final=True)
        else:
            buf = buf[pos:] + dec.decode(chunk)
        pos = 0
        return not eof or bool(buf)

    while True:
        while pos < len(buf) and buf[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(buf):
            if eof or not more():
                break
            continue
        if not started:
            if buf[pos] != "[":
                raise CaptureFormatError("not a Chrome trace (a JSON array of events)", location=name)
            started, pos = True, pos + 1
            continue
        if buf[pos] == "]":
            break
        try:
            obj, end = decoder.raw_decode(buf, pos)
        except json.JSONDecodeError:
            if eof or len(buf) - pos > _MAX_EVENT:
                raise CaptureFormatError("truncated or invalid Chrome trace JSON", location=name) from None
            more()
            continue
        pos = end
        if isinstance(obj, dict):
            yield obj


_SHORT: Dict[str, str] = {}


def short_filename(path: str, pid: Optional[int] = None) -> str:
    """The file name py-spy's raw output shows: below the outermost package directory
    (a chain of directories holding ``__init__.py``), else the base name; ``<string>`` as is."""
    if not path.startswith("/"):
        return path
    got = _SHORT.get(path)
    if got is not None:
        return got
    probe = path
    if pid is not None and os.path.exists(f"/proc/{pid}/root{path}") and not os.path.exists(path):
        probe = f"/proc/{pid}/root{path}"
    top = os.path.dirname(probe)
    while os.path.exists(os.path.join(top, "__init__.py")) and os.path.dirname(top) != top:
        top = os.path.dirname(top)
    short = os.path.relpath(probe, top) if top else os.path.basename(path)
    if len(_SHORT) > 100_000:
        _SHORT.clear()
    _SHORT[path] = short
    return short


def _thread_label(text: str) -> str:
    """``MainThread [400]`` of py-spy's ``thread (400): MainThread`` frame."""
    head, _, name = text.partition("): ")
    tid = head[len("thread ("):].rstrip(")")
    return f"{name} [{tid}]" if name else f"[{tid}]"


class _Builder:
    """Spans of each thread's stack, turned into samples of the profile and its timeline."""

    def __init__(self, lines: bool, threads: bool, rate: float, start: float, pid: Optional[int], meta):
        from collectors.pyspy import _root_frame

        self.root_frame = _root_frame
        self.lines, self.threads, self.period_us, self.pid = lines, threads, 1e6 / rate, pid
        self.profile = Profile("samples", meta)
        self.timeline = Timeline(start, 1000)
        self.fids: Dict[Tuple[str, str, object], Tuple[str, bool]] = {}
        #: (pid, tid) -> [span start ts, stack of (fid, is_thread) root first, thread label]
        self.state: Dict[Tuple[object, object], list] = {}
        self.last_ts = 0

    def frame(self, ev: dict) -> Tuple[str, bool]:
        args = ev.get("args") or {}
        name, file, line = str(ev.get("name", "")), str(args.get("filename") or ""), args.get("line")
        k = (name, file, line)
        got = self.fids.get(k)
        if got is None:
            name = name.replace(";", "|").replace("\n", " ")
            if not file:
                root = self.root_frame(name)
                is_thread = isinstance(root, Frame) and root.kind is FrameKind.THREAD
                got = (self.profile.intern(root), is_thread)
            else:
                short = short_filename(file, self.pid).replace(";", "|")
                token = f"{name} ({short}:{line})" if self.lines and isinstance(line, int) and line else f"{name} ({short})"
                got = (self.profile.intern(token), False)
            if len(self.fids) > 200_000:
                self.fids.clear()
            self.fids[k] = got
        return got

    def flush(self, st: list, until: float) -> None:
        began, stack, label = st
        if stack and until >= began:
            key = tuple(f for f, is_thread in stack if self.threads or not is_thread)
            if not key or key[-1] == stack[-1][0] and stack[-1][1]:  # a thread without Python frames
                key = key + (self.profile.intern(NO_PYTHON_FRAME),)
            n = max(1, round((until - began) / self.period_us))
            self.profile.add_ids(key, n)
            append, step = self.timeline.append, self.period_us / 1e6
            t0 = began / 1e6
            for i in range(n):
                append(t0 + i * step, key, label, 1)
        st[0] = until

    def event(self, ev: dict) -> bool:
        ph, ts = ev.get("ph"), ev.get("ts")
        if ph not in ("B", "E") or not isinstance(ts, (int, float)):
            return False
        tkey = (ev.get("pid"), ev.get("tid"))
        st = self.state.get(tkey)
        if st is None:
            st = self.state[tkey] = [ts, [], f"[{tkey[1]}]"]
        elif ts != st[0]:
            self.flush(st, ts)
        self.last_ts = max(self.last_ts, ts)
        fid, is_thread = self.frame(ev)
        if ph == "B":
            st[1].append((fid, is_thread))
            if is_thread:
                label = _thread_label(str(ev.get("name", "")))
                if label != st[2] and st[2].startswith("["):  # the name py-spy learnt later
                    self.timeline.rename_thread(st[2], label)
                st[2] = label
        elif st[1]:
            st[1].pop()
        return True


def parse_chrometrace(source: Source, diag: Diagnostics, meta: Optional[ProfileMeta] = None, *, rate: float = 100,
                      start: float = 0.0, lines: bool = False, threads: bool = True,
                      pid: Optional[int] = None) -> Profile:
    """Read py-spy chrometrace JSON into a profile in samples, with its timeline (offsets from
    ``start``, the epoch time py-spy started; 0 when unknown). ``rate`` is py-spy's ``--rate``."""
    b = _Builder(lines, threads, rate if rate and rate > 0 else 100.0, start, pid, meta)
    bad = 0
    for i, ev in enumerate(iter_array(source.read_bytes, source.name), 1):
        if not b.event(ev):
            bad += 1
            if bad <= 10:
                diag.malformed(i, f"event {i} is not a py-spy B/E event with a time")
    for st in b.state.values():  # a capture cut short: the stacks still open last one sample
        if st[1]:
            b.flush(st, st[0] + b.period_us)
    profile = _named_threads(b.profile) if threads else b.profile
    if len(b.timeline):
        profile.timeline = b.timeline
    return profile


def _named_threads(profile: Profile) -> Profile:
    """py-spy names a thread once it has seen its name, so a thread's first samples may sit under
    ``thread (TID)`` and the rest under ``thread (TID): NAME``: put them all under the named frame
    (the timeline's labels are renamed the same way as the capture is read)."""
    frames = profile.frames
    named = {}
    for fid, f in frames.items():
        if f.kind is FrameKind.THREAD and "): " in f.name:
            named[f.name.split("): ", 1)[0] + ")"] = fid
    remap = {fid: named[f.name] for fid, f in frames.items() if f.kind is FrameKind.THREAD and f.name in named}
    if not remap:
        return profile
    return profile._map(lambda key, w: (tuple(remap.get(fid, fid) for fid in key), w))

# SPDX-License-Identifier: Apache-2.0
"""py-spy in cpu mode with timed samples: ``--format speedscope`` placed in time by each
thread's on-CPU time, which profkit reads from ``/proc`` while py-spy records.

Why: in cpu mode py-spy skips a thread while it is idle. Its ``chrometrace`` writer emits
begin/end events only when a thread's stack *changes*, so a thread that goes idle keeps its last
stack open until its next active sample with another stack: counting spans overcounts (3× for
a thread computing half the time, measured), and the output says nothing of which ticks were
idle. ``raw`` has no time. ``speedscope`` keeps, per thread, every sample py-spy took, in order
— the same samples ``raw`` counts, so the folded totals are py-spy's own — but no times.

So profkit records ``speedscope`` and, beside it, ``raw/py-spy-PID.runtime``: every
:data:`POLL` seconds the on-CPU nanoseconds of each thread of the target
(``/proc/PID/task/TID/schedstat``, first field; ``stat`` utime+stime where schedstat is
missing), one line ``EPOCH TID NS`` whenever a thread's figure moved (and the point before, so
flat stretches stay flat), and ``# sampling EPOCH`` / ``# ended EPOCH`` when py-spy printed
that it samples and when it exited. A thread's k-th of N samples is placed where its on-CPU
time curve reaches ``(k + ½)/N`` of what it used between those two marks. Counts and order per thread are
exact; times are approximate (within about one poll interval where the thread's CPU use
tracks py-spy's sampling; measured in ``benchmarks/results/pyspy-cpu-timed.md``). A thread
with no curve (it ended between polls) has its samples spread evenly over the recording.
"""
from __future__ import annotations

import bisect
import os
import re
import threading
import time
from array import array
from collections import Counter
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from profkit.errors import CaptureFormatError, Diagnostics
from profkit.inputs import Source
from profkit.model import Frame, FrameKind, Profile, ProfileMeta
from profkit.timeline import Timeline

__all__ = ["AGENT_POLL", "POLL", "RuntimePoller", "parse_placed", "read_runtime", "runtime_path"]

#: seconds between two reads of the threads' on-CPU time (longer when reading them takes long);
#: ``profkit attach``'s default (py-spy's ``time_poll`` option, ``--time-poll``); the agent reads
#: every :data:`AGENT_POLL` s: its windows are the time view of a continuous profile (10 s by
#: default), and each poll of each target costs its own CPU (measured with thread CPU clocks, 5
#: targets at 10 s windows: at 0.25 s the polls and the placement along 40 segments a window were
#: a third of the agent's CPU)
POLL = 0.02
AGENT_POLL = 1.0
MIN_POLL = 0.005
#: the thread list is read every this many polls, and at least every :data:`LIST_SECONDS` (a
#: thread's first reads then come that late)
LIST_EVERY = 5
LIST_SECONDS = 0.1
_HEADER = "# profkit runtime v1: epoch-seconds tid on-cpu-ns\n"
_TICK_NS = 1e9 / (os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)
_THREAD_NAME = re.compile(r'(?:Process \d+ )?Thread (\d+|0x[0-9a-fA-F]+) "(.*)"\Z', re.S)


def runtime_path(capture: str) -> str:
    """``raw/py-spy-PID.runtime`` beside ``raw/py-spy-PID.json``."""
    return os.path.splitext(capture)[0] + ".runtime"


def _open_task(task: str) -> Optional[Tuple[int, bool]]:
    """An open descriptor of a thread's ``schedstat`` (``True``), else of its ``stat``, kept for
    the whole recording: re-reading one with ``pread`` costs a tenth of opening it anew."""
    for name, sched in (("schedstat", True), ("stat", False)):
        try:
            return os.open(f"{task}/{name}", os.O_RDONLY | os.O_CLOEXEC), sched
        except OSError:
            continue
    return None


def _read_ns(fd: int, sched: bool) -> Optional[int]:
    """The thread's on-CPU nanoseconds (schedstat's first field, else stat's utime+stime), or None
    once it is gone."""
    try:
        data = os.pread(fd, 1024, 0)
        if sched:
            return int(data.split()[0])
        rest = data.rsplit(b")", 1)[1].split()
        return int((int(rest[11]) + int(rest[12])) * _TICK_NS)
    except (OSError, ValueError, IndexError):
        return None


class RuntimePoller:
    """The on-CPU time curve of every thread of ``pid``, written to ``path`` while py-spy records.

    Every poller of the process is polled by one thread (:class:`_Hub`): the agent's windows of
    five targets, or ``attach --children``'s workers, cost one wake-up per poll, not one each
    (a sleeping thread's wake-up costs more CPU than the few reads it then makes)."""

    def __init__(self, pid: int, path: str, begun: Callable[[], bool] = lambda: True,
                 alive: Callable[[], bool] = lambda: True, interval: float = POLL):
        self.pid, self.path, self.begun, self.alive = pid, path, begun, alive
        self.interval = self.next_interval = max(MIN_POLL, interval)
        self.list_every = max(1, min(LIST_EVERY, int(LIST_SECONDS / self.interval + 0.5)))
        self.done, self.ended = threading.Event(), threading.Event()
        self.due = 0.0  # time.monotonic() of the next poll
        self.base = f"/proc/{pid}/task"
        self.fds: Dict[str, Tuple[int, bool]] = {}
        self.last: Dict[int, Tuple[float, int, bool]] = {}  # tid -> (time, ns, written)
        self.polls, self.sampling, self.flushed = 0, False, time.time()
        self.out = None

    def start(self) -> "RuntimePoller":
        self.out = open(self.path, "w", encoding="ascii", buffering=1 << 16)
        self.out.write(_HEADER)
        _HUB.add(self)
        return self

    def stop(self) -> None:
        self.done.set()
        _HUB.wake.set()
        self.ended.wait(5.0)

    def poll(self) -> bool:
        """One read of every thread's on-CPU time; False once the target or py-spy is gone."""
        out, fds, last = self.out, self.fds, self.last
        began = time.time()
        if not self.sampling and self.begun():
            self.sampling = True
            out.write(f"# sampling {began:.6f}\n")
        if not self.alive():
            return False
        if self.polls % self.list_every == 0 or not fds:  # threads started since: every few polls
            try:
                names = os.listdir(self.base)
            except OSError:
                return False  # the target is gone
            for name in names:
                if name not in fds:
                    opened = _open_task(f"{self.base}/{name}")
                    if opened is not None:
                        fds[name] = opened
        self.polls += 1
        for name, (fd, sched) in list(fds.items()):
            ns = _read_ns(fd, sched)
            if ns is None:  # the thread ended
                os.close(fd)
                del fds[name]
                continue
            tid = int(name)
            prev = last.get(tid)
            if prev is None or ns != prev[1]:
                if prev is not None and not prev[2]:
                    out.write(f"{prev[0]:.6f} {tid} {prev[1]}\n")
                out.write(f"{began:.6f} {tid} {ns}\n")
                last[tid] = (began, ns, True)
            else:
                last[tid] = (began, ns, False)
        cost = time.time() - began
        self.next_interval = max(self.interval, 10 * cost)  # never more than a tenth of a core
        if began - self.flushed > 1.0:  # a profkit killed mid-run loses at most a second of curve
            out.flush()
            self.flushed = began
        return True

    def close(self) -> None:
        """The end of the curve (and ``# ended`` once py-spy has exited); the files closed."""
        try:
            now = time.time()
            if self.out is not None:
                if not self.alive() or self.done.is_set():
                    self.out.write(f"# ended {now:.6f}\n")  # stopped after py-spy exited (finish waits for it)
                for tid, (t, ns, written) in self.last.items():
                    self.out.write(f"{now:.6f} {tid} {ns}\n")
        finally:
            for fd, _ in self.fds.values():
                os.close(fd)
            self.fds.clear()
            if self.out is not None:
                self.out.close()
            self.ended.set()


class _Hub:
    """The thread that polls every :class:`RuntimePoller` of the process, each when it is due
    (due times on a grid of its interval, so that pollers of one interval share a wake-up); it
    sleeps, with no timeout, while there are none."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.pollers: List[RuntimePoller] = []
        self.thread: Optional[threading.Thread] = None

    def add(self, poller: RuntimePoller) -> None:
        with self.lock:
            self.pollers.append(poller)
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="profkit-runtime", daemon=True)
                self.thread.start()
        self.wake.set()

    def _run(self) -> None:
        while True:
            self.wake.clear()  # before looking: a poller added or stopped from now on wakes the wait
            with self.lock:
                pollers = list(self.pollers)
            soonest = None
            for p in pollers:
                going = True
                if not p.done.is_set() and p.due <= time.monotonic():
                    try:
                        going = p.poll()
                    except Exception:  # noqa: BLE001 - one target's curve failing ends only that curve
                        going = False
                    # on a grid of the interval: pollers of one interval (the agent's windows, attach's
                    # workers) are polled at the same wake-up
                    now = time.monotonic()
                    p.due = (now // p.next_interval + 1) * p.next_interval
                if p.done.is_set() or not going:
                    with self.lock:
                        self.pollers.remove(p)
                    try:
                        p.close()
                    except Exception:  # noqa: BLE001
                        pass
                    continue
                soonest = p.due if soonest is None else min(soonest, p.due)
            self.wake.wait(None if soonest is None else max(0.0, soonest - time.monotonic()))


_HUB = _Hub()


def read_runtime(path: str) -> Tuple[Dict[int, Tuple[array, array]], Dict[str, float]]:
    """tid → (times, on-CPU seconds) of a ``.runtime`` file, sorted by time; and when py-spy
    began sampling and ended (``sampling``, ``ended``), where the file says."""
    curves: Dict[int, Tuple[array, array]] = {}
    marks: Dict[str, float] = {}
    try:
        fh = open(path, encoding="ascii", errors="replace")
    except OSError:
        return curves, marks
    with fh:
        for line in fh:
            parts = line.split()
            if line[:1] == "#":
                if len(parts) == 3 and parts[1] in ("sampling", "ended"):
                    try:
                        marks[parts[1]] = float(parts[2])
                    except ValueError:
                        pass
                continue
            if len(parts) != 3:
                continue
            try:
                t, tid, ns = float(parts[0]), int(parts[1]), int(parts[2])
            except ValueError:
                continue
            ts, cs = curves.setdefault(tid, (array("d"), array("d")))
            if ts and t < ts[-1]:
                continue
            ts.append(t)
            cs.append(ns / 1e9)
    return curves, marks


def _at(curve: Tuple[array, array], t: float) -> float:
    ts, cs = curve
    j = min(max(bisect.bisect_left(ts, t), 1), len(ts) - 1)
    if t <= ts[0]:
        return cs[0]
    if t >= ts[-1]:
        return cs[-1]
    frac = (t - ts[j - 1]) / (ts[j] - ts[j - 1]) if ts[j] > ts[j - 1] else 1.0
    return cs[j - 1] + frac * (cs[j] - cs[j - 1])


def _place(n: int, curve: Optional[Tuple[array, array]], since: float, until: float) -> array:
    """Epoch times of a thread's ``n`` samples: where its on-CPU curve reaches (k+½)/n of its rise."""
    if curve is None or len(curve[0]) < 2 or curve[1][-1] <= curve[1][0]:
        step = (until - since) / max(n, 1)
        return array("d", (since + (k + 0.5) * step for k in range(n)))
    ts, cs = curve
    c0 = _at(curve, since)  # the CPU the thread used while py-spy sampled it, not before or after
    rise = _at(curve, until) - c0
    if rise <= 0:
        c0, rise = cs[0], cs[-1] - cs[0]
    out = array("d")
    last = len(cs) - 1
    j = min(max(bisect.bisect_left(cs, c0 + 0.5 / n * rise), 1), last)
    k = 0
    while k < n:  # the wanted values rise: one walk along the curve, a step a segment
        want = c0 + (k + 0.5) / n * rise
        while j < last and cs[j] < want:
            j += 1
        lo, hi = cs[j - 1], cs[j]
        end = n  # samples k..end-1 fall on this segment: their wanted values are at most hi
        if j < last:
            end = max(k + 1, min(n, int((hi - c0) / rise * n - 0.5) + 1))
            while end < n and c0 + (end + 0.5) / n * rise <= hi:
                end += 1
            while end > k + 1 and c0 + (end - 0.5) / n * rise > hi:
                end -= 1
        t0, dt = ts[j - 1], ts[j] - ts[j - 1]
        if hi > lo:  # the time is linear in the sample's number along a segment: computed in C loops
            step = rise / n / (hi - lo) * dt
            first = t0 + (c0 + 0.5 / n * rise - lo) / (hi - lo) * dt
            out.extend(map(first.__add__, map(step.__mul__, range(k, end))))
        else:
            out.extend(array("d", [t0]) * (end - k))
        k = end
    return out


def _frame_ids(profile: Profile, table: Sequence[object], lines: bool, pid: Optional[int]) -> List[str]:
    """The profile's frame id of each speedscope frame, named as py-spy's raw output names it."""
    from collectors.pyspy import _clean, _root_frame
    from collectors.pyspy_trace import short_filename

    ids = []
    for entry in table:
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise CaptureFormatError("speedscope frame without a name in shared.frames")
        name, file, line = _clean(entry["name"]), entry.get("file") or "", entry.get("line")
        if not file:
            root = _root_frame(name)
            ids.append(profile.intern(root if isinstance(root, Frame) else Frame.parse(name, FrameKind.UNKNOWN)))
            continue
        short = _clean(short_filename(str(file), pid))
        has_line = lines and isinstance(line, int) and not isinstance(line, bool) and line > 0
        ids.append(profile.intern(f"{name} ({short}:{line})" if has_line else f"{name} ({short})"))
    return ids


def _label(name: str) -> Tuple[Optional[int], str]:
    """(tid, ``NAME [TID]``) of a speedscope profile named ``Thread TID "NAME"`` by py-spy."""
    m = _THREAD_NAME.match(name)
    if not m:
        return None, name
    tid = int(m.group(1), 16) if m.group(1).startswith("0x") else int(m.group(1))
    return tid, f"{m.group(2)} [{m.group(1)}]" if m.group(2) else f"[{m.group(1)}]"


def parse_placed(source: Source, diag: Diagnostics, meta: Optional[ProfileMeta] = None, *, start: float = 0.0,
                 lines: bool = True, pid: Optional[int] = None, runtime: Optional[str] = None) -> Profile:
    """py-spy speedscope JSON into a profile in samples (one per sample py-spy took), its samples
    placed in time by the ``.runtime`` curves beside it (see the module docstring)."""
    from collectors.pyspy import NO_PYTHON_FRAME
    from collectors.pyspy_trace import _named_threads
    from collectors.speedscope_stream import BAD, read_speedscope

    data = read_speedscope(source, weights=False)
    if data.frames is None or data.profiles is None:
        raise CaptureFormatError("not a py-spy speedscope file (no profiles and shared.frames)", location=source.name)
    profile = Profile("samples", meta)
    ids = _frame_ids(profile, data.frames, lines, pid)
    data.frames = None
    curves, marks = read_runtime(runtime or runtime_path(source.path or source.name))
    spans = [(ts[0], ts[-1]) for ts, _ in curves.values() if ts]
    since = marks.get("sampling", min((a for a, _ in spans), default=start or time.time()))
    until = marks.get("ended", max((b for _, b in spans), default=since))
    tl = Timeline(start or since, 1000)
    none = profile.intern(NO_PYTHON_FRAME)
    keys: List[Optional[tuple]] = []  # stack id → profile stack (None: an index out of range)
    for stack in data.stacks:
        try:
            key = tuple(ids[k] for k in stack if k >= 0)
        except IndexError:
            keys.append(None)
            continue
        keys.append(key + (none,) if not key or profile.frame(key[-1]).kind is FrameKind.THREAD else key)
    unplaced = 0
    tl_ids = [tl.stack_id(k) if k is not None else -1 for k in keys]
    counts = [0] * len(keys)
    for p in data.profiles:
        samples = p.samples
        if samples is None:
            raise CaptureFormatError(f"profile {p.index} has no samples list", location=source.name)
        tid, label = _label(str((p.fields or {}).get("name", "")))
        curve = curves.get(tid) if tid is not None else None
        unplaced += 0 if curve is not None else len(samples)
        ticks, sids = tl.columns_for(label, len(samples))
        base, scale = tl.start, 1e6 / tl.tick_us
        placed = _place(len(samples), curve, since, until)
        per_stack = Counter(samples)
        if BAD not in per_stack and all(tl_ids[sid] >= 0 for sid in per_stack):
            # every sample well-formed (py-spy's own files): the thread's samples in C loops (the
            # ticks as floats: add_columns truncates them, as int() does below)
            for sid, n in per_stack.items():
                counts[sid] += n
            if placed and min(placed) > base:
                ticks.extend(map(scale.__mul__, map((-base).__add__, placed)))
            else:
                ticks.extend([int((at - base) * scale) if at > base else 0 for at in placed])
            sids.extend(map(tl_ids.__getitem__, samples))
        else:
            for j, (sid, at) in enumerate(zip(samples, placed)):
                i = tl_ids[sid] if sid != BAD else -1
                if i < 0:
                    text = p.texts.get(j, "?") if sid == BAD else str(list(data.stacks[sid]))
                    diag.malformed(j, text[:200], source=f"{source.name} profile {p.index} sample")
                    continue
                counts[sid] += 1
                ticks.append(int((at - base) * scale) if at > base else 0)
                sids.append(i)
        tl.add_columns(ticks, sids, label)
        p.samples = None  # placed: its memory back
    for sid, n in enumerate(counts):
        if n:
            profile.add_ids(keys[sid], n)
    if unplaced:
        diag.warn(f"{source.name}: {unplaced} samples of threads profkit saw no CPU time of are spread evenly "
                  "over the recording")
    profile.meta.extra["times"] = "placed by each thread's on-CPU time (approximate; counts exact)"
    profile = _named_threads(profile)
    if len(tl):
        profile.timeline = tl
    return profile

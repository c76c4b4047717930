# SPDX-License-Identifier: Apache-2.0
"""Timed samples: per sample its time, stack and thread, in append-only columns.

A :class:`Timeline` rides along with a :class:`~profkit.model.Profile` (``profile.timeline``)
when the collector's capture says when each sample was taken (perf script, JFR, py-spy
``--format chrometrace``). It keeps four ``array`` columns, 14 bytes a sample, no Python
object per sample:

    t       uint32   offset from ``start`` in ticks of ``tick_us`` microseconds (1000: ms)
    stack   uint32   index into ``stacks`` (the profile's stacks of frame ids, each once)
    thread  uint16   index into ``threads`` (thread names; "" for a collector without threads)
    weight  uint32   the sample's weight in the profile's unit (saturating)

The run directory keeps it as ``timeline.bin`` beside ``profile.folded`` (:func:`write` /
:func:`read`; the layout is in ``docs/contract.md``). Sorted by time when written.
"""
from __future__ import annotations

import json
import math
import struct
import zlib
from array import array
from datetime import datetime
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

__all__ = ["FILE", "MAGIC", "Timeline", "epoch_of_iso", "read", "write"]

FILE = "timeline.bin"
MAGIC = b"PKTL"
VERSION = 1
_HEAD = struct.Struct("<4sHHdIII")  # magic, version, reserved, start, tick_us, samples, meta bytes
_U32 = 0xFFFFFFFF
_MAX_THREADS = 0xFFFF
#: the thread index beyond the 65535th distinct thread (they are merged, not dropped)
OTHER_THREADS = "[more threads]"
#: largest meta block read back (zlib JSON of frames, stacks and threads)
MAX_META = 256 << 20


def _columns() -> Tuple[array, array, array, array]:
    return array("I"), array("I"), array("H"), array("I")


class Timeline:
    """Timed samples; see the module docstring. ``start`` is epoch seconds of offset 0."""

    __slots__ = ("start", "tick_us", "t", "stack", "thread", "weight", "stacks", "threads",
                 "_stack_index", "_thread_index")

    def __init__(self, start: float = 0.0, tick_us: int = 1000):
        self.start, self.tick_us = float(start), int(tick_us)
        self.t, self.stack, self.thread, self.weight = _columns()
        self.stacks: List[Tuple[str, ...]] = []
        self.threads: List[str] = []
        self._stack_index: Dict[Tuple[str, ...], int] = {}
        self._thread_index: Dict[str, int] = {}

    # -- building ------------------------------------------------------------------------
    def stack_id(self, key: Tuple[str, ...]) -> int:
        i = self._stack_index.get(key)
        if i is None:
            i = self._stack_index[key] = len(self.stacks)
            self.stacks.append(key)
        return i

    def thread_id(self, name: str) -> int:
        i = self._thread_index.get(name)
        if i is None:
            if len(self.threads) >= _MAX_THREADS:
                return self.thread_id(OTHER_THREADS) if name != OTHER_THREADS else _MAX_THREADS - 1
            i = self._thread_index[name] = len(self.threads)
            self.threads.append(name)
        return i

    def rename_thread(self, old: str, new: str) -> None:
        """Call thread ``old`` ``new`` (when ``new`` is not a thread yet)."""
        i = self._thread_index.get(old)
        if i is not None and new not in self._thread_index:
            del self._thread_index[old]
            self._thread_index[new] = i
            self.threads[i] = new

    def append(self, seconds: float, key: Tuple[str, ...], thread: str = "", weight: float = 1) -> None:
        """One sample ``seconds`` after ``start`` (negative times count as 0)."""
        ticks = int(seconds * 1e6 / self.tick_us) if seconds > 0 else 0
        self.t.append(ticks if ticks < _U32 else _U32)
        self.stack.append(self.stack_id(key))
        self.thread.append(self.thread_id(thread))
        w = int(weight)
        self.weight.append(w if 0 <= w < _U32 else (_U32 if w > 0 else 0))

    def columns_for(self, thread: str, n: int = 0) -> Tuple[array, array]:
        """Empty time-tick and stack-id columns to fill for :meth:`add_columns` (a parser's fast
        path: a thread's samples at once, not a call a sample)."""
        return array("d"), array("I")

    def add_columns(self, ticks: array, stack_ids: array, thread: str, weight: int = 1) -> None:
        """Samples of one ``thread``: ``ticks`` (offsets in ticks from ``start``, clamped to the
        column's range) and ``stack_ids`` (ids this timeline's :meth:`stack_id` gave), ``weight`` each."""
        n = len(stack_ids)
        if not ticks or max(ticks) < _U32:
            self.t.extend(map(int, ticks))  # a C loop (the agent adds ~1,000 a target and window)
        else:
            self.t.extend(int(v) if v < _U32 else _U32 for v in ticks)
        self.stack.extend(stack_ids)
        self.thread.extend(array("H", [self.thread_id(thread)]) * n)
        w = int(weight)
        self.weight.extend(array("I", [w if 0 <= w < _U32 else (_U32 if w > 0 else 0)]) * n)

    def append_absolute(self, epoch: float, key: Tuple[str, ...], thread: str = "", weight: float = 1) -> None:
        """One sample at epoch seconds ``epoch``; the first one sets ``start`` if unset."""
        if not self.start:
            self.start = epoch
        elif epoch < self.start:  # an earlier event (JFR's are not strictly ordered): move start back
            self.rebase(epoch - 10.0)
        self.append(epoch - self.start, key, thread, weight)

    def rebase(self, start: float) -> None:
        """Count offsets from ``start`` (epoch seconds) instead; samples before it count as 0."""
        shift = (self.start - start) * 1e6 / self.tick_us
        t = self.t
        for i in range(len(t)):
            v = int(t[i] + shift)
            t[i] = 0 if v < 0 else (v if v < _U32 else _U32)
        self.start = start

    def __len__(self) -> int:
        return len(self.t)

    @property
    def nbytes(self) -> int:
        """Bytes the columns use in memory."""
        return sum(c.itemsize * len(c) for c in (self.t, self.stack, self.thread, self.weight))

    @property
    def duration(self) -> float:
        """Seconds from ``start`` to the last sample."""
        return (max(self.t) * self.tick_us / 1e6) if self.t else 0.0

    def seconds(self, i: int) -> float:
        return self.t[i] * self.tick_us / 1e6

    # -- transforming ----------------------------------------------------------------------
    def remap(self, fn) -> "Timeline":
        """A copy whose stacks are ``fn(stack)`` (a tuple, or None to drop those samples)."""
        out = Timeline(self.start, self.tick_us)
        out.threads, out._thread_index = list(self.threads), dict(self._thread_index)
        new = [fn(k) for k in self.stacks]
        ids = [out.stack_id(k) if k is not None else -1 for k in new]
        for t, s, h, w in zip(self.t, self.stack, self.thread, self.weight):
            j = ids[s]
            if j >= 0:
                out.t.append(t)
                out.stack.append(j)
                out.thread.append(h)
                out.weight.append(w)
        return out

    def extend(self, other: "Timeline") -> None:
        """Add another timeline's samples (re-based on this one's start)."""
        if not self.start:
            self.start = other.start
        shift = (other.start - self.start) * 1e6 / self.tick_us if other.start else 0.0
        scale = other.tick_us / self.tick_us
        sids = [self.stack_id(k) for k in other.stacks]
        hids = [self.thread_id(n) for n in other.threads]
        if scale == 1 and shift == 0:
            self.t.extend(other.t)
        elif other.t and min(other.t) * scale + shift >= 0 and max(other.t) * scale + shift < _U32:
            # none clamped: in C loops (the same values as the general case below)
            scaled = other.t if scale == 1 else map(float(scale).__mul__, other.t)
            self.t.extend(map(int, map(float(shift).__add__, scaled)))
        else:
            self.t.extend(min(max(int(t * scale + shift), 0), _U32) for t in other.t)
        # ids the same both sides (into an empty timeline): the columns as they are
        self.stack.extend(other.stack if sids == list(range(len(sids))) else array("I", (sids[s] for s in other.stack)))
        self.thread.extend(other.thread if hids == list(range(len(hids))) else array("H", (hids[h] for h in other.thread)))
        self.weight.extend(other.weight)

    def sorted(self) -> "Timeline":
        """This timeline in time order (stable: equal times keep their order)."""
        t = self.t
        if t.tolist() == sorted(t):  # already in order (one thread, or threads added in time order)
            return self
        order = sorted(range(len(t)), key=t.__getitem__)
        out = Timeline(self.start, self.tick_us)
        out.stacks, out._stack_index = self.stacks, self._stack_index
        out.threads, out._thread_index = self.threads, self._thread_index
        for src, dst in ((self.t, out.t), (self.stack, out.stack), (self.thread, out.thread),
                         (self.weight, out.weight)):
            dst.extend(map(src.__getitem__, order))
        return out

    # -- selecting -----------------------------------------------------------------------------
    def select(self, since: Optional[float] = None, until: Optional[float] = None,
               threads: Optional[Iterable[str]] = None) -> Dict[Tuple[str, ...], int]:
        """stack → summed weight of the samples in ``[since, until)`` seconds (offsets from
        ``start``), of the given threads only (all when None)."""
        lo = 0 if since is None else math.ceil(since * 1e6 / self.tick_us)
        hi = None if until is None else math.ceil(until * 1e6 / self.tick_us)
        keep = None
        if threads is not None:
            wanted = set(threads)
            keep = {i for i, n in enumerate(self.threads) if n in wanted}
        sums: Dict[int, int] = {}
        for t, s, h, w in zip(self.t, self.stack, self.thread, self.weight):
            if t < lo or (hi is not None and t >= hi) or (keep is not None and h not in keep):
                continue
            sums[s] = sums.get(s, 0) + w
        stacks = self.stacks
        return {stacks[s]: w for s, w in sums.items()}


def epoch_of_iso(text: str) -> Optional[float]:
    """Epoch seconds of an RFC 3339 time with up to nanoseconds (JFR's ``startTime``), or None."""
    if not isinstance(text, str) or len(text) < 19:
        return None
    try:
        base = datetime.fromisoformat(text[:19] + "+00:00").timestamp()
    except ValueError:
        return None
    frac, rest = 0.0, text[19:]
    if rest[:1] == ".":
        digits = ""
        for ch in rest[1:]:
            if not ch.isdigit():
                break
            digits += ch
        rest = rest[1 + len(digits):]
        frac = int(digits) / 10 ** len(digits) if digits else 0.0
    offset = 0.0
    if rest[:1] in "+-" and len(rest) >= 6:
        try:
            offset = (int(rest[1:3]) * 3600 + int(rest[4:6]) * 60) * (1 if rest[0] == "+" else -1)
        except ValueError:
            return None
    return base + frac - offset


# -- the file ----------------------------------------------------------------------------------
def _meta(tl: Timeline, frame_text) -> bytes:
    frames: Dict[str, int] = {}
    stacks = [[frames.setdefault(f, len(frames)) for f in key] for key in tl.stacks]
    body = {"frames": [frame_text(f) for f in frames], "stacks": stacks, "threads": tl.threads}
    return zlib.compress(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogatepass"), 6)


def to_bytes(tl: Timeline, frame_text=lambda fid: fid) -> bytes:
    """The ``timeline.bin`` bytes of ``tl`` (sorted by time); ``frame_text`` names a frame id
    as its folded token (the text ``profile.folded`` holds for it)."""
    tl = tl.sorted()
    meta = _meta(tl, frame_text)
    head = _HEAD.pack(MAGIC, VERSION, 0, tl.start, tl.tick_us, len(tl), len(meta))
    cols = []
    for c in (tl.t, tl.stack, tl.thread, tl.weight):
        if struct.pack("=H", 1) != struct.pack("<H", 1):  # pragma: no cover - big-endian hosts
            c = array(c.typecode, c)
            c.byteswap()
        cols.append(c.tobytes())
    return head + meta + b"".join(cols)


def write(path: str, tl: Timeline, frame_text=lambda fid: fid, *, sync: bool = True) -> str:
    """Write ``tl`` to ``path`` atomically (``sync``: fsync'd first); returns the path."""
    from profkit.atomic import atomic_write

    atomic_write(path, to_bytes(tl, frame_text), binary=True, sync=sync)
    return path


class TimelineFormatError(ValueError):
    """A ``timeline.bin`` that is not one, or is damaged."""


def from_bytes(data: bytes, intern=None) -> Timeline:
    """A Timeline from ``timeline.bin`` bytes. ``intern`` (a Profile's :meth:`intern`) maps
    each frame token to the profile's frame id, so stacks match the profile's own."""
    if len(data) < _HEAD.size or data[:4] != MAGIC:
        raise TimelineFormatError("not a profkit timeline (no PKTL magic)")
    magic, version, _r, start, tick_us, n, mlen = _HEAD.unpack_from(data)
    if version != VERSION:
        raise TimelineFormatError(f"timeline version {version} is not one this profkit reads ({VERSION})")
    end_meta = _HEAD.size + mlen
    if mlen > MAX_META or len(data) != end_meta + n * 14 or tick_us <= 0:
        raise TimelineFormatError("damaged timeline (sizes do not match)")
    try:
        body = json.loads(zlib.decompressobj().decompress(data[_HEAD.size:end_meta], MAX_META))
        frames, stacks, threads = body["frames"], body["stacks"], body["threads"]
        tok = intern or (lambda f: f)
        fids = [tok(str(f)) for f in frames]
        keys = [tuple(fids[i] for i in s) for s in stacks]
    except (ValueError, KeyError, TypeError, IndexError, zlib.error) as e:
        raise TimelineFormatError(f"damaged timeline meta block ({type(e).__name__})") from None
    tl = Timeline(start, tick_us)
    for k in keys:
        tl.stack_id(k)
    for name in threads:
        tl.thread_id(str(name))
    pos = end_meta
    for col, size in ((tl.t, 4), (tl.stack, 4), (tl.thread, 2), (tl.weight, 4)):
        col.frombytes(data[pos:pos + n * size])
        if struct.pack("=H", 1) != struct.pack("<H", 1):  # pragma: no cover
            col.byteswap()
        pos += n * size
    if tl.stack and max(tl.stack) >= len(tl.stacks) or tl.thread and max(tl.thread) >= max(1, len(tl.threads)):
        raise TimelineFormatError("damaged timeline (an index out of range)")
    return tl


def read(path: str, intern=None) -> Timeline:
    """Read ``timeline.bin`` (see :func:`from_bytes`)."""
    with open(path, "rb") as fh:
        return from_bytes(fh.read(), intern)


def thread_names(tl: Timeline) -> Sequence[str]:
    return tl.threads

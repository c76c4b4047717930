# SPDX-License-Identifier: Apache-2.0
"""async-profiler's own JFR output (``-o jfr``), read straight from its chunks, with no JVM.

A JFR file is a sequence of chunks. Each starts with a 68-byte header (big-endian):
``FLR\\0``, u16 major, u16 minor, i64 chunk size, i64 offset of the last constant-pool
event, i64 offset of the metadata event, i64 start (epoch ns), i64 duration (ns), i64 start
ticks, i64 ticks per second, i32 features (bit 0: integers are LEB128 varints, as
async-profiler always writes them). Then come events, each ``size`` (varint, counting
itself), ``type id`` and its fields in the order the metadata event declares them. Event 0 is
the metadata (a string table and a tree of ``class``/``field`` elements), event 1 a
constant pool (per type: key → value), so that an event's thread and stack are references.

async-profiler (``src/flightRecorder.cpp``, ``src/jfrMetadata.cpp``) writes a chunk it is still
filling with a 1 GiB size and no constant-pool offset, and its ``dump`` action finishes the
current chunk and starts the next one where the last ended: :func:`finished_chunks` reads
the finished ones (their spans abut exactly), which is how the agent cuts windows.

:func:`parse_jfr` builds the same profile as reading the file through ``jfr print --json``
(:mod:`collectors.jfr_print`: frame names, kinds and ``[NAME tid=N]`` thread frames are made by
its functions), with every stack whole (as async-profiler's collapsed output has it) and each
sample's time and thread kept in the profile's :class:`~profkit.timeline.Timeline`. Samples
are ``jdk.ExecutionSample`` (cpu, itimer) and ``profiler.WallClockSample`` (wall, weighed by
its ``samples`` field). Only what one chunk declares is trusted; a reference to a missing
constant is counted as a malformed event, not guessed.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from profkit.errors import CaptureFormatError, Diagnostics
from profkit.model import Frame, FrameKind, Profile, ProfileMeta
from profkit.timeline import Timeline

from collectors.jfr_print import _FRAME_KINDS, _TRUNCATED, JFR_MAGIC, _method_key, _thread_frame, _thread_key

__all__ = ["SAMPLE_EVENTS", "Chunk", "finished_chunks", "iter_chunks", "parse_jfr", "read_chunks"]

_HEADER = struct.Struct(">4sHHqqqqqqqi")
#: the sample event each async-profiler event is written as, and its weight field (None: 1)
SAMPLE_EVENTS = {"cpu": ("jdk.ExecutionSample", None), "itimer": ("jdk.ExecutionSample", None),
                 "wall": ("profiler.WallClockSample", "samples")}
_VARINT = frozenset(("char", "short", "int", "long"))
_BYTE = frozenset(("boolean", "byte"))


@dataclass(frozen=True)
class Chunk:
    """One finished chunk: where it is in its file and the time it covers."""

    offset: int
    size: int
    cpool: int
    meta: int
    start_ns: int
    duration_ns: int
    start_ticks: int
    ticks_per_second: int
    features: int

    @property
    def start(self) -> float:
        """Epoch seconds of the chunk's start."""
        return self.start_ns / 1e9

    @property
    def end(self) -> float:
        """Epoch seconds of the chunk's end (the next chunk's start)."""
        return (self.start_ns + self.duration_ns) / 1e9


def finished_chunks(head: Callable[[int, int], bytes], offset: int, size: int) -> List[Chunk]:
    """The finished chunks from ``offset`` on, in a file of ``size`` bytes whose bytes
    ``head(offset, n)`` returns; stops at a chunk still being written (or cut short)."""
    out: List[Chunk] = []
    while offset + _HEADER.size <= size:
        h = head(offset, _HEADER.size)
        if len(h) < _HEADER.size or h[:4] != JFR_MAGIC:
            if out or offset:
                break
            raise CaptureFormatError(f"not a JFR chunk at byte {offset}")
        _, major, _minor, csize, cpool, meta, start, dur, ticks, freq, features = _HEADER.unpack(h)
        if major != 2 or csize <= 0 or cpool <= 0 or meta <= 0 or offset + csize > size or freq <= 0:
            break  # being written (async-profiler: 1 GiB and no constant pool yet; the JDK: size 0)
        out.append(Chunk(offset, csize, cpool, meta, start, dur, ticks, freq, features))
        offset += csize
    return out


def iter_chunks(read: Callable[[int], bytes], tail: Optional[List[int]] = None) -> Iterator[Tuple[bytes, Chunk]]:
    """Each finished chunk of a stream (``read(n)`` gives its next bytes), one at a time: its
    bytes and its header (offsets within those bytes). The bytes after the last finished chunk
    (one still being written) are counted into ``tail[0]`` and not read further."""
    at = 0
    while True:
        head = read(_HEADER.size)
        if not head:
            return
        chunks = finished_chunks(lambda o, n: head[o:o + n], 0, len(head) + (1 << 62))
        if not chunks:
            if at == 0 and head[:4] != JFR_MAGIC:
                raise CaptureFormatError("not a JFR recording (no FLR magic)")
            if tail is not None:
                tail[0] += len(head) + len(read(-1) or b"")
            return
        body = read(chunks[0].size - _HEADER.size)
        if len(body) < chunks[0].size - _HEADER.size:  # cut short: a chunk still being written
            if tail is not None:
                tail[0] += len(head) + len(body)
            return
        ch = chunks[0]
        yield head + body, Chunk(0, ch.size, ch.cpool, ch.meta, ch.start_ns, ch.duration_ns, ch.start_ticks,
                                 ch.ticks_per_second, ch.features)
        at += ch.size


def read_chunks(path: str, offset: int = 0) -> List[Tuple[bytes, Chunk]]:
    """The finished chunks of a file from ``offset`` on (bytes and header each)."""
    with open(path, "rb") as fh:
        fh.seek(offset)
        return list(iter_chunks(lambda n: fh.read() if n < 0 else fh.read(n)))


# -- the encoding --------------------------------------------------------------------------------

def _varint(d: bytes, p: int) -> Tuple[int, int]:
    b = d[p]
    if b < 0x80:
        return b, p + 1
    v, shift = b & 0x7F, 7
    p += 1
    while True:
        b = d[p]
        p += 1
        if shift == 56:  # the ninth byte carries 8 bits
            return v | (b << 56), p
        v |= (b & 0x7F) << shift
        if b < 0x80:
            return v, p
        shift += 7


def _string(d: bytes, p: int) -> Tuple[Optional[str], int]:
    enc = d[p]
    p += 1
    if enc == 0:
        return None, p
    if enc == 1:
        return "", p
    n, p = _varint(d, p)
    if enc == 3:
        return d[p:p + n].decode("utf-8", "replace"), p + n
    if enc == 5:
        return d[p:p + n].decode("latin-1"), p + n
    if enc == 4:
        chars = []
        for _ in range(n):
            c, p = _varint(d, p)
            chars.append(chr(c) if c < 0x110000 else "\ufffd")
        return "".join(chars), p
    if enc == 2:  # a reference into a string pool (not written by async-profiler)
        return f"[string #{n}]", p
    raise CaptureFormatError(f"unknown JFR string encoding {enc} at byte {p - 1}")


class _Types:
    """The chunk's classes (from its metadata event) and a reader of values of each."""

    def __init__(self, d: bytes, pos: int):
        _size, pos = _varint(d, pos)
        kind, pos = _varint(d, pos)
        if kind != 0:
            raise CaptureFormatError(f"no metadata event at byte {pos}")
        for _ in range(3):  # start, duration, metadata id
            _, pos = _varint(d, pos)
        count, pos = _varint(d, pos)
        strings: List[Optional[str]] = []
        for _ in range(count):
            s, pos = _string(d, pos)
            strings.append(s)
        self.names: Dict[int, str] = {}
        self.ids: Dict[str, int] = {}
        self.fields: Dict[int, List[Tuple[str, int, bool, bool]]] = {}
        self._element(d, pos, strings)

    def _element(self, d: bytes, pos: int, strings: Sequence[Optional[str]], parent: Optional[int] = None) -> int:
        name_i, pos = _varint(d, pos)
        n, pos = _varint(d, pos)
        attrs: Dict[str, Optional[str]] = {}
        for _ in range(n):
            k, pos = _varint(d, pos)
            v, pos = _varint(d, pos)
            attrs[strings[k] or ""] = strings[v]
        name = strings[name_i]
        me = parent
        if name == "class":
            me = int(attrs.get("id") or -1)
            self.names[me] = attrs.get("name") or ""
            self.ids[self.names[me]] = me
            self.fields[me] = []
        elif name == "field" and parent is not None:
            self.fields[parent].append((attrs.get("name") or "", int(attrs.get("class") or -1),
                                        attrs.get("constantPool") == "true", attrs.get("dimension") == "1"))
        children, pos = _varint(d, pos)
        for _ in range(children):
            pos = self._element(d, pos, strings, me if name == "class" else parent)
        return pos

    def flat(self, tid: int) -> Optional[Tuple[str, ...]]:
        """The field names of a type whose fields are all varints (numbers, constant-pool
        references), such as the sample events; None otherwise."""
        fields = self.fields.get(tid)
        if not fields or any(array or not (cpool or self.names.get(ftype) in _VARINT)
                             for _, ftype, cpool, array in fields):
            return None
        return tuple(name for name, _, _, _ in fields)

    def read(self, d: bytes, p: int, tid: int) -> Tuple[Any, int]:
        name = self.names.get(tid)
        if name in _VARINT:
            return _varint(d, p)
        if name == "java.lang.String":
            return _string(d, p)
        if name in _BYTE:
            return d[p], p + 1
        if name == "float":
            return struct.unpack_from(">f", d, p)[0], p + 4
        if name == "double":
            return struct.unpack_from(">d", d, p)[0], p + 8
        values: Dict[str, Any] = {}
        for fname, ftype, cpool, array in self.fields.get(tid, ()):
            if array:
                n, p = _varint(d, p)
                items = []
                for _ in range(n):
                    v, p = _varint(d, p) if cpool else self.read(d, p, ftype)
                    items.append(v)
                values[fname] = items
            else:
                values[fname], p = _varint(d, p) if cpool else self.read(d, p, ftype)
        return values, p


_TYPES_CACHE: Dict[bytes, _Types] = {}


def _types_at(d: bytes, pos: int) -> _Types:
    """The metadata event at ``pos``, read once per distinct metadata (async-profiler writes the
    same one into every chunk of a session)."""
    size, _ = _varint(d, pos)
    key = d[pos:pos + size]
    types = _TYPES_CACHE.get(key)
    if types is None:
        if len(_TYPES_CACHE) >= 8:
            _TYPES_CACHE.clear()
        types = _TYPES_CACHE[key] = _Types(d, pos)
    return types


def _pools(d: bytes, types: _Types, pos: int, pools: Dict[int, Dict[int, Any]]) -> None:
    """One constant-pool event into ``pools`` (type id → key → value)."""
    for _ in range(4):  # start, duration, delta to the previous pool, flush flag
        _, pos = _varint(d, pos)
    count, pos = _varint(d, pos)
    for _ in range(count):
        tid, pos = _varint(d, pos)
        n, pos = _varint(d, pos)
        pool = pools.setdefault(tid, {})
        for _ in range(n):
            key, pos = _varint(d, pos)
            pool[key], pos = types.read(d, pos, tid)


class _Resolver:
    """One chunk's constant pools turned into profile frame ids, each stack and frame once."""

    def __init__(self, types: _Types, pools: Dict[int, Dict[int, Any]], profile: Profile, threads: bool):
        ids = types.ids
        self.stacks = pools.get(ids.get("jdk.types.StackTrace", -1), {})
        self.methods = pools.get(ids.get("jdk.types.Method", -1), {})
        self.classes = pools.get(ids.get("java.lang.Class", -1), {})
        self.symbols = pools.get(ids.get("jdk.types.Symbol", -1), {})
        self.frame_types = pools.get(ids.get("jdk.types.FrameType", -1), {})
        self.thread_pool = pools.get(ids.get("java.lang.Thread", -1), {})
        self.intern, self.threads = profile.intern, threads
        self._stacks: Dict[int, Optional[Tuple[str, ...]]] = {}
        self._frames: Dict[Tuple[Any, Any], str] = {}
        self._threads: Dict[int, Tuple[Optional[str], str]] = {}
        self._truncated: Optional[str] = None

    def _symbol(self, key: Any) -> Optional[str]:
        s = self.symbols.get(key)
        return s.get("string") if isinstance(s, dict) else None

    def _frame(self, key: Tuple[Any, Any]) -> str:
        ftype = self.frame_types.get(key[1])
        desc = ftype.get("description") if isinstance(ftype, dict) else None
        m = self.methods.get(key[0])
        method = None
        if isinstance(m, dict):
            cls = self.classes.get(m.get("type"))
            method = {"name": self._symbol(m.get("name")) or "[unknown]", "descriptor": self._symbol(m.get("descriptor")),
                      "type": {"name": self._symbol(cls.get("name"))} if isinstance(cls, dict) else None}
        cls_name, name, kind = _method_key({"type": desc, "method": method})
        text = f"{cls_name}.{name}" if name else cls_name
        return self.intern(Frame(text.replace(";", "|"), _FRAME_KINDS.get(kind, FrameKind.UNKNOWN)))

    def stack(self, key: Any) -> Optional[Tuple[str, ...]]:
        """The root-first frame ids of stack trace ``key`` (None: not in the pool, or empty)."""
        if key in self._stacks:
            return self._stacks[key]
        st = self.stacks.get(key)
        out: Optional[Tuple[str, ...]] = None
        if isinstance(st, dict) and st.get("frames"):
            ids: List[str] = []
            if st.get("truncated"):
                if self._truncated is None:
                    self._truncated = self.intern(_TRUNCATED)
                ids.append(self._truncated)
            for f in reversed(st["frames"]):  # frames[0] is the leaf
                fk = (f.get("method"), f.get("type")) if isinstance(f, dict) else (None, None)
                fid = self._frames.get(fk)
                if fid is None:
                    fid = self._frames[fk] = self._frame(fk)
                ids.append(fid)
            out = tuple(ids)
        self._stacks[key] = out
        return out

    def thread(self, key: Any) -> Tuple[Optional[str], str]:
        """(the thread's root frame id if threads are kept, its timeline name)."""
        got = self._threads.get(key)
        if got is None:
            t = self.thread_pool.get(key)
            tkey = _thread_key(t if isinstance(t, dict) else None)
            name = f"{tkey[0]} [{tkey[1]}]" if tkey[0] else f"[tid={tkey[1]}]"
            got = self._threads[key] = (self.intern(_thread_frame(tkey)) if self.threads else None, name)
        return got


def _chunk_events(d: bytes, ch: Chunk, wanted: str) -> Tuple[_Types, Dict[int, Dict[int, Any]], int, List[int]]:
    """A chunk's types, constant pools and the offsets of its ``wanted`` events."""
    if not ch.features & 1:
        raise CaptureFormatError(f"a JFR chunk at byte {ch.offset} without compressed integers (not async-profiler's)")
    types = _types_at(d, ch.offset + ch.meta)
    want = types.ids.get(wanted, -2)
    pools: Dict[int, Dict[int, Any]] = {}
    events: List[int] = []
    pos, end = ch.offset + _HEADER.size, ch.offset + ch.size
    while pos < end:
        size, p = _varint(d, pos)
        if size <= 0 or pos + size > end:
            raise CaptureFormatError(f"a JFR event of {size} bytes at byte {pos} runs past its chunk")
        kind, p = _varint(d, p)
        if kind == 1:
            _pools(d, types, p, pools)
        elif kind == want:
            events.append(p)
        pos += size
    return types, pools, want, events


def parse_jfr(chunks: Iterable[Tuple[bytes, Chunk]], event: str, threads: bool, diag: Diagnostics,
              meta: Optional[ProfileMeta] = None) -> Profile:
    """The samples of ``event`` in ``chunks`` (bytes and header each): a profile with its timeline."""
    wanted, weight_field = SAMPLE_EVENTS.get(event, SAMPLE_EVENTS["cpu"])
    profile = Profile("samples", meta)
    timeline = Timeline(0.0, 1000)
    seen = 0
    totals: Dict[Tuple[str, ...], int] = {}  # the weight of each stack, added to the profile at the end
    spans: List[Tuple[float, float]] = []
    for data, ch in chunks:
        spans.append((ch.start, ch.end))
        try:
            types, pools, want, offsets = _chunk_events(data, ch, wanted)
            res = _Resolver(types, pools, profile, threads)
            base, per_tick = ch.start_ns / 1e9, 1.0 / ch.ticks_per_second
            flat = types.flat(want)
            keys: Dict[Tuple[Any, Any], Optional[Tuple[Tuple[str, ...], str]]] = {}
            for p in offsets:
                if flat is not None:
                    values = {}
                    for name in flat:
                        b = data[p]
                        if b < 0x80:
                            values[name] = b
                            p += 1
                        else:
                            values[name], p = _varint(data, p)
                else:
                    values, _ = types.read(data, p, want)
                pair = (values.get("stackTrace"), values.get("sampledThread"))
                got = keys.get(pair)
                if got is None:
                    stack = res.stack(pair[0])
                    if stack is not None:
                        tframe, tname = res.thread(pair[1])
                        got = keys[pair] = ((tframe,) + stack if tframe is not None else stack, tname)
                if got is None:
                    diag.malformed(p, f"{wanted} event without a stack trace in its chunk's constant pool")
                    continue
                weight = values.get(weight_field, 1) if weight_field else 1
                seen += 1
                if weight:
                    totals[got[0]] = totals.get(got[0], 0) + weight
                    timeline.append_absolute(base + (values.get("startTime", ch.start_ticks) - ch.start_ticks) * per_tick,
                                             got[0], got[1], weight)
        except (IndexError, struct.error, KeyError, TypeError, ValueError) as e:
            if isinstance(e, CaptureFormatError):
                raise
            raise CaptureFormatError(f"corrupt JFR chunk at byte {ch.offset}: {type(e).__name__}") from None
    for key, weight in totals.items():
        profile.add_ids(key, weight)
    profile.timeline = timeline if len(timeline) else None
    if not seen:
        diag.warn(f"no {wanted} events with stack traces in the recording")
    m = profile.meta
    m.extra.update({"events": seen, "format": "jfr", "chunks": len(spans)})
    if spans:
        from datetime import datetime, timezone

        m.extra["span"] = [spans[0][0], spans[-1][1]]
        if m.start is None:
            m.start = datetime.fromtimestamp(spans[0][0], timezone.utc).isoformat().replace("+00:00", "Z")
    return profile

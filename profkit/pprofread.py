# SPDX-License-Identifier: Apache-2.0
"""Reading pprof (``perftools.profiles.Profile``, gzipped or not) into a :class:`Profile`: what a
profile store (Parca's ``REPORT_TYPE_PPROF``) answers to ``profkit pull``.

A small protobuf reader (varints and length-delimited fields are all pprof uses); no dependency.
The input is read whole, so its size is bounded by the caller (the HTTP client's ``max_bytes``,
also on the decompressed size). Frames: a Function's ``system_name`` when it is a frame profkit
wrote (``name (file:line)``), else ``name (file:line)`` from its fields; a Location without lines
is its address. Inlined lines of one Location become one frame each, caller first.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

from profkit.errors import InputError
from profkit.model import Frame, Profile

__all__ = ["PprofData", "parse_pprof", "read_pprof"]

_UNITS = {"nanoseconds": "nanoseconds", "count": "samples", "bytes": "bytes"}


def _varint(buf: bytes, i: int) -> Tuple[int, int]:
    shift = result = 0
    while True:
        if i >= len(buf):
            raise InputError("pprof: truncated varint")
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7
        if shift > 70:
            raise InputError("pprof: varint too long")


def _fields(buf: bytes) -> Iterator[Tuple[int, int, object]]:
    """(field number, wire type, value: int or bytes) of one message."""
    i, n = 0, len(buf)
    while i < n:
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            v, i = _varint(buf, i)
            yield num, wire, v
        elif wire == 2:
            size, i = _varint(buf, i)
            if i + size > n:
                raise InputError("pprof: truncated field")
            yield num, wire, buf[i:i + size]
            i += size
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        else:
            raise InputError(f"pprof: unsupported wire type {wire}")


def _ints(wire: int, value: object) -> List[int]:
    """A repeated integer field's values: packed (bytes) or one unpacked varint."""
    if wire == 0:
        return [int(value)]  # type: ignore[arg-type]
    buf, out, i = value, [], 0
    while i < len(buf):  # type: ignore[arg-type]
        v, i = _varint(buf, i)  # type: ignore[arg-type]
        out.append(v - (1 << 64) if v >= 1 << 63 else v)
    return out


def _msg(buf: object) -> Dict[int, List[Tuple[int, object]]]:
    out: Dict[int, List[Tuple[int, object]]] = {}
    for num, wire, v in _fields(buf):  # type: ignore[arg-type]
        out.setdefault(num, []).append((wire, v))
    return out


def _one(m: Dict[int, List[Tuple[int, object]]], num: int, default: int = 0) -> int:
    vals = m.get(num)
    return int(vals[-1][1]) if vals and vals[-1][0] == 0 else default  # type: ignore[arg-type]


@dataclass
class PprofData:
    """What profkit keeps of a pprof file."""

    sample_types: List[Tuple[str, str]] = field(default_factory=list)
    samples: List[Tuple[List[int], List[int]]] = field(default_factory=list)  #: (location ids leaf first, values)
    frames: Dict[int, List[str]] = field(default_factory=dict)                #: location id → frame texts, caller first
    period: int = 0
    period_type: Tuple[str, str] = ("", "")
    time_nanos: int = 0
    duration_nanos: int = 0


def read_pprof(data: bytes, limit: int = 256 << 20) -> PprofData:
    """Decode pprof bytes (gzip is undone, the result capped at ``limit`` bytes)."""
    if data[:2] == b"\x1f\x8b":
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            data = d.decompress(data, limit + 1)
        except zlib.error as e:
            raise InputError(f"pprof: corrupt gzip ({e})") from None
        if len(data) > limit or d.unconsumed_tail:
            raise InputError(f"pprof: more than {limit} bytes decompressed; refused")
        if not d.eof:
            raise InputError("pprof: truncated gzip")
    strings: List[str] = []
    raw_types, raw_samples, raw_locs, raw_funcs = [], [], [], []
    top: Dict[int, List[Tuple[int, object]]] = {}
    for num, wire, v in _fields(data):
        if num == 6 and wire == 2:
            strings.append(bytes(v).decode("utf-8", "replace"))  # type: ignore[arg-type]
        elif num == 1 and wire == 2:
            raw_types.append(v)
        elif num == 2 and wire == 2:
            raw_samples.append(v)
        elif num == 4 and wire == 2:
            raw_locs.append(v)
        elif num == 5 and wire == 2:
            raw_funcs.append(v)
        else:
            top.setdefault(num, []).append((wire, v))

    def s(i: int) -> str:
        return strings[i] if 0 <= i < len(strings) else ""

    out = PprofData()
    for t in raw_types:
        m = _msg(t)
        out.sample_types.append((s(_one(m, 1)), s(_one(m, 2))))
    funcs: Dict[int, Tuple[str, str, str]] = {}
    for f in raw_funcs:
        m = _msg(f)
        funcs[_one(m, 1)] = (s(_one(m, 2)), s(_one(m, 3)), s(_one(m, 4)))
    for loc in raw_locs:
        m = _msg(loc)
        texts = []
        for wire, line in m.get(4, []):
            lm = _msg(line)
            texts.append(_frame_text(funcs.get(_one(lm, 1), ("", "", "")), _one(lm, 2)))
        out.frames[_one(m, 1)] = list(reversed(texts)) or [hex(_one(m, 3))]
    for smp in raw_samples:
        m = _msg(smp)
        locs = [x for wire, v in m.get(1, []) for x in _ints(wire, v)]
        values = [x for wire, v in m.get(2, []) for x in _ints(wire, v)]
        out.samples.append((locs, values))
    out.time_nanos, out.duration_nanos, out.period = _one(top, 9), _one(top, 10), _one(top, 12)
    if top.get(11):
        pm = _msg(top[11][-1][1])
        out.period_type = (s(_one(pm, 1)), s(_one(pm, 2)))
    return out


def _frame_text(func: Tuple[str, str, str], line: int) -> str:
    name, system, file = func
    if system and (system == name or system.startswith(name + " (")):
        return system  # the frame text profkit itself wrote
    text = name or system or "??"
    if file:
        text += f" ({file}:{line})" if line else f" ({file})"
    return text


def parse_pprof(data: bytes, value_index: Optional[int] = None, limit: int = 256 << 20) -> Profile:
    """A Profile of one sample type of a pprof file: ``value_index`` (default: the last type, the
    one pprof tools show), in that type's unit (``nanoseconds``, ``bytes``, else ``samples``)."""
    pp = read_pprof(data, limit)
    if not pp.sample_types:
        return Profile()
    idx = len(pp.sample_types) - 1 if value_index is None else value_index
    unit = _UNITS.get(pp.sample_types[idx][1], "samples")
    prof = Profile(unit)
    for locs, values in pp.samples:
        if idx >= len(values) or not values[idx]:
            continue
        stack: List[str] = []
        for lid in reversed(locs):
            stack.extend(pp.frames.get(lid, [f"location {lid}"]))
        if stack:
            prof.add([Frame.parse(t) for t in stack], values[idx])
    return prof

# SPDX-License-Identifier: Apache-2.0
"""Exporting a Profile for other tools: speedscope JSON and pprof (gzipped protobuf).

speedscope (``shared/FORMATS.md`` §8): one ``sampled`` profile; ``shared.frames`` holds each
distinct frame once (``name``, and ``file``/``line`` when the frame name carries them, as
py-spy's ``func (file:line)`` does); samples are frame indices root → leaf, with their weights.

pprof (§7, google/pprof ``proto/profile.proto``): written by hand with a tiny protobuf writer
(varints and length-delimited fields are all it needs; no dependency). Sample types: the
profile's own unit first (``samples``/``count``, ``time``/``nanoseconds``, ``space``/``bytes``,
``objects``/``count``) and, for sampled profiles with a known rate, the sampled time
(``cpu`` or ``wall``/``nanoseconds`` = samples × 1e9 / rate), the default shown. Locations are
leaf first, as pprof expects; one Location and one Function per distinct frame.
"""
from __future__ import annotations

import gzip
import json
import time
from typing import IO, Dict, List, Optional, Tuple

from profkit.model import Frame, Profile
from profkit.textsafe import utf8_text

__all__ = ["SPEEDSCOPE_SCHEMA", "pprof_bytes", "speedscope_document", "write_speedscope"]

SPEEDSCOPE_SCHEMA = "https://www.speedscope.app/file-format-schema.json"
_SPEEDSCOPE_UNITS = {"samples": "none", "objects": "none", "nanoseconds": "nanoseconds", "bytes": "bytes"}


def _split(frame: Frame) -> Tuple[str, Optional[str], Optional[int]]:
    """(function name, file, line) of a frame, strict UTF-8 (undecodable bytes shown as U+FFFD)."""
    return (utf8_text(frame.name), utf8_text(frame.file) if frame.file is not None else None, frame.line)


def speedscope_document(profile: Profile, name: str = "profile") -> Dict:
    """The speedscope file as a dict (validated against the schema in the tests)."""
    index: Dict[str, int] = {}
    frames: List[Dict] = []
    samples: List[List[int]] = []
    weights: List[float] = []
    for key, w in profile.sorted_items():
        row = []
        for fid in key:
            i = index.get(fid)
            if i is None:
                fname, file, line = _split(profile.frame(fid))
                entry: Dict = {"name": fname}
                if file:
                    entry["file"] = file
                if line is not None:
                    entry["line"] = line
                i = index[fid] = len(frames)
                frames.append(entry)
            row.append(i)
        samples.append(row)
        weights.append(w)
    total = sum(weights)
    name = utf8_text(name)
    return {"$schema": SPEEDSCOPE_SCHEMA, "exporter": "profkit", "name": name, "activeProfileIndex": 0,
            "shared": {"frames": frames},
            "profiles": [{"type": "sampled", "name": name, "unit": _SPEEDSCOPE_UNITS.get(profile.unit, "none"),
                          "startValue": 0, "endValue": total, "samples": samples, "weights": weights}]}


def write_speedscope(profile: Profile, out: IO[str], name: str = "profile") -> None:
    """Write the speedscope JSON to a text stream."""
    json.dump(speedscope_document(profile, name), out, separators=(",", ":"), ensure_ascii=False)
    out.write("\n")


# -- pprof: a minimal protobuf writer --------------------------------------------------------
def _varint(n: int, buf: bytearray) -> None:
    if n < 0:
        n += 1 << 64  # int64 fields: two's complement, ten bytes
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            buf.append(b | 0x80)
        else:
            buf.append(b)
            return


def _key(field: int, wire: int, buf: bytearray) -> None:
    _varint((field << 3) | wire, buf)


def _int(field: int, value: int, buf: bytearray) -> None:
    if value:
        _key(field, 0, buf)
        _varint(value, buf)


def _bytes(field: int, data: bytes, buf: bytearray) -> None:
    _key(field, 2, buf)
    _varint(len(data), buf)
    buf += data


def _packed(field: int, values: List[int], buf: bytearray) -> None:
    if values:
        inner = bytearray()
        for v in values:
            _varint(v, inner)
        _bytes(field, bytes(inner), buf)


class _Strings:
    """The string table: index 0 is always ""."""

    def __init__(self):
        self.table: List[str] = [""]
        self.index: Dict[str, int] = {"": 0}

    def __call__(self, s: str) -> int:
        i = self.index.get(s)
        if i is None:
            i = self.index[s] = len(self.table)
            self.table.append(s)
        return i


_PPROF_TYPES = {"samples": ("samples", "count"), "nanoseconds": ("time", "nanoseconds"),
                "bytes": ("space", "bytes"), "objects": ("objects", "count")}


def pprof_bytes(profile: Profile, *, rate: Optional[float] = None, mode: str = "cpu",
                duration: Optional[float] = None, comment: Optional[str] = None,
                time_nanos: Optional[int] = None) -> bytes:
    """The gzipped ``perftools.profiles.Profile`` of ``profile``; ``time_nanos`` is when it starts
    (default now: a profile store files a window under its start)."""
    st = _Strings()
    out = bytearray()
    types = [_PPROF_TYPES.get(profile.unit, ("samples", "count"))]
    period_ns = int(round(1e9 / rate)) if (rate and profile.unit == "samples") else 0
    if period_ns:
        types.append(("wall" if mode == "wall" else "cpu", "nanoseconds"))
    for t, u in types:  # field 1: sample_type
        vt = bytearray()
        _int(1, st(t), vt)
        _int(2, st(u), vt)
        _bytes(1, bytes(vt), out)
    loc_of: Dict[str, int] = {}
    func_of: Dict[Tuple[str, str], int] = {}
    locations = bytearray()
    functions = bytearray()
    samples = bytearray()
    frames = profile.frames
    for key, w in profile.sorted_items():
        ids = []
        for fid in reversed(key):  # leaf first
            lid = loc_of.get(fid)
            if lid is None:
                fname, file, line = _split(frames[fid])
                fk = (fname, file or "")
                fnid = func_of.get(fk)
                if fnid is None:
                    fnid = func_of[fk] = len(func_of) + 1
                    fn = bytearray()
                    _int(1, fnid, fn)
                    _int(2, st(fname), fn)
                    _int(3, st(utf8_text(frames[fid].text)), fn)  # system_name: the frame as profkit shows it
                    _int(4, st(file or ""), fn)
                    _bytes(5, bytes(fn), functions)
                lid = loc_of[fid] = len(loc_of) + 1
                ln = bytearray()
                _int(1, fnid, ln)
                _int(2, line or 0, ln)
                loc = bytearray()
                _int(1, lid, loc)
                _bytes(4, bytes(ln), loc)
                _bytes(4, bytes(loc), locations)
            ids.append(lid)
        value = int(round(w))  # pprof values are integers
        values = [value] + ([value * period_ns] if period_ns else [])
        s = bytearray()
        _packed(1, ids, s)
        _packed(2, values, s)
        _bytes(2, bytes(s), samples)
    out += samples
    out += locations
    out += functions
    body_tail = bytearray()
    if comment:
        st(comment)
    _int(9, int(time_nanos if time_nanos is not None else time.time() * 1e9), body_tail)  # time_nanos
    if duration:
        _int(10, int(duration * 1e9), body_tail)
    if period_ns:
        pt = bytearray()
        _int(1, st("wall" if mode == "wall" else "cpu"), pt)
        _int(2, st("nanoseconds"), pt)
        _bytes(11, bytes(pt), body_tail)  # period_type
        _int(12, period_ns, body_tail)
    if comment:
        _int(13, st(comment), body_tail)  # comment (one string index; repeated field, unpacked)
    if period_ns:
        _int(14, st("wall" if mode == "wall" else "cpu"), body_tail)  # default_sample_type
    for s in st.table:  # field 6: string_table (written after every index is known)
        _bytes(6, utf8_text(s).encode("utf-8"), out)
    out += body_tail
    return gzip.compress(bytes(out), mtime=0)

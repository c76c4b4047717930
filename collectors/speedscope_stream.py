# SPDX-License-Identifier: Apache-2.0
"""A speedscope JSON file (``shared/FORMATS.md`` §8) read as a stream, with ``ijson``.

Memory is proportional to the distinct stacks and the frame table, plus about 12 bytes a
sample (4 with ``weights=False``), not to the JSON document: each sample becomes the id of its
interned stack (a tuple of the file's frame indices, as written) in an ``array('I')`` per
profile, each weight a float in an ``array('d')``. py-spy 0.4 writes ``profiles`` before
``shared``, so frames are resolved by the callers once the whole file is read
(:mod:`collectors.pyspy`, :mod:`collectors.pyspy_placed`).

A sample that is not a list of integers gets the id :data:`BAD` (its text is kept for the
first few); a weight that is not a number is NaN. Scalar fields of a profile (``type``,
``name``, ``unit``, …) are kept as they are; a field that is an object or a list (other than
``samples``/``weights``) is kept as :data:`COMPOUND`.
"""
from __future__ import annotations

import json
import math
import zlib
from array import array
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Dict, List, Optional, Tuple

import ijson

from profkit.errors import CaptureFormatError
from profkit.fastjson import loads
from profkit.inputs import Source

__all__ = ["BAD", "COMPOUND", "Speedscope", "SpeedscopeProfile", "read_speedscope"]

#: the stack id of a sample that is not a list of integers
BAD = 0xFFFFFFFF
#: the value kept for a profile field that is an object or a list
COMPOUND = object()
#: ijson's fastest backend (yajl2_c, a C extension in its wheels); where it is missing ijson falls
#: back to its pure-Python one by itself: the same events, several times slower
_parse = ijson.parse
#: files up to this size are parsed whole (orjson): their objects take tens of MB at most
WHOLE_BYTES = 4 << 20
_TEXTS = 20  # texts of malformed samples kept (Diagnostics keeps fewer examples)
_SCALARS = ("string", "number", "boolean", "null")


@dataclass
class SpeedscopeProfile:
    """One entry of ``profiles``: its scalar fields, samples (stack ids) and weights."""

    index: int
    fields: Optional[Dict[str, Any]] = None  # None: the entry is not an object
    samples: Optional[array] = None  # None: no samples list
    weights: Optional[array] = None  # None: no weights list (or not kept)
    texts: Dict[int, str] = field(default_factory=dict)  # sample index → text of a malformed sample
    wtexts: Dict[int, str] = field(default_factory=dict)  # weight index → text of a weight not a number


@dataclass
class Speedscope:
    """What :func:`read_speedscope` read: ``profiles`` is None unless the file is an object with a
    ``profiles`` list; ``frames`` None unless it has a ``shared.frames`` list."""

    profiles: Optional[List[SpeedscopeProfile]] = None
    frames: Optional[list] = None
    exporter: Optional[str] = None
    stacks: List[Tuple[int, ...]] = field(default_factory=list)  # stack id → frame indices, root first


def read_speedscope(source: Source, *, weights: bool = True) -> Speedscope:
    """Stream ``source`` (a speedscope JSON file) into a :class:`Speedscope`.

    Invalid or truncated JSON is a :class:`~profkit.errors.CaptureFormatError` (one line).
    """
    raw = source.binary_stream()
    try:
        head = raw.read(WHOLE_BYTES + 1)
    except (EOFError, OSError, zlib.error) as e:
        raise source.corrupt(e) from None
    if len(head) <= WHOLE_BYTES:  # small (an agent's window): read whole, a tenth of the time
        try:
            return _from_document(loads(head), weights)
        except ValueError:
            pass  # not JSON: the stream below says where, as for a large file
    stream = _Counted(_Prefixed(head, raw))
    try:
        return _read(_parse(stream, use_float=True), weights)
    except ijson.JSONError as e:
        text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CaptureFormatError(f"truncated or invalid speedscope JSON: {text[:160]} (in the first {stream.bytes} "
                                 "bytes)", location=f"{source.name}:{stream.line}") from None
    except UnicodeDecodeError as e:
        raise CaptureFormatError(f"speedscope JSON is not valid UTF-8 (byte {e.start})", location=source.name) from None
    except (EOFError, OSError, zlib.error) as e:
        raise source.corrupt(e) from None


class _Prefixed:
    """``head`` (already read) and then the rest of ``stream``."""

    def __init__(self, head: bytes, stream: Any):
        self.head, self.stream = head, stream

    def read(self, n: int = -1) -> bytes:
        if self.head:
            if n < 0 or n >= len(self.head):
                data, self.head = self.head, b""
                return data + (self.stream.read(n - len(data)) if n > len(data) else b"" if n >= 0 else self.stream.read())
            data, self.head = self.head[:n], self.head[n:]
            return data
        return self.stream.read(n)


def _from_document(doc: Any, keep_weights: bool) -> Speedscope:
    """What :func:`_read` makes of the same file, from its parsed document (files up to
    :data:`WHOLE_BYTES`, where ``json.loads``' objects stay small): the same profiles, stack
    ids, malformed samples and weights."""
    out = Speedscope()
    if not isinstance(doc, dict):
        return out
    frames, exporter = (doc.get("shared") or {}).get("frames") if isinstance(doc.get("shared"), dict) else None, \
        doc.get("exporter")
    out.frames = frames if isinstance(frames, list) else None
    out.exporter = exporter if isinstance(exporter, str) else None
    profiles = doc.get("profiles")
    if not isinstance(profiles, list):
        return out
    out.profiles = []
    interned: Dict[Tuple[int, ...], int] = {}
    stacks = out.stacks
    for i, entry in enumerate(profiles):
        if not isinstance(entry, dict):
            out.profiles.append(SpeedscopeProfile(i, None))
            continue
        p = SpeedscopeProfile(i, {k: (v if not isinstance(v, (dict, list)) else COMPOUND)
                                  for k, v in entry.items() if k not in ("samples", "weights")})
        samples, ws = entry.get("samples"), entry.get("weights")
        if isinstance(samples, list) and _all_int_lists(samples):
            # every sample a list of integers (what py-spy writes): interned in C-level passes,
            # a Python step per distinct stack only (an agent window has ~1,000 samples a target)
            keys = list(map(tuple, samples))
            for key in dict.fromkeys(keys):
                if key not in interned:
                    interned[key] = len(stacks)
                    stacks.append(key)
            p.samples = array("I", map(interned.__getitem__, keys))
        elif isinstance(samples, list):
            p.samples = ids = array("I")
            for sample in samples:
                if type(sample) is list and all(type(k) is int for k in sample):
                    key = tuple(sample)
                    sid = interned.get(key)
                    if sid is None:
                        sid = interned[key] = len(stacks)
                        stacks.append(key)
                    ids.append(sid)
                else:
                    _bad(p, ids, [k if not isinstance(k, (list, dict)) else [] for k in sample]
                         if type(sample) is list else [] if isinstance(sample, dict) else sample)
        if isinstance(ws, list) and keep_weights:
            p.weights = wa = array("d")
            for w in ws:
                if isinstance(w, (int, float)) and not isinstance(w, bool):
                    wa.append(w)
                else:
                    if len(p.wtexts) < _TEXTS:
                        p.wtexts[len(wa)] = json.dumps(w, default=str)[:200]
                    wa.append(math.nan)
        out.profiles.append(p)
    return out


class _Counted:
    """A binary stream counting what was read: where a JSON error is (to the chunk ijson read)."""

    def __init__(self, stream: Any):
        self.stream, self.bytes, self.newlines, self.last = stream, 0, 0, b""

    def read(self, n: int = -1) -> bytes:
        data = self.stream.read(n)
        self.bytes += len(data)
        self.newlines += data.count(b"\n")
        self.last = data[-1:] or self.last
        return data

    @property
    def line(self) -> int:
        """The line the data read so far ends on (a final newline not counted)."""
        return 1 + self.newlines - (self.last == b"\n")


_SI, _SS, _WI, _WW = "profiles.item.samples.item", "profiles.item.samples", "profiles.item.weights.item", \
    "profiles.item.weights"
_SII, _SID = _SI + ".item", _SI + "."
_PI, _PF = "profiles.item", "profiles.item."


class _State:
    """The reader's state outside the hot path (samples and weights)."""

    def __init__(self, keep_weights: bool):
        self.out = Speedscope()
        self.keep_weights = keep_weights
        self.p: Optional[SpeedscopeProfile] = None
        self.samples, self.weights = array("I"), array("d")
        self.frames: Any = None  # an ijson.ObjectBuilder while inside shared.frames
        self.top: Optional[str] = None

    def event(self, prefix: str, event: str, value: Any) -> None:
        p, out = self.p, self.out
        if self.frames is not None:
            self.frames.event(event, value)
            if prefix == "shared.frames" and event == "end_array":
                out.frames, self.frames = self.frames.value, None
        elif prefix == _PI:
            if event == "start_map":
                self.p = SpeedscopeProfile(len(out.profiles or ()), {})
                self.samples, self.weights = array("I"), array("d")
            elif event == "end_map":
                if p is not None and out.profiles is not None:
                    out.profiles.append(p)
                self.p = None
            elif event != "map_key" and out.profiles is not None:
                out.profiles.append(SpeedscopeProfile(len(out.profiles), None))  # not an object
        elif prefix == _SS:
            if event == "start_array" and p is not None:
                p.samples = self.samples
        elif prefix == _WW:
            if event == "start_array" and p is not None and self.keep_weights:
                p.weights = self.weights
        elif prefix.startswith(_PF):
            key = prefix[len(_PF):]
            if p is not None and p.fields is not None and "." not in key and event != "map_key":
                p.fields.setdefault(key, value if event in _SCALARS else COMPOUND)
        elif prefix == "profiles":
            if event == "start_array" and self.top == "object":
                out.profiles = []
        elif prefix == "shared.frames" and event == "start_array":
            self.frames = ijson.ObjectBuilder()
            self.frames.event(event, value)
        elif prefix == "exporter" and event == "string":
            out.exporter = value
        elif prefix == "" and self.top is None:
            self.top = "object" if event == "start_map" else "other"


def _read(events, keep_weights: bool) -> Speedscope:
    """The event loop: the samples' and weights' events (nearly all of them) here, the rest in _State."""
    st = _State(keep_weights)
    interned: Dict[Tuple[int, ...], int] = {}
    stacks = st.out.stacks
    other = st.event
    cur: list = []
    ok = False
    for prefix, event, value in events:
        if prefix == _SII:  # within a sample: a frame index (or, malformed, anything else)
            if event == "number" and type(value) is int:
                cur.append(value)
            elif event in _SCALARS:
                ok = False
                cur.append(value)
            elif event == "start_array" or event == "start_map":
                ok = False
                cur.append([])
        elif prefix == _SI:  # a sample's start and end
            if event == "start_array" or event == "start_map":
                ok, cur = event == "start_array", []
            elif event == "end_array" or event == "end_map":
                if ok:
                    key = tuple(cur)
                    sid = interned.get(key)
                    if sid is None:
                        sid = interned[key] = len(stacks)
                        stacks.append(key)
                    st.samples.append(sid)
                else:
                    _bad(st.p, st.samples, cur)
            elif event != "map_key":  # a scalar sample
                _bad(st.p, st.samples, value)
        elif prefix == _WI:
            if not keep_weights:
                continue
            if event == "number":
                st.weights.append(value)
            else:
                p = st.p
                if p is not None and len(p.wtexts) < _TEXTS:
                    p.wtexts[len(st.weights)] = json.dumps(value, default=str)[:200]
                st.weights.append(math.nan)
        elif prefix.startswith(_SID):  # deeper inside a malformed sample
            pass
        else:
            other(prefix, event, value)
    return st.out


def _all_int_lists(samples: list) -> bool:
    """Whether every sample is a list of plain integers (not bools, floats or anything else),
    checked by the types' sets (C loops over the samples and over all their frames)."""
    if not set(map(type, samples)) <= {list}:
        return False
    return set(map(type, chain.from_iterable(samples))) <= {int}


def _bad(p: Optional[SpeedscopeProfile], samples: array, text: Any) -> None:
    if p is not None and len(p.texts) < _TEXTS:
        p.texts[len(samples)] = json.dumps(text, default=str)[:200]
    samples.append(BAD)

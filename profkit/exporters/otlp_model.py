# SPDX-License-Identifier: Apache-2.0
"""A profkit window as an OpenTelemetry profile, and back.

The wire messages are ``opentelemetry.proto.collector.profiles.v1development`` /
``opentelemetry.proto.profiles.v1development`` of the ``opentelemetry-proto`` PyPI package (pinned
1.45.2, the ``stores`` extra); they are imported only when a window is encoded or decoded, so that
``profkit --help`` never loads protobuf. The mapping (``docs/contract.md`` "OTLP profiles"):

- one ``ResourceProfiles`` per window; its resource carries the window's labels, the well-known
  ones under their semantic-convention keys (:data:`RESOURCE_KEYS`: ``service`` →
  ``service.name``, ``host`` → ``host.name``, ``pid`` → ``process.pid`` as an int, …) and every
  other label under its own name (label names have no dots, so the two never collide);
- one ``ScopeProfiles`` (scope ``profkit`` + version) holding one ``Profile``: ``time_unix_nano``
  and ``duration_nano`` from the window, a random ``profile_id``, ``sample_type`` and, for sampled
  windows with a rate, ``period_type``/``period`` from :func:`value_types`;
- the request's ``ProfilesDictionary``: every table starts with its zero value; one ``Function``
  per distinct (name, file), one ``Location`` per distinct frame (one ``Line``: function, line;
  attributes ``profile.frame.type`` = ``cpython``/``kernel``/``native``/``jvm`` where profkit knows
  the kind, and ``profkit.frame.kind`` where that type does not restore the frame's folded
  annotation), one ``Stack`` per distinct stack, *leaf first*, as the proto defines it;
- one ``Sample`` per stack: ``stack_index`` and one value (the weight, rounded to an integer).
"""
from __future__ import annotations

import os
from typing import Dict, List, Mapping, Optional, Tuple

from profkit.exporters.base import Window
from profkit.frames import SUFFIX_OF, Frame, FrameKind
from profkit.model import Profile
from profkit.textsafe import utf8_text

__all__ = ["RESOURCE_KEYS", "decode_request", "encode_window", "profiles_of", "value_types"]

#: profkit label → OpenTelemetry resource attribute (semantic conventions)
RESOURCE_KEYS = {"service": "service.name", "host": "host.name", "pid": "process.pid",
                 "runtime": "process.runtime.name", "version": "service.version"}
_FRAME_TYPES = {FrameKind.PYTHON: "cpython", FrameKind.KERNEL: "kernel", FrameKind.NATIVE: "native",
                FrameKind.JIT: "jvm", FrameKind.INTERPRETED: "jvm", FrameKind.C1: "jvm"}
_KIND_OF_TYPE = {"cpython": FrameKind.PYTHON, "kernel": FrameKind.KERNEL, "native": FrameKind.NATIVE,
                 "jvm": FrameKind.JIT}
#: Location attributes: the semantic-convention frame type, and profkit's own kind where that
#: type does not say it (JVM interpreted/C1/inlined frames, allocated classes, waker frames)
FRAME_TYPE, FRAME_KIND = "profile.frame.type", "profkit.frame.kind"
_SPACE = {"bytes": ("alloc_space", "bytes"), "objects": ("alloc_objects", "count")}


def value_types(unit: str, mode: str, rate: Optional[float]) -> Tuple[Tuple[str, str], Optional[Tuple[str, str]], int]:
    """(sample_type, period_type or None, period) of a window.

    samples → ``samples``/``count`` with period ``MODE``/``nanoseconds`` = 1e9 / rate (cpu, wall;
    lock and alloc sampling counts take ``MODE``/``count``, period 1); nanoseconds →
    ``MODE``/``nanoseconds``; bytes → ``alloc_space``/``bytes``; objects → ``alloc_objects``/``count``.
    """
    if unit == "samples":
        if rate and mode in ("cpu", "wall"):
            return ("samples", "count"), (mode, "nanoseconds"), int(round(1e9 / rate))
        return ("samples", "count"), (mode, "count"), 1
    if unit == "nanoseconds":
        return (mode, "nanoseconds"), None, 0
    return _SPACE.get(unit, ("samples", "count")), None, 0


class _Table:
    """A dictionary table: value → index, with the zero value at index 0."""

    def __init__(self, zero):
        self.items: List = [zero]
        self.index: Dict = {zero: 0}

    def __call__(self, key, make=None) -> int:
        i = self.index.get(key)
        if i is None:
            i = self.index[key] = len(self.items)
            self.items.append(key if make is None else make())
        return i


def _any_value(value, pb_common):
    if isinstance(value, bool) or not isinstance(value, int):
        return pb_common.AnyValue(string_value=utf8_text(str(value)))
    return pb_common.AnyValue(int_value=value)


def _resource_attributes(labels: Mapping[str, str], pb_common) -> list:
    out = []
    for name, value in sorted(labels.items()):
        key = RESOURCE_KEYS.get(name, name)
        v = int(value) if key == "process.pid" and str(value).isdigit() else value
        out.append(pb_common.KeyValue(key=key, value=_any_value(v, pb_common)))
    return out


def encode_window(window: Window, scope_version: str = ""):
    """The ``ExportProfilesServiceRequest`` of one window (see the module docstring)."""
    from opentelemetry.proto.collector.profiles.v1development import profiles_service_pb2 as svc
    from opentelemetry.proto.common.v1 import common_pb2 as pb_common
    from opentelemetry.proto.profiles.v1development import profiles_pb2 as pb
    from opentelemetry.proto.resource.v1 import resource_pb2

    profile = window.profile
    strings = _Table("")
    functions, locations, stacks = _Table((0, 0, 0)), _Table(None), _Table(())
    attrs = _Table(None)
    frames = profile.frames
    samples = []
    for key, weight in profile.sorted_items():
        ids = []
        for fid in reversed(key):  # the proto's stacks are leaf first
            if fid not in locations.index:
                ids.append(locations(fid, lambda: _location(frames[fid], strings, functions, attrs, pb, pb_common)))
            else:
                ids.append(locations.index[fid])
        stack = stacks(tuple(ids))
        samples.append(pb.Sample(stack_index=stack, values=[int(round(weight))]))
    (st, su), period_type, period = value_types(profile.unit, window.mode, window.rate)
    start_ns = int(window.start.timestamp() * 1_000_000_000)
    prof = pb.Profile(sample_type=pb.ValueType(type_strindex=strings(st), unit_strindex=strings(su)),
                      samples=samples, time_unix_nano=start_ns,
                      duration_nano=max(0, int(window.seconds * 1_000_000_000)), profile_id=os.urandom(16))
    if period_type:
        prof.period_type.CopyFrom(pb.ValueType(type_strindex=strings(period_type[0]),
                                               unit_strindex=strings(period_type[1])))
        prof.period = period
    dictionary = pb.ProfilesDictionary(
        mapping_table=[pb.Mapping()], link_table=[pb.Link()],
        location_table=[pb.Location()] + locations.items[1:],
        function_table=[pb.Function(name_strindex=n, system_name_strindex=s, filename_strindex=f)
                        for n, s, f in functions.items],
        stack_table=[pb.Stack(location_indices=list(ix)) for ix in stacks.items],
        attribute_table=[pb.KeyValueAndUnit()] + attrs.items[1:],
        string_table=strings.items)
    scope = pb_common.InstrumentationScope(name="profkit", version=scope_version)
    resource = resource_pb2.Resource(attributes=_resource_attributes(window.labels, pb_common))
    return svc.ExportProfilesServiceRequest(
        resource_profiles=[pb.ResourceProfiles(resource=resource,
                                               scope_profiles=[pb.ScopeProfiles(scope=scope, profiles=[prof])])],
        dictionary=dictionary)


def _location(frame: Frame, strings: _Table, functions: _Table, attrs: _Table, pb, pb_common):
    name, file = utf8_text(frame.name), utf8_text(frame.file) if frame.file is not None else ""
    n = strings(name)
    fn = functions((n, n, strings(file)))
    loc = pb.Location(lines=[pb.Line(function_index=fn, line=frame.line or 0)])
    kind = _FRAME_TYPES.get(frame.kind)
    for key, value in ((FRAME_TYPE, kind), (FRAME_KIND, frame.kind.value if _exact_kind(frame.kind) else None)):
        if value:
            loc.attribute_indices.append(attrs((key, value), lambda: pb.KeyValueAndUnit(
                key_strindex=strings(key), value=pb_common.AnyValue(string_value=value))))
    return loc


def _exact_kind(kind: FrameKind) -> bool:
    """Whether a frame's kind needs ``profkit.frame.kind`` to come back: it has a folded annotation
    that ``profile.frame.type`` does not restore."""
    return kind in SUFFIX_OF and _KIND_OF_TYPE.get(_FRAME_TYPES.get(kind)) is not kind


def decode_request(data: bytes):
    """An ``ExportProfilesServiceRequest`` (or the same-shaped ``ProfilesData``) from protobuf bytes."""
    from opentelemetry.proto.collector.profiles.v1development import profiles_service_pb2 as svc

    req = svc.ExportProfilesServiceRequest()
    req.ParseFromString(data)
    return req


def _location_tokens(d) -> List[str]:
    """The folded token of every Location of a dictionary: its first line's function name, file
    and line, and its kind from the location's attributes."""
    strings = d.string_table
    out: List[str] = []
    for loc in d.location_table:
        if not loc.lines:
            out.append(f"0x{loc.address:x}" if loc.address else "[unknown]")
            continue
        line = loc.lines[0]
        fn = d.function_table[line.function_index]
        kind = FrameKind.UNKNOWN
        for i in loc.attribute_indices:
            a = d.attribute_table[i]
            key, value = strings[a.key_strindex], _plain(a.value, strings)
            if key == FRAME_KIND:
                try:
                    kind = FrameKind(value)
                    break
                except ValueError:
                    pass
            elif key == FRAME_TYPE:
                kind = _KIND_OF_TYPE.get(value, kind)
        name, file = strings[fn.name_strindex] or strings[fn.system_name_strindex] or "[unknown]", strings[fn.filename_strindex]
        frame = Frame(name, kind, file or None, (line.line or None) if file else None)
        if kind is FrameKind.UNKNOWN:  # a plain text frame: let profkit infer its kind as it reads folded text
            frame = Frame.parse(frame.text)
        out.append(frame.token)
    return out


def profiles_of(request) -> List[Tuple[Dict[str, object], str, Profile]]:
    """(resource attributes, sample type ``type/unit``, Profile) for every profile of a decoded
    request (or ``ProfilesData``); stacks root first again, lines kept, one weight per sample (its
    values summed). Attribute keys and values may be strings or references into the string table."""
    d = request.dictionary
    strings = list(d.string_table)
    loc_tokens = _location_tokens(d)
    out = []
    for rp in request.resource_profiles:
        attrs = {kv.key or strings[kv.key_strindex]: _plain(kv.value, strings) for kv in rp.resource.attributes}
        for sp in rp.scope_profiles:
            for prof in sp.profiles:
                st = f"{strings[prof.sample_type.type_strindex]}/{strings[prof.sample_type.unit_strindex]}"
                unit = {"count": "samples", "nanoseconds": "nanoseconds", "bytes": "bytes"}.get(
                    strings[prof.sample_type.unit_strindex], "samples")
                if st == "alloc_objects/count":
                    unit = "objects"
                p = Profile(unit)
                for s in prof.samples:
                    stack = [loc_tokens[i] for i in d.stack_table[s.stack_index].location_indices]
                    p.add_tokens(stack[::-1], sum(s.values))
                out.append((attrs, st, p))
    return out


def _plain(value, strings) -> object:
    """An AnyValue's scalar; a string given by reference (``string_value_strindex``, as the
    Collector writes profiles' attributes) looked up in the dictionary."""
    which = value.WhichOneof("value")
    if which == "string_value_strindex":
        return strings[value.string_value_strindex]
    return getattr(value, which) if which in ("string_value", "int_value", "bool_value", "double_value") else None

# SPDX-License-Identifier: Apache-2.0
"""``pyroscope=http://HOST:PORT``: a Pyroscope server's ingest and render HTTP API
(``shared/FORMATS.md`` §6; tested against the Apache-2.0 Pyroscope server v0.37.2).

Send: ``POST /ingest?name=APP.TYPE{k=v,…}&from=START&until=END&sampleRate=HZ&spyName=SPY&units=UNITS
&aggregationType=sum&format=folded`` with the window's folded text as the body (weights rounded to
integers). APP is the ``service`` label, TYPE and UNITS follow the window's mode and unit
(:func:`series_type`).

Pyroscope's series names have no escaping at all: the ingest parser ends a value at ``,`` or
``}``, trims spaces, and its query language cannot match a ``"`` next to a ``,``. So names are
made safe here, in a documented, lossy way: the app name keeps ``[A-Za-z0-9_.-]`` (other
characters become ``_``); label values have ``{ } , " \\`` replaced by ``( ) ; ' /``, control
characters by spaces, are trimmed and capped at :data:`~profkit.exporters.base.LABEL_VALUE_MAX`
characters; labels named ``__name__`` are left out (Pyroscope reserves it).

Time: Pyroscope stores 10-s slots and splits a profile spanning several in proportion, truncating
each count; so a window of 10 s or less is sent as the whole slot that holds its middle (no sample
lost, its time known to the store's resolution), and a pull range is widened to whole slots
(:func:`slot_range`).

Pull: ``GET /render?query=APP.TYPE{k="v",…}&from=&until=&format=collapsed`` for the stacks, and
the same query as ``format=json&maxNodes=1`` for its units and sample rate.
"""
from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Dict, Mapping, Tuple

from profkit.errors import ServerRefused, UsageError
from profkit.exporters.base import LABEL_VALUE_MAX, ExportOptions, Exporter, Window
from profkit.model import Profile

__all__ = ["PyroscopeExporter", "app_name", "label_value", "series_name", "series_type"]

_APP_BAD = re.compile(r"[^A-Za-z0-9_.-]")
_VALUE_MAP = str.maketrans({"{": "(", "}": ")", ",": ";", '"': "'", "\\": "/"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
#: profkit collector → Pyroscope's spyName (the UI colours frames by it)
SPY_NAMES = {"py-spy": "pyspy", "async-profiler": "javaspy", "jfr": "javaspy", "perf": "ebpfspy"}
#: a nanoseconds window is sent as samples at this "rate", so that Pyroscope shows seconds
NANOSECOND_RATE = 1_000_000_000
#: Pyroscope's finest time resolution (its storage segments' first level), seconds
SLOT = 10


def app_name(service: str) -> str:
    """Pyroscope's app name of a service: only ``[A-Za-z0-9_.-]``, never empty, capped."""
    name = _APP_BAD.sub("_", service.strip())[:LABEL_VALUE_MAX].strip(".")
    return name or "unknown"


def label_value(value: str) -> str:
    """A label value Pyroscope's name syntax keeps as it is (see the module docstring)."""
    text = _CONTROL.sub(" ", str(value)).translate(_VALUE_MAP).strip()
    return text if len(text) <= LABEL_VALUE_MAX else text[:LABEL_VALUE_MAX - 1].rstrip() + "…"


def series_type(mode: str, unit: str) -> Tuple[str, str]:
    """(the name's TYPE suffix, Pyroscope ``units``) of a window's mode and profile unit."""
    if unit == "bytes":
        return "alloc_space", "bytes"
    if unit == "objects":
        return "alloc_objects", "objects"
    if mode == "lock":
        return "lock", "lock_nanoseconds" if unit == "nanoseconds" else "lock_samples"
    return (mode if mode in ("cpu", "wall") else "cpu"), "samples"


def series_name(app: str, typ: str, labels: Mapping[str, str]) -> str:
    """``APP.TYPE{k=v,…}`` as the ingest API reads it (labels sorted, values made safe)."""
    pairs = [f"{k}={label_value(v)}" for k, v in sorted(labels.items()) if k != "__name__"]
    return f"{app}.{typ}{{{','.join(p for p in pairs if not p.endswith('='))}}}"


def query_of(app: str, typ: str, query: Mapping[str, str]) -> str:
    """``APP.TYPE{k="v",…}`` as the render API's query language reads it."""
    pairs = [f'{k}="{label_value(v)}"' for k, v in sorted(query.items()) if k != "__name__"]
    return f"{app}.{typ}{{{','.join(pairs)}}}"


def slot_range(start: float, end: float) -> Tuple[int, int]:
    """``from``/``until`` of a window: a window no longer than one of Pyroscope's 10-s slots is put
    whole into the slot that holds its middle (Pyroscope splits a tree that spans two slots in
    proportion, truncating every count: a window across a boundary would lose samples); a longer
    one keeps its own range (whole seconds), which Pyroscope spreads over its slots."""
    if end - start <= SLOT:
        first = int(math.floor((start + end) / 2 / SLOT) * SLOT)
        return first, first + SLOT
    return int(math.floor(start)), int(math.ceil(end))


def _whole_slots(start: float, end: float) -> Tuple[int, int]:
    """A read range widened to whole 10-s slots (a part of a slot is read in proportion, truncated)."""
    first = int(math.floor(start / SLOT) * SLOT)
    return first, max(first + SLOT, int(math.ceil(end / SLOT) * SLOT))


def _folded_body(profile: Profile) -> bytes:
    lines = []
    for key, w in profile.sorted_items():
        n = int(round(w))
        if n > 0:
            lines.append(";".join(key).replace("\n", " ") + " " + str(n))
    return ("\n".join(lines) + "\n").encode("utf-8", "replace")


class PyroscopeExporter(Exporter):
    """See the module docstring."""

    kind = "pyroscope"

    def __init__(self, url: str, options: ExportOptions = ExportOptions()):
        super().__init__(url, options)
        self.client = options.client(url, "Pyroscope")

    def params(self, window: Window) -> Dict[str, object]:
        typ, units = series_type(window.mode, window.profile.unit)
        labels = dict(window.labels)
        app = app_name(labels.get("service") or "unknown")
        rate = NANOSECOND_RATE if window.profile.unit == "nanoseconds" and units == "samples" \
            else int(round(window.rate or 100))
        start, until = slot_range(window.start.timestamp(), window.end.timestamp())
        return {"name": series_name(app, typ, labels), "from": start, "until": until,
                "sampleRate": max(1, rate), "spyName": SPY_NAMES.get(labels.get("collector", ""), "profkit"),
                "units": units, "aggregationType": "sum", "format": "folded"}

    def send(self, window: Window) -> None:
        body = _folded_body(window.profile)
        if len(body) > self.options.max_bytes:
            raise ServerRefused(f"the window is {len(body)} bytes of folded text, more than the "
                                f"{self.options.max_bytes} a request may carry; not sent", 413)
        self.client.request("POST", "/ingest", params=self.params(window), body=body,
                            headers={"Content-Type": "text/plain"})

    def pull(self, query: Mapping[str, str], profile_type: str, start: datetime, end: datetime) -> Profile:
        service = query.get("service")
        if not service:
            raise UsageError("--query: a Pyroscope series is named by its service",
                             hint="e.g. --query '{service=\"checkout\"}'")
        typ = profile_type or "cpu"
        if typ in ("cpu", "wall", "lock", "alloc"):
            typ = "alloc_space" if typ == "alloc" else typ
        first, until = _whole_slots(start.timestamp(), end.timestamp())
        params = {"query": query_of(app_name(service), typ, query), "from": first, "until": until}
        # stacks first: a store that had them still has them (and their metadata) a moment later
        text = self.client.get("/render", {**params, "format": "collapsed"}).body
        info = self.client.get("/render", {**params, "format": "json", "maxNodes": 1}).json()
        return _profile_of(text, info if isinstance(info, dict) else {})


def _profile_of(text: bytes, info: Mapping) -> Profile:
    """A Profile from Pyroscope's collapsed answer and the metadata of its JSON answer."""
    from profkit.folded import read_folded
    from profkit.model import ProfileMeta

    md = info.get("metadata") if isinstance(info.get("metadata"), dict) else {}
    units, rate = md.get("units") or "samples", md.get("sampleRate")
    unit = {"bytes": "bytes", "objects": "objects", "lock_nanoseconds": "nanoseconds"}.get(units, "samples")
    if unit == "samples" and rate == NANOSECOND_RATE:
        unit, rate = "nanoseconds", None
    meta = ProfileMeta(collector="pyroscope", sample_rate=float(rate) if isinstance(rate, (int, float)) and rate else None)
    return read_folded(text.decode("utf-8", "replace").splitlines(), unit=unit, meta=meta)


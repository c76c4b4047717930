# SPDX-License-Identifier: Apache-2.0
"""``parca=http://HOST:PORT``: Parca (Apache-2.0), through its HTTP gateway.

Send: ``POST /api/profiles/writeraw`` with ``{"series": [{"labels": {"labels": [{"name":
"__name__", "value": NAME}, …]}, "samples": [{"rawProfile": BASE64 PPROF}]}]}``; the pprof is
profkit's own export (:func:`profkit.export.pprof_bytes`) with the window's start as its time
and the window's length as its duration. ``__name__`` by mode: cpu → ``process_cpu`` (Parca lists
``process_cpu:samples:count:cpu:nanoseconds:delta`` and ``process_cpu:cpu:nanoseconds:cpu:nanoseconds:delta``),
wall → ``wall`` (``wall:samples:count:…`` and ``wall:wall:nanoseconds:…``), alloc → ``memory``, lock → ``lock``.

Pull: ``GET /api/profiles/query?mode=MODE_MERGE&merge.query=TYPE{labels}&merge.start=…
&merge.end=…&reportType=REPORT_TYPE_PPROF``; the pprof answer is read by
:mod:`profkit.pprofread`. ``--type cpu``/``wall`` query the sampled-time series, in nanoseconds.
"""
from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Dict, Mapping

from profkit.errors import InputError
from profkit.exporters.base import ExportOptions, Exporter, Window
from profkit.model import Profile
from profkit.timeparse import format_time

__all__ = ["PROFILE_NAMES", "ParcaExporter", "parca_type", "selector"]

#: mode → the ``__name__`` a window is written under
PROFILE_NAMES = {"cpu": "process_cpu", "wall": "wall", "alloc": "memory", "lock": "lock"}
#: mode → the profile type queried by ``pull --type MODE``: the sampled-time series (its unit,
#: nanoseconds, is unambiguous in the pprof answer), not the sample-count one
TYPES = {"cpu": "process_cpu:cpu:nanoseconds:cpu:nanoseconds:delta",
         "wall": "wall:wall:nanoseconds:wall:nanoseconds:delta",
         "alloc": "memory:space:bytes:space:bytes:delta",
         "lock": "lock:samples:count:lock:nanoseconds:delta"}


def parca_type(profile_type: str) -> str:
    """A full Parca profile type from a mode (``cpu``) or a type given whole."""
    return TYPES.get(profile_type, profile_type) if profile_type else TYPES["cpu"]


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def selector(profile_type: str, query: Mapping[str, str]) -> str:
    """``TYPE{k="v",…}`` with the values escaped as Parca's (PromQL) selector syntax wants."""
    return parca_type(profile_type) + "{" + ",".join(f"{k}={_quote(v)}" for k, v in query.items()) + "}"


class ParcaExporter(Exporter):
    """See the module docstring."""

    kind = "parca"

    def __init__(self, url: str, options: ExportOptions = ExportOptions()):
        super().__init__(url, options)
        self.client = options.client(url, "Parca")

    def body(self, window: Window) -> bytes:
        from profkit.export import pprof_bytes

        raw = pprof_bytes(window.profile, rate=window.rate, mode=window.mode, duration=window.seconds,
                          time_nanos=int(window.start.timestamp() * 1e9))
        labels = [{"name": "__name__", "value": PROFILE_NAMES.get(window.mode, "process_cpu")}]
        labels += [{"name": k, "value": v} for k, v in sorted(window.labels.items()) if v != ""]
        doc = {"series": [{"labels": {"labels": labels}, "samples": [{"rawProfile": base64.b64encode(raw).decode()}]}]}
        return json.dumps(doc).encode("utf-8")

    def send(self, window: Window) -> None:
        body = self.body(window)
        if len(body) > self.options.max_bytes:
            from profkit.errors import ServerRefused

            raise ServerRefused(f"the window is {len(body)} bytes, more than the {self.options.max_bytes} a request "
                                "may carry; not sent", 413)
        self.client.post("/api/profiles/writeraw", body)

    def pull(self, query: Mapping[str, str], profile_type: str, start: datetime, end: datetime) -> Profile:
        from profkit.pprofread import parse_pprof

        params: Dict[str, str] = {"mode": "MODE_MERGE", "merge.query": selector(profile_type, query),
                                  "merge.start": format_time(start), "merge.end": format_time(end),
                                  "reportType": "REPORT_TYPE_PPROF"}
        answer = self.client.get("/api/profiles/query", params).json()
        data = answer.get("pprof") if isinstance(answer, dict) else None
        if not data:
            return Profile("nanoseconds")
        try:
            raw = base64.b64decode(data, validate=False)
        except ValueError as e:
            raise InputError(f"Parca's pprof answer is not base64 ({e})") from None
        return parse_pprof(raw, limit=self.options.max_bytes)

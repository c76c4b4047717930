# SPDX-License-Identifier: Apache-2.0
"""Traces from Jaeger's query API v3 (``GET /api/v3/traces``, OTLP JSON), paged and capped.

Jaeger answers a search with at most ``query.num_traces`` traces (its in-memory store: the most
recently stored ones), and 404 ``No traces found`` when none match. A range may hold more than
one answer: :func:`fetch_traces` asks for the whole range first and, when an answer is full,
splits that window into parts sized from the density it saw and asks for each part, until every
window's answer is complete or ``max_traces`` are read (then ``truncated``). Traces are merged by
id, so overlaps are harmless. ``query.raw_traces=true`` asks Jaeger not to adjust the spans
(its clock-skew adjuster): the critical path clamps children itself and reports the skew.

The time spent waiting for Jaeger (``server_seconds``) is kept apart from profkit's own parsing
(``parse_seconds``), so that a benchmark can tell them apart.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Dict, List, Optional

from profkit.errors import InputError, ServerRefused
from profkit.fastjson import loads
from profkit.http import Client
from profkit.traces.critical import Span

__all__ = ["Fetch", "Trace", "fetch_traces", "parse_answer", "parse_otlp", "rfc3339_ns"]

#: Traces asked for in one request (Jaeger's memory store refuses more than its max_traces).
PAGE = 1000
#: Windows shorter than this are not split again (one request per ms of range at most).
MIN_WINDOW_NS = 1_000_000
#: Requests one fetch may make at most.
MAX_REQUESTS = 400


@dataclass
class Trace:
    trace_id: str
    spans: List[Span] = field(default_factory=list)


@dataclass
class Fetch:
    """What a fetch read: the traces by id, and how."""

    traces: Dict[str, Trace] = field(default_factory=dict)
    requests: int = 0
    server_seconds: float = 0.0
    parse_seconds: float = 0.0
    truncated: bool = False
    #: service → resource attributes profkit uses (``process.pid``), from the spans' resources
    resources: Dict[str, Dict[str, object]] = field(default_factory=dict)

    def summary(self) -> Dict[str, object]:
        return {"requests": self.requests, "traces_read": len(self.traces), "truncated": self.truncated,
                "server_seconds": round(self.server_seconds, 3), "parse_seconds": round(self.parse_seconds, 3)}


def rfc3339_ns(ns: int) -> str:
    """RFC3339 with nanoseconds (what Jaeger's ``time.RFC3339Nano`` parser takes)."""
    sec, frac = divmod(int(ns), 1_000_000_000)
    return datetime.fromtimestamp(sec, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}Z"


def _ns(v) -> int:
    try:
        return int(v)
    except (TypeError, ValueError):
        return 0


_KINDS = ("stringValue", "intValue", "doubleValue", "boolValue")


def _attr(attrs, key: str):
    for a in attrs if type(attrs) is list else ():
        if type(a) is dict and a.get("key") == key:
            v = a.get("value")
            if type(v) is dict:
                for kind in _KINDS:
                    if kind in v:
                        return v[kind]
            return None
    return None


def _resource(rs, resources, names) -> str:
    """The service of one ``resourceSpans`` entry (interned), recording its ``process.pid``."""
    res = rs.get("resource")
    attrs = res.get("attributes") if type(res) is dict else None
    service = _attr(attrs, "service.name")
    service = service if type(service) is str and service else str(service or "?")
    service = names.setdefault(service, service)
    if resources is not None:
        pid = _attr(attrs, "process.pid")
        entry = resources.get(service)
        if entry is None:
            entry = resources[service] = {"process.pid": _ns(pid) if pid is not None else None, "process.pids": []}
        if pid is not None and _ns(pid) and _ns(pid) not in entry["process.pids"] and len(entry["process.pids"]) < 100:
            entry["process.pids"].append(_ns(pid))
    return service


def parse_otlp(doc, out: Dict[str, Trace], resources: Optional[Dict[str, Dict[str, object]]] = None,
               known=()) -> int:
    """Add the spans of one OTLP JSON document (``{"result": {"resourceSpans": …}}`` or bare
    ``{"resourceSpans": …}``) to ``out`` by trace id; returns the number of spans read. Traces
    whose id is in ``known`` (read already, whole) are counted in ``out`` without their spans.
    Malformed parts are skipped, never fatal. ``resources``: service → ``{"process.pid": the
    first seen, "process.pids": every one seen (at most 100)}``.

    Only the fields the critical path needs are read; service and operation names are
    interned (one string object per distinct name: a fetch holds many thousands of spans)."""
    if not isinstance(doc, dict):
        raise InputError("Jaeger's answer is not an OTLP JSON object")
    body = doc.get("result", doc)
    n = 0
    names: Dict[str, str] = {}
    for rs in (body.get("resourceSpans") or ()) if type(body) is dict else ():
        if type(rs) is not dict:
            continue
        service = _resource(rs, resources, names)
        for ss in rs.get("scopeSpans") or ():
            for sp in (ss.get("spans") or ()) if type(ss) is dict else ():
                if type(sp) is not dict:
                    continue
                get = sp.get
                tid, sid = get("traceId"), get("spanId")
                if not tid or not sid:
                    continue
                if type(tid) is not str:
                    tid = str(tid)
                t = out.get(tid)
                if t is None:
                    t = out[tid] = Trace(tid)
                if tid in known:
                    continue
                parent, name = get("parentSpanId"), get("name")
                parent = parent if type(parent) is str else str(parent or "")
                name = name if type(name) is str and name else str(name or "?")
                name = names.get(name) or names.setdefault(name, name)
                try:
                    start = int(get("startTimeUnixNano"))
                except (TypeError, ValueError):
                    start = 0
                try:
                    end = int(get("endTimeUnixNano"))
                except (TypeError, ValueError):
                    end = 0
                t.spans.append(Span(sid if type(sid) is str else str(sid), parent, service, name, start, end))
                n += 1
    return n


def _query(client: Client, service: str, operation: Optional[str], lo: int, hi: int, limit: int,
           fetch: Fetch) -> Dict[str, Trace]:
    params = {"query.service_name": service, "query.start_time_min": rfc3339_ns(lo),
              "query.start_time_max": rfc3339_ns(hi - 1), "query.num_traces": limit, "query.raw_traces": "true"}
    if operation:
        params["query.operation_name"] = operation
    t0 = time.perf_counter()
    fetch.requests += 1
    try:
        resp = client.get("/api/v3/traces", params)
    except ServerRefused as e:
        fetch.server_seconds += time.perf_counter() - t0
        if e.status == 404:  # "No traces found"
            return {}
        raise
    t1 = time.perf_counter()
    fetch.server_seconds += t1 - t0
    found: Dict[str, Trace] = {}
    parse_answer(resp.body, found, fetch.resources, fetch.traces)
    fetch.parse_seconds += time.perf_counter() - t1
    return found


def parse_answer(body: bytes, out: Dict[str, Trace], resources: Optional[Dict[str, Dict[str, object]]] = None,
                 known=()) -> int:
    """:func:`parse_otlp` of one answer's bytes (JSON); an answer that is not JSON is an InputError."""
    from profkit.loading import gc_paused

    with gc_paused():  # millions of short-lived dicts and strings, no cycles
        try:
            doc = loads(body)
        except ValueError as e:
            raise InputError(f"Jaeger's answer is not JSON ({e})") from None
        return parse_otlp(doc, out, resources, known)


def fetch_traces(client: Client, service: str, start_ns: int, end_ns: int, *, operation: Optional[str] = None,
                 max_traces: int = 5000, page: int = PAGE, progress=None) -> Fetch:
    """Every trace with a span of ``service`` starting in ``[start_ns, end_ns)``, up to ``max_traces``."""
    fetch = Fetch()
    windows = [(start_ns, end_ns)]
    while windows:
        lo, hi = windows.pop(0)
        if fetch.requests >= MAX_REQUESTS or len(fetch.traces) >= max_traces:
            fetch.truncated = True
            break
        try:
            found = _query(client, service, operation, lo, hi, page, fetch)
        except ServerRefused as e:
            # A store configured with fewer max_traces than a page refuses the search depth.
            if page > 10 and "depth" in e.message.lower():
                page //= 4
                windows.insert(0, (lo, hi))
                continue
            raise
        for tid, t in found.items():
            if tid in fetch.traces:
                continue
            if len(fetch.traces) < max_traces:
                fetch.traces[tid] = t
            else:
                fetch.truncated = True
        if progress is not None:
            progress(f"{len(fetch.traces)} traces read in {fetch.requests} requests")
        if len(found) < page:
            continue
        if hi - lo <= MIN_WINDOW_NS:
            fetch.truncated = True  # more than a page of traces within a millisecond
            continue
        windows.extend(_split(lo, hi, {tid: fetch.traces.get(tid, t) for tid, t in found.items()}, page))
    return fetch


def _split(lo: int, hi: int, found: Dict[str, Trace], page: int) -> List[tuple]:
    """Parts of a window whose answer was full, sized so that each should hold about half a page:
    the answer covered [earliest start seen, hi) (the store answers with its newest traces)."""
    starts = [min(s.start for s in t.spans) for t in found.values() if t.spans]
    seen_from = max(lo, min(starts)) if starts else lo
    covered = max(1, hi - seen_from)
    estimate = len(found) * (hi - lo) / covered
    parts = max(2, min(64, int(estimate / (page * 0.5)) + 1))
    step = (hi - lo) / parts
    edges = [lo + int(step * i) for i in range(parts)] + [hi]
    return [(a, b) for a, b in zip(edges, edges[1:]) if b > a]

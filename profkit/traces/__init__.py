# SPDX-License-Identifier: Apache-2.0
"""``profkit traces``: compare the critical paths of two sets of traces from Jaeger.

    critical.py   the critical path of one trace (pure: clamping, missing parents, cycles)
    jaeger.py     Jaeger's query API v3 (OTLP JSON), paged and capped
    compare.py    sets (base/head ranges, or slow/fast by percentile), segments, verdict
    output.py     traces.json, span profiles and flame graphs, summary.md, report.html
    focus.py      from a segment's operation to the frames of its service's profile (pure)
    investigate.py  bench --jaeger: targets → services, the top segment's owner, focus.json

:func:`run_traces` is the whole command as a library call.
"""
from __future__ import annotations

import time
from typing import Dict, Optional

from profkit.errors import EnvironmentProblem
from profkit.http import Client
from profkit.secrets import redact
from profkit.timeparse import TimeRange

__all__ = ["run_traces"]


def _ns(t) -> int:
    return int(round(t.timestamp() * 1e9))


def _fetch(client: Client, service: str, operation: Optional[str], rng: TimeRange, max_traces: int, progress, fetches):
    from profkit.traces.compare import analyse
    from profkit.traces.jaeger import fetch_traces

    lo, hi = _ns(rng.start), _ns(rng.end)
    f = fetch_traces(client, service, lo, hi, operation=operation, max_traces=max_traces, progress=progress)
    fetches.append(f)
    from profkit.loading import gc_paused

    t0 = time.perf_counter()
    with gc_paused():  # many small tuples and dicts, no cycles: the cyclic collector would rescan them
        analysed = analyse(list(f.traces.values()), lo, hi)
    return analysed, time.perf_counter() - t0


def run_traces(jaeger: str, service: str, out_dir: str, *, operation: Optional[str] = None,
               base: Optional[TimeRange] = None, head: Optional[TimeRange] = None,
               slow: Optional[float] = None, fast: Optional[float] = None, range_: Optional[TimeRange] = None,
               max_traces: int = 5000, token: Optional[str] = None, ca_file: Optional[str] = None,
               progress=None, into=None) -> Dict:
    """Fetch, analyse and write; returns traces.json's document (with ``files``). ``into``: a run
    directory (``bench --jaeger``) to add traces.json and the span graphs to, instead of a new
    ``out_dir`` with its own summary.md and report.html."""
    from profkit.traces.compare import TraceSet, compare_sets, split_by_duration
    from profkit.traces.output import prepare_dir, write_outputs

    client = Client(jaeger, token=token, ca_file=ca_file, name="Jaeger", timeout=60.0)
    out = into if into is not None else prepare_dir(out_dir)  # a bad -o is refused before any request
    fetches: list = []
    t_analyse = 0.0
    what = f"service {service!r}" + (f", operation {operation!r}" if operation else "")
    if range_ is not None:
        analysed, t = _fetch(client, service, operation, range_, max_traces, progress, fetches)
        t_analyse += t
        if not analysed:
            raise EnvironmentProblem(f"Jaeger has no traces of {what} in {range_}",
                                     hint="check the service name (Jaeger's /api/v3/services lists them) and the range")
        fast_set, slow_set = split_by_duration(analysed, slow, fast)
        fast_set.selection += f" in {range_}"
        slow_set.selection += f" in {range_}"
        base_set, head_set, mode = fast_set, slow_set, f"slow (>= p{slow:g}) vs fast (<= p{fast:g}) traces of one range"
    else:
        sets = []
        for label, rng in (("base", base), ("head", head)):
            analysed, t = _fetch(client, service, operation, rng, max_traces, progress, fetches)
            t_analyse += t
            if not analysed:
                raise EnvironmentProblem(f"Jaeger has no traces of {what} in the {label} range {rng}",
                                         hint="check the service name (Jaeger's /api/v3/services lists them) and the range")
            sets.append(TraceSet(label, f"root starts in {rng}", analysed))
        base_set, head_set, mode = sets[0], sets[1], "base range vs head range"
    t0 = time.perf_counter()
    doc = {"schema": 1, "jaeger": redact(client.base), "service": service, "operation": operation, "mode": mode}
    doc.update(compare_sets(service, base_set, head_set))
    warnings = []
    if any(f.truncated for f in fetches):
        warnings.append(f"more traces than --max-traces {max_traces} (or than profkit pages through) in a range: "
                        "the comparison uses the ones read")
    for kind, v in (doc.get("issues") or {}).items():
        warnings.append(f"{v['traces']} trace(s) with {v['meaning']}: {v['spans']} span(s), e.g. trace "
                        f"{(v['examples'] or ['?'])[0]}")
    doc["warnings"] = warnings
    t_analyse += time.perf_counter() - t0
    doc["fetch"] = {"requests": sum(f.requests for f in fetches), "traces_read": sum(len(f.traces) for f in fetches),
                    "truncated": any(f.truncated for f in fetches),
                    "jaeger_seconds": round(sum(f.server_seconds for f in fetches), 3),
                    "parse_seconds": round(sum(f.parse_seconds for f in fetches), 3),
                    "analyse_seconds": round(t_analyse, 3)}
    resources = {}
    for f in fetches:
        resources.update(f.resources)
    doc["services"] = resources
    t1 = time.perf_counter()
    doc["files"] = write_outputs(out, doc, base_set, head_set, reports=into is None)
    doc["fetch"]["write_seconds"] = round(time.perf_counter() - t1, 3)
    return doc

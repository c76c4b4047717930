# SPDX-License-Identifier: Apache-2.0
"""``profkit pull`` and ``profkit compare --store``: a time range of a profile store as an
ordinary run directory, whose manifest's ``source`` says where it came from.

A query is a label selector, ``{service="checkout",version="1.4.2"}``, optionally preceded by a
store's own profile type (``process_cpu:samples:count:cpu:nanoseconds:delta{…}``); values are
double-quoted with ``\\"``, ``\\\\`` and ``\\n`` escapes; only ``=`` matches.
"""
from __future__ import annotations

import re
from typing import Dict, Optional, Tuple

from profkit.errors import TargetNotFound, UsageError
from profkit.exporters.base import ExportOptions
from profkit.rundir import RunDir
from profkit.timeparse import TimeRange, format_time

__all__ = ["parse_query", "pull_profile", "pull_run"]

_PAIR = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|$)', re.S)
_ESC = {"n": "\n", "\\": "\\", '"': '"', "t": "\t"}


def parse_query(text: str, flag: str = "--query") -> Tuple[str, Dict[str, str]]:
    """``(profile type or "", {label: value})`` of a selector; a malformed one is a usage error (2)."""
    s = (text or "").strip()
    brace = s.find("{")
    if brace < 0:
        if re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_:.\-]*", s or "x"):
            return s, {}
        raise UsageError(f"{flag}: {text!r} is not a selector", hint='use e.g. {service="checkout"}')
    if not s.endswith("}"):
        raise UsageError(f"{flag}: {text!r} does not end with }}", hint='use e.g. {service="checkout"}')
    kind, body = s[:brace].strip(), s[brace + 1:-1]
    out: Dict[str, str] = {}
    pos = 0
    while pos < len(body) and body[pos:].strip():
        m = _PAIR.match(body, pos)
        if not m:
            raise UsageError(f"{flag}: cannot read {body[pos:][:40]!r} in {text!r}",
                             hint='labels are name="value" pairs separated by commas (only = matches)')
        out[m.group(1)] = re.sub(r"\\(.)", lambda e: _ESC.get(e.group(1), e.group(1)), m.group(2))
        pos = m.end()
        if not m.group(3):
            break
    return kind, out


def pull_profile(store: str, query: str, profile_type: Optional[str], span: TimeRange,
                 options: ExportOptions = ExportOptions()):
    """``(profile, profile type, labels)`` of ``store`` over ``span``; no data is TargetNotFound (exit 1)."""
    from profkit.exporters import exporter_for
    from profkit.secrets import redact

    kind_in_query, labels = parse_query(query)
    ptype = profile_type or kind_in_query or "cpu"
    exporter = exporter_for(store, options, flag="--store")
    try:
        profile = exporter.pull(labels, ptype, span.start, span.end)
    finally:
        exporter.close()
    if not profile:
        raise TargetNotFound(f"{redact(store)} has no {ptype} profile matching {query} in {span}",
                             hint="check the labels (service, host, …) and the range; the agent labels windows "
                                  "service=<name> unless --label service= says otherwise")
    return profile, ptype, labels


def pull_run(store: str, query: str, profile_type: Optional[str], span: TimeRange, output: str,
             options: ExportOptions = ExportOptions(), *, render: bool = True) -> RunDir:
    """Pull ``span`` into the run directory ``output``."""
    from profkit.outputs import render_run, write_profiles
    from profkit.runrecord import RunRecord, TargetRecord
    from profkit.secrets import redact

    profile, ptype, labels = pull_profile(store, query, profile_type, span, options)
    kind = store.partition("=")[0]
    mode = ptype if ptype in ("cpu", "wall", "alloc", "lock") else _mode_of(ptype)
    service = labels.get("service") or "store"
    pid = int(labels["pid"]) if labels.get("pid", "").isdigit() else 0
    rec = RunRecord(mode=mode, duration_requested=span.seconds,
                    targets=[TargetRecord(pid, service, labels.get("runtime", "native"), service=labels.get("service"))])
    rec.source = {"store": kind, "url": redact(store.partition("=")[2]), "query": query, "labels": labels,
                  "type": ptype, "range": [format_time(span.start), format_time(span.end)]}
    rec.start = format_time(span.start)
    run = RunDir.create(output, rec)
    run.record.duration = span.seconds
    write_profiles(run, {kind: profile}, [kind])
    run.finish("complete")
    if render:
        render_run(run)
    return run


def _mode_of(ptype: str) -> str:
    low = ptype.lower()
    for mode, words in (("wall", ("wall",)), ("alloc", ("memory", "alloc", "space")), ("lock", ("lock", "mutex"))):
        if any(w in low for w in words):
            return mode
    return "cpu"


def parse_range_flag(text: str, flag: str) -> TimeRange:
    from profkit.timeparse import parse_range

    return parse_range(text, flag)

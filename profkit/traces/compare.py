# SPDX-License-Identifier: Apache-2.0
"""Two sets of traces compared by their critical paths: which span path grew, and by how much.

Each trace's critical path (:mod:`profkit.traces.critical`) gives nanoseconds per span path; a
set's profile is their sum (unit ``nanoseconds``: the span paths are stacks, so the core's
flame-graph and differential renderers draw them). A *segment* is one span path; its ``base_ms``
and ``head_ms`` are per-trace means (the sum over the set divided by the number of traces), its
``delta_ms`` the difference, ``delta_share`` that difference as a share of the change of the mean
critical-path time (null when that did not grow). Segments are sorted by ``delta_ms``, largest
growth first.

The sets are either two ranges (``base`` and ``head``) or one range split by duration: the
*slow* traces at or above a percentile (``--slow p99``) against the *fast* ones at or below
another (``--fast p50``).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from profkit.errors import UsageError
from profkit.model import Frame, Profile
from profkit.traces.critical import ISSUE_TEXT, CriticalPath, critical_path, frame_name
from profkit.traces.jaeger import Trace

__all__ = ["Analysed", "TraceSet", "analyse", "compare_sets", "parse_percentile", "percentile", "split_by_duration"]

_PCT = re.compile(r"p(\d{1,2}(?:\.\d+)?|100)", re.ASCII)


def parse_percentile(text: str, flag: str) -> float:
    """``p99`` → 99.0; anything else is a usage error naming the flag."""
    m = _PCT.fullmatch(str(text).strip().lower())
    if not m or not 0 < float(m.group(1)) <= 100:
        raise UsageError(f"{flag}: {text!r} is not a percentile", hint="use e.g. p99, p90, p50")
    return float(m.group(1))


def percentile(sorted_values: Sequence[float], pct: float) -> Optional[float]:
    """Nearest-rank percentile of already sorted values; None when empty."""
    if not sorted_values:
        return None
    rank = max(1, math.ceil(pct / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


@dataclass
class Analysed:
    trace_id: str
    path: CriticalPath

    @property
    def duration(self) -> int:
        return self.path.duration


@dataclass
class TraceSet:
    """One side of a comparison: its label, how it was chosen, and its traces."""

    label: str
    selection: str
    traces: List[Analysed] = field(default_factory=list)

    def durations_ms(self) -> List[float]:
        return sorted(t.duration / 1e6 for t in self.traces)

    def profile(self) -> Profile:
        sums: Dict[tuple, int] = {}
        for t in self.traces:
            for path, ns in t.path.weights.items():
                sums[path] = sums.get(path, 0) + ns
        prof = Profile("nanoseconds")
        intern: Dict[str, Frame] = {}
        for path, ns in sums.items():
            prof.add([intern.setdefault(f, Frame(f)) for f in path], ns)
        return prof

    def summary(self) -> Dict[str, object]:
        d = self.durations_ms()
        return {"label": self.label, "selection": self.selection, "count": len(d),
                "duration_ms": {"mean": round(sum(d) / len(d), 3) if d else None,
                                **{f"p{p}": _r(percentile(d, p)) for p in (50, 90, 99)},
                                "max": _r(d[-1] if d else None)},
                "traces": [{"trace_id": t.trace_id, "duration_ms": round(t.duration / 1e6, 3),
                            "root": frame_name(t.path.root.service, t.path.root.operation)}
                           for t in sorted(self.traces, key=lambda t: t.path.start)]}

    def representative(self) -> Optional[Analysed]:
        """The trace whose duration is this set's median."""
        if not self.traces:
            return None
        ordered = sorted(self.traces, key=lambda t: (t.duration, t.trace_id))
        return ordered[(len(ordered) - 1) // 2]


def _r(v: Optional[float]) -> Optional[float]:
    return None if v is None else round(v, 3)


def analyse(traces: Sequence[Trace], start_ns: Optional[int] = None, end_ns: Optional[int] = None) -> List[Analysed]:
    """The critical path of every trace whose root starts in ``[start_ns, end_ns)`` (when given)."""
    out = []
    for t in traces:
        cp = critical_path(t.spans)
        if cp.root is None:
            continue
        if start_ns is not None and not start_ns <= cp.start < (end_ns if end_ns is not None else cp.start + 1):
            continue
        out.append(Analysed(t.trace_id, cp))
    return out


def split_by_duration(traces: Sequence[Analysed], slow_pct: float, fast_pct: float) -> Tuple[TraceSet, TraceSet]:
    """(fast, slow): traces at or below the ``fast_pct`` percentile of duration, and at or above ``slow_pct``."""
    if fast_pct >= slow_pct:
        raise UsageError(f"--fast p{fast_pct:g} must be below --slow p{slow_pct:g}")
    d = sorted(t.duration for t in traces)
    slow_at, fast_at = percentile(d, slow_pct), percentile(d, fast_pct)
    fast = TraceSet("fast", f"duration <= p{fast_pct:g} ({(fast_at or 0) / 1e6:.1f} ms)",
                    [t for t in traces if t.duration <= fast_at]) if d else TraceSet("fast", "")
    slow = TraceSet("slow", f"duration >= p{slow_pct:g} ({(slow_at or 0) / 1e6:.1f} ms)",
                    [t for t in traces if t.duration >= slow_at]) if d else TraceSet("slow", "")
    return fast, slow


def segments(base: TraceSet, head: TraceSet) -> List[Dict[str, object]]:
    """Per span path: per-trace mean ms in base and head, the delta and its share of the growth."""
    sums: Dict[tuple, List[float]] = {}
    for i, s in enumerate((base, head)):
        for t in s.traces:
            for path, ns in t.path.weights.items():
                sums.setdefault(path, [0.0, 0.0])[i] += ns
    nb, nh = max(1, len(base.traces)), max(1, len(head.traces))
    growth = sum(t.duration for t in head.traces) / nh / 1e6 - sum(t.duration for t in base.traces) / nb / 1e6
    out = []
    for path, (b, h) in sums.items():
        b_ms, h_ms = b / nb / 1e6, h / nh / 1e6
        delta = h_ms - b_ms
        service, _, operation = path[-1].partition(": ")
        out.append({"service": service, "operation": operation, "path": list(path), "base_ms": round(b_ms, 3),
                    "head_ms": round(h_ms, 3), "delta_ms": round(delta, 3),
                    "delta_share": round(delta / growth, 4) if growth > 0 else None})
    out.sort(key=lambda s: (-s["delta_ms"], s["path"]))
    return out


def issues_of(sets: Sequence[TraceSet], examples: int = 3) -> Dict[str, Dict[str, object]]:
    """Per issue kind: spans counted, traces affected and a few of their ids."""
    out: Dict[str, Dict[str, object]] = {}
    seen = set()
    for s in sets:
        for t in s.traces:
            if t.trace_id in seen:
                continue
            seen.add(t.trace_id)
            for kind, n in t.path.issues.items():
                e = out.setdefault(kind, {"spans": 0, "traces": 0, "examples": [], "meaning": ISSUE_TEXT.get(kind, kind)})
                e["spans"] += n
                e["traces"] += 1
                if len(e["examples"]) < examples:
                    e["examples"].append(t.trace_id)
    return out


def verdict(service: str, base: TraceSet, head: TraceSet, segs: List[Dict[str, object]],
            durations: Optional[Tuple[Dict, Dict]] = None) -> str:
    """One line: the span path that grew most, by how much, and a representative trace of each set
    (``durations``: the sets' ``summary()["duration_ms"]``, when computed already)."""
    b, h = durations or (base.summary()["duration_ms"], head.summary()["duration_ms"])
    slow, fast = head.representative(), base.representative()
    ids = (f"; slow trace {slow.trace_id} ({head.label}, {slow.duration / 1e6:.1f} ms), "
           f"fast trace {fast.trace_id} ({base.label}, {fast.duration / 1e6:.1f} ms)") if slow and fast else ""
    top = segs[0] if segs else None
    if top is None or top["delta_ms"] <= 0:
        return (f"{service}: no critical-path segment grew from {base.label} to {head.label} "
                f"(mean {b['mean']} ms → {h['mean']} ms){ids}")
    share = f", {100 * top['delta_share']:.0f}% of the growth" if top["delta_share"] is not None else ""
    return (f"{top['service']}: {top['operation']} grew most on the critical path: {top['base_ms']:.1f} ms → "
            f"{top['head_ms']:.1f} ms per trace ({top['delta_ms']:+.1f} ms{share}; {head.label} mean "
            f"{h['mean']:.1f} ms vs {base.label} {b['mean']:.1f} ms){ids}")


def compare_sets(service: str, base: TraceSet, head: TraceSet) -> Dict[str, object]:
    """traces.json's analysis part: both sets, the segments, the issues and the verdict."""
    segs = segments(base, head)
    slow, fast = head.representative(), base.representative()
    bs, hs = base.summary(), head.summary()
    return {"base": bs, "head": hs, "segments": segs,
            "verdict": verdict(service, base, head, segs, (bs["duration_ms"], hs["duration_ms"])),
            "representative": {"slow": slow.trace_id if slow else None, "fast": fast.trace_id if fast else None},
            "issues": issues_of([base, head])}

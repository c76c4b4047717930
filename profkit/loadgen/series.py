# SPDX-License-Identifier: Apache-2.0
"""Per-interval series of a load run: the rows every generator hands on, and how they are joined.

A generator's ``parse`` may put ``series`` into its figures: one row per interval (1 s)::

    {"epoch": interval start (Unix seconds), "dt": 1.0, "requests": responses in the interval,
     "rate": responses/s, "errors": errors/s, "p50": ms, "p99": ms, "mean": ms, ...}

(``p50``/``p99`` where the generator measures them per interval, ``mean`` where it can be had;
anything else it reports per interval — sysbench's ``tps``, ``p95`` — as further keys), and a
private ``_hist`` (:class:`LatencyHistogram`) when it saw every request's latency (vegeta), so
that percentiles over any part of the run are exact to 1%. :func:`join` turns the epochs into
seconds since the run's start (``t``) and adds the target's CPU and RSS from ``metrics.jsonl``
and the rows of the run's ``--probe`` samplers. Pure, except for reading nothing at all.
"""
from __future__ import annotations

import bisect
import math
from typing import Dict, Iterable, List, Optional, Sequence

__all__ = ["LatencyHistogram", "join", "public_rows", "rows_from_counts"]

#: Relative width of a histogram bucket (1%).
_GROWTH = math.log(1.01)
_FLOOR_MS = 0.001


class LatencyHistogram:
    """Latencies (ms) in log buckets 1% wide: bounded memory, mergeable, exact count, sum and max."""

    __slots__ = ("buckets", "count", "total", "max", "min")

    def __init__(self) -> None:
        self.buckets: Dict[int, int] = {}
        self.count, self.total, self.max, self.min = 0, 0.0, 0.0, math.inf

    def add(self, ms: float) -> None:
        b = 0 if ms <= _FLOOR_MS else int(math.log(ms / _FLOOR_MS) / _GROWTH) + 1
        self.buckets[b] = self.buckets.get(b, 0) + 1
        self.count += 1
        self.total += ms
        if ms > self.max:
            self.max = ms
        if ms < self.min:
            self.min = ms

    def merge(self, other: "LatencyHistogram") -> "LatencyHistogram":
        for b, n in other.buckets.items():
            self.buckets[b] = self.buckets.get(b, 0) + n
        self.count += other.count
        self.total += other.total
        self.max = max(self.max, other.max)
        self.min = min(self.min, other.min)
        return self

    def percentile(self, pct: float) -> Optional[float]:
        """The latency below which ``pct`` % of the requests fall (bucket midpoint, max-capped)."""
        if not self.count:
            return None
        rank = max(1, math.ceil(self.count * pct / 100.0))
        seen = 0
        for b in sorted(self.buckets):
            seen += self.buckets[b]
            if seen >= rank:
                mid = _FLOOR_MS if b == 0 else _FLOOR_MS * math.exp((b - 0.5) * _GROWTH)
                return min(max(mid, self.min), self.max)
        return self.max

    def figures(self) -> Dict[str, Optional[float]]:
        """``latency_ms`` of load.json: mean, p50, p90, p99, p99.9, max."""
        if not self.count:
            return {k: None for k in ("mean", "p50", "p90", "p99", "p99.9", "max")}
        out = {"mean": round(self.total / self.count, 3)}
        for key, p in (("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9)):
            out[key] = round(self.percentile(p), 3)
        out["max"] = round(self.max, 3)
        return out

    def distribution(self) -> List[List[float]]:
        points = (1, 5, 10, 25, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99)
        return [[float(p), round(self.percentile(p), 3)] for p in points] if self.count else []


def rows_from_counts(counts: Dict[int, int], errors: Dict[int, int], *, connections: Optional[int] = None,
                     drop_edges: bool = True) -> List[dict]:
    """Rows from responses (and errors) counted per whole epoch second (wrk's Lua hook).

    The first and last seconds are partial (the load started and ended inside them) and are left
    out. ``mean`` is Little's law: ``connections`` requests in flight ÷ throughput (closed loop)."""
    if not counts:
        return []
    first, last = min(counts), max(counts)
    seconds = list(range(first + 1, last)) if drop_edges else list(range(first, last + 1))
    rows = []
    for s in seconds:
        n = counts.get(s, 0)
        row = {"epoch": float(s), "dt": 1.0, "requests": n, "rate": float(n), "errors": float(errors.get(s, 0))}
        if connections:
            row["mean"] = round(1000.0 * connections / n, 3) if n else None
        rows.append(row)
    return rows


def _bucket_metrics(rows: List[dict], metrics: Sequence[dict]) -> None:
    """CPU % (mean of the samples in the interval) and RSS (the last one) onto each row."""
    ts = [m["t"] for m in metrics]
    for r in rows:
        lo = bisect.bisect_left(ts, r["t"])
        hi = bisect.bisect_left(ts, r["t"] + r.get("dt", 1.0))
        inside = metrics[lo:hi]
        if not inside and metrics:
            # an interval without its own sample (sampler slower than 1 s): the nearest one after it
            inside = metrics[min(lo, len(metrics) - 1):min(lo, len(metrics) - 1) + 1]
        cpu = [m["cpu_pct"] for m in inside if m.get("cpu_pct") is not None]
        rss = [m["rss"] for m in inside if m.get("rss")]
        r["cpu_pct"] = round(sum(cpu) / len(cpu), 2) if cpu else None
        r["rss"] = rss[-1] if rss else None


def _bucket_probe(rows: List[dict], samples: Sequence[dict]) -> None:
    """A probe's per-second samples (``t`` plus fields) onto the rows: the sample inside each
    interval, else (a sampler's 1 s is never exact) the first one within half a second after it."""
    ts = [s["t"] for s in samples]
    for r in rows:
        end = r["t"] + r.get("dt", 1.0)
        lo = bisect.bisect_left(ts, r["t"])
        hi = bisect.bisect_left(ts, end)
        if lo == hi and hi < len(ts) and ts[hi] < end + 0.5:
            hi += 1
        for s in samples[lo:hi]:
            for k, v in s.items():
                if k != "t":
                    r[k] = v


def join(gen_rows: Iterable[dict], t0_epoch: float, *, metrics: Sequence[dict] = (), duration: float = 0.0,
         probes: Sequence[Sequence[dict]] = ()) -> List[dict]:
    """The run's series: the generator's rows with ``t`` (seconds since the run's start), the
    target's CPU and RSS and each probe's fields. A generator without rows (``cmd``) still gets
    a row per second of the run, with the target's metrics only."""
    rows = []
    for r in gen_rows:
        row = dict(r)
        row["t"] = round(row.pop("epoch") - t0_epoch, 3)
        rows.append(row)
    if not rows and duration:
        rows = [{"t": float(s), "dt": 1.0} for s in range(int(duration))]
    rows.sort(key=lambda r: r["t"])
    metrics = sorted((m for m in metrics if m.get("t") is not None), key=lambda m: m["t"])
    _bucket_metrics(rows, metrics)
    for samples in probes:
        _bucket_probe(rows, sorted(samples, key=lambda s: s["t"]))
    return rows


def public_rows(rows: Sequence[dict]) -> List[dict]:
    """The rows as load.json keeps them: without private keys (``_hist``)."""
    return [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]

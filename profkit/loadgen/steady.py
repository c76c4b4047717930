# SPDX-License-Identifier: Apache-2.0
"""Steady state, drift and coordinated omission over a load run's per-interval series. Pure.

**Warm-up** (``--warmup auto``; the rule of docs/contract.md "Benchmarks: steady state"):

* the latency is the per-interval ``p50`` where the generator measures it, else ``mean``, else
  ``p99`` (the typical request: a per-second p99 is one or two requests, too noisy to settle),
  smoothed by a running median of 3 intervals;
* the *reference* is the median, over the second half of the run, of the throughput (``rate``)
  and of that latency;
* a second is *in band* when both are within the reference ± max(15% (throughput) or 25%
  (latency) of it, 3 × the noise of the second half (1.4826 × the median absolute difference
  of successive intervals ÷ √2, which a trend does not inflate), 10% of the warm-up's excess (the
  largest distance from the reference in the first half: a warm-up from 50 ms to 2 ms has
  settled at 6.8 ms), and for latency 1 ms: the jitter of a shared machine);
* warm-up ends at the first second that is in band and after which at least 8 of the next 10
  seconds are in band too (a stall or a checkpoint now and then does not restart the warm-up);
* it must end within the first half of the run, else the run was too short to reach steady
  state: the whole run's figures are reported, with a warning (SLOs are still judged).

``--warmup DURATION`` cuts that many seconds; ``0`` (the default) cuts nothing.

**Drift** over the steady part: for ``rate`` (falling), ``errors``, ``p50``, ``p99``, ``mean``,
``rss`` (rising), the Theil–Sen slope with its 95% interval (:func:`profkit.growth.theil_sen`,
the heap analysis' robust fit); flagged only when the interval excludes zero *and* the change
over the steady part that the interval is sure of (its bound nearest zero × the steady part's
length) exceeds 10% of the metric's median there (errors: also at least 1% of the median
throughput), so a noisy machine does not flag a steady service.

**Coordinated omission** (closed-loop generators): the evidence is the max latency against p99
and the seconds whose throughput fell below half the steady median (a closed loop sends less
while the service stalls, so the stall hardly shows in its percentiles).
"""
from __future__ import annotations

import statistics
from typing import Dict, List, Optional, Sequence, Tuple

from profkit import growth

__all__ = ["DRIFT_METRICS", "co_evidence", "detect_warmup", "drift", "latency_key", "resolve_warmup"]

DRIFT_METRICS = ("rate", "errors", "p50", "p99", "mean", "rss")
_UNITS = {"rate": "req/s per s", "errors": "errors/s per s", "p50": "ms per s", "p99": "ms per s",
          "mean": "ms per s", "rss": "bytes per s"}
#: The follow-up window of the warm-up rule and how many of it may be out of band.
FOLLOW, OUTLIERS = 10, 2
DRIFT_FRACTION = 0.10
#: latency drift must also exceed this (ms): on a shared host a sub-millisecond service's p50
#: wanders by tenths of a millisecond with the scheduler (measured in CI: 0.97 → 1.3 ms over 19 s
#: of a steady service, an interval that excluded zero), which no SLO is written in
DRIFT_FLOOR_MS = 0.5
MIN_DRIFT_POINTS = 8


def latency_key(rows: Sequence[dict]) -> Optional[str]:
    """The per-interval latency the series has: p50, else mean, else p99."""
    for key in ("p50", "mean", "p99"):
        if sum(1 for r in rows if r.get(key) is not None) >= max(3, len(rows) // 2):
            return key
    return None


def _band(values: List[float], early: List[float], fraction: float, floor: float = 1e-9) -> Tuple[float, float]:
    ref = statistics.median(values)
    # the noise from successive differences (a trend in the second half does not widen the band)
    diffs = [abs(b - a) for a, b in zip(values, values[1:])] or [0.0]
    noise = 1.4826 * statistics.median(diffs) / 1.4142
    excess = max((abs(v - ref) for v in early), default=0.0)
    return ref, max(fraction * abs(ref), 3 * noise, 0.10 * excess, floor)


def _smooth(rows: Sequence[dict], key: str) -> List[dict]:
    """Copies of the rows with ``key`` replaced by its running median of 3 (centred)."""
    vals = [r.get(key) for r in rows]
    out = []
    for i, r in enumerate(rows):
        near = [v for v in vals[max(0, i - 1):i + 2] if v is not None]
        out.append(dict(r, **{key: statistics.median(near) if near and vals[i] is not None else None}))
    return out


def detect_warmup(rows: Sequence[dict]) -> Tuple[Optional[float], str]:
    """(seconds of warm-up from the run's start, how it was found) or (None, why steady state was
    not reached). See the module docstring for the rule."""
    usable = [r for r in rows if r.get("rate") is not None]
    lat = latency_key(usable)
    if lat:
        usable = _smooth(usable, lat)
    if len(usable) < 2 * FOLLOW:
        return None, f"{len(usable)} intervals; at least {2 * FOLLOW} are needed to tell warm-up from steady state"
    first, half = usable[:len(usable) // 2], usable[len(usable) // 2:]
    bands = {"rate": _band([r["rate"] for r in half], [r["rate"] for r in first], 0.15)}
    if lat:
        vals = [r[lat] for r in half if r.get(lat) is not None]
        if vals:
            bands[lat] = _band(vals, [r[lat] for r in first if r.get(lat) is not None], 0.25, floor=1.0)

    def ok(r) -> bool:
        for key, (ref, tol) in bands.items():
            v = r.get(key)
            if v is None and key != "rate":
                return False  # no latency at all in the interval: a stalled second
            if v is not None and abs(v - ref) > tol:
                return False
        return True

    flags = [ok(r) for r in usable]
    for i in range(0, len(usable) // 2 + 1):
        follow = flags[i + 1:i + 1 + FOLLOW]
        if flags[i] and len(follow) == FOLLOW and follow.count(False) <= OUTLIERS:
            what = " and ".join(f"{k} {bands[k][0]:.4g}±{bands[k][1]:.2g}" for k in bands)
            return max(0.0, usable[i]["t"]), f"throughput and latency within the steady band ({what}) from here on"
    return None, "throughput and latency did not settle within the first half of the run"


def resolve_warmup(rows: Sequence[dict], spec: str, duration: float) -> Dict:
    """``{mode, warmup_s, reached, reason}`` for ``--warmup`` ``spec`` (``auto``, ``0`` or seconds)."""
    if spec == "auto":
        found, reason = detect_warmup(rows)
        if found is None:
            return {"mode": "auto", "warmup_s": 0.0, "reached": False, "reason": reason}
        return {"mode": "auto", "warmup_s": round(found, 3), "reached": True, "reason": reason}
    seconds = float(spec)
    if seconds <= 0:
        return {"mode": "none", "warmup_s": 0.0, "reached": True, "reason": "no warm-up excluded (--warmup 0)"}
    steady = [r for r in rows if r["t"] >= seconds]
    if duration - seconds < 3 or len(steady) < 3:
        return {"mode": "fixed", "warmup_s": 0.0, "reached": False,
                "reason": f"--warmup {seconds:g} s leaves less than 3 s of a {duration:.0f} s run"}
    return {"mode": "fixed", "warmup_s": round(seconds, 3), "reached": True, "reason": f"--warmup {seconds:g} s"}


def drift(rows: Sequence[dict]) -> List[Dict]:
    """The drifting metrics of the (steady) rows: ``{metric, slope, unit, ci95, change_pct, median}``."""
    out = []
    rates = [r["rate"] for r in rows if r.get("rate") is not None]
    median_rate = statistics.median(rates) if rates else 0.0
    for metric in DRIFT_METRICS:
        pts = [(r["t"], float(r[metric])) for r in rows if r.get(metric) is not None]
        if len(pts) < MIN_DRIFT_POINTS:
            continue
        fit = growth.theil_sen(pts)
        if fit is None:
            continue
        med = statistics.median(v for _, v in pts)
        change = fit.slope * (pts[-1][0] - pts[0][0])
        threshold = DRIFT_FRACTION * abs(med)
        if metric == "errors":
            threshold = max(threshold, 0.01 * median_rate)
        elif _UNITS[metric] == "ms per s":
            threshold = max(threshold, DRIFT_FLOOR_MS)
        bad = fit.slope_high < 0 if metric == "rate" else fit.slope_low > 0
        # the change the interval is sure of (its bound nearest zero) must exceed the threshold
        sure = (fit.slope_high if metric == "rate" else fit.slope_low) * (pts[-1][0] - pts[0][0])
        if bad and abs(sure) > threshold:
            out.append({"metric": metric, "slope": _round(fit.slope), "unit": _UNITS[metric],
                        "ci95": [_round(fit.slope_low), _round(fit.slope_high)],
                        "change_pct": round(100.0 * change / med, 1) if med else None, "median": _round(med)})
    return out


def _round(v: float) -> float:
    return float(f"{v:.4g}")


def co_evidence(latency: Dict, rows: Sequence[dict], limit: int = 5) -> Dict:
    """Max against p99 and the throughput dips (seconds below half the median rate)."""
    rates = [r["rate"] for r in rows if r.get("rate") is not None]
    med = statistics.median(rates) if rates else None
    dips = [{"t": r["t"], "rate": r["rate"]} for r in rows
            if med and r.get("rate") is not None and r["rate"] < 0.5 * med]
    p99, mx = latency.get("p99"), latency.get("max")
    return {"max_ms": mx, "p99_ms": p99, "max_over_p99": round(mx / p99, 1) if mx and p99 else None,
            "median_rate": med, "dip_seconds": len(dips), "dips": sorted(dips, key=lambda d: d["rate"])[:limit]}

# SPDX-License-Identifier: Apache-2.0
"""Memory growth analysis: pure functions from a time series to a verdict.

    series (t, bytes) ──► warm-up cut ──► level points ──► Theil–Sen slope + 95% CI
                                          (all points, or the post-GC floor
                                           of a sawtooth / of a GC'd heap)
                                                    │
    limits (-Xmx, cgroup memory.max, RLIMIT_AS, RAM) ┴─► classification, projection

Classification (``shared/CONTRACT.md``: ``steady`` / ``growing`` / ``sawtooth-rising``):

* the *level* of a series is what it would be without its garbage: for a heap whose collections
  are known (JVM GC counts), the used bytes right after each collection; for a series that
  drops sharply now and then without known collections (a sawtooth), its local minima; else
  the series itself;
* the level *rises* when the lower bound of the 95% confidence interval of its slope, times
  the window length, exceeds 5% of the fitted level at the start of the window;
* ``growing`` when it rises (a GC'd heap's floor counts as its level), ``sawtooth-rising`` when
  the rise is that of the floor of a detected sawtooth, ``steady`` otherwise.

Theil–Sen (the median of pairwise slopes) shrugs off GC spikes and outliers; its confidence
interval is Sen's (1968), from the normal approximation of Kendall's S statistic.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable, List, Optional, Sequence, Tuple

__all__ = ["Fit", "Limit", "Verdict", "analyse", "binding_limit", "classify", "floor_points",
           "projection_text", "theil_sen", "time_to_limit"]

#: The rise over the window, as a fraction of the starting level, that counts as growth.
GROWTH_THRESHOLD = 0.05
#: z for a two-sided 95% interval.
Z95 = 1.959964
#: Pairwise slopes grow as n²: above this many points the series is thinned evenly first.
MAX_POINTS = 400

Point = Tuple[float, float]


@dataclass(frozen=True)
class Fit:
    """A robust line through ``points``: slope (units per second) with its 95% interval."""

    slope: float
    intercept: float      #: level at t = 0 (the series' own time origin)
    slope_low: float
    slope_high: float
    n: int
    t_start: float
    t_end: float

    def at(self, t: float) -> float:
        """The fitted level at time ``t``."""
        return self.intercept + self.slope * t

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Limit:
    """A memory limit that the series could reach: what it is, its size in bytes, where it comes from."""

    name: str      #: e.g. ``-Xmx``, ``cgroup memory.max``, ``RLIMIT_AS``, ``machine RAM``
    bytes: int
    source: str = ""


@dataclass(frozen=True)
class Verdict:
    """The outcome of :func:`classify`."""

    classification: str           #: ``steady``, ``growing`` or ``sawtooth-rising``
    fit: Optional[Fit]
    basis: str                    #: ``level``, ``post-gc floor`` or ``sawtooth floor``
    warmup_s: float
    start_level: Optional[float]
    rise_low: Optional[float]     #: lower bound of the rise over the window, bytes
    reason: str


def _thin(points: Sequence[Point], limit: int = MAX_POINTS) -> List[Point]:
    if len(points) <= limit:
        return list(points)
    step = len(points) / limit
    return [points[int(i * step)] for i in range(limit)]


def theil_sen(points: Sequence[Point]) -> Optional[Fit]:
    """The Theil–Sen line through ``points`` (t, value) with Sen's 95% slope interval; None for < 3 points."""
    pts = _thin(sorted(points))
    n = len(pts)
    if n < 3:
        return None
    slopes = []
    for i in range(n):
        ti, vi = pts[i]
        for j in range(i + 1, n):
            dt = pts[j][0] - ti
            if dt > 0:
                slopes.append((pts[j][1] - vi) / dt)
    if not slopes:
        return None
    slopes.sort()
    m = len(slopes)
    slope = _median_sorted(slopes)
    intercept = _median_sorted(sorted(v - slope * t for t, v in pts))
    # Sen's interval: rank bounds from the variance of Kendall's S (ties ignored).
    c = Z95 * math.sqrt(n * (n - 1) * (2 * n + 5) / 18.0)
    lo_rank = int(math.floor((m - c) / 2.0))
    hi_rank = int(math.ceil((m + c) / 2.0))
    low = slopes[max(0, min(m - 1, lo_rank))]
    high = slopes[max(0, min(m - 1, hi_rank))]
    return Fit(slope, intercept, low, high, n, pts[0][0], pts[-1][0])


def _median_sorted(xs: Sequence[float]) -> float:
    k = len(xs)
    return xs[k // 2] if k % 2 else (xs[k // 2 - 1] + xs[k // 2]) / 2.0


def is_sawtooth(points: Sequence[Point], min_drops: int = 3, drop_fraction: float = 0.1) -> bool:
    """Whether the series falls sharply (by ``drop_fraction`` of its range) at least ``min_drops`` times
    while mostly rising in between (noise falls on about half of its steps; a sawtooth on few)."""
    if len(points) < 4:
        return False
    values = [v for _, v in points]
    span = max(values) - min(values)
    if span <= 0:
        return False
    steps = list(zip(values, values[1:]))
    drops = sum(1 for a, b in steps if a - b > drop_fraction * span)
    falls = sum(1 for a, b in steps if b < a)
    return drops >= min_drops and falls <= 0.3 * len(steps)


def floor_points(points: Sequence[Point], gc_marks: Optional[Sequence[bool]] = None) -> List[Point]:
    """The floor of a sawtooth: the points just after each drop (or each known GC), else window minima.

    ``gc_marks[i]`` says a collection ended between sample i-1 and i (JVM GC counts). A sample
    taken right after a collection is the best available post-GC figure; the first point after a
    drop is too. With fewer than 3 of those, the minimum of each of ~8 equal windows stands in.
    """
    pts = list(points)
    if gc_marks is not None:
        marked = [p for p, m in zip(pts, gc_marks) if m]
    else:
        marked = [pts[i] for i in range(1, len(pts)) if pts[i][1] < pts[i - 1][1]]
    if len(marked) >= 3:
        return _local_floor(marked)
    k = max(1, len(pts) // 8)
    return [min(pts[i:i + k], key=lambda p: p[1]) for i in range(0, len(pts), k)]


def _local_floor(marked: List[Point]) -> List[Point]:
    # A young collection leaves survivors that an old one later frees: the running minimum over
    # a short look-ahead keeps the floor from riding on the higher post-young-GC points.
    out = []
    for i, (t, _) in enumerate(marked):
        out.append((t, min(v for _, v in marked[i:i + 3])))
    return out


def classify(points: Sequence[Point], *, gc_marks: Optional[Sequence[bool]] = None,
             warmup: Optional[float] = None) -> Verdict:
    """Classify a memory series (t seconds, bytes): ``steady``, ``growing`` or ``sawtooth-rising``.

    ``gc_marks`` (same length as ``points``) marks samples right after a known collection: the
    level is then the post-GC floor. ``warmup`` seconds are left out of the fit (default: the
    first quarter of the window, at most 60 s).
    """
    pts = sorted((float(t), float(v)) for t, v in points if v is not None)
    marks = list(gc_marks) if gc_marks is not None else None
    if marks is not None and len(marks) != len(points):
        marks = None
    if not pts:
        return Verdict("steady", None, "level", 0.0, None, None, "no samples")
    t0 = pts[0][0]
    span = pts[-1][0] - t0
    if warmup is None:
        warmup = min(60.0, 0.25 * span)
    keep = [i for i, (t, _) in enumerate(pts) if t - t0 >= warmup]
    window = [pts[i] for i in keep]
    wmarks = [marks[i] for i in keep] if marks is not None else None
    if marks is not None and sum(wmarks or []) >= 1:
        basis, level_pts = "post-gc floor", floor_points(window, wmarks)
    elif is_sawtooth(window):
        basis, level_pts = "sawtooth floor", floor_points(window)
    else:
        basis, level_pts = "level", window
    fit = theil_sen(level_pts)
    if fit is None:
        return Verdict("steady", None, basis, warmup, None, None, f"too few points after a {warmup:.0f} s warm-up")
    w_start, w_end = window[0][0], window[-1][0]
    start_level = fit.at(w_start)
    rise_low = fit.slope_low * (w_end - w_start)
    threshold = GROWTH_THRESHOLD * max(start_level, 1.0)
    if rise_low > threshold:
        cls = "sawtooth-rising" if basis == "sawtooth floor" else "growing"
        reason = (f"the {basis} rises by at least {rise_low / 2**20:.1f} MiB over {w_end - w_start:.0f} s "
                  f"(95% confidence), more than 5% of its starting {start_level / 2**20:.1f} MiB")
    else:
        cls = "steady"
        reason = (f"the {basis} does not rise by more than 5% of {start_level / 2**20:.1f} MiB with 95% confidence "
                  f"(lower bound {rise_low / 2**20:+.1f} MiB over {w_end - w_start:.0f} s)")
    return Verdict(cls, fit, basis, warmup, start_level, rise_low, reason)


def binding_limit(limits: Iterable[Limit]) -> Optional[Limit]:
    """The smallest of the limits that apply (the one the series reaches first)."""
    real = [lim for lim in limits if lim is not None and lim.bytes and lim.bytes > 0]
    return min(real, key=lambda lim: lim.bytes) if real else None


def time_to_limit(fit: Optional[Fit], now_t: float, limit: Optional[Limit]) -> Optional[float]:
    """Seconds until the fitted level reaches ``limit`` from time ``now_t``; None if it does not rise."""
    if fit is None or limit is None or fit.slope <= 0:
        return None
    remaining = limit.bytes - fit.at(now_t)
    if remaining <= 0:
        return 0.0
    return remaining / fit.slope


def _fmt_mb(n: float) -> str:
    return f"{n / 2**20:.0f} MB" if abs(n) >= 2**20 else f"{n / 1024:.0f} KB"


def _fmt_duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} seconds"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} minutes"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} hours"
    return f"{seconds / 86400:.1f} days"


def projection_text(fit: Optional[Fit], limit: Optional[Limit], eta: Optional[float], what: str = "heap") -> str:
    """``at 14 MB/min, heap reaches -Xmx 256 MB in about 9 minutes`` (or why there is no projection)."""
    if limit is None:
        return "no memory limit found"
    if fit is None or fit.slope <= 0 or eta is None:
        return f"{what} is not rising; the binding limit is {limit.name} {_fmt_mb(limit.bytes)}"
    rate = f"{_fmt_mb(fit.slope * 60)}/min"
    if eta == 0:
        return f"at {rate}, {what} is already at {limit.name} {_fmt_mb(limit.bytes)}"
    return f"at {rate}, {what} reaches {limit.name} {_fmt_mb(limit.bytes)} in about {_fmt_duration(eta)}"


def analyse(points: Sequence[Point], limits: Iterable[Limit], *, gc_marks: Optional[Sequence[bool]] = None,
            warmup: Optional[float] = None, what: str = "heap") -> dict:
    """Classification, fit, binding limit and projection of one series, as a JSON-ready dict."""
    verdict = classify(points, gc_marks=gc_marks, warmup=warmup)
    limit = binding_limit(limits)
    now_t = max((t for t, _ in points), default=0.0)
    eta = time_to_limit(verdict.fit, now_t, limit) if verdict.classification != "steady" else None
    return {
        "classification": verdict.classification,
        "basis": verdict.basis,
        "reason": verdict.reason,
        "warmup_s": round(verdict.warmup_s, 3),
        "fit": None if verdict.fit is None else {
            **{k: round(v, 6) if isinstance(v, float) else v for k, v in verdict.fit.as_dict().items()},
            "bytes_per_min": round(verdict.fit.slope * 60, 1),
            "ci95_bytes_per_min": [round(verdict.fit.slope_low * 60, 1), round(verdict.fit.slope_high * 60, 1)],
        },
        "start_level": verdict.start_level,
        "limit": None if limit is None else {"name": limit.name, "bytes": limit.bytes, "source": limit.source},
        "projection": {"seconds_to_limit": None if eta is None else round(eta, 1),
                       "text": projection_text(verdict.fit if verdict.classification != "steady" else None,
                                               limit, eta, what)},
    }

# SPDX-License-Identifier: Apache-2.0
"""Charts of a load run's per-interval series (``load.json`` ``series``) as inline SVG, offline.

One small chart per quantity (throughput, latency, errors, the target's CPU and RSS, and the
numeric fields of ``--probe`` samplers), the warm-up shaded. A long run is drawn from at most
``columns`` points per line: each pixel column keeps the min and the max of its samples, so a
one-second stall in an hour still shows; ``load.json`` keeps every interval. Every text that
reaches the SVG is escaped here (field names come from plugins).
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

from markupsafe import escape

__all__ = ["downsample", "series_svgs"]

_COLORS = ("#0969da", "#cf222e", "#1a7f37", "#9a6700")
#: (title, unit, keys) of the standard charts, in order
_CHARTS = (("throughput", "/s", ("rate",)), ("latency", "ms", ("p50", "p99", "mean", "p95")),
           ("errors", "/s", ("errors",)), ("target CPU", "%", ("cpu_pct",)), ("target RSS", "MiB", ("rss",)))
_STANDARD = {"t", "dt", "requests", "rate", "errors", "p50", "p99", "p95", "mean", "cpu_pct", "rss", "tps", "qps",
             "reconnects"}
MAX_EXTRA = 8
#: probe fields drawn first when present (the background work that explains throughput dips)
_FIRST = ("checkpoints", "bgwriter.checkpoint_sync_time", "checkpointer.sync_time", "bgwriter.buffers_checkpoint",
          "checkpointer.buffers_written", "bgwriter.buffers_backend", "wal.wal_bytes", "wal.wal_sync")


def downsample(points: Sequence[Tuple[float, float]], columns: int) -> List[Tuple[float, float]]:
    """At most ``2 × columns`` points: per column of equal time, its min and max in time order."""
    n = len(points)
    if n <= 2 * columns:
        return list(points)
    t0 = points[0][0]
    scale = columns / ((points[-1][0] - t0) or 1.0)
    out: List[Tuple[float, float]] = []
    col = -1
    lo = hi = points[0]
    for p in points:
        c = int((p[0] - t0) * scale)
        if c != col:
            if col >= 0:
                out.extend((lo, hi) if lo[0] < hi[0] else (hi, lo) if hi[0] < lo[0] else (lo,))
            col, lo, hi = c, p, p
        elif p[1] < lo[1]:
            lo = p
        elif p[1] > hi[1]:
            hi = p
    out.extend((lo, hi) if lo[0] < hi[0] else (hi, lo) if hi[0] < lo[0] else (lo,))
    return out


def _fmt(v: float) -> str:
    if v == 0:
        return "0"
    a = abs(v)
    return f"{v:.3g}" if a < 1000 else f"{v / 1000:.3g}k" if a < 1e6 else f"{v / 1e6:.3g}M"


def _chart(title: str, unit: str, lines: Dict[str, List[Tuple[float, float]]], t_max: float, warmup: float,
           width: int, height: int) -> str:
    left, right, top, bottom = 48, width - 8, 18, height - 18
    v_max = max((v for pts in lines.values() for _, v in pts), default=0.0) or 1.0
    sx = (right - left) / (t_max or 1.0)
    sy = (bottom - top) / v_max
    parts = [f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="{escape(title)}">',
             f'<text x="{left}" y="12" font-size="11">{escape(title)} ({escape(unit)})</text>']
    if warmup > 0:
        parts.append(f'<rect x="{left}" y="{top}" width="{min(warmup, t_max) * sx:.1f}" height="{bottom - top}" '
                     'fill="#d0d7de" opacity="0.5"><title>warm-up (excluded)</title></rect>')
    parts.append(f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#888"/>'
                 f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#888"/>'
                 f'<text x="{left - 4}" y="{top + 8}" font-size="10" text-anchor="end">{_fmt(v_max)}</text>'
                 f'<text x="{left - 4}" y="{bottom}" font-size="10" text-anchor="end">0</text>'
                 f'<text x="{right}" y="{height - 4}" font-size="10" text-anchor="end">{t_max:.0f} s</text>')
    for i, (name, pts) in enumerate(lines.items()):
        color = _COLORS[i % len(_COLORS)]
        coords = " ".join(f"{left + t * sx:.1f},{bottom - v * sy:.1f}" for t, v in pts)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="1.3" points="{coords}"/>')
        if len(lines) > 1:
            parts.append(f'<text x="{right - 70 * (len(lines) - i) + 70}" y="12" font-size="10" fill="{color}" '
                         f'text-anchor="end">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _extra_keys(series: Sequence[dict]) -> List[str]:
    seen: Dict[str, int] = {}
    step = max(1, len(series) // 400)  # every row has the same fields: a sample of them tells which
    for r in series[::step]:
        for k, v in r.items():
            if k not in _STANDARD and isinstance(v, (int, float)) and not isinstance(v, bool):
                seen[k] = seen.get(k, 0) + (1 if v else 0)
    # checkpoint and WAL fields first, then those that moved most often (a counter that never changed says nothing)
    first = [k for k in _FIRST if seen.get(k)]
    rest = [k for k, n in sorted(seen.items(), key=lambda kv: (-kv[1], kv[0])) if n and k not in first]
    return (first + rest)[:MAX_EXTRA]


def series_svgs(load: Dict, width: int = 360, height: int = 120, columns: Optional[int] = None) -> List[str]:
    """The SVG charts of ``load["series"]`` (empty without a series)."""
    series = load.get("series") or []
    if len(series) < 2:
        return []
    columns = columns or (width - 56)
    t_max = max(r["t"] + r.get("dt", 1.0) for r in series)
    warmup = float(load.get("warmup_s") or 0.0)
    charts = []
    specs = list(_CHARTS) + [(k, "0/1" if k.endswith(".writing") else "per s", (k,)) for k in _extra_keys(series)]
    for title, unit, keys in specs:
        lines = {}
        for k in keys:
            div = 2**20 if k == "rss" else 1
            pts = []
            for r in series:
                v = r.get(k)
                if v is not None and v.__class__ in (int, float) and math.isfinite(v):
                    pts.append((r["t"] if r["t"] > 0 else 0.0, v / div))
            if len(pts) >= 2:
                lines[k] = downsample(pts, columns)
        if lines:
            charts.append(_chart(title, unit, lines, t_max, warmup, width, height))
    return charts

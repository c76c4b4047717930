# SPDX-License-Identifier: Apache-2.0
"""``profkit compare`` of two runs benched with ``--prometheus`` / ``--jaeger``: the server's RED
deltas and the slow traces' critical-path segments, base run against head run, for comment.md
(after the function tables) and compare.json (``observed``).

RED comes from each run's ``load.json`` ``prometheus`` object; segments from each run's
``traces.json`` (its *slow* set, at or above p99: what the slowest requests spent their time on),
matched by span path. Names are Markdown-escaped.
"""
from __future__ import annotations

from typing import Dict, List, Optional

from profkit.markdown import markdown_escape

__all__ = ["observed"]

KEYS = ("rate", "error_ratio", "p50_ms", "p90_ms", "p99_ms")


def _segments(doc: Optional[Dict]) -> Dict[str, float]:
    """span path → the slow set's per-trace mean ms."""
    return {" → ".join(s.get("path") or []): float(s.get("head_ms") or 0.0) for s in (doc or {}).get("segments") or []}


def observed(base, head, top: int = 10) -> Dict:
    """``{"red": [...], "segments": [...], "markdown": [lines]}`` (empty lists when neither run has them)."""
    from profkit.loadgen.bench import load_of

    bp = ((load_of(base) or {}).get("prometheus") or {})
    hp = ((load_of(head) or {}).get("prometheus") or {})
    red = []
    if bp.get("rate") is not None or hp.get("rate") is not None:
        for k in KEYS:
            b, h = bp.get(k), hp.get(k)
            red.append({"metric": k, "base": b, "head": h, "delta": None if b is None or h is None else round(h - b, 6)})
    bs, hs = _segments(base.read_json("traces.json")), _segments(head.read_json("traces.json"))
    segs = [{"path": p, "base_ms": round(bs.get(p, 0.0), 3), "head_ms": round(hs.get(p, 0.0), 3),
             "delta_ms": round(hs.get(p, 0.0) - bs.get(p, 0.0), 3)} for p in set(bs) | set(hs)] if bs or hs else []
    segs.sort(key=lambda s: (-s["delta_ms"], s["path"]))
    lines: List[str] = []
    if red:
        lines += [f"### RED from Prometheus ({markdown_escape(str(hp.get('selector') or bp.get('selector')))})", "",
                  "| | base | head | change |", "|---|---:|---:|---:|"]
        lines += [f"| {r['metric']} | {_f(r['base'])} | {_f(r['head'])} | {_f(r['delta'], '{:+,.3g}')} |" for r in red]
        lines.append("")
    if segs:
        lines += ["### Slow traces' critical-path segments (>= p99 of each run, per-trace mean)", "",
                  "| span path | base | head | Δ |", "|---|---:|---:|---:|"]
        lines += [f"| {markdown_escape(s['path'])} | {s['base_ms']:,.1f} ms | {s['head_ms']:,.1f} ms | {s['delta_ms']:+,.1f} ms |"
                  for s in segs[:top]]
        lines.append("")
    return {"red": red, "segments": segs[:top], "markdown": lines}


def _f(v, fmt: str = "{:,.4g}") -> str:
    return "n/a" if v is None else fmt.format(v)

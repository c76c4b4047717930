# SPDX-License-Identifier: Apache-2.0
"""A Python heap run's memray results: the Python heap over time and the live allocations
that are the leak suspects (memray itself is a profiler probe of the run)."""
from __future__ import annotations

from typing import Dict, List, Optional

from profkit.engine.probe import RunContext
from profkit.heap.jvm import TOP_SUSPECTS

__all__ = ["memray_results", "memray_windows"]


def _thin(rows: List[dict], limit: int) -> List[dict]:
    if len(rows) <= limit:
        return rows
    step = len(rows) / limit
    return [rows[int(i * step)] for i in range(limit)] + [rows[-1]]


def memray_results(ctx: RunContext, heap: Dict[str, object]) -> None:
    """``memray_series`` (heap size over time) and ``suspects`` (the biggest live allocations by
    stack) from the memray probe's capture, when it produced one."""
    from collectors.memray import memory_snapshots
    from profkit.errors import ProfkitError

    profile = ctx.profiles.get("memray")
    entry = next((p for p in ctx.record.probes if p.id == "memray"), None)
    if profile is None or entry is None or not entry.raw:
        return
    from collectors.memray import allocator_totals
    from profkit.errors import Diagnostics

    diag = Diagnostics()
    try:
        snaps = memory_snapshots(ctx.run.file(entry.raw[0]), diag)
        heap["memray_allocators"] = allocator_totals(ctx.run.file(entry.raw[0]), diag)
    except ProfkitError as e:
        entry.fail(e.message)
        ctx.warn(f"memray: {e.message}")
        return
    finally:
        for msg in diag.messages():
            ctx.warn(msg)
    heap["memray_series"] = [{"t": round(s["time"] - ctx.t0_epoch, 3), "heap": s["heap"], "rss": s["rss"]}
                             for s in _thin(snaps, 600)]
    window = max(1e-3, (snaps[-1]["time"] - snaps[0]["time"]) if len(snaps) > 1 else (ctx.elapsed or 1.0))
    by_stack = sorted(((w, stack) for stack, w in profile.stacks()), key=lambda x: -x[0])
    suspects: List[dict] = []
    for w, stack in by_stack:
        leaf = stack[-1]
        if leaf.name.startswith("["):
            continue
        suspects.append({"name": leaf.name, "site": leaf.location, "bytes": int(w),
                         "growth": {"bytes": int(w), "bytes_per_min": round(w * 60 / window, 1)},
                         "stack": [f.text for f in reversed(stack[-8:])]})
        if len(suspects) >= TOP_SUSPECTS:
            break
    heap["suspects"] = suspects


def _median(values: List[float]) -> Optional[float]:
    vals = sorted(values)
    return vals[len(vals) // 2] if vals else None


def memray_windows(ctx: RunContext, heap: Dict[str, object], series: List[dict], limits, warmup) -> Optional[dict]:
    """The target's growth measured without memray (the baseline window before it attached) and
    with it, and memray's own cost; None when memray did not track. The baseline's verdict is the
    one reported and projected: memray's tracking grows the target's RSS itself."""
    from profkit import growth

    entry = next((p for p in ctx.record.probes if p.id == "memray"), None)
    if entry is None or entry.status == "failed" or not entry.raw:
        return None
    start = float(entry.detail.get("started_s") or 0.0)
    attached = float(entry.detail.get("attached_s") or start)
    interval = float(heap.get("interval") or 1.0)  # type: ignore[arg-type]
    before = [(r["t"], r["rss"]) for r in series if r.get("rss") and r["t"] < start]
    after = [(r["t"], r["rss"]) for r in series if r.get("rss") and r["t"] >= attached]
    base = growth.analyse(before, limits, warmup=warmup, what="RSS") if len(before) >= 4 else None
    settle = 2 * interval
    with_memray = growth.analyse(after, limits, warmup=settle, what="RSS with memray attached") if len(after) >= 4 else None
    rate = lambda v: ((v or {}).get("fit") or {}).get("bytes_per_min")  # noqa: E731
    # memray's step at attach: the RSS just after it against just before (the debugger pauses the
    # target for part of the attach, so its own growth in between is not subtracted: it is said)
    pre, post = before[-1:], after[:1]
    jump = int(post[0][1] - pre[0][1]) if pre and post else None
    cost = {"started_s": start, "attached_s": attached, "rss_jump_bytes": jump,
            "rate_without_bytes_per_min": rate(base), "rate_with_bytes_per_min": rate(with_memray)}
    if rate(base) is not None and rate(with_memray) is not None:
        cost["extra_bytes_per_min"] = round(rate(with_memray) - rate(base), 1)
    return {"baseline": base, "with_memray": with_memray, "memray_cost": cost}

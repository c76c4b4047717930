# SPDX-License-Identifier: Apache-2.0
"""A Python heap run's memray results: the Python heap over time and the live allocations
that are the leak suspects (memray itself is a profiler probe of the run)."""
from __future__ import annotations

from typing import Dict, List

from profkit.engine.probe import RunContext
from profkit.heap.jvm import TOP_SUSPECTS

__all__ = ["memray_results"]


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
    try:
        snaps = memory_snapshots(ctx.run.file(entry.raw[0]))
    except ProfkitError as e:
        entry.fail(e.message)
        ctx.warn(f"memray: {e.message}")
        return
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

# SPDX-License-Identifier: Apache-2.0
"""``heap.json``: the growth verdict of a heap run, from what its probes published.

    metrics.jsonl (RSS, USS) ─┐
    jstat rows (JVM pools) ───┼─ growth.analyse per series → the primary verdict (JVM: the heap's
    memray snapshots ─────────┤  post-GC floor, confirmed by the live set of the class histograms)
    class histograms + alloc ─┘  → suspects, limits, projection, OOM events, advice
"""
from __future__ import annotations

import os
from datetime import datetime
from typing import Dict, List, Optional

from profkit import growth
from profkit.engine.probe import RunContext
from profkit.heap.limits import limits_for, oom_kills

__all__ = ["analyse_heap", "check_live_set", "metrics_series"]


def metrics_series(ctx: RunContext) -> List[dict]:
    """The run's RSS/USS/CPU series, its clock aligned with the run's start."""
    from profkit.metrics import read_metrics

    path = ctx.run.file("metrics.jsonl")
    rows = list(read_metrics(path)) if os.path.exists(path) else []
    if rows:
        # align the sampler thread's clock with the run's: its first record's wall time
        try:
            first = datetime.fromisoformat(rows[0]["time"]).timestamp() - rows[0]["t"]
            shift = first - ctx.t0_epoch
        except (KeyError, ValueError):
            shift = 0.0
        for r in rows:
            r["t"] = round(r["t"] + shift, 3)
    return [{"t": r["t"], "rss": r.get("rss"), "uss": r.get("uss"),
             "cpu_pct": None if r.get("cpu_user_pct") is None else round(r["cpu_user_pct"] + r["cpu_system_pct"], 2)}
            for r in rows]


def _jvm_series(heap: Dict[str, object], jstat: dict, interval: float, max_heap: Optional[int],
                limits: List[growth.Limit], warmup: Optional[float]) -> Optional[dict]:
    rows = jstat.get("rows") or []
    if not rows:
        return None
    t_first = rows[0]["jvm_t"] or 0.0
    jvm_series, marks, prev_gc = [], [], None
    for i, r in enumerate(rows):
        t = (r["jvm_t"] - t_first if r["jvm_t"] is not None else i * interval) + jstat.get("offset", 0.0) + 0.3
        jvm_series.append({"t": round(t, 3), "heap_used": r["heap_used"], "heap_committed": r["heap_committed"],
                           "heap_max": max_heap, "pools": r["pools"], "gc_count": r["gc_count"],
                           "young_gc": r["young_gc"], "full_gc": r["full_gc"], "gc_time_s": r["gc_time_s"]})
        marks.append(prev_gc is not None and r["gc_count"] > prev_gc)
        prev_gc = r["gc_count"]
    heap["jvm_series"] = jvm_series
    heap_limits = ([growth.Limit("-Xmx", max_heap, "jcmd VM.flags MaxHeapSize")] if max_heap else []) + limits
    verdict = growth.analyse([(r["t"], r["heap_used"]) for r in jvm_series], heap_limits, gc_marks=marks,
                             warmup=warmup, what="heap")
    heap["jvm_heap"] = verdict
    heap["basis"] = "jvm heap (post-GC floor)"
    heap["gc"] = {"count": rows[-1]["gc_count"] - rows[0]["gc_count"],
                  "time_s": round(rows[-1]["gc_time_s"] - rows[0]["gc_time_s"], 3)}
    return check_live_set(verdict, heap.get("histograms"))  # type: ignore[arg-type]


def analyse_heap(ctx: RunContext, heap: Dict[str, object], *, interval: float, warmup: Optional[float]) -> None:
    """Fill ``heap`` (the body of heap.json) with the series, the verdicts and the findings."""
    pid, runtime = ctx.targets[0].pid, ctx.targets[0].runtime
    series = metrics_series(ctx)
    heap["series"] = series
    flags = (ctx.results.get("jvm") or {}).get("flags") or {}
    max_heap = int(flags["MaxHeapSize"]) if str(flags.get("MaxHeapSize", "")).isdigit() else None
    limits = limits_for(pid, None)
    heap["limits"] = [{"name": lim.name, "bytes": lim.bytes, "source": lim.source} for lim in limits]
    heap["rss"] = growth.analyse([(r["t"], r["rss"]) for r in series if r.get("rss")], limits, warmup=warmup, what="RSS")
    uss_pts = [(r["t"], r["uss"]) for r in series if r.get("uss")]
    if uss_pts:
        heap["uss"] = growth.analyse(uss_pts, limits, warmup=warmup, what="USS")
    heap["basis"] = "rss"
    if runtime == "python":
        _without_memray(ctx, heap, series, limits, warmup)
    primary = _jvm_series(heap, ctx.results.get("jstat") or {}, interval, max_heap, limits, warmup) or heap["rss"]
    if "memray_series" in heap:
        pts = [(r["t"], r["heap"]) for r in heap["memray_series"]]  # type: ignore[union-attr]
        heap["memray_heap"] = growth.analyse(pts, limits, warmup=2 * interval, what="memray-tracked heap")
        heap["memray_heap"]["label"] = "memray-tracked heap (native malloc and Python objects)"
        alloc = heap.get("memray_allocators") or {}
        if alloc:
            heap["memray_heap"]["growth_kind"] = ("native (malloc and mmap: C libraries, extension modules, "
                                                  "Python's large buffers)" if alloc.get("native", 0) >= alloc.get("python", 0)
                                                  else "Python objects (pymalloc)")
    for key in ("classification", "fit", "limit", "projection", "reason", "warmup_s", "start_level"):
        if key in primary:  # type: ignore[operator]
            heap[key] = primary[key]  # type: ignore[index]
    heap["basis_detail"] = primary.get("basis")  # type: ignore[union-attr]
    heap.setdefault("suspects", [])
    heap["oom_events"] = oom_kills(pid)
    oom = heap["oom_events"]
    if oom and oom["oom_kill"]:  # type: ignore[index]
        ctx.warn(f"the cgroup has recorded {oom['oom_kill']} OOM kill(s) ({oom['source']})")  # type: ignore[index]
    if runtime == "jvm":
        dump = flags.get("HeapDumpOnOutOfMemoryError")
        heap["heap_dump_on_oom"] = dump == "true" if flags else None
        if flags and dump != "true":
            heap["advice"] = ["-XX:+HeapDumpOnOutOfMemoryError is off: add it (with -XX:HeapDumpPath=DIR) so that an "
                              "OutOfMemoryError leaves a heap dump to find what filled the heap"]
    memray = next((p for p in ctx.record.probes if p.id == "memray"), None)
    heap["memray_overhead"] = None if memray is None or memray.status == "failed" else {
        "attach_seconds": memray.detail.get("attach_seconds"),
        "note": "memray runs inside the target: its cost is in the target's CPU figures while it tracks"}


def _without_memray(ctx: RunContext, heap: Dict[str, object], series: List[dict], limits, warmup) -> None:
    """A Python heap run: the verdict and projection come from the window before memray attached
    (memray's tracking grows the target's RSS itself); the rate with memray is kept beside it,
    with memray's own cost, and never projected."""
    from profkit.heap.python import memray_windows

    windows = memray_windows(ctx, heap, series, limits, warmup)
    if windows is None:
        return
    heap["memray_cost"] = windows["memray_cost"]
    heap["rss_with_memray"] = windows["with_memray"]
    if windows["baseline"] is not None:
        heap["rss"] = windows["baseline"]
        heap["rss"]["window"] = "before memray attached"
        uss = [(r["t"], r["uss"]) for r in series if r.get("uss") and r["t"] < windows["memray_cost"]["started_s"]]
        if len(uss) >= 4:
            heap["uss"] = growth.analyse(uss, limits, warmup=warmup, what="USS")
        return
    rss = dict(heap["rss"])  # type: ignore[arg-type]
    rss["window"] = "with memray attached from the start (--baseline 0)"
    rss["projection"] = {"seconds_to_limit": None,
                         "text": "no projection: the only rate measured is with memray attached, and memray's own "
                                 "memory inflates it (run profkit heap with a --baseline window)"}
    heap["rss"] = rss


#: The least live-set growth (bytes) that counts, whatever the floor's level.
LIVE_SET_MIN_GROWTH = 1 << 20


def check_live_set(verdict: dict, hist: Optional[dict]) -> dict:
    """Let the live set decide where the post-GC floor cannot.

    Each class histogram runs a full GC first: the totals at the start and the end are the live
    set, the most direct measure of what the heap keeps.

    * A rising floor the live set does not confirm is overruled: after a young collection, G1's
      used bytes still hold old-generation garbage until the next mixed or full collection, so
      over a short window that floor can rise without a leak.
    * A floor too noisy to show a rise (a busy heap sampled once a second, between dozens of
      young collections) is overruled when the live set grew clearly: by more than 5% of the
      floor's level and at least :data:`LIVE_SET_MIN_GROWTH`; the rate is then the live set's.
    """
    if not hist:
        return verdict
    if verdict.get("classification") == "steady":
        return _growing_live_set(verdict, hist)
    start, end = hist["live_bytes_start"], hist["live_bytes_end"]
    # the same 5% as the floor's own test, of the floor's starting level (a fresh JVM's live set
    # is a megabyte or two, of which a warming-up service's caches are already a good share)
    if end - start > growth.GROWTH_THRESHOLD * max(start, verdict.get("start_level") or 0, 1):
        return verdict
    out = dict(verdict)
    out["classification"] = "steady"
    out["reason"] = (f"{verdict['reason']}; but the live set after full GCs (class histograms) went only from "
                     f"{start / 2**20:.1f} to {end / 2**20:.1f} MiB: old-generation garbage, not a leak")
    out["projection"] = {"seconds_to_limit": None, "text": growth.projection_text(None, _limit(verdict), None)}
    return out


def _limit(verdict: dict) -> Optional[growth.Limit]:
    lim = verdict.get("limit")
    return growth.Limit(**{k: lim[k] for k in ("name", "bytes", "source")}) if lim else None


def _growing_live_set(verdict: dict, hist: dict) -> dict:
    start, end = hist["live_bytes_start"], hist["live_bytes_end"]
    span = max(1e-3, float(hist["end_s"]) - float(hist["start_s"]))
    grew = end - start
    if grew <= max(LIVE_SET_MIN_GROWTH, growth.GROWTH_THRESHOLD * max(start, verdict.get("start_level") or 0, 1)):
        return verdict
    slope = grew / span
    fit = growth.Fit(slope=slope, intercept=start - slope * float(hist["start_s"]), slope_low=slope, slope_high=slope,
                     n=2, t_start=float(hist["start_s"]), t_end=float(hist["end_s"]))
    limit = _limit(verdict)
    eta = growth.time_to_limit(fit, float(hist["end_s"]), limit)
    out = dict(verdict)
    out["classification"] = "growing"
    out["reason"] = (f"{verdict['reason']}; but the live set after full GCs (class histograms) grew from "
                     f"{start / 2**20:.1f} to {end / 2**20:.1f} MiB in {span:.0f} s: the heap keeps what it allocates")
    out["basis"] = "live set (class histograms after full GC)"
    out["fit"] = {**fit.as_dict(), "bytes_per_min": round(slope * 60, 1), "ci95_bytes_per_min": None}
    out["projection"] = {"seconds_to_limit": None if eta is None else round(eta, 1),
                         "text": growth.projection_text(fit, limit, eta)}
    return out

# SPDX-License-Identifier: Apache-2.0
"""``metrics.jsonl``, read back: the process metrics (CPU, RSS, USS, threads, fds, I/O) a run's
psutil sampler wrote, one JSON object per interval. Used by the reports and the heap analysis;
written by :mod:`collectors.psutil_metrics`. A leaf module (standard library only)."""
from __future__ import annotations

import json
import os
from typing import Iterator, Optional

__all__ = ["read_metrics", "summarise"]


def read_metrics(path: str) -> Iterator[dict]:
    """The records of a ``metrics.jsonl`` file (a cut last line is ignored)."""
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                yield json.loads(line)
            except ValueError:
                continue


def summarise(path: str) -> Optional[dict]:
    """CPU and RSS over a run: mean and max CPU %, the CPU seconds used and those waited runnable
    for a CPU (run queue; None from a sampler or kernel without it), the share of the run in
    which some task on the host waited for a CPU (PSI; None without it), start/end/peak RSS, max
    threads; None without data."""
    recs = list(read_metrics(path)) if os.path.exists(path) else []
    if not recs:
        return None
    cpu = [r["cpu_user_pct"] + r["cpu_system_pct"] for r in recs if r.get("cpu_user_pct") is not None]
    rss = [r["rss"] for r in recs]
    seconds = 0.0
    waited: Optional[float] = None
    pressure = [0.0, 0.0]  # host CPU pressure seconds, and the seconds it was measured over
    for prev, r in zip(recs, recs[1:]):  # each record's CPU % covers the interval since the one before
        if r.get("cpu_user_pct") is not None and r.get("t") is not None and prev.get("t") is not None:
            dt = max(0.0, r["t"] - prev["t"])
            seconds += (r["cpu_user_pct"] + r["cpu_system_pct"]) / 100.0 * dt
            if r.get("cpu_wait_pct") is not None:
                waited = (waited or 0.0) + r["cpu_wait_pct"] / 100.0 * dt
            if r.get("host_cpu_pressure_pct") is not None:
                pressure[0] += r["host_cpu_pressure_pct"] / 100.0 * dt
                pressure[1] += dt
    return {"samples": len(recs), "cpu_mean_pct": sum(cpu) / len(cpu) if cpu else None,
            "cpu_seconds": round(seconds, 3) if cpu else None,
            "cpu_wait_seconds": round(waited, 3) if waited is not None else None,
            "host_cpu_pressure_pct": round(100 * pressure[0] / pressure[1], 1) if pressure[1] else None,
            "cpu_max_pct": max(cpu) if cpu else None, "rss_start": rss[0], "rss_end": rss[-1],
            "rss_peak": max(rss), "threads_max": max(r["threads"] for r in recs)}

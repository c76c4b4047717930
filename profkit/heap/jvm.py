# SPDX-License-Identifier: Apache-2.0
"""The JVM's memory tools as probes of a heap run: ``jcmd`` (VM flags, class histograms at the
start and the end) and one long-running ``jstat`` (heap pools and GC once an interval); and the
leak suspects made of the two histograms and the allocation profile.

Only profkit's own children are signalled (jstat, the short jcmd calls); nothing is loaded into
the JVM here (the allocation profile is a profiler probe: async-profiler or JFR).
"""
from __future__ import annotations

import time
from typing import Dict, List, Optional

from collectors.base import raw_path
from profkit.engine.probe import Probe, RunContext
from profkit.model import Profile
from profkit.targets import process_state

__all__ = ["JcmdProbe", "JstatProbe", "TOP_SUSPECTS", "alloc_sites", "suspects"]

#: Suspects listed in heap.json.
TOP_SUSPECTS = 15


class JcmdProbe(Probe):
    """``jcmd VM.flags`` and ``GC.class_histogram`` at the start; another histogram at the end."""

    id = "jcmd"
    kind = "heap"
    without = "no -Xmx limit and no class histograms (no JVM leak suspects)"

    def __init__(self, pid: int):
        super().__init__()
        self.pid = pid
        self.state: Dict[str, object] = {}

    def start(self, ctx: RunContext) -> None:
        from collectors.jvm import jcmd_argv
        from collectors.jvm_heap import class_histogram, vm_flags

        entry = self.attach_record(ctx)
        ctx.results["jvm"] = self.state
        self.state["flags"] = vm_flags(self.pid)
        entry.set_commands([jcmd_argv("jcmd", self.pid, ["VM.flags"]), jcmd_argv("jcmd", self.pid, ["GC.class_histogram"])])
        path = raw_path(ctx.run.raw_dir, "histogram-start", self.pid, "txt")
        entry.raw = [ctx.run.relative(path)]
        self.state["hist_start"] = class_histogram(self.pid, path)
        self.state["hist_start_t"] = time.monotonic() - ctx.t0

    def finish(self, ctx: RunContext) -> None:
        from collectors.jvm_heap import class_histogram

        if "hist_start" not in self.state:
            return
        if process_state(self.pid) in (None, "Z"):
            ctx.warn("no class histogram at the end (the target exited): no JVM leak suspects")
            return
        path = raw_path(ctx.run.raw_dir, "histogram-end", self.pid, "txt")
        self.attach_record(ctx).raw.append(ctx.run.relative(path))
        self.state["hist_end"] = class_histogram(self.pid, path)
        self.state["hist_end_t"] = time.monotonic() - ctx.t0


class JstatProbe(Probe):
    """``jstat -gc -t PID INTERVAL COUNT`` into ``raw/jstat-PID.txt``: heap pools and GC counts."""

    id = "jstat"
    kind = "heap"
    without = "no JVM heap pools or GC figures (RSS and USS only)"

    def __init__(self, pid: int, interval: float):
        super().__init__()
        self.pid, self.interval = pid, interval
        self.stream = None
        self.offset = 0.0

    def start(self, ctx: RunContext) -> None:
        from collectors.jvm_heap import JstatStream

        started = time.monotonic()
        self.stream = JstatStream(self.pid, self.interval, ctx.duration, ctx.run.raw_dir)
        self.offset = started - ctx.t0
        ctx.results["jstat_stream"] = self.stream
        entry = self.attach_record(ctx)
        entry.set_commands([self.stream.argv])
        entry.raw = [ctx.run.relative(self.stream.path)]

    def poll(self) -> bool:
        return self.stream is not None and self.stream.tool.poll() is None

    def stop(self, reason: str) -> None:
        if self.stream is not None:
            self.stream.stop()

    def finish(self, ctx: RunContext) -> None:
        from collectors.jvm_heap import parse_jstat

        assert self.stream is not None
        err = self.stream.error()
        with open(self.stream.path, encoding="utf-8", errors="replace") as fh:
            rows = parse_jstat(fh.read())
        ctx.results["jstat"] = {"rows": rows, "offset": self.offset}
        if err and not rows and process_state(self.pid) not in (None, "Z"):
            ctx.warn(f"jstat: {' '.join(err.split())[:200]}")


def alloc_sites(profile: Profile) -> Dict[str, str]:
    """Allocated class → the frame that allocates most of it (the caller of the class leaf frame)."""
    by_class: Dict[str, Dict[str, float]] = {}
    for stack, w in profile.stacks():
        if len(stack) < 2:
            continue
        leaf = stack[-1].name.replace("/", ".")
        parent = stack[-2].text
        # the allocating frame is the innermost frame that is not the JDK's own allocation code
        for frame in reversed(stack[:-1]):
            if not frame.name.replace("/", ".").startswith(("java.", "jdk.", "sun.", "com.sun.")):
                parent = frame.text
                break
        by_class.setdefault(leaf, {}).setdefault(parent, 0)
        by_class[leaf][parent] += w
    return {cls: max(sites.items(), key=lambda kv: kv[1])[0] for cls, sites in by_class.items()}


def suspects(state: Dict[str, object], profile: Optional[Profile], pid: int) -> Optional[dict]:
    """``{"suspects": […], "histograms": {…}}`` from the two class histograms (and the allocation
    profile, for each class's allocation site); None without an end histogram."""
    from collectors.jvm_heap import diff_histograms

    if "hist_end" not in state:
        return None
    start, end = state["hist_start"], state["hist_end"]
    span = max(1e-3, float(state["hist_end_t"]) - float(state["hist_start_t"]))  # type: ignore[arg-type]
    rows = diff_histograms(start, end, top=TOP_SUSPECTS)  # type: ignore[arg-type]
    sites = alloc_sites(profile) if profile is not None else {}
    out: List[dict] = [{
        "name": r.name, "kind": "application class" if r.application else "JDK or array type",
        "site": sites.get(r.name, ""), "bytes": r.bytes_end, "instances": r.instances_end,
        "growth": {"bytes": r.bytes_growth, "instances": r.instances_growth,
                   "bytes_per_min": round(r.bytes_growth * 60 / span, 1)},
        "holder": r.holder,
    } for r in rows]
    hist = {"start_s": round(float(state["hist_start_t"]), 2), "end_s": round(float(state["hist_end_t"]), 2),  # type: ignore[arg-type]
            "live_bytes_start": sum(b for _, b in start.values()),  # type: ignore[union-attr]
            "live_bytes_end": sum(b for _, b in end.values()),  # type: ignore[union-attr]
            "files": [f"raw/histogram-start-{pid}.txt", f"raw/histogram-end-{pid}.txt"]}
    return {"suspects": out, "histograms": hist}

# SPDX-License-Identifier: Apache-2.0
"""The probes every kind of run uses: a stack profiler, the process metrics, a launched command.

Load generators (:mod:`profkit.loadgen.probe`) and memory tools (:mod:`profkit.heap`) are
probes too; they live beside the things they drive.
"""
from __future__ import annotations

import os
import re
import time
from typing import Any, List, Optional

from collectors.base import Availability, Collector, RecordRequest, Recording
from profkit.engine.captures import options_dict, parse_captures
from profkit.engine.probe import Probe, RunContext, relative_all
from profkit.errors import Diagnostics, ProfkitError

__all__ = ["CommandProbe", "MetricsProbe", "ProfilerProbe"]


class ProfilerProbe(Probe):
    """One collector recording stacks from every target; publishes ``ctx.profiles[id]``."""

    kind = "profiler"

    def __init__(self, collector: Collector, availability: Availability, mode: str, rate: int, options: Any = None,
                 *, essential: bool = True):
        super().__init__()
        self.collector, self.availability = collector, availability
        self.id = collector.id
        self.mode, self.rate, self.options = mode, rate, options
        self.essential = essential
        self.rec: Optional[Recording] = None

    def start(self, ctx: RunContext) -> None:
        entry = self.attach_record(ctx)
        entry.version = self.availability.version
        ctx.profiler_order.append(self.id)
        # probes that started before this one took some of the window (memray's attach takes seconds)
        left = max(1.0, ctx.duration - (time.monotonic() - ctx.t0))
        request = RecordRequest(ctx.pids, ctx.targets[0].runtime, self.mode, self.rate, left,
                                ctx.run.raw_dir, self.options)
        self.rec = self.collector.record(request)
        self._describe(ctx)

    def _describe(self, ctx: RunContext, save: bool = True) -> None:
        entry, rec = self.attach_record(ctx), self.rec
        assert rec is not None
        entry.set_commands(rec.commands)
        entry.raw = relative_all(ctx.run, list(rec.raw.values()))
        entry.parse = options_dict(rec.parse_options)
        entry.detail.update(getattr(rec, "detail", None) or {})
        if save:
            ctx.run.save()

    def poll(self) -> bool:
        return self.rec is not None and self.rec.poll()

    def stop(self, reason: str) -> None:
        if self.rec is not None:
            self.rec.stop()

    def status(self) -> str:
        if self.rec is None:
            return ""
        return self.rec.progress() or _captured(list(self.rec.raw.values()))

    def finish(self, ctx: RunContext) -> None:
        assert self.rec is not None
        failure: Optional[ProfkitError] = None
        try:
            raws = self.rec.finish()
        except ProfkitError as e:
            failure = e
            raws = [p for p in self.rec.raw.values() if os.path.exists(p) and os.path.getsize(p) > 0]
        self._describe(ctx, save=False)  # the engine saves the record once its profiles are written
        if raws:
            self.attach_record(ctx).raw = relative_all(ctx.run, raws)
        for raw in self.rec.raw.values():
            for line in tool_errors(raw + ".stderr"):
                ctx.warn(f"{self.id}: {line}")
        diag = Diagnostics()
        try:
            merged, per = parse_captures(self.collector, raws, self.rec.parse_options,
                                         ctx.record.process_names(), diag)
        except ProfkitError as e:
            raise failure or e
        finally:
            for msg in diag.messages():
                ctx.warn(f"{self.id}: {msg}")
        ctx.profiles[self.id] = merged
        if per:
            ctx.per_target[self.id] = per
        if failure is not None:
            raise failure


_ERROR_LINE = re.compile(r"(?i)\b(?:error|errors|failed|failure|fatal|panic|exception|traceback|segmentation)\b")


def tool_errors(path: str, limit: int = 10) -> List[str]:
    """The error lines a tool wrote to its stderr file (each distinct line once, with its count;
    at most ``limit``, then how many more): every one becomes a warning of the run."""
    from collections import Counter

    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read(1 << 20)
    except OSError:
        return []
    counts = Counter(l.strip() for l in text.splitlines() if _ERROR_LINE.search(l))
    out = [line + (f" ({n} times)" if n > 1 else "") for line, n in list(counts.items())[:limit]]
    if len(counts) > limit:
        out.append(f"… and {len(counts) - limit} more error lines in {os.path.basename(path)}")
    return out


def _captured(paths: List[str]) -> str:
    size = 0
    for p in paths:
        try:
            size += os.path.getsize(p)
        except OSError:
            pass
    return f"{size / 1024:.0f} KiB captured"


class MetricsProbe(Probe):
    """The process metrics (psutil: CPU, RSS, USS, threads, fds, I/O) into ``metrics.jsonl``."""

    id = "psutil"
    kind = "metrics"

    def __init__(self, interval: float, *, uss: bool = False, children: bool = True, essential: bool = False):
        super().__init__()
        self.interval, self.uss, self.children = interval, uss, children
        self.essential = essential
        self.rec = None

    def start(self, ctx: RunContext) -> None:
        import collectors

        c = collectors.get("psutil")
        entry = self.attach_record(ctx)
        avail = c.check(mode="metrics")
        entry.version = avail.version
        if not avail.ok:
            raise avail.error(self.id)
        self.rec = c.record(RecordRequest(ctx.pids, ctx.targets[0].runtime, ctx.record.mode, 1, ctx.duration + 5,
                                          ctx.run.path, c.RecordOptions(interval=self.interval, children=self.children,
                                                                        uss=self.uss)))
        entry.set_commands(self.rec.commands)
        entry.raw = relative_all(ctx.run, list(self.rec.raw.values()))
        ctx.results["metrics"] = self.rec

    def poll(self) -> bool:
        return self.rec is not None and self.rec.poll()

    def stop(self, reason: str) -> None:
        if self.rec is not None:
            self.rec.stop()

    def status(self) -> str:
        last = self.rec.last if self.rec is not None else None
        if not last or last.get("cpu_user_pct") is None:
            return ""
        text = f"target {last['cpu_user_pct'] + last['cpu_system_pct']:.0f}% CPU, {last['rss'] / 2**20:.0f} MiB RSS"
        if last.get("uss"):
            text += f", USS {last['uss'] / 2**20:.0f} MiB"
        return text

    def finish(self, ctx: RunContext) -> None:
        if self.rec is not None:
            self.rec.finish()


class CommandProbe(Probe):
    """The command ``profkit run`` launched (profkit's child): stopped when the run ends."""

    id = "command"
    kind = "command"

    def __init__(self, child, grace: float = 5.0):
        super().__init__()
        self.child, self.grace = child, grace

    def start(self, ctx: RunContext) -> None:
        self.attach_record(ctx).set_commands([self.child.argv])

    def poll(self) -> bool:
        return self.child.poll() is None

    def stop(self, reason: str) -> None:
        if self.child.poll() is None:
            self.child.stop(grace=self.grace)

    def finish(self, ctx: RunContext) -> None:
        rc = self.child.poll()
        self.attach_record(ctx).detail["exit_code"] = rc

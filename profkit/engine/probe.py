# SPDX-License-Identifier: Apache-2.0
"""Probes: everything a run starts, with one lifecycle.

A profiler, the process-metrics sampler, a load generator, a heap tool and the command that
``profkit run`` launched are all probes of one run::

    start(ctx)        begin (raises ProfkitError: the probe failed to start)
    poll() -> bool    still running?
    stop(reason)      end now ("stop": Ctrl-C/SIGTERM, "duration", "targets-gone"); never raises
    finish(ctx)       wait for the tool, read what it wrote, publish results (raises ProfkitError)
    status() -> str   a few words for the progress line ("" for nothing)

The engine (:func:`profkit.engine.record`) calls them in that order and is the one place that
decides the run's status. ``essential`` probes carry the run: it ends when none of them is
still running, and it fails when none of them could start. ``must_start`` probes (a load
generator) abort the run when they cannot start.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

from profkit.model import Profile
from profkit.rundir import RunDir
from profkit.runrecord import ProbeRecord
from profkit.targets import Target

__all__ = ["Probe", "RunContext"]


@dataclass
class RunContext:
    """What the probes of one run share: the run directory, the targets, the stop request,
    and the results each probe publishes for the others and for the analyses after them."""

    run: RunDir
    targets: List[Target]
    stop: threading.Event
    duration: float
    #: collector id → its profile (merged over targets, with a process root frame per target when several)
    profiles: Dict[str, Profile] = field(default_factory=dict)
    #: collector id → pid → that target's own profile (several targets only)
    per_target: Dict[str, Dict[int, Profile]] = field(default_factory=dict)
    #: the order profilers were asked for (the first one that produced a profile is primary)
    profiler_order: List[str] = field(default_factory=list)
    #: anything else a probe hands on: ``metrics`` (path), ``load`` (figures), ``jvm`` (heap state) …
    results: Dict[str, Any] = field(default_factory=dict)
    #: seconds since the run started when it ended
    elapsed: float = 0.0
    #: monotonic clock value and epoch time at the run's start
    t0: float = 0.0
    t0_epoch: float = 0.0

    @property
    def record(self):
        """The run record (:class:`~profkit.runrecord.RunRecord`)."""
        return self.run.record

    @property
    def pids(self) -> Sequence[int]:
        """The targets' PIDs."""
        return tuple(t.pid for t in self.targets)

    def warn(self, message: str) -> None:
        """A warning for the run record (and the summary)."""
        self.run.warn(message)


class Probe:
    """Base class of probes; see the module docstring. Subclasses set ``id`` and ``kind``."""

    id: str = ""
    kind: str = "profiler"
    essential: bool = False
    must_start: bool = False
    #: what the run lacks when this probe fails (said in the warning), e.g. "no class histograms"
    without: str = ""
    #: seconds after the run's start at which the engine starts this probe (a heavy probe after a
    #: baseline window measured without it); 0 starts it with the others
    delay: float = 0.0
    ended_s: Optional[float] = None

    def __init__(self) -> None:
        self.entry: Optional[ProbeRecord] = None
        #: seconds into the run at which the engine first saw it no longer running (None: it ran to the end)
        self.ended_s: Optional[float] = None

    def attach_record(self, ctx: RunContext) -> ProbeRecord:
        """This probe's entry in the run record (made on first use)."""
        if self.entry is None:
            self.entry = ctx.record.probe(self.id, self.kind)
        return self.entry

    def start(self, ctx: RunContext) -> None:  # pragma: no cover - protocol
        raise NotImplementedError

    def poll(self) -> bool:
        return False

    def stop(self, reason: str) -> None:
        """End now; never raises."""

    def finish(self, ctx: RunContext) -> None:
        """Wait for the tool and publish what it recorded."""

    def status(self) -> str:
        return ""


def relative_all(run: RunDir, paths: Sequence[str]) -> List[str]:
    """Paths as the record keeps them: relative to the run directory."""
    return [run.relative(p) for p in paths]

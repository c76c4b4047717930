# SPDX-License-Identifier: Apache-2.0
"""The time and thread of each ``perf script`` sample, for the profile's timeline.

A header's timestamp (``java 12688/12764 [002] 6544038.708352: …``) is seconds on perf's clock
(CLOCK_MONOTONIC; :func:`profkit.engine.captures.parse_captures` moves it to epoch time); the
thread is ``comm [TID]``. A capture whose headers carry no time has no timeline.
"""
from __future__ import annotations

import re
from typing import Dict, Optional, Tuple

from profkit.timeline import Timeline

__all__ = ["TimedSamples"]

_STAMP = re.compile(rb"\s(\d+\.\d{3,9}):\s")


class TimedSamples:
    """The timeline being built (its columns filled directly), and the open sample's time and thread."""

    __slots__ = ("timeline", "stamp", "thread", "labels", "base")

    def __init__(self) -> None:
        self.timeline = Timeline(0.0, 1000)
        self.stamp = 0.0
        self.base: Optional[float] = None
        self.thread = 0
        self.labels: Dict[Tuple[bytes, bytes, Optional[bytes]], int] = {}

    def open(self, line: bytes, ids: Tuple[bytes, bytes, Optional[bytes]]) -> Optional["TimedSamples"]:
        """Note the time and thread of the sample a header opens; None (no timeline) without a time."""
        parts = line.rsplit(None, 3)  # "… 1000.000200: 10101010 cpu-clock:" or "… 1000.000200: cpu-clock:"
        w = parts[-3] if len(parts) > 3 and parts[-3][-1:] == b":" else parts[-2] if len(parts) > 2 else b""
        if w[-1:] != b":" or b"." not in w:
            m = _STAMP.search(line)  # an unusual header: look for the time anywhere
            if m is None:
                return None
            w = m.group(1) + b":"
        try:
            stamp = float(w[:-1])
        except ValueError:
            return None
        if self.base is None:
            self.base = stamp
        self.stamp = stamp - self.base
        label = self.labels.get(ids)
        if label is None:
            tid = ids[2] if ids[2] and ids[2] != b"0" else ids[1]
            label = self.labels[ids] = self.timeline.thread_id((ids[0] + b" [" + tid + b"]").decode("utf-8", "surrogateescape"))
        self.thread = label
        return self

    def add(self, stack: int, period: int) -> None:
        """The open sample: its stack's index (in the collapser's table) and weight."""
        tl = self.timeline
        ms = int(self.stamp * 1000.0)
        tl.t.append(ms if 0 <= ms < 0xFFFFFFFF else (0 if ms < 0 else 0xFFFFFFFF))
        tl.stack.append(stack)
        tl.thread.append(self.thread)
        tl.weight.append(period if period < 0xFFFFFFFF else 0xFFFFFFFF)

    def finish(self, index: Dict[Tuple[int, ...], int]) -> Timeline:
        """The timeline, its stacks the collapser's (``index``: stack -> the index samples name)."""
        tl = self.timeline
        tl.start = self.base or 0.0
        for key in index:  # insertion order is index order
            tl.stack_id(key)
        return tl

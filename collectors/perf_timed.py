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
    """The timeline being built, and the open sample's time and thread."""

    __slots__ = ("timeline", "stamp", "thread", "labels")

    def __init__(self) -> None:
        self.timeline = Timeline(0.0, 1000)
        self.stamp: Optional[float] = None
        self.thread = ""
        self.labels: Dict[Tuple[bytes, bytes, Optional[bytes]], str] = {}

    def open(self, line: bytes, ids: Tuple[bytes, bytes, Optional[bytes]]) -> Optional["TimedSamples"]:
        """Note the time and thread of the sample a header opens; None (no timeline) without a time."""
        m = _STAMP.search(line)
        if m is None:
            return None
        self.stamp = float(m.group(1))
        label = self.labels.get(ids)
        if label is None:
            tid = ids[2] if ids[2] and ids[2] != b"0" else ids[1]
            label = self.labels[ids] = (ids[0] + b" [" + tid + b"]").decode("utf-8", "surrogateescape")
        self.thread = label
        return self

    def add(self, key: Tuple[int, ...], period: int) -> None:
        """The open sample, with its stack and weight."""
        tl = self.timeline
        if self.stamp is not None:
            if not tl.start:
                tl.start = self.stamp
            tl.append(self.stamp - tl.start, key, self.thread, period)

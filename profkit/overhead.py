# SPDX-License-Identifier: Apache-2.0
"""Measuring a profiler's cost to the target: alternating runs with and without it.

A fixed closed-loop load runs against the service several times; each *pair* is one run
without the profiler and one with it, in alternating order (ABBA…) so that drift of a shared,
noisy machine falls on both sides. The loss of a pair is ``(base - profiled) / base`` in
percent of throughput; the result reports the median and the spread over pairs. ``profkit
bench --baseline`` and ``benchmarks/bench_overhead.py`` both use this.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Callable, List

__all__ = ["OverheadResult", "alternate"]


@dataclass
class OverheadResult:
    """Throughputs per pair and the derived losses (percent of the baseline's throughput)."""

    baseline: List[float] = field(default_factory=list)
    profiled: List[float] = field(default_factory=list)

    @property
    def losses(self) -> List[float]:
        """Per pair: the throughput lost with the profiler, in percent."""
        return [100.0 * (b - p) / b if b else 0.0 for b, p in zip(self.baseline, self.profiled)]

    @property
    def median_loss(self) -> float:
        """The median loss over the pairs, in percent."""
        return statistics.median(self.losses) if self.losses else 0.0

    @property
    def spread(self) -> float:
        """Half the range between the highest and lowest loss, in points (a noise gauge)."""
        return (max(self.losses) - min(self.losses)) / 2 if self.losses else 0.0

    def describe(self) -> str:
        """One line: median loss ± spread, with the throughputs."""
        return (f"median loss {self.median_loss:.1f}% ± {self.spread:.1f} over {len(self.losses)} pairs "
                f"(baseline median {statistics.median(self.baseline):.0f}/s, "
                f"profiled median {statistics.median(self.profiled):.0f}/s)")


def alternate(pairs: int, baseline: Callable[[], float], profiled: Callable[[], float]) -> OverheadResult:
    """Run ``pairs`` pairs of measurements, alternating which goes first; each callable runs the
    fixed load once (with or without the profiler) and returns the throughput."""
    if pairs < 1:
        raise ValueError("at least one pair")
    result = OverheadResult()
    for i in range(pairs):
        if i % 2 == 0:
            b = baseline()
            p = profiled()
        else:
            p = profiled()
            b = baseline()
        result.baseline.append(b)
        result.profiled.append(p)
    return result

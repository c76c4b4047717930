# SPDX-License-Identifier: Apache-2.0
"""``folded``: FlameGraph's collapsed-stack text itself (see :mod:`profkit.folded`)."""
from __future__ import annotations

from dataclasses import dataclass

from profkit.errors import Diagnostics
from profkit.folded import folded_lines, read_folded
from profkit.inputs import Source
from profkit.model import Profile, UNITS

from collectors.base import Collector, Sniff, option

__all__ = ["FoldedCollector", "FoldedOptions", "parse"]


@dataclass(frozen=True)
class FoldedOptions:
    """Options for reading folded text."""

    unit: str = option("samples", "unit of the counts (a bare folded file carries none)", choices=UNITS)


def parse(source: Source, options: FoldedOptions = FoldedOptions(), diag: Diagnostics = None, *,
          keyed: bool = False) -> Profile:
    """Read folded text into a Profile (with ``keyed``, frames named by function as they are read)."""
    return read_folded(source.text_lines(), diag if diag is not None else source.diag, unit=options.unit,
                       keyed=keyed)


class FoldedCollector(Collector):
    """Folded stacks (``a;b;c 12``), as written by stackcollapse-*.pl, py-spy raw, async-profiler collapsed."""

    id = "folded"
    summary = "folded stacks: 'root;…;leaf COUNT' per line"
    Options = FoldedOptions

    def sniff(self, head: bytes) -> Sniff:
        return Sniff.NO if folded_lines(head) is None else Sniff.MAYBE

    def parse(self, source: Source, options: FoldedOptions, diag: Diagnostics) -> Profile:
        return parse(source, options, diag)

    def parse_keyed(self, source: Source, options: FoldedOptions, diag: Diagnostics) -> Profile:
        return parse(source, options, diag, keyed=True)

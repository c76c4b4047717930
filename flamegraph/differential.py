# SPDX-License-Identifier: Apache-2.0
"""Differential flame graphs: AFTER's shape, coloured by how each frame changed since BEFORE.

Widths come from AFTER. A frame is red where its self weight grew and blue where it shrank,
the more saturated the bigger the change against the largest change drawn (flamegraph.pl
colours by the self delta too: it points at the function that changed, not at every caller
above it). Unchanged frames are light grey. Its tooltip shows AFTER and BEFORE weights and
shares and the inclusive and self deltas, also in percentage points of the total.

With ``normalize`` (the default) BEFORE is scaled to AFTER's total first, so the graph
compares shares, not absolute counts: a run that was simply longer does not turn red.

Frames are matched by function, as ``shared/CONTRACT.md`` keys them: the name and file without
the line number (``handle (app/views.py:42)`` is drawn as ``handle (app/views.py)``), so code
that moved between the two builds is not new. Frames found only in BEFORE have no width in
AFTER and so vanish from this graph; render the reverse comparison
(``render_diff(after, before, …)``) to see them.
"""
from __future__ import annotations

from bisect import bisect_left
from typing import IO, List, Optional, Sequence, Tuple

from flamegraph.layout import Layout, Stack, layout, paused_gc, sorted_stacks
from flamegraph.options import FlameGraphOptions
from flamegraph.palette import diff_color
from flamegraph.svg import DrawFrame, format_count, write_graph
from profkit.model import Frame, Number, Profile

__all__ = ["FrameDelta", "render_diff"]

EMPTY_MESSAGE = "No stack counts found in AFTER"


class FrameDelta:
    """BEFORE's weights for the frames of an AFTER layout, each found by its path from the root."""

    def __init__(self, before: Profile, reverse: bool = False):
        self.stacks, self.cum = sorted_stacks(before, reverse)
        self.known = before.frames  # ids are frame tokens: AFTER's id is BEFORE's id, if BEFORE has it

    def weights_for(self, lay: Layout, frames: Sequence[Frame]) -> List[Tuple[Number, Number]]:
        """BEFORE's (inclusive, self) weights of each box of ``lay`` (AFTER's ``frames``)."""
        stacks, cum, known = self.stacks, self.cum, self.known
        n = len(stacks)
        # Each box's path in BEFORE's ids, built from its parent's (parents come first);
        # None once a frame on the path does not exist in BEFORE.
        paths: List[Optional[Stack]] = []
        out: List[Tuple[Number, Number]] = []
        for box in lay.boxes:
            if box.parent < 0:
                path: Optional[Stack] = ()
            else:
                up = paths[box.parent]
                fid = box.fid if up is not None and box.fid in known else None
                path = None if fid is None else up + (fid,)
            paths.append(path)
            if path is None:
                out.append((0, 0))
                continue
            lo = bisect_left(stacks, path)
            hi = bisect_left(stacks, path[:-1] + (path[-1] + "\0",), lo) if path else n
            own = cum[lo + 1] - cum[lo] if lo < n and stacks[lo] == path else 0
            out.append((cum[hi] - cum[lo], own))
        return out


def _signed(v: float, text: str) -> str:
    return ("+" if v > 0 else "-" if v < 0 else "±") + text


def render_diff(before: Profile, after: Profile, options: Optional[FlameGraphOptions], out: IO[str], *,
                normalize: bool = True) -> str:
    """Write a differential flame graph of BEFORE → AFTER to ``out``; return its id prefix.

    ``options`` None means the defaults. ``normalize`` scales BEFORE to AFTER's total before
    comparing (shares, not counts).
    """
    o = options if options is not None else FlameGraphOptions()
    with paused_gc():
        return _render(before, after, o, out, normalize)


def _render(before: Profile, after: Profile, o: FlameGraphOptions, out: IO[str], normalize: bool) -> str:
    # Frames are matched by function (name and file without the line number), so that code that
    # moved between the two builds is not drawn as new (shared/CONTRACT.md).
    before, after = before.keyed(), after.keyed()
    a_total = after.total
    b_total = before.total
    lay = layout(after, min_weight=o.min_weight(a_total), reverse=o.reverse)
    old = FrameDelta(before, o.reverse).weights_for(lay, after.frames)
    scale = (a_total / b_total) if (normalize and b_total) else 1
    unit = o.countname or after.unit
    frames = after.frames

    rows = []
    biggest = 0.0
    for box, (b_incl, b_self) in zip(lay.boxes, old):
        d_incl = box.w - b_incl * scale
        d_self = lay.self_weight(box) - b_self * scale
        biggest = max(biggest, abs(d_self))
        rows.append((box, b_incl, d_incl, d_self))

    draw = []
    for box, b_incl, d_incl, d_self in rows:
        name = frames[box.fid].text if box.fid is not None else "all"
        a_pct = 100.0 * box.w / a_total
        b_pct = 100.0 * b_incl / b_total if b_total else 0.0
        info = (f"{format_count(box.w)} {unit} ({a_pct:.2f}%), before {format_count(b_incl)} ({b_pct:.2f}%): "
                f"{_signed(d_incl, format_count(round(abs(d_incl), 2)))} "
                f"({_signed(d_incl, f'{abs(100.0 * d_incl / a_total):.2f}')} pp), "
                f"self {_signed(d_self, format_count(round(abs(d_self), 2)))} "
                f"({_signed(d_self, f'{abs(100.0 * d_self / a_total):.2f}')} pp)")
        draw.append(DrawFrame(box.depth, box.x, box.w, name, diff_color(d_self, biggest), info))
    legend = ("widths from AFTER; red: self share grew, blue: shrank" if normalize
              else "widths from AFTER; red: self weight grew, blue: shrank (absolute counts)")
    return write_graph(out, draw, total=lay.total, max_depth=lay.max_depth, options=o,
                       title=o.resolved_title("Differential Flame Graph"),
                       subtitle=o.subtitle or legend, message=None if draw else EMPTY_MESSAGE)

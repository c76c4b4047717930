# SPDX-License-Identifier: Apache-2.0
"""The flame graph renderer: a Profile laid out (``layout``), coloured (``palette``) and written
as SVG (``svg``). See :mod:`flamegraph` for the public API."""
from __future__ import annotations

from typing import IO, Optional

from flamegraph.layout import layout, paused_gc
from flamegraph.options import FlameGraphOptions
from flamegraph.palette import Palette
from flamegraph.svg import DrawFrame, format_count, write_graph
from profkit.model import Frame, Profile

__all__ = ["EMPTY_MESSAGE", "render_svg"]

#: Shown instead of a graph when the profile has no weight at all (flamegraph.pl's wording).
EMPTY_MESSAGE = "No stack counts found"


def render_svg(profile: Profile, options: Optional[FlameGraphOptions], out: IO[str]) -> str:
    """Write ``profile`` as one self-contained SVG flame graph (or icicle graph) to ``out``.

    ``options`` None means the defaults. Returns the id prefix of the graph. An empty
    profile gives a valid SVG that says "No stack counts found"; telling the user (and
    choosing an exit code) is the caller's job.
    """
    o = options if options is not None else FlameGraphOptions()
    with paused_gc():
        return _render(profile, o, out)


def _render(profile: Profile, o: FlameGraphOptions, out: IO[str]) -> str:
    total = profile.total
    lay = layout(profile, min_weight=o.min_weight(total), reverse=o.reverse)
    unit = o.countname or profile.unit
    palette = Palette(o.colors)
    frames = profile.frames
    draw = []
    for box in lay.boxes:
        frame = frames[box.fid] if box.fid is not None else Frame("all")
        draw.append(DrawFrame(box.depth, box.x, box.w, frame.text, palette.color(frame),
                              f"{format_count(box.w)} {unit}, {100.0 * box.w / lay.total:.2f}%"))
    return write_graph(out, draw, total=lay.total, max_depth=lay.max_depth, options=o,
                       title=o.resolved_title(), subtitle=o.subtitle,
                       message=None if draw else EMPTY_MESSAGE)

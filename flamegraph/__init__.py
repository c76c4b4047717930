# SPDX-License-Identifier: Apache-2.0
"""Flame graphs from profkit Profiles: interactive SVG, icicle, reverse, differential.

Public API (the renderers see only :class:`profkit.model.Profile`)::

    render_svg(profile, options, out)            # one self-contained SVG written to a text stream
    render_diff(before, after, options, out, *, normalize=True)
    embed_html(svgs, title)                      # several SVGs on one offline HTML page

``options`` is a :class:`flamegraph.options.FlameGraphOptions`. Both renderers return the
graph's id prefix (every id in the SVG starts with it).

The SVG is interactive when opened on its own or inline in an HTML page: hovering a frame
shows its name, weight and share; clicking zooms into it (Reset Zoom, or Escape, zooms out);
Search or Ctrl-F (while the pointer is over the graph) highlights the frames whose names match
a regular expression and shows their share of the total, counting nested matches once.
Frames narrower than ``minwidth`` are not drawn (their weight stays in their parents), so
search only sees the frames that are drawn.
"""
from __future__ import annotations

from typing import IO, Optional

from flamegraph.differential import render_diff
from flamegraph.embed import embed_html
from flamegraph.layout import layout, paused_gc
from flamegraph.options import FlameGraphOptions
from flamegraph.palette import Palette
from flamegraph.svg import DrawFrame, format_count, write_graph
from profkit.model import Frame, Profile

__all__ = ["FlameGraphOptions", "embed_html", "render_diff", "render_svg"]

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

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

import importlib
from typing import Any

__all__ = ["FlameGraphOptions", "embed_html", "render_diff", "render_svg"]

# Imported on first use: `from flamegraph.options import FlameGraphOptions` (every CLI command that
# takes graph flags) must not pull in the renderers, nor jinja2 (only embed_html uses it).
_WHERE = {"FlameGraphOptions": "flamegraph.options", "embed_html": "flamegraph.embed",
          "render_diff": "flamegraph.differential", "render_svg": "flamegraph.render"}


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'flamegraph' has no attribute {name!r}")
    return getattr(importlib.import_module(where), name)

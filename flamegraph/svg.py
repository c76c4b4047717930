# SPDX-License-Identifier: Apache-2.0
"""Frames → one self-contained SVG document.

Each frame is ``<g p:x=… p:w=…><title>…</title><rect …/><text …>…</text></g>``: the title
is the tooltip (name, then a line of figures), the rect is drawn in pixels, the text is the
name clipped to fit (left out when nothing fits), and ``p:x``/``p:w`` keep the exact
position and width in weight units so that zooming stays precise. The interactive code and
its style sheet are package data (``assets/``), inlined as CDATA; no frame data is ever put
into the script. Every id starts with the graph's prefix, so graphs can share a page.
"""
from __future__ import annotations

import functools
import hashlib
from importlib import resources
from typing import IO, NamedTuple, Optional, Sequence

from flamegraph.options import XPAD, FlameGraphOptions
from flamegraph.xmlwriter import XmlWriter, clean, px as _px
from profkit.model import Number

__all__ = ["DrawFrame", "FONT_WIDTH", "MAX_NAME", "clip_label", "format_count", "write_graph"]

SVG_NS = "http://www.w3.org/2000/svg"
#: Namespace of the ``p:`` attributes (per-frame weights, graph settings for the script).
PROFKIT_NS = "urn:profkit:flamegraph"
#: Average glyph width as a share of the font size, for clipping labels without measuring.
FONT_WIDTH = 0.59
#: Longer names are cut (with a note of how much) so that one hostile frame cannot bloat the file.
MAX_NAME = 4000


class DrawFrame(NamedTuple):
    """One frame as the SVG writer needs it; ``x`` and ``w`` in weight units."""

    depth: int
    x: Number
    w: Number
    name: str     #: full display name
    fill: str     #: ``#rrggbb``
    info: str     #: the tooltip's line of figures, e.g. ``1,234 samples, 5.67%``


@functools.lru_cache(maxsize=None)
def asset(name: str) -> str:
    """The text of a file in ``flamegraph/assets`` (package data)."""
    return resources.files("flamegraph").joinpath("assets", name).read_text(encoding="utf-8")


def display_name(name: str) -> str:
    """The name as shown: XML-safe, and cut if absurdly long."""
    name = clean(name)
    if len(name) > MAX_NAME:
        name = f"{name[:MAX_NAME]}… [{len(name) - MAX_NAME} more characters]"
    return name


def format_count(w: Number) -> str:
    """A weight for people: ``1,234`` or ``1,234.5``."""
    if isinstance(w, int) or float(w).is_integer():
        return f"{int(w):,}"
    return f"{w:,.2f}".rstrip("0").rstrip(".")


def _weight_attr(w: Number) -> str:
    if isinstance(w, int):
        return str(w)
    if w.is_integer() and abs(w) < 1e15:
        return str(int(w))
    return repr(w)


def clip_label(name: str, width_px: float, font_size: float) -> str:
    """``name`` as it fits in ``width_px``: whole, cut with ``..``, or empty if under 3 characters fit."""
    chars = int((width_px - 3) / (font_size * FONT_WIDTH))
    if chars >= len(name):
        return name
    if chars < 3:
        return ""
    return name[: chars - 2] + ".."


def _prefix(o: FlameGraphOptions, title: str, subtitle: str, total: Number, frames_text: str) -> str:
    """The graph's id prefix: a hash of what it shows, so that two graphs on a page never clash
    and the same graph always gets the same ids (byte-stable output)."""
    h = hashlib.blake2b(digest_size=6)
    for part in (repr(o), title, subtitle, str(total), frames_text):
        h.update(part.encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return "fg" + h.hexdigest()


def write_graph(out: IO[str], frames: Sequence[DrawFrame], *, total: Number, max_depth: int,
                options: FlameGraphOptions, title: str, subtitle: str = "",
                message: Optional[str] = None) -> str:
    """Write the SVG document to ``out`` and return its id prefix.

    ``message`` replaces the graph with one centred line (used when there is nothing to draw).
    """
    o = options
    W, fh, fs = o.width, o.height, o.font_size
    inner = W - 2 * XPAD
    ypad1 = fs * 3 + (fs * 2 if subtitle else 0)
    ypad2 = fs * 2 + 10
    H = (max_depth + 1) * fh + ypad1 + ypad2 if frames else ypad1 + ypad2 + fh * 4
    text_dy = round((fh - 1) / 2 + fs * 0.35, 1)

    # The frames first: the id prefix is derived from them when not given.
    body = XmlWriter(o.pretty, inside=("svg", "g"))
    scale = inner / total if total else 0.0
    for f in frames:
        y = (ypad1 + f.depth * fh) if o.inverted else (H - ypad2 - (f.depth + 1) * fh)
        x_px = XPAD + f.x * scale
        w_px = f.w * scale
        name = display_name(f.name)
        body.frame(_weight_attr(f.x), _weight_attr(f.w), (name, f.info), (x_px, y, w_px, fh - 1, f.fill),
                   clip_label(name, w_px, fs), (x_px + 3, y + text_dy))
    frames_text = body.getvalue()

    prefix = o.name_prefix or _prefix(o, title, subtitle, total, frames_text)

    w = XmlWriter(o.pretty)
    w.raw('<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n')
    w.open("svg", (
        ("xmlns", SVG_NS), ("xmlns:p", PROFKIT_NS), ("version", "1.1"), ("id", prefix), ("class", "pkfg"),
        ("width", W), ("height", H), ("viewBox", f"0 0 {W} {H}"),
        ("font-family", o.font_type), ("font-size", fs),
        ("p:total", _weight_attr(total)), ("p:inv", "1" if o.inverted else "0"),
        ("p:xpad", XPAD), ("p:ty", _px(text_dy)),
    ))
    w.open("defs")
    w.open("linearGradient", (("id", f"{prefix}-bg"), ("x1", 0), ("y1", 0), ("x2", 0), ("y2", 1)))
    w.leaf("stop", (("offset", "5%"), ("stop-color", "#eeeeee")))
    w.leaf("stop", (("offset", "95%"), ("stop-color", "#eeeeb0")))
    w.close()
    w.close()
    if o.interactive:
        w.cdata("style", (("type", "text/css"),), asset("flamegraph.css"))
    w.leaf("rect", (("class", "bg"), ("x", 0), ("y", 0), ("width", W), ("height", H), ("fill", f"url(#{prefix}-bg)")))
    w.leaf("text", (("id", f"{prefix}-title"), ("class", "title"), ("x", _px(W / 2)), ("y", fs * 2),
                    ("text-anchor", "middle"), ("font-size", fs + 5)), title)
    if subtitle:
        w.leaf("text", (("id", f"{prefix}-subtitle"), ("class", "subtitle"), ("x", _px(W / 2)), ("y", fs * 4),
                        ("text-anchor", "middle"), ("fill", "#808080")), subtitle)
    if message is not None:
        w.leaf("text", (("class", "message"), ("x", _px(W / 2)), ("y", ypad1 + fh * 2), ("text-anchor", "middle")),
               message)
    if o.interactive:
        bottom = H - ypad2 / 2
        w.leaf("text", (("id", f"{prefix}-unzoom"), ("class", "btn unzoom"), ("x", XPAD), ("y", fs * 2)), "Reset Zoom")
        w.leaf("text", (("id", f"{prefix}-search"), ("class", "btn search"), ("x", W - XPAD), ("y", fs * 2),
                        ("text-anchor", "end")), "Search")
        w.leaf("text", (("id", f"{prefix}-clear"), ("class", "btn clear"), ("x", _px(W - XPAD - fs * 5)),
                        ("y", fs * 2), ("text-anchor", "end")), "Clear search")
        w.leaf("text", (("id", f"{prefix}-details"), ("class", "details"), ("x", XPAD), ("y", _px(bottom))), " ")
        w.leaf("text", (("id", f"{prefix}-matched"), ("class", "matched"), ("x", W - XPAD), ("y", _px(bottom)),
                        ("text-anchor", "end")), " ")
    w.open("g", (("id", f"{prefix}-frames"), ("class", "frames")))
    head = w.getvalue()
    w.parts = []
    w.close()
    if o.interactive:
        w.cdata("script", (("type", "text/ecmascript"),), asset("flamegraph.js"))
    w.close()
    out.write(head)
    out.write(frames_text)
    out.write(w.getvalue())
    return prefix

# SPDX-License-Identifier: Apache-2.0
"""The flame graph's options: one frozen dataclass whose fields carry their defaults and help.

The CLI turns every field into a flag (``font_size`` → ``--font-size``) through
:func:`profkit.options.describe`; the library never sees click objects.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Optional, Tuple, Union

from profkit.errors import UsageError
from profkit.options import option

__all__ = ["FlameGraphOptions", "PALETTES", "parse_minwidth"]

#: Colour schemes, as FlameGraph's ``--colors`` names them.
PALETTES = ("hot", "mem", "io", "python", "java", "wakeup")

_PREFIX = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}\Z")
_MINWIDTH = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(%?)\s*\Z")


def parse_minwidth(text: Union[str, int, float]) -> Tuple[float, bool]:
    """``"0.1"`` → ``(0.1, False)`` (pixels); ``"0.5%"`` → ``(0.5, True)`` (percent of the total).

    Raises :class:`~profkit.errors.UsageError` for anything else (negative, not a number,
    a percentage over 100).
    """
    if isinstance(text, bool):
        raise UsageError(f"invalid minwidth {text!r}", hint="give pixels like 0.1 or a percentage like 0.5%")
    if isinstance(text, (int, float)):
        value, percent = float(text), False
    else:
        m = _MINWIDTH.match(str(text))
        if not m:
            raise UsageError(f"invalid minwidth {text!r}: expected pixels (0.1) or a percentage (0.5%)",
                             hint="frames narrower than this are left out, e.g. --minwidth 0.1 or --minwidth 0.5%")
        value, percent = float(m.group(1)), m.group(2) == "%"
    if not math.isfinite(value) or value < 0 or (percent and value > 100):
        raise UsageError(f"invalid minwidth {text!r}: must be between 0 and {'100%' if percent else 'the width'}")
    return value, percent


@dataclass(frozen=True)
class FlameGraphOptions:
    """How to draw a flame graph. Every field has a default; invalid values raise UsageError."""

    title: Optional[str] = option(None, "Title at the top (default: 'Flame Graph', or 'Icicle Graph' with --inverted).")
    subtitle: str = option("", "Second line under the title (e.g. the command or the date).")
    width: int = option(1200, "Width of the image in pixels.")
    height: int = option(16, "Height of one frame in pixels.")
    minwidth: str = option("0.1", "Leave out frames narrower than this: pixels (0.1) or a share of the total (0.5%). "
                                  "Their weight still counts in their parents.")
    inverted: bool = option(False, "Icicle graph: the root at the top, stacks growing downwards.")
    reverse: bool = option(False, "Merge stacks from the leaf: reverse each stack before the layout "
                                  "(shows who calls the hottest functions).")
    colors: str = option("hot", "Colour scheme; a function keeps its colour across graphs.", choices=PALETTES)
    countname: Optional[str] = option(None, "What the weights count, shown in tooltips (default: the profile's unit).")
    font_size: int = option(12, "Font size in pixels.")
    font_type: str = option("Verdana", "Font family.")
    interactive: bool = option(True, "Include the JavaScript for hover, zoom and search "
                                     "(off: a static image, e.g. for golden files).",
                               flag="--interactive/--static")
    pretty: bool = option(False, "Indent the SVG one element per line (larger; for readable diffs).")
    name_prefix: str = option("", "Prefix for every id in the SVG, so that several graphs can share one HTML page "
                                  "(default: derived from the content).")

    def __post_init__(self) -> None:
        parse_minwidth(self.minwidth)
        if self.colors not in PALETTES:
            raise UsageError(f"unknown colour scheme {self.colors!r}", hint="one of " + ", ".join(PALETTES))
        if not isinstance(self.width, int) or not 100 <= self.width <= 100_000:
            raise UsageError(f"invalid width {self.width!r}: expected 100 to 100000 pixels")
        if not isinstance(self.height, int) or not 4 <= self.height <= 200:
            raise UsageError(f"invalid frame height {self.height!r}: expected 4 to 200 pixels")
        if not isinstance(self.font_size, int) or not 4 <= self.font_size <= 100:
            raise UsageError(f"invalid font size {self.font_size!r}: expected 4 to 100 pixels")
        if self.name_prefix and not _PREFIX.match(self.name_prefix):
            raise UsageError(f"invalid id prefix {self.name_prefix!r}",
                             hint="a letter followed by up to 63 letters, digits, '-' or '_'")

    def resolved_title(self, default: str = "Flame Graph") -> str:
        """The title to show: ``title`` if set, else ``default`` ("Flame Graph" reads "Icicle Graph" when inverted)."""
        if self.title is not None:
            return self.title
        return default.replace("Flame Graph", "Icicle Graph") if self.inverted else default

    def min_weight(self, total: float) -> float:
        """The narrowest frame drawn, in weight units, for a graph whose root weighs ``total``."""
        value, percent = parse_minwidth(self.minwidth)
        if percent:
            return total * value / 100.0
        return total * value / max(1, self.width - 2 * XPAD)


#: Horizontal padding on each side of the frames, in pixels.
XPAD = 10

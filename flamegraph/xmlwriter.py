# SPDX-License-Identifier: Apache-2.0
"""An escaping XML writer: the only way text reaches the SVG.

Frame names come from the profiled program and are untrusted. Every attribute value and
text node goes through :func:`escape_text` / :func:`escape_attr`, which also replace what
XML 1.0 cannot carry at all (control characters other than tab, lone surrogates left by
``surrogateescape`` decoding, U+FFFE/U+FFFF) and bidi controls (U+202E …) with U+FFFD. Script and style assets are
written as CDATA sections, never with data spliced in.
"""
from __future__ import annotations

import re
from typing import Iterable, List, Optional, Sequence, Tuple, Union

from profkit.textsafe import BIDI_CONTROLS

__all__ = ["XmlWriter", "clean", "escape_attr", "escape_text", "px"]

Attrs = Iterable[Tuple[str, Union[str, int, float]]]

# What XML 1.0 cannot hold, plus the bidi controls that would make a name read backwards.
_INVALID = re.compile("[\x00-\x08\x0a-\x1f\ud800-\udfff\ufffe\uffff" + BIDI_CONTROLS + "]")


def clean(text: str) -> str:
    """``text`` with every character XML 1.0 cannot hold replaced by U+FFFD (tab is kept)."""
    return _INVALID.sub("\ufffd", text)


def escape_text(text: str) -> str:
    """``text`` made safe for an XML text node (``]]>`` cannot survive: ``>`` is escaped)."""
    return _INVALID.sub("\ufffd", text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def escape_attr(text: str) -> str:
    """``text`` made safe for a double-quoted XML attribute (tabs kept through a reference)."""
    return (escape_text(text).replace('"', "&quot;").replace("\t", "&#9;"))


_NUMBER = re.compile(r"-?\d+(?:\.\d*)?(?:e[-+]?\d+)?\Z")


def px(v: float) -> str:
    """A pixel coordinate with at most one decimal: ``12``, ``12.5``."""
    s = "%.1f" % v
    return s[:-2] if s.endswith(".0") else s


def _attrs(attrs: Attrs) -> str:
    out = []
    for name, value in attrs:
        if isinstance(value, str):
            value = escape_attr(value)
        out.append(f' {name}="{value}"')
    return "".join(out)


class XmlWriter:
    """Builds an XML document as a list of strings.

    Compact mode puts each element down to ``break_depth`` levels on its own line and no
    whitespace elsewhere; ``pretty`` mode indents every element on its own line.
    """

    def __init__(self, pretty: bool = False, break_depth: int = 2, inside: Sequence[str] = ()):
        self.parts: List[str] = []
        self.pretty = pretty
        self.break_depth = break_depth
        #: Open elements; ``inside`` names those a fragment will be spliced into.
        self._stack: List[str] = list(inside)

    def _lead(self) -> None:
        if self.pretty:
            self.parts.append("  " * len(self._stack))

    def _tail(self, depth: int) -> None:
        if self.pretty or depth <= self.break_depth:
            self.parts.append("\n")

    def raw(self, text: str) -> None:
        """Append trusted markup (the XML declaration) as is."""
        self.parts.append(text)

    def open(self, tag: str, attrs: Attrs = ()) -> None:
        """Start an element that will have children."""
        self._lead()
        self.parts.append(f"<{tag}{_attrs(attrs)}>")
        self._stack.append(tag)
        if self.pretty or len(self._stack) - 1 < self.break_depth:
            self.parts.append("\n")

    def close(self) -> None:
        """End the innermost open element."""
        tag = self._stack.pop()
        self._lead()
        self.parts.append(f"</{tag}>")
        self._tail(len(self._stack))

    def leaf(self, tag: str, attrs: Attrs = (), text: Optional[str] = None) -> None:
        """An element with at most a text node inside."""
        self._lead()
        if text is None:
            self.parts.append(f"<{tag}{_attrs(attrs)}/>")
        else:
            self.parts.append(f"<{tag}{_attrs(attrs)}>{escape_text(text)}</{tag}>")
        self._tail(len(self._stack))

    def lines(self, tag: str, attrs: Attrs, lines: Sequence[str]) -> None:
        """An element holding lines of text: each escaped (so none can hold a newline), joined by newlines."""
        self._lead()
        text = "\n".join(map(escape_text, lines))
        self.parts.append(f"<{tag}{_attrs(attrs)}>{text}</{tag}>")
        self._tail(len(self._stack))

    def frame(self, x: str, w: str, title: Sequence[str], rect: Tuple[float, float, float, int, str],
              label: str = "", text_at: Tuple[float, float] = (0.0, 0.0)) -> None:
        """One flame graph frame: ``<g p:x p:w><title/><rect/><text/></g>``, on the fast path.

        ``x`` and ``w`` are weights already formatted as numbers; ``rect`` is (x, y, width,
        height, fill) in pixels; ``label`` (left out when empty) is drawn at ``text_at``. Every
        string is escaped here, numbers are formatted here, like :meth:`leaf` does.
        """
        if not _NUMBER.match(x) or not _NUMBER.match(w):
            raise ValueError(f"frame position {x!r}/{w!r} is not a number")
        rx, ry, rw, rh, fill = rect
        title_text = "\n".join(map(escape_text, title))
        rect_el = (f'<rect x="{px(rx)}" y="{px(ry)}" width="{px(rw)}" height="{px(rh)}" '
                   f'fill="{escape_attr(fill)}"/>')
        text_el = (f'<text x="{px(text_at[0])}" y="{px(text_at[1])}">{escape_text(label)}</text>'
                   if label else "")
        if self.pretty:
            pad = "  " * len(self._stack)
            self.parts.append(f'{pad}<g p:x="{x}" p:w="{w}">\n{pad}  <title>{title_text}</title>\n{pad}  {rect_el}\n'
                              + (f"{pad}  {text_el}\n" if text_el else "") + f"{pad}</g>\n")
        else:
            self.parts.append(f'<g p:x="{x}" p:w="{w}"><title>{title_text}</title>{rect_el}{text_el}</g>\n')

    def cdata(self, tag: str, attrs: Attrs, text: str) -> None:
        """An element whose content is a CDATA section (a script or a style sheet from our assets)."""
        # Our own assets never contain "]]>", but split it anyway rather than end the section.
        body = text.replace("]]>", "]]]]><![CDATA[>")
        self._lead()
        self.parts.append(f"<{tag}{_attrs(attrs)}><![CDATA[\n{body}\n]]></{tag}>")
        self._tail(len(self._stack))

    def getvalue(self) -> str:
        """The document so far."""
        return "".join(self.parts)

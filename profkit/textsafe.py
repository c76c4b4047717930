# SPDX-License-Identifier: Apache-2.0
"""Untrusted text (frame, thread, process and label names) made safe for where it is shown.

Frame names come from the profiled program and from capture files that may come from anyone
(a pull request's artifact): they can hold terminal escape sequences, bidi overrides that make
text read backwards, bytes that are not UTF-8, and Markdown that would mention people or link
issues. One helper per destination, used everywhere that destination is written:

* :func:`terminal_text`: control characters (ESC, OSC, BEL, C1, DEL), bidi controls and
  undecodable bytes shown as visible escapes (``\\x1b``, ``\\u202e``, ``\\xff``), so nothing a
  name holds acts on the terminal;
* :func:`display_text`: the same for SVG/HTML titles and labels (before XML escaping);
* :func:`utf8_text`: valid UTF-8 for strict writers (JSON, protobuf strings): undecodable bytes
  (kept as surrogate escapes on reading, see :mod:`profkit.inputs`) become U+FFFD.

Markdown has its own rules in :mod:`profkit.markdown`. A leaf module (standard library only).

The undecodable-bytes policy, across readers and writers: inputs are decoded as UTF-8 with
``surrogateescape`` (no byte is lost, folded output round-trips byte for byte); outputs meant
for people or strict parsers show each such byte as the visible replacement above.
"""
from __future__ import annotations

import re

__all__ = ["BIDI_CONTROLS", "display_text", "has_unsafe", "terminal_text", "utf8_text"]

#: Unicode bidirectional formatting characters (embeddings, overrides, isolates, marks).
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# C0 controls but tab, DEL, C1 controls, bidi controls, line/paragraph separators, lone surrogates
_UNSAFE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029" + BIDI_CONTROLS + "\ud800-\udfff]")
_UNSAFE_KEEP_NL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029" + BIDI_CONTROLS + "\ud800-\udfff]")


def _escape(m: "re.Match[str]") -> str:
    c = m.group(0)
    n = ord(c)
    if 0xDC80 <= n <= 0xDCFF:  # a byte that was not UTF-8, kept by surrogateescape
        return f"\\x{n - 0xDC00:02x}"
    if n < 0x100:
        return f"\\x{n:02x}"
    return f"\\u{n:04x}"


def terminal_text(text: str, *, keep_newlines: bool = False) -> str:
    """``text`` with every control, bidi and undecodable character shown as a visible escape."""
    rx = _UNSAFE_KEEP_NL if keep_newlines else _UNSAFE
    return rx.sub(_escape, text) if rx.search(text) else text


def display_text(text: str) -> str:
    """A name for an SVG/HTML title or label: the same visible escapes as :func:`terminal_text`."""
    return _UNSAFE.sub(_escape, text) if _UNSAFE.search(text) else text


def utf8_text(text: str) -> str:
    """``text`` encodable as strict UTF-8: lone surrogates (undecodable input bytes) become U+FFFD."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace") if _encodable(text) \
            else re.sub("[\ud800-\udfff]", "\ufffd", text)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8", "surrogateescape")
        return True
    except UnicodeEncodeError:
        return False


def has_unsafe(text: str) -> bool:
    """Whether :func:`terminal_text` would change ``text``."""
    return _UNSAFE.search(text) is not None

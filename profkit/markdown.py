# SPDX-License-Identifier: Apache-2.0
"""Untrusted text made inert in GitHub Markdown (``summary.md``, ``comment.md``, ``--markdown``).

A frame named ``@octocat`` or ``#1234`` would notify a user or link an issue when the comment
is posted; ``:rocket:`` would become an emoji; ``[x](javascript:…)`` a link; ``|`` would break
a table; ``<script>`` raw HTML; U+202E would make the text read backwards. :func:`markdown_escape`
neutralises all of them:

* control characters and undecodable bytes → U+FFFD; bidi controls → a visible ``\\u202e``;
* HTML metacharacters → entities (no raw HTML reaches the page);
* Markdown punctuation → backslash-escaped (no links, emphasis, code spans, cell breaks);
* ``@name``, ``#123``, ``GH-123`` and ``:word:`` → a WORD JOINER (U+2060, invisible) after the
  ``@``/``#``/``-``/first ``:``, which GitHub's mention, reference and emoji rules do not match
  across, while the text reads the same;
* names longer than ``limit`` characters are cut (``…`` and how much was cut).

:func:`cap_comment` keeps a whole comment under GitHub's 65,536-character limit. A leaf module.
"""
from __future__ import annotations

import re
from typing import Optional

from profkit.textsafe import BIDI_CONTROLS

__all__ = ["GITHUB_COMMENT_LIMIT", "NAME_LIMIT", "cap_comment", "markdown_escape"]

#: GitHub rejects comments longer than this many characters.
GITHUB_COMMENT_LIMIT = 65536
#: The longest name shown in a Markdown cell.
NAME_LIMIT = 300
JOINER = "\u2060"

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")
_BIDI = re.compile(f"[{BIDI_CONTROLS}]")
# Inline Markdown that could act inside a table cell: escapes, code spans, emphasis, links and
# images (brackets), cell breaks, strikethrough. Line-start syntax (#, -, 1.) cannot occur mid-cell.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")
_MENTION = re.compile(r"@(?=[A-Za-z0-9])")
_REFERENCE = re.compile(r"#(?=[0-9])")
_GH_REF = re.compile(r"(?i)\bGH-(?=[0-9])")
_EMOJI = re.compile(r":(?=[A-Za-z0-9_+\-]+:)")


def markdown_escape(text: str, limit: Optional[int] = NAME_LIMIT) -> str:
    """Make untrusted text inert in GitHub Markdown, table cells included (see the module docstring)."""
    if limit is not None and len(text) > limit:
        text = f"{text[:limit]}… [{len(text) - limit} more characters]"
    text = _CONTROL.sub("\ufffd", text)
    text = _BIDI.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    text = _MENTION.sub("@" + JOINER, text)
    text = _REFERENCE.sub("#" + JOINER, text)
    text = _GH_REF.sub(lambda m: m.group(0) + JOINER, text)
    return _EMOJI.sub(":" + JOINER, text)


def cap_comment(text: str, limit: int = GITHUB_COMMENT_LIMIT) -> str:
    """``text`` cut at a line boundary to fit ``limit`` characters, with a last line saying what
    was cut (GitHub refuses longer comments)."""
    if len(text) <= limit:
        return text
    note = "\n\n_profkit: this comment was cut to fit GitHub's 65,536-character limit: {n} characters " \
           "({lines} lines) are left out; compare.json and diff.svg have everything._\n"
    room = limit - len(note.format(n=len(text), lines=text.count("\n")))
    cut = text.rfind("\n", 0, max(0, room))
    kept = text[: cut if cut > 0 else max(0, room)]
    rest = text[len(kept):]
    return kept + note.format(n=len(rest), lines=rest.count("\n"))

# SPDX-License-Identifier: Apache-2.0
"""Folded ("collapsed") stacks, read and written as FlameGraph's flamegraph.pl does.

One line per stack: frames root → leaf joined by ``;``, whitespace, a count. The count is
the *last* number on the line, so frame names may contain spaces. Counts are integers or
decimals (``12``, ``12.5``, ``3.``), never negative or in exponent form. A line with two
trailing numbers is differential input (``stack before after``). Blank lines are ignored;
any other line that does not parse is counted as malformed. Frame kinds travel as the
``_[k]`` ``_[j]`` ``_[i]`` ``_[w]`` (and async-profiler's ``_[0]`` ``_[1]``) annotations.

Reading and writing stream line by line. This module imports only the standard library
and profkit's leaf modules.
"""
from __future__ import annotations

import re
from itertools import repeat
from operator import contains
from typing import IO, Iterable, List, Optional, Tuple

from profkit.errors import Diagnostics
from profkit.frames import strip_folded_lines
from profkit.model import Number, Profile, ProfileMeta

__all__ = ["folded_lines", "format_weight", "parse_count", "parse_line", "read_folded", "write_folded"]

_DECIMAL = re.compile(r"\d+\.\d*\Z")


def parse_count(text: str) -> Optional[Number]:
    """``"12"`` → 12, ``"12.5"`` → 12.5, ``"3."`` → 3.0; anything else → None."""
    if text.isdigit() and text.isascii():
        return int(text)
    if _DECIMAL.match(text) and text.isascii():
        return float(text)
    return None


def parse_line(line: str) -> Optional[Tuple[str, Number, Optional[Number]]]:
    """Split one folded line into ``(stack, count, after)``; ``after`` is None unless the
    line has two counts (then ``count`` is *before*). None if the line does not parse."""
    parts = line.rsplit(None, 1)
    if len(parts) != 2:
        return None
    stack, count = parts
    n = parse_count(count)
    if n is None:
        return None
    parts = stack.rsplit(None, 1)
    if len(parts) == 2:
        m = parse_count(parts[1])
        if m is not None and parts[0]:
            return parts[0], m, n
    return stack, n, None


def folded_lines(head: bytes) -> Optional[List[bytes]]:
    """The non-blank lines of ``head`` (a cut last line dropped) when at least 90% of them
    parse as folded stacks, else None: the common part of the folded formats' sniffers."""
    lines = [l for l in head.splitlines()[:50] if l.strip()]
    if len(head) >= 65536:
        lines = lines[:-1]  # the last line may be cut
    if not lines:
        return None
    good = sum(1 for l in lines if parse_line(l.decode("utf-8", "replace")) is not None)
    return lines if good >= max(1, int(len(lines) * 0.9)) else None


def read_folded(lines: Iterable[str], diag: Optional[Diagnostics] = None, *,
                unit: str = "samples", meta: Optional[ProfileMeta] = None, keyed: bool = False) -> Profile:
    """Read folded text into a :class:`Profile`. Differential lines count their *after* column,
    as flamegraph.pl sizes them.

    With ``keyed`` every frame is named by its function key as it is read (the same profile as
    ``read_folded(…).keyed()``, without ever holding the frames that differ by line number only:
    this is how profiles are read to be compared)."""
    profile = Profile(unit, meta, keyed=keyed)
    add = profile.add_tokens
    key = strip_folded_lines if keyed else str  # names are normalised once per frame, at the end
    for lineno, line in enumerate(lines, 1):
        # The common case (one integer count) stays on a short path.
        stack, _, count = line.rstrip().rpartition(" ")
        if stack and count.isdigit() and count.isascii() and not stack[-1:].isdigit():
            add(key(stack).split(";"), int(count))
            continue
        parsed = parse_line(line)
        if parsed is None:
            if line.strip() and diag is not None:
                diag.malformed(lineno, line)
            continue
        stack, n, after = parsed
        add(key(stack).split(";"), n if after is None else after)
    return profile.normalise_keyed() if keyed else profile


def format_weight(w: Number) -> str:
    """A weight as folded text: integers as such, floats without exponent or needless zeros."""
    if isinstance(w, int):
        return str(w)
    if w == int(w) and abs(w) < 1e15:
        return str(int(w))
    text = repr(w)
    if "e" in text or "E" in text:
        text = f"{w:.12f}".rstrip("0").rstrip(".")
    return text


def write_folded(profile: Profile, out: IO[str], *, sort: bool = True) -> int:
    """Write a profile as folded text, sorted by stack as text (as FlameGraph's stackcollapse
    tools sort them) unless ``sort=False``.

    Returns the number of lines written. Stacks whose weight is zero are left out.
    """
    # A frame id is its folded token, so a stack of ids joins into the folded line itself.
    if not sort:
        lines = [";".join(key) + " " + format_weight(w) + "\n" for key, w in profile.items() if w]
        out.writelines(lines)
        return len(lines)
    # The stackcollapse tools sort the stacks, then append the counts. Sorting whole lines
    # differs where one stack is a prefix of another that goes on with a character below the
    # space, or with a space and one below the digits ("a 5" sorts after "a\tb 3" and
    # "a -b 3"). Joined by a NUL, which sorts below everything, lines sort as their stacks do
    # (and comparing strings is several times cheaper than comparing tuples). A name that
    # holds a NUL itself would break that, so then the stacks are sorted on their own.
    if any(map(contains, profile.frames, repeat("\0"))):
        pairs = sorted((";".join(key), w) for key, w in profile.items() if w)
        out.writelines(stack + " " + format_weight(w) + "\n" for stack, w in pairs)
        return len(pairs)
    lines = [";".join(key) + "\0" + format_weight(w) + "\n" for key, w in profile.items() if w]
    lines.sort()
    out.writelines(line.replace("\0", " ") for line in lines)
    return len(lines)

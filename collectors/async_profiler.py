# SPDX-License-Identifier: Apache-2.0
"""``async-profiler``: its ``collapsed`` output (``shared/FORMATS.md`` §3), read line by line.

Each line is ``frame;…;leaf count``, root first; the count is samples, or with ``--total`` the
summed metric (bytes for ``alloc``, nanoseconds for the time-based events and ``lock``).
Java frames keep async-profiler's default slash class names (``java/lang/Thread.run``); with
``ann`` they carry ``_[j]`` (JIT), ``_[i]`` (inlined), ``_[0]`` (interpreted) and ``_[1]``
(C1) suffixes, and kernel frames always carry ``_[k]``: those become frame kinds. With
``threads`` the root frame is ``[NAME tid=N]`` or ``[tid=N]``: kind THREAD.

In ``alloc`` and ``lock`` profiles the *leaf* frame is a class (the allocated type, the lock's
class), and its ``_[i]``/``_[k]`` mean *inside*/*outside TLAB*, not inlined/kernel: those
leaves become :attr:`FrameKind.ALLOC_INSIDE_TLAB`/:attr:`FrameKind.ALLOC_OUTSIDE_TLAB`, whose
folded suffixes are the same ``_[i]``/``_[k]``, so the text round-trips unchanged. A
collapsed file does not say which event it holds: the ``event`` option does.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Dict, Iterable, Optional, Union

from profkit.errors import Diagnostics
from profkit.folded import parse_count, parse_line
from profkit.inputs import Source
from profkit.model import Frame, FrameKind, Profile, ProfileMeta

from collectors.base import Collector, Sniff, option

__all__ = ["AsyncProfilerCollector", "AsyncProfilerOptions", "EVENTS", "parse", "parse_collapsed", "unit_of"]

#: The events a collapsed capture may hold (async-profiler ``-e``).
EVENTS = ("cpu", "wall", "alloc", "lock", "itimer")

_THREAD_ROOT = re.compile(r"\[(?:.* )?tid=\d+\]\Z", re.S)
# Markers only async-profiler's JVM output has: its --ann suffixes, its thread roots, and
# slash-form Java frames (java/lang/Thread.run).
_STRONG = re.compile(rb"_\[[ji01]\](?:;| \d+$)|(?:^|;)\[(?:[^;\]]* )?tid=\d+\];"
                     rb"|(?:^|;)(?:java|javax|jdk|sun|com|org|net|io)/[\w$/]+\.[\w$<>]+(?:_\[[ji01]\])?(?:;| \d+$)",
                     re.M)
# Weaker hints: kernel annotations (perf writes them too) and async-profiler's error frames.
_WEAK = re.compile(rb"_\[k\](?:;| \d+$)|\[(?:unknown_Java|not_walkable_Java|stale_jmethodID|unknown|deoptimization)\]"
                   rb"|(?:^|;)java\.lang\.\w", re.M)
_PY_LOCATION = re.compile(rb"\([^();]*\.pyx?(?::\d+)?\)(?:;| \d+$)", re.M)


@dataclass(frozen=True)
class AsyncProfilerOptions:
    """Options for reading async-profiler collapsed output."""

    event: str = option("cpu", "the event the capture was recorded with (async-profiler -e); in alloc and lock "
                               "profiles the leaf's _[i]/_[k] mean inside/outside TLAB", choices=EVENTS)
    total: bool = option(False, "the capture was recorded with --total: counts are bytes (alloc) or "
                                "nanoseconds (the other events), not samples")


def unit_of(options: AsyncProfilerOptions) -> str:
    """The unit of a capture's counts: samples, or with ``--total`` bytes (alloc) / nanoseconds."""
    if not options.total:
        return "samples"
    return "bytes" if options.event == "alloc" else "nanoseconds"


def _leaf_class(token: str) -> Union[str, Frame]:
    """An alloc/lock leaf: ``_[i]``/``_[k]`` are TLAB kinds there."""
    if token.endswith("_[i]"):
        return Frame(token[:-4], FrameKind.ALLOC_INSIDE_TLAB)
    if token.endswith("_[k]"):
        return Frame(token[:-4], FrameKind.ALLOC_OUTSIDE_TLAB)
    return token


def _thread_root(token: str) -> Union[str, Frame]:
    return Frame(token, FrameKind.THREAD) if _THREAD_ROOT.match(token) else token


def parse_collapsed(lines: Iterable[str], options: AsyncProfilerOptions, diag: Diagnostics,
                    meta: Optional[ProfileMeta] = None) -> Profile:
    """Read collapsed lines into a profile in :func:`unit_of` ``options``.

    The count is the last whitespace-separated field; lines without one are counted as malformed.
    """
    profile = Profile(unit_of(options), meta)
    add = profile.add
    class_leaf = options.event in ("alloc", "lock")
    leaves: Dict[str, Union[str, Frame]] = {}
    roots: Dict[str, Union[str, Frame]] = {}
    for lineno, line in enumerate(lines, 1):
        stack, _, count = line.rstrip().rpartition(" ")
        if stack and count.isdigit() and count.isascii():
            n: Union[int, float] = int(count)
        else:
            # async-profiler writes one space and an integer; accept any whitespace and decimals too
            parts = line.rsplit(None, 1)
            n_ = parse_count(parts[1]) if len(parts) == 2 else None
            if n_ is None or not parts[0].strip():
                if line.strip():
                    diag.malformed(lineno, line)
                continue
            stack, n = parts[0], n_
        frames = stack.split(";")
        first = frames[0]
        if first[:1] == "[" and "tid=" in first:
            root = roots.get(first)
            if root is None:
                root = roots[first] = _thread_root(first)
            frames[0] = root  # type: ignore[call-overload]
        if class_leaf:
            leaf = frames[-1]
            if isinstance(leaf, str):
                cls = leaves.get(leaf)
                if cls is None:
                    cls = leaves[leaf] = _leaf_class(leaf)
                frames[-1] = cls  # type: ignore[call-overload]
        add(frames, n)
    return profile


def parse(source: Source, options: AsyncProfilerOptions = AsyncProfilerOptions(),
          diag: Optional[Diagnostics] = None) -> Profile:
    """Read an async-profiler collapsed capture into a Profile."""
    meta = ProfileMeta(collector="async-profiler", extra={"event": options.event, "total": options.total})
    return parse_collapsed(source.text_lines(), options, diag if diag is not None else source.diag, meta)


class AsyncProfilerCollector(Collector):
    """async-profiler ``collapsed`` output (``-o collapsed``), any event, with or without ``--ann``."""

    id = "async-profiler"
    summary = "async-profiler collapsed output (-o collapsed); --event says which event it holds"
    Options = AsyncProfilerOptions

    def sniff(self, head: bytes) -> Sniff:
        """YES for folded text with async-profiler's JVM markers (``_[j]``, ``[tid=N]``,
        ``java/lang/…`` frames); MAYBE with only weak hints (``_[k]``, ``[unknown_Java]``);
        NO otherwise, so that plain folded text and py-spy's raw output are not claimed."""
        lines = [l for l in head.splitlines()[:50] if l.strip()]
        if len(head) >= 65536:
            lines = lines[:-1]  # the last line may be cut
        if not lines:
            return Sniff.NO
        good = sum(1 for l in lines if parse_line(l.decode("utf-8", "replace")) is not None)
        if good < max(1, int(len(lines) * 0.9)):
            return Sniff.NO
        if any(_STRONG.search(l) for l in lines):
            return Sniff.YES
        if any(_PY_LOCATION.search(l) for l in lines):
            return Sniff.NO
        return Sniff.MAYBE if any(_WEAK.search(l) for l in lines) else Sniff.NO

    def parse(self, source: Source, options: AsyncProfilerOptions, diag: Diagnostics) -> Profile:
        """Read a collapsed capture; see :func:`parse`."""
        return parse(source, options, diag)

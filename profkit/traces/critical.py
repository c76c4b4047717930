# SPDX-License-Identifier: Apache-2.0
"""The critical path of a distributed trace, as time per span path (pure; standard library only).

A trace is a set of spans, each with an id, a parent id, a service, an operation and start/end
times in nanoseconds. Its *critical path* is the chain of work the root waited on:

* from the root, walking back from the end: at each step the child that finishes last (before
  the cursor) is on the path, its time is attributed to it (recursively), and the cursor moves
  to its start; time that no child covers is the parent's own;
* every child is clamped to its parent's (clamped) window first: a child that starts before its
  parent or ends after it (clock skew between hosts) counts only inside the parent; a child
  wholly outside it is left out. Both are counted in :attr:`CriticalPath.issues`.

Parent links come from the data and are not trusted: a span whose parent is not in the trace
(a missing parent: lost, sampled out, not yet flushed), spans whose links form a cycle, a span
that is its own parent and a repeated span id are all handled — the span (with its subtree) is
attached under the root, each span is visited once, and what was seen is counted in ``issues``.
A trace without any root (every span has a missing parent) takes its earliest, longest orphan as
root. Nothing recurses: a trace of any depth is walked with an explicit stack.

The result maps each *span path* (root → span, each frame ``service: operation``) to the
nanoseconds of the critical path spent in that span itself; the values add up to the root's
duration.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

__all__ = ["ISSUE_TEXT", "CriticalPath", "Span", "critical_path", "frame_name"]

Path = Tuple[str, ...]

#: What each counter of :attr:`CriticalPath.issues` means, for warnings.
ISSUE_TEXT = {
    "missing_parent": "spans whose parent is not in the trace (attached under the root)",
    "cycle": "spans whose parent links form a cycle (attached under the root)",
    "duplicate_id": "spans with a repeated span id (the first one kept)",
    "clamped": "child spans reaching outside their parent's time (clock skew; clamped to the parent)",
    "outside_parent": "child spans wholly outside their parent's time (clock skew; left out of the critical path)",
    "negative_duration": "spans that end before they start (taken as zero length)",
    "extra_roots": "root spans besides the longest one (attached under it)",
}


def frame_name(service: str, operation: str) -> str:
    """The frame of a span in a span path: ``service: operation``, with the folded-text separator
    ``;`` and line breaks replaced (a span path is a stack of frames)."""
    text = f"{service or '?'}: {operation or '?'}"
    if ";" in text or "\n" in text or "\r" in text:
        text = text.replace(";", ",").replace("\r", " ").replace("\n", " ")
    return text


class Span:
    """One span: ids as given (hex strings), times in ns since the epoch. (A slotted class: a
    fetch holds hundreds of thousands of them.)"""

    __slots__ = ("span_id", "parent_id", "service", "operation", "start", "end")

    def __init__(self, span_id: str, parent_id: str, service: str, operation: str, start: int, end: int):
        self.span_id, self.parent_id, self.service, self.operation = span_id, parent_id, service, operation
        self.start, self.end = start, end

    def __repr__(self) -> str:
        return (f"Span({self.span_id!r}, {self.parent_id!r}, {self.service!r}, {self.operation!r}, "
                f"{self.start}, {self.end})")


@dataclass
class CriticalPath:
    """The critical path of one trace: ``weights`` (span path → ns) add up to ``duration``."""

    root: Optional[Span]
    duration: int = 0
    weights: Dict[Path, int] = field(default_factory=dict)
    issues: Dict[str, int] = field(default_factory=dict)

    @property
    def start(self) -> int:
        return self.root.start if self.root is not None else 0


def _count(issues: Dict[str, int], key: str, n: int = 1) -> None:
    if n:
        issues[key] = issues.get(key, 0) + n


def _index(spans: Iterable[Span], issues: Dict[str, int]) -> Dict[str, Span]:
    by_id: Dict[str, Span] = {}
    for s in spans:
        if s.end < s.start:
            s.end = s.start
            _count(issues, "negative_duration")
        if s.span_id in by_id:
            _count(issues, "duplicate_id")
            continue
        by_id[s.span_id] = s
    return by_id


def _longest_first(spans: Sequence[Span]) -> List[Span]:
    return sorted(spans, key=lambda s: (s.start, -(s.end - s.start), s.span_id))


def _tree(by_id: Dict[str, Span], issues: Dict[str, int]) -> Tuple[Optional[Span], Dict[str, List[Span]]]:
    """The root and every span's children, with orphans, cycles and extra roots under the root."""
    children: Dict[str, List[Span]] = {}
    roots: List[Span] = []
    orphans: List[Span] = []
    for s in by_id.values():
        p = s.parent_id
        if not p:
            roots.append(s)
        elif p == s.span_id:
            orphans.append(s)
            _count(issues, "cycle")
        elif p in by_id:
            children.setdefault(p, []).append(s)
        else:
            orphans.append(s)
            _count(issues, "missing_parent")
    if roots:
        ordered = _longest_first(roots)
        root = min(ordered, key=lambda s: (-(s.end - s.start), s.start, s.span_id))
        _count(issues, "extra_roots", len(roots) - 1)
        detached = [s for s in ordered if s is not root]
    elif orphans:
        root = min(_longest_first(orphans), key=lambda s: (-(s.end - s.start), s.start, s.span_id))
        detached = []
    else:
        # Every span has a parent in the trace: the links are one big cycle. Break it at the
        # longest span.
        if not by_id:
            return None, children
        root = min(_longest_first(list(by_id.values())), key=lambda s: (-(s.end - s.start), s.start, s.span_id))
        _count(issues, "cycle")
        children[root.parent_id] = [c for c in children.get(root.parent_id, []) if c is not root]
        detached = []
    attach = detached + [s for s in _longest_first(orphans) if s is not root]
    seen = _reachable(root, children)
    for s in attach:
        if s.span_id not in seen:
            children.setdefault(root.span_id, []).append(s)
            seen |= _reachable(s, children, seen)
    # What is still unreached hangs off a cycle: attach one span of each cycle under the root.
    for s in _longest_first([s for s in by_id.values() if s.span_id not in seen]):
        if s.span_id in seen:
            continue
        _count(issues, "cycle")
        parent = children.get(s.parent_id)
        if parent is not None:
            children[s.parent_id] = [c for c in parent if c is not s]
        children.setdefault(root.span_id, []).append(s)
        seen |= _reachable(s, children, seen)
    return root, children


def _reachable(start: Span, children: Dict[str, List[Span]], seen: Optional[set] = None) -> set:
    out = {start.span_id}
    stack = [start]
    known = seen or set()
    while stack:
        s = stack.pop()
        for c in children.get(s.span_id, ()):
            if c.span_id not in out and c.span_id not in known:
                out.add(c.span_id)
                stack.append(c)
    return out


def _simple_tree(by_id: Dict[str, Span]) -> Tuple[Optional[Span], Dict[str, List[Span]]]:
    """The common case in one pass: one root, every other span's parent in the trace. (None, …)
    when the trace needs :func:`_tree` (orphans, self-parents, several or no roots)."""
    children: Dict[str, List[Span]] = {}
    root = None
    for s in by_id.values():
        p = s.parent_id
        if not p:
            if root is not None:
                return None, children
            root = s
        elif p == s.span_id or p not in by_id:
            return None, children
        else:
            kids = children.get(p)
            if kids is None:
                children[p] = [s]
            else:
                kids.append(s)
    return root, children


_FRAMES: Dict[Tuple[str, str], str] = {}


def _frame(span: Span) -> str:
    key = (span.service, span.operation)
    f = _FRAMES.get(key)
    if f is None:
        if len(_FRAMES) > 100_000:  # names are untrusted: the cache stays bounded
            _FRAMES.clear()
        f = _FRAMES[key] = frame_name(span.service, span.operation)
    return f


def _walk(root: Span, children: Dict[str, List[Span]], issues: Dict[str, int]) -> Tuple[Dict[Path, int], set]:
    weights: Dict[Path, int] = {}
    visited = set()
    frames = _FRAMES
    kids_of = children.get
    # Work items: (span, window start, window end, path of its parent, its own clamped window).
    # The window is where the span is on the critical path (a later sibling may have cut it);
    # clock skew is judged against the span's own time clamped to its parent's, never that cut.
    stack: List[Tuple[Span, int, int, Path, int, int]] = [(root, root.start, root.end, (), root.start, root.end)]
    while stack:
        span, lo, hi, parent_path, own_lo, own_hi = stack.pop()
        if span.span_id in visited:  # a link that still loops (defensive: _tree broke cycles)
            continue
        visited.add(span.span_id)
        f = frames.get((span.service, span.operation))
        path = parent_path + (f if f is not None else _frame(span),)
        own = 0
        cursor = hi
        kids = []
        for c in kids_of(span.span_id, ()):
            c_lo, c_hi = c.start, c.end
            if c_lo < own_lo or c_hi > own_hi:
                if c_hi <= own_lo or c_lo >= own_hi:
                    if not own_lo <= c_lo <= c_hi <= own_hi:
                        _count(issues, "outside_parent")
                    continue
                _count(issues, "clamped")
                if c_lo < own_lo:
                    c_lo = own_lo
                if c_hi > own_hi:
                    c_hi = own_hi
            if c_hi <= lo or c_lo >= hi:
                continue  # outside the part of this span on the critical path
            # (-end, start, index): a plain sort gives latest end first, then earliest start, then
            # the children's order (what a stable sort by (-end, start) gives), without a key function
            kids.append((-(c_hi if c_hi < hi else hi), c_lo if c_lo > lo else lo, len(kids), c, c_lo, c_hi))
        if kids:
            kids.sort()
            for neg_end, cs, _, c, c_lo, c_hi in kids:
                ce = -neg_end
                if cs >= cursor:
                    continue  # wholly after the cursor: not what the parent waited on last
                end = ce if ce < cursor else cursor
                own += cursor - end
                if end > cs:
                    stack.append((c, cs, end, path, c_lo, c_hi))
                cursor = cs
                if cursor <= lo:
                    break
        if cursor > lo:
            own += cursor - lo
        if own:
            weights[path] = weights.get(path, 0) + own
    return weights, visited


def critical_path(spans: Iterable[Span]) -> CriticalPath:
    """The critical path of one trace's spans (see the module docstring)."""
    issues: Dict[str, int] = {}
    by_id = _index(spans, issues)
    root, children = _simple_tree(by_id)
    if root is not None:
        found: Dict[str, int] = dict(issues)
        weights, visited = _walk(root, children, found)
        if len(visited) == len(by_id):
            return CriticalPath(root, root.end - root.start, weights, found)
        # Some spans are not reachable from the root: their links form a cycle. The careful way.
    root, children = _tree(by_id, issues)
    if root is None:
        return CriticalPath(None, 0, {}, issues)
    weights, _ = _walk(root, children, issues)
    return CriticalPath(root, root.end - root.start, weights, issues)

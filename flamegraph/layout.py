# SPDX-License-Identifier: Apache-2.0
"""Profile → frame boxes: the flame graph layout, as a pure function.

The layout is flamegraph.pl's: stacks merged into a tree from the root, siblings in
alphabetical order, a frame's width its inclusive weight, its own (self) weight on the left
of its children. The root is an implicit frame named ``all``.

It never builds the whole tree. The stacks are sorted once as tuples of frame ids (a C-speed
sort), so every subtree is a contiguous range of that list and its weight is a difference
of prefix sums. The children of a frame are found by binary search, and a child narrower
than the minimum width is never descended into. The work is therefore proportional to the
frames that are drawn (plus their narrow siblings), not to the size of the profile.
"""
from __future__ import annotations

import contextlib
import gc
from bisect import bisect_left
from itertools import accumulate
from typing import Iterator, List, NamedTuple, Optional, Sequence, Tuple

from profkit.model import Number, Profile

__all__ = ["Box", "Layout", "layout", "paused_gc"]

Stack = Tuple[int, ...]


class Box(NamedTuple):
    """One frame to draw. ``x`` and ``w`` are in weight units, ``depth`` 0 is the root."""

    fid: Optional[str]  #: frame id in the profile; None for the root ``all``
    depth: int
    x: Number      #: where the frame starts: the weight of everything to its left
    w: Number      #: its inclusive weight
    lo: int        #: its stacks are ``Layout.stacks[lo:hi]``
    hi: int
    parent: int    #: index of its parent in ``Layout.boxes``; -1 for the root


class Layout(NamedTuple):
    """The frames to draw, root first, each parent before its children (siblings left to right)."""

    boxes: List[Box]
    stacks: List[Stack]   #: the profile's stacks (reversed with ``reverse``), sorted
    cum: List[Number]     #: prefix sums of their weights: ``cum[hi] - cum[lo]`` weighs ``stacks[lo:hi]``
    total: Number
    max_depth: int        #: depth of the deepest box drawn

    def path(self, box: Box) -> Stack:
        """The frame ids from the root down to ``box`` (empty for the root)."""
        return self.stacks[box.lo][:box.depth]

    def self_weight(self, box: Box) -> Number:
        """The weight of the stacks that end in ``box`` (its self weight)."""
        if len(self.stacks[box.lo]) == box.depth:
            return self.cum[box.lo + 1] - self.cum[box.lo]
        return 0


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """Hold off the cyclic garbage collector while rendering.

    A large profile is millions of live objects; a full collection set off by the render's
    own allocations would walk all of them (about 0.1 s for 100k deep stacks), and the
    render creates no reference cycles for it to find.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def sorted_stacks(profile: Profile, reverse: bool = False) -> Tuple[List[Stack], List[Number]]:
    """The profile's stacks (leaf first with ``reverse``) sorted as id tuples, and their prefix sums.

    ``cum[i]`` is the weight of ``stacks[:i]``, so ``cum[hi] - cum[lo]`` weighs a range.
    """
    if reverse:
        pairs = sorted([(k[::-1], w) for k, w in profile.items()])
    else:
        pairs = sorted(profile.items())
    stacks = [k for k, _ in pairs]
    cum = [0]
    cum.extend(accumulate(w for _, w in pairs))
    return stacks, cum


def layout(profile: Profile, *, min_weight: Number = 0, reverse: bool = False) -> Layout:
    """Lay out ``profile``: every frame at least ``min_weight`` wide (and wider than 0), as boxes.

    Narrower frames are left out, but their weight still counts in their parents' widths.
    """
    stacks, cum = sorted_stacks(profile, reverse)
    total = cum[-1]
    boxes: List[Box] = []
    if not stacks or total <= 0:
        return Layout(boxes, stacks, cum, total, 0)
    boxes.append(Box(None, 0, 0, total, 0, len(stacks), -1))
    todo = [0]
    max_depth = 0
    while todo:
        index = todo.pop()
        node = boxes[index]
        d = node.depth
        lo, hi = node.lo, node.hi
        x = node.x
        if len(stacks[lo]) == d:
            # The stack that ends here (the node's self weight) sorts first: it is a prefix of the rest.
            x += cum[lo + 1] - cum[lo]
            lo += 1
        # Ids are frame tokens, so the sorted stacks already give the children in name order.
        children = _children(stacks, lo, hi, d)
        child_d = d + 1
        first = len(boxes)
        for fid, a, b in children:
            w = cum[b] - cum[a]
            if w >= min_weight and w > 0:
                boxes.append(Box(fid, child_d, x, w, a, b, index))
            x += w
        if len(boxes) > first:
            if child_d > max_depth:
                max_depth = child_d
            # Reversed so that popping visits the children left to right.
            todo.extend(range(len(boxes) - 1, first - 1, -1))
    return Layout(boxes, stacks, cum, total, max_depth)


def _children(stacks: Sequence[Stack], lo: int, hi: int, d: int) -> List[Tuple[int, int, int]]:
    """``(frame id, lo, hi)`` for each distinct frame at index ``d`` of ``stacks[lo:hi]``.

    All of ``stacks[lo:hi]`` share their first ``d`` frames and are longer than ``d``.
    """
    out = []
    pos = lo
    while pos < hi:
        key = stacks[pos]
        fid = key[d]
        # The first stack past this child's run: the same prefix, then any id above fid
        # (fid + NUL is the smallest string greater than fid).
        end = bisect_left(stacks, key[:d] + (fid + "\0",), pos + 1, hi)
        out.append((fid, pos, end))
        pos = end
    return out

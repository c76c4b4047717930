# SPDX-License-Identifier: Apache-2.0
"""The profile model: interned frames, stacks of frame ids, numeric weights, a unit, metadata.

A :class:`Profile` maps stacks (root → leaf tuples of frame ids) to weights. Weights are
numbers in the profile's unit; integers stay integers, fractional inputs stay floats.
Frames are structured (:class:`~profkit.frames.Frame`: name, kind, file, line) and interned.
Parsers may hand frames over either as :class:`Frame` objects or as *tokens*, the text of one
frame in folded form (``name (file:line)`` plus an optional kind annotation such as ``_[k]``),
which is the fast path: a token is decoded into a Frame once per distinct text, when first
looked at.

This module imports only the standard library.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Dict, Iterable, Iterator, List, Mapping, NamedTuple, Optional, Sequence, Tuple, Union

from profkit.frames import (IDLE_PATTERN, Frame, FrameKind, function_key, key_folded_stack, keyed_tokens,
                            normal_token, split_kind)

__all__ = [
    "Frame",
    "FrameKind",
    "FunctionStat",
    "IDLE_PATTERN",
    "Number",
    "Profile",
    "ProfileMeta",
    "UNITS",
    "function_key",
    "key_folded_stack",
]

Number = Union[int, float]

#: Units a profile's weights may be in.
UNITS = ("samples", "nanoseconds", "bytes", "objects")


@dataclass
class ProfileMeta:
    """Where a profile came from. Every field is optional; ``extra`` holds anything else."""

    collector: Optional[str] = None
    pid: Optional[int] = None
    command: Optional[str] = None
    start: Optional[str] = None         #: ISO-8601 start time
    duration: Optional[float] = None    #: seconds
    sample_rate: Optional[float] = None  #: Hz
    extra: Dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> Dict[str, object]:
        """A JSON-ready dict with the unset fields left out."""
        return {k: v for k, v in asdict(self).items() if v not in (None, {})}


def _function_keys(tokens: Iterable[str], explicit: Mapping[str, "Frame"]) -> Dict[str, str]:
    """frame id (token) → function key, for the frames of a :meth:`Profile.keyed` profile:
    their names are keys already (keying twice could cut a second ``:N`` from ``f (a:1:2)``)."""
    out = {t: split_kind(t)[0] for t in tokens}
    for fid, f in explicit.items():  # kinds without an annotation: the token is the text itself
        if fid in out:
            out[fid] = f.text
    return out


#: The keyed token of each of a list of tokens (see :func:`profkit.frames.keyed_tokens`).
_keyed_token_list = keyed_tokens


class FunctionStat(NamedTuple):
    """A function's weight: ``self`` where it is the leaf, ``total`` in every stack it is in."""

    key: str
    self: Number
    total: Number


class _FrameTable(Mapping):
    """frame id (its canonical token) → :class:`Frame`, decoded lazily and cached.

    A profile of 100k deep stacks may hold a million distinct frames of which a flame graph
    draws a few thousand: decoding each only when it is looked at keeps reading fast.
    """

    __slots__ = ("_tokens", "_explicit", "_cache")

    def __init__(self, tokens: Dict[str, str], explicit: Dict[str, Frame]):
        self._tokens, self._explicit, self._cache = tokens, explicit, {}

    def __getitem__(self, fid: str) -> Frame:
        f = self._cache.get(fid)
        if f is None:
            if fid not in self._tokens:
                raise KeyError(fid)
            f = self._explicit.get(fid) or Frame.from_token(fid)
            self._cache[fid] = f
        return f

    def __iter__(self) -> Iterator[str]:
        return iter(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)


#: A stack of frame ids, root first. A frame id is the frame's canonical token (str).
StackIds = Tuple[str, ...]


class Profile:
    """Stacks (root → leaf) mapped to weights, in one unit, with metadata.

    Frame ids are the frames' folded tokens (``name`` plus any kind annotation), interned so
    that equal frames share one string; ``profile.frames[fid]`` decodes one into a
    :class:`Frame`. Sorting stacks of ids therefore sorts them by frame names.

    ``keyed=True`` makes a profile whose frames are function keys already (see :meth:`keyed`):
    readers that key frames as they read use it, and promise that every frame they add is one.

    >>> p = Profile()
    >>> p.add(["main", "work"], 3)
    >>> p.add([Frame("main"), Frame("work")], 2)
    >>> p.total
    5
    """

    def __init__(self, unit: str = "samples", meta: Optional[ProfileMeta] = None, *, keyed: bool = False):
        if unit not in UNITS:
            raise ValueError(f"unknown unit {unit!r}; expected one of {', '.join(UNITS)}")
        self.unit = unit
        self.meta = meta if meta is not None else ProfileMeta()
        self._tokens: Dict[str, str] = {}       # token → the canonical (shared) token object
        self._explicit: Dict[str, Frame] = {}   # tokens whose Frame was given and differs from decoding
        self._stacks: Dict[StackIds, Number] = {}
        self._frames = _FrameTable(self._tokens, self._explicit)
        self._keyed = keyed  # frames are function keys already (made by keyed(), or read keyed)
        self._stats: Optional[Dict[str, "FunctionStat"]] = None  # function_stats(), until the next add
        #: the timed samples (:class:`profkit.timeline.Timeline`) where the capture has them, else None;
        #: kept by :meth:`merge` when every part has one, dropped by the other transforms
        self.timeline = None

    # -- building -------------------------------------------------------------------------
    def add(self, stack: Sequence[Union[str, Frame]], weight: Number = 1) -> None:
        """Add ``weight`` to a stack given root → leaf as tokens or :class:`Frame` objects."""
        if len(set(map(type, stack))) <= 1 and (not stack or type(stack[0]) is str):
            self.add_tokens(stack, weight)
        else:
            self.add_ids(tuple(map(self.intern, stack)), weight)

    def add_tokens(self, tokens: Sequence[str], weight: Number = 1) -> None:
        """Add ``weight`` to a stack of folded frame tokens (the fast path of folded readers)."""
        canon = self._tokens.setdefault
        key = tuple(map(canon, tokens, tokens))
        stacks = self._stacks
        stacks[key] = stacks.get(key, 0) + weight
        self._stats = None

    def add_ids(self, key: StackIds, weight: Number) -> None:
        """Add ``weight`` to a stack of ids returned by :meth:`intern`."""
        stacks = self._stacks
        stacks[key] = stacks.get(key, 0) + weight
        self._stats = None

    def intern(self, frame: Union[str, Frame]) -> str:
        """The id of a frame (given as a token or a Frame), interning it if new."""
        if type(frame) is str:
            return self._tokens.setdefault(frame, frame)
        if frame.file is None and frame.name[-1:] == ")" and not frame.synthetic:
            # A location still inside the name (a plugin's Frame("f (a.py:3)")): take it apart.
            # (Process and thread names are names: "thread (0x1): w (q.py:3)" is a thread "w (q.py:3)".)
            frame = Frame.parse(frame.name, frame.kind)
        token = frame.token
        fid = self._tokens.setdefault(token, token)
        if fid not in self._explicit and Frame.from_token(token) != frame:
            # A kind the annotation cannot carry (native, alloc-in-TLAB, …): remember it.
            self._explicit[fid] = frame
        return fid

    # -- reading --------------------------------------------------------------------------
    @property
    def frames(self) -> Mapping[str, Frame]:
        """The frame table: ``frames[fid]`` is the :class:`Frame` of an id."""
        return self._frames

    def frame(self, fid: str) -> Frame:
        """The frame with this id."""
        return self._frames[fid]

    def items(self) -> Iterator[Tuple[StackIds, Number]]:
        """(stack of frame ids, weight) pairs, in insertion order."""
        return iter(self._stacks.items())

    def stacks(self) -> Iterator[Tuple[Tuple[Frame, ...], Number]]:
        """(stack of Frames, weight) pairs, in insertion order."""
        get = self._frames.__getitem__
        for key, w in self._stacks.items():
            yield tuple(map(get, key)), w

    def __len__(self) -> int:
        return len(self._stacks)

    def __bool__(self) -> bool:
        return bool(self._stacks)

    @property
    def total(self) -> Number:
        """The sum of all weights."""
        return sum(self._stacks.values())

    def sorted_items(self) -> List[Tuple[StackIds, Number]]:
        """Stacks sorted by frame names, root first (the x-order of a flame graph)."""
        return sorted(self._stacks.items())

    # -- transforming (each returns a new profile) ---------------------------------------
    def _derive(self, unit: Optional[str] = None) -> "Profile":
        """An empty profile with this one's unit, a copy of its metadata, and its keyed state
        (scaling and filtering keep frames as they are)."""
        return Profile(unit or self.unit, ProfileMeta(**{**asdict(self.meta), "extra": dict(self.meta.extra)}),
                       keyed=self._keyed)

    def _adopt(self, other: "Profile") -> None:
        """Share another profile's frame table entries (tokens and explicit kinds)."""
        self._tokens.update(other._tokens)
        for fid, f in other._explicit.items():
            self._explicit.setdefault(fid, f)

    def _map(self, fn) -> "Profile":
        out = self._derive()
        out._adopt(self)
        add = out.add_ids
        for key, w in self._stacks.items():
            r = fn(key, w)
            if r is not None:
                add(r[0], r[1])
        return out

    def merge(self, *others: "Profile") -> "Profile":
        """This profile plus others of the same unit, as a new profile."""
        out = self._derive()
        out._keyed = all(p._keyed for p in (self,) + others)
        for p in (self,) + others:
            if p.unit != self.unit:
                raise ValueError(f"cannot merge a profile in {p.unit} into one in {self.unit}")
            out._adopt(p)
            for key, w in p._stacks.items():
                out.add_ids(key, w)
        if all(p.timeline is not None for p in (self,) + others):
            from profkit.timeline import Timeline

            out.timeline = Timeline(min((p.timeline.start for p in (self,) + others if p.timeline.start), default=0.0))
            for p in (self,) + others:
                out.timeline.extend(p.timeline)
        return out

    def scale(self, factor: Number) -> "Profile":
        """Every weight multiplied by ``factor`` (integers stay integers for integer factors)."""
        return self._map(lambda k, w: (k, w * factor))

    def filter(self, pattern: str, *, exclude: bool = False) -> "Profile":
        """Keep the stacks with a frame whose text (name and location) matches the regex (or drop them, with ``exclude``)."""
        rx = re.compile(pattern)
        frames = self._frames
        hit = {fid: bool(rx.search(frames[fid].text)) for fid in self._tokens}
        return self._map(lambda k, w: (k, w) if any(map(hit.__getitem__, k)) != exclude else None)

    def drop_idle(self, pattern: str = IDLE_PATTERN) -> "Profile":
        """Drop the stacks whose leaf is an idle or blocking function (see :data:`IDLE_PATTERN`)."""
        rx = re.compile(pattern)
        frames = self._frames
        idle = {}
        for key in self._stacks:
            if key and key[-1] not in idle:
                idle[key[-1]] = bool(rx.match(frames[key[-1]].name))
        return self._map(lambda k, w: None if (k and idle[k[-1]]) else (k, w))

    def normalise_keyed(self) -> "Profile":
        """Finish a profile read keyed: its readers drop line numbers per line
        (:func:`~profkit.frames.strip_folded_lines`, the fast part), and the names are normalised
        here, once per distinct frame (:func:`~profkit.frames.normal_token`); stacks that become
        equal are merged. The result equals :meth:`keyed` of the profile read plainly. Returns self."""
        explicit = self._explicit
        changed = {}
        for t in self._tokens:
            if t not in explicit:
                n = normal_token(t)
                if n != t:
                    changed[t] = n
        if not changed:
            return self
        tokens = self._tokens
        for t in changed:
            del tokens[t]
        mapping = {t: tokens.setdefault(n, n) for t, n in changed.items()}
        get = mapping.get
        stacks: Dict[StackIds, Number] = {}
        for key, w in self._stacks.items():
            k = tuple(map(get, key, key))
            stacks[k] = stacks.get(k, 0) + w
        self._stacks = stacks
        self._stats = None
        return self

    @property
    def is_keyed(self) -> bool:
        """True when every frame is named by its function key already (see :meth:`keyed`)."""
        return self._keyed

    def keyed(self) -> "Profile":
        """This profile with every frame named by its :func:`function_key` (line numbers dropped,
        names normalised, processes and threads named rather than numbered, kinds kept); stacks
        that become equal are merged. Profiles are compared this way, so that moving code does
        not make a function new (``shared/CONTRACT.md``) and a new PID not a new process."""
        if self._keyed:
            return self
        out = self._derive()
        out._keyed = True
        plain = [t for t in self._tokens if t not in self._explicit]
        keys = _keyed_token_list(plain)
        # One shared string per distinct key (ids are interned tokens), then stacks map straight over.
        canon = dict(zip(keys, keys))
        out._tokens.update(canon)
        mapping = dict(zip(plain, map(canon.__getitem__, keys)))
        for fid, f in self._explicit.items():
            # a located frame drops its line; a process or thread is keyed by its name
            mapping[fid] = out.intern(f.keyed())
        get = mapping.__getitem__
        stacks = out._stacks
        for key, w in self._stacks.items():
            k = tuple(map(get, key))
            stacks[k] = stacks.get(k, 0) + w
        return out

    # -- summarising ----------------------------------------------------------------------
    def function_stats(self) -> Dict[str, FunctionStat]:
        """Self and total weight per function (keyed by :func:`function_key`).

        A function that appears several times in one stack (recursion) counts once in it.
        Computed on :meth:`keyed` (one key per distinct frame, then no lookups per frame) and
        kept until the profile changes: summaries ask for it several times.
        """
        if self._stats is not None:
            return self._stats
        if not self._keyed:
            self._stats = self.keyed().function_stats()
            return self._stats
        keys = _function_keys(self._tokens, self._explicit)
        identity = all(k is t or k == t for t, k in keys.items())
        key_of = keys.__getitem__
        self_w: Dict[str, Number] = {}
        total_w: Dict[str, Number] = {}
        # Integer weights are tallied in C: the stacks' distinct keys are gathered per weight
        # (a sampled profile has few distinct weights), each group counted by Counter, and only
        # its distinct keys are multiplied out in Python. Memory stays bounded: the groups are
        # flushed every million keys. Fractional weights are summed in Python, in stack order.
        groups: Dict[int, List[str]] = {}
        pending = 0

        def flush() -> None:
            for w, ks in groups.items():
                if len(ks) < 64:
                    for k in ks:
                        total_w[k] = total_w.get(k, 0) + w
                else:
                    for k, n in Counter(ks).items():
                        total_w[k] = total_w.get(k, 0) + n * w
            groups.clear()

        for key, w in self._stacks.items():
            if not key:
                continue
            leaf = key_of(key[-1])
            self_w[leaf] = self_w.get(leaf, 0) + w
            # recursion counts once per stack
            distinct = dict.fromkeys(key if identity else map(key_of, key))
            if type(w) is int:
                group = groups.get(w)
                if group is None:
                    group = groups[w] = []
                group.extend(distinct)
                pending += len(distinct)
                if pending > 1 << 20:
                    flush()
                    pending = 0
            else:
                for k in distinct:
                    total_w[k] = total_w.get(k, 0) + w
        flush()
        self._stats = {k: FunctionStat(k, self_w.get(k, 0), t) for k, t in total_w.items()}
        return self._stats

    def top_functions(self, n: int = 10, by: str = "self") -> List[FunctionStat]:
        """The ``n`` heaviest functions by ``self`` or ``total`` weight (ties broken by name)."""
        if by not in ("self", "total"):
            raise ValueError("by must be 'self' or 'total'")
        stats = self.function_stats().values()
        idx = 1 if by == "self" else 2
        return sorted(stats, key=lambda s: (-s[idx], s.key))[:n]

# SPDX-License-Identifier: Apache-2.0
"""From a collector's raw captures to profiles: the one parse path of live runs and of
``profkit render`` (which also uses it to recover a run whose profkit died).

A run of several targets gets, per collector, one profile per target and their merge, in
which each target's stacks sit under a process root frame ``name [pid]``
(``shared/CONTRACT.md``, "Several targets in one run").
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, List, Optional, Sequence, Tuple

from collectors.base import Collector, pid_of_raw
from profkit.errors import Diagnostics, ProfkitError
from profkit.inputs import Source
from profkit.model import Frame, FrameKind, Profile

__all__ = ["options_dict", "options_from", "parse_captures", "process_frame"]


def options_dict(options: Any) -> Dict[str, Any]:
    """A collector's parse options as the run record keeps them."""
    return dataclasses.asdict(options) if dataclasses.is_dataclass(options) else {}


def options_from(c: Collector, recorded: Dict[str, Any]) -> Any:
    """The parse options a run recorded for ``c`` (unknown names, from another version, ignored)."""
    known = {f.name for f in dataclasses.fields(c.Options)}
    return c.Options(**{k: v for k, v in recorded.items() if k in known})


def process_frame(name: str, pid: int) -> Frame:
    """The synthetic root frame of one target in a merged multi-target profile."""
    return Frame(f"{name} [{pid}]", FrameKind.PROCESS)


def parse_captures(c: Collector, raws: Sequence[str], options: Any, names: Dict[int, str],
                   diag: Optional[Diagnostics] = None) -> Tuple[Profile, Dict[int, Profile]]:
    """Parse ``raws`` with ``c``: (the merged profile, pid → that target's profile).

    ``names`` maps each target's PID to its process name; with more than one target every
    stack of the merge gets the target's process root frame. Empty or missing captures are
    skipped; a capture that does not parse raises its error (the others are kept by the caller).
    """
    diag = diag if diag is not None else Diagnostics()
    per: Dict[int, Profile] = {}
    loose: List[Profile] = []
    for raw in raws:
        if not os.path.exists(raw) or os.path.getsize(raw) == 0:
            continue
        source = Source(raw, diag, binary_ok=c.binary_input)
        source.timed = True  # a run keeps its timed samples (timeline.bin)
        try:
            prof = c.parse(source, options, diag)
        finally:
            source.close()
        _align_clock(prof)
        pid = pid_of_raw(raw)
        if pid in names:
            per[pid] = per[pid].merge(prof) if pid in per else prof
        else:
            loose.append(prof)
    several = len(names) > 1
    merged: Optional[Profile] = None
    for pid, prof in per.items():
        part = _under(prof, process_frame(names[pid], pid)) if several else prof
        merged = part if merged is None else merged.merge(part)
    for prof in loose:
        merged = prof if merged is None else merged.merge(prof)
    return (merged if merged is not None else Profile()), (per if several else {})


def _align_clock(prof: Profile) -> None:
    """A timeline on CLOCK_MONOTONIC (perf's) moved to epoch time (this boot's offset)."""
    import time

    if prof.timeline is not None and prof.meta.extra.get("clock") == "monotonic":
        prof.timeline.start += time.time() - time.monotonic()
        prof.meta.extra["clock"] = "epoch"


def _under(profile: Profile, root: Frame) -> Profile:
    out = Profile(profile.unit, profile.meta)
    for stack, w in profile.stacks():
        out.add((root,) + stack, w)
    if profile.timeline is not None:
        rid, intern, frame = out.intern(root), out.intern, profile.frame
        out.timeline = profile.timeline.remap(lambda k: (rid,) + tuple(intern(frame(f)) for f in k))
        for name in list(out.timeline.threads):  # the report's thread selector then names the target too
            out.timeline.rename_thread(name, f"{root.name}: {name}" if name else root.name)
    return out


def recover_errors(fn, *args) -> Tuple[Any, Optional[ProfkitError]]:
    """``fn(*args)``, or ``(None, the ProfkitError it raised)``."""
    try:
        return fn(*args), None
    except ProfkitError as e:
        return None, e

# SPDX-License-Identifier: Apache-2.0
"""Which collectors a run uses, and their record options.

Mode support is declared once, by each collector (``Collector.modes``, and ``Collector.defaults``
for the runtimes where it is a default choice, ranked): for a run that names no collector, the
candidates for its (runtime, mode) are the defaults that record that mode, best rank first, and
the first that can run here is used (``shared/CONTRACT.md`` "Modes": JFR when async-profiler
cannot). Collectors are obtained through the registry only.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import collectors
from collectors.base import Availability, Collector
from profkit.errors import ProfkitError, UsageError

__all__ = ["MODES", "choose_collectors", "record_options"]

MODES = ("cpu", "wall", "alloc", "lock")

#: Advice for a (runtime, mode) that no collector records (what to do instead).
ADVICE = {
    ("native", "wall"): ("perf samples on-CPU time only; it is not a wall-clock profiler",
                         "use --mode cpu, or profile off-CPU time with perf sched/offcputime tools"),
    ("native", "alloc"): ("there is no allocation profiler for native processes here", "use profkit heap --pid PID for RSS growth"),
    ("native", "lock"): ("there is no lock profiler for native processes here", "use --mode cpu"),
    ("python", "lock"): ("py-spy cannot profile lock contention", "use --mode wall to see where threads wait"),
}


def record_options(c: Collector, given: Dict[str, object]):
    """The collector's RecordOptions with the values given on the command line that it has."""
    if c.RecordOptions is None:
        return None
    fields = c.RecordOptions.__dataclass_fields__
    return c.RecordOptions(**{k: v for k, v in given.items() if k in fields})


def _defaults(runtime: str, mode: str) -> List[Collector]:
    found: List[Tuple[int, str, Collector]] = []
    for c in collectors.load_all().values():
        if runtime in c.defaults and mode in c.modes.get(runtime, ()):
            found.append((c.defaults[runtime], c.id, c))
    return [c for _, _, c in sorted(found, key=lambda x: x[:2])]


def choose_collectors(runtime: str, mode: str, explicit: Sequence[str],
                      given: Optional[Dict[str, object]] = None) -> List[Tuple[Collector, Availability]]:
    """The collectors to run: the explicit ones (all must be usable), else the first default for
    (runtime, mode) that can run here."""
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    given = given or {}
    if explicit:
        out = []
        for cid in explicit:
            c = collectors.get(cid)
            avail = c.check(runtime, mode, record_options(c, given))
            if not avail.ok:
                raise avail.error(c.id)
            out.append((c, avail))
        return out
    candidates = _defaults(runtime, mode)
    if not candidates:
        what, hint = ADVICE.get((runtime, mode), (f"no collector records --mode {mode} for {runtime} processes",
                                                  "profkit collectors lists what each one records"))
        raise UsageError(f"--mode {mode} is not available for a {runtime} process: {what}", hint=hint)
    first: Optional[ProfkitError] = None
    for c in candidates:
        avail = c.check(runtime, mode, record_options(c, given))
        if avail.ok:
            return [(c, avail)]
        first = first or avail.error(c.id)
    assert first is not None
    raise first

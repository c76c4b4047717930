# SPDX-License-Identifier: Apache-2.0
"""The collector registry: the ``profkit.collectors`` entry-point group, and nothing else.

Built-in collectors are registered through profkit's own ``pyproject.toml`` exactly as
third-party ones are. Entry points are loaded lazily, by id; a plugin that fails to load
produces a warning naming it, not a crash.
"""
from __future__ import annotations

from typing import Dict, List, Optional

from profkit.errors import Diagnostics, EnvironmentProblem, ProfkitError, UsageError
from profkit.plugins import entry_points_of

from collectors.base import Collector, Sniff

__all__ = ["Collector", "Sniff", "available_ids", "get", "load_all", "problems", "sniff_format"]

GROUP = "profkit.collectors"
_cache: Dict[str, Collector] = {}
#: Plugins that failed to load, as warnings (the CLI prints them as ``profkit: warning: …``).
problems = Diagnostics("plugins")


def _entry_points():
    return entry_points_of(GROUP)


def available_ids() -> List[str]:
    """Every registered id, sorted, without importing any collector."""
    return sorted(_entry_points())


def get(cid: str) -> Collector:
    """The collector registered as ``cid`` (loaded on first use)."""
    if cid in _cache:
        return _cache[cid]
    eps = _entry_points()
    ep = eps.get(cid)
    if ep is None:
        known = ", ".join(sorted(eps)) or "none (is profkit installed? pip install -e .)"
        raise UsageError(f"unknown collector or format {cid!r}; known: {known}")
    try:
        cls = ep.load()
        inst = cls()
    except Exception as e:  # a broken plugin must not take profkit down
        raise EnvironmentProblem(f"collector {cid!r} ({ep.value}) failed to load: {type(e).__name__}: {e}") from None
    _cache[cid] = inst
    return inst


def load_all() -> Dict[str, Collector]:
    """Every collector that loads; the ones that do not are skipped with a warning."""
    out = {}
    for cid in available_ids():
        try:
            out[cid] = get(cid)
        except ProfkitError as e:
            problems.warn(e.message)
    return out


def sniff_format(head: bytes) -> Optional[str]:
    """The id of the format ``head`` most likely is: a YES wins over a MAYBE; ``folded`` last."""
    maybe = None
    for cid, c in load_all().items():
        answer = c.sniff(head)
        if answer is Sniff.YES:
            return cid
        if answer is Sniff.MAYBE and (maybe is None or maybe == "folded"):
            maybe = cid
    return maybe

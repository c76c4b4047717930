# SPDX-License-Identifier: Apache-2.0
"""Reading an entry-point group: the one mechanism behind profkit's registries (collectors, load
generators). Imports only the standard library."""
from __future__ import annotations

import functools
import sys
from typing import Dict

__all__ = ["entry_points_of"]


@functools.lru_cache(maxsize=None)
def entry_points_of(group: str) -> Dict[str, object]:
    """name → entry point of ``group``, without importing any of them.

    A distribution installed twice (say editable and in site-packages) lists its entry points
    twice; the first of each name wins. Read once per process (each read scans every installed
    distribution's metadata, several milliseconds); do not modify the returned dict.
    """
    from importlib.metadata import entry_points

    if sys.version_info >= (3, 10):
        eps = entry_points(group=group)
    else:  # pragma: no cover - Python 3.9
        eps = entry_points().get(group, [])
    seen: Dict[str, object] = {}
    for ep in eps:
        seen.setdefault(ep.name, ep)
    return seen

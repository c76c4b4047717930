# SPDX-License-Identifier: Apache-2.0
"""Reading an entry-point group: the one mechanism behind profkit's registries (collectors, load
generators). Imports only the standard library.

Importing :mod:`importlib.metadata` and scanning every installed distribution's metadata costs a
CLI start-up about 50 ms (half of it importing ``email`` to parse ``METADATA`` files that entry
points do not need). So the group is read the way importlib.metadata finds it for the usual case —
each ``*.dist-info`` / ``*.egg-info`` directory of each directory on ``sys.path``, its
``entry_points.txt`` an INI file of ``[group]`` sections — and importlib.metadata itself is used
when ``sys.path`` holds anything else (a zip file, an import hook's path). A test checks that
both give the same answer for profkit's groups.
"""
from __future__ import annotations

import functools
import importlib
import os
import re
import sys
from typing import Any, Dict

__all__ = ["EntryPoint", "entry_points_of"]

_NAME = re.compile(r"[-_.]+")


class EntryPoint:
    """``name = module:attr`` of a group; :meth:`load` imports the module and returns the attribute."""

    __slots__ = ("name", "value", "group")

    def __init__(self, name: str, value: str, group: str):
        self.name, self.value, self.group = name, value, group

    def load(self) -> Any:
        module, _, attr = self.value.partition(":")
        obj = importlib.import_module(module.strip())
        for part in filter(None, attr.strip().split(".")):
            obj = getattr(obj, part)
        return obj

    def __repr__(self) -> str:
        return f"EntryPoint(name={self.name!r}, value={self.value!r}, group={self.group!r})"


def _scan(group: str):
    """(distribution name, name, value) of every entry point of ``group`` on ``sys.path``, or None
    when a path entry is not a plain directory (then importlib.metadata must do it)."""
    found = []
    seen_dists = set()
    header = f"[{group}]"
    for entry in sys.path:
        path = entry or "."
        try:
            names = sorted(e.name for e in os.scandir(path) if e.name.endswith((".dist-info", ".egg-info")))
        except NotADirectoryError:
            return None  # a zip or something only importlib's finders understand
        except OSError:
            continue
        for name in names:
            dist = _NAME.sub("_", name.rsplit(".", 1)[0].split("-", 1)[0]).lower()
            if dist in seen_dists:  # the first of a distribution on sys.path wins, as in importlib
                continue
            seen_dists.add(dist)
            try:
                with open(os.path.join(path, name, "entry_points.txt"), encoding="utf-8") as fh:
                    text = fh.read()
            except (OSError, UnicodeDecodeError):
                continue
            if header in text:  # parsed only when the group is there (nearly never: cheap)
                found.extend((dist, k, v) for k, v in _section(text, group))
    return found


def _section(text: str, group: str):
    """The ``name = value`` pairs of one section of an INI text (configparser's reading)."""
    import configparser

    parser = configparser.ConfigParser(delimiters=("=",), interpolation=None, strict=False)
    parser.optionxform = str  # entry point names are case-sensitive
    try:
        parser.read_string(text)
    except configparser.Error:
        return []
    return [(k.strip(), v.strip()) for k, v in parser.items(group)] if parser.has_section(group) else []


def _importlib(group: str):
    from importlib.metadata import entry_points

    eps = entry_points(group=group) if sys.version_info >= (3, 10) else entry_points().get(group, [])
    return [("", ep.name, ep.value) for ep in eps]


@functools.lru_cache(maxsize=None)
def entry_points_of(group: str) -> Dict[str, EntryPoint]:
    """name → entry point of ``group``, without importing any of them.

    A distribution installed twice (say editable and in site-packages) lists its entry points
    twice; the first of each name wins. Read once per process; do not modify the returned dict.
    """
    rows = _scan(group)
    if rows is None:
        rows = _importlib(group)
    seen: Dict[str, EntryPoint] = {}
    for _, name, value in rows:
        seen.setdefault(name, EntryPoint(name, value, group))
    return seen

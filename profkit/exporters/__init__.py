# SPDX-License-Identifier: Apache-2.0
"""Exporters: where each window of ``profkit agent`` goes (profile stores), and where
``profkit pull`` / ``profkit compare --store`` read a time range back.

``--export KIND=URL`` / ``--store KIND=URL`` name one; KIND is its entry point in the
``profkit.exporters`` group (built-ins are registered in pyproject.toml exactly like third-party
ones). The interface is :class:`profkit.exporters.base.Exporter`; what one window carries is
:class:`profkit.exporters.base.Window`.
"""
from __future__ import annotations

from typing import Dict

from profkit.errors import UsageError
from profkit.exporters.base import Exporter, ExportOptions, Window, clean_labels
from profkit.plugins import entry_points_of

__all__ = ["ExportOptions", "Exporter", "Window", "available_exporters", "clean_labels", "exporter_for"]

GROUP = "profkit.exporters"


def available_exporters() -> Dict[str, type]:
    """KIND → Exporter class, from the ``profkit.exporters`` entry points."""
    return {ep.name: ep.load() for ep in entry_points_of(GROUP).values()}


def exporter_for(spec: str, options: ExportOptions = ExportOptions(), flag: str = "--export") -> Exporter:
    """The exporter of ``KIND=URL`` (a usage error, exit 2, for an unknown kind or a bad URL)."""
    kind, eq, url = spec.partition("=")
    if not eq or not kind or not url:
        raise UsageError(f"{flag}: {spec!r} is not KIND=URL", hint="e.g. parca=http://127.0.0.1:7070 or file=DIR")
    points = entry_points_of(GROUP)
    if kind not in points:
        raise UsageError(f"{flag}: no exporter {kind!r}", hint="available: " + ", ".join(sorted(points)))
    return points[kind].load()(url, options)

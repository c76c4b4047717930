# SPDX-License-Identifier: Apache-2.0
"""The collector protocol: one class per tool, each with a pure parser for its capture format.

A collector has an ``id`` (``shared/CONTRACT.md``: the same id names the collector, its input
format, its entry point and its ``profile-ID.folded``), a frozen ``Options`` dataclass whose
fields become command-line flags, ``sniff(head)`` for ``--format auto`` and
``parse(source, options, diag)`` which turns a raw capture into a :class:`~profkit.model.Profile`.
Parsers stream: they never hold the whole capture in memory.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Dict, Type

from profkit.errors import Diagnostics, UsageError
from profkit.inputs import Source
from profkit.model import Profile
from profkit.options import option

__all__ = ["Collector", "NoOptions", "Sniff", "option", "options_from_mapping"]


class Sniff(enum.Enum):
    """A format sniffer's answer about the first bytes of an input."""

    YES = "yes"
    NO = "no"
    MAYBE = "maybe"  #: plausible, but another format's YES wins


@dataclass(frozen=True)
class NoOptions:
    """A parser without options."""


def options_from_mapping(cls: Type[Any], values: Dict[str, Any]) -> Any:
    """Build an options dataclass from a name → value mapping, rejecting unknown names."""
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise UsageError(f"unknown option(s): {', '.join(sorted(unknown))}")
    return cls(**values)


class Collector:
    """Base class of collectors. Subclasses set the class attributes and implement ``parse``."""

    #: the contract id, e.g. ``"perf"``
    id: ClassVar[str] = ""
    #: one line for ``--help`` and ``profkit collectors``
    summary: ClassVar[str] = ""
    #: the frozen dataclass of parse options
    Options: ClassVar[type] = NoOptions
    #: True when the capture is a binary file (read by path, not as text)
    binary_input: ClassVar[bool] = False

    def sniff(self, head: bytes) -> Sniff:
        """Whether ``head`` (the first bytes of an input) looks like this collector's format."""
        return Sniff.NO

    def parse(self, source: Source, options: Any, diag: Diagnostics) -> Profile:  # pragma: no cover
        """Read a capture into a Profile; malformed lines go to ``diag``."""
        raise NotImplementedError

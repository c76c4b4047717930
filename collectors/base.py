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
from typing import Any, ClassVar, Dict, List, Tuple, Type

from profkit.errors import Diagnostics, UsageError
from profkit.inputs import Source
from profkit.model import Profile
from profkit.options import option

__all__ = ["Availability", "Collector", "NoOptions", "RecordRequest", "Recording", "Sniff", "option",
           "options_from_mapping"]


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

    def parse_keyed(self, source: Source, options: Any, diag: Diagnostics) -> Profile:
        """:meth:`parse` with every frame named by its function key (:meth:`Profile.keyed`), as
        profiles are compared. A collector that can key frames while it reads overrides this."""
        return self.parse(source, options, diag).keyed()

    # Live recording: collectors that can record override these three.
    #: the frozen dataclass of record options (None: this collector only parses)
    RecordOptions: ClassVar[Any] = None
    #: the modes it records, per runtime: {"python": ("cpu", "wall"), …}
    modes: ClassVar[Dict[str, Tuple[str, ...]]] = {}

    def check(self, runtime: str = "", mode: str = "cpu", options: Any = None) -> "Availability":
        """Whether this collector can record here (installed, permitted), with a hint if not.

        ``options`` are the record options the run would use (e.g. an explicit tool path)."""
        return Availability(False, reason=f"{self.id} only reads captures; it does not record")

    def record(self, request: "RecordRequest") -> "Recording":  # pragma: no cover - protocol
        """Start recording; the returned Recording is stopped and finished by the session."""
        raise NotImplementedError(f"{self.id} does not record")


# -- live recording (profkit attach / run) ------------------------------------------------------
@dataclass(frozen=True)
class Availability:
    """Whether a collector can run here (and for a target), and if not, why and how to fix it."""

    ok: bool
    version: str = ""
    reason: str = ""
    hint: str = ""


@dataclass
class RecordRequest:
    """What a session asks a collector to record."""

    pids: Tuple[int, ...]
    runtime: str                      #: ``python``, ``jvm`` or ``native``
    mode: str = "cpu"                 #: ``cpu``, ``wall``, ``alloc`` or ``lock``
    rate: int = 100                   #: sampling rate, Hz
    duration: float = 30.0            #: seconds; the tool is told this too, so it ends by itself
    raw_dir: str = "."                #: where raw captures are written as they arrive
    options: Any = None               #: the collector's own ``RecordOptions``


class Recording:
    """One running capture. ``stop()`` ends it early; ``finish()`` waits and returns the raw files.

    Implementations write raw captures into ``request.raw_dir`` as the tool produces them, and
    only ever signal their own child processes.
    """

    #: the exact commands run, for the manifest
    commands: List[List[str]]

    def poll(self) -> bool:  # pragma: no cover - protocol
        """True while the capture is still running."""
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - protocol
        """Ask the tool to end now, keeping what it has."""
        raise NotImplementedError

    def finish(self, timeout: float = 30.0) -> List[str]:  # pragma: no cover - protocol
        """Wait for the tool to end and return the raw capture paths (may raise CollectorFailed)."""
        raise NotImplementedError

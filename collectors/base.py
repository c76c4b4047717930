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
import os
import re
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Dict, List, Optional, Sequence, Tuple, Type

from profkit.errors import Diagnostics, ProfkitError, UsageError, unavailable
from profkit.inputs import Source
from profkit.model import Profile
from profkit.options import option

__all__ = ["Availability", "Collector", "NoOptions", "RecordRequest", "Recording", "Sniff", "option",
           "options_from_mapping", "pid_of_raw", "raw_path"]

_RAW_PID = re.compile(r"-(\d+)\.[^/]*$")
_RUNTIME_NAMES = {"jvm": "a JVM", "python": "a Python process", "native": "a native process"}


def _others(cid: str, runtime: str, mode: str) -> str:
    """The hint for a refused (runtime, mode): the collectors that do record it, defaults first."""
    import collectors  # the registry (this module is part of its package)

    able = [c for c in collectors.load_all().values() if c.id != cid and mode in c.modes.get(runtime, ())]
    able.sort(key=lambda c: (runtime not in c.defaults, c.defaults.get(runtime, 0), c.id))
    if able:
        return "use " + " or ".join(f"-c {c.id}" for c in able[:2]) + (f" (--mode {mode})" if mode != "cpu" else "")
    return f"no collector records --mode {mode} for {_RUNTIME_NAMES.get(runtime, runtime)}; profkit collectors lists them"


def raw_path(raw_dir: str, cid: str, pid: int, ext: str) -> str:
    """``raw/ID-PID.EXT``: the one naming rule of raw captures (the PID maps a capture to its target)."""
    return os.path.join(raw_dir, f"{cid}-{pid}.{ext}")


def pid_of_raw(path: str) -> Optional[int]:
    """The PID in a raw capture's name (:func:`raw_path`), or None."""
    m = _RAW_PID.search(os.path.basename(path))
    return int(m.group(1)) if m else None


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

    # Live recording: collectors that can record override these.
    #: the frozen dataclass of record options (None: this collector only parses)
    RecordOptions: ClassVar[Any] = None
    #: the modes it records, per runtime: {"python": ("cpu", "wall"), …} — declared here only
    modes: ClassVar[Dict[str, Tuple[str, ...]]] = {}
    #: the runtimes for which it is a default choice, with its rank there (1 first): a run that
    #: names no collector takes, for its (runtime, mode), the first default that can run here
    defaults: ClassVar[Dict[str, int]] = {}

    def refusal(self, runtime: str, mode: str, version: str = "") -> Optional["Availability"]:
        """The Availability refusing a (runtime, mode) this collector does not record (from
        :attr:`modes`), or None. Every ``check`` starts with it."""
        if runtime and runtime not in self.modes:
            known = " or ".join(_RUNTIME_NAMES.get(r, r) for r in sorted(self.modes)) or "nothing"
            return Availability(False, version, reason=f"the target is {_RUNTIME_NAMES.get(runtime, runtime)}, "
                                f"not {known}; {self.id} profiles only those",
                                hint=_others(self.id, runtime, mode or "cpu"), kind="unsupported")
        supported = self.modes.get(runtime) if runtime else sorted({m for ms in self.modes.values() for m in ms})
        if mode and mode not in (supported or ()):
            return Availability(False, version, reason=f"{self.id} does not record --mode {mode}"
                                + (f" (only {', '.join(supported)})" if supported else ""),
                                hint=_others(self.id, runtime, mode), kind="unsupported")
        return None

    def check(self, runtime: str = "", mode: str = "", options: Any = None) -> "Availability":
        """Whether this collector can record here (installed, permitted), with a hint if not:
        for ``runtime`` and ``mode`` when given (an empty one means any).

        ``options`` are the record options the run would use (e.g. an explicit tool path)."""
        return Availability(False, reason=f"{self.id} only reads captures; it does not record", kind="unsupported")

    def record(self, request: "RecordRequest") -> "Recording":  # pragma: no cover - protocol
        """Start recording; the returned Recording is stopped and finished by the engine."""
        raise NotImplementedError(f"{self.id} does not record")

    def recover(self, raws: Sequence[str], diag: Diagnostics) -> List[str]:
        """The parseable captures among a dead run's raw files (``profkit render`` of a run whose
        profkit was killed): by default those that exist and are not empty. A collector whose
        capture needs a finishing step (perf's ``perf script``) does it here."""
        return [r for r in raws if os.path.exists(r) and os.path.getsize(r) > 0]


# -- live recording (profkit attach / run) ------------------------------------------------------
@dataclass(frozen=True)
class Availability:
    """Whether a collector can run here (and for a target), and if not, why and how to fix it.

    ``kind`` says why, for programs: ``not-installed``, ``no-permission``, ``unsupported`` (this
    runtime or mode), ``target-unsupported`` (the target cannot host the tool) or ``failed``;
    :meth:`error` turns it into the matching error of the tree."""

    ok: bool
    version: str = ""
    reason: str = ""
    hint: str = ""
    kind: str = ""

    def error(self, subject: str) -> ProfkitError:
        """The error for trying to use it anyway (see :func:`profkit.errors.unavailable`)."""
        return unavailable(subject, self.kind or "failed", self.reason, self.hint)


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

    #: the exact commands run, for the run record
    commands: List[List[str]]
    #: pid → the capture file the tool writes for that target (:func:`raw_path`), known at start
    raw: Dict[int, str]
    #: the collector's parse options for these captures (e.g. the event actually recorded)
    parse_options: Any = None

    def progress(self) -> str:
        """A few words for the progress line (e.g. a tool that writes only at its end), or ""."""
        return ""

    def poll(self) -> bool:  # pragma: no cover - protocol
        """True while the capture is still running."""
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - protocol
        """Ask the tool to end now, keeping what it has."""
        raise NotImplementedError

    def finish(self, timeout: float = 30.0) -> List[str]:  # pragma: no cover - protocol
        """Wait for the tool to end and return the raw capture paths (may raise CollectorFailed)."""
        raise NotImplementedError

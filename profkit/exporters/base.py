# SPDX-License-Identifier: Apache-2.0
"""The exporter interface and what one window carries.

An exporter is constructed from the URL part of ``KIND=URL`` and :class:`ExportOptions`, and:

- :meth:`Exporter.send` delivers one :class:`Window`; it raises
  :class:`~profkit.errors.ServerUnreachable` or :class:`~profkit.errors.ServerRefused` (from
  :mod:`profkit.http`), whose ``retryable`` tells the agent's spool whether to try again later
  (unreachable, 5xx, 429) or to report the window as refused and move on (other 4xx);
- :meth:`Exporter.pull` reads a time range back as one :class:`~profkit.model.Profile` (stores that
  can be queried: ``parca``, ``pyroscope``, ``file``); others raise UsageError.

Labels are untrusted (process names): :func:`clean_labels` is applied by the agent before any
exporter sees them: names match ``[a-zA-Z_][a-zA-Z0-9_]*``, values are text without control
characters, at most :data:`LABEL_VALUE_MAX` characters. Each exporter escapes them further for its
own wire format (Pyroscope's ``{k=v}`` query syntax, say).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import ClassVar, Dict, Mapping, Optional

from profkit.errors import UsageError
from profkit.model import Profile

__all__ = ["ExportOptions", "Exporter", "LABEL_VALUE_MAX", "Window", "clean_labels"]

LABEL_VALUE_MAX = 200
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*", re.ASCII)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


@dataclass(frozen=True)
class ExportOptions:
    """What every exporter may be given (``shared/CONTRACT.md`` "Servers and stores")."""
    timeout: float = 10.0
    ca_file: Optional[str] = None
    token: Optional[str] = None          #: from ``--token-file`` or an environment variable, never argv
    max_bytes: int = 64 * 1024 * 1024    #: largest request body sent and response read

    def client(self, url: str, name: str, cls: Optional[type] = None):
        """The :class:`profkit.http.Client` (or subclass ``cls``) of ``url`` with these options."""
        from profkit.http import Client

        return (cls or Client)(url, timeout=self.timeout, ca_file=self.ca_file, token=self.token,
                               max_bytes=self.max_bytes, name=name)


@dataclass(frozen=True)
class Window:
    """One target's profile over one window of time."""
    profile: Profile
    labels: Mapping[str, str]            #: service, host, pid, runtime, collector, mode, version (cleaned)
    start: datetime                      #: aware UTC, inclusive
    end: datetime                        #: aware UTC, exclusive
    mode: str = "cpu"                    #: cpu | wall | alloc | lock
    rate: Optional[float] = None         #: sampling rate in Hz for sampled modes
    run_dir: Optional[Path] = None       #: the window's local run directory, when there is one
    sequence: int = 0                    #: the agent's window counter (delivery order)

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def clean_label_value(value: object) -> str:
    """A label value safe for any store: control characters as spaces, capped with an ellipsis."""
    text = _CONTROL.sub(" ", str(value))
    return text if len(text) <= LABEL_VALUE_MAX else text[:LABEL_VALUE_MAX - 1] + "…"


def clean_labels(labels: Mapping[str, object], flag: str = "--label") -> Dict[str, str]:
    """Labels with checked names (a UsageError names a bad one) and cleaned values."""
    out: Dict[str, str] = {}
    for name, value in labels.items():
        if not _LABEL_NAME.fullmatch(name):
            raise UsageError(f"{flag}: {name!r} is not a label name", hint="label names match [a-zA-Z_][a-zA-Z0-9_]*")
        out[name] = clean_label_value(value)
    return out


class Exporter:
    """Base of every exporter; subclasses set :attr:`kind` and implement :meth:`send`."""
    kind: ClassVar[str] = ""

    def __init__(self, url: str, options: ExportOptions = ExportOptions()):
        self.url, self.options = url, options

    def send(self, window: Window) -> None:
        raise NotImplementedError

    def pull(self, query: Mapping[str, str], profile_type: str, start: datetime, end: datetime) -> Profile:
        """The merged profile of the series matching the label ``query`` over ``[start, end)``."""
        raise UsageError(f"the {self.kind} exporter cannot read profiles back",
                         hint="pull from a store that keeps them: parca=, pyroscope= or file=")

    def close(self) -> None:
        """Release connections; called once when the agent stops."""

    def __repr__(self) -> str:
        from profkit.secrets import redact
        return f"{type(self).__name__}({redact(self.url)!r})"

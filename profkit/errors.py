# SPDX-License-Identifier: Apache-2.0
"""profkit's error tree. Only the CLI catches these; the library never exits.

    ProfkitError                 exit_code, hint
    ├── UsageError               2  bad option combination or value
    ├── InputError               2  unreadable, empty, binary or truncated input
    │   └── CaptureFormatError   2  a capture that does not parse (carries file:line)
    ├── EnvironmentProblem       1  environment or target problem
    │   ├── CollectorNotInstalled   1  with the install command as hint
    │   ├── CollectorFailed         1  an external tool failed (command, exit status, stderr tail)
    │   ├── TargetNotFound          1
    │   └── PermissionDenied        1  with the specific fix as hint
    └── RegressionDetected       3  --fail-on-regression tripped

Exit codes follow ``shared/CONTRACT.md``.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

__all__ = [
    "CaptureFormatError",
    "CollectorFailed",
    "CollectorNotInstalled",
    "Diagnostics",
    "EnvironmentProblem",
    "InputError",
    "PermissionDenied",
    "ProfkitError",
    "RegressionDetected",
    "TargetNotFound",
    "UsageError",
]


class ProfkitError(Exception):
    """Base of every error profkit raises on purpose; carries an exit code and an optional hint."""

    exit_code = 1

    def __init__(self, message: str, hint: Optional[str] = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(ProfkitError):
    """The command line asks for something that cannot be done."""

    exit_code = 2


class InputError(ProfkitError):
    """An input cannot be read: missing, unreadable, empty, binary or truncated."""

    exit_code = 2


class CaptureFormatError(InputError):
    """A capture does not parse; ``location`` is ``file:line`` where known."""

    def __init__(self, message: str, location: Optional[str] = None, hint: Optional[str] = None):
        super().__init__(f"{location}: {message}" if location else message, hint)
        self.location = location


class EnvironmentProblem(ProfkitError):
    """The environment or the target stops profkit (exit code 1)."""

    exit_code = 1


class CollectorNotInstalled(EnvironmentProblem):
    """An external tool is missing; the hint says how to install it."""


class CollectorFailed(EnvironmentProblem):
    """An external tool ran and failed."""

    STDERR_LIMIT = 400

    def __init__(self, command: Sequence[str], returncode: int, stderr: str = "", hint: Optional[str] = None):
        tail = " ".join((stderr or "").split())
        if len(tail) > self.STDERR_LIMIT:
            tail = "…" + tail[-self.STDERR_LIMIT:]
        status = f"exit status {returncode}" if returncode >= 0 else f"signal {-returncode}"
        msg = f"{command[0]} failed ({status})" + (f": {tail}" if tail else "")
        super().__init__(msg, hint)
        self.command = list(command)
        self.returncode = returncode


class TargetNotFound(EnvironmentProblem):
    """The process to profile does not exist (or no longer does)."""


class PermissionDenied(EnvironmentProblem):
    """The OS refuses access; the hint names the setting to change."""


class RegressionDetected(ProfkitError):
    """``--fail-on-regression`` tripped: a function's share grew past the threshold."""

    exit_code = 3


class Diagnostics:
    """Counts malformed input lines and collects warnings, each kind of warning once.

    Parsers call :meth:`malformed` for a line they cannot use and :meth:`warn` for
    anything else worth telling; the CLI prints :meth:`messages` on stderr.
    """

    EXAMPLES = 3

    def __init__(self, source: str = "<input>"):
        self.source = source
        self.malformed_count = 0
        self.examples: List[str] = []
        self.warnings: List[str] = []
        self._seen = set()

    def malformed(self, lineno: int, text, source: Optional[str] = None) -> None:
        """Record one line that could not be parsed (the first few are kept as examples)."""
        self.malformed_count += 1
        if len(self.examples) < self.EXAMPLES:
            if isinstance(text, bytes):
                text = text.decode("utf-8", "replace")
            text = text.rstrip("\r\n")
            if len(text) > 80:
                text = text[:77] + "..."
            self.examples.append(f"{source or self.source}:{lineno}: {text!r}")

    def warn(self, message: str) -> None:
        """Record a warning; the same text is kept once."""
        if message not in self._seen:
            self._seen.add(message)
            self.warnings.append(message)

    def messages(self) -> List[str]:
        """The lines to show a user: the malformed summary first, then warnings."""
        out = []
        if self.malformed_count:
            s = "" if self.malformed_count == 1 else "s"
            out.append(f"ignored {self.malformed_count} malformed line{s}"
                       + (f" (first: {self.examples[0]})" if self.examples else ""))
        out.extend(self.warnings)
        return out

# SPDX-License-Identifier: Apache-2.0
"""profkit's error tree. Only the CLI catches these; the library never exits.

    ProfkitError                 exit_code, hint
    ├── UsageError               2  bad option combination or value
    ├── InputError               2  unreadable, empty, binary or truncated input
    │   ├── CaptureFormatError   2  a capture that does not parse (carries file:line)
    │   └── RunRecordError       2  a run directory's manifest.json that does not validate (names the field)
    ├── EnvironmentProblem       1  environment or target problem
    │   ├── CollectorNotInstalled   1  with the install command as hint
    │   ├── CollectorFailed         1  an external tool failed (command, exit status, stderr tail)
    │   ├── TargetNotFound          1
    │   ├── TargetUnsupported       1  the target cannot host the tool (no memray in its interpreter, …)
    │   ├── PermissionDenied        1  with the specific fix as hint
    │   ├── DiskFull                1  ENOSPC / EDQUOT / EROFS while writing (names the path)
    │   ├── ServerUnreachable       1  a server or store did not answer (connection, DNS, TLS, timeout)
    │   ├── ServerRefused           1  it answered with an error status (``status``; ``retryable`` for 5xx/429)
    │   └── ChildFailed             1  a forked helper job failed unexpectedly (its traceback is the cause)
    ├── RegressionDetected       3  --fail-on-regression tripped
    └── SLOMissed                4  an --slo objective was missed (4 wins over 3)

Exit codes follow ``shared/CONTRACT.md``.
"""
from __future__ import annotations

from typing import List, Optional, Sequence

__all__ = [
    "CaptureFormatError",
    "ChildFailed",
    "CollectorFailed",
    "CollectorNotInstalled",
    "Diagnostics",
    "DiskFull",
    "EnvironmentProblem",
    "InputError",
    "PermissionDenied",
    "ProfkitError",
    "RegressionDetected",
    "RunRecordError",
    "SLOMissed",
    "ServerRefused",
    "ServerUnreachable",
    "TargetNotFound",
    "TargetUnsupported",
    "UsageError",
    "unavailable",
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


class RunRecordError(InputError):
    """A run directory's ``manifest.json`` that is not a run record this profkit reads; the
    message names the field."""


class EnvironmentProblem(ProfkitError):
    """The environment or the target stops profkit (exit code 1)."""

    exit_code = 1


class CollectorNotInstalled(EnvironmentProblem):
    """An external tool is missing; the hint says how to install it."""


class CollectorFailed(EnvironmentProblem):
    """An external tool ran and failed."""

    STDERR_LIMIT = 400

    def __init__(self, command: Sequence[str], returncode: Optional[int], stderr: str = "", hint: Optional[str] = None):
        tail = " ".join((stderr or "").split())
        if len(tail) > self.STDERR_LIMIT:
            tail = "…" + tail[-self.STDERR_LIMIT:]
        status = ("still running" if returncode is None else f"exit status {returncode}" if returncode >= 0
                  else f"signal {-returncode}")
        msg = f"{command[0]} failed ({status})" + (f": {tail}" if tail else "")
        super().__init__(msg, hint)
        self.command = list(command)
        self.returncode = returncode


class TargetNotFound(EnvironmentProblem):
    """The process to profile does not exist (or no longer does)."""


class TargetUnsupported(EnvironmentProblem):
    """The target cannot host the tool: an interpreter without memray, a Java too old for an event."""


class PermissionDenied(EnvironmentProblem):
    """The OS refuses access; the hint names the setting to change."""


class DiskFull(EnvironmentProblem):
    """A write failed because the file system is full, over quota or read-only; names the path."""


class ServerUnreachable(EnvironmentProblem):
    """A server or store could not be reached: refused connection, DNS, TLS, timeout. Worth retrying."""

    retryable = True
    status: Optional[int] = None


class ServerRefused(EnvironmentProblem):
    """A server answered with an error status (``status``). 5xx and 429 are ``retryable``; other 4xx
    (bad labels, too large, unauthorised) are not: retrying the same request gets the same answer."""

    def __init__(self, message: str, status: int, hint: Optional[str] = None):
        super().__init__(message, hint)
        self.status = status
        self.retryable = status >= 500 or status in (408, 429)


class ChildFailed(EnvironmentProblem):
    """A forked helper job failed with an unexpected error: the message is its last line (one
    line, as the CLI shows it); the child's whole traceback is the ``__cause__`` (``--debug``)."""


class RegressionDetected(ProfkitError):
    """``--fail-on-regression`` tripped: a function's share grew past the threshold."""

    exit_code = 3


class SLOMissed(ProfkitError):
    """At least one ``--slo`` objective was missed (exit 4; it wins over a regression's 3)."""

    exit_code = 4


#: Why a tool cannot run, as machine-readable kinds (``Availability.kind``), and the error each is.
UNAVAILABLE_KINDS = {"not-installed": CollectorNotInstalled, "no-permission": PermissionDenied,
                     "unsupported": TargetUnsupported, "target-unsupported": TargetUnsupported,
                     "failed": EnvironmentProblem}


def unavailable(subject: str, kind: str, reason: str, hint: Optional[str] = None) -> ProfkitError:
    """The error for a tool that cannot run: ``kind`` (see :data:`UNAVAILABLE_KINDS`) picks its class."""
    return UNAVAILABLE_KINDS.get(kind, EnvironmentProblem)(f"{subject} cannot run: {reason}", hint=hint or None)


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

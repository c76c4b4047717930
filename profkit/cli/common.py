# SPDX-License-Identifier: Apache-2.0
"""What the command modules share: output files, option tables, durations, progress, signals."""
from __future__ import annotations

import dataclasses
import io
import math
import shutil
import sys
from typing import Any, Callable, Dict, Optional, Sequence

import click

from profkit.errors import Diagnostics, UsageError
from profkit.options import describe

CONTEXT = dict(help_option_names=["-h", "--help"], max_content_width=100)

__all__ = ["CONTEXT", "ProgressLine", "dataclass_options", "default_output", "echo_warnings", "options_of",
           "positive_seconds", "with_stop_signals", "write_output"]


#: The outputs a run may have, in the order they are listed after it.
OUTPUTS = ("flamegraph.svg", "heap.json", "load.json", "summary.md", "report.html")


def written(run) -> str:
    """The outputs a run directory holds, as a list for people."""
    import os

    return ", ".join(f for f in OUTPUTS if os.path.exists(run.file(f)))


def echo_warnings(messages: Sequence[str]) -> None:
    """Print warnings as ``profkit: warning: …`` (names in them made safe for the terminal)."""
    from profkit.textsafe import terminal_text

    for msg in messages:
        click.echo(f"profkit: warning: {terminal_text(str(msg))}", err=True)


def report(diag: Diagnostics) -> None:
    """Print what a Diagnostics collected (malformed lines, warnings)."""
    echo_warnings(diag.messages())


def write_output(path: str, write: Callable[[Any], None], *, binary: bool = False) -> None:
    """Write to ``path`` atomically (:func:`profkit.atomic.atomic_write`), or to stdout for ``-``."""
    import os

    from profkit.atomic import atomic_write

    if path == "-":
        if binary:
            raise UsageError("this output is binary: give -o FILE")
        # Undecodable bytes of frame names were kept as surrogate escapes on reading: written
        # back as the same bytes (folded text round-trips byte for byte), never an encoding error.
        out = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", errors="surrogateescape", newline="\n")
        try:
            write(out)
            out.flush()
        finally:
            out.detach()
        return
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"cannot write {path}: directory {directory} does not exist")
    atomic_write(path, write, binary=binary)


def default_output(given: Optional[str], fallback: str) -> str:
    """``-o`` if given; else stdout when it is piped, else ``fallback`` in the current directory."""
    if given:
        return given
    return "-" if not sys.stdout.isatty() else fallback


def positive_seconds(value: float, flag: str) -> float:
    """A duration flag's value, refused (exit 2) unless finite and positive: ``nan`` and ``inf``
    would never end a run."""
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{flag} must be a positive number of seconds, not {value!r}")
    return value


def dataclass_options(cls: type, *, exclude: Sequence[str] = (), overrides: Optional[Dict[str, Any]] = None):
    """A decorator adding one click option per field of an options dataclass (one table of defaults)."""
    overrides = overrides or {}

    def decorate(fn):
        for name, flag, default, help_text, choices in reversed(describe(cls)):
            if name in exclude:
                continue
            default = overrides.get(name, default)
            kw: Dict[str, Any] = {"default": default, "help": help_text, "show_default": default not in (None, "", False)}
            if isinstance(default, bool):
                kw["is_flag"] = True
            elif choices:
                kw["type"] = click.Choice(list(choices))
            elif isinstance(default, int):
                kw["type"] = int
            elif isinstance(default, float):
                kw["type"] = float
            fn = click.option(flag, name, **kw)(fn)
        return fn

    return decorate


def options_of(cls: type, params: Dict[str, Any], **fixed: Any) -> Any:
    """An options dataclass from the click parameters that are its fields."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in params.items() if k in names}
    values.update(fixed)
    return cls(**values)


class ProgressLine:
    """Elapsed / remaining time on one terminal line (a line every 10 s when not a terminal)."""

    def __init__(self, quiet: bool, what: str):
        from profkit.textsafe import terminal_text

        self.quiet, self.what = quiet, terminal_text(what)
        self.tty = sys.stderr.isatty()
        self.last = -10.0
        self.width = 0

    def __call__(self, elapsed: float, remaining: float, status: str) -> None:
        if self.quiet:
            return
        if self.tty:
            cols = shutil.get_terminal_size().columns - 1
            line = f"{self.what}: {elapsed:5.1f} s elapsed, {remaining:5.1f} s left · {status} (Ctrl-C stops early)"
            sys.stderr.write("\r" + line[:cols].ljust(self.width))
            self.width = max(self.width, min(len(line), cols))
            sys.stderr.flush()
        elif elapsed - self.last >= 10:
            self.last = elapsed
            sys.stderr.write(f"{self.what}: {elapsed:.0f} s elapsed, {remaining:.0f} s left · {status}\n")

    def done(self) -> None:
        """End the progress line (a newline on a terminal)."""
        if self.tty and not self.quiet and self.width:
            sys.stderr.write("\n")


def with_stop_signals(body: Callable[[Any], Any]) -> Any:
    """Run ``body(stop_event)`` with SIGINT/SIGTERM setting the event instead of killing profkit;
    a second one raises KeyboardInterrupt (the run still stops its children on the way out)."""
    import signal
    import threading

    stop = threading.Event()
    old = {}

    def handler(signum, frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        old[sig] = signal.signal(sig, handler)
    try:
        return body(stop)
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)

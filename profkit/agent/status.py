# SPDX-License-Identifier: Apache-2.0
"""What the agent says while it runs: a status line on a terminal (windows done, samples, the
last export result per store, spool size, drops), events as lines (``--log-format text``, only
those worth a line when not on a terminal) or as one JSON object per line (``--log-format json``,
for journald or a Kubernetes log collector). Every text passes through the redaction and the
terminal escaping (labels and process names are untrusted)."""
from __future__ import annotations

import json
import shutil
import sys
import threading
import time
from typing import IO, Dict, Optional

from profkit.secrets import redact
from profkit.textsafe import terminal_text

__all__ = ["Status"]


class Status:
    """Counters of one agent run, its status line and its event log (thread-safe)."""

    def __init__(self, log_format: str = "text", stream: Optional[IO[str]] = None, quiet: bool = False):
        self.stream = stream or sys.stderr
        self.json = log_format == "json"
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) and not self.json and not quiet
        self.quiet = quiet
        self.lock = threading.Lock()
        self.windows = 0
        self.samples = 0.0
        self.targets = 0
        self.waiting = ""
        self.exports: Dict[str, str] = {}
        self.spool_bytes = 0
        self.dropped = 0
        self.refused = 0
        self.width = 0

    def event(self, event: str, message: str = "", *, important: bool = False, **fields: object) -> None:
        """One event: a JSON line, or a text line (on a terminal always, else when ``important``)."""
        with self.lock:
            if self.json:
                doc = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "event": event}
                if message:
                    doc["message"] = redact(message)
                doc.update({k: (redact(v) if isinstance(v, str) else v) for k, v in fields.items()})
                self.stream.write(json.dumps(doc, ensure_ascii=False, default=str) + "\n")
            elif (self.tty or important) and not self.quiet and message:
                self._clear()
                self.stream.write(f"profkit agent: {terminal_text(redact(message))}\n")
            else:
                return
            self.stream.flush()

    def line(self) -> str:
        parts = [f"{self.windows} windows", f"{self.samples:,.0f} samples"]
        parts.append(self.waiting or f"{self.targets} target{'s' if self.targets != 1 else ''}")
        parts += [f"{k}: {v}" for k, v in self.exports.items()]
        parts.append(f"spool {self.spool_bytes / 1e6:.1f} MB")
        if self.dropped:
            parts.append(f"{self.dropped} dropped")
        if self.refused:
            parts.append(f"{self.refused} refused")
        return " · ".join(parts)

    def show(self) -> None:
        """Redraw the status line (a terminal only)."""
        if not self.tty:
            return
        with self.lock:
            cols = max(20, shutil.get_terminal_size().columns - 1)
            text = terminal_text(redact("agent: " + self.line()))[:cols]
            self.stream.write("\r" + text.ljust(self.width))
            self.width = max(self.width, len(text))
            self.stream.flush()

    def _clear(self) -> None:
        if self.tty and self.width:
            self.stream.write("\r" + " " * self.width + "\r")

    def done(self) -> None:
        if self.tty and self.width:
            with self.lock:
                self.stream.write("\n")
                self.width = 0

# SPDX-License-Identifier: Apache-2.0
"""The agent's spool: every window on disk until each exporter has it ("Nothing lost").

    SPOOL/                        mode 0700
    ├── data/<key>.window         one window: a JSON header line, then its folded profile
    └── q/<exporter id>/<key>.window   a hard link per exporter still to deliver it

``<key>`` is ``<start ns>-<pid>-<seq>``, so a queue sorts in window order. An exporter's
sender (:class:`Sender`, one thread each) delivers its queue oldest first: a retryable failure
(unreachable, 5xx, 429) keeps the window and waits (1 s, doubling, capped at one window), a
refusal (other 4xx) is reported with the server's message and the window leaves that queue.
A window leaves ``data/`` when no queue links it. The spool is bounded (``--spool-size``):
past it the oldest windows are dropped, counted. A spool left by an agent that was killed is
delivered by the next agent using the same spool directory.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import time
from datetime import datetime
from typing import Callable, Dict, List, Optional, Tuple

from profkit.atomic import atomic_write
from profkit.errors import ProfkitError
from profkit.exporters.base import Exporter, Window
from profkit.model import Profile
from profkit.secrets import redact
from profkit.timeparse import format_time, parse_time

__all__ = ["Sender", "Spool", "exporter_id"]

SUFFIX = ".window"
#: windows kept in memory for the senders (the newest; older ones are read from their files)
RECENT = 256


def exporter_id(spec: str) -> str:
    """A stable directory name for an exporter (its kind and a hash of its redacted URL)."""
    kind = spec.partition("=")[0]
    digest = hashlib.sha256(redact(spec).encode("utf-8")).hexdigest()[:12]
    return f"{''.join(c for c in kind if c.isalnum() or c in '-_')[:20] or 'x'}-{digest}"


def _encode(window: Window) -> bytes:
    from profkit.folded import write_folded

    head = {"labels": dict(window.labels), "start": format_time(window.start), "end": format_time(window.end),
            "mode": window.mode, "rate": window.rate, "unit": window.profile.unit, "sequence": window.sequence,
            "run_dir": str(window.run_dir) if window.run_dir else None}
    buf = io.StringIO()
    write_folded(window.profile, buf)
    return (json.dumps(head, ensure_ascii=False) + "\n" + buf.getvalue()).encode("utf-8")


def _decode(data: bytes) -> Window:
    from pathlib import Path

    from profkit.errors import Diagnostics
    from profkit.folded import read_folded

    text = data.decode("utf-8", "replace")
    head_line, _, body = text.partition("\n")
    head = json.loads(head_line)
    profile = read_folded(body.splitlines(), Diagnostics(), unit=head.get("unit") or "samples")
    return Window(profile=profile, labels=head["labels"], start=parse_time(head["start"]), end=parse_time(head["end"]),
                  mode=head.get("mode") or "cpu", rate=head.get("rate"),
                  run_dir=Path(head["run_dir"]) if head.get("run_dir") else None, sequence=int(head.get("sequence") or 0))


class Spool:
    """The on-disk queue of windows, shared by the senders (thread-safe)."""

    def __init__(self, path: str, limit: int, exporters: Dict[str, Exporter]):
        from profkit.agent.windows import ensure_private_dir

        self.path, self.limit = ensure_private_dir(path), limit
        self.data = ensure_private_dir(os.path.join(path, "data"))
        self.queues = {eid: ensure_private_dir(os.path.join(path, "q", eid)) for eid in exporters}
        self.lock = threading.Lock()
        self.dropped = 0
        self.bytes = 0
        #: with several exporters, the windows this agent spooled, decoded once: each sender
        #: takes its window from here while the file is still queued for it (the file stays the
        #: truth: a window dropped or delivered is not handed out); at most RECENT
        self.recent: Dict[str, Window] = {}
        self._gc()

    def _gc(self) -> None:
        """Remove windows no queue of this agent (nor an exporter no longer given) links."""
        for name in os.listdir(self.data):
            self._forget_if_unlinked(name)
        self.bytes = self._scan()

    def _scan(self) -> int:
        total = 0
        for name in os.listdir(self.data):
            try:
                total += os.stat(os.path.join(self.data, name)).st_size
            except FileNotFoundError:
                pass
        return total

    def _forget_if_unlinked(self, name: str) -> None:
        """Delete ``data/name`` once no queue links it (keeping :attr:`bytes` right)."""
        p = os.path.join(self.data, name)
        try:
            st = os.stat(p)
            if st.st_nlink <= 1:
                os.unlink(p)
                self.bytes = max(0, getattr(self, "bytes", 0) - st.st_size)
        except FileNotFoundError:
            pass

    def size(self) -> int:
        """Bytes spooled (kept as windows come and go, not by listing the spool)."""
        return self.bytes

    def put(self, window: Window) -> Tuple[str, int]:
        """Spool one window for every exporter; returns (its key, windows dropped to make room)."""
        key = f"{int(window.start.timestamp() * 1e9):020d}-{window.labels.get('pid', 0)}-{window.sequence:08d}"
        data = _encode(window)
        kept = _decode(data) if len(self.queues) > 1 else None  # decoded once for every sender
        with self.lock:
            dropped = self._make_room(len(data))
            path = os.path.join(self.data, key + SUFFIX)
            atomic_write(path, data, binary=True, mode=0o600)
            self.bytes += len(data)
            for q in self.queues.values():
                os.link(path, os.path.join(q, key + SUFFIX))
            self._forget_if_unlinked(key + SUFFIX)  # no exporter at all
            if kept is not None:
                self.recent[key] = kept
                while len(self.recent) > RECENT:
                    self.recent.pop(next(iter(self.recent)))
        return key, dropped

    def _make_room(self, incoming: int) -> int:
        if self.bytes + incoming <= self.limit:
            return 0
        names = sorted(os.listdir(self.data))
        dropped = 0
        while names and self.bytes + incoming > self.limit:
            oldest = names.pop(0)
            self.recent.pop(oldest[: -len(SUFFIX)], None)
            for q in self.queues.values():
                try:
                    os.unlink(os.path.join(q, oldest))
                except FileNotFoundError:
                    pass
            path = os.path.join(self.data, oldest)
            try:
                size = os.stat(path).st_size
                os.unlink(path)
            except FileNotFoundError:
                continue
            self.bytes = max(0, self.bytes - size)
            dropped += 1
        self.dropped += dropped
        return dropped

    def pending(self, eid: str) -> List[str]:
        """The keys still to deliver to exporter ``eid``, oldest first."""
        return sorted(n[: -len(SUFFIX)] for n in os.listdir(self.queues[eid]) if n.endswith(SUFFIX))

    def load(self, eid: str, key: str) -> Optional[Window]:
        path = os.path.join(self.queues[eid], key + SUFFIX)
        kept = self.recent.get(key)
        if kept is not None:
            return kept if os.path.exists(path) else None
        try:
            with open(path, "rb") as fh:
                return _decode(fh.read())
        except FileNotFoundError:
            return None  # dropped to make room meanwhile
        except (ValueError, KeyError):
            self.done(eid, key)  # a damaged entry (a disk problem): it cannot be delivered
            return None

    def done(self, eid: str, key: str) -> None:
        with self.lock:
            try:
                os.unlink(os.path.join(self.queues[eid], key + SUFFIX))
            except FileNotFoundError:
                pass
            self._forget_if_unlinked(key + SUFFIX)
            if not os.path.exists(os.path.join(self.data, key + SUFFIX)):
                self.recent.pop(key, None)


class Sender(threading.Thread):
    """Delivers one exporter's queue in order, with backoff; reports each result through ``report``."""

    def __init__(self, spool: Spool, eid: str, exporter: Exporter, cap: float,
                 report: Callable[[str, str, Optional[Window], str], None]):
        super().__init__(name=f"profkit-export-{eid}", daemon=True)
        self.spool, self.eid, self.exporter, self.cap, self.report = spool, eid, exporter, cap, report
        self.wake = threading.Event()
        self.halt = threading.Event()
        self.backoff = 0.0
        self.sent = self.refused = self.failures = 0
        self.last = "nothing sent yet"

    def run(self) -> None:
        # an empty queue waits for the next put() (``wake``; the timeout is only a safety net), a
        # failure for its backoff; the wake is cleared *before* the queue is listed, so a put()
        # while delivering is seen by the next pass, never lost
        while not self.halt.is_set():
            self.wake.clear()
            try:
                emptied = self.deliver_once()
            except OSError as e:  # the spool's directory itself failing (a full or lost disk)
                self.last = f"spool error: {e}"
                emptied = False
            if self.halt.is_set():
                break
            self.wake.wait(self.cap if emptied else (self.backoff or self.cap))

    def deliver_once(self, deadline: Optional[float] = None) -> bool:
        """Deliver what is queued until a failure (or ``deadline``); True if the queue is empty."""
        for key in self.spool.pending(self.eid):
            if self.halt.is_set() or (deadline is not None and time.monotonic() >= deadline):
                return False
            window = self.spool.load(self.eid, key)
            if window is None:
                continue
            try:
                try:
                    self.exporter.send(window)
                except ProfkitError:
                    raise
                except Exception as bug:  # noqa: BLE001 - an exporter's bug: report it, never loop on it
                    raise ProfkitError(f"internal error in the {self.exporter.kind} exporter: "
                                       f"{type(bug).__name__}: {bug}") from None
            except ProfkitError as e:
                if getattr(e, "retryable", False):
                    self.failures += 1
                    self.backoff = min(self.cap, max(1.0, self.backoff * 2))
                    self.last = f"failed, retrying in {self.backoff:.0f} s: {e.message}"
                    self.report(self.eid, "retry", window, e.message)
                    return False
                self.refused += 1
                self.last = f"refused: {e.message}"
                self.report(self.eid, "refused", window, e.message)
                self.spool.done(self.eid, key)
                continue
            self.backoff = 0.0
            self.sent += 1
            self.last = f"sent {format_time(window.end)}"
            self.report(self.eid, "sent", window, "")
            self.spool.done(self.eid, key)
        return True

    def stop(self) -> None:
        self.halt.set()
        self.wake.set()


def window_of(profile: Profile, labels: Dict[str, str], start: datetime, end: datetime, **kw) -> Window:
    """A :class:`Window` (helper for callers that build one from a finished window run)."""
    return Window(profile=profile, labels=labels, start=start, end=end, **kw)

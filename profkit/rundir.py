# SPDX-License-Identifier: Apache-2.0
"""The run directory (``shared/CONTRACT.md``): raw captures, profiles, graphs, reports, manifest.

A :class:`RunDir` owns every file written into its directory, each through one atomic write
(:func:`profkit.atomic.atomic_write`: a temp file in the same directory, fsync, rename, the
umask honoured, the temp file removed on failure). ``manifest.json`` is the typed
:class:`~profkit.runrecord.RunRecord`, rewritten at every change of state, so a run that is
killed mid-way still says what it was doing and which raw captures it has.

A run directory is only ever made in an empty directory, or one that a profkit run left empty
of everything but ``raw/``: profkit never overwrites files it did not make.
"""
from __future__ import annotations

import io
import json
import os
import re
import sys
import time
from datetime import datetime, timezone
from typing import Any, List, Optional

from profkit.atomic import DISK_FULL_ERRNOS, atomic_write, atomic_write_json, disk_full
from profkit.errors import InputError, UsageError
from profkit.runrecord import RunRecord, from_json, owner_of_self

__all__ = ["RunDir", "default_run_path", "now_iso", "safe_name"]


def now_iso() -> str:
    """The current time as RFC 3339 (UTC, seconds)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def safe_name(name: str, limit: int = 40) -> str:
    """A process name made safe for a path component."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:limit].strip(".") or "process"


def default_run_path(pid: int, name: str, base: str = "runs") -> str:
    """``runs/<YYYYmmdd-HHMMSS>-<pid>-<process name>/`` (name made safe for a path)."""
    return os.path.join(base, f"{time.strftime('%Y%m%d-%H%M%S')}-{pid}-{safe_name(name)}")


class RunDir:
    """One run directory: paths, its run record, and every write into it."""

    def __init__(self, path: str, record: Optional[RunRecord] = None):
        self.path = path
        self.record = record if record is not None else RunRecord()
        #: the record as last written by :meth:`save` (None: not written by this RunDir)
        self._saved: Optional[dict] = None
        #: whether its files are fsync'd before they are renamed into place (False: an agent window
        #: of -o, a local copy of what the spool keeps durably until every store has it)
        self.durable = True

    # -- creating and opening -----------------------------------------------------------
    @staticmethod
    def prepare(path: str) -> str:
        """Make ``path`` and ``path/raw`` for a new run; returns ``raw/``.

        Refused (exit 2): a directory that holds a run, or any non-empty directory that is not
        an (empty) run directory profkit prepared: ``-o`` must never overwrite a user's files."""
        if os.path.exists(os.path.join(path, "manifest.json")):
            raise UsageError(f"{path} already holds a run; choose another -o directory")
        if os.path.exists(path) and not os.path.isdir(path):
            raise UsageError(f"{path} exists and is not a directory; choose another -o directory")
        if os.path.isdir(path):
            others = [e for e in os.listdir(path) if e != "raw"]
            raw = os.path.join(path, "raw")
            if others or (os.path.isdir(raw) and os.listdir(raw)):
                raise UsageError(f"{path} is not empty and is not a profkit run directory; refusing to write into it",
                                 hint="choose a new or empty -o directory (profkit never overwrites other files)")
        raw = os.path.join(path, "raw")
        try:
            os.makedirs(raw, exist_ok=True)
        except OSError as e:
            if e.errno in DISK_FULL_ERRNOS:
                raise disk_full(e, raw) from None
            raise UsageError(f"cannot create run directory {path}: {e.strerror or e}") from None
        return raw

    @classmethod
    def create(cls, path: str, record: RunRecord, *, save: bool = True) -> "RunDir":
        """Make the directory (and ``raw/``) and write the first manifest (status ``running``);
        ``save=False`` leaves the first write to the caller (a run written whole at once)."""
        cls.prepare(path)
        from profkit import __version__

        record.profkit = __version__
        record.set_argv(["profkit"] + sys.argv[1:])
        record.status = "running"
        record.start = record.start or now_iso()
        record.owner = owner_of_self()
        run = cls(path, record)
        if save:
            run.save()
        return run

    @classmethod
    def open(cls, path: str) -> "RunDir":
        """Open an existing run directory; its manifest must be a valid run record (schema 1 or 2)."""
        if not os.path.isdir(path):
            what = "no such directory" if not os.path.exists(path) else "a file, not a directory"
            raise InputError(f"{path}: not a run directory ({what})",
                             hint="give a directory that profkit attach/run/heap/bench wrote")
        mpath = os.path.join(path, "manifest.json")
        try:
            with open(mpath, encoding="utf-8") as fh:
                data = json.load(fh)
        except FileNotFoundError:
            raise InputError(f"{path}: not a run directory (no manifest.json)") from None
        except (ValueError, OSError) as e:
            raise InputError(f"{mpath}: unreadable manifest ({e})") from None
        return cls(path, from_json(data, path, mpath))

    # -- paths --------------------------------------------------------------------------
    def file(self, name: str) -> str:
        """A path inside the run directory."""
        return os.path.join(self.path, name)

    @property
    def raw_dir(self) -> str:
        """``raw/``: each tool's own capture, kept as written."""
        return os.path.join(self.path, "raw")

    def relative(self, path: str) -> str:
        """``path`` relative to the run directory (as the record keeps file names)."""
        return os.path.relpath(path, self.path)

    def raw_files(self) -> List[str]:
        """The raw captures present, sorted."""
        return sorted(os.listdir(self.raw_dir)) if os.path.isdir(self.raw_dir) else []

    # -- writing ------------------------------------------------------------------------
    def write_text(self, name: str, text: str) -> str:
        """Write ``name`` (relative to the run directory) atomically; returns its path."""
        path = self.file(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        atomic_write(path, text, sync=self.durable)
        return path

    def read_json(self, name: str) -> Optional[dict]:
        """``name`` read as a JSON object, or None when it is missing, unreadable or not an object
        (the optional files analyses leave: load.json, traces.json, focus.json)."""
        try:
            with open(self.file(name), encoding="utf-8") as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return None
        return data if isinstance(data, dict) else None

    def write_json(self, name: str, value: Any, *, indent: int = 2) -> str:
        """Write ``name`` as JSON atomically; returns its path."""
        path = self.file(name)
        atomic_write_json(path, value, indent=indent, default=str, sync=self.durable)
        return path

    def write_profile(self, name: str, profile) -> str:
        """Write a Profile as folded text (sorted lines) atomically; returns its path."""
        from profkit.folded import write_folded

        buf = io.StringIO()
        write_folded(profile, buf)
        return self.write_text(name, buf.getvalue())

    # -- the record ---------------------------------------------------------------------
    def save(self) -> None:
        """Write ``manifest.json`` atomically (not again when the record is as last written: the
        engine saves at every step, and a step that changed nothing costs no write and no fsync)."""
        data = self.record.to_json()
        if data == self._saved:
            return
        # a running record is superseded within seconds and matters only to a profkit on this same
        # running system (a kill leaves it in the page cache): no fsync; the final one is synced
        atomic_write_json(self.file("manifest.json"), data, default=str,
                          sync=self.durable and data.get("status") != "running")
        self._saved = data

    def warn(self, message: str) -> None:
        """Record a warning in the run record (once)."""
        self.record.warn(message)

    def finish(self, status: str) -> None:
        """Set the final status (``complete``, ``interrupted``, ``collector-error``) and end time."""
        self.record.status = status
        self.record.end = now_iso()
        self.save()

# SPDX-License-Identifier: Apache-2.0
"""The run directory (``shared/CONTRACT.md``): raw captures, profiles, graphs, reports, manifest.

``manifest.json`` is rewritten atomically at every change of state, so a run that is killed
mid-way still says what it was doing and which raw captures it has. ``schema`` is 1.
"""
from __future__ import annotations

import json
import os
import re
import sys
import time
from datetime import datetime, timezone
from typing import Any, Dict, List, Optional

from profkit.errors import InputError, UsageError

__all__ = ["SCHEMA", "RunDir", "default_run_path"]

SCHEMA = 1


def _now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def default_run_path(pid: int, name: str, base: str = "runs") -> str:
    """``runs/<YYYYmmdd-HHMMSS>-<pid>-<process name>/`` (name made safe for a path)."""
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:40] or "process"
    return os.path.join(base, f"{time.strftime('%Y%m%d-%H%M%S')}-{pid}-{safe}")


class RunDir:
    """One run directory: paths, and the manifest kept on disk as it changes."""

    def __init__(self, path: str, manifest: Optional[Dict[str, Any]] = None):
        self.path = path
        self.manifest: Dict[str, Any] = manifest if manifest is not None else {}

    # -- creating and opening -----------------------------------------------------------
    @staticmethod
    def prepare(path: str) -> str:
        """Make ``path`` and ``path/raw`` for a new run (refusing a directory that holds one);
        returns ``raw/``. :meth:`create` calls it; ``bench`` too, to start its load generator first."""
        if os.path.exists(os.path.join(path, "manifest.json")):
            raise UsageError(f"{path} already holds a run; choose another -o directory")
        raw = os.path.join(path, "raw")
        try:
            os.makedirs(raw, exist_ok=True)
        except OSError as e:
            raise UsageError(f"cannot create run directory {path}: {e.strerror or e}") from None
        return raw

    @classmethod
    def create(cls, path: str, **manifest: Any) -> "RunDir":
        """Make the directory (and ``raw/``) and write the first manifest (status ``running``)."""
        cls.prepare(path)
        base = {"schema": SCHEMA, "profkit": _version(), "argv": ["profkit"] + sys.argv[1:],
                "status": "running", "start": _now_iso(), "warnings": [], "collectors": []}
        base.update(manifest)
        run = cls(path, base)
        run.save()
        return run

    @classmethod
    def open(cls, path: str) -> "RunDir":
        """Open an existing run directory; its manifest must be of this schema."""
        mpath = os.path.join(path, "manifest.json")
        try:
            with open(mpath, encoding="utf-8") as fh:
                manifest = json.load(fh)
        except FileNotFoundError:
            raise InputError(f"{path}: not a run directory (no manifest.json)") from None
        except (ValueError, OSError) as e:
            raise InputError(f"{mpath}: unreadable manifest ({e})") from None
        if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
            raise InputError(f"{path}: run directory schema {manifest.get('schema') if isinstance(manifest, dict) else '?'}"
                             f" is not {SCHEMA}", hint="re-create it with this version of profkit")
        return cls(path, manifest)

    # -- paths --------------------------------------------------------------------------
    def file(self, name: str) -> str:
        """A path inside the run directory."""
        return os.path.join(self.path, name)

    @property
    def raw_dir(self) -> str:
        """``raw/``: each tool's own capture, kept as written."""
        return os.path.join(self.path, "raw")

    # -- the manifest -------------------------------------------------------------------
    def save(self) -> None:
        """Write ``manifest.json`` atomically."""
        tmp = self.file(".manifest.json.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(self.manifest, fh, indent=2, sort_keys=True, default=str)
            fh.write("\n")
        os.replace(tmp, self.file("manifest.json"))

    def warn(self, message: str) -> None:
        """Record a warning in the manifest (once)."""
        if message not in self.manifest.setdefault("warnings", []):
            self.manifest["warnings"].append(message)

    def finish(self, status: str, **fields: Any) -> None:
        """Set the final status (``complete``, ``interrupted``, ``collector-error``) and end time."""
        self.manifest.update(fields)
        self.manifest["status"] = status
        self.manifest["end"] = _now_iso()
        self.save()

    def collector_entry(self, cid: str) -> Dict[str, Any]:
        """The manifest entry of one collector (created on first use)."""
        for entry in self.manifest.setdefault("collectors", []):
            if entry["id"] == cid:
                return entry
        entry = {"id": cid}
        self.manifest["collectors"].append(entry)
        return entry

    def raw_files(self) -> List[str]:
        """The raw captures present, sorted."""
        return sorted(os.listdir(self.raw_dir)) if os.path.isdir(self.raw_dir) else []


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("profkit")
    except Exception:
        return "unknown"

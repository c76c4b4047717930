# SPDX-License-Identifier: Apache-2.0
"""``file=DIR``: windows as run directories in a local directory, the layout of ``profkit agent
-o DIR`` (:mod:`profkit.agent.windows`); ``pull`` merges the windows of a range."""
from __future__ import annotations

import os
import threading
from datetime import datetime
from typing import Mapping

from profkit.errors import InputError
from profkit.exporters.base import Exporter, Window
from profkit.model import Profile

__all__ = ["FileExporter", "write_window_run"]

_lock = threading.Lock()


def write_window_run(root: str, window: Window) -> str:
    """Write ``window`` as ``root/windows/<start>-<pid>-<name>/`` (manifest.json and
    profile.folded) and its line of ``root/windows.jsonl``; returns the directory."""
    from profkit.agent.windows import WINDOWS, append_index, ensure_private_dir, index_entry, window_dir_name
    from profkit.outputs import write_profiles
    from profkit.rundir import RunDir, now_iso
    from profkit.runrecord import RunRecord, TargetRecord
    from profkit.timeparse import format_time

    labels = dict(window.labels)
    pid = int(labels["pid"]) if str(labels.get("pid", "")).isdigit() else 0
    name = labels.get("service") or "process"
    ensure_private_dir(os.path.join(root, WINDOWS))
    rel = f"{WINDOWS}/{window_dir_name(window.start, pid, name)}"
    path = os.path.join(root, rel)
    n = 1
    while os.path.exists(path):  # the same window delivered twice (a retry after a lost answer)
        n += 1
        path = os.path.join(root, f"{rel}.{n}")
    rel = os.path.relpath(path, root)
    ensure_private_dir(path)
    rec = RunRecord(mode=window.mode, rate=window.rate, duration_requested=window.seconds,
                    targets=[TargetRecord(pid, labels.get("process", name), labels.get("runtime", "native"),
                                          service=labels.get("service"))])
    rec.window = {"start": format_time(window.start), "end": format_time(window.end), "labels": labels,
                  "sequence": window.sequence}
    rec.start = format_time(window.start)
    # written whole: profile.folded, then the manifest once, already complete (no index line
    # names the directory before both are there)
    run = RunDir.create(path, rec, save=False)
    run.record.duration = round(window.seconds, 3)
    run.record.status, run.record.end = "complete", now_iso()
    cid = labels.get("collector") or "profile"
    write_profiles(run, {cid: window.profile}, [cid])
    try:
        os.rmdir(run.raw_dir)  # made by every run directory; a window sent here has no raw capture
    except OSError:
        pass
    with _lock:
        append_index(root, index_entry(rel_dir=rel, start=window.start, end=window.end, labels=labels,
                                       mode=window.mode, rate=window.rate, unit=window.profile.unit,
                                       samples=window.profile.total, status="complete", sequence=window.sequence))
    return path


def pull_windows(root: str, query: Mapping[str, str], profile_type: str, start: datetime, end: datetime) -> Profile:
    """The merge of the windows under ``root`` whose labels match ``query`` and whose time overlaps
    ``[start, end)`` (``profile_type``: a mode, cpu/wall/alloc/lock, or "" for any)."""
    from profkit.agent.windows import read_index, select
    from profkit.outputs import load_run_profile
    from profkit.rundir import RunDir

    if not os.path.isfile(os.path.join(root, "windows.jsonl")):
        raise InputError(f"{root}: no windows.jsonl (not a profkit agent or file= directory)")
    merged = None
    mode = profile_type.split(":")[0] if profile_type else ""
    for e in select(read_index(root), query, start, end):
        if mode and e.get("mode") != mode:
            continue
        path = os.path.realpath(os.path.join(root, str(e["dir"])))
        if not path.startswith(os.path.realpath(root) + os.sep) or not os.path.isdir(path):
            continue  # rotated away, or a damaged index line naming something outside
        prof = load_run_profile(RunDir.open(path))
        if prof is None:
            continue
        if merged is not None and prof.unit != merged.unit:
            continue
        merged = prof if merged is None else merged.merge(prof)
    return merged if merged is not None else Profile()


class FileExporter(Exporter):
    """``file=DIR``: see the module docstring."""

    kind = "file"

    def __init__(self, url: str, options=None):
        from profkit.exporters.base import ExportOptions

        super().__init__(url, options or ExportOptions())
        self.root = url[len("file://"):] if url.startswith("file://") else url

    def send(self, window: Window) -> None:
        from profkit.agent.windows import ensure_private_dir
        from profkit.errors import DiskFull

        try:
            ensure_private_dir(self.root)
            write_window_run(self.root, window)
        except OSError as e:
            err = DiskFull(f"file={self.root}: cannot write the window: {e.strerror or e}")
            err.retryable = True  # type: ignore[attr-defined]  # space may come back: keep it spooled
            raise err from None

    def pull(self, query: Mapping[str, str], profile_type: str, start: datetime, end: datetime) -> Profile:
        return pull_windows(self.root, query, profile_type, start, end)

# SPDX-License-Identifier: Apache-2.0
"""The local layout of ``profkit agent -o DIR`` and of the ``file=DIR`` exporter
(``docs/contract.md`` "Continuous profiling")::

    DIR/                         mode 0700
    ├── windows.jsonl            one JSON object per window, in the order windows ended
    └── windows/
        └── <start>-<pid>-<name>/   an ordinary run directory (manifest.json, profile.folded;
                                     raw/ only with --keep-raw; SVG and HTML only with --render)

``<start>`` is the window's start, UTC, ``YYYYmmddTHHMMSS.mmmZ``. :func:`rotate` keeps the newest
``keep`` windows (or those that fit ``keep_size`` bytes) and rewrites the index to match.
:func:`read_index` + :func:`select` are how ``pull --store file=DIR`` finds a range's windows.
"""
from __future__ import annotations

import json
import os
import shutil
from datetime import datetime, timezone
from typing import Dict, Iterable, Iterator, List, Mapping, Optional

from profkit.atomic import atomic_write
from profkit.rundir import safe_name
from profkit.timeparse import format_time, parse_time

__all__ = ["INDEX", "WINDOWS", "dir_size", "ensure_private_dir", "index_entry", "read_index", "rotate", "select",
           "window_dir_name"]

INDEX = "windows.jsonl"
WINDOWS = "windows"


def ensure_private_dir(path: str) -> str:
    """Make ``path`` (and parents) with mode 0700; an existing one is narrowed to 0700."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def window_dir_name(start: datetime, pid: int, name: str) -> str:
    """``<start>-<pid>-<name>``: start as ``YYYYmmddTHHMMSS.mmmZ`` (sorts by time), name made path-safe."""
    t = start.astimezone(timezone.utc)
    return f"{t.strftime('%Y%m%dT%H%M%S')}.{t.microsecond // 1000:03d}Z-{pid}-{safe_name(name)}"


def index_entry(*, rel_dir: str, start: datetime, end: datetime, labels: Mapping[str, str], mode: str,
                rate: Optional[float], unit: str, samples: float, status: str, sequence: int,
                warnings: Iterable[str] = ()) -> Dict[str, object]:
    """One line of ``windows.jsonl`` (the fields ``docs/contract.md`` lists)."""
    return {"seq": sequence, "dir": rel_dir, "start": format_time(start), "end": format_time(end),
            "seconds": round((end - start).total_seconds(), 3), "labels": dict(labels), "mode": mode,
            "rate": rate, "unit": unit, "samples": samples, "status": status, "warnings": list(warnings)[:5]}


def append_index(root: str, entry: Mapping[str, object]) -> None:
    """Append one line to ``root/windows.jsonl`` (a single write of a whole line)."""
    line = json.dumps(entry, ensure_ascii=False, separators=(",", ":"), default=str) + "\n"
    fd = os.open(os.path.join(root, INDEX), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def read_index(root: str) -> Iterator[Dict[str, object]]:
    """The entries of ``root/windows.jsonl`` (a torn last line, from a kill mid-write, is skipped)."""
    path = os.path.join(root, INDEX)
    try:
        fh = open(path, encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return
    with fh:
        for line in fh:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and isinstance(entry.get("dir"), str):
                yield entry


def select(entries: Iterable[Mapping[str, object]], query: Mapping[str, str], start: datetime,
           end: datetime) -> List[Mapping[str, object]]:
    """The entries whose labels match every ``query`` pair and whose window overlaps ``[start, end)``."""
    out = []
    for e in entries:
        labels = e.get("labels") if isinstance(e.get("labels"), dict) else {}
        if any(str(labels.get(k)) != v for k, v in query.items()):
            continue
        try:
            ws, we = parse_time(str(e["start"])), parse_time(str(e["end"]))
        except Exception:  # noqa: BLE001 - a damaged line is not a window
            continue
        if ws < end and we > start:
            out.append(e)
    return out


def dir_size(path: str) -> int:
    """Bytes of the files under ``path``."""
    total = 0
    for base, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(base, f)).st_size
            except OSError:
                pass
    return total


def rotate(root: str, keep: Optional[int] = None, keep_size: Optional[int] = None, protect: Iterable[str] = ()) -> int:
    """Delete the oldest windows beyond ``keep`` (count) or ``keep_size`` (bytes); returns how many.
    ``protect``: windows still being recorded (neither counted nor deleted)."""
    if not keep and not keep_size:
        return 0
    wdir = os.path.join(root, WINDOWS)
    busy = set(protect)
    try:
        with os.scandir(wdir) as it:  # the directory entries' types: no stat per window
            names = sorted(e.name for e in it if e.name not in busy and e.is_dir())
    except FileNotFoundError:
        names = []
    doomed: List[str] = []
    if keep and len(names) > keep:
        doomed = names[:len(names) - keep]
    if keep_size:
        kept = [n for n in names if n not in doomed]
        sizes = {n: dir_size(os.path.join(wdir, n)) for n in kept}
        total = sum(sizes.values())
        for n in kept[:-1]:  # the newest window is always kept
            if total <= keep_size:
                break
            doomed.append(n)
            total -= sizes[n]
    if not doomed:
        return 0
    for n in doomed:
        shutil.rmtree(os.path.join(wdir, n), ignore_errors=True)
    gone = {f"{WINDOWS}/{n}" for n in doomed}
    kept = []
    for line in _index_lines(root):
        d = _dir_of(line)
        if d is not None and d not in gone:  # a damaged line is dropped, as read_index skips it
            kept.append(line if line.endswith("\n") else line + "\n")
    atomic_write(os.path.join(root, INDEX), "".join(kept))
    return len(doomed)


def _index_lines(root: str) -> Iterator[str]:
    """The lines of ``root/windows.jsonl`` as written (kept as they are when the index is rewritten)."""
    try:
        with open(os.path.join(root, INDEX), encoding="utf-8", errors="surrogateescape") as fh:
            yield from fh
    except FileNotFoundError:
        return


def _dir_of(line: str) -> Optional[str]:
    """The ``dir`` of an index line; None for a damaged line."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry.get("dir") if isinstance(entry, dict) and isinstance(entry.get("dir"), str) else None

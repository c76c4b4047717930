# SPDX-License-Identifier: Apache-2.0
"""Shared pieces of the benchmarks: run a command and measure it, best of N, print ratios.

Each run is measured with ``os.wait4``, which gives the child's own CPU time and peak RSS.
Figures are reported as ratios against a peer tool run in the same process, on the same
input, because the machines are shared and noisy.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from typing import List, Optional, Sequence

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(REPO), "shared")
PROFKIT = [sys.executable, "-m", "profkit"]
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """A running process's own user + system CPU seconds (/proc/PID/stat; its children not in it)."""
    with open(f"/proc/{pid}/stat") as fh:
        rest = fh.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / _CLK_TCK


@dataclass
class Run:
    """One measured run of a command."""

    label: str
    wall: float      #: seconds
    cpu: float       #: user + system seconds of the child
    maxrss_mb: float
    out_bytes: int


def measure(label: str, cmd: Sequence[str], *, stdin: Optional[str] = None, stdout: Optional[str] = None,
            env: Optional[dict] = None) -> Run:
    """Run ``cmd`` once (stdin/stdout redirected to files) and measure it; fail loudly on error."""
    fin = open(stdin, "rb") if stdin else subprocess.DEVNULL
    fout = open(stdout, "wb") if stdout else subprocess.DEVNULL
    t0 = time.perf_counter()
    proc = subprocess.Popen(list(cmd), stdin=fin, stdout=fout, stderr=subprocess.PIPE,
                            env=dict(os.environ, **(env or {})))
    _, status, ru = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    for f in (fin, fout):
        if hasattr(f, "close"):
            f.close()
    if proc.returncode != 0:
        raise SystemExit(f"{label}: {' '.join(cmd)} failed ({proc.returncode}): {err[-500:]}")
    size = os.path.getsize(stdout) if stdout else 0
    return Run(label, wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024.0, size)


def best_of(n: int, label: str, cmd: Sequence[str], **kw) -> Run:
    """The fastest (by wall time) of ``n`` runs; peak RSS is the largest seen."""
    runs = [measure(label, cmd, **kw) for _ in range(n)]
    best = min(runs, key=lambda r: r.wall)
    best.maxrss_mb = max(r.maxrss_mb for r in runs)
    return best


def tool(name: str) -> Optional[str]:
    """A peer tool's path (PATH, then ~/.cargo/bin), or None."""
    found = shutil.which(name) or shutil.which(name, path=os.path.expanduser("~/.cargo/bin"))
    return found


def require_inferno(name: str) -> str:
    """inferno's binary, or exit with the install command."""
    path = tool(name)
    if not path:
        raise SystemExit(f"{name} not found: install it with `cargo install inferno` (crates.io)")
    return path


def table(runs: List[Run], *, baseline: str, input_mb: Optional[float] = None) -> str:
    """A Markdown table of runs with wall/CPU ratios against the run labelled ``baseline``."""
    base = next(r for r in runs if r.label == baseline)
    head = "| tool | wall s | CPU s | peak RSS MB | output MB | wall ÷ " + baseline + " | CPU ÷ " + baseline + " |"
    if input_mb:
        head += " MB/s per CPU-s |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in runs:
        row = (f"| {r.label} | {r.wall:.2f} | {r.cpu:.2f} | {r.maxrss_mb:.0f} | {r.out_bytes / 1e6:.1f} | "
               f"{r.wall / base.wall:.2f} | {r.cpu / base.cpu:.2f} |")
        if input_mb:
            row += f" {input_mb / r.cpu:.0f} |"
        lines.append(row)
    return "\n".join(lines)


def save(name: str, payload: dict) -> str:
    """Write results as JSON under benchmarks/results/ and return the path."""
    out_dir = os.path.join(REPO, "benchmarks", "results")
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, f"{name}.json")
    with open(path, "w") as fh:
        json.dump(payload, fh, indent=2, default=lambda o: asdict(o))
    return path

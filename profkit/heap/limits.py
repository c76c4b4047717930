# SPDX-License-Identifier: Apache-2.0
"""The memory limits that apply to a process, and its cgroup's OOM kills: all read from /proc
and /sys; nothing touches the target."""
from __future__ import annotations

import os
from typing import List, Optional

from profkit import growth

__all__ = ["limits_for", "oom_kills"]


def _read(path: str) -> Optional[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def _cgroup_dir(pid: int) -> Optional[str]:
    text = _read(f"/proc/{pid}/cgroup") or ""
    for line in text.splitlines():
        if line.startswith("0::"):  # cgroup v2 (unified)
            return "/sys/fs/cgroup" + line[3:].strip()
    return None


def _machine_ram() -> Optional[int]:
    for line in (_read("/proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1]) * 1024
    return None


def limits_for(pid: int, max_heap: Optional[int] = None) -> List[growth.Limit]:
    """The memory limits that apply to a process: -Xmx (given), cgroup memory.max, RLIMIT_AS, RAM."""
    out: List[growth.Limit] = []
    if max_heap:
        out.append(growth.Limit("-Xmx", int(max_heap), "jcmd VM.flags MaxHeapSize"))
    cg = _cgroup_dir(pid)
    if cg:
        text = (_read(os.path.join(cg, "memory.max")) or "").strip()
        if text.isdigit():
            out.append(growth.Limit("cgroup memory.max", int(text), os.path.join(cg, "memory.max")))
    for line in (_read(f"/proc/{pid}/limits") or "").splitlines():
        if line.startswith("Max address space"):
            soft = line.split()[3]
            if soft.isdigit():
                out.append(growth.Limit("RLIMIT_AS", int(soft), f"/proc/{pid}/limits"))
    ram = _machine_ram()
    if ram:
        out.append(growth.Limit("machine RAM", ram, "/proc/meminfo"))
    return out


def oom_kills(pid: int) -> Optional[dict]:
    """The cgroup's ``memory.events`` OOM counters (``oom``, ``oom_kill``), or None without cgroup v2."""
    cg = _cgroup_dir(pid)
    text = _read(os.path.join(cg, "memory.events")) if cg else None
    if text is None:
        return None
    events = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
    return {"oom": int(events.get("oom", 0)), "oom_kill": int(events.get("oom_kill", 0)),
            "source": os.path.join(cg, "memory.events")}

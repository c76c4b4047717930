# SPDX-License-Identifier: Apache-2.0
"""Which processes the agent profiles in a window, re-resolved every window: the ``--pid``s
still alive, the command lines matching ``--name`` (as ``attach`` matches them), every process
of a ``--cgroup``, and with ``--children`` their children. Never profkit itself, its ancestors
or its own tools (:func:`profkit.targets.own_family`). Nothing found is not an error here."""
from __future__ import annotations

import os
from typing import List, Optional, Sequence

from profkit.errors import ProfkitError, UsageError
from profkit.targets import Target, children_of, find_by_name, inspect, own_family

__all__ = ["TargetSpec", "cgroup_procs"]

CGROUP_ROOT = "/sys/fs/cgroup"


def cgroup_dir(path: str) -> str:
    """The cgroup directory of ``--cgroup PATH``: a path under /sys/fs/cgroup, or one relative to
    it (``system.slice/nginx.service``, the form /proc/PID/cgroup shows)."""
    if path.startswith(CGROUP_ROOT + "/") or path == CGROUP_ROOT:
        full = path
    else:  # cgroup v2, or the unified hierarchy of a hybrid (v1 + v2) system
        tries = [os.path.join(CGROUP_ROOT, path.lstrip("/")), os.path.join(CGROUP_ROOT, "unified", path.lstrip("/"))]
        full = next((t for t in tries if os.path.isfile(os.path.join(t, "cgroup.procs"))), tries[0])
    full = os.path.realpath(full)
    if not (full == CGROUP_ROOT or full.startswith(CGROUP_ROOT + "/")):
        raise UsageError(f"--cgroup {path!r} is not under {CGROUP_ROOT}")
    if not os.path.isfile(os.path.join(full, "cgroup.procs")):
        raise UsageError(f"--cgroup {path!r}: no such cgroup ({full}/cgroup.procs is missing)",
                         hint="cat /proc/PID/cgroup shows a process's cgroup, e.g. 0::/system.slice/nginx.service")
    return full


def cgroup_procs(directory: str) -> List[int]:
    """Every PID of a cgroup and of the cgroups below it."""
    out: List[int] = []
    for base, _, files in os.walk(directory):
        if "cgroup.procs" in files:
            try:
                with open(os.path.join(base, "cgroup.procs")) as fh:
                    out += [int(x) for x in fh.read().split()]
            except OSError:
                continue
    return sorted(set(out))


class TargetSpec:
    """``--pid``/``--name``/``--cgroup``/``--children``, resolved anew by :meth:`resolve`."""

    def __init__(self, pids: Sequence[int] = (), name: Optional[str] = None, cgroup: Optional[str] = None,
                 children: bool = False):
        if not pids and not name and not cgroup:
            raise UsageError("give --pid PID (repeatable), --name PATTERN or --cgroup PATH")
        if name:
            from profkit.targets import compile_pattern

            compile_pattern(name)
        self.pids, self.name, self.children = list(pids), name, children
        self.cgroup = cgroup_dir(cgroup) if cgroup else None

    def describe(self) -> str:
        parts = [f"--pid {p}" for p in self.pids]
        if self.name:
            parts.append(f"--name {self.name!r}")
        if self.cgroup:
            parts.append(f"--cgroup {self.cgroup}")
        return " ".join(parts)

    def resolve(self) -> List[Target]:
        """The targets now (possibly none)."""
        wanted = list(self.pids)
        if self.name:
            wanted += find_by_name(self.name)
        if self.cgroup:
            wanted += cgroup_procs(self.cgroup)
        skip = own_family()
        out: List[Target] = []
        seen = set()
        for pid in dict.fromkeys(wanted):
            self._add(pid, out, seen, skip)
            if self.children:
                for kid in children_of(pid) if os.path.isdir(f"/proc/{pid}") else []:
                    self._add(kid, out, seen, skip)
        return out

    @staticmethod
    def _add(pid: int, out: List[Target], seen: set, skip: set) -> None:
        if pid in seen or pid in skip:
            return
        seen.add(pid)
        try:
            out.append(inspect(pid))
        except ProfkitError:
            pass  # exited between listing and reading it, or a kernel thread of the cgroup

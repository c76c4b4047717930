# SPDX-License-Identifier: Apache-2.0
"""Targets in other namespaces (containers, Kubernetes pods), as seen from the host.

A process in a container has PIDs of its own (``NSpid`` in ``/proc/PID/status``: the host's
first, the innermost namespace's last), a file system of its own (its mount namespace: its
``/tmp``, its binaries) reached from the host by path through ``/proc/PID/root``, and often a
network of its own. :func:`namespaces_of` reads those facts; :func:`container_of` reads the
container runtime and id from the cgroup path; :class:`ContainerDir` is a directory of
profkit's own inside the target's ``/tmp`` (reached through ``/proc/PID/root``) for what a tool
running *inside* the target must read or write there (async-profiler's library and output, JFR
recordings, memray captures), removed afterwards.

Nothing here signals or writes to the target itself; a :class:`ContainerDir` writes only
files profkit names, under a directory it creates with ``O_EXCL`` semantics.
"""
from __future__ import annotations

import errno
import os
import re
import secrets
import shutil
import stat
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from profkit.atomic import atomic_write
from profkit.errors import EnvironmentProblem, PermissionDenied, TargetNotFound

__all__ = ["NAMESPACES", "Container", "ContainerDir", "Namespaces", "container_of", "host_path", "namespaces_of"]

#: The namespace kinds of ``/proc/PID/ns`` that profkit reports.
NAMESPACES = ("pid", "mnt", "net", "user", "uts", "ipc", "cgroup", "time")


@dataclass(frozen=True)
class Namespaces:
    """A process's namespaces compared with profkit's own."""

    pid: int                                  #: the host PID (as profkit sees it)
    nspids: Tuple[int, ...]                   #: ``NSpid``: profkit's namespace first, the innermost last
    ids: Dict[str, str] = field(default_factory=dict)      #: kind → ``pid:[4026531836]``
    same: Dict[str, bool] = field(default_factory=dict)    #: kind → the same as profkit's

    @property
    def nspid(self) -> int:
        """The PID inside the target's own (innermost) PID namespace."""
        return self.nspids[-1] if self.nspids else self.pid

    @property
    def other_pid(self) -> bool:
        return not self.same.get("pid", True)

    @property
    def other_mnt(self) -> bool:
        return not self.same.get("mnt", True)

    @property
    def other_net(self) -> bool:
        return not self.same.get("net", True)

    @property
    def isolated(self) -> bool:
        """In another PID or mount namespace: paths and PIDs the target sees are not profkit's."""
        return self.other_pid or self.other_mnt

    @property
    def root(self) -> str:
        """The target's file system, from the host."""
        return f"/proc/{self.pid}/root"

    def differing(self) -> List[str]:
        return [k for k in NAMESPACES if k in self.same and not self.same[k]]


def _status_field(pid: int, key: str) -> Optional[str]:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return line.split(":", 1)[1].strip()
    except FileNotFoundError:
        raise TargetNotFound(f"no process with PID {pid}") from None
    except OSError:
        return None
    return None


def namespaces_of(pid: int) -> Namespaces:
    """The namespaces of ``pid`` and whether each is profkit's own; unreadable ones are left out
    (reading another user's ``/proc/PID/ns`` needs ptrace rights)."""
    nspid = _status_field(pid, "NSpid")
    nspids = tuple(int(n) for n in (nspid or str(pid)).split() if n.isdigit()) or (pid,)
    ids: Dict[str, str] = {}
    same: Dict[str, bool] = {}
    for kind in NAMESPACES:
        try:
            theirs = os.readlink(f"/proc/{pid}/ns/{kind}")
            ours = os.readlink(f"/proc/self/ns/{kind}")
        except OSError:
            continue
        ids[kind], same[kind] = theirs, theirs == ours
    return Namespaces(pid, nspids, ids, same)


def host_path(pid: int, path: str) -> str:
    """A path as the target sees it, reached from the host (``/proc/PID/root`` + path)."""
    return f"/proc/{pid}/root/{path.lstrip('/')}"


# -- the container runtime, from the cgroup path ------------------------------------------------

_HEX64 = r"[0-9a-f]{64}"
#: (runtime, pattern) tried in order on each component of the cgroup path; group 1 is the id.
_RUNTIMES = (
    ("containerd", re.compile(rf"cri-containerd-({_HEX64})\.scope$")),
    ("cri-o", re.compile(rf"crio-(?:conmon-)?({_HEX64})\.scope$")),
    ("podman", re.compile(rf"libpod-(?:conmon-)?({_HEX64})(?:\.scope)?$")),
    ("docker", re.compile(rf"docker-({_HEX64})\.scope$")),
    ("docker", re.compile(rf"^({_HEX64})$")),  # cgroup v1 /docker/<id>, cgroupfs kubepods/<pod>/<id>
)
_POD = re.compile(r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})")


@dataclass(frozen=True)
class Container:
    """What the cgroup path says about a process's container ("" where it says nothing)."""

    cgroup: str              #: the cgroup v2 path (or v1's first named hierarchy)
    runtime: str = ""        #: docker, containerd, cri-o, podman; "" when none is recognised
    id: str = ""             #: the container id (64 hex digits)
    pod: str = ""            #: the Kubernetes pod UID, for kubepods cgroups
    kubernetes: bool = False


def parse_cgroup(text: str) -> str:
    """The cgroup path from ``/proc/PID/cgroup`` text: the v2 line (``0::PATH``), else the
    first v1 hierarchy that has a path other than ``/``."""
    v1 = ""
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[0] == "0" and parts[1] == "":
            return parts[2]
        if not v1 and parts[2] not in ("", "/"):
            v1 = parts[2]
    return v1 or "/"


def container_from_cgroup(path: str) -> Container:
    """The runtime, container id and pod UID that a cgroup path names."""
    kube = "kubepods" in path
    pod_m = _POD.search(path)
    pod = pod_m.group(1).replace("_", "-") if pod_m else ""
    parts = [p for p in path.split("/") if p]
    for part in reversed(parts):
        for runtime, pattern in _RUNTIMES:
            m = pattern.search(part)
            if m:
                if runtime == "docker" and pattern.pattern.startswith("^") and kube:
                    runtime = "kubernetes (cgroupfs driver)"
                return Container(path, runtime, m.group(1), pod, kube)
    return Container(path, "kubernetes" if kube else "", "", pod, kube)


def container_of(pid: int) -> Container:
    """The container of ``pid`` from ``/proc/PID/cgroup`` (an empty runtime: none recognised)."""
    try:
        with open(f"/proc/{pid}/cgroup", encoding="utf-8", errors="replace") as fh:
            text = fh.read(65536)
    except FileNotFoundError:
        raise TargetNotFound(f"no process with PID {pid}") from None
    except OSError:
        return Container("")
    return container_from_cgroup(parse_cgroup(text))


# -- a directory of profkit's own inside the target's file system --------------------------------

def _grant_hint(pid: int, err: OSError, where: str) -> Tuple[str, str]:
    if err.errno == errno.EROFS:
        return (f"the container's {where} is read-only (readOnlyRootFilesystem?), so nothing can be placed "
                f"inside process {pid}'s file system",
                "give the container a writable /tmp: an emptyDir volume (Kubernetes) or --tmpfs /tmp (docker)")
    if err.errno in (errno.EACCES, errno.EPERM):
        return (f"cannot write into process {pid}'s {where} through /proc/{pid}/root: {err.strerror}",
                "run profkit as root with CAP_SYS_PTRACE (reading /proc/PID/root) and CAP_DAC_OVERRIDE, "
                "e.g. docker run --pid=host --cap-add SYS_PTRACE")
    if err.errno == errno.ENOSPC:
        return (f"process {pid}'s {where} is full", "free space in the container's /tmp")
    return (f"cannot write into process {pid}'s {where}: {err.strerror}", "")


class ContainerDir:
    """``/tmp/profkit-RANDOM`` inside a target's file system: :attr:`inner` is the path the
    target sees, :meth:`outer` reaches it from the host; owned by the target's user, so a tool
    inside the target (running as that user) can write there. :meth:`remove` deletes it."""

    def __init__(self, pid: int, label: str, base: str = "/tmp"):
        self.pid = pid
        self.inner = f"{base.rstrip('/')}/profkit-{label}-{secrets.token_hex(4)}"
        self._outer = host_path(pid, self.inner)
        try:
            st = os.stat(f"/proc/{pid}")
        except OSError:
            raise TargetNotFound(f"process {pid} exited") from None
        try:
            os.mkdir(self._outer, 0o700)  # fails if the name is taken: never someone else's directory
            if os.geteuid() == 0 and st.st_uid != 0:
                os.chown(self._outer, st.st_uid, st.st_gid)
        except OSError as e:
            message, hint = _grant_hint(pid, e, base)
            raise (PermissionDenied if e.errno in (errno.EACCES, errno.EPERM) else EnvironmentProblem)(
                message, hint=hint or None) from None
        self.uid, self.gid = st.st_uid, st.st_gid

    def __enter__(self) -> "ContainerDir":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()

    def path(self, name: str) -> str:
        """A file of this directory as the target sees it."""
        return f"{self.inner}/{name}"

    def outer(self, name: str = "") -> str:
        """A file of this directory reached from the host."""
        return f"{self._outer}/{name}" if name else self._outer

    def make_file(self, name: str) -> str:
        """An empty file the target's user may write; returns its inner path."""
        path = self.outer(name)
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600))
        if os.geteuid() == 0 and self.uid != 0:
            os.chown(path, self.uid, self.gid)
        return self.path(name)

    def copy_in(self, src: str, name: str, mode: int = 0o755) -> str:
        """Copy a host file in (readable by the target's user); returns its inner path."""
        dst = self.outer(name)
        try:
            with open(src, "rb") as fh:
                atomic_write(dst, lambda out: shutil.copyfileobj(fh, out), binary=True, mode=mode, honour_umask=False)
        except OSError as e:
            message, hint = _grant_hint(self.pid, e, "/tmp")
            raise EnvironmentProblem(message, hint=hint or None) from None
        return self.path(name)

    def fetch(self, name: str, dest: str) -> bool:
        """Copy a file the target wrote here to ``dest`` on the host (atomically, never following
        a link); False when it is not there (yet) or empty."""
        try:
            fd = os.open(self.outer(name), os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return False
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fd).st_mode) or os.fstat(fd).st_size == 0:
                return False
            atomic_write(dest, lambda out: shutil.copyfileobj(fh, out), binary=True)
        return True

    def read_text(self, name: str, limit: int = 8192) -> str:
        try:
            with open(os.open(self.outer(name), os.O_RDONLY | os.O_NOFOLLOW), encoding="utf-8", errors="replace") as fh:
                return fh.read(limit)
        except OSError:
            return ""

    def remove(self) -> None:
        """Delete the directory and what is in it (never raises: the target may have exited)."""
        shutil.rmtree(self._outer, ignore_errors=True)

# SPDX-License-Identifier: Apache-2.0
"""``profkit doctor --pid N`` for a target's namespaces and container: which namespaces differ
from profkit's, the container runtime and id read from its cgroup path, and what each collector
can and cannot do for that target (one line each, with the fix)."""
from __future__ import annotations

import os
import shutil
from typing import Iterator, Tuple

from profkit.errors import ProfkitError
from profkit.namespaces import Namespaces, container_of, host_path, namespaces_of
from profkit.targets import CAP_SYS_ADMIN, has_cap

__all__ = ["namespace_lines"]

Line = Tuple[str, str]


def _seccomp(pid: object) -> str:
    """``Seccomp`` of /proc/PID/status: 0 none, 1 strict, 2 filter ("" unknown)."""
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("Seccomp:"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def _tmp_state(pid: int) -> Tuple[bool, str]:
    """(writable, words) for the target's /tmp, reached through /proc/PID/root."""
    tmp = host_path(pid, "/tmp")
    try:
        vfs = os.statvfs(tmp)
    except OSError as e:
        return False, f"its /tmp is not reachable through /proc/{pid}/root ({e.strerror})"
    if vfs.f_flag & os.ST_RDONLY:
        return False, "its /tmp is read-only"
    if not os.access(tmp, os.W_OK):
        return False, "its /tmp is not writable by profkit's user"
    return True, "its /tmp is writable"


def _facts(ns: Namespaces) -> Iterator[Line]:
    pid = ns.pid
    if not ns.ids:
        yield "WARN", f"pid {pid} namespaces: unreadable (/proc/{pid}/ns needs ptrace rights: run as root or its user)"
        return
    words = ", ".join(f"{k}={'same' if ns.same[k] else 'other'}" for k in ns.ids)
    yield "INFO", f"pid {pid} namespaces: {words}" + (f"; PID {ns.nspid} inside its own" if ns.other_pid else "")
    c = container_of(pid)
    if c.runtime or c.kubernetes:
        ident = f", id {c.id}" if c.id else ""
        pod = f", pod {c.pod}" if c.pod else ""
        yield "INFO", f"pid {pid} container: {c.runtime or 'unknown runtime'}{ident}{pod} (cgroup {c.cgroup})"
    elif ns.isolated:
        yield "INFO", f"pid {pid} container: namespaces of its own, no runtime named in its cgroup ({c.cgroup})"
    else:
        yield "INFO", f"pid {pid} container: none (cgroup {c.cgroup})"
    if ns.isolated:
        try:
            os.listdir(ns.root)
            yield "OK", f"pid {pid} file system: readable through {ns.root}"
        except OSError as e:
            yield "FAIL", (f"pid {pid} file system: {ns.root} is not readable ({e.strerror}); fix: run profkit as root "
                           "with CAP_SYS_PTRACE (docker run --pid=host --cap-add SYS_PTRACE)")


def _jvm(ns: Namespaces, tmp_ok: bool, tmp_words: str) -> Iterator[Line]:
    pid = ns.pid
    sock = f"/proc/{pid}/root/tmp/.java_pid{ns.nspid}"
    listener = "up" if os.path.exists(sock) else "started on demand (a .attach_pid file and SIGQUIT)"
    yield "INFO", (f"attach: profkit speaks the HotSpot attach protocol itself over {sock} (listener {listener}); "
                   "the host's jcmd is not needed for this JVM")
    fix = "; fix: give the container a writable /tmp (emptyDir volume, or docker --tmpfs /tmp)"
    for cid, what in (("async-profiler", "its library is copied into the container's /tmp and loaded by that path; "
                                         "the profile is written there and read back"),
                      ("jfr", "the recording is written into the container's /tmp and read back")):
        if tmp_ok:
            yield "OK", f"{cid}: {what} ({tmp_words}; removed afterwards)"
        else:
            yield "FAIL", f"{cid}: cannot work, {tmp_words}{fix}"
    if _seccomp(pid) == "2":
        yield "INFO", ("async-profiler: the JVM runs under a seccomp filter, which may refuse perf events "
                       "(perf_event_open); profkit then samples CPU with itimer instead")
    yield "INFO", ("perf: the JVM's JIT map (/tmp/perf-NSPID.map, written on request inside the container) is copied "
                   "to the host's /tmp/perf-PID.map for perf script and removed afterwards")
    yield "OK", "profkit heap: class histograms and flags over the attach protocol; jstat reads hsperfdata through " \
                "/proc/PID/root"


def _python(ns: Namespaces, tmp_ok: bool, tmp_words: str) -> Iterator[Line]:
    pid = ns.pid
    yield "OK", "py-spy: reads the interpreter's memory by host PID and its binaries through /proc/PID/root"
    if not tmp_ok:
        yield "FAIL", (f"memray: cannot work, {tmp_words} (its capture is written inside the container); fix: give "
                       "the container a writable /tmp (emptyDir volume, or docker --tmpfs /tmp)")
        return
    try:
        from collectors.memray import container_prerequisites

        prefix = container_prerequisites(pid, ns)
    except ImportError:
        yield "WARN", "memray: not installed here (pip install memray)"
        return
    except ProfkitError as e:
        yield "WARN", f"memray: {e.message}" + (f"; fix: {e.hint}" if e.hint else "")
        return
    if prefix and not (os.geteuid() == 0 or has_cap(CAP_SYS_ADMIN)):
        yield "FAIL", ("memray: the target has a network namespace of its own and entering it (nsenter --net) needs "
                       "CAP_SYS_ADMIN; fix: add it, or run profkit in the target's pod")
    elif prefix:
        yield "OK", ("memray: memray is at profkit's path inside the container; attach runs in the target's network "
                     "namespace (nsenter --net, CAP_SYS_ADMIN)")
    else:
        yield "OK", "memray: memray is at profkit's path inside the container; the capture is written there and read back"


def namespace_lines(pid: int, runtime: str) -> Iterator[Line]:
    """Doctor lines for target ``pid`` of ``runtime`` (python, jvm, native)."""
    try:
        ns = namespaces_of(pid)
    except ProfkitError as e:
        yield "FAIL", f"pid {pid}: {e.message}"
        return
    yield from _facts(ns)
    if not ns.isolated:
        return
    tmp_ok, tmp_words = _tmp_state(pid)
    if _seccomp("self") == "2":
        yield "WARN", ("profkit itself runs under a seccomp filter: docker's default profile refuses perf_event_open "
                       "(perf); fix: docker run --security-opt seccomp=unconfined, or a profile that allows it")
    if runtime == "jvm":
        yield from _jvm(ns, tmp_ok, tmp_words)
    elif runtime == "python":
        yield from _python(ns, tmp_ok, tmp_words)
    if shutil.which("perf"):
        yield "OK", ("perf: records by host PID and names functions of binaries that exist only inside the container "
                     "(perf reads them in the target's mount namespace while it runs)")

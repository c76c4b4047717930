# SPDX-License-Identifier: Apache-2.0
"""The HotSpot dynamic attach protocol, spoken by profkit itself (what ``jcmd`` speaks).

Used for a JVM in another PID or mount namespace (a container), where the host's ``jcmd`` may
not reach it (an older or missing host JDK, another JDK inside the image) and where every
``jcmd`` call would cost a JVM start of its own. The protocol, as HotSpot implements it on
Linux (``attachListener_linux.cpp``):

1. The JVM's attach listener is a UNIX socket ``/tmp/.java_pidNSPID`` in the JVM's own file
   system (``NSPID`` is its PID in its own namespace): profkit reaches it by path through
   ``/proc/PID/root/tmp``.
2. When the socket is not there, the listener is started on demand: a file ``.attach_pidNSPID``
   in the JVM's working directory (else in its ``/tmp``), owned by the JVM's user (or root), and
   a ``SIGQUIT``; the JVM's signal handler sees the file and starts the listener instead of
   printing a thread dump. profkit removes the file afterwards. A JVM that does not handle
   ``SIGQUIT`` (``-Xrs``) would die of it: :func:`collectors.jvm.attach_preconditions` refuses.
3. One request per connection: ``1\\0COMMAND\\0ARG1\\0ARG2\\0ARG3\\0`` (protocol version 1; each
   string at most 1024 bytes, missing arguments empty). The JVM checks the peer's credentials
   (the same effective uid and gid as the JVM, or root).
4. The answer: the result code as decimal text and a newline, then the command's output, then
   the JVM closes the connection. ``jcmd`` sends ``jcmd`` with the whole command line as ARG1
   (the diagnostic command's failure is result code -1 with the exception text); ``load``
   (``ARG1`` library, ``ARG2`` ``true`` for an absolute path, ``ARG3`` the agent's options)
   answers ``return code: N`` (Java 9+) or N as the result code (Java 8).
"""
from __future__ import annotations

import errno
import os
import signal
import socket
import stat
import time
from typing import List, Optional, Sequence, Tuple

from profkit.errors import CollectorFailed, EnvironmentProblem, PermissionDenied, TargetNotFound
from profkit.namespaces import namespaces_of

__all__ = ["ATTACH_TIMEOUT", "attach_request", "jcmd_request", "socket_path"]

#: Seconds to wait for the listener to come up after SIGQUIT (a busy JVM can take several; jcmd waits 10).
ATTACH_TIMEOUT = 20.0
_ARG_MAX = 1024
_VERSION = b"1"


def socket_path(pid: int, nspid: Optional[int] = None) -> str:
    """The JVM's attach socket reached from the host."""
    if nspid is None:
        nspid = namespaces_of(pid).nspid
    return f"/proc/{pid}/root/tmp/.java_pid{nspid}"


def _is_socket(path: str) -> bool:
    try:
        return stat.S_ISSOCK(os.stat(path).st_mode)
    except OSError:
        return False


def _trigger_file(pid: int, nspid: int) -> str:
    """Create ``.attach_pidNSPID`` in the JVM's working directory, else its /tmp; returns its path."""
    try:
        owner = os.stat(f"/proc/{pid}")
    except OSError:
        raise TargetNotFound(f"process {pid} exited") from None
    errors = []
    for where in (f"/proc/{pid}/cwd", f"/proc/{pid}/root/tmp"):
        path = f"{where}/.attach_pid{nspid}"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        except FileExistsError:
            return path  # another attacher's trigger: it serves this attach too
        except OSError as e:
            errors.append(e)
            continue
        os.close(fd)
        if os.geteuid() == 0 and owner.st_uid != 0:
            os.chown(path, owner.st_uid, owner.st_gid)  # HotSpot accepts its own user's file, or root's
        return path
    if any(e.errno == errno.EROFS for e in errors):
        raise EnvironmentProblem(f"JVM {pid}'s attach listener is not running and its working directory and /tmp are "
                                 "read-only, so it cannot be asked to start one",
                                 hint="give the container a writable /tmp (an emptyDir volume, or docker --tmpfs /tmp), "
                                      "or start the JVM with -XX:+StartAttachListener")
    raise PermissionDenied(f"cannot create the attach trigger file for JVM {pid}: {errors[-1].strerror}",
                           hint="run profkit as root (or as the JVM's user) with CAP_SYS_PTRACE")


def _start_listener(pid: int, nspid: int, path: str, timeout: float) -> None:
    trigger = _trigger_file(pid, nspid)
    try:
        try:
            os.kill(pid, signal.SIGQUIT)
        except ProcessLookupError:
            raise TargetNotFound(f"process {pid} exited") from None
        except PermissionError:
            raise PermissionDenied(f"not allowed to signal JVM {pid} (SIGQUIT starts its attach listener)",
                                   hint="run profkit as root or as the JVM's user") from None
        deadline = time.monotonic() + timeout
        delay = 0.02
        while not _is_socket(path):
            if time.monotonic() >= deadline:
                raise EnvironmentProblem(
                    f"JVM {pid} did not start its attach listener within {timeout:.0f} s of SIGQUIT",
                    hint="it may run with -XX:+DisableAttachMechanism, or be too busy; check its stdout for a thread "
                         "dump (then it did not see the trigger file)")
            if not os.path.exists(f"/proc/{pid}"):
                raise TargetNotFound(f"process {pid} exited")
            time.sleep(delay)
            delay = min(0.2, delay * 1.5)
    finally:
        try:
            os.unlink(trigger)
        except OSError:
            pass


def _request(path: str, pid: int, command: str, args: Sequence[str], timeout: float, limit: int) -> Tuple[int, str]:
    parts = [_VERSION, command.encode()] + [a.encode() for a in (list(args) + ["", "", ""])[:3]]
    if any(len(p) > _ARG_MAX for p in parts):
        raise EnvironmentProblem(f"an attach request argument for JVM {pid} is longer than {_ARG_MAX} bytes",
                                 hint="use a shorter run directory path (-o)")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(path)
            s.sendall(b"".join(p + b"\0" for p in parts))
            chunks: List[bytes] = []
            size = 0
            while size < limit:
                chunk = s.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        except socket.timeout:
            raise CollectorFailed(["attach", str(pid), command], 124, f"no answer from JVM {pid} after {timeout:.0f} s") from None
        except ConnectionRefusedError:
            raise EnvironmentProblem(f"JVM {pid}'s attach socket {path} refuses connections (a stale socket?)",
                                     hint="remove the stale socket if the JVM restarted, then retry") from None
        except OSError as e:
            raise EnvironmentProblem(f"cannot talk to JVM {pid} over {path}: {e.strerror or e}") from None
    data = b"".join(chunks)
    head, _, rest = data.partition(b"\n")
    try:
        code = int(head.strip())
    except ValueError:
        raise EnvironmentProblem(
            f"JVM {pid} closed its attach connection without an answer: it refuses profkit's credentials "
            "(it accepts root or its own user; a container with its own user namespace maps root elsewhere)",
            hint="run profkit as the JVM's user, or inside the container's user namespace (nsenter -U -t PID)") from None
    return code, rest.decode("utf-8", "replace")


def attach_request(pid: int, command: str, args: Sequence[str] = (), timeout: float = 30.0,
                   limit: int = 64 * 1024) -> Tuple[int, str]:
    """Send one attach request to JVM ``pid`` (starting its listener if needed); returns
    (result code, output)."""
    nspid = namespaces_of(pid).nspid
    path = socket_path(pid, nspid)
    if not _is_socket(path):
        _start_listener(pid, nspid, path, min(timeout, ATTACH_TIMEOUT))
    return _request(path, pid, command, args, timeout, limit)


def jcmd_request(pid: int, args: Sequence[str], timeout: float = 30.0,
                 limit: int = 64 * 1024) -> Tuple[List[str], int, str]:
    """A diagnostic command (``jcmd PID ARGS…``) over the attach protocol: returns what
    :func:`collectors.jvm.run_jcmd` returns, ``(argv, exit code, output)``, with the argv
    naming the socket (for the run record)."""
    line = " ".join(args)
    argv = [f"attach:{socket_path(pid)}", "jcmd", line]
    code, out = attach_request(pid, "jcmd", [line], timeout, limit)
    return argv, 0 if code == 0 else 1, out.strip()

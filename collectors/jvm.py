# SPDX-License-Identifier: Apache-2.0
"""What the JVM collectors share: finding JDK tools and driving the JDK's attach tool, ``jcmd``.

Used by :mod:`collectors.jfr` (``JFR.start``/``dump``/``stop``) and :mod:`collectors.async_profiler`
(``JVMTI.agent_load``): the preconditions that keep an attach from harming the JVM (not stopped,
not a zombie, an attach socket or SIGQUIT handling), running ``jcmd`` with a timeout and reading
its answers, and the recording lifecycle with periodic dumps and a self-stop margin.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from typing import Dict, List, Optional, Sequence, Tuple

from profkit.errors import CollectorFailed, EnvironmentProblem, ProfkitError, TargetNotFound, UsageError
from profkit.namespaces import ContainerDir, namespaces_of
from profkit.targets import ChildTool, process_state

from collectors.base import Recording

#: How to get the JDK tools (jcmd, jfr).
INSTALL_HINT = "apt-get install openjdk-17-jdk-headless"

def find_jdk_tool(name: str) -> Optional[str]:
    """The path of a JDK tool (``jfr``, ``jcmd``): on PATH, else in ``$JAVA_HOME/bin``; None if neither."""
    path = shutil.which(name)
    if path:
        return path
    home = os.environ.get("JAVA_HOME")
    if home:
        cand = os.path.join(home, "bin", name)
        if os.path.isfile(cand) and os.access(cand, os.X_OK):
            return cand
    return None


# -- the JDK's attach tool (jcmd) ---------
#
# Both JVM collectors run *inside* the target: jcmd asks the JVM to start a recording (JFR) or to
# load an agent (async-profiler), and to write what it has into the run directory. Each start
# tells the tool its own end, so that it stops by itself if profkit dies, even by SIGKILL; profkit
# itself only runs (and, when one hangs, stops) its own short-lived jcmd children.

#: Seconds one jcmd call may take (attaching to a busy JVM can take a few).
JCMD_TIMEOUT = 30.0
#: Seconds the tool inside the JVM runs past the requested duration before ending by itself, so
#: that profkit's own stop (a jcmd away) normally comes first.
SELF_STOP_MARGIN = 3
#: Seconds from the start to the first periodic dump.
FIRST_DUMP = 2.0
# The JVM reads these paths itself, in agent/DCmd argument syntax, which cannot quote them.
_UNSAFE_PATH = re.compile(r"[\s,%\"'=]")


def jdk_version(tool: str) -> str:
    """``JAVA_VERSION`` from the ``release`` file of the JDK a tool belongs to ("" if unknown)."""
    home = os.path.dirname(os.path.dirname(os.path.realpath(tool)))
    return _release_version(os.path.join(home, "release"))


def _release_version(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith("JAVA_VERSION="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return ""


def target_java_version(pid: int) -> Optional[Tuple[int, ...]]:
    """The Java version of a running JVM, from the ``release`` file of its own JDK, read through
    ``/proc/PID/root`` (so a JVM in a container is read from its own file system); None if unknown."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return None
    home = os.path.dirname(os.path.dirname(exe))
    text = _release_version(f"/proc/{pid}/root{home}/release")
    nums = [int(n) for n in re.findall(r"\d+", text)[:3]]
    if nums[:1] == [1] and len(nums) > 1:  # 1.8.0_372 is Java 8
        nums = nums[1:]
    return tuple(nums) or None


def agent_path(path: str, what: str) -> str:
    """``path`` made absolute, refused if the JVM could not be told it (agent and DCmd arguments
    split on commas, spaces and ``=``, and async-profiler expands ``%``)."""
    path = os.path.abspath(path)
    if _UNSAFE_PATH.search(path):
        raise UsageError(f"{what} cannot use the path {path!r}: it contains a space, comma, quote, '%' or '='",
                         hint="choose a run directory (-o) without those characters")
    return path


def _status_field(pid: int, key: str) -> str:
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def attach_preconditions(pid: int) -> None:
    """Refuse to attach where attaching itself could harm or hang the target.

    * gone or a zombie: nothing to attach to;
    * stopped (``T``/``t``: SIGSTOP or a debugger): jcmd would wait for it forever;
    * no attach listener socket (``/tmp/.java_pidN``) and SIGQUIT not handled: HotSpot's attach
      protocol starts the listener by sending SIGQUIT, which would kill a JVM that ignores the
      signal (``-Xrs``, https://docs.oracle.com/en/java/javase/17/docs/specs/man/java.html;
      JDK 17 starts the listener at once then, but a /tmp cleaner may have removed its socket).
    """
    state = process_state(pid)
    if state in (None, "Z"):
        raise TargetNotFound(f"process {pid} exited")
    if state in ("T", "t"):
        raise EnvironmentProblem(f"JVM {pid} is stopped (state {state}: SIGSTOP or a debugger); attaching would hang",
                                 hint=f"resume it (kill -CONT {pid}) or detach the debugger, then retry")
    nspid = (_status_field(pid, "NSpid").split() or [str(pid)])[-1]
    if os.path.exists(f"/proc/{pid}/root/tmp/.java_pid{nspid}"):
        return  # the attach listener is up: jcmd talks to it without signalling
    caught = _status_field(pid, "SigCgt")
    if caught and not int(caught, 16) >> (3 - 1) & 1:  # bit n-1 is signal n; SIGQUIT is 3
        raise EnvironmentProblem(f"JVM {pid} does not handle SIGQUIT (started with -Xrs?): jcmd's attach would kill it",
                                 hint="restart it without -Xrs, or with -XX:+StartAttachListener")


def in_container(pid: int) -> bool:
    """Whether JVM ``pid`` lives in another PID or mount namespace than profkit (a container):
    then profkit speaks the attach protocol itself and places files inside its file system."""
    try:
        return namespaces_of(pid).isolated
    except ProfkitError:
        return False


def jcmd_argv(jcmd: str, pid: int, args: Sequence[str]) -> List[str]:
    """How :func:`run_jcmd` runs ``args`` for ``pid``, for the run record: the jcmd command line,
    or for a JVM in a container the attach socket and the command line sent over it."""
    if in_container(pid):
        from collectors.hotspot_attach import socket_path

        return [f"attach:{socket_path(pid)}", "jcmd", " ".join(args)]
    return [jcmd, str(pid), *args]


def run_jcmd(jcmd: str, pid: int, args: Sequence[str], timeout: float = JCMD_TIMEOUT,
             limit: int = 64 * 1024) -> Tuple[List[str], int, str]:
    """``jcmd PID ARGS…``: the JDK's jcmd for a JVM in profkit's own namespaces, the attach
    protocol spoken by profkit (:mod:`collectors.hotspot_attach`) for a JVM in a container, which
    the host's jcmd may not reach; returns ``(argv, exit code, output)`` either way."""
    if in_container(pid):
        from collectors.hotspot_attach import jcmd_request

        return jcmd_request(pid, args, timeout, limit)
    return host_jcmd(jcmd, pid, args, timeout, limit)


def host_jcmd(jcmd: str, pid: int, args: Sequence[str], timeout: float = JCMD_TIMEOUT,
              limit: int = 64 * 1024) -> Tuple[List[str], int, str]:
    """Run ``jcmd PID ARGS…`` as profkit's child; returns ``(argv, exit code, output)``.

    jcmd exits 0 when the JVM answered, whatever the answer: callers read the output (its first
    ``limit`` bytes; a thread dump, whose deadlock report comes last, needs a larger one). A jcmd
    still running after ``timeout`` is stopped (it, never the JVM) and reported as a failure.
    """
    argv = [jcmd, str(pid), *args]
    with tempfile.TemporaryFile() as out:
        tool = ChildTool(argv, stdout=out, stderr=subprocess.STDOUT)
        try:
            tool.start()
        except OSError as e:
            raise CollectorFailed(argv, 127, str(e), hint=INSTALL_HINT) from None
        rc = tool.wait(timeout)
        if rc is None:
            tool.stop(grace=2.0, term_grace=2.0)
            raise CollectorFailed(argv, 124, f"no answer from JVM {pid} after {timeout:.0f} s")
        out.seek(0)
        text = out.read(limit).decode("utf-8", "replace")
    # jcmd's first line is "PID:"; the rest is the JVM's answer
    lines = text.splitlines()
    if lines and lines[0].strip() == f"{pid}:":
        lines = lines[1:]
    return argv, rc, "\n".join(lines).strip()


def target_alive(pid: int) -> bool:
    """Whether a process still runs (not gone, not a zombie)."""
    return process_state(pid) not in (None, "Z")


class JcmdRecording(Recording):
    """A capture running inside target JVMs, driven by short ``jcmd`` calls.

    :meth:`begin` starts it in each JVM, telling the tool to end by itself ``limit`` seconds
    later; a thread then asks each JVM every ``dump_interval`` seconds to write what it has so
    far into its raw file, so that an interrupted run keeps data; :meth:`stop` ends it now.
    Subclasses implement ``_start``, ``_dump`` and ``_stop`` for one JVM (raising
    :class:`~profkit.errors.ProfkitError`), and may override ``_settle`` to wait for a file.
    """

    #: the label of the directory a JVM in a container writes into (``/tmp/profkit-LABEL-…``)
    label = "jvm"

    def __init__(self, raw: Dict[int, str], limit: float, dump_interval: float):
        self.raw = raw
        #: the file each JVM writes, as the JVM sees it: the raw file itself, or for a JVM in a
        #: container a file inside its own /tmp (:class:`ContainerDir`), copied back to ``raw``
        self.written: Dict[int, str] = dict(raw)
        self.boxes: Dict[int, ContainerDir] = {}
        self.limit = limit
        self.dump_interval = dump_interval
        self.commands: List[List[str]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._started: List[int] = []
        self._ends: Dict[int, float] = {}
        self._stopped: List[int] = []  #: stopped by profkit's own stop command
        self._failures: List[ProfkitError] = []
        self._thread: Optional[threading.Thread] = None

    def _start(self, pid: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _dump(self, pid: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _stop(self, pid: int) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _settle(self, pid: int, deadline: float) -> None:
        """Wait (until ``deadline``) for a tool that ended by itself (its own timeout, or the JVM's
        exit) to have written its file; tools stopped by :meth:`stop` already have."""

    def _place(self, pid: int) -> None:
        """Make the file JVM ``pid`` writes: the raw file (owned by the JVM's user), or for a JVM
        in a container an empty file in a directory of profkit's own inside its /tmp."""
        if in_container(pid):
            box = self.boxes[pid] = ContainerDir(pid, self.label)
            self.written[pid] = box.make_file(os.path.basename(self.raw[pid]))
        else:
            prepare_raw_file(self.raw[pid], pid)

    def _fetch(self, pid: int) -> None:
        """Copy what a JVM in a container wrote so far back into its raw file."""
        box = self.boxes.get(pid)
        if box is not None:
            box.fetch(os.path.basename(self.raw[pid]), self.raw[pid])

    def _cleanup(self) -> None:
        """Remove profkit's directories inside containers (after a last copy back)."""
        for pid, box in list(self.boxes.items()):
            self._fetch(pid)
            box.remove()
        self.boxes.clear()

    def begin(self) -> "JcmdRecording":
        """Start in every JVM, then the dump thread; a failed start stops those already started."""
        try:
            for pid in self.raw:
                attach_preconditions(pid)
                self._start(pid)
                # the tool's own timer started before jcmd returned: it ends no later than this
                self._ends[pid] = time.monotonic() + self.limit
                self._started.append(pid)
        except BaseException:
            self.stop()
            self._failures.clear()
            self._cleanup()
            for pid, path in self.raw.items():  # the empty files made for JVMs that never started
                if pid not in self._started and os.path.exists(path) and os.path.getsize(path) == 0:
                    os.unlink(path)
            raise
        self._thread = threading.Thread(target=self._dumps, name="profkit-jcmd-dumps", daemon=True)
        self._thread.start()
        return self

    def _running(self, pid: int) -> bool:
        return target_alive(pid) and time.monotonic() < self._ends[pid] - 0.5

    def _dumps(self) -> None:
        # The first dump comes early: it shows at once that the JVM can write the raw file, and
        # a run killed in its first seconds keeps something.
        wait = min(FIRST_DUMP, self.dump_interval)
        while not self._stopping.wait(wait):
            wait = self.dump_interval
            with self._lock:
                for pid in self._started:
                    if self._stopping.is_set():
                        return
                    if self._running(pid):
                        try:
                            self._dump(pid)
                            self._fetch(pid)
                        except ProfkitError:
                            pass  # best effort: the next dump or the stop writes the file again

    def poll(self) -> bool:
        """True while the tool still records in some JVM."""
        return not self._stopping.is_set() and any(self._running(p) for p in self._started)

    def stop(self) -> None:
        """End the recording in each JVM still recording (it writes the raw file); never raises."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        with self._lock:
            for pid in self._started:
                # A JVM that exited wrote what it had on the way out; a tool past its own end
                # stopped by itself and wrote its file: neither needs (or could take) a stop.
                if self._running(pid):
                    try:
                        self._stop(pid)
                        self._stopped.append(pid)
                    except ProfkitError as e:
                        if target_alive(pid):  # a JVM that exited meanwhile wrote its file on exit
                            self._failures.append(e)

    def finish(self, timeout: float = 30.0) -> List[str]:
        """Stop if still running, wait for the raw files and return those with data.

        A failed stop raises it (as :class:`CollectorFailed`) after the wait, so that what the
        periodic dumps wrote stays in the run directory and is still parsed by the session.
        """
        self.stop()
        deadline = time.monotonic() + timeout
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
        for pid in self._started:
            if pid not in self._stopped:
                self._settle(pid, deadline)
        self._cleanup()
        if self._failures:
            raise self._failures[0]
        return [p for pid, p in self.raw.items() if pid in self._started
                and os.path.exists(p) and os.path.getsize(p) > 0]


def prepare_raw_file(path: str, pid: int) -> None:
    """Create the raw file for the JVM to write, owned by the JVM's user when profkit is root."""
    with open(path, "ab"):
        pass
    give_to_target(path, pid)


def give_to_target(path: str, pid: int) -> None:
    """Hand a file or directory that the JVM writes to the JVM's user (when profkit is root)."""
    try:
        st = os.stat(f"/proc/{pid}")
    except OSError:
        return
    if os.geteuid() == 0 and st.st_uid != 0:
        os.chown(path, st.st_uid, st.st_gid)

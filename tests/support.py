# SPDX-License-Identifier: Apache-2.0
"""What tests share: run directories made by hand, processes, free ports, and waiting for a
condition with a deadline (never a fixed sleep before a signal or an assertion).

Processes: :class:`Proc` is the one wrapper of a started process, and the ``start_process``
fixture (registered in tests/conftest.py) starts them and always reaps them; a module-scoped
fixture uses ``with Proc(...) as p:`` instead. Waiting: :func:`wait_until` for any condition,
``Proc.wait_ready`` / ``wait_line`` / ``wait_url`` / ``wait_for`` for a process's own readiness
(they fail at once, with its output, when it exits first). :func:`assert_running` checks that a
process keeps running (state R or S) over about a second.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from profkit.errors import InputError
from profkit.rundir import RunDir
from profkit.runrecord import RunRecord, TargetRecord


def make_run(path, *, name="x", pids=(1,), runtime="python", **fields) -> RunDir:
    """A run directory with a record of its own (status running), as a run would create it."""
    record = RunRecord(targets=[TargetRecord(p, name if i == 0 else "", runtime) for i, p in enumerate(pids)], **fields)
    return RunDir.create(str(path), record)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ProcessExited(AssertionError):
    """A process a test waits on ended before the condition came true."""


def wait_until(predicate, timeout, what, interval=0.05):
    """Poll ``predicate`` until it returns something true (returned) or ``timeout`` seconds pass
    (AssertionError naming ``what``). A predicate that raises OSError, ValueError, profkit's
    InputError (a file still being written) or AssertionError (a check of such a file) is not yet
    true; the last such error is in the message."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except ProcessExited:
            raise
        except (OSError, ValueError, InputError, AssertionError) as e:
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}"
                                 + (f" (last: {last!r})" if last else ""))
        time.sleep(interval)


def cli(*args, stdin=None, cwd=None):
    """profkit's CLI run to its end (``python -m profkit``): the CompletedProcess with ``.out``
    (stdout, undecodable bytes kept as surrogates) and ``.err`` (stderr) as text."""
    proc = subprocess.run([sys.executable, "-m", "profkit", *map(str, args)], input=stdin, capture_output=True, cwd=cwd)
    proc.out = proc.stdout.decode("utf-8", "surrogateescape")
    proc.err = proc.stderr.decode("utf-8", "replace")
    return proc


def one_line_error(proc, code, pattern):
    """The contract's refusal: exit ``code``, no traceback, one ``profkit: error:`` line on stderr
    containing ``pattern`` (what the command wrote before it may stand above it), then only
    ``hint:`` lines."""
    assert proc.returncode == code, (proc.returncode, proc.err)
    assert "Traceback" not in proc.err
    lines = proc.err.strip().splitlines()
    errors = [i for i, line in enumerate(lines) if line.startswith("profkit: error: ")]
    assert len(errors) == 1 and pattern in lines[errors[0]], proc.err
    assert all(line.startswith("hint: ") for line in lines[errors[0] + 1:]), proc.err


def stat_fields(pid, task=None):
    """The fields of ``/proc/PID/stat`` (or ``/proc/PID/task/TID/stat``) after the command name,
    from the state on (``[0]`` state, ``[1]`` ppid, ``[3]`` session, …), or None when it is gone."""
    path = f"/proc/{pid}/stat" if task is None else f"/proc/{pid}/task/{task}/stat"
    try:
        with open(path) as fh:
            stat = fh.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return stat[stat.rindex(")") + 2:].split()


def processes():
    """``(pid, stat_fields)`` of every process still there while /proc is read."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = stat_fields(entry)
            if fields is not None:
                yield int(entry), fields


def state_of(pid):
    """One-letter /proc state (R, S, D, T, t, Z, …), or None when the process is gone."""
    fields = stat_fields(pid)
    return fields[0] if fields else None


def assert_running(pid, seconds=1.0, what=None):
    """``pid`` runs and is not left stopped: its state is R or S at every sample, 0.1 s apart, for
    ``seconds`` (fails at the first other state, with the states seen)."""
    what = what or f"process {pid}"
    deadline = time.monotonic() + seconds
    states = []
    while True:
        states.append(state_of(pid))
        assert states[-1] in ("R", "S"), f"{what} is in state {states[-1]!r} (sampled: {states})"
        if time.monotonic() >= deadline:
            return
        time.sleep(0.1)


class Proc:
    """A process started for a test, in a session (and process group) of its own.

    Its stdout and stderr are read as they come by two threads, so that it never blocks on a full
    pipe and a wait for a line has a real timeout. ``stop()`` is idempotent: SIGCONT (a test may
    have left it stopped) and SIGTERM to its whole group, SIGKILL after ``grace`` seconds, then
    SIGKILL to what is left of the group; the process is always reaped.

    ``argv`` items are made strings; ``env`` holds variables added to this process's environment.
    Start Python programs with ``sys.executable``, never ``python3`` (a pyenv shim is a shell
    script whose PID is not the interpreter's).
    """

    def __init__(self, argv, *, env=None, cwd=None, grace=10.0):
        self.argv = [str(a) for a in argv]
        self.grace = grace
        self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, start_new_session=True,
                                      env=None if env is None else {**os.environ, **env},
                                      cwd=None if cwd is None else str(cwd))
        self.pid = self.popen.pid
        self._cond = threading.Condition()
        self._lines = {"stdout": [], "stderr": []}
        self._eof = {"stdout": False, "stderr": False}
        self._readers = [threading.Thread(target=self._read, args=(name, pipe), daemon=True,
                                          name=f"proc-{self.pid}-{name}")
                         for name, pipe in (("stdout", self.popen.stdout), ("stderr", self.popen.stderr))]
        for t in self._readers:
            t.start()

    def __repr__(self):
        return f"<Proc {self.pid} {' '.join(self.argv)[:80]!r}>"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- output -------------------------------------------------------------------------------

    def _read(self, name, pipe):
        try:
            for raw in iter(pipe.readline, b""):
                with self._cond:
                    self._lines[name].append(raw.decode("utf-8", "replace"))
                    self._cond.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            with self._cond:
                self._eof[name] = True
                self._cond.notify_all()

    def lines(self, stream="stdout"):
        """The lines read so far from ``stream``, without their newlines."""
        with self._cond:
            return [line.rstrip("\r\n") for line in self._lines[stream]]

    @property
    def out(self):
        """All of stdout read so far."""
        with self._cond:
            return "".join(self._lines["stdout"])

    @property
    def err(self):
        """All of stderr read so far."""
        with self._cond:
            return "".join(self._lines["stderr"])

    def output(self, tail=3000):
        """What it wrote so far (the end of each stream) and how it ended, for failure messages."""
        rc = self.popen.poll()
        state = "running" if rc is None else f"exited with {rc}"
        return f"{self!r} {state}\n--- stdout\n{self.out[-tail:]}\n--- stderr\n{self.err[-tail:]}"

    # -- waiting ------------------------------------------------------------------------------

    def wait_line(self, pattern, timeout=30, stream="stdout"):
        """The ``re.search`` match of the first line of ``stream`` that matches ``pattern``; fails
        when the stream ends (the process exited) without one, or after ``timeout`` seconds."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        with self._cond:
            while True:
                lines = self._lines[stream]
                for line in lines[seen:]:
                    m = rx.search(line.rstrip("\r\n"))
                    if m:
                        return m
                seen = len(lines)
                if self._eof[stream]:
                    raise ProcessExited(f"{stream} ended without a line matching {pattern!r}:\n{self.output()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no line matching {pattern!r} on {stream} after {timeout} s:\n"
                                         f"{self.output()}")
                self._cond.wait(left)

    def wait_ready(self, timeout=30):
        """The first line on stdout is exactly ``ready`` (within ``timeout`` seconds)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not self._lines["stdout"] and not self._eof["stdout"]:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"not ready after {timeout} s:\n{self.output()}")
                self._cond.wait(left)
            first = self._lines["stdout"][0] if self._lines["stdout"] else None
            assert first == "ready\n", f"did not start (first line {first!r}):\n{self.output()}"
        return self

    def wait_for(self, predicate, timeout, what, interval=0.05):
        """:func:`wait_until`, failing at once (with this process's output) if it exits first."""
        def check():
            if self.popen.poll() is not None:
                raise ProcessExited(f"exited while waiting for {what}:\n{self.output()}")
            return predicate()
        try:
            return wait_until(check, timeout, what, interval)
        except ProcessExited:
            raise
        except AssertionError as e:
            raise AssertionError(f"{e}\n{self.output()}") from None

    def wait_url(self, url, timeout=30):
        """The JSON body of the first successful (2xx) answer from ``url``."""
        def answer():
            with urllib.request.urlopen(url, timeout=2) as resp:
                return (json.loads(resp.read()),)
        return self.wait_for(answer, timeout, f"{url} to answer", interval=0.1)[0]

    def wait(self, timeout):
        """Wait for it to exit on its own (AssertionError after ``timeout`` seconds), then for the
        rest of its output; returns the exit code."""
        try:
            rc = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"did not exit within {timeout} s:\n{self.output()}") from None
        self._join(5)
        return rc

    def _join(self, timeout):
        deadline = time.monotonic() + timeout
        for t in self._readers:
            t.join(max(0.0, deadline - time.monotonic()))  # a grandchild may hold the pipe; daemon threads

    # -- signals ------------------------------------------------------------------------------

    def poll(self):
        return self.popen.poll()

    @property
    def returncode(self):
        return self.popen.returncode

    def send_signal(self, sig):
        """``sig`` to this process only (not its group)."""
        self.popen.send_signal(sig)

    def kill(self):
        """SIGKILL to this process only (not its group); reap it with ``wait``."""
        self.popen.kill()

    def _signal_group(self, sig):
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass

    def stop(self):
        """End it and its group (idempotent; see the class); returns the exit code."""
        if self.popen.poll() is None:
            self._signal_group(signal.SIGCONT)
            self._signal_group(signal.SIGTERM)
            try:
                self.popen.wait(self.grace)
            except subprocess.TimeoutExpired:
                self._signal_group(signal.SIGKILL)
                self.popen.wait()
        self._signal_group(signal.SIGKILL)  # what is left of its group (gunicorn's workers, say)
        self._join(2)
        if not any(t.is_alive() for t in self._readers):
            self.popen.stdout.close()
            self.popen.stderr.close()
        return self.popen.returncode


@pytest.fixture
def start_process():
    """``start_process(*argv, env=None, cwd=None, grace=10)`` → a started :class:`Proc`; every one
    is stopped and reaped at teardown, whatever the test did."""
    started = []

    def start(*argv, **kw):
        p = Proc(argv, **kw)
        started.append(p)
        return p

    yield start
    for p in reversed(started):
        p.stop()


def built_tool(name: str, version: str):
    """The path of a tool .ci/tools built (``~/.cache/profkit/bin/NAME-VERSION``), or None."""
    path = os.path.join(os.path.expanduser("~"), ".cache", "profkit", "bin", f"{name}-{version}")
    return path if os.access(path, os.X_OK) else None

# SPDX-License-Identifier: Apache-2.0
"""Fixtures that start real target processes and always reap them."""
import json
import os
import pathlib
import signal
import subprocess
import sys

import pytest

TARGETS = pathlib.Path(__file__).resolve().parent / "targets"


def state_of(pid):
    """One-letter /proc state, or None when the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            stat = fh.read()
    except FileNotFoundError:
        return None
    return stat[stat.rindex(")") + 2:].split(" ", 1)[0]


class Proc:
    """A started target; ``stop()`` is idempotent (SIGTERM, then SIGKILL)."""

    def __init__(self, argv, **kw):
        # sys.executable, not python3: a pyenv shim's PID is not the interpreter's.
        self.popen = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      start_new_session=True, **kw)
        self.pid = self.popen.pid

    def wait_ready(self, timeout=10.0):
        line = self.popen.stdout.readline()
        assert line.strip() == b"ready", f"target did not start: {line!r}"

    def stop(self):
        if self.popen.poll() is None:
            try:
                os.kill(self.pid, signal.SIGCONT)  # in case a test failure left it stopped
                self.popen.terminate()
                self.popen.wait(5)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@pytest.fixture
def start_target():
    started = []

    def start(*argv, **kw):
        p = Proc(list(argv), **kw)
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


@pytest.fixture
def pyhot(start_target):
    p = start_target(sys.executable, str(TARGETS / "pyhot.py"))
    p.wait_ready()
    return p


def profkit(*args, timeout=120, **kw):
    """Run the real CLI; returns CompletedProcess with text output."""
    return subprocess.run([sys.executable, "-m", "profkit", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kw)


def folded_shares(path):
    """function name (without file/line) → share of the total, from a folded file, by leaf."""
    total = 0
    by_leaf = {}
    with open(path) as fh:
        for line in fh:
            stack, n = line.rstrip("\n").rsplit(" ", 1)
            n = float(n)
            total += n
            leaf = stack.split(";")[-1].split(" (")[0]
            by_leaf[leaf] = by_leaf.get(leaf, 0) + n
    return {k: v / total for k, v in by_leaf.items()} if total else {}


def manifest(run):
    """The run's record, validated (profkit.runrecord.RunRecord)."""
    from profkit.rundir import RunDir

    return RunDir.open(str(run)).record

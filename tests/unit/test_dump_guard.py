# SPDX-License-Identifier: Apache-2.0
"""The guard (profkit/dump/guard.py) with a stand-in tool that stops the target with SIGSTOP
and then hangs: whatever ends the tool, the target runs again — unless it was stopped before."""
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest

from support import state_of as state

GUARD = pathlib.Path(__file__).resolve().parents[2] / "profkit" / "dump" / "guard.py"

STOP_AND_HANG = ["sh", "-c", 'kill -STOP "$1"; exec sleep 30', "sh"]


def wait_for(cond, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture
def target():
    p = subprocess.Popen(["sleep", "60"], start_new_session=True)
    wait_for(lambda: state(p.pid) == "S", "the target to sleep")
    yield p.pid
    os.kill(p.pid, signal.SIGCONT)
    p.kill()
    p.wait()


def guard(pid, timeout, tool):
    return subprocess.Popen([sys.executable, "-I", "-S", GUARD, str(pid), str(timeout), *tool],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def children(pid):
    with open(f"/proc/{pid}/task/{pid}/children") as fh:
        return [int(x) for x in fh.read().split()]


def test_told_to_stop_it_kills_the_tool_and_resumes_the_target(target):
    g = guard(target, 60, STOP_AND_HANG + [str(target)])
    try:
        wait_for(lambda: state(target) == "T", "the tool to stop the target")
        tool = children(g.pid)[0]
        g.send_signal(signal.SIGTERM)  # what profkit's death (parent-death signal) sends
        out, err = g.communicate(timeout=10)
    finally:
        if g.poll() is None:
            g.kill()
    assert g.returncode == 130
    assert state(target) == "S"
    assert state(tool) is None
    assert "killed" in err and f"sent SIGCONT to {target}" in err


def test_a_tool_past_its_timeout_is_killed_and_the_target_resumed(target):
    g = guard(target, 0.5, STOP_AND_HANG + [str(target)])
    out, err = g.communicate(timeout=20)
    assert g.returncode == 124 and "timed out after 0.5 s" in err
    assert state(target) == "S"


def test_a_target_stopped_before_stays_stopped(target):
    os.kill(target, signal.SIGSTOP)
    wait_for(lambda: state(target) == "T", "the target to stop")
    g = guard(target, 0.3, ["sleep", "30"])
    g.communicate(timeout=20)
    assert g.returncode == 124 and state(target) == "T"  # someone else's stop: not ours to end


def test_a_clean_run_sends_nothing(target):
    g = guard(target, 10, ["sh", "-c", "echo stacks; exit 0"])
    out, err = g.communicate(timeout=20)
    assert (g.returncode, out, err) == (0, "stacks\n", "")
    g = guard(target, 10, ["sh", "-c", "exit 3"])
    out, err = g.communicate(timeout=20)
    assert g.returncode == 3 and "SIGCONT" in err  # a failed tool may have died attached
    assert state(target) == "S"


@pytest.mark.parametrize("then", ["exit 0", "exec sleep 30"])
def test_what_the_tool_forked_goes_with_it(target, then):
    """gdb forks a child that SIGSTOPs itself to probe ptrace; if gdb dies at the wrong moment that
    child would stay stopped for ever. The guard kills the tool's whole process group, whether the
    tool ends by itself (once its child is stopped) or is told to stop."""
    wait_stopped = 'until grep -q "^State:.*T" /proc/$child/status; do :; done'
    tool = ["sh", "-c", f"sh -c 'kill -STOP $$' & child=$!; {wait_stopped}; echo $child; {then}"]
    g = guard(target, 60, tool)
    stray = int(g.stdout.readline())
    try:
        if then != "exit 0":
            assert state(stray) == "T"
            g.send_signal(signal.SIGTERM)
        g.communicate(timeout=10)
        wait_for(lambda: state(stray) in (None, "Z"), "the tool's stopped child to be killed")
    finally:
        for pid in (g.pid, stray):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        g.wait()

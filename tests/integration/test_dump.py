# SPDX-License-Identifier: Apache-2.0
"""``profkit dump`` against real processes: Python (py-spy), a deadlocked JVM (jcmd), a C program
(eu-stack, gdb), and profkit SIGKILLed mid-dump, after which the target must still run and no
tool of profkit's may be left. Missing tools fail these tests with the install command.

Targets: ``targets/lockwait.py``, ``targets/ProfkitDeadlock.java`` (javac'd here),
``targets/hang.c`` (gcc'd here); every process a test starts is reaped by the fixtures.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from conftest import TARGETS, profkit
from support import processes, state_of
from profkit.targets import children_of

JDK_HINT = "apt-get install openjdk-17-jdk-headless"


def need(tool, install):
    assert shutil.which(tool), f"{tool} is needed: {install}"


def wait_for(cond, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.002)


def task_states(pid):
    """The state letter of every thread of ``pid``."""
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        s = state_of(f"{pid}/task/{tid}")
        if s:
            out.append(s)
    return out


def assert_running(pid):
    states = task_states(pid)
    assert states and all(s in ("R", "S") for s in states), f"target {pid} threads: {sorted(set(states))}"


@pytest.fixture(scope="module")
def hang_exe(tmp_path_factory):
    need("gcc", "apt-get install gcc")
    exe = tmp_path_factory.mktemp("dump-native") / "hang"
    subprocess.run(["gcc", "-g", "-O0", "-pthread", "-o", str(exe), str(TARGETS / "hang.c")], check=True, timeout=60)
    return exe


@pytest.fixture(scope="module")
def deadlocked_jvm(tmp_path_factory):
    """One deadlocked JVM for the module (a JVM takes a second to start)."""
    for tool in ("java", "javac", "jcmd"):
        need(tool, JDK_HINT)
    classes = tmp_path_factory.mktemp("dump-jvm")
    subprocess.run(["javac", "-d", str(classes), str(TARGETS / "ProfkitDeadlock.java")], check=True, timeout=120)
    p = subprocess.Popen(["java", "-Xmx64m", "-cp", str(classes), "ProfkitDeadlock"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        assert p.stdout.readline().strip() == b"ready"
        yield p.pid
    finally:
        p.kill()
        p.wait()


def start_native(start_target, exe, sleepers=0):
    t = start_target(str(exe), str(sleepers))
    t.wait_ready()
    # the waiter blocks in pthread_mutex_lock just after it said it started
    wait_for(lambda: len(task_states(t.pid)) == sleepers + 2 and all(s == "S" for s in task_states(t.pid)),
             "every thread of the C target to block")
    return t


def test_python_lock_holder_and_waiter(start_target, tmp_path):
    need("py-spy", "pip install py-spy")
    t = start_target(sys.executable, str(TARGETS / "lockwait.py"))
    t.wait_ready()
    out = tmp_path / "dump.json"
    p = profkit("dump", "--pid", t.pid, "--json", out, timeout=60)
    assert p.returncode == 0, p.stderr
    for text in ("profkit-holder", "profkit-waiter", "hold_the_lock", "wait_for_the_lock", "lockwait.py:"):
        assert text in p.stdout
    doc = json.loads(out.read_text())
    assert doc["pid"] == t.pid and doc["runtime"] == "python" and doc["tool"] == "py-spy"
    threads = {th["name"]: th for th in doc["threads"]}
    assert threads["profkit-waiter"]["frames"][0]["name"] == "wait_for_the_lock"
    assert "hold_the_lock" in [f["name"] for f in threads["profkit-holder"]["frames"]]
    assert all(set(th) >= {"name", "id", "state", "frames", "holds", "waits_on"} for th in doc["threads"])
    assert_running(t.pid)


def test_jvm_deadlock_is_reported_first(deadlocked_jvm, tmp_path):
    out = tmp_path / "dump.json"
    p = profkit("dump", "--pid", deadlocked_jvm, "--json", out, timeout=60)
    assert p.returncode == 0, p.stderr
    head = p.stdout.split('\nThread ', 1)[0]  # everything before the first thread
    assert head.count("DEADLOCK") == 2
    assert '"profkit-left" waits for' in head and 'held by "profkit-right"' in head
    assert "(a ProfkitDeadlock$Right)" in head and "(a ProfkitDeadlock$Left)" in head
    assert '"profkit-lock-a" waits for' in head and "ReentrantLock" in head
    doc = json.loads(out.read_text())
    assert sorted(sorted(d["threads"]) for d in doc["deadlocks"]) == [["profkit-left", "profkit-right"],
                                                                       ["profkit-lock-a", "profkit-lock-b"]]
    left = next(th for th in doc["threads"] if th["name"] == "profkit-left")
    assert left["state"] == "blocked" and left["waits_on"]["type"] == "ProfkitDeadlock$Right"
    assert left["holds"][0]["type"] == "ProfkitDeadlock$Left"
    assert left["frames"][0]["name"] == "ProfkitDeadlock.takeLeftThenRight"
    assert_running(deadlocked_jvm)


@pytest.mark.parametrize("tool", ["eu-stack", pytest.param("gdb", marks=pytest.mark.slow)])
def test_native_named_functions(tool, hang_exe, start_target, tmp_path):
    need(tool, {"eu-stack": "apt-get install elfutils", "gdb": "apt-get install gdb"}[tool])
    t = start_native(start_target, hang_exe)
    out = tmp_path / "dump.json"
    p = profkit("dump", "--pid", t.pid, "--tool", tool, "--json", out, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "wait_forever" in p.stdout and "wait_for_mutex" in p.stdout and "hang.c:" in p.stdout
    doc = json.loads(out.read_text())
    threads = {th["name"]: th for th in doc["threads"]}
    waiter, main = threads["profkit-waiter"], threads[doc["threads"][0]["name"]]
    assert main["id"] == t.pid and "wait_forever" in [f["name"] for f in main["frames"]]
    assert waiter["state"] == "blocked" and waiter["waits_on"]["kind"] == "mutex"
    assert main["holds"] == [waiter["waits_on"]]  # glibc's owner field names the main thread
    frame = next(f for f in waiter["frames"] if f["name"] == "wait_for_mutex")
    assert frame["file"].endswith("hang.c") and frame["line"] == 30
    assert_running(t.pid)


def kill_mid_dump(pid, attached, *args, attempts=8):
    """Start `profkit dump`, SIGKILL it once ``attached()`` is true, and return profkit's
    descendants (the guard, the tool) as they were at that moment.

    eu-stack stops each thread for well under a millisecond, so a dump can end before the poll
    ever sees a stopped thread: then the dump is simply run again (a fresh attempt, not a pass)."""
    for _ in range(attempts):
        p = subprocess.Popen([sys.executable, "-m", "profkit", "dump", "--pid", str(pid), *args],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            seen = wait_for(lambda: "attached" if attached(p.pid) else ("ended" if p.poll() is not None else None),
                            "the tool to attach, or the dump to end")
            if seen == "attached":
                family = children_of(p.pid)
                p.kill()
                return family
        finally:
            p.kill()
            p.wait()
    raise AssertionError(f"the tool was never seen attached in {attempts} dumps")


def traced(pid):
    return lambda profkit_pid: "t" in task_states(pid)


def in_sessions(sids):
    """Live processes whose session is one of ``sids`` (the guard leads its own: whatever a tool
    forks stays in it, e.g. the child gdb forks to probe ptrace features)."""
    return [pid for pid, fields in processes() if fields[0] not in ("Z", "X") and int(fields[3]) in sids]


def assert_left_clean(pid, family):
    """Every process of profkit's (the guard, the tool, anything they forked) ends; the target runs."""
    sessions = set(family)
    try:
        wait_for(lambda: all(state_of(c) in (None, "Z") for c in family) and not in_sessions(sessions),
                 "profkit's tools to end", timeout=15)
    finally:
        for c in set(family) | set(in_sessions(sessions)):
            try:
                os.kill(c, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert_running(pid)


@pytest.mark.slow
@pytest.mark.parametrize("tool", ["eu-stack", "gdb"])
def test_sigkill_mid_native_dump_leaves_the_target_running(tool, hang_exe, start_target):
    """eu-stack and gdb attach with SIGSTOPs: a tool killed before it consumed one leaves the whole
    process in group stop (T) — unless the guard resumes it, as it must here."""
    t = start_native(start_target, hang_exe, sleepers=300)
    family = kill_mid_dump(t.pid, traced(t.pid), "--tool", tool)
    assert any(tool in " ".join(cmdline(c)) for c in family), family
    assert_left_clean(t.pid, family)


@pytest.mark.slow
def test_sigkill_mid_python_dump(start_target):
    need("py-spy", "pip install py-spy")
    t = start_target(sys.executable, str(TARGETS / "lockwait.py"), "200")
    t.wait_ready()
    family = kill_mid_dump(t.pid, traced(t.pid))
    assert_left_clean(t.pid, family)


def test_sigkill_mid_jvm_dump(deadlocked_jvm):
    def jcmd_running(profkit_pid):
        return any("jcmd" in " ".join(cmdline(c)) for c in children_of(profkit_pid))

    family = kill_mid_dump(deadlocked_jvm, jcmd_running)
    assert_left_clean(deadlocked_jvm, family)
    again = profkit("dump", "--pid", deadlocked_jvm, timeout=60)  # its attach listener still answers
    assert again.returncode == 0 and again.stdout.count("\nDEADLOCK ") == 2, again.stderr


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().decode(errors="replace").split("\0")
    except OSError:
        return []


def test_no_such_pid_is_one_line():
    with open("/proc/sys/kernel/pid_max") as fh:
        pid = int(fh.read()) + 1
    p = profkit("dump", "--pid", pid)
    lines = p.stderr.splitlines()
    assert p.returncode == 1 and p.stdout == ""
    assert lines[0] == f"profkit: error: no process with PID {pid}"
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("hint: "))


def test_a_stopped_target_is_refused_and_stays_stopped(hang_exe, start_target):
    t = start_native(start_target, hang_exe)
    os.kill(t.pid, signal.SIGSTOP)
    wait_for(lambda: state_of(t.pid) == "T", "the target to stop")
    p = profkit("dump", "--pid", t.pid)
    assert p.returncode == 1 and p.stderr.startswith(f"profkit: error: process {t.pid} is stopped"), p.stderr
    assert "kill -CONT" in p.stderr and "Traceback" not in p.stderr
    assert state_of(t.pid) == "T"  # not profkit's stop: it is not resumed

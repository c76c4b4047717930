# SPDX-License-Identifier: Apache-2.0
"""Targets read from /proc, the child-tool runner, the run directory and the metrics sampler."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from collectors.base import RecordRequest
from collectors.psutil_metrics import PsutilCollector, PsutilOptions, summarise
from profkit.errors import InputError, TargetNotFound, UsageError
from profkit.rundir import RunDir
from support import make_run, wait_until
from profkit.targets import ChildTool, children_of, find_by_name, inspect, process_state


@pytest.fixture
def busy_python(start_process):
    return start_process(sys.executable, "-c", "import time\nwhile True: sum(range(10**5))", "busy-marker-7731")


def test_inspect_detects_python(busy_python):
    t = inspect(busy_python.pid)
    assert t.runtime == "python" and t.pid == busy_python.pid
    assert "busy-marker-7731" in t.command


def test_inspect_detects_native(start_process):
    assert inspect(start_process("sleep", "5").pid).runtime == "native"


def test_missing_zombie_and_kernel_thread_are_refused():
    with pytest.raises(TargetNotFound, match="no process"):
        inspect(4_000_000)
    with pytest.raises(TargetNotFound, match="kernel thread"):
        inspect(2)
    proc = subprocess.Popen(["true"])  # not a Proc: it must stay unreaped
    try:
        wait_until(lambda: process_state(proc.pid) == "Z", 10, "`true` to exit, unreaped: a zombie")
        with pytest.raises(TargetNotFound, match="exited"):
            inspect(proc.pid)
    finally:
        proc.wait()
    with pytest.raises(UsageError):
        inspect(0)


def test_find_by_name_and_children(busy_python, start_process):
    wait_until(lambda: busy_python.pid in find_by_name("busy-marker-7731"), 5, "find_by_name to find the busy process")
    # its child is in its process group: stop() at teardown ends both
    parent = start_process(sys.executable, "-c",
                           "import subprocess,sys,time; p=subprocess.Popen(['sleep','30']); time.sleep(30)")

    def first_child_is_sleep():  # (until it has exec'd, a child is a copy of its parent)
        kids = children_of(parent.pid)
        return kids and inspect(kids[0]).name == "sleep"

    wait_until(first_child_is_sleep, 5, "the parent's child, sleep")


def test_child_tool_dies_with_its_parent(start_process, tmp_path):
    # A middle process starts a ChildTool and is then SIGKILLed: the tool must not outlive it.
    pidfile = tmp_path / "pid"
    script = (f"import time; from profkit.targets import ChildTool\n"
              f"c = ChildTool(['sleep', '60']).start()\nopen({str(pidfile)!r}, 'w').write(str(c.pid))\ntime.sleep(60)")
    middle = start_process(sys.executable, "-c", script)
    tool = int(middle.wait_for(lambda: pidfile.read_text(), 10, "the middle process to start its ChildTool"))
    middle.kill()
    middle.wait(10)
    wait_until(lambda: process_state(tool) in (None, "Z"), 5, "the ChildTool to die with its parent")


def test_child_tool_is_the_tool_itself_in_a_session_of_its_own_with_its_death_signal():
    """Started through setpriv where it is installed (exec'd in place): the PID profkit holds is the
    tool's own from the start of its run, it leads its own session, and its parent-death signal is
    the one it saves its capture on; a missing tool is still FileNotFoundError."""
    c = ChildTool(["sleep", "30"], death_signal=signal.SIGINT).start()
    try:
        wait_until(lambda: open(f"/proc/{c.pid}/cmdline").read().split("\0")[:2] == ["sleep", "30"], 5,
                   "the tool's own command line under its PID")
        assert os.getsid(c.pid) == c.pid
    finally:
        assert c.stop(grace=2) == -signal.SIGINT
    with pytest.raises(FileNotFoundError):
        ChildTool(["profkit-no-such-tool"]).start()
    with pytest.raises(FileNotFoundError):
        ChildTool(["/nonexistent/tool"]).start()


def ignores_sigint(pid):
    """SIGINT is in the process's ignored-signals mask (/proc/PID/status SigIgn)."""
    with open(f"/proc/{pid}/status") as fh:
        mask = next(int(line.split()[1], 16) for line in fh if line.startswith("SigIgn:"))
    return bool(mask & (1 << (signal.SIGINT - 1)))


def test_child_tool_gets_its_death_signal_back_when_profkit_ignores_it():
    """A profkit started in the background by a shell ignores SIGINT, and an ignored signal stays
    ignored across exec: the tool gets the default action back, so SIGINT still stops it (and it
    still dies with profkit)."""
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        c = ChildTool(["sleep", "30"], death_signal=signal.SIGINT).start()
    finally:
        signal.signal(signal.SIGINT, old)
    try:
        wait_until(lambda: open(f"/proc/{c.pid}/cmdline").read().split("\0")[:2] == ["sleep", "30"], 5,
                   "the tool's own command line under its PID")
        assert not ignores_sigint(c.pid) and os.getsid(c.pid) == c.pid
    finally:
        assert c.stop(grace=5) == -signal.SIGINT


def test_child_tool_stop_escalates():
    c = ChildTool([sys.executable, "-c", "import signal,time; signal.signal(signal.SIGINT, signal.SIG_IGN); time.sleep(60)"]).start()
    wait_until(lambda: ignores_sigint(c.pid), 10, "the child to ignore SIGINT")
    t0 = time.monotonic()
    assert c.stop(grace=0.5, term_grace=0.5) == -signal.SIGTERM
    assert time.monotonic() - t0 < 5


def test_run_directory_manifest(tmp_path):
    run = make_run(tmp_path / "r")
    m = json.loads((tmp_path / "r" / "manifest.json").read_text())
    assert m["schema"] == 2 and m["status"] == "running" and (tmp_path / "r" / "raw").is_dir()
    assert m["owner"]["pid"] == os.getpid() and m["targets"][0]["pid"] == 1
    run.warn("w1")
    run.warn("w1")
    run.finish("interrupted")
    again = RunDir.open(str(tmp_path / "r"))
    assert again.record.status == "interrupted" and again.record.warnings == ["w1"]
    with pytest.raises(UsageError, match="already holds a run"):
        make_run(tmp_path / "r")


def test_run_directory_schema_is_checked(tmp_path):
    (tmp_path / "manifest.json").write_text('{"schema": 99}')
    with pytest.raises(InputError, match="schema 99"):
        RunDir.open(str(tmp_path))
    with pytest.raises(InputError, match="not a run directory"):
        RunDir.open(str(tmp_path / "nope"))


def test_psutil_sampler_writes_as_it_goes(busy_python, tmp_path):
    rec = PsutilCollector().record(RecordRequest((busy_python.pid,), "python", duration=1.6, raw_dir=str(tmp_path),
                                                 options=PsutilOptions(interval=0.4)))

    def flushed_while_running():  # the lines are read first: if it still runs after, they came while it ran
        return (tmp_path / "metrics.jsonl").read_text().count("\n") >= 2 and rec.poll()

    wait_until(flushed_while_running, 5, "two lines of metrics.jsonl while the sampler runs")
    rec.finish()
    s = summarise(str(tmp_path / "metrics.jsonl"))
    assert s["samples"] >= 4 and s["cpu_mean_pct"] > 5 and s["rss_peak"] > 1_000_000


def test_a_minimal_run_directory_renders(tmp_path):
    from profkit.outputs import render_run

    make_run(tmp_path / "r", rate=None).finish("complete")  # no duration, no rate
    written = render_run(RunDir.open(str(tmp_path / "r")))
    assert sorted(written) == ["report", "summary"]
    assert "profkit run: x" in (tmp_path / "r" / "report.html").read_text()


def test_psutil_sampler_measures_the_run_queue(start_process, tmp_path):
    """Two busy threads pinned to one CPU (hashing, which releases the GIL): together they use
    about one core and wait about as long runnable for it (schedstat), the CPU saturation a
    sampler that reads thread states counts as running."""
    code = ("import hashlib, os, threading\nos.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
            "data = bytes(1 << 20)\ndef spin():\n    while True: hashlib.sha256(data).digest()\n"
            "threading.Thread(target=spin, daemon=True).start()\nspin()\n")
    proc = start_process(sys.executable, "-c", code)
    wait_until(lambda: len(os.listdir(f"/proc/{proc.pid}/task")) == 2, 5, "the second thread")
    rec = PsutilCollector().record(RecordRequest((proc.pid,), "python", duration=2.0, raw_dir=str(tmp_path),
                                                 options=PsutilOptions(interval=0.5)))
    rec.finish()
    s = summarise(str(tmp_path / "metrics.jsonl"))
    assert 0.5 < s["cpu_seconds"] < 2.6 and 0.5 * s["cpu_seconds"] < s["cpu_wait_seconds"] < 5.2, s
    assert s["host_cpu_pressure_pct"] > 20, s  # a runnable thread waited most of the time


def test_on_cpu_check_tells_saturation_from_counted_waits(tmp_path):
    from profkit.model import Profile
    from profkit.outputs import _check_on_cpu

    def warned(wait_pct, pressure=None):
        run = make_run(tmp_path / f"r{wait_pct}-{pressure}", mode="cpu", rate=100)
        lines = [{"t": t, "rss": 1, "threads": 1, "cpu_user_pct": None if t == 0 else 50.0, "cpu_system_pct": 0.0,
                  "cpu_wait_pct": None if t == 0 else wait_pct, "host_cpu_pressure_pct": None if t == 0 else pressure}
                 for t in range(5)]
        with open(run.file("metrics.jsonl"), "w") as fh:
            fh.writelines(json.dumps(r) + "\n" for r in lines)
        prof = Profile(unit="samples")
        prof.add(["main", "work"], 600)  # 6 s sampled; 2 s of CPU used
        _check_on_cpu(run, prof)
        return " ".join(run.record.warnings)

    assert "the CPUs were saturated" in warned(150.0)  # 6 s runnable: explained by the run queue
    assert "waiting threads were counted as running" in warned(10.0)  # 0.4 s: it is not
    assert "waiting threads were counted as running" in warned(None)  # a kernel without schedstat
    # short-lived threads' waits are not in schedstat's per-thread totals: the host's pressure says it
    assert "waited for a CPU in 60% of the run (PSI" in warned(10.0, 60.0)
    assert "waiting threads were counted as running" in warned(10.0, 5.0)

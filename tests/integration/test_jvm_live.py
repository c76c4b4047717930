# SPDX-License-Identifier: Apache-2.0
"""profkit attach with the real async-profiler and JFR against real JVMs.

The target is ``targets/ProfkitHot.java``, compiled here with ``javac`` and started with a plain
``java`` (no profiling flags): its ``profkit-hot`` thread spends its time in ``ProfkitHot.spin``,
its ``profkit-alloc`` thread allocates ``long[]`` in ``ProfkitHot.allocate``. A missing JDK
(java, javac, jcmd, jfr) fails these tests; CI installs it, and async-profiler from Maven Central.

Kill safety is the point of the SIGKILL tests: the profiler runs *inside* the JVM, so when profkit
dies it must stop by itself (async-profiler's ``timeout=``, JFR's ``duration=``) and leave the
JVM running, with the data written so far in ``raw/``.
"""
import os
import pathlib
import shutil
import signal
import subprocess
import sys

import pytest

from collectors.jfr import check_recording
from conftest import manifest, profkit, recording
from support import Proc, assert_running, wait_until

SOURCE = pathlib.Path(__file__).resolve().parent / "targets" / "ProfkitHot.java"
HOT, ALLOC = "ProfkitHot.spin", "ProfkitHot.allocate"


# -- helpers --------------------------------------------------------------------------------------

def frame_name(frame):
    """A folded frame without its kind suffix (``_[j]``, ``_[i]``, …)."""
    return frame[:-4] if len(frame) > 4 and frame[-4:-2] == "_[" and frame[-1] == "]" else frame


def read_folded(path):
    """(frames, weight) of each line of a folded file."""
    out = []
    with open(path) as fh:
        for line in fh:
            stack, n = line.rstrip("\n").rsplit(" ", 1)
            out.append(([frame_name(f) for f in stack.split(";")], float(n)))
    return out


def inclusive_share(path, function):
    """The share of the total weight in stacks that pass through ``function``."""
    rows = read_folded(path)
    total = sum(w for _, w in rows)
    assert total > 0, f"{path} is empty"
    return sum(w for frames, w in rows if function in frames) / total


def asprof_share(raw, function):
    """The share of an async-profiler .jfr capture's samples in stacks through ``function`` (0
    while its last chunk is still being written)."""
    from collectors.asprof_jfr import read_chunks, parse_jfr
    from profkit.errors import Diagnostics

    chunks = read_chunks(str(raw))
    if not chunks or chunks[-1][1].offset + chunks[-1][1].size != raw.stat().st_size:
        return 0.0
    profile = parse_jfr(chunks, "cpu", False, Diagnostics(raw.name))
    through = sum(w for stack, w in profile.stacks() if any(frame_name(f.text) == function for f in stack))
    return through / profile.total if profile.total else 0.0


def jcmd(pid, *args):
    return subprocess.run(["jcmd", str(pid), *args], capture_output=True, text=True, timeout=60).stdout


def agent_library(pid):
    """The async-profiler library loaded in a JVM, from /proc/PID/maps."""
    with open(f"/proc/{pid}/maps") as fh:
        for line in fh:
            if line.rstrip().endswith("libasyncProfiler.so"):
                return line.split(None, 5)[5].strip()
    return None


def async_profiler_status(pid, tmp_path):
    """async-profiler's own answer to ``status`` inside the JVM."""
    out, log = tmp_path / "status.txt", tmp_path / "status.log"
    jcmd(pid, "JVMTI.agent_load", agent_library(pid), f'"status,file={out},log={log}"')
    return out.read_text()


def jfr_recordings(pid):
    """profkit's JFR recordings in the JVM, as JFR.check lists them."""
    return [line for line in jcmd(pid, "JFR.check").splitlines() if "name=profkit-" in line]


def profiling_ended(collector, pid, tmp_path):
    if collector == "jfr":
        return not jfr_recordings(pid)
    return "not active" in async_profiler_status(pid, tmp_path)


# -- fixtures -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    """ProfkitHot compiled; a missing JDK fails here (it is not a reason to skip)."""
    for tool in ("java", "javac", "jcmd", "jfr"):
        assert shutil.which(tool), f"{tool} is not installed: apt-get install openjdk-17-jdk-headless"
    out = tmp_path_factory.mktemp("classes")
    subprocess.run(["javac", "-d", str(out), str(SOURCE)], check=True, timeout=120)
    return out


def jvm_argv(classes, mode, seconds=0):
    # -Xmx only keeps the allocating target small on a shared machine
    return ["java", "-Xmx256m", "-cp", classes, "ProfkitHot", mode, seconds]


def jvm_ready(jvm):
    """A started ProfkitHot (a support.Proc) once it printed ``ready``."""
    jvm.wait_line(r"^ready$", 30)
    return jvm


@pytest.fixture
def start_jvm(classes, start_process):
    return lambda mode="cpu", seconds=0: jvm_ready(start_process(*jvm_argv(classes, mode, seconds)))


@pytest.fixture(scope="module")
def hot_jvm(classes):
    """One spinning JVM shared by the tests that profile it in turn."""
    with Proc(jvm_argv(classes, "cpu")) as jvm:
        yield jvm_ready(jvm)


# -- recording --------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("collector", ["async-profiler", "jfr"])
def test_attach_finds_the_hot_method(collector, hot_jvm, tmp_path):
    run = tmp_path / "run"
    p = profkit("attach", "--pid", hot_jvm.pid, "--duration", 6, "-c", collector, "-o", run, "-q")
    assert p.returncode == 0, p.stderr
    assert inclusive_share(run / "profile.folded", HOT) > 0.6
    assert HOT in (run / "flamegraph.svg").read_text()
    assert HOT in (run / "summary.md").read_text()
    m = manifest(run)
    assert m.status == "complete" and m.unit == "samples" and m.target.runtime == "jvm"
    (entry,) = m.profilers
    assert entry.id == collector and entry.version and entry.status == "ok"
    start = entry.commands[0]
    if collector == "jfr":
        assert start[2] == "JFR.start" and "duration=9s" in start and "jdk.ExecutionSample#period=10ms" in start
        assert entry.raw == [f"raw/jfr-{hot_jvm.pid}.jfr"]
        assert not jfr_recordings(hot_jvm.pid), "profkit left a JFR recording running"
    else:
        assert start[2] == "JVMTI.agent_load" and start[4].startswith('"start,event=')
        assert "interval=10000000" in start[4] and "timeout=9" in start[4]
        assert "jfr" in start[4] and entry.raw == [f"raw/async-profiler-{hot_jvm.pid}.jfr"]   # timed samples
        assert m.profile.timeline["file"] == "timeline.bin" and m.profile.timeline["samples"] > 0
        assert "not active" in async_profiler_status(hot_jvm.pid, tmp_path), "profkit left async-profiler running"
    assert_running(hot_jvm.pid)


@pytest.mark.slow
def test_alloc_mode_weighs_bytes_at_the_allocating_method(start_jvm, tmp_path):
    jvm = start_jvm("alloc")
    run = tmp_path / "run"
    p = profkit("attach", "--pid", jvm.pid, "--duration", 4, "--mode", "alloc", "-c", "async-profiler", "-o", run, "-q")
    assert p.returncode == 0, p.stderr
    m = manifest(run)
    assert m.status == "complete" and m.unit == "bytes"
    assert "total" in m.profilers[0].commands[0][4]
    frames, _ = max(read_folded(run / "profile.folded"), key=lambda row: row[1])
    assert frames[-2:] == [ALLOC, "long[]"], frames  # the allocated class on top of its allocating method
    assert inclusive_share(run / "profile.folded", ALLOC) > 0.9


@pytest.mark.slow
def test_default_collector_for_a_jvm_and_ctrl_c(hot_jvm, start_profkit, tmp_path):
    run = tmp_path / "run"
    proc = start_profkit("attach", "--pid", hot_jvm.pid, "--duration", 60, "-o", run, "-q")
    proc.wait_for(lambda: recording(run, 2), 30, "profkit recording for 2 s")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0, proc.err
    m = manifest(run)
    assert m.status == "interrupted" and m.duration < 30
    assert m.profilers[0].id == "async-profiler"  # the contract's default for a JVM
    assert inclusive_share(run / "profile.folded", HOT) > 0.5
    assert "not active" in async_profiler_status(hot_jvm.pid, tmp_path)
    assert_running(hot_jvm.pid)


@pytest.mark.slow
@pytest.mark.parametrize("collector", ["async-profiler", "jfr"])
def test_a_jvm_exiting_mid_run_gives_what_it_wrote_on_the_way_out(collector, start_jvm, tmp_path):
    jvm = start_jvm("cpu", seconds=4)
    run = tmp_path / "run"
    p = profkit("attach", "--pid", jvm.pid, "--duration", 30, "-c", collector, "-o", run, "-q")
    assert p.returncode == 0, p.stderr
    m = manifest(run)
    assert m.status == "complete" and m.duration < 20
    assert any("exited" in w for w in m.warnings), m.warnings
    assert inclusive_share(run / "profile.folded", HOT) > 0.5


# -- kill safety ------------------------------------------------------------------------------------

@pytest.mark.slow
def test_sigkill_of_profkit_leaves_the_jvm_running_and_profiling_stops_by_itself(start_jvm, start_profkit, tmp_path):
    # Both collectors at once, each on its own JVM, so that the waits overlap.
    runs = {}
    for collector in ("async-profiler", "jfr"):
        jvm = start_jvm("cpu")
        run = tmp_path / collector
        raw = run / "raw" / (f"jfr-{jvm.pid}.jfr" if collector == "jfr" else f"async-profiler-{jvm.pid}.jfr")
        proc = start_profkit("attach", "--pid", jvm.pid, "--duration", 8, "-c", collector, "-o", run, "-q")
        runs[collector] = (jvm, run, raw, proc)
    for collector, (jvm, run, raw, proc) in runs.items():
        # the first periodic dump comes 2 s after the start
        proc.wait_for(lambda: raw.exists() and raw.stat().st_size > 0, 30, f"{collector}'s first dump")
        proc.kill()
        proc.wait(10)
        assert_running(jvm.pid, what="the JVM")
        assert not profiling_ended(collector, jvm.pid, tmp_path), f"{collector} should outlive profkit until its end"
        assert raw.stat().st_size > 0, "the data dumped before the kill is gone"
    for collector, (jvm, run, raw, proc) in runs.items():
        # 8 s asked + 3 s margin from the start, which came shortly before the first dump
        wait_until(lambda: profiling_ended(collector, jvm.pid, tmp_path), 20, f"{collector} to stop by itself", 0.2)
        assert_running(jvm.pid, what="the JVM")
        # what the tool wrote as it stopped by itself is a whole capture of the hot method
        if collector == "jfr":
            wait_until(lambda: check_recording(str(raw), raw.name) is None, 10, "a complete recording", 0.2)
            assert b"ProfkitHot" in raw.read_bytes()
        else:  # async-profiler finishes its last JFR chunk as it stops: a whole capture, times and all
            wait_until(lambda: asprof_share(raw, HOT) > 0.5, 10, "the agent's own final write", 0.2)
        assert manifest(run).status == "running"  # what profkit was doing when killed stays on disk


# -- errors -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("collector", ["async-profiler", "jfr"])
def test_a_jvm_collector_refuses_a_process_that_is_not_a_jvm(collector, classes, start_process, tmp_path):
    sleeper = start_process(sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)").wait_ready()
    p = profkit("attach", "--pid", sleeper.pid, "--duration", 2, "-c", collector, "-o", tmp_path / "run")
    assert p.returncode == 1, p.stderr
    first, *rest = p.stderr.strip().splitlines()
    assert first.startswith("profkit: error: ") and "not a JVM" in first, p.stderr
    assert all(line.startswith("hint: ") for line in rest), p.stderr
    assert sleeper.poll() is None


def test_jfr_refuses_wall_mode_with_a_hint(hot_jvm, tmp_path):
    p = profkit("attach", "--pid", hot_jvm.pid, "--duration", 2, "-c", "jfr", "--mode", "wall", "-o", tmp_path / "run")
    assert p.returncode == 1
    assert "jfr does not record --mode wall" in p.stderr and "hint: use -c async-profiler" in p.stderr


# -- the agent's answers, through a stand-in jcmd (the process boundary only) --------------------------

FAKE_JCMD = r"""#!/bin/sh
# Answers JVMTI.agent_load like async-profiler's agent in a JVM without perf events.
args="$4"
log=$(printf '%s' "$args" | sed -n 's/.*log=\([^,"]*\).*/\1/p')
file=$(printf '%s' "$args" | sed -n 's/.*file=\([^,"]*\).*/\1/p')
echo "$args" >> "$CALLS"
echo "$2:"
case "$args" in
  *start,event=cpu,*) echo "[ERROR] Perf events unavailable" > "$log"; echo "return code: 200" ;;
  *start,event=wall,*) echo "[ERROR] Profiler already started" > "$log"; echo "return code: 200" ;;
  *) echo "Profiling started" > "$log"; [ -n "$file" ] && echo "Main.run_[j];Main.work_[j] 7" > "$file"; echo "return code: 0" ;;
esac
"""


@pytest.fixture
def fake_jcmd(tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "jcmd").write_text(FAKE_JCMD)
    (bindir / "jcmd").chmod(0o755)
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("CALLS", str(calls))
    return calls


def test_cpu_falls_back_to_itimer_where_perf_events_are_refused(fake_jcmd, start_process, tmp_path):
    from collectors.async_profiler import AsyncProfilerCollector, AsyncProfilerRecordOptions
    from collectors.base import RecordRequest
    from profkit.errors import EnvironmentProblem

    c = AsyncProfilerCollector()
    # Stands in for the JVM (the stand-in jcmd never touches it); it handles SIGQUIT as a JVM does,
    # or profkit would refuse to attach (see attach_preconditions).
    sleeper = start_process(sys.executable, "-c", "import signal, time; signal.signal(signal.SIGQUIT, "
                            "lambda *a: None); print('ready', flush=True); time.sleep(30)").wait_ready()
    req = RecordRequest((sleeper.pid,), "jvm", "cpu", 250, 1.0, str(tmp_path),
                        AsyncProfilerRecordOptions(dump_interval=60, capture="collapsed"))
    rec = c.record(req)
    assert "event=itimer,interval=4000000,timeout=4" in rec.commands[0][-1]
    rec.stop()
    assert rec.finish() == [str(tmp_path / f"async-profiler-{sleeper.pid}.collapsed")]
    assert rec.parse_options.event == "itimer"  # how its capture is read
    assert [line.split(",", 2)[:2] for line in fake_jcmd.read_text().splitlines()] == [
        ['"start', "event=cpu"], ['"start', "event=itimer"], ['"stop', "collapsed"]]
    # someone else's session in the JVM: refused, with how to end it, and nothing left behind
    (tmp_path / "w").mkdir()
    with pytest.raises(EnvironmentProblem) as e:
        c.record(RecordRequest((sleeper.pid,), "jvm", "wall", 100, 1.0, str(tmp_path / "w"),
                               AsyncProfilerRecordOptions()))
    assert "already profiling" in e.value.message and "stop" in e.value.hint
    assert not list((tmp_path / "w").iterdir())
    assert sleeper.poll() is None


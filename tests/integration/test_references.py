# SPDX-License-Identifier: Apache-2.0
"""Three parsers checked against the tools' own reading of the same recordings (issue 16, item 4).

The goldens under ``tests/data/*/results`` pin what profkit's parsers give; these tests check that
it is right. Each records a real target here and reads the recording both with profkit and with
the tool that wrote it (or that tool's own converter):

* **async-profiler**: ``targets/ProfkitSplit.java`` recorded by async-profiler's agent as JFR
  (``-agentpath:libasyncProfiler.so=start,event=cpu,jfr,file=…``), converted to collapsed stacks by
  async-profiler's own converter (``jfrconv``: the Maven jar ``tools.profiler:jfr-converter``, run
  without ``--cpu``, which would keep only async-profiler's STATE_DEFAULT samples) and read by
  ``profkit collapse --format jfr``. One recording, so totals, top frames and every stack must
  be identical, after one normalisation: the Java frame-type suffixes ``_[j] _[i] _[0] _[1]``
  are dropped on both sides, because jfrconv merges the interpreted, C1, inlined and JIT samples
  of a method at one stack position into one node named by the majority type
  (async-profiler:src/converter/one/convert/Frame.java ``getType``), while profkit keeps each
  sample's own type. Kernel frames' ``_[k]`` is never merged and must match; class names are
  slash-separated on both sides (jfrconv without ``--dot``), native frames are bare symbols.
  ProfkitSplit's stacks are deeper than profkit's default ``--stack-depth`` (64): read with a
  larger one they must equal jfrconv's, read with the default they must be jfrconv's stacks
  cut to their 64 leaf-most frames under a ``[truncated]`` root. jfrconv's collapsed text read
  by ``profkit collapse --format async-profiler`` must come back line for line, suffixes and all.
* **JFR**: the JDK's ``jfr summary`` event counts (jdk.ExecutionSample, jdk.ObjectAllocationSample)
  against profkit's totals, for the JDK's own recorder (``-XX:StartFlightRecording``) and for
  async-profiler's JFR output (cpu only: async-profiler writes allocations as
  jdk.ObjectAllocationInNewTLAB/OutsideTLAB, which profkit does not read). Events without a
  stack trace are the only ones profkit skips (as malformed); they are counted from
  ``jfr print --json`` here. The JDK recording is also converted by jfrconv (cpu, and
  ``--alloc --total`` for bytes), which, unlike profkit, ignores the recorder's ``truncated``
  flag (profkit's ``[truncated]`` roots are dropped to compare) and marks allocated classes
  without a TLAB size ``_[k]`` (dropped on the leaf). jdk.NativeMethodSample is disabled in that
  recording: jfrconv counts those as execution samples, profkit (like JMC) does not.
* **py-spy** writes one format per run, so ``targets/pysplit.py`` (60/30/10 between heavy,
  medium and light) is sampled by two py-spy processes at once, ``--format raw`` and
  ``--format speedscope``, both ``--function --nonblocking`` (two blocking py-spys pause the
  target for each other and lose samples) at 1000 Hz for 6 s: at 100 Hz the two recordings'
  shares differed by up to 5 points on this loaded 2-core machine; at 1000 Hz by 1.5 at most.
  profkit's parse of the speedscope file must give the same top functions as py-spy's raw
  output, each share within 3 points; its parse of the raw file must equal the raw lines.

A missing tool fails these tests with how to install it; nothing is skipped.
"""
import collections
import json
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

from collectors.async_profiler import find_library
from collectors.jfr import JfrOptions, parse
from collectors.pyspy import find_pyspy
from conftest import TARGETS, profkit
from profkit.errors import CollectorNotInstalled
from profkit.inputs import Source

pytestmark = pytest.mark.slow

#: async-profiler's converter, the same version as the agent (tools.profiler:async-profiler)
CONVERTER_VERSION = "4.1"
CONVERTER = (pathlib.Path.home() / ".m2" / "repository" / "tools" / "profiler" / "jfr-converter" / CONVERTER_VERSION
             / f"jfr-converter-{CONVERTER_VERSION}.jar")
CONVERTER_HINT = f"mvn -q dependency:get -Dartifact=tools.profiler:jfr-converter:{CONVERTER_VERSION}"
JDK_HINT = "apt-get install openjdk-17-jdk-headless"
JVM_SECONDS = 5
PY_SECONDS, PY_RATE = 6, 1000
DEFAULT_DEPTH = JfrOptions().stack_depth
CPU, ALLOC = "jdk.ExecutionSample", "jdk.ObjectAllocationSample"
_JAVA_TYPE = re.compile(r"_\[[ji01]\]\Z")
_TLAB = re.compile(r"_\[[ik]\]\Z")


# -- reading folded text, normalised as the module docstring says ------------------------------------

def read_folded(path, alloc=False):
    """Counter of stack (tuple of frames, root first) → count; Java frame-type suffixes dropped,
    and with ``alloc`` the leaf's TLAB suffix too."""
    stacks = collections.Counter()
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            text, count = line.rstrip("\n").rsplit(" ", 1)
            frames = [_JAVA_TYPE.sub("", f) for f in text.split(";")]
            if alloc:
                frames[-1] = _TLAB.sub("", frames[-1])
            stacks[tuple(frames)] += int(count)
    return stacks


def read_lines(path):
    """Counter of folded line text (stack, exactly as written) → count."""
    lines = collections.Counter()
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            text, count = line.rstrip("\n").rsplit(" ", 1)
            lines[text] += int(count)
    return lines


def self_counts(stacks, key=lambda frame: frame):
    """Counter of leaf frame (through ``key``) → count."""
    out = collections.Counter()
    for stack, n in stacks.items():
        out[key(stack[-1])] += n
    return out


def top(counter, n=5):
    """The ``n`` largest entries, ties in name order so that equal counters give equal lists."""
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:n]


def cut(stacks, depth):
    """Stacks as profkit gives them at ``--stack-depth depth``: longer ones keep their leaf end."""
    out = collections.Counter()
    for stack, n in stacks.items():
        out[("[truncated]",) + stack[-depth:] if len(stack) > depth else stack] += n
    return out


def without_truncated_roots(stacks):
    out = collections.Counter()
    for stack, n in stacks.items():
        out[stack[1:] if stack[0] == "[truncated]" else stack] += n
    return out


# -- the tools -------------------------------------------------------------------------------------

def run(argv, timeout=120):
    p = subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, f"{' '.join(map(str, argv))} exited {p.returncode}: {p.stderr[-2000:]}"
    return p.stdout


def jfrconv(recording, out, *options, alloc=False):
    """async-profiler's own converter: the recording as collapsed stacks."""
    run(["java", "-jar", CONVERTER, "-o", "collapsed", *options, recording, out])
    return read_folded(out, alloc)


def profkit_collapsed(recording, out, *options, alloc=False):
    """``profkit collapse --format jfr``; any warning (a skipped event, say) fails the test."""
    p = profkit("collapse", "--format", "jfr", *options, recording, "-o", out)
    assert p.returncode == 0 and p.stderr == "", p.stderr
    return read_folded(out, alloc)


def jfr_summary(recording):
    """Event type → count, as ``jfr summary`` prints them."""
    counts = {}
    for line in run(["jfr", "summary", recording]).splitlines():
        m = re.match(r"\s*(\w+(?:\.\w+)+)\s+(\d+)\s+\d+\s*\Z", line)
        if m:
            counts[m.group(1)] = int(m.group(2))
    return counts


def jfr_events(recording, event_type):
    """The recording's events of one type from ``jfr print --json`` (one frame per stack is enough)."""
    text = run(["jfr", "print", "--json", "--stack-depth", "1", "--events", event_type, recording])
    return [e for e in json.loads(text)["recording"]["events"] if e["type"] == event_type]


def has_stack(event):
    trace = event["values"].get("stackTrace")
    return bool(trace and trace.get("frames"))


# -- recordings ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def jvm_recordings(tmp_path_factory):
    """ProfkitSplit run twice at once for JVM_SECONDS: once with async-profiler's agent writing JFR,
    once with the JDK's recorder; each recording is written as its JVM exits."""
    for tool in ("java", "javac", "jfr"):
        assert shutil.which(tool), f"{tool} is not installed: {JDK_HINT}"
    assert CONVERTER.is_file(), f"async-profiler's converter is not in ~/.m2: {CONVERTER_HINT}"
    try:
        lib = find_library().path
    except CollectorNotInstalled as e:
        pytest.fail(f"{e.message}: {e.hint}")
    out = tmp_path_factory.mktemp("jvm")
    run(["javac", "-d", out, TARGETS / "ProfkitSplit.java"])
    ap, jdk = out / "async-profiler.jfr", out / "jdk.jfr"
    flags = {ap: f"-agentpath:{lib}=start,event=cpu,interval=10ms,jfr,file={ap}",
             jdk: f"-XX:StartFlightRecording:settings=profile,jdk.ExecutionSample#period=10ms,"
                  f"jdk.NativeMethodSample#enabled=false,dumponexit=true,filename={jdk}"}
    procs = {}
    try:
        for path, flag in flags.items():
            with open(path.with_suffix(".log"), "wb") as log:
                procs[path] = subprocess.Popen(["java", "-Xmx256m", flag, "-cp", out, "ProfkitSplit", str(JVM_SECONDS)],
                                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        for path, proc in procs.items():
            rc = proc.wait(timeout=JVM_SECONDS + 60)
            log = path.with_suffix(".log").read_text(errors="replace")
            assert rc == 0 and path.is_file() and path.stat().st_size > 0, f"no recording {path.name}: {log[-2000:]}"
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return {"async-profiler": ap, "jdk": jdk}


# -- 1 async-profiler: profkit against jfrconv on the same recording ------------------------------

def test_async_profiler_recording_matches_its_own_converter(jvm_recordings, tmp_path):
    recording = jvm_recordings["async-profiler"]
    ref = jfrconv(recording, tmp_path / "jfrconv.collapsed")
    assert top(self_counts(ref), 1)[0][0] == "ProfkitSplit.mix", top(self_counts(ref))
    deepest = max(len(s) for s in ref)
    assert deepest > DEFAULT_DEPTH, "ProfkitSplit's stacks should be deeper than the default --stack-depth"

    whole = profkit_collapsed(recording, tmp_path / "whole.folded", "--stack-depth", deepest)
    assert sum(whole.values()) == sum(ref.values())
    assert top(self_counts(whole)) == top(self_counts(ref))
    assert whole == ref

    default = profkit_collapsed(recording, tmp_path / "default.folded")
    assert sum(default.values()) == sum(ref.values())
    assert top(self_counts(default)) == top(self_counts(ref))
    assert default == cut(ref, DEFAULT_DEPTH)

    # and profkit's reader of collapsed text (collectors/async_profiler.py) gives jfrconv's lines
    # back exactly, suffixes and all
    p = profkit("collapse", "--format", "async-profiler", tmp_path / "jfrconv.collapsed", "-o", tmp_path / "text.folded")
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert read_lines(tmp_path / "text.folded") == read_lines(tmp_path / "jfrconv.collapsed")


# -- 2 JFR: profkit's totals against jfr summary ----------------------------------------------------

@pytest.mark.parametrize("recorder, event", [("jdk", "cpu"), ("jdk", "alloc"), ("async-profiler", "cpu")])
def test_totals_match_jfr_summary(jvm_recordings, recorder, event):
    recording = jvm_recordings[recorder]
    event_type = CPU if event == "cpu" else ALLOC
    count = jfr_summary(recording)[event_type]
    events = jfr_events(recording, event_type)
    assert len(events) == count > 0
    with_stack = [e for e in events if has_stack(e)]

    src = Source(str(recording), binary_ok=True)
    profile = parse(src, JfrOptions(event=event), src.diag)
    assert profile.meta.extra["events"] == len(with_stack)
    assert src.diag.malformed_count == count - len(with_stack)  # the only events profkit skips
    weight = (lambda e: 1) if event == "cpu" else (lambda e: e["values"]["weight"])
    assert profile.total == sum(weight(e) for e in with_stack)
    if recorder == "jdk":
        # the JVM cuts stacks at 64 frames and says so: each such sample has a [truncated] root
        truncated = sum(weight(e) for e in with_stack if e["values"]["stackTrace"]["truncated"])
        assert sum(n for stack, n in profile.stacks() if stack[0].name == "[truncated]") == truncated
        if event == "cpu":
            assert truncated > 0, "ProfkitSplit's deep stacks should be truncated by the JVM"


def test_jdk_recording_matches_async_profilers_converter(jvm_recordings, tmp_path):
    recording = jvm_recordings["jdk"]
    for event, options in (("cpu", ()), ("alloc", ("--alloc", "--total"))):
        alloc = event == "alloc"
        ref = jfrconv(recording, tmp_path / f"jfrconv-{event}.collapsed", *options, alloc=alloc)
        ours = profkit_collapsed(recording, tmp_path / f"{event}.folded", "--event", event, alloc=alloc)
        ours = without_truncated_roots(ours)
        assert sum(ours.values()) == sum(ref.values()) > 0, event
        assert top(self_counts(ours)) == top(self_counts(ref)), event
        assert ours == ref, event


# -- 3 py-spy: the speedscope parse against py-spy's raw output ---------------------------------------

def function(frame):
    """A py-spy frame's function name: ``heavy (pysplit.py:20)`` → ``heavy``."""
    return frame.split(" (", 1)[0]


def shares(stacks):
    total = sum(stacks.values())
    return {name: n / total for name, n in self_counts(stacks, function).items()}


def test_pyspy_speedscope_agrees_with_raw_output(start_target, tmp_path):
    exe = find_pyspy()
    assert exe, "py-spy is not installed: pip install py-spy"
    target = start_target(sys.executable, str(TARGETS / "pysplit.py"))
    target.wait_ready()
    out = {fmt: tmp_path / f"py-spy.{fmt}" for fmt in ("raw", "speedscope")}
    logs = {fmt: tmp_path / f"py-spy-{fmt}.log" for fmt in out}
    procs = {}
    try:
        for fmt, path in out.items():
            with open(logs[fmt], "wb") as log:
                procs[fmt] = subprocess.Popen([exe, "record", "--pid", str(target.pid), "--rate", str(PY_RATE),
                                               "--duration", str(PY_SECONDS), "--function", "--nonblocking",
                                               "--format", fmt, "--output", str(path)],
                                              stdout=log, stderr=subprocess.STDOUT)
        for fmt, proc in procs.items():
            rc = proc.wait(timeout=PY_SECONDS + 60)
            assert rc == 0, logs[fmt].read_text(errors="replace")
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    # the raw file: profkit gives back py-spy's own lines
    p = profkit("collapse", "--format", "py-spy", out["raw"], "-o", tmp_path / "raw.folded")
    assert p.returncode == 0 and p.stderr == "", p.stderr
    assert read_lines(tmp_path / "raw.folded") == read_lines(out["raw"])
    raw = read_folded(out["raw"])

    # the speedscope file: every sample once, and py-spy's raw shares
    p = profkit("collapse", "--format", "py-spy", out["speedscope"], "-o", tmp_path / "speedscope.folded")
    assert p.returncode == 0 and p.stderr == "", p.stderr
    speedscope = read_folded(tmp_path / "speedscope.folded")
    data = json.loads(out["speedscope"].read_text())
    assert sum(speedscope.values()) == sum(len(prof["samples"]) for prof in data["profiles"]) > PY_SECONDS * PY_RATE / 2
    ref, ours = shares(raw), shares(speedscope)
    top_ref = sorted(ref, key=ref.get, reverse=True)[:3]
    assert top_ref == ["heavy", "medium", "light"], ref  # the target's 60/30/10
    assert sorted(ours, key=ours.get, reverse=True)[:3] == top_ref, ours
    for name in top_ref:
        assert abs(ours[name] - ref[name]) <= 0.03, (name, ours[name], ref[name])

# SPDX-License-Identifier: Apache-2.0
"""Live async-profiler runs record its JFR output: timed samples and threads, end to end.

GIVEN a JVM that runs phaseA for 3 s and then phaseB for 3 s, WHEN ``profkit attach -c
async-profiler`` records it, THEN the run has ``timeline.bin``, its timed samples put A before B,
and ``profkit render --from/--until`` of each half puts that half's method on top. GIVEN two named
JVM threads, THEN with ``--threads`` each hot method is under its own ``[NAME tid=N]`` frame (the
spelling of async-profiler's collapsed output), and a ``--capture collapsed`` recording of the
same JVM gives the same threads, shares and sample rate within noise.
"""
import json
import re
import shutil
import signal
import subprocess

import pytest

from conftest import TARGETS, folded_shares, manifest, profkit
from profkit.timeline import epoch_of_iso, read
from support import assert_running

pytestmark = [pytest.mark.slow]


def _javac(tmp_path, name):
    for tool in ("java", "javac", "jcmd"):
        assert shutil.which(tool), f"{tool} is not installed: apt-get install openjdk-17-jdk-headless"
    classes = tmp_path / "classes"
    subprocess.run(["javac", "-d", str(classes), str(TARGETS / f"{name}.java")], check=True, timeout=300)
    return classes


def _method_shares(folded):
    """method (no kind suffix) → share, by leaf."""
    out = {}
    for leaf, share in folded_shares(folded).items():
        name = re.sub(r"_\[\w+\]$", "", leaf)
        out[name] = out.get(name, 0) + share
    return out


def _top(folded):
    shares = _method_shares(folded)
    return max(shares, key=shares.get), shares


def test_timed_samples_put_phase_a_before_b_and_render_cuts_each_half(tmp_path, start_process, start_profkit):
    classes = _javac(tmp_path, "ProfkitPhases")
    go = tmp_path / "go"
    jvm = start_process("java", "-Xmx128m", "-cp", str(classes), "ProfkitPhases", str(go), "3")
    jvm.wait_line(r"^ready$", 60)
    run = tmp_path / "run"
    raw = run / "raw" / f"async-profiler-{jvm.pid}.jfr"
    proc = start_profkit("attach", "--pid", jvm.pid, "-c", "async-profiler", "-d", 60, "-o", run, "-q")
    proc.wait_for(lambda: raw.exists() and raw.stat().st_size > 0, 60, "async-profiler's first dump")
    go.touch()
    jvm.wait_line(r"^end ", 60)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0, proc.output()
    marks = {line.split()[0]: float(line.split()[1]) for line in jvm.lines() if line.split()[:1] in (["A"], ["B"], ["end"])}
    m = manifest(run)
    assert m.profile.timeline["file"] == "timeline.bin" and m.profilers[0].raw == [f"raw/async-profiler-{jvm.pid}.jfr"]
    tl = read(str(run / "timeline.bin"))
    leaf = {i: re.sub(r"_\[\w+\]$", "", key[-1]).split(".")[-1] for i, key in enumerate(tl.stacks)}
    times = {"phaseA": [], "phaseB": []}
    for t, s in zip(tl.t, tl.stack):
        if leaf[s] in times:
            times[leaf[s]].append(tl.start + t / 1000)
    assert len(times["phaseA"]) > 20 and len(times["phaseB"]) > 20, {k: len(v) for k, v in times.items()}
    assert max(times["phaseA"]) <= min(times["phaseB"]) + 0.05, "phaseA samples after phaseB began"
    assert marks["A"] - 0.05 <= min(times["phaseA"]) and max(times["phaseB"]) <= marks["end"] + 0.05
    start = epoch_of_iso(m.start)
    a0, b0 = marks["A"] - start, marks["B"] - start
    first = profkit("render", run, "--from", f"{a0 + 0.3:.2f}s", "--until", f"{b0 - 0.3:.2f}s", "-o", tmp_path / "a")
    assert first.returncode == 0, first.stderr
    top, shares = _top(tmp_path / "a" / "profile.folded")
    assert top == "ProfkitPhases.phaseA" and shares.get("ProfkitPhases.phaseB", 0) < 0.05, shares
    second = profkit("render", run, "--from", f"{b0 + 0.3:.2f}s", "--until", f"{marks['end'] - start - 0.3:.2f}s",
                     "-o", tmp_path / "b")
    assert second.returncode == 0, second.stderr
    top, shares = _top(tmp_path / "b" / "profile.folded")
    assert top == "ProfkitPhases.phaseB" and shares.get("ProfkitPhases.phaseA", 0) < 0.05, shares
    assert_running(jvm.pid)


def _thread_roots(folded, method):
    roots = set()
    for line in open(folded):
        frames = line.rsplit(" ", 1)[0].split(";")
        if any(re.sub(r"_\[\w+\]$", "", f).endswith("." + method) for f in frames):
            roots.add(frames[0])
    return roots


def _rate(run):
    """Samples per second of the run."""
    m = manifest(run)
    return sum(float(line.rsplit(" ", 1)[1]) for line in open(run / "profile.folded")) / m.duration


def test_two_jvm_threads_each_under_its_frame_as_in_a_collapsed_recording(tmp_path, start_process):
    classes = _javac(tmp_path, "ProfkitThreads")
    jvm = start_process("java", "-Xmx128m", "-cp", str(classes), "ProfkitThreads", "0")
    jvm.wait_line(r"^ready$", 60)
    # a first attach loads the agent library, which can take seconds on a loaded machine: done
    # once before, so that both recordings below start alike
    warm = profkit("attach", "--pid", jvm.pid, "-c", "async-profiler", "-d", 1, "-o", tmp_path / "warm", "-q",
                   timeout=180)
    assert warm.returncode == 0, warm.stderr
    runs = {}
    for capture in ("jfr", "collapsed"):
        run = runs[capture] = tmp_path / capture
        p = profkit("attach", "--pid", jvm.pid, "-c", "async-profiler", "--threads", "--capture", capture, "-d", 5,
                    "-o", run, "-q", timeout=180)
        assert p.returncode == 0, p.stderr
        for method, thread in (("alphaWork", "profkit-alpha"), ("betaWork", "profkit-beta")):
            roots = _thread_roots(run / "profile.folded", method)
            assert len(roots) == 1 and re.fullmatch(rf"\[{thread} tid=\d+\]", roots.pop()), (capture, roots)
    m = manifest(runs["jfr"])
    assert m.profile.timeline["threads"] >= 2 and m.profilers[0].raw == [f"raw/async-profiler-{jvm.pid}.jfr"]
    assert not (runs["collapsed"] / "timeline.bin").exists()
    a, b = (_method_shares(runs[c] / "profile.folded") for c in ("jfr", "collapsed"))
    for method in ("ProfkitThreads.alphaWork", "ProfkitThreads.betaWork"):
        assert abs(a.get(method, 0) - b.get(method, 0)) < 0.15, (method, a, b)
    # the same sampling: samples per second of the run within noise (a loaded machine starves the JVM)
    ratio = _rate(runs["jfr"]) / _rate(runs["collapsed"])
    assert 0.5 < ratio < 2.0, ratio
    # the agent's async-profiler, kept attached across windows, passes --threads on too
    out = tmp_path / "agent"
    p = profkit("agent", "--pid", jvm.pid, "-c", "async-profiler", "--threads", "--window", 3, "--duration", 6,
                "-o", out, "-q", timeout=240)
    assert p.returncode == 0, p.stderr
    windows = [json.loads(line) for line in (out / "windows.jsonl").read_text().splitlines()]
    assert len(windows) >= 2, windows
    for w in windows:
        for method, thread in (("alphaWork", "profkit-alpha"), ("betaWork", "profkit-beta")):
            roots = _thread_roots(out / w["dir"] / "profile.folded", method)
            assert len(roots) == 1 and re.fullmatch(rf"\[{thread} tid=\d+\]", roots.pop()), (w["dir"], roots)
    assert_running(jvm.pid)

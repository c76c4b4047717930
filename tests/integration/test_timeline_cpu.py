# SPDX-License-Identifier: Apache-2.0
"""py-spy's default cpu mode with timed samples (speedscope placed by on-CPU time).

GIVEN a Python target running phase_a() for 3 s then phase_b() for 3 s, WHEN it is recorded in
cpu mode, THEN the timed samples put A before B and ``render --from/--until`` of each half puts
that half's function on top. GIVEN a busy thread and a thread that sleeps half the time, THEN
profkit's counts match a ``py-spy record --format raw`` of the same process (within sampling
noise), and the timeline holds exactly the profile's samples.
"""
import os
import subprocess
import sys

import pytest

from conftest import TARGETS, folded_shares, manifest, profkit
from profkit.timeline import epoch_of_iso, read
from support import assert_running

pytestmark = [pytest.mark.slow]
PHASES = TARGETS / "pyphases.py"


def _top(folded):
    shares = folded_shares(folded)
    return max(shares, key=shares.get), shares


def test_cpu_mode_times_put_a_before_b_and_render_cuts_each_half(tmp_path):
    run = tmp_path / "run"
    p = profkit("run", "-d", 15, "-o", run, "--", sys.executable, PHASES, "phases", 3)
    assert p.returncode == 0, p.stderr
    marks = {line.split()[0]: float(line.split()[1]) for line in p.stdout.splitlines()
             if line.split()[:1] and line.split()[0] in ("A", "B", "end")}
    m = manifest(run)
    assert m.mode == "cpu" and m.profile.timeline["file"] == "timeline.bin"
    assert any(r.endswith(".runtime") for r in os.listdir(run / "raw"))
    tl = read(str(run / "timeline.bin"))
    assert len(tl) == m.profile.samples  # every sample of the profile has its time
    leaf = {i: key[-1].split(" (")[0] for i, key in enumerate(tl.stacks)}
    times = {"phase_a": [], "phase_b": []}
    for t, s in zip(tl.t, tl.stack):
        if leaf[s] in times:
            times[leaf[s]].append(t / 1000)
    assert len(times["phase_a"]) > 100 and len(times["phase_b"]) > 100, {k: len(v) for k, v in times.items()}
    late_a = sum(1 for t in times["phase_a"] if t > min(times["phase_b"]) + 0.1)
    assert late_a <= 0.02 * len(times["phase_a"]), "phase_a samples placed after phase_b began"
    start = epoch_of_iso(m.start)
    a0, b0, end = marks["A"] - start, marks["B"] - start, marks["end"] - start
    first = profkit("render", run, "--from", f"{a0 + 0.3:.2f}s", "--until", f"{b0 - 0.3:.2f}s", "-o", tmp_path / "a")
    assert first.returncode == 0, first.stderr
    top, shares = _top(tmp_path / "a" / "profile.folded")
    assert top == "phase_a" and shares.get("phase_b", 0) < 0.05, shares
    second = profkit("render", run, "--from", f"{b0 + 0.3:.2f}s", "--until", f"{end - 0.3:.2f}s", "-o", tmp_path / "b")
    assert second.returncode == 0, second.stderr
    top, shares = _top(tmp_path / "b" / "profile.folded")
    assert top == "phase_b" and shares.get("phase_a", 0) < 0.05, shares


def test_a_busy_and_a_half_idle_thread_count_as_py_spy_raw_counts_them(tmp_path, start_process):
    target = start_process(sys.executable, str(PHASES), "bursts", "30").wait_ready()
    raw = tmp_path / "ref.folded"
    ref = subprocess.Popen(["py-spy", "record", "-p", str(target.pid), "-r", "100", "-d", "6", "--nonblocking",
                            "--function", "-f", "raw", "-o", str(raw)], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    run = tmp_path / "run"
    p = profkit("attach", "--pid", target.pid, "-d", 6, "-o", run, "-q")
    assert p.returncode == 0, p.stderr
    assert ref.wait(60) == 0
    mine, theirs = folded_shares(run / "profile.folded"), folded_shares(raw)
    for fn in ("alpha_work", "beta_work"):
        assert abs(mine.get(fn, 0) - theirs.get(fn, 0)) < 0.12, (fn, mine, theirs)
    # the half-idle thread is not counted through its sleep (chrometrace spans would give ~2x)
    assert mine["beta_work"] < 0.75 * mine["alpha_work"], mine
    tl = read(str(run / "timeline.bin"))
    assert len(tl) == manifest(run).profile.samples
    assert sorted(n.split(" [")[0] for n in tl.threads if "worker" in n) == ["alpha-worker", "beta-worker"]
    assert_running(target.pid)


def test_each_target_of_a_two_target_run_has_its_own_timed_samples(tmp_path, start_process):
    """attach --pid A --pid B: targets/<pid>-<name>/timeline.bin beside each target's
    profile.folded, in the run record; render --target cuts one target by time."""
    a = start_process(sys.executable, str(PHASES), "phases", "30")
    a.wait_line(r"^A ")
    b = start_process(sys.executable, str(PHASES), "threads", "30").wait_ready()
    run = tmp_path / "run"
    p = profkit("attach", "--pid", a.pid, "--pid", b.pid, "-d", 6, "-o", run, "-q")
    assert p.returncode == 0, p.stderr
    m = manifest(run)
    by_pid = {t.pid: t for t in m.targets}
    for pid, mine, other in ((a.pid, {"phase_a"}, "alpha_work"), (b.pid, {"alpha_work", "beta_work"}, "phase_a")):
        t = by_pid[pid]
        assert t.timeline and t.timeline["file"] == f"{t.dir}/timeline.bin" and (run / t.timeline["file"]).exists()
        tl = read(str(run / t.timeline["file"]))
        assert len(tl) == t.timeline["samples"] > 50
        leaves = {key[-1].split(" (")[0] for key in tl.stacks}
        assert mine <= leaves and other not in leaves, leaves
        out = tmp_path / f"t{pid}"
        r = profkit("render", run, "--target", pid, "-o", out)
        assert r.returncode == 0, r.stderr
        top, shares = _top(out / "profile.folded")
        assert top in mine and other not in shares, shares
    # render --target --from cuts that target's own samples by time
    r = profkit("render", run, "--target", b.pid, "--from", "1s", "--until", "4s", "-o", tmp_path / "mid")
    assert r.returncode == 0, r.stderr
    assert set(folded_shares(tmp_path / "mid" / "profile.folded")) <= {"alpha_work", "beta_work", "[no Python frame]"}
    # the merged timeline names each target in its thread labels (the report's thread selector)
    merged = read(str(run / "timeline.bin"))
    assert any(n.startswith("python3 [") or f"[{a.pid}]:" in n for n in merged.threads), merged.threads
    bad = profkit("render", run, "--target", "999999999")
    assert bad.returncode == 2 and "not a target of this run" in bad.stderr and "Traceback" not in bad.stderr

# SPDX-License-Identifier: Apache-2.0
"""profkit attach / run with the real py-spy against real Python processes."""
import json
import re
import signal
import subprocess
import sys

import pytest

from conftest import TARGETS, folded_shares, manifest, profkit, recording
from support import assert_running, state_of, wait_until

pytestmark = pytest.mark.slow


def test_attach_finds_the_hot_function(pyhot, tmp_path):
    run = tmp_path / "run"
    p = profkit("attach", "--pid", pyhot.pid, "--duration", 4, "-o", run)
    assert p.returncode == 0, p.stderr
    shares = folded_shares(run / "profile.folded")
    assert shares.get("hot_compute", 0) > 0.6, shares
    assert "hot_compute" in (run / "flamegraph.svg").read_text()
    summary = (run / "summary.md").read_text()
    assert "hot\\_compute" in summary and "| status | complete |" in summary
    m = manifest(run)
    assert json.loads((run / "manifest.json").read_text())["schema"] == 2 and m.status == "complete" and m.unit == "samples" and m.profile.samples > 100
    (entry,) = m.profilers
    assert entry.id == "py-spy" and entry.version and entry.commands[0][1] == "record"
    # cpu mode: py-spy's speedscope (its own samples) and profkit's on-CPU time poll beside it
    assert (run / "raw" / f"py-spy-{pyhot.pid}.json").exists() and (run / "raw" / f"py-spy-{pyhot.pid}.runtime").exists()
    assert m.profile.timeline and m.profile.timeline["samples"] == m.profile.samples
    assert (run / "metrics.jsonl").read_text().count("\n") >= 3
    assert "hot_compute" in (run / "report.html").read_text()
    assert "hot_compute" in p.stderr  # the summary is printed too
    assert state_of(pyhot.pid) in ("R", "S")


def test_run_launches_and_profiles_a_command(tmp_path):
    run = tmp_path / "run"
    p = profkit("run", "--duration", 3, "-o", run, "--", sys.executable, TARGETS / "pyhot.py", 10)
    assert p.returncode == 0, p.stderr
    assert folded_shares(run / "profile.folded").get("hot_compute", 0) > 0.5
    assert manifest(run).target.runtime == "python"


def test_ctrl_c_ends_early_and_keeps_everything(pyhot, start_profkit, tmp_path):
    run = tmp_path / "run"
    proc = start_profkit("attach", "--pid", pyhot.pid, "--duration", 60, "-o", run)
    proc.wait_for(lambda: recording(run, 3), 30, "profkit recording for 3 s")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(60) == 0, proc.err
    m = manifest(run)
    assert m.status == "interrupted" and m.duration < 30
    assert folded_shares(run / "profile.folded").get("hot_compute", 0) > 0.5
    assert (run / "flamegraph.svg").exists() and "interrupted" in (run / "summary.md").read_text()
    assert state_of(pyhot.pid) in ("R", "S")


def test_sigkill_of_profkit_loses_no_sample_and_render_recovers_the_run(pyhot, start_profkit, tmp_path):
    run = tmp_path / "run"
    proc = start_profkit("attach", "--pid", pyhot.pid, "--duration", 60, "-o", run)
    proc.wait_for(lambda: recording(run, 2), 30, "profkit recording for 2 s")
    spies = [int(x) for x in subprocess.run(["pgrep", "-P", str(proc.pid), "py-spy"], capture_output=True,
                                             text=True).stdout.split()]
    assert spies, "py-spy was not running under profkit"
    proc.kill()
    proc.wait(10)
    wait_until(lambda: all(state_of(s) in (None, "Z") for s in spies), 10, "py-spy to end with profkit")
    assert_running(pyhot.pid, what="the target")  # keeps running and is not left stopped
    assert manifest(run).status == "running"  # what it was doing when killed stays on disk
    # py-spy's parent-death signal is SIGINT, on which it writes what it sampled (on SIGTERM it would not)
    raw = run / "raw" / f"py-spy-{pyhot.pid}.json"
    assert raw.stat().st_size > 0, "py-spy's samples were lost"
    assert (run / "raw" / f"py-spy-{pyhot.pid}.runtime").stat().st_size > 0  # flushed each second
    # profkit render of a run whose profkit died recovers the raw capture and marks it interrupted
    p = profkit("render", run)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    m = manifest(run)
    assert m.status == "interrupted" and m.profile.samples > 50
    assert any("recovered" in w for w in m.warnings), m.warnings
    assert folded_shares(run / "profile.folded").get("hot_compute", 0) > 0.5
    assert (run / "flamegraph.svg").exists() and "interrupted" in (run / "summary.md").read_text()


def test_target_exiting_mid_run_gives_a_partial_profile(start_target, tmp_path):
    t = start_target(sys.executable, str(TARGETS / "pyhot.py"), "3")
    t.wait_ready()
    run = tmp_path / "run"
    p = profkit("attach", "--pid", t.pid, "--duration", 30, "-o", run)
    assert p.returncode == 0, p.stderr
    assert "target exited" in p.stderr
    m = manifest(run)
    assert m.duration < 20 and m.profile.samples > 0
    assert folded_shares(run / "profile.folded").get("hot_compute", 0) > 0.5


def test_an_idle_target_writes_the_run_and_warns(start_target, tmp_path):
    t = start_target(sys.executable, str(TARGETS / "pyhot.py"), "0", "--idle")
    t.wait_ready()
    run = tmp_path / "run"
    p = profkit("attach", "--pid", t.pid, "--duration", 2, "-o", run)
    assert p.returncode == 0, p.stderr
    # py-spy may still catch a few samples of a process blocked in pause(); either way the user is told.
    samples = manifest(run).profile.samples
    assert samples < 20
    if samples == 0:
        assert "warning: no samples were collected" in p.stderr, p.stderr
    else:
        assert re.search(rf"warning: only {samples:g} samples where about \d+ were possible at \d+ Hz: "
                         "the target was mostly idle", p.stderr), p.stderr
    assert (run / "summary.md").exists() and (run / "report.html").exists()


def test_wall_mode_sees_sleeping(start_target, tmp_path):
    t = start_target(sys.executable, str(TARGETS / "pyhot.py"), "0", "--idle")
    t.wait_ready()
    run = tmp_path / "run"
    p = profkit("attach", "--pid", t.pid, "--duration", 2, "--mode", "wall", "-o", run)
    assert p.returncode == 0, p.stderr
    assert manifest(run).profile.samples > 50
    assert "--idle" in manifest(run).profilers[0].commands[0]


def test_render_rebuilds_from_disk(pyhot, tmp_path):
    run = tmp_path / "run"
    assert profkit("attach", "--pid", pyhot.pid, "--duration", 2, "-o", run).returncode == 0
    for name in ("flamegraph.svg", "summary.md", "report.html"):
        (run / name).unlink()
    p = profkit("render", run)
    assert p.returncode == 0, p.stderr
    assert "hot_compute" in (run / "flamegraph.svg").read_text()
    assert (run / "summary.md").exists() and (run / "report.html").exists()


def test_several_processes_get_a_process_root_frame(start_target, tmp_path):
    a = start_target(sys.executable, str(TARGETS / "pyhot.py"))
    b = start_target(sys.executable, str(TARGETS / "pyhot.py"))
    a.wait_ready()
    b.wait_ready()
    run = tmp_path / "run"
    p = profkit("attach", "--pid", a.pid, "--pid", b.pid, "--duration", 3, "-o", run)
    assert p.returncode == 0, p.stderr
    roots = {line.split(";", 1)[0] for line in (run / "profile.folded").read_text().splitlines()}
    comm = {p: open(f"/proc/{p}/comm").read().strip() for p in (a.pid, b.pid)}
    assert roots == {f"{comm[a.pid]} [{a.pid}]", f"{comm[b.pid]} [{b.pid}]"}, roots
    # shared/CONTRACT.md "Several targets in one run": each one's own profile, without the root frame
    m = manifest(run)
    for t in (a, b):
        (entry,) = [x for x in m.targets if x.pid == t.pid]
        assert entry.dir == f"targets/{t.pid}-{comm[t.pid]}"
        own = (run / entry.dir / "profile.folded").read_text()
        assert own and "hot_compute" in own and f"[{t.pid}]" not in own
    # and the summary names every target's command
    summary = (run / "summary.md").read_text()
    assert f"command (pid {a.pid})" in summary and f"command (pid {b.pid})" in summary


def test_record_flags_reach_the_collector(pyhot, tmp_path):
    # Default: frames aggregated by function (py-spy --function); --lines keeps a frame per line.
    run = tmp_path / "fn"
    assert profkit("attach", "--pid", pyhot.pid, "-d", 2, "-o", run).returncode == 0
    assert "--function" in manifest(run).profilers[0].commands[0]
    hot_lines = {l.split(";")[-1].rsplit(" ", 1)[0] for l in (run / "profile.folded").read_text().splitlines()
                 if "hot_compute" in l.split(";")[-1]}
    assert len(hot_lines) == 1, hot_lines
    run = tmp_path / "lines"
    p = profkit("attach", "--pid", pyhot.pid, "-d", 2, "--lines", "--nonblocking", "--asprof", "/x", "-o", run)
    assert p.returncode == 0, p.stderr
    cmd = manifest(run).profilers[0].commands[0]
    assert "--function" not in cmd and "--nonblocking" in cmd
    assert "--asprof does not apply to py-spy" in p.stderr


def test_two_collectors_are_kept_apart(pyhot, tmp_path):
    run = tmp_path / "run"
    p = profkit("attach", "--pid", pyhot.pid, "-c", "py-spy", "-c", "perf", "-d", 2, "-o", run)
    assert p.returncode == 0, p.stderr
    m = manifest(run)
    assert [c.id for c in m.profilers] == ["py-spy", "perf"] and m.primary == "py-spy"
    assert (run / "profile-py-spy.folded").read_text() == (run / "profile.folded").read_text()
    perf_text = (run / "profile-perf.folded").read_text()
    assert perf_text and "hot_compute" not in perf_text  # perf sees the interpreter, not Python functions
    assert m.unit == "samples"  # the primary's unit, never a sum with perf's nanoseconds

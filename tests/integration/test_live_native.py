# SPDX-License-Identifier: Apache-2.0
"""profkit attach / run with the real perf against the native example (examples/native/hotloop.c)."""
import subprocess
import sys

import pytest

from conftest import folded_shares, manifest, profkit
from support import assert_running, state_of, wait_until

pytestmark = pytest.mark.slow


def hot_share(run):
    shares = folded_shares(run / "profile.folded")
    # The two hot phases (and their inlined/constprop clones), by leaf function.
    return sum(v for k, v in shares.items() if k.split(".")[0] in ("mix", "checksum_block", "shell_sort", "sort_records"))


def test_attach_perf_finds_the_hot_functions(hotloop, start_target, tmp_path):
    t = start_target(str(hotloop), "0")
    run = tmp_path / "run"
    p = profkit("attach", "--pid", t.pid, "--duration", 3, "-o", run)
    assert p.returncode == 0, p.stderr
    m = manifest(run)
    assert m.target.runtime == "native" and m.profilers[0].id == "perf"
    record = m.profilers[0].commands[0]
    event = record[record.index("-e") + 1]  # cycles where the machine counts them, else cpu-clock
    # cpu-clock's periods are nanoseconds of CPU time; cycles are counted as samples
    assert m.unit == ("nanoseconds" if event in ("cpu-clock", "task-clock") else "samples"), (event, m.unit)
    assert m.profile.samples > 0
    assert hot_share(run) > 0.8
    svg = (run / "flamegraph.svg").read_text()
    assert "shell_sort" in svg and "handle_batch" in svg
    assert "shell\\_sort" in (run / "summary.md").read_text()
    assert (run / "raw" / f"perf-{t.pid}.data").exists() and (run / "raw" / f"perf-{t.pid}.txt").exists()
    assert state_of(t.pid) in ("R", "S")


def test_run_perf_on_a_launched_program(hotloop, tmp_path):
    run = tmp_path / "run"
    p = profkit("run", "-c", "perf", "--duration", 2, "-o", run, "--", hotloop, "10")
    assert p.returncode == 0, p.stderr
    assert hot_share(run) > 0.8


def test_sigkill_of_profkit_leaves_the_target_running_and_perf_gone(hotloop, start_target, start_profkit, tmp_path):
    t = start_target(str(hotloop), "0")
    run = tmp_path / "run"
    proc = start_profkit("attach", "--pid", t.pid, "--duration", 60, "-o", run)

    def perf_children():
        return [int(x) for x in subprocess.run(["pgrep", "-P", str(proc.pid), "perf"], capture_output=True,
                                               text=True).stdout.split()]

    def metrics_lines():
        metrics = run / "metrics.jsonl"
        return metrics.read_text().count("\n") if metrics.exists() else 0

    perfs = proc.wait_for(perf_children, 10, "perf running under profkit")
    since = metrics_lines()
    # the run's sampler writes a line a second: two more lines, and perf has recorded for over a second
    proc.wait_for(lambda: metrics_lines() >= since + 2, 30, "perf to record for a second")
    proc.kill()
    proc.wait(10)
    wait_until(lambda: all(state_of(p) in (None, "Z") for p in perfs), 15, "perf to end with profkit")
    assert_running(t.pid, what="the target")
    # What perf recorded before the kill is on disk (it finishes the file on SIGTERM).
    assert (run / "raw" / f"perf-{t.pid}.data").stat().st_size > 0


def test_perf_on_a_python_target_is_allowed_when_asked(start_target, tmp_path):
    # Stock CPython 3.11 has no frame pointers, so perf sees interpreter frames, not Python functions;
    # it is still a valid choice (py-spy is the default).
    t = start_target(sys.executable, "-c", "print('ready', flush=True)\nwhile True: sum(range(1000))")
    t.wait_ready()
    run = tmp_path / "run"
    p = profkit("attach", "--pid", t.pid, "-c", "perf", "--duration", 2, "-o", run)
    assert p.returncode == 0, p.stderr
    m = manifest(run)
    assert m.profilers[0].id == "perf" and m.profile.samples > 0
    folded = (run / "profile.folded").read_text()
    assert folded and "<module>" not in folded  # the interpreter's C functions, never the Python code it runs

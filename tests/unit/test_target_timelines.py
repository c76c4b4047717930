# SPDX-License-Identifier: Apache-2.0
"""Per-target timed samples in a run of several targets: targets/<pid>-<name>/timeline.bin,
targets[].timeline in the run record (read back), render --target and its errors."""
import pytest

from profkit.engine.captures import _under, process_frame
from profkit.errors import EnvironmentProblem, UsageError
from profkit.model import Profile
from profkit.outputs import write_profiles
from profkit.rundir import RunDir
from profkit.runrecord import RunRecord, TargetRecord
from profkit.timeline import Timeline, epoch_of_iso
from profkit.timeslice import range_profile

START = "2026-12-01T10:00:00+00:00"


def _profile(fn, thread, seconds):
    prof = Profile()
    key = tuple(prof.intern(f) for f in ("main (app.py)", f"{fn} (app.py)"))
    tl = Timeline(epoch_of_iso(START))
    for i in range(seconds * 10):
        prof.add_ids(key, 1)
        tl.append(i / 10, key, thread)
    prof.timeline = tl
    return prof


def _run(tmp_path):
    record = RunRecord(targets=[TargetRecord(101, "api", "python"), TargetRecord(202, "worker", "python", service="jobs")],
                       start=START, rate=10.0, duration=4.0, mode="cpu")
    run = RunDir.create(str(tmp_path / "run"), record)
    per = {101: _profile("serve", "MainThread [101]", 4), 202: _profile("crunch", "MainThread [202]", 2)}
    merged = _under(per[101], process_frame("api", 101)).merge(_under(per[202], process_frame("worker", 202)))
    write_profiles(run, {"py-spy": merged}, ["py-spy"], {"py-spy": per})
    run.finish("complete")
    return RunDir.open(run.path)


def test_each_target_has_its_timeline_in_its_directory_and_the_record(tmp_path):
    run = _run(tmp_path)
    a, b = run.record.targets
    assert a.timeline["file"] == "targets/101-api/timeline.bin" and a.timeline["samples"] == 40
    assert b.timeline["file"] == "targets/202-worker/timeline.bin" and b.timeline["samples"] == 20
    assert {a.timeline["file"], b.timeline["file"], "timeline.bin"} <= set(run.record.files())
    merged = run.record.profile.timeline
    assert merged["samples"] == 60 and merged["threads"] == 2


def test_render_target_cuts_that_target_alone_by_pid_name_or_service(tmp_path):
    run = _run(tmp_path)
    for which, fn, n in (("101", "serve", 40), ("worker", "crunch", 20), ("jobs", "crunch", 20)):
        prof = range_profile(run, None, None, target=which)
        assert prof.total == n and {prof.frame(k[-1]).name for k in prof._stacks} == {fn}
    late = range_profile(run, 3.0, None, target="101")
    assert late.total == 10
    with pytest.raises(UsageError, match="not a target of this run"):
        range_profile(run, None, None, target="303")
    with pytest.raises(EnvironmentProblem, match="no samples between"):
        range_profile(run, 3.0, None, target="202")  # its 2 s end before


def test_the_merged_timeline_names_each_target_in_its_thread_labels(tmp_path):
    from profkit.outputs import load_run_profile, load_timeline

    run = _run(tmp_path)
    prof = load_run_profile(run)
    load_timeline(run, prof)
    assert sorted(prof.timeline.threads) == ["api [101]: MainThread [101]", "worker [202]: MainThread [202]"]

# SPDX-License-Identifier: Apache-2.0
"""Timed samples: the columns, timeline.bin, the collectors that fill them, the report's data,
render --from/--until, and collector errors as frames (the engine's losses)."""
import gzip
import json
import os
import pathlib
import re
import threading

import pytest

from collectors.jfr_print import JfrOptions
from collectors.jfr_print import parse as parse_jfr
from collectors.perf_script import parse as parse_perf
from collectors.pyspy import PySpyOptions
from collectors.pyspy import parse as parse_pyspy
from profkit.errors import Diagnostics, EnvironmentProblem, UsageError
from profkit.inputs import Source
from profkit.model import Frame, FrameKind, Profile
from profkit.outputs import render_run, write_profiles
from profkit.reports.timeline import script_json, timeline_data
from profkit.timeline import MAGIC, Timeline, TimelineFormatError, epoch_of_iso, from_bytes, to_bytes
from profkit.timeslice import offset_of, render_range
from support import make_run

DATA = pathlib.Path(__file__).resolve().parents[1] / "data"
HOSTILE = ["</script><script>window.pwned=1</script>", "<!--", "\u2028x\u2029", "a&b", '"quoted"']


def _src(path):
    s = Source(str(path), Diagnostics(str(path)))
    s.timed = True  # as a run's capture is read
    return s


def _timeline(n=1000, threads=("main [1]", "worker [2]")):
    tl = Timeline(1_800_000_000.0)
    for i in range(n):
        tl.append(i / 100, ("main", "a" if i < n // 2 else "b"), threads[i % len(threads)], 1 + i % 3)
    return tl


def test_columns_take_14_bytes_a_sample_and_the_file_less_than_16():
    tl = _timeline(60_000)
    assert tl.nbytes == 14 * 60_000
    data = to_bytes(tl)
    assert data[:4] == MAGIC and len(data) / 60_000 < 16
    back = from_bytes(data)
    assert list(back.t) == list(tl.t) and list(back.weight) == list(tl.weight) and back.threads == tl.threads
    assert [back.stacks[s] for s in back.stack] == [tl.stacks[s] for s in tl.stack]
    assert back.start == tl.start and back.tick_us == 1000


def test_select_cuts_by_time_and_thread():
    tl = _timeline(1000)
    first = tl.select(0, 5)
    assert set(first) == {("main", "a")} and sum(first.values()) == sum(1 + i % 3 for i in range(500))
    assert set(tl.select(5, None)) == {("main", "b")}
    worker = tl.select(None, None, ["worker [2]"])
    assert sum(worker.values()) == sum(1 + i % 3 for i in range(1, 1000, 2))


def test_a_damaged_timeline_is_refused_with_a_clear_error(tmp_path):
    data = to_bytes(_timeline(10))
    for bad in (b"nope" + data[4:], data[:-3], data[:30] + b"\0" * (len(data) - 30)):
        with pytest.raises(TimelineFormatError):
            from_bytes(bad)


def test_samples_out_of_order_keep_their_times_and_are_sorted_when_written():
    tl = Timeline()
    tl.append_absolute(1000.5, ("b",))
    tl.append_absolute(1000.2, ("a",))  # earlier than the first: start moves back
    assert tl.start < 1000.2
    back = from_bytes(to_bytes(tl))
    assert [back.stacks[s] for s in back.stack] == [("a",), ("b",)]
    assert abs(back.seconds(1) - back.seconds(0) - 0.3) < 0.002


def test_epoch_of_iso_reads_nanoseconds_and_offsets():
    assert epoch_of_iso("2026-11-28T18:01:02.793772039Z") == pytest.approx(1795888862.793772, abs=1e-6)
    assert epoch_of_iso("2026-11-28T19:01:02+01:00") == pytest.approx(1795888862.0)
    assert epoch_of_iso("garbage") is None


def test_perf_script_samples_carry_their_time_and_thread(tmp_path):
    text = ("app 4242/4243 100.000100:   10101010 cpu-clock:\n\t1 a (/bin/x)\n\t2 main (/bin/x)\n\n"
            "app worker 4242/4244 101.500100:   10101010 cpu-clock:\n\t1 b (/bin/x)\n\t2 main (/bin/x)\n\n")
    (tmp_path / "p.txt").write_text(text)
    assert parse_perf(Source(str(tmp_path / "p.txt"))).timeline is None  # profkit collapse: none kept
    p = parse_perf(_src(tmp_path / "p.txt"))
    tl = p.timeline
    assert len(tl) == 2 and list(tl.t) == [0, 1500] and list(tl.weight) == [10101010, 10101010]
    assert tl.threads == ["app [4243]", "app worker [4244]"] and p.meta.extra["clock"] == "monotonic"
    assert [tl.stacks[s][-1] for s in tl.stack] == ["a", "b"]


def test_perf_script_without_times_has_no_timeline(tmp_path):
    (tmp_path / "p.txt").write_text("app 31 cycles:\n\t1 a (/bin/x)\n\n")
    p = parse_perf(_src(tmp_path / "p.txt"))
    assert p.total == 1 and p.timeline is None


def test_jfr_events_carry_their_start_time_and_thread():
    p = parse_jfr(_src(DATA / "jfr" / "profkit-target.json.gz"), JfrOptions())
    tl = p.timeline
    assert len(tl) == p.total and tl.threads and all("[" in n for n in tl.threads)
    assert sum(tl.select().values()) == p.total
    events = json.loads(gzip.decompress((DATA / "jfr" / "profkit-target.json.gz").read_bytes()))["recording"]["events"]
    times = [epoch_of_iso(e["values"]["startTime"]) for e in events if e["type"] == "jdk.ExecutionSample"]
    assert tl.start == pytest.approx(min(times), abs=0.002)


def test_pyspy_chrometrace_spans_become_timed_samples_named_as_raw_names_them():
    path = DATA / "timeline" / "pyspy-chrometrace-threads.json"
    p = parse_pyspy(_src(path), PySpyOptions(rate=50, threads=False))
    tl = p.timeline
    assert p.total == len(tl) and {"MainThread [400]", "sleeper [403]"} <= set(tl.threads)
    leaves = {k[-1]: w for k, w in p.items()}
    assert leaves["a (t.py)"] == pytest.approx(50, abs=3) and leaves["b (t.py)"] == pytest.approx(50, abs=3)
    times = {n: [tl.seconds(i) for i in range(len(tl)) if tl.stacks[tl.stack[i]][-1] == n] for n in ("a (t.py)", "b (t.py)")}
    assert max(times["a (t.py)"]) < min(times["b (t.py)"])
    # with threads the thread frame is the root, of the THREAD kind
    kept = parse_pyspy(_src(path), PySpyOptions(rate=50))
    roots = {kept.frame(k[0]) for k, _ in kept.items()}
    assert all(f.kind is FrameKind.THREAD for f in roots)
    assert PySpyOptions().format == "auto" and parse_pyspy(_src(path)).meta.extra["format"] == "chrometrace"


def _timed_run(tmp_path, names=("main", "work"), thread="main [1]"):
    run = make_run(tmp_path / "run", start="2026-12-01T10:00:00+00:00", rate=100.0)
    prof = Profile()
    tl = prof.timeline = Timeline(epoch_of_iso(run.record.start))
    for i in range(600):
        key = tuple(prof.intern(Frame(n) if isinstance(n, str) else n) for n in names[:-1]) + \
            (prof.intern("phase_a" if i < 300 else "phase_b"),)
        prof.add_ids(key, 1)
        tl.append(i / 100, key, thread)
    write_profiles(run, {"perf": prof}, ["perf"])
    run.finish("complete")
    return run


def test_the_run_keeps_the_timeline_and_render_reads_it_back(tmp_path):
    run = _timed_run(tmp_path)
    rec = run.record.profile.timeline
    assert rec["file"] == "timeline.bin" and rec["samples"] == 600 and rec["bytes"] < 16 * 600 + 400
    render_run(run)
    html = open(run.file("report.html")).read()
    assert 'id="pk-timeline-data"' in html and "profkitTimeline" in html
    out = render_range(run, 0.0, 2.5)
    assert open(out["profile"]).read().strip() == "main;phase_a 250"
    assert os.path.dirname(out["profile"]).endswith(os.path.join("ranges", "0s-2.5s"))
    assert "phase\\_a" in open(out["summary"]).read()
    with pytest.raises(UsageError, match="never over a run's own files"):
        render_range(run, 0.0, 1.0, run.path)
    with pytest.raises(EnvironmentProblem, match="no samples between"):
        render_range(run, 100.0, None)
    with pytest.raises(EnvironmentProblem, match="no thread matches"):
        render_range(run, None, None, thread="nope")


def test_time_values_bare_durations_are_offsets_and_rfc3339_is_absolute():
    start = epoch_of_iso("2026-12-01T10:00:00Z")
    assert offset_of("12s", start, "--from") == 12 and offset_of("500ms", start, "--from") == 0.5
    assert offset_of("2026-12-01T10:00:20Z", start, "--until") == pytest.approx(20)
    with pytest.raises(UsageError):
        offset_of("soon", start, "--from")


def test_hostile_names_cannot_break_out_of_the_script_element(tmp_path):
    run = make_run(tmp_path / "run", start="2026-12-01T10:00:00+00:00", rate=100.0)
    prof = Profile()
    tl = prof.timeline = Timeline(epoch_of_iso(run.record.start))
    for i, name in enumerate(HOSTILE * 20):
        key = (prof.intern(Frame(name)),)
        prof.add_ids(key, 1)
        tl.append(i / 100, key, name)
    write_profiles(run, {"py-spy": prof}, ["py-spy"])
    run.finish("complete")
    render_run(run)
    html = open(run.file("report.html")).read()
    block = html.split('<script type="application/json" id="pk-timeline-data">', 1)[1].split("</script>", 1)[0]
    assert not re.search(r"[<>&\u2028\u2029]", block)
    data = json.loads(block)
    assert set(HOSTILE) - {"\u2028x\u2029"} <= set(data["frames"]) | set(data["threads"])
    assert script_json("</script>") == '"\\u003c/script\\u003e"'


def test_idle_threads_are_grouped_not_dropped():
    prof = Profile()
    tl = prof.timeline = Timeline(1.0)
    work, wait = (prof.intern("main"), prof.intern("work")), (prof.intern("main"), prof.intern("Thread._wait_for_tstate_lock"))
    for i in range(10):
        tl.append(i / 100, work, "busy [1]")
        tl.append(i / 100, wait, "waiter [2]")
    data = timeline_data(prof)
    assert data["threads"] == ["busy [1]", "waiter [2]"] and data["idle"] == [1]


# -- collector errors as frames ----------------------------------------------------------------------
class _Rec:
    def __init__(self, raw, tools=()):
        self.raw, self.tools, self.losses = raw, list(tools), []


ME, PARENT = os.getpid(), os.getppid()  # live processes stand for the targets (never signalled)


def _ctx(tmp_path, duration=10.0, elapsed=10.0, pids=(ME, PARENT)):
    from profkit.engine.probe import RunContext
    from profkit.targets import Target

    run = make_run(tmp_path / "run", pids=pids, rate=100.0)
    targets = [Target(pid=p, name=f"t{p}", runtime="python", cmdline=[], exe="") for p in pids]
    ctx = RunContext(run, targets, threading.Event(), duration)
    ctx.elapsed = elapsed
    return ctx


def _probe(ctx, rec, pid_id="py-spy"):
    from profkit.engine.probe import Probe

    p = Probe()
    p.id, p.kind, p.rec = pid_id, "profiler", rec
    p.attach_record(ctx).status = "ok"
    return p


def test_a_tool_that_ended_early_leaves_a_frame_weighted_by_the_time_lost(tmp_path):
    from profkit.engine.losses import account_losses

    ctx = _ctx(tmp_path, pids=(ME,))
    raw = tmp_path / "a.folded"
    raw.write_text("main;work 300\n")
    p = _probe(ctx, _Rec({ME: str(raw)}))
    p.ended_s = 3.0
    prof = ctx.profiles["py-spy"] = Profile()
    prof.add(["main", "work"], 300)
    assert account_losses(ctx, [p], "done", 100.0)
    stacks = {k[-1]: w for k, w in prof.items()}
    assert stacks["main;work".split(";")[-1]] == 300
    (err,) = [k for k in stacks if k.startswith("[collector error: py-spy ended 3.0 s into the run")]
    assert stacks[err] == 700 and prof.frame(err).kind is FrameKind.SYNTHETIC
    assert p.entry.status == "partial" and p.entry.detail["lost"][0]["seconds"] == 7.0
    assert any("samples lost" in w for w in ctx.record.warnings)


def test_a_missing_capture_of_one_target_is_lost_under_its_process_frame(tmp_path):
    from profkit.engine.losses import account_losses

    ctx = _ctx(tmp_path, duration=5.0, elapsed=5.0)
    (tmp_path / "a").write_text("x 1\n")
    p = _probe(ctx, _Rec({ME: str(tmp_path / "a"), PARENT: str(tmp_path / "missing")}))
    ctx.profiles["py-spy"] = Profile()
    assert account_losses(ctx, [p], "duration", 100.0)
    ((stack, w),) = list(ctx.profiles["py-spy"].stacks())
    assert stack[0].text == f"process [{PARENT}]"
    assert stack[1].name.startswith(f"[collector error: no capture from py-spy for pid {PARENT}")
    assert w == 500


def test_nothing_lost_adds_nothing(tmp_path):
    from profkit.engine.losses import account_losses

    ctx = _ctx(tmp_path, pids=(ME,))
    (tmp_path / "a").write_text("x 1\n")
    p = _probe(ctx, _Rec({ME: str(tmp_path / "a")}))
    p.ended_s = 9.5  # ended with the run, within the tolerance
    assert not account_losses(ctx, [p], "duration", 100.0) and p.entry.status == "ok"


def test_error_frames_in_nanoseconds_weigh_the_lost_seconds(tmp_path):
    from profkit.engine.losses import account_losses

    ctx = _ctx(tmp_path, pids=(ME,))
    (tmp_path / "a").write_text("x 1\n")
    p = _probe(ctx, _Rec({ME: str(tmp_path / "a")}), "perf")
    p.ended_s = 8.0
    prof = ctx.profiles["perf"] = Profile("nanoseconds")
    prof.add(["x"], 10)
    account_losses(ctx, [p], "duration", 99.0)
    assert max(w for _, w in prof.items()) == 2_000_000_000


def test_the_report_of_a_run_without_times_has_no_time_view(tmp_path):
    run = make_run(tmp_path / "run")
    prof = Profile()
    prof.add(["a"], 1)
    write_profiles(run, {"py-spy": prof}, ["py-spy"])
    run.finish("complete")
    render_run(run)
    assert "pk-timeline-data" not in open(run.file("report.html")).read()
    assert not os.path.exists(run.file("timeline.bin"))
    with pytest.raises(EnvironmentProblem, match="no timed samples"):
        render_range(run, 0.0, 1.0)


def test_the_run_record_keeps_the_timeline_and_refuses_one_outside_the_run(tmp_path):
    from profkit.errors import RunRecordError
    from profkit.runrecord import from_json

    run = _timed_run(tmp_path)
    data = json.loads(open(run.file("manifest.json")).read())
    assert from_json(data, run.path).profile.timeline["samples"] == 600
    data["profile"]["timeline"]["file"] = "../elsewhere.bin"
    with pytest.raises(RunRecordError, match="outside the run directory"):
        from_json(data, run.path)
    data["profile"]["timeline"] = {"file": 3}
    with pytest.raises(RunRecordError, match="profile.timeline.file"):
        from_json(data, run.path)


def test_a_target_that_exited_is_no_loss_and_an_empty_capture_is_an_idle_target(tmp_path):
    from profkit.engine.losses import account_losses

    ctx = _ctx(tmp_path, pids=(ME,))
    (tmp_path / "empty").write_text("")
    p = _probe(ctx, _Rec({ME: str(tmp_path / "empty")}))
    assert not account_losses(ctx, [p], "duration", 100.0)
    p.ended_s = 1.0
    assert not account_losses(ctx, [p], "targets-gone", 100.0)


def test_a_thread_named_later_is_one_thread_frame():
    """py-spy's first samples of a thread may come before it knows the thread's name."""
    from collectors.pyspy import _root_frame
    from collectors.pyspy_trace import _named_threads
    from profkit.model import Profile

    p = Profile("samples")
    for root, n in (("thread (7)", 2), ("thread (7): beta-worker", 5), ("thread (8)", 1)):
        p.add_ids((p.intern(_root_frame(root)), p.intern("beta_work (w.py)")), n)
    roots = {stack[0].name: w for stack, w in _named_threads(p).stacks()}
    assert roots == {"thread (7): beta-worker": 7, "thread (8)": 1}

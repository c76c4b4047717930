# SPDX-License-Identifier: Apache-2.0
"""The agent's parts that need no process: query selectors, the pprof reader, the spool's order
and bound, window rotation, sizes, and the file= store (written and pulled back)."""
import json
import os
import stat
from datetime import datetime, timedelta, timezone

import pytest

from profkit.agent.spool import Sender, Spool, exporter_id
from profkit.agent.windows import INDEX, read_index, rotate, select, window_dir_name
from profkit.errors import ServerRefused, ServerUnreachable, UsageError
from profkit.export import pprof_bytes
from profkit.exporters import exporter_for
from profkit.exporters.base import Exporter, Window
from profkit.exporters.parca import ParcaExporter, selector
from profkit.model import Profile
from profkit.pprofread import parse_pprof, read_pprof
from profkit.pull import parse_query

T0 = datetime(2026, 12, 1, 10, 0, 0, tzinfo=timezone.utc)


def window(i, samples=10, pid=42, service="svc"):
    p = Profile()
    p.add(["main (app.py:1)", f"work{i} (app.py:{i})"], samples)
    start = T0 + timedelta(seconds=10 * i)
    return Window(profile=p, labels={"service": service, "pid": str(pid), "collector": "py-spy", "mode": "cpu"},
                  start=start, end=start + timedelta(seconds=10), rate=100, sequence=i)


def test_parse_query_types_escapes_and_errors():
    assert parse_query('{service="checkout", version="1.2"}') == ("", {"service": "checkout", "version": "1.2"})
    assert parse_query('process_cpu:samples:count:cpu:nanoseconds:delta{a="x"}')[0].startswith("process_cpu:")
    assert parse_query(r'{s="a\"b\\c\nd"}')[1] == {"s": 'a"b\\c\nd'}
    assert parse_query("{}") == ("", {})
    for bad in ('{service=checkout}', '{service="x"', 'svc{1a="x"}', '{a!="x"}'):
        with pytest.raises(UsageError):
            parse_query(bad)


def test_parca_selector_escapes_what_parse_query_reads():
    labels = {"service": 'we"ird {x}\\', "host": "h"}
    text = selector("cpu", labels)
    assert text.startswith("process_cpu:cpu:nanoseconds:cpu:nanoseconds:delta{")
    assert parse_query(text) == ("process_cpu:cpu:nanoseconds:cpu:nanoseconds:delta", labels)


def test_pprof_round_trip_keeps_frames_totals_and_time():
    p = Profile()
    p.add(["main (a.py:1)", "hot (a.py:5)"], 30)
    p.add(["main (a.py:1)", "cold (b.py)"], 10)
    data = pprof_bytes(p, rate=100, time_nanos=1_700_000_000_000_000_000, duration=10)
    pp = read_pprof(data)
    assert pp.sample_types == [("samples", "count"), ("cpu", "nanoseconds")]
    assert pp.period == 10_000_000 and pp.time_nanos == 1_700_000_000_000_000_000
    counts = parse_pprof(data, 0)
    assert counts.unit == "samples" and counts.total == 40
    assert {tuple(f.text for f in s): w for s, w in counts.stacks()} == {
        ("main (a.py:1)", "hot (a.py:5)"): 30, ("main (a.py:1)", "cold (b.py)"): 10}
    ns = parse_pprof(data)
    assert ns.unit == "nanoseconds" and ns.total == 40 * 10_000_000


def test_pprof_reader_refuses_garbage_with_an_input_error():
    from profkit.errors import InputError

    with pytest.raises(InputError):
        read_pprof(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(InputError):
        read_pprof(b"\x0a\xff\xff\xff")


class Recorder(Exporter):
    kind = "test"

    def __init__(self, fail=0, refuse=()):
        super().__init__("x")
        self.got, self.fail, self.refuse = [], fail, set(refuse)

    def send(self, w):
        if self.fail:
            self.fail -= 1
            raise ServerUnreachable("down")
        if w.sequence in self.refuse:
            raise ServerRefused("Parca answered 400: invalid label name", 400)
        self.got.append(w.sequence)


def test_spool_delivers_in_order_retries_and_does_not_retry_refusals(tmp_path):
    exp = Recorder(fail=2, refuse={3})
    spool = Spool(str(tmp_path / "spool"), 10_000_000, {"e": exp})
    results = []
    sender = Sender(spool, "e", exp, cap=5, report=lambda eid, r, w, m: results.append((r, w.sequence, m)))
    for i in (5, 1, 3, 2, 4):
        spool.put(window(i))
    assert not sender.deliver_once()          # down: the first window stays
    assert sender.backoff == 1.0
    assert not sender.deliver_once()
    assert sender.backoff == 2.0              # doubling, capped at one window
    assert sender.deliver_once()
    assert exp.got == [1, 2, 4, 5]            # window order (by start), not the order spooled
    assert ("refused", 3, "Parca answered 400: invalid label name") in results
    assert spool.pending("e") == [] and os.listdir(spool.data) == []
    assert stat.S_IMODE(os.stat(tmp_path / "spool").st_mode) == 0o700


def test_spool_bound_drops_the_oldest_and_counts_them(tmp_path):
    spool = Spool(str(tmp_path / "s"), 10_000_000, {"a": Recorder(), "b": Recorder()})
    spool.put(window(0))
    one = spool.size()
    spool.limit = int(one * 2.5)
    dropped = sum(spool.put(window(i))[1] for i in range(1, 6))
    assert dropped == 4 and spool.dropped == 4    # six spooled, two fit
    assert len(spool.pending("a")) == len(spool.pending("b")) == 2
    assert spool.size() <= spool.limit


def test_spool_survives_a_new_agent(tmp_path):
    exp = Recorder()
    Spool(str(tmp_path / "s"), 10_000_000, {"e": exp}).put(window(7))
    again = Spool(str(tmp_path / "s"), 10_000_000, {"e": exp})
    w = again.load("e", again.pending("e")[0])
    assert w.sequence == 7 and w.profile.total == 10 and w.labels["service"] == "svc" and w.start == window(7).start


def test_exporter_ids_are_stable_and_redacted():
    a = exporter_id("parca=http://user:secret@127.0.0.1:7070")
    assert a == exporter_id("parca=http://user:secret@127.0.0.1:7070") and "secret" not in a and a.startswith("parca-")


def test_rotation_keeps_the_newest_and_rewrites_the_index(tmp_path):
    from profkit.agent.windows import append_index, index_entry

    (tmp_path / "windows").mkdir()
    for i in range(5):
        w = window(i)
        name = window_dir_name(w.start, 42, "svc")
        (tmp_path / "windows" / name).mkdir()
        (tmp_path / "windows" / name / "profile.folded").write_text("a 1\n" * 100)
        append_index(str(tmp_path), index_entry(rel_dir=f"windows/{name}", start=w.start, end=w.end, labels=w.labels,
                                                mode="cpu", rate=100, unit="samples", samples=10, status="complete",
                                                sequence=i))
    assert rotate(str(tmp_path), keep=3) == 2
    assert [e["seq"] for e in read_index(str(tmp_path))] == [2, 3, 4]
    assert len(os.listdir(tmp_path / "windows")) == 3
    assert rotate(str(tmp_path), keep_size=450) == 2       # 400 bytes each: only the newest fits
    assert [e["seq"] for e in read_index(str(tmp_path))] == [4]
    assert select(read_index(str(tmp_path)), {"service": "svc"}, T0, T0 + timedelta(seconds=40)) == []
    assert len(select(read_index(str(tmp_path)), {"service": "svc"}, T0, T0 + timedelta(seconds=41))) == 1


def test_file_store_writes_run_directories_and_pulls_a_range(tmp_path):
    from profkit.rundir import RunDir

    exp = exporter_for(f"file={tmp_path / 'store'}")
    for i in range(4):
        exp.send(window(i, samples=10 + i))
    exp.send(window(9, service="other"))
    lines = (tmp_path / "store" / INDEX).read_text().splitlines()
    assert len(lines) == 5 and json.loads(lines[0])["labels"]["service"] == "svc"
    run = RunDir.open(str(tmp_path / "store" / json.loads(lines[0])["dir"]))
    assert run.record.status == "complete" and run.record.window["labels"]["pid"] == "42"
    got = exp.pull({"service": "svc"}, "cpu", T0 + timedelta(seconds=10), T0 + timedelta(seconds=30))
    assert got.total == 11 + 12
    assert exp.pull({"service": "nobody"}, "", T0, T0 + timedelta(hours=1)).total == 0


def test_exporter_for_refuses_bad_specs():
    for bad in ("parca", "=http://x", "nosuch=http://x"):
        with pytest.raises(UsageError):
            exporter_for(bad)
    with pytest.raises(UsageError):
        ParcaExporter("ftp://x")


def test_sizes():
    from profkit.cli.agent import parse_size

    assert parse_size("200MB", "--x") == 200_000_000
    assert parse_size("1KiB", "--x") == 1024 and parse_size("1.5g", "--x") == 1_500_000_000
    assert parse_size("123", "--x") == 123
    with pytest.raises(UsageError):
        parse_size("lots", "--spool-size")


def test_what_is_fsynced_running_manifests_and_agent_windows_not_finals_and_the_spool_yes(tmp_path, monkeypatch):
    """docs/contract.md "Durability": a running manifest is written atomically without fsync, a
    final one with it; a run marked not durable (an agent's -o window) fsyncs nothing; the spool,
    the one copy of what is not yet delivered, fsyncs each window."""
    from support import make_run

    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))),
                                                 real(fd))[1])
    run = make_run(tmp_path / "run")
    run.warn("a change, saved while running")
    run.save()
    assert synced == [] and json.loads((tmp_path / "run" / "manifest.json").read_text())["warnings"]
    run.write_text("profile.folded", "a;b 1\n")
    run.finish("complete")
    assert [n.split(".")[1] for n in synced] == ["profile", "manifest"]  # .profile.folded.X.tmp, .manifest.json.X.tmp
    synced.clear()
    window = make_run(tmp_path / "window")
    window.durable = False
    window.write_text("profile.folded", "a;b 1\n")
    window.finish("complete")
    assert synced == [] and (tmp_path / "window" / "profile.folded").read_text() == "a;b 1\n"
    assert json.loads((tmp_path / "window" / "manifest.json").read_text())["status"] == "complete"
    spool = Spool(str(tmp_path / "spool"), 1 << 20, {"file-x": Exporter.__new__(Exporter)})
    prof = Profile("samples")
    prof.add(("a", "b"), 3)
    start = datetime(2026, 12, 1, tzinfo=timezone.utc)
    spool.put(Window(profile=prof, labels={"service": "s", "pid": "1"}, start=start, end=start + timedelta(seconds=10),
                     mode="cpu", rate=100))
    assert len(synced) == 1 and synced[0].endswith(".tmp") and ".window." in synced[0]

# SPDX-License-Identifier: Apache-2.0
"""The py-spy parser on real captures (tests/data/py-spy/README.md says how they were recorded)."""
import dataclasses
import gzip
import json
import pathlib

import pytest

from collectors.base import Sniff
from collectors.pyspy import PySpyCollector, PySpyOptions, parse
from profkit.errors import CaptureFormatError, Diagnostics, InputError
from profkit.inputs import Source
from profkit.model import FrameKind
from goldens import check_golden, opts_id

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "py-spy"
CASES = [
    ("raw.txt", {}),
    ("raw-threads.txt", {}),
    ("raw-subprocesses.txt", {}),
    ("speedscope.json", {}),
    ("speedscope.json", {"unit": "nanoseconds"}),
    ("speedscope-subprocesses.json", {}),
]


def golden_path(capture, opts):
    return DATA / "results" / f"{capture.rsplit('.', 1)[0]}-{opts_id(opts)}.folded"


def read(path, diag=None, **opts):
    src = Source(str(path))
    return parse(src, PySpyOptions(**opts), diag if diag is not None else src.diag)


@pytest.mark.parametrize("capture,opts", CASES, ids=[f"{c}-{opts_id(o)}" for c, o in CASES])
def test_golden(capture, opts, request):
    diag = Diagnostics(capture)
    profile = read(DATA / capture, diag, **opts)
    assert diag.malformed_count == 0 and diag.warnings == []
    check_golden(profile, golden_path(capture, opts), request.config.getoption("--bless"))


def share(profile, function):
    stat = profile.function_stats()
    return max((s.total for k, s in stat.items() if k.startswith(function + " (")), default=0) / profile.total


@pytest.mark.parametrize("capture", ["raw.txt", "raw-threads.txt", "raw-subprocesses.txt", "speedscope.json",
                                     "speedscope-subprocesses.json"])
def test_the_hot_function_carries_most_samples(capture):
    profile = read(DATA / capture)
    assert profile.unit == "samples"
    assert share(profile, "hot_loop") > 0.6
    assert 0.03 < share(profile, "cold_loop") < share(profile, "hot_loop")
    # it was ~3 s at 100 Hz (250 Hz, two processes, for the subprocess speedscope)
    assert 250 <= profile.total <= 1600
    assert all(f.kind is not FrameKind.UNKNOWN for f in profile.frames.values())


def test_raw_thread_and_process_frames_get_their_kinds():
    threads = read(DATA / "raw-threads.txt")
    roots = {profile_stack[0] for profile_stack, _ in threads.stacks()}
    assert {f.kind for f in roots} == {FrameKind.THREAD}
    assert any(f.name.endswith(": profkit-worker") for f in roots)
    sub = read(DATA / "raw-subprocesses.txt")
    kinds = {tuple(f.kind for f in stack[:3]) for stack, _ in sub.stacks()}
    assert (FrameKind.PROCESS, FrameKind.THREAD, FrameKind.PYTHON) in kinds
    assert (FrameKind.PROCESS, FrameKind.PROCESS, FrameKind.THREAD) in kinds  # the child, under its parent
    # --nolineno frames still count as Python frames
    assert any(f.text == "hot_loop (hot_target.py)" and f.kind is FrameKind.PYTHON for f in sub.frames.values())
    assert any((f.name, f.file, f.line) == ("hot_loop", "hot_target.py", None) for f in sub.frames.values())


def test_a_python_function_named_like_a_root_frame_is_not_taken_for_one(tmp_path):
    profile = read(write(tmp_path, "t.txt", b"thread (app.py:3);process (app.py:9) 4\n"))
    assert [f.kind for f in profile.frames.values()] == [FrameKind.PYTHON, FrameKind.PYTHON]


def test_speedscope_counts_samples_at_the_recorded_rate():
    raw = json.loads((DATA / "speedscope.json").read_text())
    n = sum(len(p["samples"]) for p in raw["profiles"])
    profile = read(DATA / "speedscope.json")
    assert profile.total == n == 299
    assert profile.meta.sample_rate == 100.0
    assert profile.meta.extra["exporter"] == "py-spy@0.4.3"
    ns = read(DATA / "speedscope.json", unit="nanoseconds")
    assert ns.unit == "nanoseconds" and ns.total == 299 * 10_000_000
    assert read(DATA / "speedscope-subprocesses.json").meta.sample_rate == 250.0
    # an explicit rate overrides the inferred one: at 200 Hz each 10 ms weight is two samples
    diag = Diagnostics("s")
    assert read(DATA / "speedscope.json", diag, rate=200.0).total == 2 * 299 and not diag.warnings
    diag = Diagnostics("s")
    read(DATA / "speedscope.json", diag, rate=130.0)
    assert any("rounded" in w for w in diag.warnings)


def test_speedscope_and_raw_agree_on_the_shape():
    # Different runs, so only the proportions can be compared.
    assert abs(share(read(DATA / "raw.txt"), "hot_loop") - share(read(DATA / "speedscope.json"), "hot_loop")) < 0.15


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_malformed_raw_lines_are_counted(tmp_path):
    good = (DATA / "raw.txt").read_text().splitlines()
    text = "\n".join([good[0], "no count here", "a;b 1 2", "", "a;b -3", good[1]]) + "\n"
    diag = Diagnostics("x")
    profile = read(write(tmp_path, "x.txt", text.encode()), diag)
    assert diag.malformed_count == 3
    assert profile.total == int(good[0].rsplit(" ", 1)[1]) + int(good[1].rsplit(" ", 1)[1])


def test_gzipped_captures_read_the_same(tmp_path):
    for name in ("raw-threads.txt", "speedscope.json"):
        gz = write(tmp_path, name + ".gz", gzip.compress((DATA / name).read_bytes()))
        assert read(gz).sorted_items() == read(DATA / name).sorted_items()


def test_truncated_speedscope_is_one_line_format_error(tmp_path):
    data = (DATA / "speedscope.json").read_bytes()
    path = write(tmp_path, "cut.json", data[: len(data) // 2])
    with pytest.raises(CaptureFormatError) as e:
        read(path)
    assert "truncated or invalid speedscope JSON" in str(e.value)
    assert "\n" not in str(e.value) and str(e.value).startswith(str(path) + ":1:")


def test_speedscope_structure_errors(tmp_path):
    doc = json.loads((DATA / "speedscope.json").read_text())
    bad = dict(doc, profiles=[dict(doc["profiles"][1], weights=[0.01])])
    with pytest.raises(CaptureFormatError, match="same length"):
        read(write(tmp_path, "a.json", json.dumps(bad).encode()))
    with pytest.raises(CaptureFormatError, match="shared.frames"):
        read(write(tmp_path, "b.json", json.dumps({"profiles": []}).encode()))
    # a sample pointing past the frame table is counted, the rest is kept
    p = dict(doc["profiles"][1])
    p["samples"] = [[0, 10_000]] + p["samples"][1:]
    diag = Diagnostics("c")
    profile = read(write(tmp_path, "c.json", json.dumps(dict(doc, profiles=[p])).encode()), diag)
    assert diag.malformed_count == 1 and profile.total == len(p["samples"]) - 1


def test_evented_profiles_are_skipped_with_a_warning(tmp_path):
    doc = json.loads((DATA / "speedscope.json").read_text())
    evented = {"type": "evented", "name": "ev", "unit": "seconds", "startValue": 0, "endValue": 1, "events": []}
    diag = Diagnostics("e")
    profile = read(write(tmp_path, "e.json", json.dumps(dict(doc, profiles=doc["profiles"] + [evented])).encode()), diag)
    assert profile.total == 299 and any("evented" in w for w in diag.warnings)


def test_binary_junk_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="binary"):
        read(write(tmp_path, "junk.txt", bytes(range(256)) * 4))


def test_options_and_auto_format():
    assert PySpyOptions().format == "auto"
    assert {f.name for f in dataclasses.fields(PySpyOptions)} == {"format", "unit", "rate", "threads", "lines", "start", "placed"}
    # forcing raw on a JSON file reads it as (malformed) folded text, it does not crash
    diag = Diagnostics("s")
    assert not read(DATA / "speedscope.json", diag, format="raw")
    assert diag.malformed_count == 1


def test_sniff():
    c = PySpyCollector()
    for name in ("speedscope.json", "speedscope-subprocesses.json"):
        assert c.sniff((DATA / name).read_bytes()[:65536]) is Sniff.YES
    for name in ("raw.txt", "raw-threads.txt", "raw-subprocesses.txt"):
        assert c.sniff((DATA / name).read_bytes()[:65536]) is Sniff.MAYBE
    assert c.sniff(b"main;work;compute 12\nmain;idle 3\n") is Sniff.NO
    assert c.sniff(b"java/lang/Thread.run_[j];Foo.bar_[j] 5\n") is Sniff.NO
    assert c.sniff(b"{\"recording\": {\"events\": []}}") is Sniff.NO
    assert c.sniff(b"") is Sniff.NO


@pytest.mark.parametrize("capture", ["raw.txt", "raw-threads.txt", "raw-subprocesses.txt", "speedscope.json"])
def test_reading_keyed_equals_keying_what_was_read(capture, tmp_path):
    collector = PySpyCollector()
    src = Source(str(DATA / capture))
    keyed = collector.parse_keyed(src, PySpyOptions(), src.diag)
    expect = read(DATA / capture).keyed()
    assert keyed.is_keyed
    assert list(keyed.stacks()) and sorted(keyed.stacks()) == sorted(expect.stacks())  # names and kinds
    assert keyed.function_stats() == expect.function_stats()
    # roots named like functions, a thread whose name carries a line, a function named like a root
    odd = write(tmp_path, "odd.txt", b'process 7:"py a.py";thread (0x1): w (q.py:3);f (a.py:1) 2\n'
                                     b"thread (app.py:3);process (app.py:9) 4\n"
                                     b"thread (0x2);g (b.py:5);g (b.py:6) 1\n"
                                     b'process 12:"python app.py";thread (0x7f12) 5\n')  # roots only
    src = Source(str(odd))
    keyed = collector.parse_keyed(src, PySpyOptions(), src.diag)
    assert sorted(keyed.stacks()) == sorted(read(odd).keyed().stacks())
    assert any(f.name == "[thread w (q.py)]" and f.kind is FrameKind.THREAD for f in keyed.frames.values())


def test_py_spy_is_the_one_beside_this_python_before_path(tmp_path, monkeypatch):
    import os
    import sys

    from collectors.pyspy_tool import find_pyspy

    shim = tmp_path / "py-spy"  # a version manager's shim on PATH
    shim.write_text("#!/bin/sh\nexit 1\n")
    shim.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    beside = os.path.join(os.path.dirname(sys.executable), "py-spy")
    assert find_pyspy() == (beside if os.access(beside, os.X_OK) else str(shim))

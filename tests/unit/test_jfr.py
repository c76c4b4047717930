# SPDX-License-Identifier: Apache-2.0
"""The JFR parser on a real recording and its ``jfr print --json`` output (tests/data/jfr/README.md).

The tests that read the ``.jfr`` itself run the JDK's real ``jfr`` tool; without it they fail
(CI installs the JDK), they do not skip.
"""
import gzip
import json
import os
import pathlib
import struct

import pytest

import collectors.jfr_print as jfr_print
from collectors.base import Sniff
from collectors.jfr import JfrCollector, JfrOptions, find_jfr, parse
from profkit.errors import CaptureFormatError, CollectorNotInstalled, Diagnostics, InputError
from profkit.inputs import Source
from profkit.model import FrameKind
from goldens import check_golden, opts_id

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "jfr"
JSON = DATA / "profkit-target.json.gz"
JFR = DATA / "profkit-target.jfr"
CASES = [{}, {"event": "alloc"}, {"threads": True}]


def golden_path(opts):
    return DATA / "results" / f"profkit-target-{opts_id(opts)}.folded"


def read(path, diag=None, **opts):
    src = Source(str(path), binary_ok=True)
    return parse(src, JfrOptions(**opts), diag if diag is not None else src.diag)


@pytest.fixture(scope="module")
def events():
    """The recording's events, loaded whole (fine for a test; the parser streams)."""
    with gzip.open(JSON, "rt") as f:
        return json.load(f)["recording"]["events"]


def write_json(tmp_path, events, name="e.json"):
    path = tmp_path / name
    path.write_text(json.dumps({"recording": {"events": events}}, indent=2))
    return path


@pytest.mark.parametrize("opts", CASES, ids=opts_id)
def test_golden_from_printed_json(opts, request):
    diag = Diagnostics("json")
    profile = read(JSON, diag, **opts)
    assert diag.malformed_count == 0 and diag.warnings == []
    check_golden(profile, golden_path(opts), request.config.getoption("--bless"))


@pytest.mark.parametrize("opts", CASES, ids=opts_id)
def test_recording_through_the_jfr_tool_gives_the_same_profile(opts):
    profile = read(JFR, **opts)  # raises CollectorNotInstalled (a failure) without a JDK
    check_golden(profile, golden_path(opts), bless=False)
    assert profile.unit == read(JSON, **opts).unit


def test_cpu_samples_find_the_hot_method(events):
    profile = read(JSON)
    assert profile.unit == "samples"
    assert profile.total == sum(e["type"] == "jdk.ExecutionSample" for e in events) == 372
    stats = profile.function_stats()
    assert stats["ProfkitTarget.hotLoop"].self / profile.total > 0.9
    kinds = {f.name: f.kind for f in profile.frames.values()}
    assert kinds["ProfkitTarget.hotLoop"] is FrameKind.JIT
    assert kinds["java/lang/Thread.run"] in (FrameKind.INTERPRETED, FrameKind.JIT, FrameKind.INLINED)
    # roots are the thread's entry, not the leaf: frames[0] (the leaf) was reversed
    assert {stack[0].name for stack, _ in profile.stacks()} == {"java/lang/Thread.run"}
    assert profile.meta.start.startswith("2026-11-28T18:01")


def test_alloc_samples_are_bytes_by_weight(events):
    profile = read(JSON, event="alloc")
    assert profile.unit == "bytes"
    allocs = [e for e in events if e["type"] == "jdk.ObjectAllocationSample"]
    assert profile.total == sum(e["values"]["weight"] for e in allocs)
    stats = profile.function_stats()
    assert stats["ProfkitTarget.allocate"].total / profile.total > 0.9
    leaves = {stack[-1] for stack, _ in profile.stacks()}
    names = {f.name for f in leaves}
    assert {"long[]", "byte[]", "java.lang.String", "java.lang.Object[]"} <= names
    assert {f.kind for f in leaves} == {FrameKind.UNKNOWN}  # TLAB placement is not in the event
    assert stats["long[]"].self / profile.total > 0.5


def test_frame_names_line_up_with_async_profiler():
    ap = DATA.parent / "async-profiler"
    ap_names = {tok[:-4] if tok[-4:-2] == "_[" else tok
                for path in ("itimer-ann.collapsed", "alloc.collapsed")
                for line in (ap / path).read_text().splitlines() for tok in line.rsplit(" ", 1)[0].split(";")}
    jfr_names = {f.name for opts in ({}, {"event": "alloc"}) for f in read(JSON, **opts).frames.values()}
    shared = {"java/lang/Thread.run", "ProfkitTarget.hotLoop", "ProfkitTarget.allocate", "ProfkitTarget.lambda$main$0",
              "java/lang/Integer.toString", "long[]", "byte[]", "java.lang.String"}
    assert shared <= ap_names & jfr_names


def test_thread_roots():
    profile = read(JSON, threads=True)
    roots = {stack[0] for stack, _ in profile.stacks()}
    assert {f.kind for f in roots} == {FrameKind.THREAD}
    assert any(f.name.startswith("[profkit-worker tid=") for f in roots)


def test_incremental_reading_across_tiny_chunks(events, tmp_path, monkeypatch):
    path = write_json(tmp_path, events[:40])
    whole = read(path, event="alloc").sorted_items()
    monkeypatch.setattr(jfr_print, "CHUNK", 997)  # the reader lives in jfr_print
    assert read(path, event="alloc").sorted_items() == whole


def test_unusable_events_are_counted_and_other_types_skipped(events, tmp_path):
    cpu = [e for e in events if e["type"] == "jdk.ExecutionSample"][:5]
    broken = json.loads(json.dumps(cpu[0]))
    broken["values"]["stackTrace"] = None
    other = {"type": "jdk.ThreadStart", "values": {"startTime": "x"}}
    diag = Diagnostics("e")
    profile = read(write_json(tmp_path, cpu + [broken, other]), diag)
    assert profile.total == 5 and diag.malformed_count == 1
    diag = Diagnostics("e")
    assert not read(write_json(tmp_path, [other]), diag)
    assert any("no jdk.ExecutionSample events" in w for w in diag.warnings)


def test_truncated_stacks_get_a_truncated_root(events, tmp_path):
    e = json.loads(json.dumps([e for e in events if e["type"] == "jdk.ExecutionSample"][0]))
    e["values"]["stackTrace"]["truncated"] = True
    (stack, _), = read(write_json(tmp_path, [e])).stacks()
    assert stack[0].name == "[truncated]" and stack[0].kind is FrameKind.SYNTHETIC
    # every truncated stack, not only the first (each was once counted as malformed)
    diag = Diagnostics("e")
    profile = read(write_json(tmp_path, [e, e, e]), diag)
    assert diag.malformed_count == 0 and profile.total == 3



def test_stacks_deeper_than_stack_depth_keep_their_leaf_end(events, tmp_path):
    # jfr print --stack-depth N cuts deeper stacks without setting "truncated"; profkit asks it
    # for one frame more, so a cut shows, and marks it.
    e = json.loads(json.dumps([e for e in events if e["type"] == "jdk.ExecutionSample"][0]))
    frames = e["values"]["stackTrace"]["frames"]
    assert not e["values"]["stackTrace"]["truncated"] and len(frames) > 3
    (stack, _), = read(write_json(tmp_path, [e]), stack_depth=3).stacks()
    whole, = read(write_json(tmp_path, [e])).stacks()
    assert [f.name for f in stack] == ["[truncated]"] + [f.name for f in whole[0][-3:]]
    (stack, _), = read(write_json(tmp_path, [e]), stack_depth=len(frames)).stacks()
    assert stack == whole[0]  # exactly stack_depth frames: whole, not cut
    # the same through the jfr tool on the recording itself
    through_jfr = read(JFR, stack_depth=3)
    assert through_jfr.sorted_items() == read(JSON, stack_depth=3).sorted_items()
    assert all(len(s) <= 4 for s, _ in through_jfr.stacks())
    assert any(s[0].name == "[truncated]" for s, _ in through_jfr.stacks())


def ap_frame(cls, name, descriptor, ftype):
    """A stack frame as ``jfr print --json`` prints one of async-profiler 4.1's JFR output."""
    return {"method": {"type": {"classLoader": None, "name": cls, "package": None, "modifiers": 0},
                       "name": name, "descriptor": descriptor, "modifiers": 256, "hidden": False},
            "lineNumber": 0, "bytecodeIndex": 0, "type": ftype}


def test_native_frames_of_async_profiler_recordings_are_named_by_symbol(tmp_path):
    # Frames copied from `jfr print --json` of `-agentpath:libasyncProfiler.so=start,event=cpu,jfr`
    # (leaf first): native code is a "method" of its library, or of "" for kernel and unknown code;
    # async-profiler's jfrconv names it by symbol alone (JfrConverter.resolveMethodName).
    leaf_first = [ap_frame("", "exc_page_fault", "(Lk;)L;", "Kernel"),
                  ap_frame("libc.so.6", "__memset_avx2_unaligned_erms", "()L;", "Native"),
                  ap_frame("libjvm.so", "InterpreterRuntime::newarray", "()L;", "C++"),
                  ap_frame("ProfkitHot", "allocate", "(I)J", "C1 compiled"),
                  ap_frame("java/lang/Thread", "sleep", "(J)V", "Native"),  # a JDK recording's Java native method
                  ap_frame("", "unknown_Java", "()L;", "Native")]
    event = {"type": "jdk.ExecutionSample",
             "values": {"startTime": "2026-12-01T20:01:54Z", "stackTrace": {"truncated": False, "frames": leaf_first}}}
    (stack, n), = read(write_json(tmp_path, [event])).stacks()
    assert n == 1
    assert [(f.name, f.kind) for f in stack] == [
        ("unknown_Java", FrameKind.NATIVE), ("java/lang/Thread.sleep", FrameKind.NATIVE),
        ("ProfkitHot.allocate", FrameKind.C1), ("InterpreterRuntime::newarray", FrameKind.NATIVE),
        ("__memset_avx2_unaligned_erms", FrameKind.NATIVE), ("exc_page_fault", FrameKind.KERNEL)]


def one_line(err):
    text = str(err.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_truncated_json_is_a_one_line_format_error(tmp_path):
    text = gzip.decompress(JSON.read_bytes())
    path = tmp_path / "cut.json"
    path.write_bytes(text[: len(text) // 3])
    with pytest.raises(CaptureFormatError) as e:
        read(path)
    assert "truncated" in one_line(e) and f"{path}:" in one_line(e)
    path.write_bytes(gzip.compress(text)[:20_000])
    with pytest.raises(InputError) as e:
        read(path)
    assert "truncated or corrupt gzip" in one_line(e)


def test_truncated_recording_is_a_one_line_format_error(tmp_path):
    path = tmp_path / "cut.jfr"
    path.write_bytes(JFR.read_bytes()[:60_000])
    with pytest.raises(CaptureFormatError) as e:
        read(path)
    assert "truncated JFR recording" in one_line(e)


def test_a_recording_jfr_cannot_read_is_a_format_error(tmp_path):
    body = b"\0" * 200
    path = tmp_path / "fake.jfr"
    path.write_bytes(b"FLR\0" + struct.pack(">HHq", 2, 1, 16 + len(body)) + body)
    with pytest.raises(CaptureFormatError) as e:
        read(path)
    assert "could not read recording" in one_line(e)
    path.write_bytes(b"FLR\0" + struct.pack(">HHq", 9592, 1, 100) + body)
    with pytest.raises(CaptureFormatError, match="version 9592"):
        read(path)


def test_binary_junk_is_a_format_error(tmp_path):
    path = tmp_path / "junk.bin"
    path.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(CaptureFormatError) as e:
        read(path)
    assert "neither a JFR recording" in one_line(e)


def test_gzipped_recording_is_spooled_for_jfr(tmp_path):
    path = tmp_path / "r.jfr.gz"
    path.write_bytes(gzip.compress(JFR.read_bytes()))
    assert read(path).sorted_items() == read(JSON).sorted_items()


def test_missing_jfr_tool_says_how_to_install(monkeypatch, tmp_path):
    real = find_jfr()  # the JDK must be here: a missing one fails this test
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(CollectorNotInstalled) as e:
        read(JFR)
    assert e.value.hint == "apt-get install openjdk-17-jdk-headless"
    # $JAVA_HOME/bin is the fallback
    monkeypatch.setenv("JAVA_HOME", os.path.dirname(os.path.dirname(os.path.realpath(real))))
    assert os.path.samefile(find_jfr(), real)


def test_sniff():
    c = JfrCollector()
    assert c.binary_input is True
    assert c.sniff(JFR.read_bytes()[:65536]) is Sniff.YES
    assert c.sniff(gzip.decompress(JSON.read_bytes())[:65536]) is Sniff.YES
    assert c.sniff(b'{"recording":{"events":[]}}') is Sniff.YES
    assert c.sniff(b'{"$schema":"https://www.speedscope.app/file-format-schema.json"}') is Sniff.NO
    assert c.sniff((DATA.parent / "async-profiler" / "alloc.collapsed").read_bytes()) is Sniff.NO
    assert c.sniff(b"") is Sniff.NO

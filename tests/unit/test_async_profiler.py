# SPDX-License-Identifier: Apache-2.0
"""The async-profiler collapsed parser on real captures (tests/data/async-profiler/README.md)."""
import gzip
import io
import pathlib

import pytest

from collectors.async_profiler import AsyncProfilerCollector, AsyncProfilerOptions, parse, unit_of
from collectors.base import Sniff
from profkit.errors import Diagnostics, InputError
from profkit.folded import read_folded, write_folded
from profkit.inputs import Source
from profkit.model import FrameKind
from goldens import check_golden, opts_id

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "async-profiler"
CASES = [
    ("cpu-ann-threads.collapsed", {}),
    ("itimer-ann.collapsed", {"event": "itimer"}),
    ("alloc.collapsed", {"event": "alloc"}),
    ("alloc-ann-total.collapsed", {"event": "alloc", "total": True}),
]


def read(path, diag=None, **opts):
    src = Source(str(path))
    return parse(src, AsyncProfilerOptions(**opts), diag if diag is not None else src.diag)


@pytest.mark.parametrize("capture,opts", CASES, ids=[f"{c}-{opts_id(o)}" for c, o in CASES])
def test_golden(capture, opts, request):
    diag = Diagnostics(capture)
    profile = read(DATA / capture, diag, **opts)
    assert diag.malformed_count == 0 and diag.warnings == []
    golden = DATA / "results" / f"{capture.rsplit('.', 1)[0]}-{opts_id(opts)}.folded"
    check_golden(profile, golden, request.config.getoption("--bless"))


def test_collapsed_text_round_trips():
    # The kinds are written back as the suffixes they came from, so the lines are the input's
    # (merged where async-profiler printed one stack twice).
    for capture, opts in CASES:
        profile = read(DATA / capture, **opts)
        out = io.StringIO()
        write_folded(profile, out)
        again = read_folded(io.StringIO(out.getvalue()))
        plain = read_folded((DATA / capture).read_text().splitlines())
        assert sorted(again.stacks()) == sorted(plain.stacks())


@pytest.mark.parametrize("capture,event", [("cpu-ann-threads.collapsed", "cpu"), ("itimer-ann.collapsed", "itimer")])
def test_cpu_hot_method_carries_most_samples(capture, event):
    profile = read(DATA / capture, event=event)
    assert profile.unit == "samples" and 250 <= profile.total <= 350  # ~3 s at 100 Hz
    stats = profile.function_stats()
    assert stats["ProfkitTarget.hotLoop"].self / profile.total > 0.8
    assert profile.top_functions(1)[0].key == "ProfkitTarget.hotLoop"
    kinds = {f.name: f.kind for f in profile.frames.values()}
    assert kinds["ProfkitTarget.hotLoop"] is FrameKind.JIT
    assert kinds["java/lang/Thread.run"] is FrameKind.JIT
    assert FrameKind.INTERPRETED in kinds.values()
    assert FrameKind.ALLOC_INSIDE_TLAB not in kinds.values()


def test_kernel_frames_and_thread_roots():
    profile = read(DATA / "cpu-ann-threads.collapsed")
    kinds = {f.name: f.kind for f in profile.frames.values()}
    assert kinds["asm_exc_page_fault"] is FrameKind.KERNEL
    roots = {stack[0] for stack, _ in profile.stacks()}
    assert all(f.kind is FrameKind.THREAD for f in roots)
    worker = [f for f in roots if f.name.startswith("[profkit-worker tid=")]
    assert len(worker) == 1
    assert profile.function_stats()[worker[0].key].total / profile.total > 0.9


def test_alloc_leaves_are_tlab_kinds_and_the_allocating_method_is_there():
    for capture, total in (("alloc.collapsed", False), ("alloc-ann-total.collapsed", True)):
        profile = read(DATA / capture, event="alloc", total=total)
        assert profile.unit == ("bytes" if total else "samples")
        leaves = {stack[-1] for stack, _ in profile.stacks()}
        assert {f.kind for f in leaves} == {FrameKind.ALLOC_INSIDE_TLAB}
        assert {"long[]", "byte[]", "java.lang.String"} <= {f.name for f in leaves}
        stats = profile.function_stats()
        assert stats["ProfkitTarget.allocate"].total == profile.total
        # the 4 MiB arrays dominate the bytes, and the samples (sampling is by size)
        assert stats["long[]"].self / profile.total > 0.5
        # only the leaf is a class: inner _[i] frames stay inlined
        inner = {f.kind for stack, _ in profile.stacks() for f in stack[:-1]}
        assert FrameKind.ALLOC_INSIDE_TLAB not in inner
    total = read(DATA / "alloc-ann-total.collapsed", event="alloc", total=True)
    assert total.total > 1 << 30  # ~3 s of allocating 4 MiB arrays


def test_outside_tlab_leaf(tmp_path):
    # Hand-written: async-profiler 4.1 on JDK 17 wrote no _[k] leaf (see the README), so this line
    # copies a real stack and changes only its leaf's suffix.
    line = "java/lang/Thread.run;ProfkitTarget.allocate;long[]_[k] 4194320\n"
    profile = parse_text(tmp_path, line, event="alloc", total=True)
    (stack, weight), = profile.stacks()
    assert stack[-1].kind is FrameKind.ALLOC_OUTSIDE_TLAB and stack[-1].name == "long[]"
    assert weight == 4194320 and profile.unit == "bytes"
    cpu = parse_text(tmp_path, line)
    assert next(cpu.stacks())[0][-1].kind is FrameKind.KERNEL


def test_lock_profiles_treat_the_leaf_as_a_class(tmp_path):
    profile = parse_text(tmp_path, "[main tid=7];Foo.run_[j];java.lang.Object_[i] 1200\n", event="lock", total=True)
    (stack, _), = profile.stacks()
    assert [f.kind for f in stack] == [FrameKind.THREAD, FrameKind.JIT, FrameKind.ALLOC_INSIDE_TLAB]
    assert profile.unit == "nanoseconds"


def parse_text(tmp_path, data, diag=None, name="x.collapsed", **opts):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return read(path, diag, **opts)


def test_units():
    assert unit_of(AsyncProfilerOptions()) == "samples"
    assert unit_of(AsyncProfilerOptions(event="alloc")) == "samples"
    assert unit_of(AsyncProfilerOptions(event="alloc", total=True)) == "bytes"
    assert unit_of(AsyncProfilerOptions(event="lock", total=True)) == "nanoseconds"
    assert unit_of(AsyncProfilerOptions(event="wall", total=True)) == "nanoseconds"


def test_malformed_lines_are_counted(tmp_path):
    good = (DATA / "itimer-ann.collapsed").read_text().splitlines()
    text = "\n".join([good[0], "java/lang/Thread.run", "a;b x", "a;b -4", "", good[1], "a;b\t7", "a;b 2.5"]) + "\n"
    diag = Diagnostics("x")
    profile = parse_text(tmp_path, text, diag)
    assert diag.malformed_count == 3
    n = [int(l.rsplit(" ", 1)[1]) for l in good[:2]]
    assert profile.total == sum(n) + 7 + 2.5


def test_gzipped_capture_reads_the_same(tmp_path):
    gz = parse_text(tmp_path, gzip.compress((DATA / "alloc.collapsed").read_bytes()), name="a.collapsed.gz", event="alloc")
    assert gz.sorted_items() == read(DATA / "alloc.collapsed", event="alloc").sorted_items()


def test_binary_junk_and_empty_input_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="binary"):
        parse_text(tmp_path, b"\x00\x01\x02" * 100)
    with pytest.raises(InputError, match="empty"):
        parse_text(tmp_path, b"")
    with pytest.raises(InputError, match="truncated or corrupt gzip"):
        parse_text(tmp_path, gzip.compress((DATA / "alloc.collapsed").read_bytes())[:200], name="cut.gz")


def test_sniff():
    c = AsyncProfilerCollector()
    for capture, _ in CASES:
        assert c.sniff((DATA / capture).read_bytes()) is Sniff.YES
    assert c.sniff(b"[tid=12];main;work 3\n") is Sniff.YES
    assert c.sniff(b"start_thread;do_work;schedule_[k] 9\n") is Sniff.MAYBE
    assert c.sniff(b"main;work;compute 12\n") is Sniff.NO
    py_spy = (DATA.parent / "py-spy" / "raw.txt").read_bytes()
    assert c.sniff(py_spy) is Sniff.NO
    assert c.sniff(b"this is not folded\nat all\n") is Sniff.NO
    assert c.sniff(b"") is Sniff.NO

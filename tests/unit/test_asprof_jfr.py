# SPDX-License-Identifier: Apache-2.0
"""profkit's reader of async-profiler's ``-o jfr`` output (collectors/asprof_jfr.py) on real
recordings (tests/data/asprof/README.md), checked against async-profiler's own converter and the
JDK's ``jfr print`` (run for real: without a JDK that test fails, it does not skip)."""
import pathlib
import re
import struct
from collections import Counter

import pytest

from collectors.async_profiler import AsyncProfilerOptions, parse
from collectors.asprof_jfr import finished_chunks, read_chunks
from profkit.errors import CaptureFormatError, Diagnostics
from profkit.inputs import Source
from profkit.model import FrameKind

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "asprof"
THREADS, WALL = DATA / "threads.jfr", DATA / "wall.jfr"
_SUFFIX = re.compile(r"_\[[a-z0-9]\](?=;|$)")


def read(path, diag=None, **opts):
    src = Source(str(path), diag or Diagnostics(str(path)), binary_ok=True)
    try:
        return parse(src, AsyncProfilerOptions(**opts), src.diag)
    finally:
        src.close()


def plain(profile):
    out = Counter()
    for stack, w in profile.stacks():
        out[_SUFFIX.sub("", ";".join(f.text for f in stack))] += w
    return out


def reference(path):
    out = Counter()
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        out[_SUFFIX.sub("", stack)] += int(n)
    return out


@pytest.mark.parametrize("capture,opts,ref", [
    (THREADS, {"event": "cpu"}, "threads.converter.collapsed"),
    (WALL, {"event": "wall", "threads": True}, "wall.converter-threads.collapsed"),
])
def test_every_stack_matches_async_profilers_own_converter(capture, opts, ref):
    diag = Diagnostics("t")
    profile = read(capture, diag, **opts)
    assert diag.malformed_count == 0 and diag.warnings == []
    assert plain(profile) == reference(DATA / ref)
    assert profile.unit == "samples" and profile.meta.extra["chunks"] == 2
    assert len(profile.timeline) == profile.meta.extra["events"]          # every sample timed
    assert sum(profile.timeline.weight) == profile.total                  # wall: weighed by its samples field


def test_names_kinds_threads_and_times_match_the_jdks_jfr_print():
    from collectors.jfr_print import JfrOptions, parse as jfr_parse

    ours = read(THREADS, threads=True)
    theirs = jfr_parse(Source(str(THREADS), binary_ok=True), JfrOptions(threads=True, stack_depth=2048))
    key = lambda p: Counter({tuple((f.text, f.kind) for f in s): w for s, w in p.stacks()})  # noqa: E731
    assert key(ours) == key(theirs)
    a, b = ours.timeline, theirs.timeline
    times = lambda tl: sorted(tl.start + tl.seconds(i) for i in range(len(tl)))  # noqa: E731
    assert max(abs(x - y) for x, y in zip(times(a), times(b))) <= 0.0011   # the same instants, to the ms tick
    assert sorted(a.threads) == sorted(b.threads)
    roots = {s[0].text for s, _ in ours.stacks()}
    assert any(r.startswith("[profkit-alpha tid=") for r in roots) and all(s[0].kind == FrameKind.THREAD
                                                                          for s, _ in ours.stacks())


def test_chunks_abut_and_a_chunk_still_being_written_is_left_out(tmp_path):
    chunks = read_chunks(str(THREADS))
    assert len(chunks) == 2 and chunks[0][1].end == chunks[1][1].start   # the dump's cut: no gap, no overlap
    data = THREADS.read_bytes()
    # async-profiler's chunk in progress: 1 GiB declared, no constant pool yet
    head = bytearray(data[:68])
    struct.pack_into(">qqq", head, 8, 1 << 30, 0, 0)
    growing = tmp_path / "growing.jfr"
    growing.write_bytes(data + bytes(head) + b"\0" * 500)
    assert [c.size for c in finished_chunks(lambda o, n: growing.read_bytes()[o:o + n], 0, growing.stat().st_size)] \
        == [c.size for _, c in chunks]
    diag = Diagnostics("g")
    profile = read(growing, diag)
    assert profile.total == read(THREADS).total == 641
    assert any("568 bytes after the last finished JFR chunk" in w for w in diag.warnings), diag.warnings


def test_a_corrupt_chunk_is_one_clear_error(tmp_path):
    data = bytearray(THREADS.read_bytes())
    cut = tmp_path / "cut.jfr"
    cut.write_bytes(bytes(data[:68]) + b"\xff" * (read_chunks(str(THREADS))[0][1].size - 68))
    with pytest.raises(CaptureFormatError) as e:
        read(cut)
    assert "\n" not in str(e.value)
    with pytest.raises(CaptureFormatError):
        read(cut, event="alloc")   # alloc is recorded collapsed: a .jfr of it is refused, not misread

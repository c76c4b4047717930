# SPDX-License-Identifier: Apache-2.0
"""The HPROF reader and retaining paths on a real heap dump of known object graphs.

GIVEN tests/unit/hprof/HeapShapes.java (a static map of 10,000 entries, a cycle, an array of
objects, a thread-local value), compiled and run by the test, dumped with jcmd GC.heap_dump,
WHEN profkit reads the dump,
THEN its class figures equal the JVM's own class histogram, each shape's shortest path from the
GC roots is the known chain of classes and field names, and each holder's retained bytes are the
sizes HotSpot gives the objects it alone holds. Truncated and corrupt dumps are one InputError.
"""
import json
import pathlib
import shutil
import subprocess

import pytest

from collectors.jvm_heap import parse_histogram
from profkit.errors import InputError
from profkit.heap.hprof import read_hprof
from profkit.heap.retain import Paths, class_histogram, retaining_paths

HERE = pathlib.Path(__file__).resolve().parent / "hprof"


def _align8(n):
    return (n + 7) // 8 * 8


@pytest.fixture(scope="module")
def dump(tmp_path_factory, request):
    from support import Proc

    for tool in ("javac", "java", "jcmd"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} (a JDK, 11 or newer) is required: apt-get install openjdk-17-jdk-headless", pytrace=False)
    tmp = tmp_path_factory.mktemp("hprof")
    subprocess.run(["javac", "-d", str(tmp), str(HERE / "HeapShapes.java")], check=True, timeout=120)
    proc = Proc(["java", "-Xmx64m", "-XX:+UseSerialGC", "-cp", str(tmp), "HeapShapes"])
    request.addfinalizer(proc.stop)
    proc.wait_ready(60)
    path = tmp / "shapes.hprof"
    res = subprocess.run(["jcmd", str(proc.pid), "GC.heap_dump", str(path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0 and path.exists(), res.stdout + res.stderr
    hist = subprocess.run(["jcmd", str(proc.pid), "GC.class_histogram"], capture_output=True, text=True, timeout=120)
    graph = read_hprof(str(path))
    return path, graph, Paths(graph), parse_histogram(hist.stdout)


def test_class_figures_match_the_jvms_histogram(dump):
    _, g, p, hist = dump
    ours = {name: (n, b) for name, n, b in class_histogram(g, p)}
    # (classes whose objects the process no longer makes: jcmd's own calls make Strings)
    for cls in ("HeapShapes$Entry", "HeapShapes$Ring", "HeapShapes$Leaf", "HeapShapes$Leaf[]", "HeapShapes$Payload",
                "java.util.HashMap$Node"):
        assert ours[cls] == hist[cls], cls
    # all objects (the JVM's figure less its class objects, which HPROF lists as classes)
    jvm = sum(b for name, (_, b) in hist.items() if name != "java.lang.Class")
    assert sum(b for _, _, b in class_histogram(g)) == pytest.approx(jvm, rel=0.01)


def test_static_map_of_10000_entries(dump):
    _, g, p, _ = dump
    (top, *_) = retaining_paths(g, p, "HeapShapes$Entry")
    assert top["path"] == ["static HeapShapes.ENTRIES", "java.util.HashMap", "java.util.HashMap$Node[]",
                           "java.util.HashMap$Node", "HeapShapes$Entry"]
    assert top["fields"] == ["ENTRIES", "table", "[]", "value"]
    assert top["instances"] == 10_000 and top["holders"] == 1
    # what the map alone holds: per entry a key String ("k0".."k9999": 24 bytes, its byte[] 24), the
    # Entry (16) and its byte[100] (120), the HashMap$Node (32); the table (16,384 slots) and the map
    per_entry = 24 + _align8(16 + 5) + 16 + _align8(16 + 100) + 32
    assert top["retained_bytes"] == 10_000 * per_entry + _align8(16 + 4 * 16384) + 48
    # the same map holds the nodes
    nodes = retaining_paths(g, p, "java.util.HashMap$Node")[0]
    assert nodes["path"][0] == "static HeapShapes.ENTRIES" and nodes["instances"] == 10_000


def test_cycle(dump):
    _, g, p, _ = dump
    (top,) = retaining_paths(g, p, "HeapShapes$Ring")
    # three objects in a ring: one run of one class, all held by the static field
    assert top["path"] == ["static HeapShapes.RING", "HeapShapes$Ring"]
    assert top["instances"] == 3
    assert top["retained_bytes"] == 3 * (_align8(12 + 4 + 4) + _align8(16 + 64))


def test_array_of_objects(dump):
    _, g, p, _ = dump
    (top,) = retaining_paths(g, p, "HeapShapes$Leaf")
    assert top["path"] == ["static HeapShapes.LEAVES", "HeapShapes$Leaf[]", "HeapShapes$Leaf"]
    assert top["fields"] == ["LEAVES", "[]"]
    assert top["instances"] == 500
    assert top["retained_bytes"] == _align8(16 + 4 * 500) + 500 * (16 + _align8(16 + 8 * 4))


def test_thread_local_root(dump):
    _, g, p, _ = dump
    (top,) = retaining_paths(g, p, "HeapShapes$Payload")
    assert top["path"] == ["thread", "java.lang.Thread", "java.lang.ThreadLocal$ThreadLocalMap",
                           "java.lang.ThreadLocal$ThreadLocalMap$Entry[]", "java.lang.ThreadLocal$ThreadLocalMap$Entry",
                           "HeapShapes$Payload"]
    assert top["fields"] == ["", "threadLocals", "table", "[]", "value"]
    # the thread holds the payload (1 MiB) and its own few objects
    assert (1 << 20) + 16 < top["retained_bytes"] < (1 << 20) + 64 * 1024


def test_no_values_in_the_results(dump):
    _, g, p, _ = dump
    out = json.dumps([retaining_paths(g, p, c) for c in ("HeapShapes$Entry", "java.lang.String", "byte[]")])
    assert '"k1' not in out and "payload-holder" not in out  # map keys, the thread's name


def _cut(src: pathlib.Path, dst: pathlib.Path, n: int) -> str:
    dst.write_bytes(src.read_bytes()[:n])
    return str(dst)


def test_truncated_dump_is_one_clear_error(dump, tmp_path):
    path, _, _, _ = dump
    size = path.stat().st_size
    for n in (size - 1, size // 2, 40):
        with pytest.raises(InputError, match="truncated") as e:
            read_hprof(_cut(path, tmp_path / f"cut-{n}.hprof", n))
        assert e.value.hint


def test_corrupt_and_foreign_files(dump, tmp_path):
    path, g, _, _ = dump
    data = bytearray(path.read_bytes())
    # the first heap-dump segment's first sub-record: its tag made one HPROF does not have
    pos = data.index(b"JAVA PROFILE 1.0.2\0") + 19 + 12
    while data[pos] not in (0x0C, 0x1C):
        pos += 9 + int.from_bytes(data[pos + 5:pos + 9], "big")
    data[pos + 9] = 0x7E
    bad = tmp_path / "bad.hprof"
    bad.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"not a valid HPROF heap dump: unknown heap-dump sub-record tag 0x7e at offset \d+"):
        read_hprof(str(bad))
    # a segment whose declared length is longer than the file
    data = bytearray(path.read_bytes())
    data[pos + 5:pos + 9] = (len(data)).to_bytes(4, "big")
    bad.write_bytes(bytes(data))
    with pytest.raises(InputError, match="truncated"):
        read_hprof(str(bad))
    other = tmp_path / "other.hprof"
    other.write_bytes(b"PK\x03\x04" + bytes(100))
    with pytest.raises(InputError, match="not an HPROF heap dump"):
        read_hprof(str(other))
    with pytest.raises(InputError, match="cannot read"):
        read_hprof(str(tmp_path / "missing.hprof"))


def test_retaining_paths_in_the_reports_are_escaped(tmp_path):
    """Class and field names in a dump are untrusted: the paths are escaped in summary.md and report.html."""
    from profkit.outputs import render_run
    from support import make_run

    hostile = '</script><svg onload=alert(1)>|`*'
    run = make_run(tmp_path / "run", runtime="jvm", mode="heap")
    series = [{"t": float(i), "rss": 100 * 2**20, "uss": 90 * 2**20} for i in range(10)]
    heap = {"classification": "growing", "basis": "rss", "series": series, "reason": "r",
            "projection": {"text": "p", "seconds_to_limit": None},
            "suspects": [{"name": "a.Entry", "site": "", "bytes": 10, "growth": None, "holder": None,
                          "retained_by": [{"path": [f"static a.Cache.{hostile}", "java.util.HashMap", hostile],
                                           "fields": [hostile, "table"], "instances": 1234, "bytes": 5,
                                           "retained_bytes": 3 << 20}]}],
            "heap_dump": {"trigger": "at the end of the run", "taken_at_s": 9.5, "bytes": 64 << 20, "pause_s": 0.4,
                          "file": None, "analysis": {"seconds": 2.0, "objects": 1000}}}
    (tmp_path / "run" / "heap.json").write_text(json.dumps(heap))
    run.record.duration = 10.0
    run.finish("complete")
    render_run(run)
    md = (tmp_path / "run" / "summary.md").read_text()
    assert "### What holds them (heap dump)" in md and "1,234 instances" in md and "retains 3.0 MiB" in md
    assert "the JVM paused 0.4 s" in md and "deleted" in md
    assert "<svg onload" not in md and "static a.Cache." in md
    html = (tmp_path / "run" / "report.html").read_text()
    assert "<svg onload" not in html and "&lt;svg onload=alert(1)&gt;" in html
    assert "static a.Cache." in html and "java.util.HashMap" in html


def test_keep_dump_needs_heap_dump():
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "profkit", "heap", "--pid", "1", "--keep-dump"], capture_output=True, text=True)
    assert res.returncode == 2 and "--keep-dump" in res.stderr and "needs --heap-dump" in res.stderr

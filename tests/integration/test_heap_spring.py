# SPDX-License-Identifier: Apache-2.0
"""``profkit heap`` on the Spring Boot JSON example (examples/spring_json): real Spring Boot,
real Jackson, loopback load, real heap dumps.

GIVEN the service with --leak (every parsed document kept in DocumentCache.ENTRIES) under load,
WHEN profkit heap --heap-dump watches it,
THEN the heap is growing, projected to -Xmx, the cache's entry class is among the top suspects,
and its retaining path through the application's static cache field is in heap.json and the
summary (class and field names only: none of the documents' values).
GIVEN the service without --leak under the same load: steady.
GIVEN the same service sent one JSON payload bigger than its heap, with
-XX:+HeapDumpOnOutOfMemoryError: profkit says it died of an OutOfMemoryError, reads the JVM's
dump, and does not call it a leak: it names what the thread was allocating.

Both JVMs start at once (Spring Boot start-up is slow on a loaded machine); small heaps, short runs.
"""
import json
import pathlib
import shutil
import subprocess
import sys
import time

import pytest

from conftest import profkit

ROOT = pathlib.Path(__file__).resolve().parents[2]
EX = ROOT / "examples" / "spring_json"
DURATION = 16

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def services(tmp_path_factory, request):
    from support import Proc

    for tool in ("java", "jcmd", "mvn"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is required: bash tests/install-tools.sh (openjdk-17-jdk-headless, maven)", pytrace=False)
    build = subprocess.run(["bash", str(EX / "build.sh")], capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stdout + build.stderr
    oom_dir = tmp_path_factory.mktemp("oom")
    leak = Proc(["bash", str(EX / "run.sh"), "--leak"], env={"JAVA_HEAP": "64m"})
    request.addfinalizer(leak.stop)
    steady = Proc(["bash", str(EX / "run.sh"), "--oom-dump", str(oom_dir)], env={"JAVA_HEAP": "64m"})
    request.addfinalizer(steady.stop)
    urls = {}
    for name, p in (("leak", leak), ("steady", steady)):
        urls[name] = p.wait_line(r"spring_json listening on (http://127\.0\.0\.1:\d+)/", 240).group(1)
    return {"leak": (leak.pid, urls["leak"]), "steady": (steady.pid, urls["steady"]), "oom_dir": oom_dir}


def load(url, seconds, *extra):
    return subprocess.Popen([sys.executable, str(EX / "load.py"), url, str(seconds), *map(str, extra)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def heap_run(pid, url, out, *args, duration=DURATION, rate=20):
    loader = load(url, duration + 6, "--rate", rate)
    try:
        res = profkit("heap", "--pid", pid, "-d", duration, "-o", out, "-q", *args, timeout=duration + 300)
    finally:
        loader.kill()
        loader.wait()
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    return json.loads((out / "heap.json").read_text()), (out / "summary.md").read_text()


def test_leak_under_load_is_held_by_the_cache_field(services, tmp_path):
    pid, url = services["leak"]
    heap, summary = heap_run(pid, url, tmp_path / "run", "--heap-dump")
    assert heap["classification"] == "growing", heap["reason"]
    assert "-Xmx 64 MB" in heap["projection"]["text"], heap["projection"]
    names = [s["name"] for s in heap["suspects"]]
    assert "example.spring.DocumentCache$Entry" in names[:8], names
    entry = heap["suspects"][names.index("example.spring.DocumentCache$Entry")]
    top = entry["retained_by"][0]
    assert top["path"] == ["static example.spring.DocumentCache.ENTRIES", "java.util.concurrent.ConcurrentHashMap",
                           "java.util.concurrent.ConcurrentHashMap$Node[]", "java.util.concurrent.ConcurrentHashMap$Node",
                           "example.spring.DocumentCache$Entry"], top
    assert top["instances"] > 20 and top["retained_bytes"] > top["instances"] * 16 * 1024
    # the Jackson trees that grow are held through the same field
    jackson = [s for s in heap["suspects"] if s["name"].startswith("com.fasterxml.jackson.databind.node.")]
    assert jackson and jackson[0]["retained_by"][0]["path"][0] == "static example.spring.DocumentCache.ENTRIES"
    d = heap["heap_dump"]
    assert d["bytes"] > 10 << 20 and d["pause_s"] >= 0 and d["file"] is None  # deleted (no --keep-dump)
    assert not list((tmp_path / "run" / "raw").glob("*.hprof"))
    assert "static example.spring.DocumentCache.ENTRIES → java.util.concurrent.ConcurrentHashMap" in summary
    report = (tmp_path / "run" / "report.html").read_text()
    assert "static example.spring.DocumentCache.ENTRIES" in report
    # only class and field names: none of the documents' values (load.py's "SKU-…", "c123")
    for text in (json.dumps(heap), summary, report):
        assert "SKU-" not in text and '"c1' not in text


def test_without_leak_steady(services, tmp_path):
    pid, url = services["steady"]
    heap, _ = heap_run(pid, url, tmp_path / "run")
    assert heap["classification"] == "steady", heap["reason"]
    assert heap["heap_dump_on_oom"] is True and not heap.get("oom")


def test_huge_payload_is_an_oom_not_a_leak(services, tmp_path, start_profkit):
    pid, url = services["steady"]
    run = tmp_path / "run"
    proc = start_profkit("heap", "--pid", pid, "-d", 90, "-o", run, "-q", "--no-allocations")
    time.sleep(6)
    sent = subprocess.run([sys.executable, str(EX / "load.py"), url, "--huge", "48"], capture_output=True, text=True,
                          timeout=300)
    assert proc.wait(400) == 0, proc.output()
    assert "Traceback" not in proc.err
    heap = json.loads((run / "heap.json").read_text())
    oom = heap["oom"]
    assert oom["target_exited"] is True, sent.stdout
    assert oom["file"].startswith(str(services["oom_dir"]))
    assert oom["leak"] is False and heap["classification"] == "out of memory (not a leak)"
    assert "not a leak" in oom["text"] and "com.fasterxml.jackson" in oom["text"]
    assert oom["stack_held"]["share"] > 0.5
    # Spring reads the @RequestBody before the controller method runs: the thread was in Jackson, called by Spring
    frames = oom["stack_held"]["thread_stack"]
    assert "com.fasterxml.jackson.databind.ObjectReader.readValue" in frames, frames
    assert any(f.startswith("org.springframework.http.converter.json.") for f in frames), frames
    manifest = json.loads((run / "manifest.json").read_text())
    assert any("died of an OutOfMemoryError" in w for w in manifest["warnings"]), manifest["warnings"]
    summary = (run / "summary.md").read_text()
    assert "not a leak" in summary and "out of memory" in summary

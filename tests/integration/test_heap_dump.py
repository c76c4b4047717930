# SPDX-License-Identifier: Apache-2.0
"""``profkit heap --heap-dump`` on a JVM in a container of its own (its own PID and mount
namespaces, a private /tmp: what a container runtime gives it), with --keep-dump.

GIVEN tests/unit/hprof/HeapShapes.java running under ``unshare --pid --mount`` with a tmpfs /tmp,
WHEN profkit heap --heap-dump --keep-dump watches it for a few seconds,
THEN the JVM wrote the dump into its own /tmp, profkit read it through /proc/PID/root, moved it
into raw/ (mode 0600), and heap.json's suspects have the known retaining paths.
"""
import json
import os
import pathlib
import shutil
import stat
import subprocess

import pytest

from conftest import profkit

HERE = pathlib.Path(__file__).resolve().parents[1] / "unit" / "hprof"

pytestmark = pytest.mark.slow


def test_heap_dump_of_a_jvm_in_another_mount_namespace(start_process, tmp_path):
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.fail("this test makes a container with unshare(1) (util-linux) and needs root", pytrace=False)
    classes = tmp_path / "classes"
    subprocess.run(["javac", "-d", str(classes), str(HERE / "HeapShapes.java")], check=True, timeout=120)
    # (the working directory keeps the classes, under the /tmp that the tmpfs hides)
    script = (f"cd {classes} && mount -t tmpfs tmpfs /tmp && mount -t proc proc /proc && mkdir /tmp/app && "
              "cp ./*.class /tmp/app && exec java -Xmx64m -cp /tmp/app HeapShapes")
    p = start_process("unshare", "--pid", "--mount", "--fork", "--propagation", "private", "sh", "-c", script)
    p.wait_ready(60)
    java = next(c for c in _children(p.pid) if "HeapShapes" in open(f"/proc/{c}/cmdline").read())
    assert os.stat(f"/proc/{java}/root/tmp").st_dev != os.stat("/tmp").st_dev  # its own /tmp
    res = profkit("heap", "--pid", java, "-d", 4, "--no-allocations", "--heap-dump", "--keep-dump",
                  "-o", tmp_path / "run", "-q", timeout=300)
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    heap = json.loads((tmp_path / "run" / "heap.json").read_text())
    d = heap["heap_dump"]
    assert d["in_container"] is True and d["file"].startswith("raw/heap-") and d["analysis"]["objects"] > 10_000
    kept = tmp_path / "run" / d["file"]
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert not [f for f in os.listdir(f"/proc/{java}/root/tmp") if f.endswith(".hprof")]  # moved out of the container
    paths = [r["path"] for s in heap["suspects"] for r in s.get("retained_by") or []]
    assert any(path[0] == "static HeapShapes.ENTRIES" for path in paths), paths
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert "static HeapShapes.ENTRIES" in summary and f"kept as {d['file']}" in summary


def _children(pid):
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            kids = open(f"/proc/{pid}/task/{task}/children").read().split()
        except OSError:
            continue
        for k in kids:
            out.append(int(k))
            out.extend(_children(int(k)))
    return out


def test_early_heap_dump_when_the_heap_will_run_out_before_the_end(start_process, tmp_path):
    """GIVEN the example JVM service leaking 16 KB a request into a 64 MB heap under load,
    WHEN profkit heap --heap-dump watches it for longer than the heap will last,
    THEN the dump is taken early (the projection to -Xmx is shorter than the time left), before
    the JVM runs out, and read: the leak's bytes are held through the service's static cache."""
    ex = pathlib.Path(__file__).resolve().parents[2] / "examples"
    classes = tmp_path / "classes"
    subprocess.run(["bash", str(ex / "jvm_service" / "build.sh"), str(classes)], check=True, capture_output=True, timeout=120)
    s = start_process("bash", ex / "jvm_service" / "run.sh", "--port", "0", "--leak", "--leak-bytes", "16384",
                      env={"BUILD_DIR": str(classes), "JAVA_HEAP": "64m"})
    base = s.wait_line(r"listening on (http://127\.0\.0\.1:\d+)/", 30).group(1)
    # at a constant rate (vegeta, open loop): 100 requests a second leak 1.6 MB/s, so the heap
    # lasts about 30 s on any machine (a closed loop on an idle machine filled it in 8 s, before
    # the floor's rise was significant, and the JVM died undumped)
    from profkit.loadgen.vegeta import VERSION as VEGETA_VERSION, vegeta_path

    assert vegeta_path(), f"vegeta is not built: bash .ci/tools (vegeta {VEGETA_VERSION} from the Go module proxy)"
    (tmp_path / "targets.txt").write_text(f"GET {base}/process?size=200\n")
    loader = start_process(vegeta_path(), "attack", "-rate", "100/s", "-duration", "100s", "-targets",
                           tmp_path / "targets.txt", "-output", "/dev/null")
    res = profkit("heap", "--pid", s.pid, "-d", 90, "--heap-dump", "--no-allocations", "-o", tmp_path / "run", "-q",
                  timeout=400)
    loader.stop()
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    heap = json.loads((tmp_path / "run" / "heap.json").read_text())
    d = heap["heap_dump"]
    assert d and d["trigger"].startswith("early: the heap was projected to reach -Xmx in"), d
    assert d["taken_at_s"] < 80 and d["bytes"] > 8 << 20 and d["file"] is None
    paths = [r["path"] for s in heap["suspects"] for r in s.get("retained_by") or []]
    assert any(p[0] == "static example.ResultCache.ENTRIES" for p in paths), paths

# SPDX-License-Identifier: Apache-2.0
"""``profkit heap`` against the leaking example services under loopback load (real processes).

GIVEN the JVM service or the Python API, with the leak on or off, under bounded load,
WHEN profkit heap watches it for about 20 s,
THEN heap.json classifies it (growing / steady), names the leak as suspects[0] and, for the JVM,
projects the time to the -Xmx limit. Error cases: no such PID, a target that exits mid-run.
"""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys

import pytest

from conftest import profkit, recording
from support import assert_running, free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
EX = ROOT / "examples"
DURATION = 20

pytestmark = pytest.mark.slow


def load(url, seconds, conns=2):
    """The example load generator (loopback only, bounded), in the background."""
    return subprocess.Popen([sys.executable, str(EX / "load" / "load.py"), url, str(seconds), str(conns), "--json"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def heap_run(pid, out, url, duration=DURATION, conns=2):
    loader = load(url, duration + 8, conns)
    try:
        res = profkit("heap", "--pid", pid, "--duration", duration, "-o", out, "-q", timeout=duration + 120)
    finally:
        loader.kill()
        loader.wait()
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    return json.loads((out / "heap.json").read_text()), res


@pytest.fixture(scope="module")
def java_classes(tmp_path_factory):
    if shutil.which("javac") is None or shutil.which("jstat") is None:
        pytest.fail("the JDK (javac, jstat, jcmd) is required", pytrace=False)
    out = tmp_path_factory.mktemp("jvm") / "classes"
    build = subprocess.run(["bash", str(EX / "jvm_service" / "build.sh"), str(out)], capture_output=True, text=True,
                           timeout=120)
    assert build.returncode == 0, build.stderr
    return out


def start_java(start_process, classes, *args):
    s = start_process("bash", EX / "jvm_service" / "run.sh", "--port", "0", *args, env={"BUILD_DIR": str(classes)})
    base = s.wait_line(r"listening on (http://127\.0\.0\.1:\d+)/", 30).group(1)
    return s.pid, base


@pytest.mark.parametrize("leak", [True, False], ids=["leak", "no-leak"])
def test_jvm_service(start_process, java_classes, tmp_path, leak):
    # One connection and 4 KiB kept per request: a few MB/s, well above GC noise even when a loaded
    # machine serves only a few hundred requests a second, and the 256 MB heap is not full by the end.
    pid, base = start_java(start_process, java_classes, *(["--leak", "--leak-bytes", "4096"] if leak else []))
    heap, res = heap_run(pid, tmp_path / "run", base + "/process?size=200", conns=1)
    assert heap["runtime"] == "jvm"
    assert heap["jvm_series"] and heap["jvm_series"][0]["heap_max"] == 256 * 2**20
    assert heap["limit"]["name"] == "-Xmx"
    assert heap["heap_dump_on_oom"] is False and heap["advice"]
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert "## Heap" in summary
    report = (tmp_path / "run" / "report.html").read_text()
    assert 'class="heap"' in report and "<polyline" in report
    if leak:
        assert heap["classification"] == "growing", heap["reason"]
        assert heap["suspects"][0]["name"] == "example.ResultCache$Entry"
        assert heap["suspects"][0]["growth"]["instances"] > 1000
        assert "-Xmx 256 MB" in heap["projection"]["text"]
        assert heap["projection"]["seconds_to_limit"] >= 0  # 0: already at the limit
        assert (tmp_path / "run" / "flamegraph.svg").exists()  # the allocation flame graph
    else:
        assert heap["classification"] == "steady", heap["reason"]


def start_api(start_process, leak):
    port = free_port()
    s = start_process("bash", EX / "python_api" / "serve.sh", "--port", port, *(["--leak"] if leak else []),
                      env={"PYTHON": sys.executable})
    health = s.wait_url(f"http://127.0.0.1:{port}/health")
    return health["pid"], f"http://127.0.0.1:{port}"


@pytest.mark.parametrize("leak", [True, False], ids=["leak", "no-leak"])
def test_python_api(start_process, tmp_path, leak):
    pid, base = start_api(start_process, leak)
    # limit=500: each request retains ~80 KB with the leak on, well above the worker's RSS noise
    heap, res = heap_run(pid, tmp_path / "run", base + "/items?limit=500")
    assert heap["runtime"] == "python"
    assert heap["series"] and heap["series"][-1]["uss"] > 0
    assert heap["memray_series"], res.stderr
    if leak:
        assert heap["classification"] == "growing", heap["reason"]
        top = heap["suspects"][0]
        assert top["name"] == "remember_response"
        assert top["site"].endswith("examples/python_api/app.py:86")
        folded = (tmp_path / "run" / "profile.folded").read_text()
        assert "remember_response" in folded
    else:
        assert heap["classification"] == "steady", heap["reason"]


def test_jvm_without_jdk_tools_still_watches_its_memory(start_process, java_classes, tmp_path):
    # GIVEN a JVM, and profkit run where neither PATH nor JAVA_HOME leads to the JDK's tools
    pid, _ = start_java(start_process, java_classes)
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = os.path.dirname(sys.executable)
    assert shutil.which("jcmd", path=env["PATH"]) is None and shutil.which("jstat", path=env["PATH"]) is None
    res = profkit("heap", "--pid", pid, "-d", 4, "-o", tmp_path / "run", "-q", env=env)
    # THEN RSS/USS are still watched, and each missing tool is a warning that says how to install it
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    heap = json.loads((tmp_path / "run" / "heap.json").read_text())
    assert heap["runtime"] == "jvm" and heap["series"] and heap["classification"]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "collector-error"
    for tool in ("jcmd", "jstat"):
        assert any(tool in w and "apt-get install openjdk" in w for w in manifest["warnings"]), manifest["warnings"]
    assert_running(pid, what="the target")


def test_python_target_that_cannot_import_memray(start_target, tmp_path):
    # GIVEN a Python process whose interpreter has no memray (a bare virtualenv)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    py = venv / "bin" / "python"
    assert subprocess.run([str(py), "-c", "import memray"], capture_output=True).returncode != 0
    p = start_target(str(py), "-c", "import time\nx = []\nprint('ready', flush=True)\n"
                                   "while True:\n    x.append(bytearray(1000)); time.sleep(0.01)")
    p.wait_ready()
    res = profkit("heap", "--pid", p.pid, "-d", 4, "-o", tmp_path / "run", "-q", timeout=120)
    # THEN profkit says so, with the fix, and still watches RSS/USS; the target runs on
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert any("cannot import memray" in w and "pip install memray" in w for w in manifest["warnings"]), manifest
    heap = json.loads((tmp_path / "run" / "heap.json").read_text())
    assert heap["runtime"] == "python" and heap["series"] and not heap.get("memray_series")
    assert_running(p.pid, what="the target")


def test_no_such_pid(tmp_path):
    res = profkit("heap", "--pid", 4_000_000, "-d", 2, "-o", tmp_path / "run")
    assert res.returncode == 1
    assert res.stderr.startswith("profkit: error: no process with PID 4000000")
    assert "Traceback" not in res.stderr


def test_target_exits_mid_run(start_target, tmp_path):
    p = start_target(sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(3)")
    p.wait_ready()
    res = profkit("heap", "--pid", p.pid, "-d", 20, "--no-allocations", "-o", tmp_path / "run", "-q")
    assert res.returncode == 0, res.stderr
    heap = json.loads((tmp_path / "run" / "heap.json").read_text())
    assert heap["series"]  # what was gathered is kept
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert any("exited" in w for w in manifest["warnings"])


def test_ctrl_c_ends_early_and_still_writes(start_target, start_profkit, tmp_path):
    p = start_target(sys.executable, "-c", "import time; print('ready', flush=True); time.sleep(60)")
    p.wait_ready()
    proc = start_profkit("heap", "--pid", p.pid, "-d", 30, "--no-allocations", "-o", tmp_path / "run", "-q")
    # a few samples of its memory: enough points for a verdict
    proc.wait_for(lambda: recording(tmp_path / "run", 3, kind="metrics"), 30, "profkit heap sampling for 3 s")
    proc.send_signal(signal.SIGINT)
    assert proc.wait(30) == 0, proc.err
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    heap = json.loads((tmp_path / "run" / "heap.json").read_text())
    assert heap["series"] and heap["classification"] == "steady"
    assert (tmp_path / "run" / "report.html").exists()


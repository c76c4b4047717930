# SPDX-License-Identifier: Apache-2.0
"""The example services as real processes: started, queried, loaded on loopback, always reaped.

A missing tool (gunicorn, javac, java, cc, wrk) fails the test that needs it: the examples are what
profkit's other tests profile, so a machine that cannot run them must not pass quietly.
"""
import contextlib
import importlib.util
import json
import pathlib
import random
import re
import shutil
import subprocess
import sys
import time
import tracemalloc
import urllib.error
import urllib.request

import psutil
import pytest

from support import Proc, free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
EX = ROOT / "examples"


def require(tool, hint):
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is required by the examples and is not on PATH; {hint}", pytrace=False)
    return path


def require_gunicorn():
    if importlib.util.find_spec("gunicorn") is None:
        pytest.fail(f"gunicorn is required by examples/python_api and is not installed for {sys.executable}; "
                    f"pip install -r {EX / 'python_api' / 'requirements.txt'}", pytrace=False)


def http(url, data=None, timeout=10):
    """(status, parsed JSON body) of one request; HTTP errors are returned, not raised."""
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def start_api(start, cwd, leak=False):
    """examples/python_api behind gunicorn, started with ``start`` (``start_process``, or a Proc in
    a module's ExitStack); (its Proc, base URL) once /health answers."""
    require_gunicorn()
    port = free_port()
    argv = ["bash", EX / "python_api" / "serve.sh", "--port", port] + (["--leak"] if leak else [])
    proc = start(*argv, env={"PYTHON": sys.executable}, cwd=cwd)
    base = f"http://127.0.0.1:{port}"
    proc.wait_url(base + "/health", 20)
    return proc, base


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    with contextlib.ExitStack() as procs:
        yield start_api(lambda *argv, **kw: procs.enter_context(Proc(argv, **kw)), tmp_path_factory.mktemp("services"))


# Python web API -----------------------------------------------------------------------------------

def test_python_api_items_and_health(api):
    proc, base = api
    status, health = http(base + "/health")
    assert status == 200 and health["status"] == "ok" and health["items"] == 10_000 and health["leak"] is False
    # serve.sh execs the real interpreter: the PID we started is gunicorn's master, the worker its child.
    master = psutil.Process(proc.pid)
    assert pathlib.Path(master.exe()).name.startswith("python")
    assert "gunicorn" in master.cmdline()
    assert health["pid"] in [c.pid for c in master.children()]

    status, body = http(base + "/items?limit=5&q=oak")
    assert status == 200
    assert (body["total"], body["count"], body["query"], len(body["items"])) == (10_000, 5, "oak", 5)
    for item in body["items"]:
        assert set(item) == {"id", "name", "category", "price", "stock", "ratings", "score"}
        assert isinstance(item["ratings"], list) and item["ratings"]
    scores = [i["score"] for i in body["items"]]
    assert scores == sorted(scores, reverse=True)
    assert http(base + "/items")[1]["count"] == 20

    for bad in ("0", "1001", "x"):
        status, body = http(base + "/items?limit=" + bad)
        assert status == 400 and "limit" in body["error"]
    assert http(base + "/debug/leak-size")[1]["retained"] == 0


def test_python_api_leak_retains_every_response(start_process, tmp_path):
    _, base = start_api(start_process, tmp_path, leak=True)
    assert http(base + "/health")[1]["leak"] is True
    assert http(base + "/debug/leak-size")[1]["retained"] == 0
    for _ in range(5):
        assert http(base + "/items?limit=50")[0] == 200
    size = http(base + "/debug/leak-size")[1]
    assert size["retained"] == 5
    assert size["retained_bytes"] > 5 * 50 * 100


def test_python_api_without_gunicorn(start_process, tmp_path):
    port = free_port()
    proc = start_process(sys.executable, EX / "python_api" / "app.py", "--port", port, "--leak", cwd=tmp_path)
    proc.wait_url(f"http://127.0.0.1:{port}/health", 20)
    status, health = http(f"http://127.0.0.1:{port}/health")
    assert status == 200 and health["leak"] is True and health["pid"] == proc.pid
    assert http(f"http://127.0.0.1:{port}/items?limit=3")[1]["count"] == 3
    assert http(f"http://127.0.0.1:{port}/debug/leak-size")[1]["retained"] == 1


def test_python_leak_growth_is_attributed_to_the_leak_line():
    """What heap analysis relies on: the growing allocations' innermost frame is the cited line."""
    spec = importlib.util.spec_from_file_location("profkit_example_app", EX / "python_api" / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    app.LEAK = True
    app.score_items = lambda items, query="": [0.0] * len(items)  # tracemalloc makes the real one slow
    client = app.app.test_client()
    client.get("/items")
    leak_line = next(n for n, line in enumerate((EX / "python_api" / "app.py").read_text().splitlines(), 1)
                     if "_REMEMBERED.append(" in line)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for _ in range(20):
            assert client.get("/items?limit=50").status_code == 200
        growth = tracemalloc.take_snapshot().compare_to(before, "lineno")
    finally:
        tracemalloc.stop()
    top = growth[0]
    assert (pathlib.Path(top.traceback[0].filename).name, top.traceback[0].lineno) == ("app.py", leak_line)
    assert top.size_diff > 20 * 50 * 100


# Load ---------------------------------------------------------------------------------------------

def last_json_line(text):
    return json.loads(text.strip().splitlines()[-1])


def test_load_py_bounded_against_api(api):
    _, base = api
    started = time.monotonic()
    out = subprocess.run([sys.executable, str(EX / "load" / "load.py"), base + "/items?limit=20", "2s", "2", "--json"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    result = last_json_line(out.stdout)
    assert time.monotonic() - started < 10
    assert result["tool"] == "load.py"
    assert result["requests"] > 0 and result["error_count"] == 0, result
    assert 0 < result["latency_ms"]["p50"] <= result["latency_ms"]["p99"] <= result["latency_ms"]["max"]
    assert 1.5 < result["duration_s"] < 8


def test_load_py_stops_at_request_count(api):
    _, base = api
    out = subprocess.run([sys.executable, str(EX / "load" / "load.py"), base + "/health", "30s", "3",
                          "--requests", "12", "--json"], capture_output=True, text=True, timeout=30)
    result = last_json_line(out.stdout)
    assert result["requests"] == 12 and result["error_count"] == 0
    assert result["duration_s"] < 10


def test_load_sh_runs_wrk_against_api(api):
    require("wrk", "install it (Debian/Ubuntu: apt-get install wrk)")
    _, base = api
    out = subprocess.run(["bash", str(EX / "load" / "load.sh"), base + "/items?limit=20", "1", "2"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    result = last_json_line(out.stdout)
    assert result["tool"] == "wrk" and result["connections"] == 2
    assert result["requests"] > 0 and result["error_count"] == 0, result
    assert result["latency_ms"]["p99"] > 0


@pytest.mark.parametrize("url", ["http://example.com/", "http://10.0.0.1:8000/", "http://127.0.0.1.example.com/",
                                 "http://[::2]/", "http://user@192.168.1.1/", "file:///etc/passwd"])
@pytest.mark.parametrize("tool", ["load.sh", "load.py"])
def test_load_refuses_non_loopback(tool, url):
    argv = ["bash", str(EX / "load" / "load.sh")] if tool == "load.sh" else [sys.executable, str(EX / "load" / "load.py")]
    out = subprocess.run(argv + [url, "1"], capture_output=True, text=True, timeout=10)
    assert out.returncode == 2
    if url.startswith("file:"):
        expected = {"load.sh": "URL must start with http:// or https://",
                    "load.py": "URL must be http:// or https:// with a host"}[tool]
    else:
        expected = "only loopback targets (127.0.0.0/8, localhost, [::1]) are allowed"
    assert out.stderr.startswith(f"{tool}: ") and expected in out.stderr, out.stderr
    assert out.stdout == ""


@pytest.mark.parametrize("tool", ["load.sh", "load.py"])
@pytest.mark.parametrize("args", [["0"], ["601"], ["1", "0"], ["soon"]])
def test_load_refuses_unbounded_or_bad_arguments(tool, args):
    argv = ["bash", str(EX / "load" / "load.sh")] if tool == "load.sh" else [sys.executable, str(EX / "load" / "load.py")]
    out = subprocess.run(argv + ["http://127.0.0.1:9/"] + args, capture_output=True, text=True, timeout=10)
    assert out.returncode == 2, out.stderr
    assert out.stdout == ""


# JVM service --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def java_classes(tmp_path_factory):
    require("javac", "install a JDK (11 or newer)")
    out = tmp_path_factory.mktemp("jvm") / "classes"
    build = subprocess.run(["bash", str(EX / "jvm_service" / "build.sh"), str(out)],
                           capture_output=True, text=True, timeout=120)
    assert build.returncode == 0, build.stderr
    assert (out / "example" / "JsonService.class").is_file()
    return out


def start_java(start_process, cwd, classes, *args):
    require("java", "install a JDK (11 or newer)")
    proc = start_process("bash", EX / "jvm_service" / "run.sh", "--port", "0", *args, env={"BUILD_DIR": str(classes)},
                         cwd=cwd)
    return proc, proc.wait_line(r"listening on (http://127\.0\.0\.1:\d+)/", 20).group(1)


@pytest.mark.slow
def test_java_service_processes_batches(start_process, tmp_path, java_classes):
    proc, base = start_java(start_process, tmp_path, java_classes)
    status, health = http(base + "/health")
    assert status == 200 and health["status"] == "ok" and health["leak"] is False
    assert health["pid"] == proc.pid  # run.sh execs java
    assert pathlib.Path(psutil.Process(proc.pid).exe()).name == "java"

    rng = random.Random(7)
    records = [{"id": i, "user": f"u{rng.randrange(40)}", "category": rng.choice("abc"),
                "amount": rng.randrange(1, 100_000) / 100, "tags": ["x"] * rng.randrange(3),
                "note": "caf\u00e9 \"door\" \\ \n"} for i in range(2000)]
    status, result = http(base + "/process", data=json.dumps({"batch": 1, "records": records}).encode())
    assert status == 200, result
    assert result["records"] == 2000
    assert result["distinct_users"] == len({r["user"] for r in records})
    assert result["tags"] == sum(len(r["tags"]) for r in records)
    assert abs(result["total_amount"] - sum(r["amount"] for r in records)) < 0.01
    for cat in "abc":
        assert result["categories"][cat]["count"] == sum(r["category"] == cat for r in records)

    status, result = http(base + "/process?size=500")
    assert status == 200 and result["records"] == 500 and result["payload_chars"] > 500 * 100
    assert http(base + "/process", data=b'{"records": [1,')[0] == 400
    assert http(base + "/process?size=0")[0] == 400
    stats = http(base + "/stats")[1]
    assert stats["leak"] is False and stats["cached"] == 0 and stats["requests"] == 4


@pytest.mark.slow
def test_java_service_leak_keeps_every_result(start_process, tmp_path, java_classes):
    _, base = start_java(start_process, tmp_path, java_classes, "--leak")
    assert http(base + "/stats")[1]["cached"] == 0
    for _ in range(6):
        assert http(base + "/process?size=200")[0] == 200
    stats = http(base + "/stats")[1]
    assert stats["leak"] is True and stats["cached"] == 6
    assert stats["retained_bytes"] >= 6 * 1024


# Native program -----------------------------------------------------------------------------------

def test_hotloop_builds_and_runs_for_its_duration(tmp_path):
    require("cc", "install gcc or clang")
    exe = tmp_path / "hotloop"
    build = subprocess.run(["bash", str(EX / "native" / "build.sh"), str(exe)], capture_output=True, text=True,
                           timeout=60)
    assert build.returncode == 0, build.stderr
    started = time.monotonic()
    run = subprocess.run([str(exe), "1"], capture_output=True, text=True, timeout=20)
    elapsed = time.monotonic() - started
    assert run.returncode == 0 and run.stdout.strip().isdigit()
    assert 0.9 < elapsed < 5


# README -------------------------------------------------------------------------------------------

# (README reference, file, text that must be on that line)
SITES = [
    ("python_api/app.py", "def score_items("),
    ("python_api/app.py", "def remember_response("),
    ("python_api/app.py", "_REMEMBERED.append(repr(payload))"),
    ("jvm_service/src/example/JsonParser.java", "Object parseValue()"),
    ("jvm_service/src/example/JsonParser.java", "private String parseString()"),
    ("jvm_service/src/example/ResultCache.java", "static final Map<Long, Entry> ENTRIES = new HashMap<>()"),
    ("jvm_service/src/example/ResultCache.java", "static final class Entry"),
    ("jvm_service/src/example/ResultCache.java", "ENTRIES.put(request, new Entry("),
    ("native/hotloop.c", "static uint64_t checksum_block("),
    ("native/hotloop.c", "static uint64_t mix("),
    ("native/hotloop.c", "static void sort_records("),
    ("native/hotloop.c", "static void shell_sort("),
]


@pytest.mark.parametrize("path,text", SITES)
def test_readme_line_numbers_point_at_the_code(path, text):
    lines = (EX / path).read_text().splitlines()
    found = [n for n, line in enumerate(lines, 1) if text in line]
    assert len(found) == 1, f"{text!r} should be on exactly one line of {path}"
    readme = (EX / "README.md").read_text()
    assert f"`{path}:{found[0]}`" in readme, f"examples/README.md should cite {path}:{found[0]} for {text!r}"
    cited = {int(n) for n in re.findall(re.escape(path) + r":(\d+)", readme)}
    stale = {n for n in cited if n > len(lines) or not any(t in lines[n - 1] for p, t in SITES if p == path)}
    assert not stale, f"examples/README.md cites lines of {path} that no longer hold what it names: {sorted(stale)}"

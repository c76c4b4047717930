# SPDX-License-Identifier: Apache-2.0
"""Issue 17: profkit's conclusions name the culprit. Services of profkit's own (a Python HTTP
service with a known culprit per case, tests/integration/targets/shop/service.py), run the way
users run them: under bounded loopback load, profkit attached by PID, and only profkit's own
outputs read (summary.md, compare.json, heap.json)."""
import contextlib
import json
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import datetime

import pytest

from conftest import TARGETS, manifest, profkit
from support import free_port, wait_until

SHOP = TARGETS / "shop" / "service.py"


def shop(start_target, *args):
    """Start the shop service on a free loopback port; returns (process, port)."""
    port = free_port()
    p = start_target(sys.executable, str(SHOP), "--port", str(port), *map(str, args))
    p.wait_ready()
    return p, port


class Counts(list):
    """Completed requests per port, and the epoch time each one completed (``times``)."""

    times: list


@contextlib.contextmanager
def load(ports, path="/", clients=2):
    """Bounded loopback load: ``clients`` threads per port, each one request at a time, until the
    block ends. Yields the completed request counts (one per port; ``.times``: when each ended)."""
    stop = threading.Event()
    done = Counts([0] * len(ports))
    done.times = []

    def client(i, port):
        while not stop.is_set():
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30).read()
                done[i] += 1
                done.times.append(time.time())
            except OSError:
                if stop.wait(0.05):
                    return

    threads = [threading.Thread(target=client, args=(i, port), daemon=True)
               for i, port in enumerate(ports) for _ in range(clients)]
    for t in threads:
        t.start()
    try:
        yield done
    finally:
        stop.set()
        for t in threads:
            t.join(35)


def table(summary, title):
    """The rows of a Markdown table of summary.md under ``## title``: lists of cell texts."""
    lines = summary.split("\n")
    start = next(i for i, line in enumerate(lines) if line.strip() == f"## {title}")
    rows = []
    for line in lines[start + 1:]:
        if line.startswith("## "):
            break
        if line.startswith("|") and not line.startswith("|---"):
            rows.append([c.strip() for c in line.strip().strip("|").split(" | ")])
    return rows[1:]  # without the header


def unescape(text):
    return text.replace("\\", "").replace("\u2060", "")


def two_process_run(start_target, out, worker_culprit):
    """``attach --pid API --pid WORKER`` of two fresh shop services under load, each labelled."""
    api, api_port = shop(start_target)
    worker, worker_port = shop(start_target, "--culprit", worker_culprit)
    with load([api_port, worker_port]) as done:
        p = profkit("attach", "--pid", api.pid, "--pid", worker.pid, "-d", 3, "-o", out,
                    "--label", f"service={api.pid}:api", "--label", f"service={worker.pid}:worker")
    assert p.returncode == 0, p.stderr
    assert all(done), done
    api.stop()
    worker.stop()
    return api.pid, worker.pid


def test_multi_process_comparisons_key_processes_by_name_and_the_gate_ignores_them(start_target, tmp_path):
    """Case 3: a new PID is not a new function; base A is compared with head A."""
    pids = {}
    for name, culprit in (("base", "none"), ("base2", "none"), ("head", "render")):
        pids[name] = two_process_run(start_target, tmp_path / name, culprit)
    assert [t.service for t in manifest(tmp_path / "head").targets] == ["api", "worker"]
    head_folded = (tmp_path / "head" / "profile.folded").read_text()
    assert f"api [{pids['head'][0]}];" in head_folded  # the displayed frame keeps its PID

    same = profkit("compare", tmp_path / "base", tmp_path / "base2", "-o", tmp_path / "same", "--fail-on-regression", 15)
    assert same.returncode == 0, same.stderr + (tmp_path / "same" / "comment.md").read_text()
    bad = profkit("compare", tmp_path / "base", tmp_path / "head", "-o", tmp_path / "cmp", "--fail-on-regression", 5)
    assert bad.returncode == 3, bad.stderr
    cmp = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    keys = [r["key"] for r in cmp["top_regressed"]] + [r["key"] for r in cmp["regressions"]]
    assert keys and not any(k.startswith("[") for k in keys), keys  # no process or thread frames
    assert not any(str(pid) in k for pid in pids["head"] + pids["base"] for k in keys)
    # the application function that calls into the library is the comparison's first row
    assert [r["key"] for r in cmp["app_regressed"][:3]][0] == "render_report (service.py)", cmp["app_regressed"]
    summary = unescape((tmp_path / "head" / "summary.md").read_text())
    assert summary.index("## Application functions") < summary.index("## Top functions by self")
    assert "render_report (service.py)" in [r[0] for r in table(summary, "Application functions")[:3]]
    per = {p["process"]: p for p in cmp["processes"]}
    assert set(per) == {"api", "worker"}
    worst_in_worker = [r["key"] for r in per["worker"]["top_regressed"][:10]]
    assert any("render_report" in k or "encoder.py" in k for k in worst_in_worker), worst_in_worker
    comment = unescape((tmp_path / "cmp" / "comment.md").read_text())
    assert "Per process" in comment and "| worker |" in comment
    assert comment.index("### Application functions") < comment.index("### Top regressed functions")


# -- the JVM shop (targets/shop/Shop.java) ----------------------------------------------------------

@pytest.fixture(scope="module")
def shop_classes(tmp_path_factory):
    """Shop.java compiled; a missing JDK fails here (it is not a reason to skip)."""
    for tool in ("java", "javac", "jcmd"):
        assert shutil.which(tool), f"{tool} is not installed: apt-get install openjdk-17-jdk-headless"
    out = tmp_path_factory.mktemp("shop-classes")
    subprocess.run(["javac", "-d", str(out), str(TARGETS / "shop" / "Shop.java")], check=True, timeout=120)
    return out


def jvm_shop(start_target, classes):
    port = free_port()
    p = start_target("java", "-Xmx256m", "-cp", str(classes), "shop.Shop", str(port))
    p.wait_ready(timeout=30)
    return p, port


def test_jvm_allocation_profile_names_the_allocating_method(start_target, shop_classes, tmp_path):
    """Case 2 (sites, not types; the mode's real sampling parameter) and case 5 (lambda and
    hidden-class names that are the same in every run, one JVM spelling)."""
    for name in ("alloc", "alloc2"):
        jvm, port = jvm_shop(start_target, shop_classes)
        with load([port], "/page?q=1") as done:
            p = profkit("attach", "--pid", jvm.pid, "--mode", "alloc", "-d", 3, "-o", tmp_path / name)
        assert p.returncode == 0, p.stderr
        assert done[0] > 0
        jvm.stop()
    summary = unescape((tmp_path / "alloc" / "summary.md").read_text())
    mode = next(line for line in summary.splitlines() if line.startswith("| mode |"))
    assert "one sample per 512 KiB allocated" in mode and "Hz" not in mode, mode
    assert "## Top functions by self" not in summary  # its rows would be the allocated types
    apps = table(summary, "Application functions")
    assert apps[0][0] == "shop.Renderer.renderPage", apps
    sites = table(summary, "Allocation sites")
    assert all(row[1] == "shop.Renderer.renderPage" for row in sites[:3]), sites
    types = [row[0] for row in table(summary, "Allocated types")]
    assert "byte[]" in types[:2]
    # two runs of the same code: the same keys (no lambda counters or addresses), nothing regressed
    cmp = tmp_path / "cmp"
    c = profkit("compare", tmp_path / "alloc", tmp_path / "alloc2", "-o", cmp, "--fail-on-regression", 20)
    assert c.returncode == 0, c.stderr + (cmp / "comment.md").read_text()
    text = (cmp / "compare.json").read_text()
    assert "$$Lambda$" not in text and "0x" not in text and "/" not in json.dumps(
        [r["key"] for r in json.loads(text)["top_regressed"]])
    assert not any(r["key"] in ("byte[]", "java.lang.String") for r in json.loads(text)["top_regressed"])


def test_wall_mode_sets_idle_threads_apart_and_names_the_function_that_waits(start_target, tmp_path):
    """Case 1: requests block on a slow downstream; four pool workers and the accept loop idle."""
    downstream, down_port = shop(start_target, "--role", "downstream", "--delay", 0.05)
    api, port = shop(start_target, "--culprit", "slow", "--downstream", down_port, "--pool", 4)
    with load([port]) as done:
        p = profkit("attach", "--pid", api.pid, "--mode", "wall", "-d", 3, "-o", tmp_path / "wall")
    assert p.returncode == 0, p.stderr
    assert done[0] > 10
    summary = unescape((tmp_path / "wall" / "summary.md").read_text())
    assert "every thread, running or waiting" in next(line for line in summary.splitlines() if line.startswith("| mode |"))
    wall = {row[0]: float(row[2].rstrip("%")) for row in table(summary, "Wall time")}
    idle = wall["idle: waiting for work, no request in progress"]
    assert idle > 30, wall   # 4 idle pool workers and the accept loop, against 2 busy request threads
    assert "idle: pool_worker (service.py) waiting (queue)" in summary
    apps = table(summary, "Application functions")
    assert apps[0][0] == "fetch_stock (service.py)", apps
    waits = table(summary, "Wall-time waits (working threads)")
    assert waits[0][:3] == ["fetch_stock (service.py)", "socket read", "SocketIO.readinto (socket.py)"], waits
    assert float(waits[0][4].rstrip("%")) > 50
    selfs = [row[0] for row in table(summary, "Top functions by self (working threads)")[:3]]
    assert "Condition.wait (threading.py)" not in selfs[:1] and "_PollLikeSelector.select (selectors.py)" not in selfs
    downstream.stop()


def test_cpu_mode_means_on_cpu(start_target, tmp_path):
    """Case 6: idle pool workers (Condition.wait), the accept loop (select) and requests blocked on
    a downstream read are not on-CPU; the request's CPU is in render_report."""
    downstream, down_port = shop(start_target, "--role", "downstream", "--delay", 0.02)
    api, port = shop(start_target, "--culprit", "render", "--pool", 4)
    slow, slow_port = shop(start_target, "--culprit", "slow", "--downstream", down_port)
    with load([port, slow_port], clients=1) as done:
        p = profkit("attach", "--pid", api.pid, "--pid", slow.pid, "-d", 3, "-o", tmp_path / "cpu")
    assert p.returncode == 0, p.stderr
    assert all(done), done
    summary = unescape((tmp_path / "cpu" / "summary.md").read_text())
    mode = next(line for line in summary.splitlines() if line.startswith("| mode |"))
    assert "--nonblocking" in mode, mode  # the report says how it told running from waiting
    check = next(line for line in summary.splitlines() if line.startswith("| on-CPU check |"))
    # what the threads used and how long they waited runnable for a CPU, which py-spy's state read
    # counts as running (idle threads counted would be several times more); on a saturated host
    # the report says so (the run queue of a thread per request is not all in schedstat)
    sampled, used, queued = (float(x) for x in re.findall(r"([\d.]+) s", check)[:3])
    assert "runnable for a CPU" in check and "host CPU pressure" in check, check
    assert sampled <= 1.5 * (used + queued) + 0.5 or "> warning: the CPUs were saturated" in summary, check
    waits = ("Condition.wait (threading.py)", "_PollLikeSelector.select (selectors.py)", "SocketIO.readinto (socket.py)")
    for row in table(summary, "Top functions by self"):
        if row[0] in waits:
            assert float(row[2].rstrip("%")) < 10, row
    apps = table(summary, "Application functions")
    assert apps[0][0] == "render_report (service.py)", apps
    assert "on-CPU but the targets used only" not in summary
    downstream.stop()


def test_heap_rates_are_the_targets_own_not_memrays(start_target, tmp_path):
    """Case 4: a native leak (rows of an in-memory SQLite database, malloc from a C library) is
    measured before memray attaches; memray's own cost is stated beside it, and the memray data
    is labelled as what it is."""
    api, port = shop(start_target, "--leak-kib", 16)
    with load([port], clients=1) as done:
        wait_until(lambda: done[0] > 5, 10, "the first requests")
        p = profkit("heap", "--pid", api.pid, "-d", 21, "-o", tmp_path / "heap", "-q", timeout=150)
    assert p.returncode == 0, p.stderr
    heap = json.loads((tmp_path / "heap" / "heap.json").read_text())
    cost = heap["memray_cost"]
    assert heap["rss"]["window"] == "before memray attached" and cost["started_s"] >= 5
    assert heap["classification"] == "growing", heap["reason"]
    # the target's own rate, from the window without memray, against what the load made it keep
    # there (16 KiB of rows per request; SQLite's pages add a little)
    start = datetime.fromisoformat(manifest(tmp_path / "heap").start.replace("Z", "+00:00")).timestamp()
    fit = heap["fit"]
    kept = sum(1 for t in done.times if start + fit["t_start"] <= t < start + fit["t_end"]) * 16 * 1024
    true_rate = kept / (fit["t_end"] - fit["t_start"]) * 60
    rate = fit["bytes_per_min"]
    assert 0.6 * true_rate < rate < 1.8 * true_rate, (rate, true_rate)
    assert cost["rate_without_bytes_per_min"] == rate
    assert f"at {rate / 2**20:.0f} MB/min" in heap["projection"]["text"], heap["projection"]  # the baseline's rate
    with_memray = heap["rss_with_memray"]["fit"]["bytes_per_min"]
    assert cost["extra_bytes_per_min"] == pytest.approx(with_memray - rate, abs=1)
    assert heap["memray_heap"]["label"] == "memray-tracked heap (native malloc and Python objects)"
    assert heap["memray_allocators"]["native"] > 10 * max(1, heap["memray_allocators"]["python"])
    assert heap["memray_heap"]["growth_kind"].startswith("native")
    assert heap["suspects"][0]["name"] == "keep_native_memory"
    summary = unescape((tmp_path / "heap" / "summary.md").read_text())
    assert "(before memray attached)" in summary and "not the target's own rate, never projected" in summary
    assert "| memray's own memory |" in summary and "Python heap" not in summary

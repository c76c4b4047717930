# SPDX-License-Identifier: Apache-2.0
"""The README's scenario: a real Flask service behind gunicorn, under bounded loopback load,
profiled with --children so that the worker doing the work is in the profile."""
import json
import pathlib
import subprocess
import sys

import psutil
import pytest

from conftest import manifest, profkit
from support import free_port, wait_until

pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def gunicorn_api(start_process):
    port = free_port()
    proc = start_process("bash", ROOT / "examples" / "python_api" / "serve.sh", "--port", port,
                         env={"PYTHON": sys.executable})
    base = f"http://127.0.0.1:{port}"
    worker = proc.wait_url(f"{base}/health")["pid"]
    return proc.pid, worker, base


def cpu_seconds(pid):
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def test_attach_with_children_under_load(gunicorn_api, tmp_path):
    master, worker, base = gunicorn_api
    idle = cpu_seconds(worker)
    load = subprocess.Popen([sys.executable, str(ROOT / "examples" / "load" / "load.py"), f"{base}/items?limit=20",
                             "6", "4", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        # the worker is busy with the load before profkit attaches
        wait_until(lambda: load.poll() is None and cpu_seconds(worker) > idle + 0.1, 10,
                   "the load to keep the worker busy")
        run = tmp_path / "run"
        p = profkit("attach", "--pid", master, "--children", "--duration", 4, "-o", run)
        assert p.returncode == 0, p.stderr
    finally:
        out, _ = load.communicate(timeout=60)
    assert json.loads(out.strip().splitlines()[-1])["requests"] > 0
    m = manifest(run)
    assert sorted(m.pids) == sorted([master, worker])
    by_root = {}
    for line in (run / "profile.folded").read_text().splitlines():
        stack, n = line.rsplit(" ", 1)
        root = stack.split(";", 1)[0]
        by_root[root] = by_root.get(root, 0) + int(n)
        if "score_items" in stack:
            by_root["score_items"] = by_root.get("score_items", 0) + int(n)
    worker_root = next(r for r in by_root if r.endswith(f"[{worker}]"))
    # The worker does the work; py-spy also counts some of the master's signal waits as active.
    assert by_root[worker_root] > 0.6 * sum(v for k, v in by_root.items() if k != "score_items")
    assert by_root["score_items"] > 0.5 * by_root[worker_root]
    assert len(list((run / "raw").glob("py-spy-*.json"))) == 2
    # the worker's own timed samples beside its own profile (the idle master may have none)
    (w,) = [t for t in m.targets if t.pid == worker]
    assert w.timeline and w.timeline["file"] == f"{w.dir}/timeline.bin" and (run / w.timeline["file"]).exists()

# SPDX-License-Identifier: Apache-2.0
"""profkit bench, compare and export on real services under real loopback load (wrk, py-spy)."""
import gzip
import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import manifest, profkit

ROOT = pathlib.Path(__file__).resolve().parents[2]
needs_wrk = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (apt-get install wrk)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    """A started example (its own session); ``stop()`` ends its whole process group."""

    def __init__(self, argv, health_url, env=None):
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True,
                                     env=dict(os.environ, **(env or {})))
        for _ in range(200):
            try:
                self.health = json.load(urllib.request.urlopen(health_url, timeout=1))
                return
            except OSError:
                if self.proc.poll() is not None:
                    pytest.fail(f"{argv} did not start: {self.proc.stderr.read().decode()[-800:]}")
                time.sleep(0.1)
        self.stop()
        pytest.fail(f"{health_url} did not answer")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture(scope="module")
def rest_api():
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    svc = Service(["bash", str(ROOT / "examples" / "python_api" / "serve.sh"), "--port", str(port)], f"{base}/health")
    yield svc.health["pid"], base
    svc.stop()


@needs_wrk
def test_rest_api_under_wrk_and_an_slo_that_cannot_be_met(rest_api, tmp_path):
    worker, base = rest_api
    run = tmp_path / "run"
    p = profkit("bench", "--pid", worker, "--url", f"{base}/items?limit=20", "--duration", 4, "-C", 4,
                "--slo", "p99<60s", "--slo", "p50<0.001ms", "-o", run, "-q")
    assert p.returncode == 4, p.stderr
    assert "SLO missed: p50<0.001ms" in p.stderr
    load = json.loads((run / "load.json").read_text())
    print("RED:", {k: load[k] for k in ("requests", "rate", "error_count", "error_pct", "latency_ms")})
    assert load["generator"] == "wrk" and load["rate"] > 0 and load["requests"] > 0
    assert load["error_count"] == 0 and load["error_pct"] == 0
    lat = load["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99.9"] <= lat["max"]
    assert [o["status"] for o in load["slo"]["objectives"]] == ["met", "missed"] and load["slo"]["overall"] == "missed"
    # nothing lost: the profile, reports and raw captures are all there
    assert "score_items" in (run / "profile.folded").read_text()
    assert (run / "raw" / "load-wrk.txt").exists() and manifest(run)["load"]["generator"] == "wrk"
    summary = (run / "summary.md").read_text()
    assert "## Load (RED)" in summary and "closed-loop" in summary and "| p99.9 |" in summary
    html = (run / "report.html").read_text()
    assert 'id="load"' in html and "latency by percentile" in html and "<svg" in html


@needs_wrk
def test_zero_successful_requests_keeps_the_run(rest_api, tmp_path):
    _, base = rest_api
    run = tmp_path / "run"
    p = profkit("bench", "--pid", rest_api[0], "--url", f"{base}/no-such-page", "--duration", 2, "-C", 2, "-o", run, "-q")
    assert p.returncode == 1, p.stderr
    assert "zero successful requests" in p.stderr
    load = json.loads((run / "load.json").read_text())
    assert load["requests"] > 0 and load["errors"]["status"] == load["requests"]
    assert (run / "report.html").exists() and (run / "profile.folded").exists()


def test_cmd_generator_reads_the_json_line(rest_api, tmp_path):
    worker, base = rest_api
    run = tmp_path / "run"
    cmd = f"{sys.executable} {ROOT / 'examples' / 'load' / 'load.py'} {{url}} {{duration}} 2 --json"
    p = profkit("bench", "--pid", worker, "--url", f"{base}/items?limit=5", "--duration", 2, "--load", "cmd",
                "--load-command", cmd, "--slo", "rate>0", "-o", run, "-q")
    assert p.returncode == 0, p.stderr
    load = json.loads((run / "load.json").read_text())
    assert load["generator"] == "cmd" and load["requests"] > 0 and load["latency_ms"]["p99"] > 0
    assert load["slo"]["overall"] == "met"


def test_bench_refusals(tmp_path):
    me = os.getpid()
    # a malformed SLO: exit 2, nothing started
    p = profkit("bench", "--pid", me, "--url", "http://127.0.0.1:1/", "--slo", "p99<<5", "-o", tmp_path / "a")
    assert p.returncode == 2 and "malformed SLO" in p.stderr and not (tmp_path / "a").exists()
    # another host: exit 2, nothing sent
    p = profkit("bench", "--pid", me, "--url", "http://example.com/", "-o", tmp_path / "b")
    assert p.returncode == 2 and "only loopback" in p.stderr
    # nothing listening: exit 1, one line
    p = profkit("bench", "--pid", me, "--url", f"http://127.0.0.1:{free_port()}/", "-o", tmp_path / "c")
    assert p.returncode == 1 and "unreachable" in p.stderr and "Traceback" not in p.stderr
    # a missing generator: exit 1 with how to install it
    p = profkit("bench", "--pid", me, "--url", "http://127.0.0.1:1/", "-o", tmp_path / "d",
                env=dict(os.environ, PATH=str(tmp_path)))
    assert p.returncode == 1 and "wrk is not installed" in p.stderr and "hint: apt-get install wrk" in p.stderr

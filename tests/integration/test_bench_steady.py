# SPDX-License-Identifier: Apache-2.0
"""bench's series, warm-up, drift and coordinated omission against real loopback services with a
chosen latency shape (tests/integration/targets/loadshape.py) under real vegeta and wrk."""
import json
import os
import pathlib
import shutil
import statistics
import sys

import pytest

from support import free_port
from conftest import profkit
from profkit.loadgen.vegeta import VERSION as VEGETA_VERSION, vegeta_path

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHAPE = ROOT / "tests" / "integration" / "targets" / "loadshape.py"


def need_tools():
    assert vegeta_path(), f"vegeta is not built: bash .ci/tools (vegeta {VEGETA_VERSION} from the Go module proxy)"
    assert shutil.which("wrk"), "wrk is not installed (apt-get install wrk)"


def shape(start_process, *args):
    port = free_port()
    proc = start_process(sys.executable, SHAPE, port, *args)
    info = json.loads(proc.wait_line(r"^\{", 20).string)
    return info["pid"], f"http://127.0.0.1:{port}/"


def bench(run, pid, url, *args, timeout=120):
    p = profkit("bench", "--pid", pid, "--url", url, "-r", 49, "-o", run, "-q", *args, timeout=timeout)
    load = json.loads((run / "load.json").read_text()) if (run / "load.json").exists() else None
    return p, load


@pytest.mark.slow
def test_a_stalling_service_open_loop_sees_the_stall_closed_loop_hides_it(start_process, tmp_path):
    """1.2 s stalls every 5 s (a stall of exactly 1 s gives an open-loop p99 just under 1 s: only the
    requests sent in its first few ms wait the whole second)."""
    need_tools()
    pid, url = shape(start_process, "--stall", "5:1.2", "--base", "0")
    p, veg = bench(tmp_path / "vegeta", pid, url, "--load", "vegeta", "--request-rate", "200/s", "-d", 11)
    assert p.returncode == 0, p.stderr
    p, wrk = bench(tmp_path / "wrk", pid, url, "--load", "wrk", "-C", 4, "-d", 11)
    assert p.returncode == 0, p.stderr
    wrk_means = [r["mean"] for r in wrk["series"] if r.get("mean") is not None]
    print("vegeta:", veg["latency_ms"], veg["send_lag_ms"], "| wrk:", wrk["latency_ms"], wrk["coordinated_omission"],
          "| wrk per-second mean (median):", statistics.median(wrk_means))
    # open loop: the queueing behind each stall is in the tail; the rate was held
    assert veg["closed_loop"] is False and veg["loop"] == "open" and veg["rate_sustained"] is True
    assert veg["latency_ms"]["p99"] >= 1000, veg["latency_ms"]
    assert 190 <= veg["rate"] <= 210 and min(r["rate"] for r in veg["series"]) >= 190
    # closed loop: throughput dips in the stalls; its own per-interval latency stays far lower
    assert wrk["closed_loop"] is True and wrk["coordinated_omission"]["dip_seconds"] >= 1
    assert statistics.median(wrk_means) < 100 and veg["latency_ms"]["p99"] >= 10 * statistics.median(wrk_means)
    summary = (tmp_path / "wrk" / "summary.md").read_text()
    assert "coordinated omission" in summary and "throughput fell below half its median" in summary
    assert "coordinated omission" not in (tmp_path / "vegeta" / "summary.md").read_text().split("## Load")[0]
    assert "Load model: open-loop" in (tmp_path / "vegeta" / "summary.md").read_text()
    html = (tmp_path / "wrk" / "report.html").read_text()
    assert 'aria-label="throughput"' in html and "Coordinated omission:" in html


@pytest.mark.slow
def test_warmup_is_detected_and_left_out_and_a_steady_service_does_not_drift(start_process, tmp_path):
    need_tools()
    # slow first requests: the first 500 (5 s at 100/s; bench's reachability check is one of them)
    pid, url = shape(start_process, "--warmup", "500:40", "--base", "0")
    p, load = bench(tmp_path / "run", pid, url, "--load", "vegeta", "--request-rate", "100/s", "-d", 24,
                    "--warmup", "auto", "--slo", "p99<30ms")
    assert p.returncode == 0, p.stderr
    print("warm-up:", load["warmup"], "steady:", load["latency_ms"], "whole:", load["whole_run"]["latency_ms"],
          "drift:", load["drift"])
    assert load["warmup"]["mode"] == "auto" and load["warmup"]["reached"]
    assert 4 <= load["warmup_s"] <= 8
    assert load["whole_run"]["latency_ms"]["p99"] >= 40 > load["latency_ms"]["p99"]
    assert load["requests"] < load["whole_run"]["requests"] and load["slo"]["overall"] == "met"
    assert load["drift"] == []
    assert "Warm-up: the first" in (tmp_path / "run" / "summary.md").read_text()
    assert "warm-up (excluded)" in (tmp_path / "run" / "report.html").read_text()


@pytest.mark.slow
def test_growing_latency_drifts_and_a_run_too_short_says_so(start_process, tmp_path):
    need_tools()
    pid, url = shape(start_process, "--grow", "2", "--base", "0")
    p, load = bench(tmp_path / "grow", pid, url, "--load", "vegeta", "--request-rate", "50/s", "-d", 14)
    assert p.returncode == 0, p.stderr
    print("drift:", load["drift"])
    lat = [d for d in load["drift"] if d["metric"] in ("p50", "p99", "mean")]
    assert lat and all(d["slope"] > 0 and d["ci95"][0] > 0 and d["unit"] == "ms per s" for d in lat)
    assert "drift over the steady part" in (tmp_path / "grow" / "summary.md").read_text()
    # too short for auto: whole-run figures, a warning, the SLO still judged
    p, load = bench(tmp_path / "short", pid, url, "--load", "vegeta", "--request-rate", "20/s", "-d", 5,
                    "--warmup", "auto", "--slo", "rate>1")
    assert p.returncode == 0, p.stderr
    assert load["warmup"]["reached"] is False and load["warmup_s"] == 0 and load["slo"]["overall"] == "met"
    summary = (tmp_path / "short" / "summary.md").read_text()
    assert "too short to reach steady state" in summary and "Too short to reach steady state" in summary


@pytest.mark.slow
def test_bench_load_errors(start_process, tmp_path):
    need_tools()
    me = os.getpid()
    # an open-loop rate for a closed-loop generator: exit 2, nothing run
    p = profkit("bench", "--pid", me, "--url", "http://127.0.0.1:1/", "--request-rate", "200/s", "-o", tmp_path / "a")
    assert p.returncode == 2 and "open-loop" in p.stderr and not (tmp_path / "a").exists()
    p = profkit("bench", "--pid", me, "--url", "http://127.0.0.1:1/", "--load", "vegeta", "-o", tmp_path / "b")
    assert p.returncode == 2 and "--request-rate" in p.stderr
    p = profkit("bench", "--pid", me, "--url", "http://127.0.0.1:1/", "--warmup", "soon", "-o", tmp_path / "c")
    assert p.returncode == 2 and "--warmup" in p.stderr
    # vegeta missing: exit 1 with how to get it
    p = profkit("bench", "--pid", me, "--url", "http://127.0.0.1:1/", "--load", "vegeta", "--request-rate", "5",
                "-o", tmp_path / "d", env=dict(os.environ, PATH=str(tmp_path), HOME=str(tmp_path)))
    assert p.returncode == 1 and "vegeta is not installed" in p.stderr and "hint: bash .ci/tools" in p.stderr
    # a rate vegeta cannot sustain here: reported, not hidden
    pid, url = shape(start_process, "--base", "0")
    p, load = bench(tmp_path / "fast", pid, url, "--load", "vegeta", "--request-rate", "100000/s", "-d", 3,
                    "--timeout", 2, timeout=180)
    assert p.returncode == 0, p.stderr
    print("asked 100000/s:", load["sent_rate"], load["send_lag_ms"], load["rate"])
    assert load["rate_sustained"] is False and "could not sustain --request-rate" in p.stderr

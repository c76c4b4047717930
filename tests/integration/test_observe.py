# SPDX-License-Identifier: Apache-2.0
"""profkit red, profkit traces and bench --prometheus against real servers (Prometheus from Debian,
Jaeger v2 built by .ci/tools; loopback, temporary storage) and the instrumented checkout chain
(examples/checkout/services.py: Flask, requests and sqlite3 OpenTelemetry instrumentation, OTLP to
Jaeger; prometheus-client metrics scraped every second).

Four chains start at once (their start is the slow part) and are loaded one after the other, each
in its own time window: good, bad deploy, missing index, intermittent stall. Every command then
compares windows.
"""
import json
import pathlib
import sys
import threading
import time
import urllib.request
from datetime import datetime, timezone

import pytest

from conftest import profkit
from servers import jaeger, post_spans, prometheus  # noqa: F401  (module-scoped server fixtures)
from support import Proc, free_port

ROOT = pathlib.Path(__file__).resolve().parents[2]
SERVICES = ROOT / "examples" / "checkout" / "services.py"
VARIANTS = {"good": [], "bad": ["--bad-deploy"], "index": ["--missing-index"], "stall": ["--stall-every", "8", "--stall-ms", "1500"]}

pytestmark = pytest.mark.slow


def iso(t):
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def span(t0, t1):
    return f"{iso(t0)}..{iso(t1)}"


@pytest.fixture(scope="module")
def chains(jaeger, prometheus):  # noqa: F811
    procs, info = {}, {}
    try:
        # one chain after the other: each picks free ports by binding port 0, so chains started at
        # once could pick the same one (seen in CI: two checkouts on one port, one of them dead)
        for v, argv in VARIANTS.items():
            procs[v] = Proc([sys.executable, SERVICES, "up", "--otlp", jaeger.otlp_http, *argv], grace=15)
            info[v] = json.loads(procs[v].wait_line(r"^\{", 180).string)
        for v, i in info.items():
            for role, address in i["metrics"].items():
                prometheus.add_target(address, "checkout-example", service=role, variant=v)
        prometheus.wait_scraped("checkout-example", timeout=60)
        yield info
    finally:
        for p in procs.values():
            p.stop()


def load(url, seconds, workers=2):
    """A closed loop of ``workers`` threads GETting ``url`` for ``seconds``; returns (start, end)."""
    stop = time.monotonic() + seconds

    def work():
        while time.monotonic() < stop:
            try:
                urllib.request.urlopen(url, timeout=10).read()
            except OSError:
                pass

    t0 = time.time()
    threads = [threading.Thread(target=work) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return t0, time.time()


@pytest.fixture(scope="module")
def windows(chains, prometheus, jaeger, tmp_path_factory):  # noqa: F811
    """Each chain loaded in turn: good and bad by profkit bench --prometheus, the others by a plain loop."""
    out = tmp_path_factory.mktemp("observe")
    w = {}
    # good: a low steady load; stall: wrk gives up after 1 s on the requests the service still
    # serves (1.5 s stalls), so its figures and the service's disagree
    for variant, extra in (("good", []), ("stall", ["--timeout", "1", "-C", "3"])):
        i = chains[variant]
        t0 = time.time()
        p = profkit("bench", "--pid", i["checkout_pid"], "--url", f"{i['gateway']}/checkout?customer=7", "--duration", 8,
                    "-C", 2, *extra, "--prometheus", prometheus.url, "--selector",
                    f'{{service="gateway", variant="{variant}"}}', "--jaeger", jaeger.url, "--service", "gateway",
                    "-o", out / variant, "-q", timeout=240)
        assert p.returncode == 0, p.stderr
        w[variant] = (t0, time.time())
        w[variant + "_run"] = out / variant
        w[variant + "_stderr"] = p.stderr
    w["bad"] = load(f"{chains['bad']['gateway']}/checkout?customer=7", 8)
    w["index"] = load(f"{chains['index']['gateway']}/checkout?customer=7", 6)
    time.sleep(2)  # the last spans: the services' batch processors (200 ms) and Jaeger's (200 ms)
    w["out"] = out
    return w


def test_bench_prometheus_agrees_at_a_steady_rate_and_reports_a_stall(windows):
    good = json.loads((windows["good_run"] / "load.json").read_text())
    prom = good["prometheus"]
    assert prom["rate"] and good["rate"], good
    assert abs(prom["rate"] - good["rate"]) <= 0.25 * good["rate"], (prom, good["rate"])
    assert prom["error_ratio"] == 0 and prom["p50_ms"] is not None and prom["p99_ms"] is not None
    assert not [d for d in prom["disagreements"] if d.startswith(("rate", "errors"))], prom["disagreements"]
    assert [r["route"] for r in prom["routes"]] == ["/checkout"]
    summary = (windows["good_run"] / "summary.md").read_text()
    assert "RED from Prometheus" in summary and "| rate |" in summary
    assert "RED from Prometheus" in (windows["good_run"] / "report.html").read_text()
    # a stalling service, wrk giving up after 1 s: the stalled requests are client errors that the
    # service still served (and timed): they disagree, and the run says so.
    stall = json.loads((windows["stall_run"] / "load.json").read_text())
    prom = stall["prometheus"]
    assert any(d.startswith("errors") for d in prom["disagreements"]), (prom, stall["error_pct"])
    assert prom["error_ratio"] == 0 and stall["error_pct"] > 2 and prom["p99_ms"] > 1000
    assert "Prometheus and wrk disagree: errors" in windows["stall_stderr"]
    assert "disagreement: errors" in (windows["stall_run"] / "summary.md").read_text()


def test_bench_jaeger_and_compare_carry_red_and_trace_segments(windows, tmp_path):
    # bench --jaeger: the run's slow vs fast traces, in the run and its reports
    doc = json.loads((windows["stall_run"] / "traces.json").read_text())
    assert doc["segments"][0]["operation"] == "bank.authorize", doc["segments"][:2]
    assert (windows["stall_run"] / "spans-diff.svg").exists()
    assert "## Traces: gateway" in (windows["stall_run"] / "summary.md").read_text()
    assert '<section id="traces">' in (windows["stall_run"] / "report.html").read_text()
    # compare: the Prometheus RED deltas and the slow traces' segments, after the function tables
    p = profkit("compare", windows["good_run"], windows["stall_run"], "-o", tmp_path / "cmp")
    assert p.returncode == 0, p.stderr
    comment = (tmp_path / "cmp" / "comment.md").read_text()
    assert comment.index("### Top regressed functions") < comment.index("### RED from Prometheus") \
        < comment.index("### Slow traces' critical-path segments")
    observed = json.loads((tmp_path / "cmp" / "compare.json").read_text())["observed"]
    assert observed["segments"][0]["path"].endswith("payment: bank.authorize"), observed["segments"][:2]
    p99 = next(r for r in observed["red"] if r["metric"] == "p99_ms")
    assert p99["delta"] > 500


def test_red_names_the_checkout_route_p99_change(windows, prometheus, tmp_path):  # noqa: F811
    out = tmp_path / "red.json"
    p = profkit("red", "--prometheus", prometheus.url, "--selector", '{service="checkout"}',
                "--base", span(*windows["good"]), "--head", span(*windows["bad"]), "-o", out)
    assert p.returncode == 0, p.stderr
    doc = json.loads(out.read_text())
    assert list(doc) == ["routes"]
    top = doc["routes"][0]
    assert list(top) == ["route", "base", "head", "delta"]
    assert list(top["base"]) == list(top["delta"]) == ["rate", "error_ratio", "p50_ms", "p99_ms"]
    assert top["route"] == "/checkout" and top["delta"]["p99_ms"] > 300, doc
    assert "/checkout" in p.stdout.splitlines()[1] and "p99" in p.stdout.splitlines()[0]


def test_traces_name_the_payment_services_new_synchronous_call(windows, jaeger, tmp_path):  # noqa: F811
    out = tmp_path / "t"
    p = profkit("traces", "--jaeger", jaeger.url, "--service", "gateway", "--base", span(*windows["good"]),
                "--head", span(*windows["bad"]), "-o", out)
    assert p.returncode == 0, p.stderr
    doc = json.loads((out / "traces.json").read_text())
    top = doc["segments"][0]
    assert (top["service"], top["operation"]) == ("payment", "GET /verify"), doc["segments"][:3]
    assert top["delta_ms"] > 100 and top["path"][0] == "gateway: GET /checkout"
    assert list(top) == ["service", "operation", "path", "base_ms", "head_ms", "delta_ms", "delta_share"]
    assert doc["base"]["count"] > 20 and doc["head"]["count"] > 5
    slow, fast = doc["representative"]["slow"], doc["representative"]["fast"]
    assert "payment: GET /verify grew most" in p.stdout and slow in p.stdout and fast in p.stdout
    assert {"spans-base.svg", "spans-head.svg", "spans-diff.svg", "summary.md", "report.html"} <= {f.name for f in out.iterdir()}
    assert "payment: GET /verify" in (out / "spans-diff.svg").read_text()
    assert "GET /verify" in (out / "summary.md").read_text() and "<section id=\"traces\">" in (out / "report.html").read_text()
    assert doc["services"]["payment"]["process.pid"] > 0


def test_missing_index_is_attributed_to_its_own_service(windows, jaeger, tmp_path):  # noqa: F811
    out = tmp_path / "t"
    p = profkit("traces", "--jaeger", jaeger.url, "--service", "gateway", "--base", span(*windows["good"]),
                "--head", span(*windows["index"]), "-o", out, "-q")
    assert p.returncode == 0, p.stderr
    top = json.loads((out / "traces.json").read_text())["segments"][0]
    assert top["service"] == "checkout" and "SELECT" in top["operation"], top
    assert top["path"][-1].startswith("checkout: ") and top["delta_ms"] > 0


def test_slow_vs_fast_names_the_stalled_segment(windows, jaeger, tmp_path):  # noqa: F811
    out = tmp_path / "t"
    p = profkit("traces", "--jaeger", jaeger.url, "--service", "gateway", "--slow", "p99", "--fast", "p50",
                "--range", span(*windows["stall"]), "-o", out)
    assert p.returncode == 0, p.stderr
    doc = json.loads((out / "traces.json").read_text())
    top = doc["segments"][0]
    assert (top["service"], top["operation"]) == ("payment", "bank.authorize"), doc["segments"][:3]
    assert top["delta_ms"] > 200 and doc["head"]["label"] == "slow" and doc["base"]["label"] == "fast"


def _synthetic(t0, tid, name="GET /x"):
    ms = 1_000_000
    h = f"{tid:032x}"
    return [{"service": "synth", "trace_id": h, "span_id": f"{tid:08x}00000001", "name": name, "start": t0, "end": t0 + 100 * ms},
            {"service": "synth-db", "trace_id": h, "span_id": f"{tid:08x}00000002", "parent": f"{tid:08x}00000001",
             "name": "query", "start": t0 + 10 * ms, "end": t0 + 40 * ms}]


def test_missing_parents_skew_and_untrusted_names_are_handled_and_reported(jaeger, tmp_path):  # noqa: F811
    ms = 1_000_000
    now = time.time_ns()
    base0, head0 = now - 3600 * 10**9, now - 1800 * 10**9  # their own windows, long ago
    spans = []
    for k in range(5):
        spans += _synthetic(base0 + k * 10**9, 0x1000 + k)
    evil = "GET /pay <script>alert(1)</script> \x1b[31m@octocat #12"
    for k in range(5):
        t = head0 + k * 10**9
        trace = _synthetic(t, 0x2000 + k)
        trace[1]["end"] += 20 * ms
        # a child whose parent never arrived, and a child reaching past its parent's end (clock skew)
        trace.append({"service": "synth-pay", "trace_id": trace[0]["trace_id"], "span_id": f"{0x2000 + k:08x}00000003",
                      "parent": "deadbeefdeadbeef", "name": evil, "start": t + 50 * ms, "end": t + 90 * ms})
        trace.append({"service": "synth-db", "trace_id": trace[0]["trace_id"], "span_id": f"{0x2000 + k:08x}00000004",
                      "parent": trace[0]["span_id"], "name": "late", "start": t + 95 * ms, "end": t + 160 * ms})
        spans += trace
    post_spans(jaeger.otlp_http, spans)
    time.sleep(1.5)
    out = tmp_path / "t"
    rng = lambda lo: f"{iso(lo / 1e9 - 1)}..{iso(lo / 1e9 + 10)}"  # noqa: E731
    p = profkit("traces", "--jaeger", jaeger.url, "--service", "synth", "--base", rng(base0), "--head", rng(head0), "-o", out)
    assert p.returncode == 0, p.stderr
    doc = json.loads((out / "traces.json").read_text())
    assert doc["issues"]["missing_parent"]["traces"] == 5 and doc["issues"]["clamped"]["spans"] == 5
    assert doc["issues"]["missing_parent"]["examples"][0] in p.stderr
    assert "parent is not in the trace" in p.stderr and "clock skew" in p.stderr
    assert doc["head"]["count"] == doc["base"]["count"] == 5
    assert "\x1b" not in p.stdout + p.stderr
    html = (out / "report.html").read_text()
    md = (out / "summary.md").read_text()
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert "<script>" not in md and "@\u2060octocat" in md and "Span issues" in md
    assert "<script>alert" not in (out / "spans-head.svg").read_text()


def test_errors_are_one_line(jaeger, prometheus, tmp_path):  # noqa: F811
    dead = f"http://127.0.0.1:{free_port()}"
    cases = [
        (["traces", "--jaeger", dead, "--service", "x", "--base", "-2m..-1m", "--head", "-1m..now", "-o", tmp_path / "a"], 1,
         "unreachable"),
        (["traces", "--jaeger", jaeger.url, "--service", "nobody", "--base", "-2m..-1m", "--head", "-1m..now",
          "-o", tmp_path / "b"], 1, "no traces"),
        (["traces", "--jaeger", jaeger.url, "--service", "x", "--base", "-1m..-2m", "--head", "-1m..now"], 2, "ends before"),
        (["traces", "--jaeger", jaeger.url, "--service", "x", "--base", "-2m..-1m"], 2, "either --base"),
        (["traces", "--jaeger", jaeger.url, "--service", "x", "--slow", "p50", "--fast", "p90", "--range", "-1m..now"], 2,
         "lower percentile"),
        (["red", "--prometheus", dead, "--base", "-2m..-1m", "--head", "-1m..now"], 1, "unreachable"),
        (["red", "--prometheus", prometheus.url, "--selector", '{job="nothing-here"}', "--base", "-2m..-1m",
          "--head", "-1m..now"], 1, "no http_requests_total series"),
        (["red", "--prometheus", prometheus.url, "--selector", "job=x", "--base", "-2m..-1m", "--head", "-1m..now"], 2,
         "not a selector"),
        (["red", "--prometheus", "ftp://x", "--base", "-2m..-1m", "--head", "-1m..now"], 2, "not an http"),
    ]
    for args, code, text in cases:
        p = profkit(*args)
        assert p.returncode == code and text in p.stderr and "Traceback" not in p.stderr, (args, p.returncode, p.stderr)
        assert p.stderr.startswith("profkit: error: "), p.stderr

# SPDX-License-Identifier: Apache-2.0
"""Load generators: registry, loopback rule, and the pure parsers on recorded output."""
import json

import pytest

from profkit import loadgen
from profkit.errors import UsageError
from profkit.loadgen import LoadRequest, loopback_only
from profkit.loadgen.cmd import CmdGenerator, parse_cmd_output
from profkit.loadgen.locust import parse_locust_stats
from profkit.loadgen.wrk import WrkGenerator, parse_wrk_output

REQ = LoadRequest(url="http://127.0.0.1:8000/items?limit=20", duration=5, raw_dir="", connections=4)

# Recorded: wrk 4.1.0 (Debian) with --latency and profkit's hook, against examples/python_api.
WRK_OUT = """Running 5s test @ http://127.0.0.1:18765/items?limit=20
  2 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   127.46ms   80.47ms 526.27ms   89.07%
    Req/Sec    18.50      8.99    40.00     66.28%
  Latency Distribution
     50%  104.10ms
     75%  141.83ms
     90%  222.25ms
     99%  443.30ms
  168 requests in 5.03s, 469.22KB read
Requests/sec:     33.41
Transfer/sec:     93.30KB
profkit-wrk: {"requests":168,"duration_us":5029159,"bytes":480480,"errors":{"connect":0,"read":0,"write":0,"status":0,"timeout":0},"latency_us":{"min":61442,"mean":127459.016,"max":526265,"stdev":80474.519},"percentiles_us":[[1,61466],[5,62843],[10,63853],[20,70317],[25,75199],[30,79112],[40,92656],[50,104097],[60,115671],[70,130207],[75,141829],[80,153803],[90,222254],[95,314788],[97.5,381942],[99,443305],[99.5,526265],[99.9,526265],[99.99,526265]]}
"""

# wrk's text alone, with errors (the hook line missing, e.g. an older profkit run).
WRK_ERRORS = """Running 2s test @ http://127.0.0.1:9/x
  1 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.50ms  200.00us   3.10ms   75.00%
  Latency Distribution
     50%    1.40ms
     75%    1.60ms
     90%    1.90ms
     99%    2.80ms
  1000 requests in 2.00s, 100.00KB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 45
Requests/sec:    500.00
"""


def test_registry_lists_builtins():
    assert {"wrk", "locust", "cmd"} <= set(loadgen.available_ids())
    assert loadgen.get("wrk").id == "wrk"
    with pytest.raises(UsageError):
        loadgen.get("nope")


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000/", "http://localhost/", "http://[::1]:80/x",
                                 "https://127.1.2.3/"])
def test_loopback_allowed(url):
    loopback_only(url)


@pytest.mark.parametrize("url", ["http://example.com/", "http://10.0.0.1/", "http://127.0.0.1.nip.io/",
                                 "ftp://127.0.0.1/", "127.0.0.1:8000", "http://[::2]/", "http://0.0.0.0/"])
def test_loopback_refused(url):
    with pytest.raises(UsageError) as e:
        loopback_only(url)
    assert e.value.exit_code == 2


def test_wrk_hook_line():
    fig = parse_wrk_output(WRK_OUT, REQ)
    assert fig["requests"] == 168 and fig["error_count"] == 0 and fig["error_pct"] == 0.0
    assert fig["rate"] == pytest.approx(33.41, abs=0.01)
    lat = fig["latency_ms"]
    assert (lat["p50"], lat["p90"], lat["p99"], lat["p99.9"], lat["max"]) == (104.097, 222.254, 443.305, 526.265, 526.265)
    assert lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99.9"] <= lat["max"]
    assert fig["distribution"][0] == [1.0, 61.466] and len(fig["distribution"]) == 19


def test_wrk_text_only_with_errors():
    fig = parse_wrk_output(WRK_ERRORS, REQ)
    assert fig["requests"] == 1000 and fig["rate"] == 500.0
    assert fig["errors"] == {"connect": 0, "read": 3, "write": 0, "timeout": 2, "status": 45}
    assert fig["error_count"] == 50
    assert fig["error_pct"] == pytest.approx(100 * 50 / 1005, abs=1e-3)
    assert fig["latency_ms"]["p99"] == 2.8 and fig["latency_ms"]["p50"] == 1.4 and fig["latency_ms"]["max"] == 3.1
    assert fig["latency_ms"]["p99.9"] is None  # only the hook gives it


def test_wrk_no_response_means_no_latency():
    text = WRK_OUT.replace('"requests":168', '"requests":0')
    fig = parse_wrk_output(text, REQ)
    assert fig["requests"] == 0 and fig["latency_ms"]["p99"] is None


def test_wrk_command_bounds_threads():
    argv = WrkGenerator().command(LoadRequest(url="http://127.0.0.1/", duration=2.4, raw_dir="", connections=1,
                                              threads=4), "hook.lua")
    assert argv[argv.index("--threads") + 1] == "1" and argv[argv.index("--duration") + 1] == "2s"
    assert "--latency" in argv and argv[-1] == "http://127.0.0.1/"


def test_cmd_json_line():
    line = {"tool": "load.py", "requests": 200, "duration_s": 4.0, "rps": 50.0,
            "errors": {"connect": 0, "read": 0, "write": 0, "status": 2, "timeout": 0}, "error_count": 2,
            "latency_ms": {"mean": 8, "p50": 7, "p90": 9, "p99": 14, "max": 41}}
    fig = parse_cmd_output("requests 200 ...\n" + json.dumps(line) + "\n", REQ)
    assert fig["generator"] == "cmd" and fig["requests"] == 200 and fig["rate"] == 50.0
    assert fig["error_count"] == 2 and fig["error_pct"] == pytest.approx(1.0)
    assert fig["latency_ms"]["p99"] == 14 and fig["latency_ms"]["p99.9"] is None


def test_cmd_without_figures():
    fig = parse_cmd_output("hello\nnot json {\n", REQ)
    assert fig["requests"] is None and fig["latency_ms"]["p99"] is None


def test_cmd_placeholders():
    gen = CmdGenerator()
    req = LoadRequest(url="http://127.0.0.1:1/", duration=3, raw_dir="", command="tool {url} {duration} -c {connections}")
    assert gen.argv(req) == ["tool", "http://127.0.0.1:1/", "3", "-c", "10"]
    with pytest.raises(UsageError):
        gen.argv(LoadRequest(url="http://127.0.0.1:1/", duration=3, raw_dir="", command="tool {nope}"))
    with pytest.raises(UsageError):
        gen.argv(LoadRequest(url="http://127.0.0.1:1/", duration=3, raw_dir=""))


# Header and Aggregated row as written by Locust 2.x's --csv (stats file).
LOCUST_CSV = """Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%
GET,/items?limit=20,900,9,16,18.5,11.2,250.3,1024.0,90.0,0.9,16,18,19,20,24,30,60,110,240,250,250
,Aggregated,900,9,16,18.5,11.2,250.3,1024.0,90.0,0.9,16,18,19,20,24,30,60,110,240,250,250
"""


def test_locust_csv():
    fig = parse_locust_stats(LOCUST_CSV, REQ)
    assert fig["requests"] == 900 and fig["rate"] == 90.0 and fig["duration_s"] == 10.0
    assert fig["error_count"] == 9 and fig["error_pct"] == pytest.approx(1.0)
    lat = fig["latency_ms"]
    assert (lat["p50"], lat["p90"], lat["p99"], lat["p99.9"], lat["max"]) == (16, 24, 110, 240, 250.3)
    assert [p for p, _ in fig["distribution"]][:3] == [50.0, 66.0, 75.0]


def test_locust_missing_file():
    assert parse_locust_stats("", REQ)["requests"] is None


# -- the load section of the reports: hostile names stay inert ------------------------------
HOSTILE_LEAF = "</script><svg onload=alert(1)> [x](javascript:y) |cell| `code` (evil/<b>.py:3)"


def _bench_run(tmp_path):
    from support import make_run

    run = make_run(tmp_path / "run", name="svc<i>", mode="wall", rate=100, duration=2.0, duration_requested=2.0)
    (tmp_path / "run" / "profile.folded").write_text(f"main (app.py:1);{HOSTILE_LEAF} 7\nmain (app.py:1) 3\n")
    load = {"generator": "wrk", "url": "http://127.0.0.1:1/<script>alert(1)</script>", "connections": 2,
            "duration_s": 2.0, "requests": 10, "rate": 5.0, "errors": {"connect": 0, "read": 0, "write": 0,
                                                                       "timeout": 0, "status": 1},
            "error_count": 1, "error_pct": 10.0,
            "latency_ms": {"mean": 5.0, "p50": 4.0, "p90": 8.0, "p99": 9.0, "p99.9": 9.5, "max": 10.0},
            "distribution": [[1.0, 1.0], [50.0, 4.0], [90.0, 8.0], [99.0, 9.0], [99.9, 9.5]], "closed_loop": True,
            "slo": {"objectives": [{"text": "p99<5ms", "metric": "p99", "op": "<", "value": 5.0, "unit": "ms",
                                    "actual": 9.0, "status": "missed"}], "overall": "missed"}}
    (tmp_path / "run" / "load.json").write_text(json.dumps(load))
    run.finish("complete")
    return run


def test_load_section_escapes_everything(tmp_path):
    from profkit.outputs import render_run

    run = _bench_run(tmp_path)
    render_run(run)
    html = (tmp_path / "run" / "report.html").read_text()
    section = html[html.index('<section id="load">'):html.index("</section>")]
    assert "<script>" not in section and "<svg onload" not in section and "<b>" not in section
    assert "&lt;script&gt;" in section and "latency by percentile" in section and "<polyline" in section
    summary = (tmp_path / "run" / "summary.md").read_text()
    load_md = summary[summary.index("## Load"):]
    assert "<script" not in load_md and "<svg" not in load_md and "\\|cell\\|" in load_md
    assert "| p99.9 | 9.50 ms |" in load_md  # a table cell: the dot needs no escape
    assert "### SLO: MISSED" in load_md and "closed-loop" in load_md


def test_compare_refuses_another_schema(tmp_path):
    from profkit.comment import compare_runs
    from profkit.errors import InputError

    _bench_run(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    (other / "manifest.json").write_text(json.dumps({"schema": 3}))
    with pytest.raises(InputError) as e:
        compare_runs(str(tmp_path / "run"), str(other), str(tmp_path / "out"))
    assert e.value.exit_code == 2 and "schema 3" in e.value.message

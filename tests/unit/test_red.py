# SPDX-License-Identifier: Apache-2.0
"""profkit/red.py's pure parts: selectors, metric names, the range comparison's order and nulls,
and when Prometheus and a load generator disagree. (PromQL against a real Prometheus:
tests/integration/test_observe.py.)"""
import pytest

from profkit.errors import UsageError
from profkit.red import compare_ranges, disagreements, metric_name, metrics_for, parse_selector, red_table


def test_selectors():
    assert parse_selector('{job="checkout", instance=~"a.*"}') == ['job="checkout"', 'instance=~"a.*"']
    assert parse_selector("{}") == [] and parse_selector("") == []
    assert parse_selector('{ a != "x\\"y" }') == ['a!="x\\"y"']
    for bad in ("job=x", '{job=x}', '{job="x"', '{1a="x"}', '{job="x" extra}'):
        with pytest.raises(UsageError):
            parse_selector(bad)


def test_metric_names_and_conventions():
    assert metric_name("http.server.request.duration") == "http_server_request_duration_seconds"
    assert metric_name("http_requests_total") == "http_requests_total"
    m = metrics_for("opentelemetry")
    assert (m.requests, m.duration, m.route_label) == ("http_server_request_duration_seconds_count",
                                                       "http_server_request_duration_seconds", "http_route")
    m = metrics_for("prometheus-client", duration="latency_milliseconds", route_label="handler")
    assert m.duration_scale == 1.0 and m.route_label == "handler" and m.requests == "http_requests_total"
    with pytest.raises(UsageError):
        metrics_for("prometheus-client", route_label="bad-label")
    with pytest.raises(UsageError):
        metrics_for("prometheus-client", requests="a{b}")


def test_compare_ranges_order_and_nulls():
    base = {"/a": {"rate": 10.0, "error_ratio": 0.0, "p50_ms": 10.0, "p90_ms": 20.0, "p99_ms": 30.0},
            "/b": {"rate": 5.0, "error_ratio": 0.1, "p50_ms": 5.0, "p90_ms": 6.0, "p99_ms": 7.0},
            "/gone": {"rate": 1.0, "error_ratio": 0.0, "p50_ms": 1.0, "p90_ms": 1.0, "p99_ms": 1.0}}
    head = {"/a": {"rate": 4.0, "error_ratio": 0.0, "p50_ms": 100.0, "p90_ms": 200.0, "p99_ms": 800.0},
            "/b": {"rate": 5.0, "error_ratio": 0.2, "p50_ms": 5.0, "p90_ms": 6.0, "p99_ms": 6.0},
            "/new": {"rate": 2.0, "error_ratio": 0.0, "p50_ms": 3.0, "p90_ms": 3.0, "p99_ms": 3.0}}
    doc = compare_ranges(base, head)
    assert [r["route"] for r in doc["routes"]] == ["/a", "/b", "/gone", "/new"]
    a = doc["routes"][0]
    assert list(a) == ["route", "base", "head", "delta"] and list(a["base"]) == ["rate", "error_ratio", "p50_ms", "p99_ms"]
    assert a["delta"] == {"rate": -6.0, "error_ratio": 0.0, "p50_ms": 90.0, "p99_ms": 770.0}
    gone = doc["routes"][2]
    assert gone["head"] == {"rate": None, "error_ratio": None, "p50_ms": None, "p99_ms": None}
    assert gone["delta"]["p99_ms"] is None
    table = red_table(doc)
    assert table[0].split()[0] == "route" and table[1].startswith("/a") and "+770.0" in table[1] and "- → " in table[4]


def test_disagreements():
    load = {"rate": 100.0, "error_pct": 0.0, "latency_ms": {"p50": 10.0, "p99": 40.0}}
    assert disagreements(load, {"rate": 95.0, "error_ratio": 0.0, "p50_ms": 12.0, "p99_ms": 50.0}) == []
    out = disagreements({"rate": 50.0, "error_pct": 10.0, "latency_ms": {"p50": 10.0, "p99": 900.0}},
                        {"rate": 50.0, "error_ratio": 0.0, "p50_ms": 11.0, "p99_ms": 1500.0})
    assert [d.split(":")[0] for d in out] == ["errors", "p99"]
    assert disagreements({"rate": 10.0}, {"rate": 20.0, "error_ratio": None})[0].startswith("rate")

# SPDX-License-Identifier: Apache-2.0
"""The SLO grammar and verdicts (profkit.slo)."""
import pytest

from profkit.errors import UsageError
from profkit.slo import SLOMissed, evaluate, missed_message, parse_objective, verdicts

LOAD = {"rate": 250.0, "error_pct": 0.05, "latency_ms": {"p50": 12.0, "p90": 40.0, "p99": 480.0, "p99.9": 900.0,
                                                        "max": 1200.0}}


@pytest.mark.parametrize("text, metric, op, value, unit", [
    ("p99<500ms", "p99", "<", 500.0, "ms"),
    ("p99.9 <= 1s", "p99.9", "<=", 1000.0, "ms"),
    ("p50<800us", "p50", "<", 0.8, "ms"),
    ("max<2", "max", "<", 2.0, "ms"),
    ("errors<0.1%", "errors", "<", 0.1, "%"),
    ("errors<=1", "errors", "<=", 1.0, "%"),
    ("rate>=200/s", "rate", ">=", 200.0, "/s"),
    ("rate > 10rps", "rate", ">", 10.0, "/s"),
])
def test_grammar(text, metric, op, value, unit):
    o = parse_objective(text)
    assert (o.metric, o.op, o.unit) == (metric, op, unit)
    assert o.value == pytest.approx(value)


@pytest.mark.parametrize("text", ["", "p98<5ms", "p99=5ms", "p99<", "p99<fast", "errors<5ms", "rate<3%",
                                  "p99<5 ms extra", "latency<5ms", "p99<<5ms", "p99<-5ms"])
def test_malformed_is_usage_error(text):
    with pytest.raises(UsageError) as e:
        parse_objective(text)
    assert e.value.exit_code == 2


def test_verdicts():
    v = verdicts(["p99<500ms", "p99.9<500ms", "errors<0.1%", "rate>=300"], LOAD)
    assert [o["status"] for o in v["objectives"]] == ["met", "missed", "met", "missed"]
    assert v["overall"] == "missed"
    assert "p99.9<500ms (actual 900 ms)" in missed_message(v)
    assert verdicts(["p99<500ms"], LOAD)["overall"] == "met"
    assert verdicts([], LOAD)["overall"] == "none"


def test_absent_figure_is_unknown_not_met():
    v = verdicts(["p99.9<1s", "p50<1s"], {"latency_ms": {"p50": 3.0, "p99.9": None}})
    assert [o["status"] for o in v["objectives"]] == ["unknown", "met"]
    assert v["overall"] == "unknown"
    assert missed_message(v) is None


def test_boundaries_and_exit_code():
    assert evaluate([parse_objective("p99<=480ms")], LOAD)[0]["status"] == "met"
    assert evaluate([parse_objective("p99<480ms")], LOAD)[0]["status"] == "missed"
    assert SLOMissed("x").exit_code == 4

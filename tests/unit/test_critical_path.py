# SPDX-License-Identifier: Apache-2.0
"""The critical path of a trace (profkit/traces/critical.py): walking back from the last child,
clamping, and untrusted parent links (missing parents, cycles, self-parents, duplicates)."""
import random

from profkit.traces.compare import Analysed, TraceSet, analyse, segments, split_by_duration
from profkit.traces.critical import Span, critical_path, frame_name
from profkit.traces.jaeger import Trace, parse_otlp, rfc3339_ns

MS = 1_000_000


def sp(sid, parent, op, start, end, service="svc"):
    return Span(sid, parent, service, op, start * MS, end * MS)


def ms(weights):
    return {" > ".join(p): round(v / MS, 3) for p, v in weights.items()}


def test_sequential_children_and_parent_gaps():
    cp = critical_path([sp("r", "", "root", 0, 100), sp("a", "r", "a", 10, 40), sp("b", "r", "b", 50, 90)])
    assert ms(cp.weights) == {"svc: root": 30, "svc: root > svc: a": 30, "svc: root > svc: b": 40}
    assert cp.duration == 100 * MS and sum(cp.weights.values()) == cp.duration and not cp.issues


def test_parallel_children_last_finishing_wins():
    # a and b overlap: walking back from the end, b (ends last) is on the path until its start;
    # then a, clamped to end where b began.
    cp = critical_path([sp("r", "", "root", 0, 100), sp("a", "r", "a", 0, 80), sp("b", "r", "b", 60, 100)])
    assert ms(cp.weights) == {"svc: root > svc: b": 40, "svc: root > svc: a": 60}


def test_fully_nested_parallel_child_is_hidden():
    cp = critical_path([sp("r", "", "root", 0, 100), sp("a", "r", "a", 0, 100), sp("b", "r", "b", 10, 20)])
    assert ms(cp.weights) == {"svc: root > svc: a": 100}


def test_deep_nesting_across_services():
    spans = [sp("r", "", "GET /checkout", 0, 100, "gateway"), sp("c", "r", "handle", 5, 95, "checkout"),
             sp("p", "c", "POST /charge", 20, 60, "payment"), sp("q", "p", "SELECT", 30, 50, "payment")]
    cp = critical_path(spans)
    w = ms(cp.weights)
    assert w["gateway: GET /checkout > checkout: handle > payment: POST /charge > payment: SELECT"] == 20
    assert w["gateway: GET /checkout > checkout: handle > payment: POST /charge"] == 20
    assert w["gateway: GET /checkout > checkout: handle"] == 50
    assert w["gateway: GET /checkout"] == 10
    assert sum(cp.weights.values()) == 100 * MS


def test_skewed_child_is_clamped_and_reported():
    # b starts before its parent and ends after it (clock skew): only its part inside counts
    cp = critical_path([sp("r", "", "root", 0, 100), sp("b", "r", "b", -20, 130)])
    assert ms(cp.weights) == {"svc: root > svc: b": 100}
    assert cp.issues == {"clamped": 1}


def test_child_wholly_outside_parent_is_left_out():
    cp = critical_path([sp("r", "", "root", 0, 100), sp("b", "r", "b", 150, 200), sp("c", "r", "c", 10, 20)])
    assert ms(cp.weights) == {"svc: root": 90, "svc: root > svc: c": 10}
    assert cp.issues == {"outside_parent": 1}


def test_grandchild_clamped_to_the_clamped_parent():
    cp = critical_path([sp("r", "", "root", 0, 100), sp("a", "r", "a", 50, 150), sp("g", "a", "g", 90, 140)])
    assert ms(cp.weights) == {"svc: root": 50, "svc: root > svc: a": 40, "svc: root > svc: a > svc: g": 10}
    assert cp.issues["clamped"] == 2


def test_missing_parent_attached_under_root():
    cp = critical_path([sp("r", "", "root", 0, 100), sp("x", "gone", "orphan", 20, 50)])
    assert ms(cp.weights) == {"svc: root": 70, "svc: root > svc: orphan": 30}
    assert cp.issues == {"missing_parent": 1}


def test_no_root_at_all_takes_the_longest_orphan():
    cp = critical_path([sp("a", "gone", "a", 0, 100), sp("b", "gone", "b", 10, 30)])
    assert cp.root.span_id == "a"
    assert ms(cp.weights) == {"svc: a": 80, "svc: a > svc: b": 20}
    assert cp.issues == {"missing_parent": 2}


def test_cycles_and_self_parents_terminate():
    spans = [sp("r", "", "root", 0, 100), sp("a", "b", "a", 10, 40), sp("b", "a", "b", 20, 30),
             sp("s", "s", "self", 50, 60)]
    cp = critical_path(spans)
    assert sum(cp.weights.values()) == 100 * MS
    assert cp.issues["cycle"] == 2
    w = ms(cp.weights)
    assert w["svc: root > svc: self"] == 10
    assert w["svc: root > svc: a"] + w.get("svc: root > svc: a > svc: b", 0) == 30


def test_whole_trace_a_cycle():
    cp = critical_path([sp("a", "b", "a", 0, 100), sp("b", "a", "b", 10, 20)])
    assert cp.root.span_id == "a" and sum(cp.weights.values()) == 100 * MS and cp.issues["cycle"] >= 1


def test_duplicates_negative_durations_and_extra_roots():
    cp = critical_path([sp("r", "", "root", 0, 100), sp("r", "", "dup", 0, 5), sp("n", "r", "neg", 50, 40),
                        sp("r2", "", "second root", 10, 20)])
    assert cp.root.operation == "root"
    assert cp.issues["duplicate_id"] == 1 and cp.issues["negative_duration"] == 1 and cp.issues["extra_roots"] == 1
    assert ms(cp.weights) == {"svc: root": 90, "svc: root > svc: second root": 10}


def test_empty_and_deep_traces():
    assert critical_path([]).root is None
    deep = [sp("0", "", "op", 0, 10_000)] + [sp(str(i), str(i - 1), "op", i, 10_000 - i) for i in range(1, 3000)]
    cp = critical_path(deep)  # no recursion limit
    assert sum(cp.weights.values()) == 10_000 * MS


def test_weights_always_add_up_on_random_traces():
    rnd = random.Random(7)
    for _ in range(300):
        n = rnd.randint(1, 30)
        spans = [sp("0", "", "root", 0, 1000)]
        for i in range(1, n):
            a = rnd.randint(-100, 1100)
            spans.append(sp(str(i), str(rnd.choice([rnd.randrange(i), i, n + 5, rnd.randrange(n)])), f"op{i % 4}",
                            a, a + rnd.randint(-10, 400)))
        cp = critical_path(spans)
        assert sum(cp.weights.values()) == cp.duration == 1000 * MS
        assert all(v > 0 for v in cp.weights.values())


def test_frame_names_cannot_break_folded_stacks():
    assert frame_name("a;b", "GET\n/x") == "a,b: GET /x"
    assert frame_name("", "") == "?: ?"


def test_segments_sorted_by_delta_with_means_and_shares():
    base = TraceSet("base", "", [Analysed("b1", critical_path([sp("r", "", "root", 0, 100), sp("a", "r", "a", 0, 50)]))])
    head = TraceSet("head", "", [Analysed("h1", critical_path([sp("r", "", "root", 0, 200), sp("a", "r", "a", 0, 50),
                                                              sp("v", "r", "verify", 50, 180)]))])
    segs = segments(base, head)
    assert [s["operation"] for s in segs] == ["verify", "a", "root"]
    top = segs[0]
    assert (top["service"], top["base_ms"], top["head_ms"], top["delta_ms"]) == ("svc", 0, 130, 130)
    assert top["path"] == ["svc: root", "svc: verify"] and top["delta_share"] == 1.3
    assert segs[2]["delta_ms"] == -30


def test_slow_fast_split_by_percentile():
    traces = [Analysed(str(i), critical_path([sp("r", "", "root", 0, 10 + i)])) for i in range(100)]
    fast, slow = split_by_duration(traces, 99, 50)
    assert len(fast.traces) == 50 and {t.trace_id for t in slow.traces} == {"98", "99"}


def test_parse_otlp_and_range_filter():
    doc = {"result": {"resourceSpans": [
        {"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": "gw"}},
                                     {"key": "process.pid", "value": {"intValue": "42"}}]},
         "scopeSpans": [{"spans": [
             {"traceId": "t1", "spanId": "s1", "name": "GET", "startTimeUnixNano": "1000", "endTimeUnixNano": "5000"},
             {"traceId": "t2", "spanId": "s2", "name": "GET", "startTimeUnixNano": "9000", "endTimeUnixNano": "9500"},
             {"traceId": "t1", "spanId": "s3", "parentSpanId": "s1", "name": "db", "startTimeUnixNano": "2000",
              "endTimeUnixNano": "3000"}, "junk", {"spanId": "no trace id"}]}]}, "junk"]}}
    out, res = {}, {}
    assert parse_otlp(doc, out, res) == 3
    assert res == {"gw": {"process.pid": 42, "process.pids": [42]}}
    assert [s.operation for s in out["t1"].spans] == ["GET", "db"]
    kept = analyse([out["t1"], out["t2"]], 0, 9000)  # end exclusive
    assert [a.trace_id for a in kept] == ["t1"]
    assert isinstance(out["t1"], Trace)
    assert rfc3339_ns(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"


def test_a_child_cut_by_a_later_sibling_is_not_clock_skew():
    # b overlaps the end of a; a's child g runs inside a, past b's start: not skew, only off the path
    cp = critical_path([sp("r", "", "root", 0, 100), sp("a", "r", "a", 0, 60), sp("g", "a", "g", 30, 55),
                        sp("b", "r", "b", 40, 100)])
    assert ms(cp.weights) == {"svc: root > svc: b": 60, "svc: root > svc: a": 30, "svc: root > svc: a > svc: g": 10}
    assert not cp.issues

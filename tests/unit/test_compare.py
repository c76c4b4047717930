# SPDX-License-Identifier: Apache-2.0
"""Function-level comparison, Markdown for pull requests, the regression gate."""
import pytest

from profkit.compare import compare_functions, markdown_escape, markdown_report, regressions
from profkit.model import Profile


def make(lines, unit="samples"):
    p = Profile(unit)
    for stack, w in lines:
        p.add(stack.split(";"), w)
    return p


BEFORE = make([("main;handle (app/views.py:10);query (db.py:5)", 50), ("main;render (t.py:3)", 50)])
# After: code moved (line numbers changed), query got slower; twice the samples overall.
AFTER = make([("main;handle (app/views.py:12);query (db.py:7)", 150), ("main;render (t.py:3)", 50)])


def test_functions_are_keyed_without_line_numbers_and_shares_normalised():
    d = {x.key: x for x in compare_functions(BEFORE, AFTER)}
    assert set(d) == {"main", "handle (app/views.py)", "query (db.py)", "render (t.py)"}
    q = d["query (db.py)"]
    assert q.before_total == pytest.approx(50.0) and q.after_total == pytest.approx(75.0)
    assert q.delta_total == pytest.approx(25.0) and q.delta_self == pytest.approx(25.0)
    assert d["render (t.py)"].delta_total == pytest.approx(-25.0)
    assert d["main"].delta_total == pytest.approx(0.0)


def test_regression_gate_threshold_is_in_points():
    deltas = compare_functions(BEFORE, AFTER)
    assert [d.key for d in regressions(deltas, 20)] == ["handle (app/views.py)", "query (db.py)"]
    assert regressions(deltas, 25.0) == []


def test_units_must_match():
    with pytest.raises(ValueError):
        compare_functions(BEFORE, make([("a", 1)], "bytes"))


def test_markdown_report_tables_and_verdict():
    text = markdown_report(compare_functions(BEFORE, AFTER), top=5, threshold=10)
    assert "| query (db.py) | 50.00% | 75.00% | +25.00 |" in text
    assert "Regression gate: FAILED" in text
    assert "### Improved (total share shrank)" in text


@pytest.mark.parametrize("hostile", [
    "<script>alert(1)</script>", "a|b", "[x](javascript:alert(1))", "`code`", "**bold**", "line\nbreak",
    "<img src=x onerror=alert(1)>", "\udcff\x00",
])
def test_markdown_escape_makes_names_inert(hostile):
    out = markdown_escape(hostile)
    assert "<" not in out and ">" not in out and "\n" not in out and "\x00" not in out
    # every table-cell separator and link bracket is escaped
    for ch in "|[]`*":
        assert out.count(ch) == out.count("\\" + ch)


def test_processes_are_keyed_by_name_so_new_pids_are_not_new_functions():
    from profkit.compare import compare_processes, regressed

    base = make([("api [100];main (api.py:1);handle (api.py:9)", 60), ("worker [101];main (w.py:1);poll (w.py:4)", 40)])
    # head: new PIDs, and the worker's poll grew a slow call
    head = make([("api [200];main (api.py:1);handle (api.py:9)", 60), ("worker [201];main (w.py:1);poll (w.py:4)", 20),
                 ("worker [201];main (w.py:1);poll (w.py:4);slow_call (w.py:30)", 60)])
    deltas = compare_functions(base.keyed(), head.keyed())
    keys = {d.key for d in deltas}
    assert "[process api]" in keys and not any("[100]" in k or "[200]" in k for k in keys)
    # process frames are never regressions, nor rows of the tables; the culprit comes first
    assert [d.key for d in regressed(deltas, 3)][0] == "slow_call (w.py)"
    assert all(not d.key.startswith("[process") for d in regressions(deltas, 0.0))
    assert [d.key for d in regressions(deltas, 10.0)] == ["slow_call (w.py)", "main (w.py)", "poll (w.py)"]
    # base A against head A
    per = {p.name: p for p in compare_processes(base.keyed(), head.keyed())}
    assert set(per) == {"api", "worker"}
    assert per["worker"].before_share == pytest.approx(40.0) and per["worker"].after_share == pytest.approx(57.14, abs=0.01)
    inside = {d.key: d for d in per["worker"].deltas}
    assert inside["slow_call (w.py)"].after_total == pytest.approx(75.0)  # of the worker's own samples
    assert regressed(per["api"].deltas, 3) == []


def test_two_runs_of_the_same_processes_pass_the_gate():
    a = make([("python3 [10];f (a.py:1)", 50), ("python3 [11];g (b.py:1)", 50)])
    b = make([("python3 [20];f (a.py:1)", 50), ("python3 [21];g (b.py:1)", 50)])
    assert regressions(compare_functions(a.keyed(), b.keyed()), 0.5) == []


def test_jvm_names_from_two_collectors_and_two_runs_share_keys():
    jfr = make([("java/lang/Thread.run;com/example/App$$Lambda$18.0x00007fcb0000d000.handle;com/example/App.render", 10)])
    ap = make([("java.lang.Thread.run;com.example.App$$Lambda$23/0x0000000800c03000.handle;com.example.App.render", 10)])
    assert dict(jfr.keyed().items()) == dict(ap.keyed().items())
    assert regressions(compare_functions(jfr.keyed(), ap.keyed()), 0.0) == []
    native = make([("main;memcpy.constprop.0_[k]", 5)]).keyed()
    assert set(native.function_stats()) == {"main", "memcpy"}


def test_markdown_report_leaves_synthetic_frames_out():
    a = make([("p [1];[thread MainThread];f (a.py:1)", 10)])
    b = make([("p [2];[thread MainThread];f (a.py:1)", 5), ("q [3];[thread w];g (b.py:1)", 5)])
    text = markdown_report(compare_functions(a.keyed(), b.keyed()), top=5)
    assert "g (b.py)" in text
    assert "process" not in text and "thread" not in text

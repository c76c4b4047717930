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

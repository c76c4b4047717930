# SPDX-License-Identifier: Apache-2.0
"""Differential flame graphs: AFTER's shape, red for growth, blue for shrinkage, normalised shares."""
import io
import xml.etree.ElementTree as ET

import pytest

from flamegraph import FlameGraphOptions, render_diff
from profkit.folded import read_folded

from test_flamegraph import DATA, by_name, check_golden, frames_of

BEFORE = "main;a 50\nmain;b 50\nmain;gone 10\n"
AFTER = "main;a 80\nmain;b 20\nmain;new 10\n"


def folded(text):
    return read_folded(io.StringIO(text))


def diff_of(before, after, normalize=True, **opts):
    out = io.StringIO()
    render_diff(folded(before), folded(after), FlameGraphOptions(**opts), out, normalize=normalize)
    return out.getvalue()


def rgb(frame):
    c = frame[4]["fill"]
    return tuple(int(c[i:i + 2], 16) for i in (1, 3, 5))


def is_red(c):
    return c[0] == 255 and c[1] == c[2] < 255


def is_blue(c):
    return c[2] == 255 and c[0] == c[1] < 255


def is_grey(c):
    return c[0] == c[1] == c[2]


def test_growth_is_red_and_shrinkage_blue():
    f = by_name(frames_of(diff_of(BEFORE, AFTER)))
    assert is_red(rgb(f["a"])) and is_red(rgb(f["new"]))
    assert is_blue(rgb(f["b"]))
    # main has no self weight in either profile: unchanged
    assert is_grey(rgb(f["main"])) and is_grey(rgb(f["all"]))
    # widths come from AFTER; frames only in BEFORE vanish
    assert f["a"][3] == 80 and f["b"][3] == 20 and "gone" not in f


def test_intensity_follows_the_size_of_the_change():
    f = by_name(frames_of(diff_of("m;a 50\nm;b 50\n", "m;a 60\nm;b 40\nm;c 1\n", normalize=False)))
    # a grew by 10, c by 1: a is the deeper red (lower green/blue), b the deepest blue
    assert rgb(f["a"])[1] < rgb(f["c"])[1]
    assert is_red(rgb(f["c"])) and rgb(f["c"])[1] < 255  # even a small change is tinted


def test_normalisation_compares_shares_not_counts():
    before = "main;a 10\nmain;b 30\n"
    after = "main;a 20\nmain;b 60\n"   # twice as long a run, same shape
    same = by_name(frames_of(diff_of(before, after)))
    assert all(is_grey(rgb(fr)) for fr in same.values())
    assert same["a"][1] == ("20 samples (25.00%), before 10 (25.00%): ±0 (±0.00 pp), self ±0 (±0.00 pp)")
    raw = by_name(frames_of(diff_of(before, after, normalize=False)))
    assert is_red(rgb(raw["a"])) and is_red(rgb(raw["b"]))
    assert raw["b"][1] == "60 samples (75.00%), before 30 (75.00%): +30 (+37.50 pp), self +30 (+37.50 pp)"


def test_tooltips_show_before_after_delta_and_points():
    f = by_name(frames_of(diff_of(BEFORE, AFTER)))
    # BEFORE (110) is scaled to AFTER's total (110): a 50 → 80 is +30, 27.27 points of 110
    assert f["a"][1] == "80 samples (72.73%), before 50 (45.45%): +30 (+27.27 pp), self +30 (+27.27 pp)"
    assert f["main"][1].endswith("self ±0 (±0.00 pp)")
    assert f["new"][1].startswith("10 samples (9.09%), before 0 (0.00%): +10")
    assert f["b"][1].startswith("20 samples (18.18%), before 50 (45.45%): -30 (-27.27 pp)")


def test_inclusive_deltas_use_the_whole_subtree():
    before = "main;work;x 10\nmain;work;y 10\nmain;idle 20\n"
    after = "main;work;x 30\nmain;work;y 10\nmain;idle 0\n"
    f = by_name(frames_of(diff_of(before, after, normalize=False)))
    assert "before 20 (50.00%): +20" in f["work"][1] and "self ±0" in f["work"][1]
    assert "idle" not in f  # zero weight in AFTER: nothing to draw


def test_same_function_in_different_places_is_matched_by_path():
    before = "a;x 10\nb;x 30\n"
    after = "a;x 30\nb;x 10\n"
    frames = frames_of(diff_of(before, after, normalize=False))
    xs = [fr for fr in frames if fr[0] == "x"]
    assert [is_red(rgb(xs[0])), is_blue(rgb(xs[1]))] == [True, True]


def test_reverse_and_inverted_diffs():
    before = "a;work 10\nb;work 10\n"
    after = "a;work 30\nb;work 10\n"
    f = frames_of(diff_of(before, after, normalize=False, reverse=True, inverted=True))
    names = [fr[0] for fr in f]
    assert names[:2] == ["all", "work"]
    callers = {fr[0]: fr for fr in f if fr[0] in ("a", "b")}
    assert is_red(rgb(callers["a"])) and is_grey(rgb(callers["b"]))
    assert ">Differential Icicle Graph<" in diff_of(before, after, inverted=True)


def test_empty_profiles():
    text = diff_of("a 1\n", "")
    ET.fromstring(text)
    assert "No stack counts found in AFTER" in text
    f = by_name(frames_of(diff_of("", "a 5\n")))
    assert is_red(rgb(f["a"])) and "before 0 (0.00%)" in f["a"][1]


def test_diff_is_deterministic_and_escaped():
    before = "main;<b>&amp</b> 3\n"
    after = "main;<b>&amp</b> 5\nmain;]]> 1\n"
    one = diff_of(before, after)
    assert one == diff_of(before, after)
    assert {"<b>&amp</b>", "]]>"} <= set(by_name(frames_of(one)))


@pytest.mark.parametrize("normalize", [True, False], ids=["normalize", "absolute"])
def test_diff_golden(normalize, request):
    before = (DATA / "simple.folded").read_text()
    after = before.replace("sleep (time.py:1) 15", "sleep (time.py:1) 5").replace(
        "dumps (json/__init__.py:231);encode (json/encoder.py:199) 25",
        "dumps (json/__init__.py:231);encode (json/encoder.py:199) 60")
    got = diff_of(before, after, normalize=normalize, interactive=False, pretty=True)
    check_golden(DATA / "results" / f"diff-{'normalize' if normalize else 'absolute'}.svg", got, request)

# SPDX-License-Identifier: Apache-2.0
"""Theil–Sen fit, floor detection, classification and projection on synthetic series."""
import random

import pytest

from profkit.growth import Limit, analyse, binding_limit, classify, floor_points, projection_text, theil_sen, time_to_limit

MB = 2 ** 20


def series(fn, n=120, dt=1.0):
    return [(i * dt, fn(i * dt)) for i in range(n)]


def test_theil_sen_recovers_a_line_and_brackets_it():
    fit = theil_sen(series(lambda t: 100 * MB + 2 * MB * t, n=30))
    assert fit.slope == pytest.approx(2 * MB)
    assert fit.intercept == pytest.approx(100 * MB)
    assert fit.slope_low <= fit.slope <= fit.slope_high


def test_theil_sen_ignores_outliers():
    pts = series(lambda t: 50 * MB + 0.5 * MB * t, n=60)
    pts[10] = (10.0, 900 * MB)
    pts[40] = (40.0, 0.0)
    assert theil_sen(pts).slope == pytest.approx(0.5 * MB, rel=0.01)


def test_too_few_points_has_no_fit():
    assert theil_sen([(0, 1), (1, 2)]) is None
    assert classify([(0, 1)]).classification == "steady"


def test_steady_flat_series():
    v = classify(series(lambda t: 80 * MB))
    assert v.classification == "steady"


def test_linear_growth_is_growing():
    v = classify(series(lambda t: 80 * MB + 0.2 * MB * t))
    assert v.classification == "growing"
    assert v.fit.slope == pytest.approx(0.2 * MB)
    assert v.basis == "level"


def test_small_growth_below_5_percent_is_steady():
    # 80 MB rising 2 MB over the fitted 90 s window: 2.5%, below the threshold
    v = classify(series(lambda t: 80 * MB + 0.02 * MB * t))
    assert v.classification == "steady"


def test_noisy_flat_series_is_steady():
    rng = random.Random(7)
    v = classify(series(lambda t: 100 * MB + rng.gauss(0, 8 * MB)))
    assert v.classification == "steady"


def test_noisy_growth_is_growing():
    rng = random.Random(3)
    v = classify(series(lambda t: 100 * MB + 0.5 * MB * t + rng.gauss(0, 8 * MB)))
    assert v.classification == "growing"
    assert v.fit.slope_low < 0.5 * MB < v.fit.slope_high


def sawtooth(floor_rate):
    # fills 10 MB per second for 8 s, then collects down to a floor that rises by floor_rate per second
    return series(lambda t: 40 * MB + floor_rate * t + 10 * MB * (t % 8))


def test_sawtooth_with_rising_floor():
    v = classify(sawtooth(0.5 * MB))
    assert v.classification == "sawtooth-rising"
    assert v.basis == "sawtooth floor"
    assert v.fit.slope == pytest.approx(0.5 * MB, rel=0.2)


def test_sawtooth_with_flat_floor_is_steady_despite_its_peaks():
    assert classify(sawtooth(0.0)).classification == "steady"


def test_known_gc_floor_rising_is_growing():
    pts = sawtooth(0.5 * MB)
    marks = [i > 0 and pts[i][1] < pts[i - 1][1] for i in range(len(pts))]
    v = classify(pts, gc_marks=marks)
    assert v.classification == "growing"
    assert v.basis == "post-gc floor"


def test_floor_points_without_drops_uses_window_minima():
    pts = series(lambda t: t, n=16)
    assert floor_points(pts) == [pts[i] for i in range(0, 16, 2)]


def test_warmup_is_left_out():
    # a steep start-up ramp, then flat: steady once the warm-up is cut
    pts = series(lambda t: (20 + 5 * min(t, 10)) * MB, n=100)
    assert classify(pts, warmup=15).classification == "steady"


def test_binding_limit_is_the_smallest():
    lim = binding_limit([Limit("machine RAM", 8 << 30), Limit("-Xmx", 256 * MB), None, Limit("RLIMIT_AS", 0)])
    assert lim.name == "-Xmx"


def test_projection_names_the_limit():
    fit = theil_sen(series(lambda t: 100 * MB + 14 * MB / 60 * t, n=20))
    lim = Limit("-Xmx", 256 * MB)
    eta = time_to_limit(fit, 19, lim)
    text = projection_text(fit, lim, eta)
    assert text.startswith("at 14 MB/min, heap reaches -Xmx 256 MB in about ")
    assert "minutes" in text


def test_projection_of_a_flat_series():
    fit = theil_sen(series(lambda t: 10 * MB, n=10))
    assert time_to_limit(fit, 9, Limit("-Xmx", 256 * MB)) is None
    assert "not rising" in projection_text(fit, Limit("-Xmx", 256 * MB), None)


def test_analyse_is_json_ready():
    import json

    out = analyse(series(lambda t: 80 * MB + 0.2 * MB * t), [Limit("-Xmx", 256 * MB, "VM.flags")])
    json.dumps(out)
    assert out["classification"] == "growing"
    assert out["limit"]["name"] == "-Xmx"
    assert out["projection"]["seconds_to_limit"] > 0


def test_limits_of_this_process_include_the_machine_ram_and_xmx():
    import os

    from profkit.heap import limits_for, oom_kills

    limits = {lim.name: lim for lim in limits_for(os.getpid(), max_heap=256 * MB)}
    assert limits["-Xmx"].bytes == 256 * MB
    assert limits["machine RAM"].bytes > 0
    events = oom_kills(os.getpid())
    # this process's cgroup v2 memory.events, read here on its own; None where there is none
    # (cgroup v1, or a hybrid host whose unified hierarchy is not at /sys/fs/cgroup)
    with open("/proc/self/cgroup") as fh:
        unified = [line[3:].strip() for line in fh if line.startswith("0::")]
    source = os.path.join("/sys/fs/cgroup" + unified[0], "memory.events") if unified else None
    if source and os.path.isfile(source):
        with open(source) as fh:
            counts = dict(line.split() for line in fh)
        assert events == {"oom": int(counts["oom"]), "oom_kill": int(counts["oom_kill"]), "source": source}
    else:
        assert events is None

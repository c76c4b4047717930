# SPDX-License-Identifier: Apache-2.0
"""Per-interval series of bench: warm-up rule, drift, histograms, generators' per-second parsers,
the series charts (pure parts; the real generators run in tests/integration/test_bench_steady.py)."""
import json
import pathlib
import random

import pytest

from profkit.errors import UsageError
from profkit.loadgen import LoadRequest
from profkit.loadgen.analysis import analyse
from profkit.loadgen.locust import parse_locust_history
from profkit.loadgen.series import LatencyHistogram, join, rows_from_counts
from profkit.loadgen.steady import detect_warmup, drift, resolve_warmup
from profkit.loadgen.sysbench import connection_args, parse_sysbench_output
from profkit.loadgen.vegeta import parse_vegeta_csv
from profkit.loadgen.wrk import parse_wrk_output
from profkit.reports.series import downsample, series_svgs

DATA = pathlib.Path(__file__).resolve().parents[1] / "data" / "load"
REQ = LoadRequest(url="http://127.0.0.1:1/", duration=30, raw_dir="", connections=4)


def rows(n, rate, lat, noise=0.05, seed=1):
    rnd = random.Random(seed)
    return [{"t": float(i), "dt": 1.0, "requests": int(rate(i)), "rate": rate(i) * (1 + rnd.uniform(-noise, noise)),
             "errors": 0.0, "p99": lat(i) * (1 + rnd.uniform(-noise, noise))} for i in range(n)]


def test_warmup_of_five_seconds_is_found_between_four_and_eight():
    for seed in range(5):
        r = rows(30, lambda i: 100, lambda i: 80.0 if i < 5 else 4.0, seed=seed)
        found, reason = detect_warmup(r)
        assert found is not None and 4 <= found <= 8, (found, reason)


def test_no_warmup_is_zero_and_a_stall_now_and_then_does_not_restart_it():
    r = rows(30, lambda i: 100, lambda i: 400.0 if i % 7 == 3 else 4.0)
    found, _ = detect_warmup(r)
    assert found == 0.0


def test_too_short_or_never_settling_is_not_reached():
    assert detect_warmup(rows(12, lambda i: 100, lambda i: 4.0))[0] is None
    # latency still falling through the whole run: never settles in the band of the second half
    r = rows(40, lambda i: 100, lambda i: 100.0 - 2 * i, noise=0.0)
    found, reason = detect_warmup(r)
    assert found is None, (found, reason)
    # a warm-up that lingers a little (5 s at 50 ms, then 5 s at 4-8 ms, then 2 ms): settled by 4-8 s
    slow = {0: 50, 1: 51, 2: 52, 3: 48, 4: 47, 5: 4.9, 6: 9.6, 7: 3.8, 8: 7.7, 9: 4.6}
    r = rows(24, lambda i: 100, lambda i: slow.get(i, 2.0), noise=0.1)
    for x in r:
        x["p50"] = x.pop("p99")
    found, reason = detect_warmup(r)
    assert found is not None and 4 <= found <= 8, (found, reason)
    wu = resolve_warmup(rows(12, lambda i: 100, lambda i: 4.0), "auto", 12)
    assert wu["reached"] is False and wu["warmup_s"] == 0.0
    assert resolve_warmup(rows(12, lambda i: 100, lambda i: 4.0), "11", 12)["reached"] is False
    assert resolve_warmup(rows(30, lambda i: 100, lambda i: 4.0), "5", 30)["warmup_s"] == 5.0


def test_drift_flags_growing_latency_falling_rate_and_not_noise():
    grow = rows(40, lambda i: 100, lambda i: 5.0 + 0.5 * i, noise=0.1)
    d = {x["metric"]: x for x in drift(grow)}
    assert "p99" in d and d["p99"]["slope"] > 0 and d["p99"]["ci95"][0] > 0 and d["p99"]["unit"] == "ms per s"
    assert "rate" not in d
    fall = rows(40, lambda i: 200 - 2 * i, lambda i: 5.0)
    assert [x["metric"] for x in drift(fall)] == ["rate"]
    # 20% noise, no trend: never flagged
    for seed in range(10):
        assert drift(rows(60, lambda i: 100, lambda i: 5.0, noise=0.2, seed=seed)) == []
    # a real but small trend (5% over the run): its interval may exclude zero, the 10% rule keeps it out
    assert drift(rows(60, lambda i: 100, lambda i: 5.0 * (1 + 0.05 * i / 60), noise=0.0)) == []
    # a sub-millisecond service: a third more over the run, but 0.3 ms in all, is not drift; 2 ms is
    assert drift(rows(20, lambda i: 100, lambda i: 1.0 + 0.3 * i / 20, noise=0.0)) == []
    assert [x["metric"] for x in drift(rows(20, lambda i: 100, lambda i: 1.0 + 2.0 * i / 20, noise=0.0))] == ["p99"]


def test_histogram_percentiles_within_one_percent():
    rnd = random.Random(3)
    values = [rnd.expovariate(1 / 20.0) for _ in range(20000)]
    h = LatencyHistogram()
    for v in values:
        h.add(v)
    values.sort()
    for p in (50, 90, 99, 99.9):
        exact = values[int(len(values) * p / 100) - 1]
        assert abs(h.percentile(p) - exact) / exact < 0.012, p
    assert h.figures()["max"] == round(values[-1], 3)


def _vegeta_csv(path, rate, n, lag_after=None, lag_ms=0.0, latency_ms=2.0):
    began = 1_700_000_000 * 10**9
    step = 10**9 // rate
    with open(path, "w") as fh:
        for seq in range(n):
            ts = began + (seq + 1) * step + (int(lag_ms * 1e6) * (seq - lag_after) if lag_after and seq > lag_after else 0)
            fh.write(f"{ts},200,{int(latency_ms * 1e6)},0,0,,,,{seq},GET,http://127.0.0.1:1/,\n")


def test_vegeta_latency_counts_the_lag_from_the_intended_send_time(tmp_path):
    path = tmp_path / "v.csv"
    _vegeta_csv(path, 100, 1000)  # on schedule
    req = LoadRequest(url="http://127.0.0.1:1/", duration=10, raw_dir="", request_rate=100)
    fig = parse_vegeta_csv(str(path), req)
    assert fig["requests"] == 1000 and fig["rate_sustained"] and len(fig["series"]) == 10
    assert all(r["requests"] == 100 for r in fig["series"])
    assert abs(fig["latency_ms"]["p99"] - 2.0) < 0.05 and fig["closed_loop"] is False
    # vegeta falls behind by 1 ms more per request after request 500: the lag counts
    _vegeta_csv(path, 100, 1000, lag_after=500, lag_ms=1.0)
    fig = parse_vegeta_csv(str(path), req)
    assert fig["latency_ms"]["max"] > 400 and fig["service_latency_ms"]["max"] == pytest.approx(2.0, abs=0.05)
    assert fig["rate_sustained"] is False and fig["send_lag_ms"]["p99"] > 100


def test_wrk_series_from_the_hook_line():
    text = ('profkit-wrk: {"requests":300,"duration_us":3000000,"bytes":1,"errors":{"connect":0,"read":0,"write":0,'
            '"status":2,"timeout":0},"latency_us":{"min":1,"mean":10,"max":100,"stdev":1},"percentiles_us":[[50,10]]}\n'
            'profkit-wrk-series: {"responses":{"100":10,"101":100,"102":150,"103":40},"errors":{"102":2}}\n')
    fig = parse_wrk_output(text, REQ)
    assert [(r["epoch"], r["rate"], r["errors"]) for r in fig["series"]] == [(101.0, 100.0, 0.0), (102.0, 150.0, 2.0)]
    assert fig["series"][0]["mean"] == pytest.approx(40.0)  # 4 connections ÷ 100/s
    assert rows_from_counts({}, {}) == []


def test_sysbench_recorded_output():
    text = (DATA / "sysbench-oltp_write_only.txt").read_text()
    fig = parse_sysbench_output(text, REQ, started_epoch=1000.0)
    assert fig["requests"] > 0 and fig["rate"] > 0 and fig["latency_ms"]["p99"] > fig["latency_ms"]["p50"] > 0
    assert [r["epoch"] for r in fig["series"]] == [1000.0, 1001.0, 1002.0, 1003.0]
    first = fig["series"][0]
    assert first["tps"] == 162.52 and first["p99"] == 61.08 and first["errors"] == 0.0
    assert first["mean"] == pytest.approx(4000 / 162.52, rel=1e-3)
    args, db = connection_args("postgresql://sbtest@127.0.0.1:5433/bench")
    assert "--pgsql-port=5433" in args and "--pgsql-user=sbtest" in args and db == "bench"
    with pytest.raises(UsageError, match="PGPASSFILE"):
        connection_args("postgresql://sbtest:hunter2@127.0.0.1:5433/bench")


def test_locust_history_rows():
    head = "Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,99%,Total Request Count,Total Failure Count\n"
    body = "".join(f"{100 + i},2,,Aggregated,0,0,{5 + i},{9 + i},{i * 50},{i}\n" for i in range(6))
    r = parse_locust_history(head + body)
    assert [x["rate"] for x in r] == [50.0] * 4 and r[0]["errors"] == 1.0 and r[0]["p99"] == 11.0


def test_analyse_cuts_the_warmup_and_keeps_the_whole_run(tmp_path):
    gen = [{"epoch": 1000.0 + i, "dt": 1.0, "requests": 100, "rate": 100.0, "errors": 0.0,
            "p99": 90.0 if i < 5 else 5.0, "_hist": _hist(90.0 if i < 5 else 5.0)} for i in range(30)]
    fig = {"generator": "x", "requests": 3000, "rate": 100.0, "errors": {}, "error_count": 0, "error_pct": 0.0,
           "latency_ms": {"p99": 90.0}, "distribution": [], "closed_loop": False, "series": gen}
    warnings = []
    analyse(fig, t0_epoch=1000.0, duration=30, warmup="auto", warn=warnings.append)
    assert 4 <= fig["warmup_s"] <= 8 and fig["latency_ms"]["p99"] < 10 and fig["whole_run"]["latency_ms"]["p99"] == 90
    assert fig["drift"] == [] and "_hist" not in json.dumps(fig) and not warnings
    assert fig["series"][0]["t"] == 0.0


def _hist(v):
    h = LatencyHistogram()
    for _ in range(100):
        h.add(v)
    return h


def test_join_puts_metrics_and_probe_fields_on_the_rows():
    gen = [{"epoch": 10.5 + i, "dt": 1.0, "rate": 1.0} for i in range(3)]
    metrics = [{"t": 0.6, "cpu_pct": 50.0, "rss": 10}, {"t": 1.6, "cpu_pct": 30.0, "rss": 20}]
    probe = [{"t": 1.7, "wal.wal_bytes": 123.0}]
    out = join(gen, 10.0, metrics=metrics, probes=[probe])
    assert [r["t"] for r in out] == [0.5, 1.5, 2.5]
    assert out[0]["cpu_pct"] == 50.0 and out[1]["rss"] == 20 and out[1]["wal.wal_bytes"] == 123.0


def test_downsample_keeps_a_single_spike_and_bounds_points():
    pts = [(float(i), 1.0) for i in range(3600)]
    pts[1234] = (1234.0, 500.0)
    out = downsample(pts, 300)
    assert len(out) <= 600 and max(v for _, v in out) == 500.0
    load = {"series": [{"t": float(i), "rate": 1.0 + i % 3, "p99": 2.0, "wal.<b>": 1.0 + i % 2} for i in range(3600)],
            "warmup_s": 60}
    svgs = series_svgs(load)
    assert len(svgs) >= 3 and all(s.count("<svg") == 1 for s in svgs)
    assert "<b>" not in "".join(svgs) and "&lt;b&gt;" in "".join(svgs) and "warm-up" in svgs[0]


def test_request_rate_warmup_and_probe_specs_parse():
    from profkit.cli.bench import parse_request_rate, parse_warmup
    from profkit.probes import parse_spec
    from profkit.probes.postgres import check_dsn

    assert parse_request_rate("200/s") == 200 and parse_request_rate("12000/m") == 200
    assert parse_request_rate("1/ms") == 1000 and parse_request_rate("50") == 50 and parse_request_rate(None) is None
    for bad in ("fast", "0/s", "-5", "3/y"):
        with pytest.raises(UsageError):
            parse_request_rate(bad)
    assert parse_warmup("auto") == "auto" and parse_warmup("0") == "0" and parse_warmup("1m") == "60"
    with pytest.raises(UsageError):
        parse_warmup("soon")
    assert parse_spec("postgres=postgresql://u@127.0.0.1/db") == ("postgres", "postgresql://u@127.0.0.1/db")
    with pytest.raises(UsageError) as e:
        parse_spec("postgres")
    with pytest.raises(UsageError) as e:
        check_dsn("postgresql://u:s3cret@127.0.0.1/db")
    assert "s3cret" not in str(e.value)
    with pytest.raises(UsageError):
        check_dsn("host=127.0.0.1 password=s3cret")
    with pytest.raises(UsageError, match="loopback"):
        check_dsn("postgresql://u@db.example.com/db")
    check_dsn("host=/tmp/sock dbname=x")  # a Unix socket is local


def test_closed_loop_generators_refuse_a_request_rate_and_unknown_options():
    from profkit.loadgen.sysbench import SysbenchGenerator
    from profkit.loadgen.wrk import WrkGenerator

    with pytest.raises(UsageError, match="open-loop"):
        WrkGenerator().validate(LoadRequest(url="http://127.0.0.1:1/", duration=1, raw_dir="", request_rate=5))
    with pytest.raises(UsageError, match="does not know"):
        WrkGenerator().validate(LoadRequest(url="http://127.0.0.1:1/", duration=1, raw_dir="", options=(("x", "1"),)))
    sb = SysbenchGenerator()
    with pytest.raises(UsageError, match="script"):
        sb.validate(LoadRequest(url="postgresql://u@127.0.0.1/db", duration=1, raw_dir="",
                                options=(("script", "rm -rf"),)))
    req = LoadRequest(url="postgresql://u@127.0.0.1:5433/db", duration=7.4, raw_dir="", connections=3,
                      options=(("tables", "2"), ("table_size", "100")))
    sb.validate(req)
    argv = sb.command(req)
    assert argv[:3] == ["sysbench", "oltp_write_only", "--db-driver=pgsql"] and "--threads=3" in argv
    assert "--time=7" in argv and "--tables=2" in argv and "--table_size=100" in argv and argv[-1] == "run"


def test_sampler_counters_become_rates_and_late_samples_fill_their_interval():
    from profkit.probes import SamplerProbe

    p = SamplerProbe()
    p.counters = ("wal.wal_bytes",)
    assert p.rates(1.0, {"wal.wal_bytes": 100.0, "checkpointer.writing": 1.0}) == {"t": 1.0, "checkpointer.writing": 1.0}
    assert p.rates(3.0, {"wal.wal_bytes": 500.0, "checkpointer.writing": 0.0}) == \
        {"t": 3.0, "wal.wal_bytes": 200.0, "checkpointer.writing": 0.0}
    # a counter reset (server restart) is not a negative rate
    assert p.rates(4.0, {"wal.wal_bytes": 0.0})["wal.wal_bytes"] == 0.0
    gen = [{"epoch": 10.0 + i, "dt": 1.0, "rate": 1.0} for i in range(3)]
    out = join(gen, 10.0, probes=[[{"t": 0.5, "x": 1.0}, {"t": 2.2, "x": 3.0}]])
    assert [r.get("x") for r in out] == [1.0, 3.0, 3.0]  # 1.0-2.0 had no sample: the one at 2.2 fills it

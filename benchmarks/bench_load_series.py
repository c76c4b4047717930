#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""What bench's per-interval series cost (loopback only, bounded).

    python benchmarks/bench_load_series.py [--seconds 8] [--hours 1]

1. Bookkeeping per interval, as a share of one core at 1 s intervals:
   a. wrk's response() hook (counting responses per second in Lua): wrk's own CPU time per
      response with profkit's hooks against wrk with the done() hook alone (its peer: what bench
      ran before), same server, same run, alternating; the hook's extra CPU at the measured rate
      is the cost per second.
   b. profkit's side: the analysis of a 1-hour series (3,600 vegeta rows with their 1%-bucket
      histograms: join with metrics, warm-up, steady figures, drift) — CPU seconds ÷ 3,600.
   c. the --probe sampler's row bookkeeping (counters to rates, 30 fields) per sample, and with
      --dsn the postgres probe's whole sample (three catalog views and pg_stat_activity).
2. The load section of report.html for a 1-hour run (3,600 points per series, downsampled for
   drawing), and summary.md's: wall time, best of 3; the 1 s target.

Writes benchmarks/results/load_series.json.
"""
import argparse
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from profkit.loadgen.analysis import analyse  # noqa: E402
from profkit.loadgen.series import LatencyHistogram  # noqa: E402

DONE_ONLY = """
done = function(summary, latency, requests)
  io.write(string.format("requests %d\\n", summary.requests))
end
"""


def serve(port):
    import http.server
    import socketserver

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "3")
            self.end_headers()
            self.wfile.write(b"ok\n")

        def log_message(self, *a):
            pass

    class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address):
            pass  # wrk closes its connections at the end: resets are expected

    srv = S(("127.0.0.1", port), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def wrk_cpu_per_response(url, script, seconds):
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(["wrk", "-t1", "-c4", f"-d{seconds}s", "-s", script, url], capture_output=True, text=True,
                         timeout=seconds + 30).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    import re

    m = re.search(r"(\d+) requests in", out)
    n = int(m.group(1)) if m else 0
    return cpu / max(n, 1), n / seconds


def bench_wrk(seconds, pairs=3):
    if not shutil.which("wrk"):
        return {"error": "wrk is not installed (apt-get install wrk)"}
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = serve(port)
    url = f"http://127.0.0.1:{port}/"
    tmp = tempfile.mkdtemp()
    done_only = os.path.join(tmp, "done.lua")
    with open(done_only, "w") as fh:
        fh.write(DONE_ONLY)
    hooks = os.path.join(REPO, "profkit", "loadgen", "wrk_report.lua")
    rows = []
    for _ in range(pairs):
        rows.append(("done() only", *wrk_cpu_per_response(url, done_only, seconds)))
        rows.append(("profkit hooks", *wrk_cpu_per_response(url, hooks, seconds)))
    srv.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)
    base = sorted(r[1] for r in rows if r[0] == "done() only")[pairs // 2]
    ours = sorted(r[1] for r in rows if r[0] == "profkit hooks")[pairs // 2]
    rate = sorted(r[2] for r in rows if r[0] == "profkit hooks")[pairs // 2]
    extra = ours - base  # within the noise it can come out negative: reported as measured
    return {"cpu_us_per_response_done_only": round(base * 1e6, 2), "cpu_us_per_response_profkit": round(ours * 1e6, 2),
            "rate_per_s": round(rate, 1), "hook_core_pct_at_this_rate": round(100 * extra * rate, 3),
            "hook_us_per_response": round(extra * 1e6, 2),
            "hook_core_pct_at_10k_per_s": round(100 * extra * 10000, 3)}


def hour_series(hours):
    n = int(3600 * hours)
    rnd = random.Random(1)
    rows, metrics = [], []
    for i in range(n):
        h = LatencyHistogram()
        for _ in range(200):
            h.add(rnd.lognormvariate(1.0, 0.5))
        row = {"epoch": 1000.0 + i, "dt": 1.0, "requests": 200, "rate": 200.0, "errors": 0.0,
               "p50": h.percentile(50), "p99": h.percentile(99), "mean": h.total / h.count, "_hist": h}
        # the fields of a --probe postgres sampler (PostgreSQL 15: 19 counters and 2 derived)
        row.update({f"bgwriter.f{k}": rnd.random() * 100 for k in range(10)})
        row.update({f"wal.f{k}": rnd.random() * 1e6 for k in range(8)})
        row.update({"checkpoints": float(i % 30 == 0), "checkpointer.writing": 1.0, "wal.wal_bytes": rnd.random() * 1e6})
        rows.append(row)
        metrics.append({"t": i + 0.5, "cpu_pct": 20 + rnd.random(), "rss": 50 << 20})
    return rows, metrics


def bench_analysis(hours):
    rows, metrics = hour_series(hours)
    fig = {"generator": "vegeta", "requests": len(rows) * 200, "rate": 200.0, "errors": {}, "error_count": 0,
           "error_pct": 0.0, "latency_ms": {}, "distribution": [], "closed_loop": False, "series": rows}
    t0 = time.process_time()
    analyse(fig, t0_epoch=1000.0, duration=len(rows), warmup="auto", metrics=metrics)
    cpu = time.process_time() - t0
    return fig, {"intervals": len(rows), "cpu_s": round(cpu, 3), "cpu_ms_per_interval": round(1000 * cpu / len(rows), 3),
                 "core_pct_at_1s": round(100 * cpu / len(rows), 4)}


def bench_sampler():
    from profkit.probes import SamplerProbe

    p = SamplerProbe()
    p.counters = tuple(f"c{i}" for i in range(30))
    t0 = time.process_time()
    n = 20000
    for i in range(n):
        p.rates(float(i), {k: float(i * 7) for k in p.counters})
    cpu = time.process_time() - t0
    return {"samples": n, "cpu_us_per_sample": round(1e6 * cpu / n, 2), "core_pct_at_1s": round(100 * cpu / n, 5)}


def bench_postgres_sample(dsn, n=30):
    """The postgres probe's own CPU per sample (this process: psycopg and the row bookkeeping)."""
    from profkit.probes.postgres import PostgresProbe

    p = PostgresProbe(dsn)
    p.open(None)
    t0, w0 = time.process_time(), time.perf_counter()
    for i in range(n):
        p.rates(float(i), p.sample())
    cpu, wall = time.process_time() - t0, time.perf_counter() - w0
    p.close()
    return {"samples": n, "views": p.views, "cpu_ms_per_sample": round(1000 * cpu / n, 3),
            "wall_ms_per_sample": round(1000 * wall / n, 3), "core_pct_at_1s": round(100 * cpu / n, 4)}


def bench_render(fig):
    from profkit.reports import render_report  # noqa: F401 - the jinja2 environment as reports build it
    from profkit.reports.load import html_section, markdown_section
    from profkit.rundir import RunDir
    from profkit.runrecord import RunRecord, TargetRecord
    from jinja2 import Environment, PackageLoader, select_autoescape

    tmp = tempfile.mkdtemp()
    run = RunDir.create(os.path.join(tmp, "run"), RunRecord(targets=[TargetRecord(1, "x", "python")]))
    run.write_json("load.json", fig)
    env = Environment(loader=PackageLoader("profkit.reports", "templates"),
                      autoescape=select_autoescape(["html", "svg", "xml", "j2"], default=True))
    times, cpus = [], []
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        html = html_section(run, env)
        md = markdown_section(run)
        times.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    shutil.rmtree(tmp, ignore_errors=True)
    return {"points_per_series": len(fig["series"]), "fields_per_row": len(fig["series"][0]),
            "charts": html.count("<svg"), "best_wall_s": round(min(times), 3), "best_cpu_s": round(min(cpus), 3),
            "html_bytes": len(html), "markdown_bytes": len(md), "target_s": 1.0,
            "load_avg_1m": round(os.getloadavg()[0], 1)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--dsn", default=None, help="a loopback PostgreSQL DSN: also time the postgres probe's sample "
                                                "(password from PGPASSFILE), e.g. from examples/database/pgcluster.py")
    args = ap.parse_args()
    res = {"wrk_hook": bench_wrk(args.seconds)}
    fig, res["analysis"] = bench_analysis(args.hours)
    res["sampler"] = bench_sampler()
    if args.dsn:
        res["postgres_sample"] = bench_postgres_sample(args.dsn)
    res["render"] = bench_render(fig)
    print(json.dumps(res, indent=2))
    out = os.path.join(REPO, "benchmarks", "results")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "load_series.json"), "w") as fh:
        json.dump(res, fh, indent=2)


if __name__ == "__main__":
    main()

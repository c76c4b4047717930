#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Speed of ``profkit traces`` on 5,000 traces of 20 spans each, beyond fetching them from Jaeger.

    python benchmarks/bench_traces.py [--traces 5000] [--spans 20] [--repeat 3]

Starts a real Jaeger (``~/.cache/profkit/bin/jaeger-1.76.0``, built by ``.ci/tools``; in-memory
storage, loopback), sends it N synthetic traces of S spans (four services, sequential and
parallel calls, a few clock-skewed children) over OTLP/HTTP, half in a "base" minute and half,
with one call slower, in a "head" minute, then runs the comparison in-process:

  * base/head: ``run_traces(--base --head)`` over all N traces;
  * slow/fast: ``run_traces(--slow p99 --fast p50 --range)`` over both minutes (all N traces).

It reports, best of --repeat: Jaeger's own query time (the HTTP requests, as profkit waits for
them), profkit's time beyond that (parsing the OTLP JSON, critical paths, segments, flame graphs,
reports) and the whole command as a process (``python -m profkit traces``). Target: under 3 s
beyond fetching. Results go to benchmarks/results/traces.json.

On a shared, loaded machine wall time swings; ``parse`` is therefore also measured alone, in CPU
time (``time.process_time``, best of --repeat): Jaeger's answers to the base range are read once
and kept, then parsed again and again (``json.loads`` alone, and the whole ``parse_answer``).
"""
import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [REPO, os.path.join(REPO, "tests"), os.path.join(REPO, "tests", "integration")]

SERVICES = ("gateway", "checkout", "payment", "inventory")


def make_trace(rnd, t0, spans, slower):
    """One trace of ``spans`` spans starting at t0 (ns): a root, a handler, then calls."""
    tid = f"{rnd.getrandbits(128):032x}"
    ids = [f"{rnd.getrandbits(64):016x}" for _ in range(spans)]
    out = [{"service": "gateway", "trace_id": tid, "span_id": ids[0], "parent": "", "name": "GET /checkout",
            "start": t0, "end": 0},
           {"service": "checkout", "trace_id": tid, "span_id": ids[1], "parent": ids[0], "name": "GET /checkout",
            "start": t0 + 200_000, "end": 0}]
    cursor = t0 + 400_000
    prev = None
    for i in range(2, spans):
        svc = SERVICES[1 + i % 3]
        dur = rnd.randint(200_000, 3_000_000) + (40_000_000 if slower and i == 7 else 0)
        if i % 4 == 0 and prev is not None:  # a call made inside the previous one
            start = prev["start"] + (prev["end"] - prev["start"]) // 4
            s = {"service": svc, "trace_id": tid, "span_id": ids[i], "parent": prev["span_id"], "name": f"op{i % 6}",
                 "start": start, "end": start + (prev["end"] - prev["start"]) // 2}
        else:
            start = cursor - (dur // 2 if i % 5 == 0 else 0)  # some calls overlap the previous one
            s = {"service": svc, "trace_id": tid, "span_id": ids[i], "parent": ids[1], "name": f"op{i % 6}",
                 "start": start, "end": start + dur}
            cursor = start + dur + 50_000
            prev = s
        if i == 11 and rnd.random() < 0.05:
            s["end"] += 300_000  # a few children past their parent's end (clock skew)
        out.append(s)
    out[1]["end"] = cursor + 100_000
    out[0]["end"] = cursor + 300_000
    return out


def parse_only(url, lo, hi, repeat):
    """CPU seconds to parse Jaeger's answers for [lo, hi) (read once, kept in memory), best of ``repeat``."""
    from profkit.http import Client
    from profkit.traces import jaeger as jq

    bodies = []

    class Keeping(Client):
        def get(self, path, params=None, **kw):
            resp = super().get(path, params, **kw)
            bodies.append(resp.body)
            return resp

    # (a checkout from before parse_answer existed parses as it did then: json.loads, then parse_otlp)
    parse = getattr(jq, "parse_answer", None) or (lambda b, out, res, known: jq.parse_otlp(json.loads(b), out, res, known))
    try:
        from profkit.fastjson import loads as fast_loads
    except ImportError:
        fast_loads = None
    fetched = jq.fetch_traces(Keeping(url, name="Jaeger", timeout=60.0), "gateway", lo, hi, max_traces=100_000)
    spans = sum(len(t.spans) for t in fetched.traces.values())
    best = {}
    for _ in range(repeat):
        c = time.process_time()
        for b in bodies:
            json.loads(b)
        loads = time.process_time() - c
        fast = None
        if fast_loads is not None:
            c = time.process_time()
            for b in bodies:
                fast_loads(b)
            fast = round(time.process_time() - c, 3)
        c = time.process_time()
        for b in bodies:
            parse(b, {}, {}, ())
        whole = time.process_time() - c
        if not best or whole < best["parse_cpu_s"]:
            best = {"json_loads_cpu_s": round(loads, 3), "fastjson_loads_cpu_s": fast, "parse_cpu_s": round(whole, 3)}
    best.update({"answers": len(bodies), "bytes": sum(map(len, bodies)), "traces": len(fetched.traces), "spans": spans})
    return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", type=int, default=5000)
    ap.add_argument("--spans", type=int, default=20)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    from servers import post_spans, start_jaeger

    from profkit.timeparse import TimeRange
    from profkit.traces import run_traces

    rnd = random.Random(11)
    now = time.time_ns()
    base_lo, head_lo = now - 600 * 10**9, now - 300 * 10**9
    spans = []
    half = args.traces // 2
    for i in range(args.traces):
        lo = base_lo if i < half else head_lo
        spans += make_trace(rnd, lo + int(i % half * 60e9 / half), args.spans, slower=i >= half)
    jaeger = start_jaeger()
    tmp = tempfile.mkdtemp(prefix="bench-traces-")
    try:
        t0 = time.perf_counter()
        post_spans(jaeger.otlp_http, spans, chunk=4000)
        ingest = time.perf_counter() - t0

        def rng(lo):
            return TimeRange(datetime.fromtimestamp(lo / 1e9, timezone.utc), datetime.fromtimestamp((lo + 61e9) / 1e9, timezone.utc))

        time.sleep(2)  # the batch processor and the store
        from profkit.http import Client
        from profkit.traces.jaeger import fetch_traces

        deadline = time.monotonic() + 60
        while True:  # every trace stored before anything is timed (a loaded machine ingests slowly)
            stored = len(fetch_traces(Client(jaeger.url, name="Jaeger", timeout=60.0), "gateway", base_lo,
                                      head_lo + 61 * 10**9, max_traces=10 * args.traces).traces)
            if stored >= args.traces or time.monotonic() > deadline:
                break
            time.sleep(1)
        print(f"stored: {stored} of {args.traces} traces", flush=True)
        results = {}
        results["parse (base range, CPU)"] = parse_only(jaeger.url, base_lo, base_lo + 61 * 10**9, args.repeat)
        print(f"parse only: {results['parse (base range, CPU)']}")
        for label, kw in (("base/head", dict(base=rng(base_lo), head=rng(head_lo))),
                          ("slow/fast", dict(range_=TimeRange(rng(base_lo).start, rng(head_lo).end), slow=99.0, fast=50.0))):
            best = None
            for k in range(args.repeat):
                out = os.path.join(tmp, f"{label.replace('/', '-')}-{k}")
                t, c = time.perf_counter(), time.process_time()
                doc = run_traces(jaeger.url, "gateway", out, max_traces=args.traces, **kw)
                total, cpu = time.perf_counter() - t, time.process_time() - c
                f = doc["fetch"]
                row = {"total_s": round(total, 3), "cpu_s": round(cpu, 3), "jaeger_s": f["jaeger_seconds"],
                       "beyond_fetching_s": round(total - f["jaeger_seconds"], 3), "parse_s": f["parse_seconds"],
                       "analyse_s": f["analyse_seconds"], "write_s": f.get("write_seconds"), "requests": f["requests"],
                       "traces": doc["base"]["count"] + doc["head"]["count"], "top": doc["segments"][0]["path"][-1]}
                if best is None or row["beyond_fetching_s"] < best["beyond_fetching_s"]:
                    best = row
            results[label] = best
            print(f"{label}: {best}")
        out = os.path.join(tmp, "cli")
        t = time.perf_counter()
        p = subprocess.run([sys.executable, "-m", "profkit", "traces", "--jaeger", jaeger.url, "--service", "gateway",
                            "--base", str(rng(base_lo)), "--head", str(rng(head_lo)), "-o", out, "-q"],
                           capture_output=True, text=True, timeout=600)
        cli = time.perf_counter() - t
        assert p.returncode == 0, p.stderr
        results["cli_process_s"] = round(cli, 3)
        results["cli_jaeger_s"] = json.load(open(os.path.join(out, "traces.json")))["fetch"]["jaeger_seconds"]
        results["ingest_s"] = round(ingest, 3)
        results["stored_traces"] = stored
        results["load_average_1m"] = round(os.getloadavg()[0], 2)
        results["traces"], results["spans_per_trace"] = args.traces, args.spans
        print(f"profkit traces (process): {cli:.2f} s, of which Jaeger {results['cli_jaeger_s']:.2f} s; "
              f"verdict: {p.stdout.strip()}")
        os.makedirs(os.path.join(REPO, "benchmarks", "results"), exist_ok=True)
        with open(os.path.join(REPO, "benchmarks", "results", "traces.json"), "w") as fh:
            json.dump(results, fh, indent=2)
    finally:
        jaeger.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

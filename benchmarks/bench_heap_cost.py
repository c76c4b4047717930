#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""What ``profkit heap`` costs its target (examples, loopback only, bounded).

    python benchmarks/bench_heap_cost.py [--seconds 10] [--pairs 3] [--load-seconds 12]

1. Sampling cost (the 1% budget): the target's own CPU time (utime+stime from /proc/PID/stat)
   over --seconds windows with and without profkit heap's samplers running — psutil RSS/USS
   once a second, and for the JVM the one long-running ``jstat -gc`` — in alternating pairs
   (profkit.overhead.alternate), on the idle JVM service and the idle Python API worker. The
   samplers' own CPU (this process and jstat) is reported too: it is not the target's.
2. memray's overhead (it runs inside the target): throughput of the Python API worker under
   ``load.py`` (2 connections, /items?limit=100) with and without ``memray attach`` (as profkit
   heap runs it), in alternating pairs.

Writes benchmarks/results/heap_cost.json.
"""
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import cpu_seconds  # noqa: E402
from profkit.overhead import alternate  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TICK = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(argv, log, env=None):
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                            env={**os.environ, **(env or {})})


def stop(proc):
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def target_cpu_pct(pid: int, seconds: float, sampling: bool, runtime: str, raw_dir: str, own: list) -> float:
    """The target's CPU % of one core over ``seconds``, with or without the heap samplers."""
    from collectors.base import RecordRequest
    from collectors.psutil_metrics import PsutilCollector, PsutilOptions

    jstat = metrics = None
    me0 = time.process_time()
    if sampling:
        metrics = PsutilCollector().record(RecordRequest((pid,), runtime, "heap", 1, seconds + 5, raw_dir,
                                                         PsutilOptions(interval=1.0, children=False, uss=True)))
        if runtime == "jvm":
            from collectors.jvm_heap import JstatStream

            jstat = JstatStream(pid, 1.0, seconds + 5, raw_dir)
    c0, t0 = cpu_seconds(pid), time.monotonic()
    time.sleep(seconds)
    c1, t1 = cpu_seconds(pid), time.monotonic()
    if sampling:
        js_cpu = 0.0
        if jstat is not None:
            with open(f"/proc/{jstat.tool.pid}/stat") as fh:
                rest = fh.read().rsplit(")", 1)[1].split()
            js_cpu = (int(rest[11]) + int(rest[12])) / TICK
            jstat.stop()
        metrics.stop()
        metrics.finish()
        own.append({"profkit_pct": 100 * (time.process_time() - me0) / (t1 - t0), "jstat_pct": 100 * js_cpu / (t1 - t0)})
    return 100 * (c1 - c0) / (t1 - t0)


def sampling_cost(pid: int, runtime: str, seconds: float, pairs: int) -> dict:
    own: list = []
    with tempfile.TemporaryDirectory() as tmp:
        res = alternate(pairs, lambda: target_cpu_pct(pid, seconds, False, runtime, tmp, own),
                        lambda: target_cpu_pct(pid, seconds, True, runtime, tmp, own))
    import statistics

    diffs = [p - b for b, p in zip(res.baseline, res.profiled)]
    return {"target_cpu_pct": {"without": res.baseline, "with_samplers": res.profiled,
                               "median_added_points": statistics.median(diffs)},
            "samplers_own_cpu_pct_mean": {k: sum(o[k] for o in own) / len(own) for k in own[0]} if own else None}


def rps(url: str, seconds: float) -> float:
    out = subprocess.run([sys.executable, os.path.join(REPO, "examples", "load", "load.py"), url, str(seconds), "2",
                          "--json"], capture_output=True, text=True, timeout=seconds + 60)
    return json.loads(out.stdout.strip().splitlines()[-1])["rps"]


def memray_cost(worker: int, base: str, seconds: float, pairs: int, raw_dir: str) -> dict:
    url = base + "/items?limit=100"
    counter = [0]

    def with_memray() -> float:
        counter[0] += 1
        out = os.path.join(raw_dir, f"m{counter[0]}.bin")
        # tracker ends by itself 1 s after the load (never detached)
        subprocess.run([sys.executable, "-m", "memray", "attach", "--method", "lldb", "--trace-python-allocators",
                        "--aggregate", "--duration", str(int(seconds) + 1), "-f", "-o", out, str(worker)],
                       capture_output=True, timeout=60, check=True)
        r = rps(url, seconds)
        time.sleep(3)  # let the tracker end before the next attach
        return r

    res = alternate(pairs, lambda: rps(url, seconds), with_memray)
    return {"throughput_rps": {"without": res.baseline, "with_memray": res.profiled,
                               "median_loss_pct": res.median_loss, "spread_points": res.spread}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--load-seconds", type=float, default=12.0)
    ap.add_argument("--memray-pairs", type=int, default=2)
    args = ap.parse_args()
    results = {"seconds": args.seconds, "pairs": args.pairs}
    with tempfile.TemporaryDirectory() as tmp:
        # JVM service, idle
        log = open(os.path.join(tmp, "jvm.log"), "wb")
        jvm = start(["bash", os.path.join(REPO, "examples", "jvm_service", "run.sh"), "--port", "0"], log,
                    env={"BUILD_DIR": os.path.join(tmp, "classes")})
        try:
            deadline = time.monotonic() + 60
            while not re.search(r"listening on", open(log.name).read()) and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(3)
            results["jvm_sampling"] = sampling_cost(jvm.pid, "jvm", args.seconds, args.pairs)
        finally:
            stop(jvm)
        # Python API worker: idle sampling, then memray under load
        port = free_port()
        log = open(os.path.join(tmp, "api.log"), "wb")
        api = start(["bash", os.path.join(REPO, "examples", "python_api", "serve.sh"), "--port", str(port)], log)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            worker = None
            while worker is None and time.monotonic() < deadline:
                try:
                    worker = json.load(urllib.request.urlopen(base + "/health", timeout=2))["pid"]
                except OSError:
                    time.sleep(0.2)
            results["python_sampling"] = sampling_cost(worker, "python", args.seconds, args.pairs)
            results["memray"] = memray_cost(worker, base, args.load_seconds, args.memray_pairs, tmp)
        finally:
            stop(api)
    os.makedirs(os.path.join(REPO, "benchmarks", "results"), exist_ok=True)
    path = os.path.join(REPO, "benchmarks", "results", "heap_cost.json")
    with open(path, "w") as fh:
        json.dump(results, fh, indent=2, default=str)
    print(json.dumps(results, indent=2, default=str))
    print(f"wrote {path}", file=sys.stderr)


if __name__ == "__main__":
    main()

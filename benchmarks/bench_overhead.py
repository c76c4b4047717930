#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Profiler overhead on the Flask example under a fixed wrk load (loopback only, bounded).

    python benchmarks/bench_overhead.py [--pairs 5] [--seconds 10] [--rate 100]

Starts examples/python_api behind gunicorn (one sync worker) on 127.0.0.1, then for each of
--pairs pairs runs wrk once without and once with the profiler, alternating the order
(profkit.overhead.alternate). Two profiled variants are measured the same way:

  * py-spy alone:          py-spy record --pid WORKER --rate R --format raw
  * profkit attach:        profkit attach --pid WORKER --rate R (py-spy + psutil + outputs)

Reports the median throughput loss and its spread for each, the difference between them (the
cost profkit adds on top of py-spy), and profkit's own CPU use while attached (its process
alone, without the py-spy child) as a percentage of one core.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from profkit.overhead import alternate  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wrk(url: str, seconds: int, conns: int) -> float:
    out = subprocess.run(["wrk", "-t", "1", "-c", str(conns), "-d", f"{seconds}s", "--timeout", "5s", url],
                         capture_output=True, text=True, check=True, timeout=seconds + 30).stdout
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise SystemExit(f"wrk output not understood:\n{out}")
    return float(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--connections", type=int, default=4)
    a = ap.parse_args()
    for tool in ("wrk", "py-spy"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found (apt-get install wrk; pip install py-spy)")
    port = free_port()
    server = subprocess.Popen(["bash", os.path.join(REPO, "examples", "python_api", "serve.sh"), "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}"
    url = f"{base_url}/items?limit=20"
    try:
        for _ in range(100):
            try:
                worker = json.load(urllib.request.urlopen(f"{base_url}/health", timeout=1))["pid"]
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise SystemExit("the example did not start")
        wrk(url, 3, a.connections)  # warm-up
        load = lambda: wrk(url, a.seconds, a.connections)  # noqa: E731
        tmp = tempfile.mkdtemp(prefix="profkit-overhead-")
        own_cpu = []

        def with_pyspy() -> float:
            spy = subprocess.Popen(["py-spy", "record", "--pid", str(worker), "--rate", str(a.rate), "--duration",
                                    str(a.seconds + 2), "--format", "raw", "-o", os.path.join(tmp, "spy.txt")],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)
            try:
                return load()
            finally:
                spy.send_signal(signal.SIGINT)
                spy.wait(30)

        def with_profkit() -> float:
            import psutil

            run = os.path.join(tmp, f"run-{time.monotonic_ns()}")
            pk = subprocess.Popen([sys.executable, "-m", "profkit", "attach", "--pid", str(worker), "--rate", str(a.rate),
                                   "--duration", str(a.seconds + 1), "-o", run, "-q"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            proc = psutil.Process(pk.pid)
            # Measure from the moment py-spy runs under profkit: its start-up (imports) is not "attached".
            deadline = time.monotonic() + 10
            while not proc.children() and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.2)
            c0, t0 = proc.cpu_times(), time.monotonic()
            try:
                return load()
            finally:
                c1, t1 = proc.cpu_times(), time.monotonic()
                own_cpu.append(100.0 * ((c1.user + c1.system) - (c0.user + c0.system)) / (t1 - t0))
                pk.wait(60)

        spy_res = alternate(a.pairs, load, with_pyspy)
        pk_res = alternate(a.pairs, load, with_profkit)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(10)
    print(f"load: wrk -t1 -c{a.connections} -d{a.seconds}s {url} (one gunicorn sync worker), py-spy at {a.rate} Hz\n")
    print(f"py-spy alone:    {spy_res.describe()}")
    print(f"profkit attach:  {pk_res.describe()}")
    print(f"profkit adds {pk_res.median_loss - spy_res.median_loss:+.1f} points over py-spy alone")
    print(f"profkit's own CPU while attached (excluding py-spy): median "
          f"{sorted(own_cpu)[len(own_cpu) // 2]:.2f}% of one core (max {max(own_cpu):.2f}%)")


if __name__ == "__main__":
    main()

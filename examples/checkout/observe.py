#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""The checkout chain with Prometheus and Jaeger: good vs bad deploy, as an incident is worked.

    observe.py [OUT_DIR] [--seconds 10]        (default OUT_DIR: runs/checkout-observe)

Starts Prometheus (Debian's ``prometheus``; 1 s scrapes, storage in a temporary directory) and
Jaeger v2 (``~/.cache/profkit/bin/jaeger-1.76.0``, built by ``.ci/tools``; in-memory storage), all
on loopback with free ports; then the chain twice — the good deploy and the bad one — each loaded
for SECONDS by a small closed loop, in its own time window; then asks, in order:

  1. ``profkit red``    did a route's rate, errors or latency change?   → OUT_DIR/red.json
  2. ``profkit traces`` which span of which service grew?               → OUT_DIR/traces/
  3. ``profkit traces --slow p99 --fast p50`` within the bad window     → OUT_DIR/slow-fast/
  4. ``profkit bench --target …`` over the bad chain: which code?      → OUT_DIR/bench/
     (all three services profiled by py-spy in wall mode, each named by --target SERVICE=PID;
     RED → slow vs fast traces → the top segment's service's profile, focused on its operation)

and prints each answer. Needs: pip install -e '.[examples,live]' (py-spy, Flask, prometheus-client, the
OpenTelemetry SDK and instrumentation), apt-get install prometheus wrk, bash .ci/tools.
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
JAEGER = os.path.expanduser("~/.cache/profkit/bin/jaeger-1.76.0")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait(url, what, timeout=120, body=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=2):
                return
        except OSError:
            time.sleep(0.3)
    sys.exit(f"observe.py: {what} did not start")


def start_servers(tmp, procs):
    ports = {k: free_port() for k in ("prom", "qh", "qg", "og", "oh")}
    targets = os.path.join(tmp, "targets.json")
    with open(targets, "w") as fh:
        fh.write("[]")
    with open(os.path.join(tmp, "prometheus.yml"), "w") as fh:
        fh.write(f"global: {{scrape_interval: 1s}}\nscrape_configs:\n  - job_name: checkout\n    file_sd_configs:\n"
                 f"      - files: [\"{targets}\"]\n        refresh_interval: 1s\n")
    with open(os.path.join(tmp, "jaeger.yaml"), "w") as fh:
        fh.write(f"""service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines: {{traces: {{receivers: [otlp], processors: [batch], exporters: [jaeger_storage_exporter]}}}}
  telemetry: {{metrics: {{level: none}}, logs: {{level: warn}}}}
extensions:
  jaeger_query: {{storage: {{traces: mem}}, enable_tracing: false, http: {{endpoint: "127.0.0.1:{ports['qh']}"}}, grpc: {{endpoint: "127.0.0.1:{ports['qg']}"}}}}
  jaeger_storage: {{backends: {{mem: {{memory: {{max_traces: 100000}}}}}}}}
receivers:
  otlp: {{protocols: {{grpc: {{endpoint: "127.0.0.1:{ports['og']}"}}, http: {{endpoint: "127.0.0.1:{ports['oh']}"}}}}}}
processors: {{batch: {{timeout: 200ms}}}}
exporters: {{jaeger_storage_exporter: {{trace_storage: mem}}}}
""")
    for tool, hint in ((shutil.which("prometheus"), "apt-get install prometheus"), (JAEGER if os.access(JAEGER, os.X_OK) else None, "bash .ci/tools")):
        if tool is None:
            sys.exit(f"observe.py: a server is missing: {hint}")
    procs.append(subprocess.Popen(["prometheus", f"--config.file={tmp}/prometheus.yml", f"--storage.tsdb.path={tmp}/tsdb",
                                   f"--web.listen-address=127.0.0.1:{ports['prom']}", "--log.level=warn"]))
    procs.append(subprocess.Popen([JAEGER, "--config", f"{tmp}/jaeger.yaml"]))
    prom, jaeger, otlp = (f"http://127.0.0.1:{ports[k]}" for k in ("prom", "qh", "oh"))
    wait(prom + "/-/ready", "Prometheus")
    wait(jaeger + "/api/v3/services", "Jaeger")
    wait(otlp + "/v1/traces", "Jaeger's OTLP receiver", body=b'{"resourceSpans":[]}')
    return prom, jaeger, otlp, targets


def load(url, seconds, workers=2):
    stop = time.monotonic() + seconds

    def work():
        while time.monotonic() < stop:
            try:
                urllib.request.urlopen(url, timeout=10).read()
            except OSError:
                pass

    t0 = time.time()
    threads = [threading.Thread(target=work) for _ in range(workers)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    return t0, time.time()


def rng(w):
    return "..".join(datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ") for t in w)


def profkit(*args):
    print("$ profkit " + " ".join(args), flush=True)
    p = subprocess.run([sys.executable, "-m", "profkit", *args], text=True, capture_output=True)
    print(p.stdout.rstrip() + ("\n" + p.stderr.rstrip() if p.returncode else ""), flush=True)
    return p


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", nargs="?", default="runs/checkout-observe")
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    if os.path.exists(args.out) and os.listdir(args.out):
        sys.exit(f"observe.py: {args.out} is not empty; choose another OUT_DIR")
    os.makedirs(args.out, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="checkout-observe-")
    procs = []
    try:
        prom, jaeger, otlp, targets = start_servers(tmp, procs)
        windows, entries = {}, []
        for variant, flags in (("good", []), ("bad", ["--bad-deploy"])):
            chain = subprocess.Popen([sys.executable, os.path.join(HERE, "services.py"), "up", "--otlp", otlp, *flags],
                                     stdout=subprocess.PIPE, text=True)
            procs.append(chain)
            info = json.loads(chain.stdout.readline())
            entries += [{"targets": [a], "labels": {"service": r, "variant": variant}} for r, a in info["metrics"].items()]
            with open(targets + ".tmp", "w") as fh:
                json.dump(entries, fh)
            os.replace(targets + ".tmp", targets)
            time.sleep(3)  # the first scrape of the new targets
            print(f"== {variant}: loading {info['gateway']}/checkout for {args.seconds:g} s", flush=True)
            windows[variant] = load(info["gateway"] + "/checkout?customer=7", args.seconds)
            if variant == "bad":
                print("\n== 4. (later in the story, run now while the bad deploy is up) From the segment to the code")
                targets_ = [a for r in ("gateway", "checkout", "payment") for a in ("--target", f"{r}={info[r + '_pid']}")]
                profkit("bench", *targets_, "--url", info["gateway"] + "/checkout?customer=7", "--duration",
                        f"{args.seconds:g}", "-C", "2", "--prometheus", prom, "--selector",
                        '{service="gateway", variant="bad"}', "--jaeger", jaeger, "--service", "gateway",
                        "-o", os.path.join(args.out, "bench"), "-q")
            chain.terminate()
            chain.wait(30)
        time.sleep(3)  # the last scrape and the last spans
        print("\n== 1. RED: which route changed?")
        profkit("red", "--prometheus", prom, "--selector", '{service="gateway"}', "--base", rng(windows["good"]),
                "--head", rng(windows["bad"]), "-o", os.path.join(args.out, "red.json"))
        print("\n== 2. Traces: which span of which service grew?")
        profkit("traces", "--jaeger", jaeger, "--service", "gateway", "--base", rng(windows["good"]), "--head",
                rng(windows["bad"]), "-o", os.path.join(args.out, "traces"), "-q")
        print("\n== 3. Within the bad deploy: the slowest traces against the typical ones")
        profkit("traces", "--jaeger", jaeger, "--service", "gateway", "--slow", "p99", "--fast", "p50", "--range",
                rng(windows["bad"]), "-o", os.path.join(args.out, "slow-fast"), "-q")
        print(f"\nEverything is in {args.out}/ (red.json, traces/report.html, slow-fast/report.html, "
              "bench/report.html).")
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

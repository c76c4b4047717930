#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""py-spy cpu mode with timed samples: are the counts py-spy's own, and how right are the times?

    python benchmarks/bench_pyspy_cpu_timed.py [--seconds 8] [--runs 3]

A target with a busy thread (busy_a() all the time) and an alternating one (compute_b() for
0.25 s, then time.sleep(0.25), logging each compute phase's start and end) is recorded at
once by ``profkit attach`` (cpu mode: py-spy speedscope placed by on-CPU time), by
``py-spy record --format raw`` (the reference counts, no times) and by
``py-spy record --format chrometrace`` (read as wall mode reads it: a span per stack change).
Printed per run: samples per (thread, leaf function) of each, and the share of compute_b
samples whose time falls inside a logged compute phase (±20 ms) for profkit's placement and
for chrometrace's spans.
"""
import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TARGET = r'''
import sys, threading, time
def busy_a():
    x = 0
    while True:
        for i in range(10000): x += i
def compute_b(d):
    end, x = time.time() + d, 0
    while time.time() < end:
        for i in range(1000): x += i
def alternating():
    log = open(sys.argv[1], "w")
    while True:
        t = time.time(); compute_b(0.25); log.write(f"{t} {time.time()}\n"); log.flush()
        time.sleep(0.25)
threading.Thread(target=busy_a, name="busy", daemon=True).start()
threading.Thread(target=alternating, name="alt", daemon=True).start()
print("ready", flush=True)
while True: time.sleep(1)
'''


def counts(profile):
    c = collections.Counter()
    for stack, w in profile.stacks():
        names = [getattr(f, "name", f).split(" (")[0] for f in stack]
        c[names[-1]] += w
    return c


def inside(times, phases, slack=0.02):
    ok = sum(1 for t in times if any(b - slack <= t <= e + slack for b, e in phases))
    return ok / len(times) if times else float("nan")


def one_run(work, seconds):
    from collectors.pyspy import PySpyOptions, parse
    from profkit.inputs import Source
    from profkit.timeline import epoch_of_iso, read

    log, src = os.path.join(work, "phases.log"), os.path.join(work, "target.py")
    with open(src, "w") as fh:
        fh.write(TARGET)
    target = subprocess.Popen([sys.executable, src, log], stdout=subprocess.PIPE, text=True)
    try:
        target.stdout.readline()
        pid = str(target.pid)
        run = os.path.join(work, "run")
        launched = time.time()
        ref = [subprocess.Popen(["py-spy", "record", "-p", pid, "-r", "100", "-d", str(seconds), "--nonblocking",
                                 "--function", "-f", fmt, "-o", os.path.join(work, "ref." + fmt)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for fmt in ("raw", "chrometrace")]
        subprocess.run([sys.executable, "-m", "profkit", "attach", "--pid", pid, "-d", str(seconds), "-o", run, "-q"],
                       check=True)
        for p in ref:
            p.wait(60)
    finally:
        target.kill()
        target.wait()
    phases = [tuple(map(float, line.split())) for line in open(log) if len(line.split()) == 2]
    raw = parse(Source(os.path.join(work, "ref.raw")), PySpyOptions(format="raw"))
    chrome = parse(Source(os.path.join(work, "ref.chrometrace")),
                   PySpyOptions(format="chrometrace", rate=100, start=launched))
    from profkit.outputs import load_run_profile
    from profkit.rundir import RunDir

    rd = RunDir.open(run)
    mine = load_run_profile(rd)
    tl = read(os.path.join(run, "timeline.bin"))
    start = epoch_of_iso(rd.record.start)
    placed = [start + t * tl.tick_us / 1e6 for t, s in zip(tl.t, tl.stack) if tl.stacks[s][-1].startswith("compute_b")]
    ct = chrome.timeline
    spans = [ct.start + t * ct.tick_us / 1e6 for t, s in zip(ct.t, ct.stack)
             if chrome.frame(ct.stacks[s][-1]).name.startswith("compute_b")]
    return counts(mine), counts(raw), counts(chrome), inside(placed, phases), inside(spans, phases), launched


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with open("/proc/loadavg") as fh:
        print("load average:", fh.read().split()[0])
    for i in range(args.runs):
        with tempfile.TemporaryDirectory() as work:
            mine, raw, chrome, in_placed, in_spans, _ = one_run(work, args.seconds)
        print(f"run {i + 1}: samples by leaf function (profkit cpu mode / py-spy raw / chrometrace spans)")
        for leaf in sorted(set(mine) | set(raw)):
            if leaf in ("busy_a", "compute_b", "alternating"):
                print(f"  {leaf:12} {mine[leaf]:6} {raw[leaf]:6} {chrome[leaf]:6}")
        print(f"  total        {sum(mine.values()):6} {sum(raw.values()):6} {sum(chrome.values()):6}")
        print(f"  compute_b samples inside a compute phase (±20 ms): placed {in_placed:.1%}, chrometrace spans "
              f"{in_spans:.1%}")


if __name__ == "__main__":
    main()

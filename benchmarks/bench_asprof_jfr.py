#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""What reading async-profiler's JFR output costs, against its collapsed output of the same samples.

    python benchmarks/bench_asprof_jfr.py [--seconds 60] [--rate 100] [--runs 5] [--jfr FILE --collapsed FILE]
                                          [--live PAIRS [--live-seconds 8]]

Live async-profiler runs record ``-o jfr`` (timed samples); before, they recorded collapsed text.
The recording is ``--seconds`` at ``--rate`` Hz (6,000 samples by default): by default the real
two-chunk capture tests/data/asprof/threads.jfr (641 samples, async-profiler 4.1) repeated chunk by
chunk until it holds that many samples (each chunk of a JFR file stands alone, so this is a valid
recording of that size), and its collapsed equivalent is async-profiler's own converter's output
for the same file, repeated as often (collapsed text is aggregated by async-profiler: one line per
distinct stack). ``--jfr``/``--collapsed`` give a real pair instead.

Each is parsed through the async-profiler collector as a run does (``Source`` with timed samples
on), best of ``--runs``; the difference is what JFR costs beyond collapsed (the target: well under
1 s). The JDK's ``jfr print --json`` reader on the same file is the peer, measured once.
With ``--live``: :func:`live_pairs`, the totals of live jfr and collapsed recordings of one JVM.
"""
import argparse
import os
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
DATA = os.path.join(REPO, "tests", "data", "asprof")


def parse_with(path: str, **opts):
    from collectors.async_profiler import AsyncProfilerOptions, parse
    from profkit.inputs import Source

    src = Source(path, binary_ok=True)
    src.timed = True
    try:
        return parse(src, AsyncProfilerOptions(**opts), src.diag)
    finally:
        src.close()


def best(fn, runs: int) -> float:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return min(out)


def synthesize(samples: int, tmp: str):
    """threads.jfr and its converter collapsed output, repeated until ``samples`` samples."""
    jfr = open(os.path.join(DATA, "threads.jfr"), "rb").read()
    text = open(os.path.join(DATA, "threads.converter.collapsed")).read()
    copies = max(1, -(-samples // 641))
    jpath, cpath = os.path.join(tmp, "big.jfr"), os.path.join(tmp, "big.collapsed")
    with open(jpath, "wb") as fh:
        for _ in range(copies):
            fh.write(jfr)
    with open(cpath, "w") as fh:
        for _ in range(copies):
            fh.write(text)
    return jpath, cpath


def live_pairs(pairs: int, seconds: float) -> dict:
    """``profkit attach -c async-profiler`` of one CPU-bound JVM (ProfkitHot), ``--capture jfr``
    and ``--capture collapsed`` alternately, after a warm-up attach (the first loads the library):
    samples per CPU second of the JVM during each run, and their ratio."""
    import json
    import subprocess

    tmp = tempfile.mkdtemp(prefix="bench-asprof-live-")
    subprocess.run(["javac", "-d", f"{tmp}/classes", os.path.join(REPO, "tests", "integration", "targets",
                                                                  "ProfkitHot.java")], check=True)
    jvm = subprocess.Popen(["java", "-Xmx128m", "-cp", f"{tmp}/classes", "ProfkitHot", "cpu"], stdout=subprocess.PIPE)
    tick = os.sysconf("SC_CLK_TCK")

    def cpu():
        with open(f"/proc/{jvm.pid}/stat") as fh:
            rest = fh.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / tick

    def attach(capture, name, d):
        out = f"{tmp}/{name}"
        c0 = cpu()
        subprocess.run([sys.executable, "-m", "profkit", "attach", "--pid", str(jvm.pid), "-c", "async-profiler",
                        "--capture", capture, "-d", str(d), "-o", out, "-q"], check=True, cwd=REPO)
        used = cpu() - c0
        total = sum(float(line.rsplit(" ", 1)[1]) for line in open(f"{out}/profile.folded"))
        return total, used, json.load(open(f"{out}/manifest.json"))["profile"].get("timeline")

    try:
        assert jvm.stdout.readline().strip() == b"ready"
        attach("collapsed", "warm", 1)
        rows = []
        for i in range(pairs):
            for capture in ("jfr", "collapsed"):
                total, used, tl = attach(capture, f"{capture}-{i}", seconds)
                rows.append({"capture": capture, "samples": total, "jvm_cpu_s": round(used, 2),
                             "samples_per_cpu_s": round(total / used, 1) if used else None, "timeline": bool(tl)})
    finally:
        jvm.kill()
        jvm.wait()
    rate = {c: sum(r["samples"] for r in rows if r["capture"] == c) / sum(r["jvm_cpu_s"] for r in rows
                                                                          if r["capture"] == c)
            for c in ("jfr", "collapsed")}
    return {"runs": rows, "ratio_jfr_to_collapsed": round(rate["jfr"] / rate["collapsed"], 3)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--jfr")
    ap.add_argument("--collapsed")
    ap.add_argument("--live", type=int, default=0, metavar="PAIRS",
                    help="also record a JVM live, jfr and collapsed alternately, PAIRS times (samples per CPU second)")
    ap.add_argument("--live-seconds", type=float, default=8)
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-asprof-jfr-")
    jpath, cpath = (args.jfr, args.collapsed) if args.jfr else synthesize(int(args.seconds * args.rate), tmp)
    jprof, cprof = parse_with(jpath), parse_with(cpath)
    t_jfr = best(lambda: parse_with(jpath), args.runs)
    t_col = best(lambda: parse_with(cpath), args.runs)
    from collectors.jfr_print import JfrOptions, parse as jfr_parse
    from profkit.inputs import Source

    t0 = time.perf_counter()
    peer = jfr_parse(Source(jpath, binary_ok=True), JfrOptions(stack_depth=2048))
    t_peer = time.perf_counter() - t0
    def spin():
        x = 0
        for i in range(1_000_000):
            x += i
    t_spin = best(spin, 3)
    print(f"calibration: a 1M-iteration Python loop takes {t_spin * 1000:.0f} ms here (some tens of ms on an idle core: scale the figures below by it)")
    print(f"{os.path.getsize(jpath) / 1024:.0f} KiB JFR, {jprof.total:g} samples ({len(jprof.timeline)} timed); "
          f"collapsed {os.path.getsize(cpath) / 1024:.0f} KiB, {cprof.total:g} samples")
    print(f"parse (best of {args.runs}): jfr {t_jfr * 1000:.0f} ms, collapsed {t_col * 1000:.0f} ms, "
          f"beyond collapsed {(t_jfr - t_col) * 1000:.0f} ms; the JDK's jfr print path {t_peer * 1000:.0f} ms "
          f"({peer.total:g} samples)")
    if args.live:
        live = live_pairs(args.live, args.live_seconds)
        for r in live["runs"]:
            print(f"  live {r['capture']:9s}: {r['samples']:g} samples, JVM CPU {r['jvm_cpu_s']} s, "
                  f"{r['samples_per_cpu_s']} samples per CPU second, timeline.bin: {r['timeline']}")
        print(f"samples per CPU second, jfr / collapsed: {live['ratio_jfr_to_collapsed']}")


if __name__ == "__main__":
    main()

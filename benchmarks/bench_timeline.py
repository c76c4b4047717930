#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Timed samples: what they cost on disk, in memory and in rendering the report.

    python benchmarks/bench_timeline.py [--minutes 10] [--rate 100] [--threads 8] [--runs 3]

Builds two run directories from one synthetic recording (``--minutes`` at ``--rate`` Hz: 60k
samples by default, over ~3000 distinct stacks 10 to 40 frames deep, on ``--threads`` threads):
one with ``timeline.bin`` (the heatmap, range selection and flame chart in report.html) and one
without it (today's report). Each is rendered with ``profkit render RUN_DIR`` (best of
``--runs``, measured side by side in the same process) and the difference is the time view's
cost; the target is under 1 s. Also prints bytes per sample in memory (the columns) and on disk
(timeline.bin, header and stack table included), the report's size, and ``render --from/--until``
of one minute.
"""
import argparse
import os
import random
import shutil
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from harness import PROFKIT, best_of  # noqa: E402


def build(path: str, minutes: float, rate: int, threads: int, timed: bool, seed: int = 7):
    from profkit.model import Profile
    from profkit.outputs import write_profiles
    from profkit.rundir import RunDir
    from profkit.runrecord import RunRecord, TargetRecord
    from profkit.timeline import Timeline, epoch_of_iso

    rng = random.Random(seed)
    record = RunRecord(targets=[TargetRecord(4242, "app", "python")], start="2026-12-01T10:00:00+00:00",
                       rate=float(rate), duration=minutes * 60, mode="cpu")
    run = RunDir.create(path, record)
    prof = Profile()
    funcs = [f"module{i % 40}.function_{i} (app/module{i % 40}.py:{i})" for i in range(600)]
    stacks = []
    for _ in range(3000):
        depth = rng.randint(10, 40)
        stacks.append(tuple(prof.intern(rng.choice(funcs[: 50 + d * 10])) for d in range(depth)))
    tl = Timeline(epoch_of_iso(record.start))
    n = int(minutes * 60 * rate)
    names = [f"worker-{i} [{1000 + i}]" for i in range(threads)]
    for i in range(n):
        key = stacks[int(len(stacks) * rng.random() ** 3)]  # a few hot stacks, a long tail
        prof.add_ids(key, 1)
        tl.append(i / rate, key, names[i % threads])
    if timed:
        prof.timeline = tl
    write_profiles(run, {"py-spy": prof}, ["py-spy"])
    run.finish("complete")
    return run, tl


def _own_steps(run, runs: int):
    """(seconds to read timeline.bin into the profile, seconds to make the report's data), best of ``runs``."""
    import time

    from profkit.outputs import load_run_profile, load_timeline
    from profkit.reports.timeline import script_json, timeline_data

    best = [float("inf"), float("inf")]
    for _ in range(runs):
        prof = load_run_profile(run)
        t0 = time.process_time()
        load_timeline(run, prof)
        t1 = time.process_time()
        script_json(timeline_data(prof))
        t2 = time.process_time()
        best = [min(best[0], t1 - t0), min(best[1], t2 - t1)]
    return best


def _browser(report: str, seconds: float) -> None:
    """The page's redraw time (heatmap, flame graph, top functions, flame chart) for three ranges."""
    import pathlib

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        opts.add_argument(arg)
    opts.binary_location = os.environ.get("PROFKIT_CHROMIUM", "/usr/bin/chromium")
    drv = webdriver.Chrome(service=Service(os.environ.get("PROFKIT_CHROMEDRIVER", "/usr/bin/chromedriver")), options=opts)
    try:
        drv.get(pathlib.Path(report).as_uri())
        for a, b in ((0, seconds + 1), (60, 120), (300, 301)):
            ms = drv.execute_script(f"var t = performance.now(); profkitTimeline.select({a}, {b}); return performance.now() - t")
            parts = drv.execute_script("return profkitTimeline.timings")
            print(f"browser redraw {a}-{b:g} s: {ms:.0f} ms (" + ", ".join(f"{k} {v:.0f}" for k, v in parts.items()) + ")")
    finally:
        drv.quit()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--rate", type=int, default=100)
    ap.add_argument("--threads", type=int, default=8)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--browser", action="store_true",
                    help="also time the page's redraw of three ranges in headless Chromium (selenium)")
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="bench-timeline-")
    try:
        with_t, tl = build(os.path.join(work, "timed"), args.minutes, args.rate, args.threads, True)
        without, _ = build(os.path.join(work, "plain"), args.minutes, args.rate, args.threads, False)
        n = len(tl)
        disk = os.path.getsize(with_t.file("timeline.bin"))
        print(f"{n:,} samples, {len(tl.stacks):,} distinct stacks, {len(tl.threads)} threads")
        print(f"memory: {tl.nbytes / n:.2f} bytes/sample (the four columns; the stack table is the profile's own)")
        print(f"disk:   {disk / n:.2f} bytes/sample (timeline.bin, {disk / 1024:.0f} KiB with header and stacks)")
        own = _own_steps(with_t, args.runs)
        print(f"the time view's own steps, in process (best of {args.runs}): read timeline.bin {own[0] * 1000:.0f} ms, "
              f"report data + escaping {own[1] * 1000:.0f} ms")
        plain = best_of(args.runs, "render (today's report)", PROFKIT + ["render", without.path])
        timed = best_of(args.runs, "render (with time view)", PROFKIT + ["render", with_t.path])
        cut = best_of(args.runs, "render --from 60s --until 120s",
                      PROFKIT + ["render", with_t.path, "--from", "60s", "--until", "120s", "-o", os.path.join(work, "cut")])
        for r in (plain, timed, cut):
            print(f"{r.label:34s} wall {r.wall:6.2f} s  cpu {r.cpu:6.2f} s  max RSS {r.maxrss_mb:6.0f} MB")
        big, small = (os.path.getsize(os.path.join(d.path, "report.html")) for d in (with_t, without))
        print(f"time view cost: +{timed.wall - plain.wall:.2f} s wall, +{timed.cpu - plain.cpu:.2f} s CPU "
              f"(target < 1 s); report.html {small / 1024:.0f} KiB → {big / 1024:.0f} KiB")
        if args.browser:
            _browser(os.path.join(with_t.path, "report.html"), args.minutes * 60)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""What ``profkit agent`` costs, and how well consecutive windows join (loopback only, bounded).

    python benchmarks/bench_agent.py [--targets 5] [--window 10] [--seconds 120] [--parca URL]
                                     [--collectors py-spy,perf] [--agent-arg=--timeline]

1. The agent's own CPU: ``profkit agent`` on --targets CPU-bound Python processes
   (tests/integration/targets/pyversion.py) at --window windows for --seconds, exporting every
   window to file= (and to --parca when given). The agent process's own utime+stime
   (/proc/PID/stat: its children, the profilers, are not in it) as a % of one core, beside the
   profilers' CPU (its py-spy/perf children, summed while they run) measured in the same run;
   over the whole run (start-up imports and the final flush included) and over its steady part
   (from the warm-up below to --seconds).
2. Its RSS over the run (a soak when --seconds is long): sampled every 5 s; the growth from the
   end of the first window to the end, and from the warm-up (120 s or 10 windows: the first
   windows import the engine, collectors and exporters) to the end.
3. Gap or overlap between windows per collector (one target, --window windows): from the index,
   each window's start minus the previous one's end (negative: overlap); and the coverage: above 1 means samples
   counted twice (overlap), below 1 time unsampled (gap, or the profiler's own losses). The
   coverage is samples over rate × (last end − first start): the target is always runnable, and
   py-spy's cpu mode counts a runnable thread (state R in /proc) as on-CPU, so on a loaded
   machine this is the sampled share of wall time, not of the target's CPU time (also shown:
   ``cpu_coverage``, samples over rate × the target's CPU seconds, the figure for perf, whose
   cpu-clock samples the target's own CPU time).
   With perf (``--collectors perf``: kept attached, cut by SIGUSR2) the windows' timeline.bin give
   each sample's time: per seam, the gap from the last sample of window k to the first of window
   k+1, beside the gaps between consecutive samples inside the windows (median, p90, p99, max)
   and where each seam's gap falls among those (a seam that loses samples is far above them).

4. With --jvm-seams: the same for async-profiler kept attached to a JVM, from the samples' own
   times (the JFR events' start times in each window's timeline.bin), see :func:`jvm_seams`.

Writes benchmarks/results/agent.json (or --out).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.path.join(REPO, "tests", "integration", "targets", "pyversion.py")
sys.path.insert(0, REPO)

from harness import cpu_seconds  # noqa: E402


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int):
    out = []
    for e in os.listdir("/proc"):
        if e.isdigit():
            try:
                with open(f"/proc/{e}/stat") as fh:
                    rest = fh.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(rest[1]) == pid:
                out.append(int(e))
    return out


class Watch(threading.Thread):
    """Samples the agent's own CPU and RSS and its children's CPU until it exits (and the CPU of
    ``target``, with the epoch time, for the CPU coverage of the windows' own span)."""

    def __init__(self, pid: int, interval: float = 0.5, target: int = 0):
        super().__init__(daemon=True)
        self.pid, self.interval, self.target = pid, interval, target
        self.target_cpu = []    # (epoch seconds, target cpu seconds)
        self.cpu = 0.0
        self.cpus = []          # (seconds, cpu seconds), every 5 s
        self.rss = []           # (seconds, MB)
        self.kids = {}          # pid -> last cpu seconds seen
        self.t0 = time.monotonic()

    def run(self):
        last_rss = -10.0
        while True:
            try:
                self.cpu = cpu_seconds(self.pid)
                now = time.monotonic() - self.t0
                if now - last_rss >= 5:
                    self.rss.append((round(now, 1), round(rss_mb(self.pid), 2)))
                    self.cpus.append((round(now, 1), self.cpu))
                    last_rss = now
                if self.target:
                    self.target_cpu.append((time.time(), cpu_seconds(self.target)))
                for k in children(self.pid):
                    try:
                        self.kids[k] = cpu_seconds(k)
                    except OSError:
                        pass
            except OSError:
                return
            time.sleep(self.interval)


def start_targets(n: int, version: str = "v1"):
    procs = [subprocess.Popen([sys.executable, TARGET, version], stdout=subprocess.PIPE) for _ in range(n)]
    for p in procs:
        assert p.stdout.readline().strip() == b"ready"
    return procs


def run_agent(pids, args, seconds, target: int = 0):
    cmd = [sys.executable, "-m", "profkit", "agent", "-q", "--duration", str(seconds)]
    for pid in pids:
        cmd += ["--pid", str(pid)]
    cmd += args
    t0 = time.monotonic()
    agent = subprocess.Popen(cmd, stderr=subprocess.PIPE, cwd=REPO)
    watch = Watch(agent.pid, target=target)
    watch.start()
    _, err = agent.communicate()
    watch.join(2)
    if agent.returncode != 0:
        raise SystemExit(f"agent failed ({agent.returncode}): {err.decode()[-800:]}")
    return time.monotonic() - t0, watch


def cost(args) -> dict:
    procs = start_targets(args.targets)
    tmp = tempfile.mkdtemp(prefix="bench-agent-")
    exports = ["--export", f"file={tmp}/store"] + (["--export", f"parca={args.parca}"] if args.parca else [])
    try:
        wall, w = run_agent([p.pid for p in procs], ["--window", str(args.window), "-o", f"{tmp}/out",
                                                     "--keep", "50", *exports, *args.agent_arg], args.seconds)
    finally:
        for p in procs:
            p.kill()
            p.wait()
    first = next((m for t, m in w.rss if t >= args.window + 5), w.rss[0][1] if w.rss else 0.0)
    # steady state: after the first windows imported the engine, collectors and exporters
    warm_t, warm = next(((t, m) for t, m in w.rss if t >= max(120.0, 10 * args.window)), (None, None))
    # the steady part: from the warm-up to the last sample before --duration ends (the start-up's
    # imports and the final flush are not in it)
    steady = [(t, c) for t, c in w.cpus if warm_t is not None and warm_t <= t <= args.seconds]
    steady_pct = (round(100 * (steady[-1][1] - steady[0][1]) / (steady[-1][0] - steady[0][0]), 3)
                  if len(steady) > 1 and steady[-1][0] > steady[0][0] else None)
    return {"targets": args.targets, "window_s": args.window, "seconds": args.seconds, "wall_s": round(wall, 1),
            "exports": [e for e in exports if e != "--export"],
            "agent_cpu_s": round(w.cpu, 2), "agent_cpu_pct_of_core": round(100 * w.cpu / wall, 3),
            "agent_cpu_pct_of_core_steady": steady_pct,
            "steady_s": [steady[0][0], steady[-1][0]] if len(steady) > 1 else None,
            "profilers_cpu_s": round(sum(w.kids.values()), 2),
            "profilers_cpu_pct_of_core": round(100 * sum(w.kids.values()) / wall, 2),
            "rss_mb_after_first_window": first, "rss_mb_end": w.rss[-1][1] if w.rss else None,
            "rss_growth_mb": round((w.rss[-1][1] - first), 2) if w.rss else None,
            "rss_mb_warm": warm, "rss_warm_at_s": warm_t,
            "rss_growth_after_warmup_mb": round(w.rss[-1][1] - warm, 2) if warm is not None else None,
            "rss_series": w.rss}


def joins(args, collector: str) -> dict:
    [proc] = start_targets(1)
    tmp = tempfile.mkdtemp(prefix="bench-agent-join-")
    try:
        cpu0 = cpu_seconds(proc.pid)
        wall, watch = run_agent([proc.pid], ["--window", str(args.window), "-o", f"{tmp}/out", "-c", collector,
                                             *args.agent_arg], args.join_seconds, target=proc.pid)
        cpu = cpu_seconds(proc.pid) - cpu0
    finally:
        proc.kill()
        proc.wait()
    entries = [json.loads(x) for x in open(f"{tmp}/out/windows.jsonl")]
    from datetime import datetime

    def t(s):
        return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()

    seams = [round(t(b["start"]) - t(a["end"]), 3) for a, b in zip(entries, entries[1:])]
    samples = sum(e["samples"] for e in entries)
    unit = entries[0]["unit"] if entries else None
    # seconds sampled: samples at 100 Hz, or perf cpu-clock's nanoseconds of CPU
    sampled = samples / 100 if unit == "samples" else samples / 1e9 if unit == "nanoseconds" else None
    span = t(entries[-1]["end"]) - t(entries[0]["start"]) if entries else 0.0
    out = {"collector": collector, "window_s": args.window, "windows": len(entries),
           "seams_s": seams, "mean_seam_s": round(sum(seams) / len(seams), 3) if seams else None,
           "samples": samples, "unit": entries[0]["unit"] if entries else None, "span_s": round(span, 2),
           "target_cpu_s": round(cpu, 2),
           "coverage": round(sampled / span, 3) if span and sampled is not None else None,
           # perf's cpu-clock samples the target's own CPU time: 1.0 = every 10 ms of it sampled once
           "cpu_coverage": round(sampled / cpu, 3) if cpu and sampled is not None else None}
    if entries and sampled is not None:  # the target's CPU between the first window's start and the last's end
        cpu_span = cpu_at(watch.target_cpu, t(entries[-1]["end"])) - cpu_at(watch.target_cpu, t(entries[0]["start"]))
        out["target_cpu_in_windows_s"] = round(cpu_span, 2)
        out["cpu_coverage_in_windows"] = round(sampled / cpu_span, 3) if cpu_span > 0 else None
    out.update(sample_seams(f"{tmp}/out", entries))
    return out


def cpu_at(series, when: float) -> float:
    """The CPU seconds of a (time, cpu) series at ``when``, interpolated."""
    for (ta, ca), (tb, cb) in zip(series, series[1:]):
        if ta <= when <= tb:
            return ca + (cb - ca) * ((when - ta) / (tb - ta) if tb > ta else 0.0)
    return series[-1][1] if series and when > series[-1][0] else (series[0][1] if series else 0.0)


def sample_seams(root: str, entries) -> dict:
    """The seams as the samples' own times tell them (windows with timeline.bin: perf): per seam,
    the gap from the last sample of window k to the first of window k+1, beside the gaps between
    consecutive samples inside the windows (the target is not always on a CPU on a loaded machine,
    so a seam is judged against those, not against the 10 ms interval alone)."""
    from profkit.timeline import read

    spans, inner = [], []
    for e in entries:
        path = os.path.join(root, e["dir"], "timeline.bin")
        if not os.path.exists(path):
            return {}
        tl = read(path)
        times = sorted(tl.start + tl.seconds(i) for i in range(len(tl)))
        if not times:
            spans.append(None)
            continue
        spans.append((times[0], times[-1]))
        inner += [b - a for a, b in zip(times, times[1:])]
    gaps = [round(b[0] - a[1], 4) for a, b in zip(spans, spans[1:]) if a and b]
    if not gaps or not inner:
        return {}
    inner.sort()

    def q(p):
        return round(inner[min(len(inner) - 1, int(p * len(inner)))], 4)

    from bisect import bisect_left

    rank = [round(bisect_left(inner, x) / len(inner), 3) for x in gaps]
    return {"sample_seam_gaps_s": gaps, "sample_seam_max_s": max(gaps),
            "sample_seam_mean_s": round(sum(gaps) / len(gaps), 4),
            "inner_gap_s": {"median": q(0.5), "p90": q(0.9), "p99": q(0.99), "max": round(inner[-1], 4),
                            "n": len(inner)},
            # where each seam's gap falls among the gaps inside the windows (0.5: a typical gap)
            "seam_gap_percentile": rank}


def jvm_seams(args) -> dict:
    """async-profiler kept attached (profkit/agent/asprofswitch.py) on one CPU-bound JVM
    (tests/integration/targets/ProfkitHot.java) at --window windows for --join-seconds: per seam,
    the declared gap (next start − previous end, from the index) and the gap between the samples'
    own times (the first JFR event start of the next window − the last of the previous; overlap
    if negative), beside the spacing of consecutive samples inside the windows (:func:`sample_seams`)."""
    tmp = tempfile.mkdtemp(prefix="bench-agent-jvm-")
    subprocess.run(["javac", "-d", f"{tmp}/classes", os.path.join(REPO, "tests", "integration", "targets",
                                                                  "ProfkitHot.java")], check=True)
    jvm = subprocess.Popen(["java", "-Xmx128m", "-cp", f"{tmp}/classes", "ProfkitHot", "cpu"], stdout=subprocess.PIPE)
    try:
        assert jvm.stdout.readline().strip() == b"ready"
        cpu0 = cpu_seconds(jvm.pid)
        wall, _ = run_agent([jvm.pid], ["--window", str(args.window), "-o", f"{tmp}/out"], args.join_seconds)
        cpu = cpu_seconds(jvm.pid) - cpu0
    finally:
        jvm.kill()
        jvm.wait()
    from datetime import datetime

    def t(s):
        return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()

    entries = [json.loads(x) for x in open(f"{tmp}/out/windows.jsonl")]
    entries = [e for e in entries if e["samples"] > 0]
    declared = [round(t(b["start"]) - t(a["end"]), 4) for a, b in zip(entries, entries[1:])]
    samples = sum(e["samples"] for e in entries)
    out = {"collector": "async-profiler (kept attached)", "window_s": args.window, "windows": len(entries),
           "declared_seams_s": declared, "samples": samples, "target_cpu_s": round(cpu, 2),
           "agent_wall_s": round(wall, 1), "samples_per_cpu_s": round(samples / cpu, 1) if cpu else None}
    out.update(sample_seams(f"{tmp}/out", entries))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--targets", type=int, default=5)
    ap.add_argument("--window", type=float, default=10)
    ap.add_argument("--seconds", type=float, default=120)
    ap.add_argument("--join-seconds", type=float, default=60)
    ap.add_argument("--parca", default=None, help="also export to this Parca (e.g. http://127.0.0.1:7070)")
    ap.add_argument("--collectors", default="py-spy,perf")
    ap.add_argument("--agent-arg", action="append", default=[], metavar="ARG",
                    help="one more argument for every profkit agent run (repeatable), e.g. --agent-arg=--timeline")
    ap.add_argument("--skip-cost", action="store_true")
    ap.add_argument("--jvm-seams", action="store_true",
                    help="also measure async-profiler's seams from the samples' own times (a JVM target)")
    ap.add_argument("--out", default=None, help="where the figures go (default benchmarks/results/agent.json)")
    args = ap.parse_args()
    results = {}
    if not args.skip_cost:
        results["cost"] = cost(args)
        c = results["cost"]
        print(f"agent own CPU: {c['agent_cpu_pct_of_core']}% of a core ({c['agent_cpu_s']} s in {c['wall_s']} s), "
              f"{c['agent_cpu_pct_of_core_steady']}% in the steady part {c['steady_s']} s "
              f"for {c['targets']} targets at {c['window_s']} s windows; profilers beside it: "
              f"{c['profilers_cpu_pct_of_core']}%; RSS {c['rss_mb_after_first_window']} → {c['rss_mb_end']} MB "
              f"(growth {c['rss_growth_mb']} MB; after warm-up at {c['rss_warm_at_s']} s: {c['rss_mb_warm']} MB, "
              f"growth {c['rss_growth_after_warmup_mb']} MB)", flush=True)
    results["joins"] = []
    for col in [c for c in args.collectors.split(",") if c]:
        j = joins(args, col)
        results["joins"].append(j)
        print(f"{col}: {j['windows']} windows, seam (next start − previous end) mean {j['mean_seam_s']} s "
              f"(negative = overlap), coverage {j['coverage']} (samples / rate × span), "
              f"{j['cpu_coverage']} of the target's CPU time ({j.get('cpu_coverage_in_windows')} of it between the "
              f"first window's start and the last one's end)", flush=True)
        if "sample_seam_gaps_s" in j:
            g = j["inner_gap_s"]
            print(f"{col}: from the samples' own times, last sample of a window → first of the next: "
                  f"{', '.join(f'{x * 1000:.0f}' for x in j['sample_seam_gaps_s'])} ms (max "
                  f"{j['sample_seam_max_s'] * 1000:.0f} ms); between samples inside windows: median "
                  f"{g['median'] * 1000:.0f} ms, p90 {g['p90'] * 1000:.0f}, p99 {g['p99'] * 1000:.0f}, "
                  f"max {g['max'] * 1000:.0f} ms; seam gaps at percentiles {j['seam_gap_percentile']} of those",
                  flush=True)
    if args.jvm_seams:
        j = results["jvm_seams"] = jvm_seams(args)
        print(f"async-profiler: {j['windows']} windows, declared seams {j['declared_seams_s']} s, between the "
              f"samples' own times {j.get('sample_seam_gaps_s')} s (inside windows: {j.get('inner_gap_s')})",
              flush=True)
    results["command"] = " ".join(["python", "benchmarks/bench_agent.py"] + sys.argv[1:])
    results["load_average"] = os.getloadavg()
    out = args.out or os.path.join(REPO, "benchmarks", "results", "agent.json")
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as fh:
        json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()

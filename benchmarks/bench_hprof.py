#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""HPROF analysis speed and memory: a heap dump of about --mb megabytes (default 256), read and
analysed as ``profkit heap --heap-dump`` does (HPROF reader, object graph, BFS from the roots,
retaining paths and retained sizes of the dump's five largest classes).

    python benchmarks/bench_hprof.py [--mb 256] [--dump FILE] [--runs 1]

The dump is made by benchmarks/hprof/HeapFill.java (a static cache of JSON-like documents:
maps, lists, strings, arrays), written by the JVM itself with ``jcmd PID GC.heap_dump``; the
analysis runs in a child process so that its peak RSS (getrusage of the child) is its own.
Beside it, for scale on a shared machine, the same run's reference figures: the JVM's own time
to write the dump, and the time to read the file once (sha1). Targets: under 60 s and under
1 GB peak RSS for 256 MB. Writes benchmarks/results/hprof.json.
"""
import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
sys.path.insert(0, os.path.join(REPO, "benchmarks"))
from harness import save  # noqa: E402

CHILD = """
import json, sys, time
from profkit.heap.dump import analyse_dump
suspects = []
a = analyse_dump(sys.argv[1], suspects)
print(json.dumps({"analysis": a, "suspects": [{"name": s["name"], "paths": len(s.get("retained_by") or []),
                  "top": (s.get("retained_by") or [{}])[0]} for s in suspects]}))
"""


def make_dump(mb: int, workdir: str) -> dict:
    """Start HeapFill with about ``mb`` × 0.71 MB live (HPROF's 8-byte references make the dump
    bigger than the heap), dump it, stop it."""
    classes = os.path.join(workdir, "classes")
    subprocess.run(["javac", "-d", classes, os.path.join(REPO, "benchmarks", "hprof", "HeapFill.java")], check=True)
    live = max(8, int(mb * 0.71))
    java = subprocess.Popen(["java", f"-Xmx{live * 3}m", "-XX:+UseSerialGC", "-cp", classes, "HeapFill", str(live)],
                            stdout=subprocess.PIPE, text=True)
    try:
        line = java.stdout.readline()
        if not line.startswith("ready"):
            raise SystemExit(f"HeapFill did not start: {line!r}")
        path = os.path.join(workdir, "bench.hprof")
        t0 = time.monotonic()
        out = subprocess.run(["jcmd", str(java.pid), "GC.heap_dump", path], capture_output=True, text=True, check=True)
        wall = time.monotonic() - t0
    finally:
        java.kill()
        java.wait()
    return {"path": path, "bytes": os.path.getsize(path), "jcmd_seconds": round(wall, 2),
            "jvm_says": out.stdout.strip().splitlines()[-1]}


def sha1_seconds(path: str) -> float:
    t0 = time.monotonic()
    h = hashlib.sha1()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return round(time.monotonic() - t0, 2)


def analyse(path: str) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-c", CHILD, path], capture_output=True, text=True, cwd=REPO)
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if res.returncode != 0:
        raise SystemExit(res.stderr[-2000:])
    return {"wall_seconds": round(wall, 2), "cpu_seconds": round((after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime), 2),
            "peak_rss_mb": round(after.ru_maxrss / 1024, 1), **json.loads(res.stdout)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=256)
    ap.add_argument("--dump", help="analyse this dump instead of making one")
    ap.add_argument("--runs", type=int, default=1)
    a = ap.parse_args()
    for tool in ("java", "javac", "jcmd"):
        if not a.dump and shutil.which(tool) is None:
            raise SystemExit(f"{tool} is required (a JDK 11 or newer)")
    with tempfile.TemporaryDirectory(prefix="bench-hprof-") as tmp:
        dump = {"path": a.dump, "bytes": os.path.getsize(a.dump)} if a.dump else make_dump(a.mb, tmp)
        reference = {"sha1_read_seconds": sha1_seconds(dump["path"])}
        runs = [analyse(dump["path"]) for _ in range(a.runs)]
        load = os.getloadavg()
    best = min(runs, key=lambda r: r["wall_seconds"])
    result = {"dump_mb": round(dump["bytes"] / 2**20, 1), "dump": {k: v for k, v in dump.items() if k != "path"},
              "reference": reference, "runs": runs, "load_average": [round(x, 1) for x in load],
              "targets": {"wall_seconds": 60, "peak_rss_mb": 1024},
              "met": best["wall_seconds"] < 60 and max(r["peak_rss_mb"] for r in runs) < 1024}
    print(f"dump {result['dump_mb']} MB ({best['analysis']['objects']:,} objects, {best['analysis']['references']:,} references)")
    for r in runs:
        print(f"  analysis: {r['wall_seconds']} s wall, {r['cpu_seconds']} s CPU, peak RSS {r['peak_rss_mb']} MB")
    print(f"  for scale: the JVM wrote it in {dump.get('jcmd_seconds', '?')} s; reading it once (sha1) {reference['sha1_read_seconds']} s; "
          f"load average {result['load_average']}")
    for s in best["suspects"]:
        print(f"  {s['name']}: {' → '.join(s['top'].get('path', []))} ({s['top'].get('instances', 0):,} instances)")
    print("wrote", save("hprof", result))
    return 0 if result["met"] else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Collapse throughput and memory: `profkit collapse --format perf` vs inferno-collapse-perf.

    python benchmarks/bench_collapse.py [--data DIR] [--mb 150] [--runs 3] [--gb]

Makes (once) a realistic `perf script` text with shared/bench/make-big-perf.sh, then runs both
collapsers on it, best of N, and prints wall and CPU ratios. The Perl stackcollapse-perf.pl
figure on this kind of machine (shared/bench/README.md) is ≈17 MB per CPU-second; profkit's
MB per CPU-second is printed beside it. With --gb, also streams a ≈1 GB input through
profkit (the same text repeated) to check that peak RSS stays bounded.
"""
import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PROFKIT, SHARED, best_of, require_inferno, save, table  # noqa: E402

PERL_MB_PER_CPU_S = 17.0  # shared/bench/README.md: 168 MB in 9.6 s CPU


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench-data"))
    ap.add_argument("--mb", type=int, default=150)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--gb", action="store_true", help="also measure peak RSS on a ~1 GB input")
    ap.add_argument("--jobs", default=None, help="pass --jobs N to profkit (parallel collapse), if supported")
    a = ap.parse_args()
    data = os.path.abspath(a.data)
    big = os.path.join(data, "big.txt")
    if not os.path.exists(big):
        subprocess.run(["bash", os.path.join(SHARED, "bench", "make-big-perf.sh"), data, str(a.mb)], check=True)
    mb = os.path.getsize(big) / 1e6
    inferno = require_inferno("inferno-collapse-perf")
    out = os.path.join(data, "collapse.out")
    runs = [
        best_of(a.runs, "inferno-collapse-perf", [inferno, big], stdout=out),
        best_of(a.runs, "profkit (1 core)", PROFKIT + ["collapse", "--format", "perf", big], stdout=out),
    ]
    if a.jobs:
        runs.append(best_of(a.runs, f"profkit --jobs {a.jobs}",
                            PROFKIT + ["collapse", "--format", "perf", "--jobs", a.jobs, big], stdout=out))
    print(f"input: {big} ({mb:.0f} MB)\n")
    print(table(runs, baseline="inferno-collapse-perf", input_mb=mb))
    pk = runs[1]
    print(f"\nprofkit: {mb / pk.cpu:.0f} MB per CPU-second = {mb / pk.cpu / PERL_MB_PER_CPU_S:.1f}x "
          f"stackcollapse-perf.pl (17 MB/CPU-s, shared/bench/README.md); "
          f"inferno {mb / runs[0].cpu:.0f} MB/CPU-s")
    result = {"input_mb": mb, "runs": runs}
    if a.gb:
        gb = os.path.join(data, "big-1g.txt")
        if not os.path.exists(gb):
            with open(gb, "wb") as fh, open(big, "rb") as src:
                chunk = src.read()
                while fh.tell() < 1_000_000_000:
                    fh.write(chunk)
        r = best_of(1, "profkit 1 GB", PROFKIT + ["collapse", "--format", "perf", gb], stdout=out)
        print(f"\n1 GB input ({os.path.getsize(gb) / 1e6:.0f} MB): peak RSS {r.maxrss_mb:.0f} MB, "
              f"{r.cpu:.1f} s CPU, {os.path.getsize(gb) / 1e6 / r.cpu:.0f} MB/CPU-s")
        result["gb_run"] = r
    print("saved", save("collapse", result))


if __name__ == "__main__":
    main()

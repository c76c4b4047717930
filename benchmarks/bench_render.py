#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Render speed, memory and SVG size: `profkit flamegraph` vs inferno-flamegraph.

    python benchmarks/bench_render.py [--stacks 100000 500000] [--runs 3] [--minwidth 0.1]

Inputs come from shared/bench/make-folded.py (unique, deep, heavy-tailed stacks). Also times a
differential graph of two 50k-stack profiles (`profkit diff`) against inferno-diff-folded
piped into inferno-flamegraph. flamegraph.pl's figures (shared/bench/README.md): 14 s CPU and
713 MB for 100k stacks, 79 s and 3.4 GB for 500k.
"""
import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PROFKIT, SHARED, best_of, measure, require_inferno, save, table  # noqa: E402


def folded(data: str, n: int, seed: int = 1, variant: str = "") -> str:
    name = f"f{n}-{seed}{variant}.folded"
    path = os.path.join(data, name)
    if not os.path.exists(path):
        cmd = [sys.executable, os.path.join(SHARED, "bench", "make-folded.py"), "--stacks", str(n), "--seed", str(seed)]
        if variant:
            cmd += ["--variant", variant]
        with open(path, "w") as fh:
            subprocess.run(cmd, stdout=fh, check=True)
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench-data"))
    ap.add_argument("--stacks", type=int, nargs="+", default=[100000, 500000])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--minwidth", default="0.1", help="percent of the total, for both tools")
    a = ap.parse_args()
    data = os.path.abspath(a.data)
    os.makedirs(data, exist_ok=True)
    inferno = require_inferno("inferno-flamegraph")
    results = {}
    for n in a.stacks:
        src = folded(data, n)
        runs = 1 if n > 200000 else a.runs
        rs = [
            best_of(runs, "inferno-flamegraph", [inferno, "--minwidth", a.minwidth, src],
                    stdout=os.path.join(data, "inferno.svg")),
            # inferno's --minwidth is a percentage of the total; profkit's takes a % suffix for that.
            best_of(runs, "profkit flamegraph", PROFKIT + ["flamegraph", "--minwidth", a.minwidth + "%", src, "-o", "-"],
                    stdout=os.path.join(data, "profkit.svg")),
        ]
        print(f"\n{n} unique stacks ({os.path.getsize(src) / 1e6:.0f} MB folded), minwidth {a.minwidth}, best of {runs}:\n")
        print(table(rs, baseline="inferno-flamegraph"))
        results[str(n)] = rs
    # Differential: two 50k-stack profiles.
    fa, fb = folded(data, 50000, 7, "A"), folded(data, 50000, 7, "B")
    diff_folded = os.path.join(data, "ab.diff.folded")
    infdiff = require_inferno("inferno-diff-folded")
    d1 = measure("inferno-diff-folded", [infdiff, fa, fb], stdout=diff_folded)
    d2 = best_of(a.runs, "inferno-flamegraph (of the diff)", [inferno, "--minwidth", a.minwidth, diff_folded],
                 stdout=os.path.join(data, "inferno-diff.svg"))
    d3 = best_of(a.runs, "profkit diff", PROFKIT + ["diff", "--minwidth", a.minwidth + "%", fa, fb, "-o", "-"],
                 stdout=os.path.join(data, "profkit-diff.svg"))
    print("\ndifferential, 2 × 50k stacks:\n")
    print(table([d1, d2, d3], baseline="inferno-flamegraph (of the diff)"))
    print(f"inferno total (diff-folded + flamegraph): {d1.wall + d2.wall:.2f} s wall; profkit diff: {d3.wall:.2f} s")
    results["diff-50k"] = [d1, d2, d3]
    print("saved", save("render", results))


if __name__ == "__main__":
    main()

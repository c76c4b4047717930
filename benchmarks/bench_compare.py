#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Speed of ``profkit compare`` on two large runs, and what a run's load section adds to rendering.

    python benchmarks/bench_compare.py [--stacks 100000] [--repeat 3]

Makes two run directories from ``../shared/bench/make-folded.py --variant A/B`` (N unique, deep,
py-spy-like stacks each) with a load.json each, then measures:

  * ``profkit compare BASE HEAD`` as a whole process (best of --repeat; also pinned to one CPU with
    ``taskset``, where the two runs are read one after the other), and its phases in-process:
    reading one profile keyed by function with its function table, both of them side by side
    (profkit.forked: one in a forked child when there are two CPUs), function deltas, the
    differential SVG, comment.md;
  * ``render_run`` of the head run with and without ``load.json``: the load section's cost
    beyond rendering the flame graph and the rest of the report.

Results are printed and written to benchmarks/results/compare.json.
"""
import argparse
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
MAKE = os.path.join(os.path.dirname(REPO), "shared", "bench", "make-folded.py")

LOAD = {"generator": "wrk", "url": "http://127.0.0.1:8000/", "connections": 4, "duration_s": 30.0, "requests": 9000,
        "rate": 300.0, "errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0, "status": 0}, "error_count": 0,
        "error_pct": 0.0, "latency_ms": {"mean": 12.0, "p50": 10.0, "p90": 20.0, "p99": 40.0, "p99.9": 80.0, "max": 90.0},
        "distribution": [[p, 10.0 + p / 2] for p in (1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99)], "closed_loop": True,
        "slo": {"objectives": [{"text": "p99<500ms", "metric": "p99", "op": "<", "value": 500.0, "unit": "ms",
                                "actual": 40.0, "status": "met"}], "overall": "met"}}


def make_run(path, variant, stacks):
    os.makedirs(os.path.join(path, "raw"))
    with open(os.path.join(path, "profile.folded"), "w") as fh:
        subprocess.run([sys.executable, MAKE, "--stacks", str(stacks), "--seed", "7", "--variant", variant],
                       stdout=fh, check=True)
    manifest = {"schema": 1, "status": "complete", "mode": "wall", "rate": 100, "duration": 30.0, "unit": "samples",
                "primary": "py-spy", "target": {"pids": [1], "name": "bench", "runtime": "python"}, "warnings": [],
                "collectors": [{"id": "py-spy", "version": "0.4"}]}
    with open(os.path.join(path, "manifest.json"), "w") as fh:
        json.dump(manifest, fh)
    with open(os.path.join(path, "load.json"), "w") as fh:
        json.dump(LOAD, fh)


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--stacks", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="profkit-bench-compare-")
    try:
        base, head = os.path.join(tmp, "base"), os.path.join(tmp, "head")
        make_run(base, "A", a.stacks)
        make_run(head, "B", a.stacks)
        size = sum(os.path.getsize(os.path.join(p, "profile.folded")) for p in (base, head)) / 2 / 2**20
        out = os.path.join(tmp, "out")
        argv = [sys.executable, "-m", "profkit", "compare", base, head, "-o", out, "--fail-on-regression", "50"]
        whole = best(lambda: subprocess.run(argv, check=True, capture_output=True), a.repeat)
        # The same on one CPU (taskset), where profkit reads the two runs one after the other.
        taskset = shutil.which("taskset")
        one_cpu = (best(lambda: subprocess.run([taskset, "-c", "0"] + argv, check=True, capture_output=True), a.repeat)
                   if taskset else None)

        from flamegraph import render_diff
        from profkit.comment import comment_markdown
        from profkit.compare import compare_functions
        from profkit.outputs import load_run_profile, render_run
        from profkit.rundir import RunDir

        from profkit.forked import can_fork, side_by_side

        def keyed(run):
            prof = load_run_profile(run, keyed=True)
            prof.function_stats()
            return prof

        rb, rh = RunDir.open(base), RunDir.open(head)
        t0 = time.perf_counter()
        keyed(rb)
        t_one = time.perf_counter() - t0
        t0 = time.perf_counter()
        bp, hp = side_by_side(lambda: keyed(rb), lambda: keyed(rh))
        t_read = time.perf_counter() - t0
        t0 = time.perf_counter()
        deltas = compare_functions(bp, hp)
        t_delta = time.perf_counter() - t0
        t0 = time.perf_counter()
        render_diff(bp, hp, None, io.StringIO())
        t_svg = time.perf_counter() - t0
        t0 = time.perf_counter()
        comment_markdown(deltas, base_label="base", head_label="head", base_load=LOAD, head_load=LOAD,
                         base_slo=LOAD["slo"], head_slo=LOAD["slo"], threshold=5.0, files={})
        t_md = time.perf_counter() - t0

        with_load = best(lambda: render_run(rh), a.repeat)
        os.rename(rh.file("load.json"), rh.file("load.json.off"))
        without = best(lambda: render_run(rh), a.repeat)
        os.rename(rh.file("load.json.off"), rh.file("load.json"))
        from profkit.reports import load as load_section
        from jinja2 import Environment, PackageLoader, select_autoescape

        env = Environment(loader=PackageLoader("profkit.reports", "templates"),
                          autoescape=select_autoescape(["html", "svg", "xml", "j2"], default=True))
        section = best(lambda: (load_section.markdown_section(rh), load_section.html_section(rh, env)), a.repeat)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    res = {"stacks_each": a.stacks, "folded_mb_each": round(size, 1), "compare_process_s": round(whole, 2),
           "compare_process_one_cpu_s": round(one_cpu, 2) if one_cpu is not None else None,
           "two_cpus_for_reading": can_fork(),
           "phases_s": {"read_key_and_tabulate_one": round(t_one, 2), "both_side_by_side": round(t_read, 2),
                        "function_deltas": round(t_delta, 2),
                        "diff_svg": round(t_svg, 2), "comment_md": round(t_md, 3)},
           "render_run_with_load_s": round(with_load, 2), "render_run_without_load_s": round(without, 2),
           "load_section_alone_s": round(section, 3)}
    print(json.dumps(res, indent=2))
    os.makedirs(os.path.join(REPO, "benchmarks", "results"), exist_ok=True)
    with open(os.path.join(REPO, "benchmarks", "results", "compare.json"), "w") as fh:
        json.dump(res, fh, indent=2)
        fh.write("\n")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Two (or more) ``profkit agent`` variants side by side, at the same time, on the same machine.

    python benchmarks/bench_agent_ab.py [--arm NAME=TREE[::AGENT ARGS]]... [--targets 5]
                                        [--window 10] [--seconds 200] [--warmup 60]

Each arm is an agent run from a source tree (``TREE``: this checkout by default; another
``git worktree`` to compare with an older commit) with its own ``--targets`` CPU-bound Python
processes (tests/integration/targets/pyversion.py), ``--window`` windows, ``-o`` and a ``file=``
export (not with ``--no-file-export``), plus the arm's own agent arguments. All arms run at once, so a shared machine's noise
(another job, a build) falls on each alike: ``bench_agent.py`` runs one agent at a time, and two
of its runs minutes apart once differed by more than the change they were to measure. The
figure is each agent's own CPU (utime+stime of its process, /proc/PID/stat: its profilers, child
processes, are not in it) over the steady part, from ``--warmup`` to 8 s before the end, as a %
of one core, and each arm's ratio to the first.

Default arms: ``folded`` (this tree, the agent's default py-spy windows) and ``timeline`` (this
tree with ``--timeline``). Writes benchmarks/results/agent-ab.json (or --out).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from harness import cpu_seconds

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_arm(text: str):
    name, _, rest = text.partition("=")
    tree, _, args = rest.partition("::")
    return name, os.path.abspath(tree or REPO), args.split()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arm", action="append", default=[], metavar="NAME=TREE[::ARGS]",
                    help="an agent variant (repeatable; default: folded=. and timeline=.::--timeline)")
    ap.add_argument("--targets", type=int, default=5)
    ap.add_argument("--window", type=float, default=10)
    ap.add_argument("--seconds", type=float, default=200)
    ap.add_argument("--warmup", type=float, default=60)
    ap.add_argument("--no-file-export", action="store_true",
                    help="no file= export (the arms' own --export only, beside -o)")
    ap.add_argument("--out", default=os.path.join(REPO, "benchmarks", "results", "agent-ab.json"))
    args = ap.parse_args()
    if args.seconds < args.warmup + 30:
        ap.error("--seconds must be at least --warmup + 30")
    arms = [parse_arm(a) for a in (args.arm or [f"folded={REPO}", f"timeline={REPO}::--timeline"])]
    targets, agents = [], []
    try:
        for name, tree, extra in arms:
            script = os.path.join(tree, "tests", "integration", "targets", "pyversion.py")
            mine = [subprocess.Popen([sys.executable, script, "v1"], stdout=subprocess.PIPE) for _ in range(args.targets)]
            targets += mine
            for p in mine:
                if p.stdout.readline().strip() != b"ready":
                    raise SystemExit(f"{name}: a target did not start")
            tmp = tempfile.mkdtemp(prefix=f"bench-agent-ab-{name}-")
            cmd = [sys.executable, "-m", "profkit", "agent", "-q", "--duration", str(args.seconds), "--window",
                   str(args.window), "-o", f"{tmp}/out", "--keep", "50",
                   *([] if args.no_file_export else ["--export", f"file={tmp}/store"]), *extra]
            for p in mine:
                cmd += ["--pid", str(p.pid)]
            # run from the arm's tree: ``python -m profkit`` imports profkit and collectors from it
            agents.append(subprocess.Popen(cmd, cwd=tree, stderr=subprocess.PIPE))
        time.sleep(args.warmup)
        c0, w0 = [cpu_seconds(a.pid) for a in agents], time.monotonic()
        time.sleep(args.seconds - args.warmup - 8)
        c1, w1 = [cpu_seconds(a.pid) for a in agents], time.monotonic()
        for (name, _, _), a in zip(arms, agents):
            _, err = a.communicate()
            if a.returncode != 0:
                raise SystemExit(f"{name}: the agent failed ({a.returncode}): {err.decode()[-600:]}")
    finally:
        for p in targets:
            p.kill()
            p.wait()
    steady = w1 - w0
    pct = [100 * (b - a) / steady for a, b in zip(c0, c1)]
    result = {"command": " ".join(["python", "benchmarks/bench_agent_ab.py"] + sys.argv[1:]),
              "targets_per_arm": args.targets, "window_s": args.window, "seconds": args.seconds,
              "steady_s": round(steady, 1), "load_average": os.getloadavg(),
              "arms": [{"name": n, "tree": t, "agent_args": x, "agent_cpu_pct_of_core_steady": round(p, 3),
                        "ratio_to_first": round(p / pct[0], 3) if pct[0] else None}
                       for (n, t, x), p in zip(arms, pct)]}
    for arm in result["arms"]:
        print(f"{arm['name']}: {arm['agent_cpu_pct_of_core_steady']}% of a core over {steady:.0f} s steady "
              f"(×{arm['ratio_to_first']} of {arms[0][0]})", flush=True)
    print(f"load average {result['load_average'][0]:.1f} (every arm ran at once: the ratios are the figure)")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""py-spy speedscope captures: parse time and peak memory, streamed (today) vs read whole (before).

    python benchmarks/bench_speedscope_stream.py [--samples 60000,600000] [--threads 10] [--old-rev 1637684]

Writes one synthetic py-spy 0.4.3-shaped speedscope file per ``--samples`` figure (``--threads``
profiles, ~3000 distinct stacks 10 to 40 frames deep over 600 frames, weights 0.01 s; profiles
before ``shared`` as py-spy writes them), then parses each in a fresh interpreter three ways and
prints seconds and the growth of peak RSS during the parse:

* ``streamed``: ``collectors.pyspy.parse_speedscope`` as it is now (ijson, ``ijson.backend``
  printed);
* ``whole (old)``: ``parse_speedscope`` of ``--old-rev`` (json.loads of the document, then a walk),
  taken from git;
* ``json.loads``: the document decoded whole and nothing else (the old path's floor).
"""
import argparse
import json
import os
import random
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_RUN = r"""
import resource, sys, time
sys.path.insert(0, sys.argv[3])
how, path = sys.argv[1], sys.argv[2]
from profkit.inputs import Source
from profkit.errors import Diagnostics
if how == "streamed":
    import ijson
    from collectors.pyspy import PySpyOptions, parse_speedscope
    extra = "ijson " + ijson.backend
elif how == "old":
    from old_pyspy import PySpyOptions, parse_speedscope
    extra = ""
else:
    import json
    extra = ""
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
if how == "json":
    doc = json.loads(open(path, "rb").read())
    n = sum(len(p["samples"]) for p in doc["profiles"])
else:
    prof = parse_speedscope(Source(path), PySpyOptions(), Diagnostics(path))
    n = prof.total
took = time.perf_counter() - t
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(n, took, (after - before) / 1024, extra)
"""


def write(path: str, samples: int, threads: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    frames = [{"name": f"function_{i}", "file": f"/srv/app/module{i % 40}.py", "line": i + 1} for i in range(600)]
    stacks = [[rng.randrange(600) for _ in range(rng.randint(10, 40))] for _ in range(3000)]
    per = samples // threads
    with open(path, "w") as fh:
        fh.write('{"$schema":"https://www.speedscope.app/file-format-schema.json","profiles":[')
        for t in range(threads):
            head = json.dumps({"type": "sampled", "name": f'Thread {1000 + t} "worker-{t}"', "unit": "seconds",
                               "startValue": 0.0, "endValue": per / 100})
            fh.write(("," if t else "") + head[:-1] + ',"samples":[')
            for k in range(0, per, 10_000):
                chunk = [rng.choice(stacks) for _ in range(min(10_000, per - k))]
                fh.write(("," if k else "") + json.dumps(chunk, separators=(",", ":"))[1:-1])
            fh.write('],"weights":[' + ",".join(["0.01"] * per) + "]}")
        fh.write('],"shared":{"frames":' + json.dumps(frames) + '},"activeProfileIndex":null,'
                 '"exporter":"py-spy@0.4.3","name":"bench"}')


def old_modules(rev: str, into: str) -> None:
    """``collectors/pyspy.py`` and ``pyspy_speedscope.py`` of ``rev`` as ``old_pyspy``/``old_pyspy_speedscope``."""
    for name in ("pyspy", "pyspy_speedscope"):
        text = subprocess.run(["git", "-C", ROOT, "show", f"{rev}:collectors/{name}.py"], check=True,
                              capture_output=True, text=True).stdout
        text = text.replace("from collectors.pyspy_speedscope import", "from old_pyspy_speedscope import")
        with open(os.path.join(into, f"old_{name}.py"), "w") as fh:
            fh.write(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", default="60000,600000")
    ap.add_argument("--threads", type=int, default=10)
    ap.add_argument("--old-rev", default="1637684")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        old_modules(args.old_rev, tmp)
        print("| samples | file MB | way | seconds | peak RSS growth MB | note |\n|---|---|---|---|---|---|")
        for n in (int(x) for x in args.samples.split(",")):
            path = os.path.join(tmp, f"s{n}.json")
            write(path, n, args.threads)
            size = os.path.getsize(path) / 1e6
            for how, label in (("streamed", "streamed"), ("old", f"whole ({args.old_rev})"), ("json", "json.loads")):
                out = subprocess.run([sys.executable, "-c", _RUN, how, path, tmp], cwd=ROOT, capture_output=True,
                                     text=True)
                if out.returncode:
                    print(f"| {n} | {size:.1f} | {label} | failed: {out.stderr.strip().splitlines()[-1]} | | |")
                    continue
                total, took, grown, *note = out.stdout.split()
                print(f"| {total} | {size:.1f} | {label} | {float(took):.2f} | {float(grown):.1f} | {' '.join(note)} |",
                      flush=True)


if __name__ == "__main__":
    main()

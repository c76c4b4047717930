# SPDX-License-Identifier: Apache-2.0
"""Start-up cost of the installed ``profkit`` script, beyond the interpreter's own start-up.

    python benchmarks/bench_startup.py [--repeat 15]

Runs, through the console script pip installed beside this interpreter (not ``python -m``),
``profkit --version``, ``profkit --help`` and ``profkit collapse --format folded`` of a 3-line
file, each ``--repeat`` times, alternating with ``python -c pass`` of the same interpreter, and
prints the medians and each command's median *beyond* ``python -c pass`` (issue 9's target:
under 100 ms for all three). Also prints the heaviest imports of ``profkit --version``
(``python -X importtime``). A shared machine is noisy: read the medians, not the minima.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time


def timed(argv, env=None) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    script = os.path.join(os.path.dirname(sys.executable), "profkit")
    if not os.path.exists(script):
        sys.exit(f"no profkit script beside {sys.executable}: pip install -e . first")
    with tempfile.NamedTemporaryFile("w", suffix=".folded", delete=False) as fh:
        fh.write("a;b 1\na;c 2\nd 3\n")
        folded = fh.name
    cases = {
        "python -c pass": [sys.executable, "-c", "pass"],
        "profkit --version": [script, "--version"],
        "profkit --help": [script, "--help"],
        "profkit collapse --format folded (3 lines)": [script, "collapse", "--format", "folded", folded],
    }
    times = {name: [] for name in cases}
    for _ in range(args.repeat):
        for name, argv in cases.items():  # interleaved, so load changes fall on every case
            times[name].append(timed(argv))
    os.unlink(folded)
    base = statistics.median(times["python -c pass"])
    print(f"{'command':45} {'median':>9} {'beyond python -c pass':>22}")
    for name, ts in times.items():
        med = statistics.median(ts)
        extra = "" if name == "python -c pass" else f"{(med - base) * 1000:8.0f} ms"
        print(f"{name:45} {med * 1000:6.0f} ms {extra:>22}")
    out = subprocess.run([sys.executable, "-X", "importtime", "-c", "import sys; sys.argv=['profkit','--version'];"
                          "from profkit.cli import main; main()"], capture_output=True, text=True)
    rows = []
    for line in out.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            parts = line.split("|")
            try:
                rows.append((int(parts[1]), parts[2].rstrip()))
            except ValueError:
                continue
    print("\nheaviest imports of profkit --version (cumulative µs):")
    for us, name in sorted(rows, reverse=True)[:12]:
        print(f"  {us:8d} {name}")


if __name__ == "__main__":
    main()

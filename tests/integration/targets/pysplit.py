# SPDX-License-Identifier: Apache-2.0
"""A Python target that splits its CPU time 60/30/10 between heavy(), medium() and light().

    python pysplit.py [SECONDS]    (0 = run until killed)

Each round runs one pure-Python loop body 6, 3 and 1 times UNIT in the three functions, so
their shares of on-CPU samples follow the iteration counts. A round takes about 0.1 s: many
samples fall in each, at phases that drift from round to round. Prints ``ready`` once running.
"""
import sys
import time

UNIT = 40_000


def heavy():
    total = 0
    for i in range(6 * UNIT):
        total += (i * i) % 7
    return total


def medium():
    total = 0
    for i in range(3 * UNIT):
        total += (i * i) % 7
    return total


def light():
    total = 0
    for i in range(UNIT):
        total += (i * i) % 7
    return total


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 0
    end = time.monotonic() + seconds
    print("ready", flush=True)
    while seconds <= 0 or time.monotonic() < end:
        heavy()
        medium()
        light()


if __name__ == "__main__":
    main()

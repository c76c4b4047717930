# SPDX-License-Identifier: Apache-2.0
"""A Python "service" whose code changes between versions, for comparing time ranges.

    python pyversion.py v1|v2 [--name COMM]

v1 spends its time in parse_order(); v2 also calls validate_order(), the change, which then
takes about half of the CPU time. ``--name`` sets the process name (comm, 15 bytes at most, as
prctl(PR_SET_NAME) allows: quotes, braces, newlines and escapes for the hostile-label tests).
Prints ``ready`` once running.
"""
import ctypes
import sys


def parse_order(n=60_000):
    total = 0
    for i in range(n):
        total += (i * 3) % 11
    return total


def validate_order(n=60_000):
    total = 0
    for i in range(n):
        total ^= (i * 7) % 13
    return total


def main():
    version = sys.argv[1] if len(sys.argv) > 1 else "v1"
    if "--name" in sys.argv:
        name = sys.argv[sys.argv.index("--name") + 1].encode("utf-8").decode("unicode_escape").encode("utf-8")[:15]
        ctypes.CDLL(None).prctl(15, ctypes.c_char_p(name), 0, 0, 0)  # PR_SET_NAME
    print("ready", flush=True)
    while True:
        parse_order()
        if version == "v2":
            validate_order()


if __name__ == "__main__":
    main()

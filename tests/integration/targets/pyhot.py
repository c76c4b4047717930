# SPDX-License-Identifier: Apache-2.0
"""A Python target with a known hot function: hot_compute() carries ~90% of on-CPU time.

    python pyhot.py [SECONDS] [--idle]    (0 = run until killed; --idle sleeps instead of working)
"""
import signal
import sys
import time


def hot_compute(n=200_000):
    total = 0
    for i in range(n):
        total += (i * i) % 7
    return total


def light_work():
    return sum(range(2_000))


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 and not sys.argv[1].startswith("-") else 0
    idle = "--idle" in sys.argv
    end = time.monotonic() + seconds
    print("ready", flush=True)
    while seconds <= 0 or time.monotonic() < end:
        if idle:
            signal.pause()  # blocked in a syscall: no on-CPU samples at all
            continue
        hot_compute()
        light_work()


if __name__ == "__main__":
    main()

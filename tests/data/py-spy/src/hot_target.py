# SPDX-License-Identifier: Apache-2.0
"""A tiny py-spy target: ``hot_loop`` burns ~80% of the CPU, ``cold_loop`` ~20%.

Run as ``python hot_target.py SECONDS [--child]``; it exits by itself after SECONDS.
The work runs in a thread named ``profkit-worker``. With ``--child`` the process also starts
one copy of itself as a subprocess (for py-spy ``--subprocesses``).
"""
import subprocess
import sys
import threading
import time


def hot_loop(n):
    total = 0
    for i in range(n):
        # Masked so that ``total`` stays a small int: the cost is the loop, not bignum growth.
        total = (total + ((i * 31) ^ (total >> 3))) & 0xFFFFFFFF
    return total


def cold_loop(n):
    return sum(i * i for i in range(n))


def work(deadline):
    while time.monotonic() < deadline:
        hot_loop(90_000)
        cold_loop(40_000)


def main():
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 4.0
    child = None
    if "--child" in sys.argv[2:]:
        child = subprocess.Popen([sys.executable, __file__, str(seconds)])
    deadline = time.monotonic() + seconds
    worker = threading.Thread(target=work, args=(deadline,), name="profkit-worker")
    worker.start()
    worker.join()
    if child is not None:
        child.wait()


if __name__ == "__main__":
    main()

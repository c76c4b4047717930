# SPDX-License-Identifier: Apache-2.0
"""A Python target that leaks: grow() keeps 20 KB every 5 ms (about 4 MB/s) until killed."""
import time

kept = []


def grow():
    kept.append(bytearray(20000))


print("ready", flush=True)
while True:
    grow()
    time.sleep(0.005)

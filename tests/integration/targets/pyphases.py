# SPDX-License-Identifier: Apache-2.0
"""A Python target with a time structure, for the timed-sample tests (test_timeline.py).

    python pyphases.py phases [SECONDS]   phase_a() for SECONDS (3), then phase_b() for as long;
                                          prints "A <epoch>", "B <epoch>" and "end <epoch>"
    python pyphases.py threads [SECONDS]  two threads, alpha-worker in alpha_work() and
                                          beta-worker in beta_work(), for SECONDS (6); the main
                                          thread waits for them (idle); prints "ready"
    python pyphases.py bursts [SECONDS]   alpha-worker in alpha_work() all the time, beta-worker
                                          in beta_work() for 0.2 s then asleep for 0.2 s, for
                                          SECONDS (6); prints "ready"
"""
import sys
import threading
import time


# Each function loops itself (no shared helper), so that it is the leaf of its samples.
def phase_a(seconds):
    end, total = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        for i in range(2000):
            total += (i * i) % 7
    return total


def phase_b(seconds):
    end, total = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        for i in range(2000):
            total += (i * i) % 5
    return total


def alpha_work(seconds):
    end, total = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        for i in range(2000):
            total += (i * i) % 3
    return total


def beta_work(seconds):
    end, total = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        for i in range(2000):
            total += (i * i) % 11
    return total


def _bursts(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        beta_work(0.2)
        time.sleep(0.2)


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "phases"
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else (3.0 if mode == "phases" else 6.0)
    if mode == "phases":
        time.sleep(0.5)
        print("A", time.time(), flush=True)
        phase_a(seconds)
        print("B", time.time(), flush=True)
        phase_b(seconds)
        print("end", time.time(), flush=True)
        return
    workers = [threading.Thread(target=alpha_work, args=(seconds,), name="alpha-worker"),
               threading.Thread(target=beta_work if mode == "threads" else _bursts, args=(seconds,),
                                name="beta-worker")]
    for w in workers:
        w.start()
    print("ready", flush=True)
    for w in workers:
        w.join()


if __name__ == "__main__":
    main()

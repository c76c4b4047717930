# SPDX-License-Identifier: Apache-2.0
"""A Python target for ``profkit dump``: one thread blocked on a lock that another holds.

    python lockwait.py [EXTRA_THREADS]

Thread ``profkit-holder`` takes ``LOCK`` in :func:`hold_the_lock` and then waits for ever;
thread ``profkit-waiter`` blocks in :func:`wait_for_the_lock` trying to take it. EXTRA_THREADS
(default 0) more threads ``profkit-idle-N`` wait 100 calls deep in :func:`idle_deep`: many deep
threads make py-spy take long enough to be caught attached. Prints ``ready`` once the waiter
is blocked in the kernel (its /proc state is S).
"""
import sys
import threading

LOCK = threading.Lock()
HELD = threading.Event()
NEVER = threading.Event()


def hold_the_lock():
    with LOCK:
        HELD.set()
        NEVER.wait()


def wait_for_the_lock():
    with LOCK:
        print("never", flush=True)


def idle_deep(depth):
    if depth:
        return idle_deep(depth - 1)
    NEVER.wait()


def _state(tid):
    try:
        with open(f"/proc/self/task/{tid}/stat") as fh:
            stat = fh.read()
    except FileNotFoundError:
        return None
    return stat[stat.rindex(")") + 2:].split(" ", 1)[0]


def main(extra):
    holder = threading.Thread(target=hold_the_lock, name="profkit-holder", daemon=True)
    holder.start()
    HELD.wait()
    waiter = threading.Thread(target=wait_for_the_lock, name="profkit-waiter", daemon=True)
    waiter.start()
    for i in range(extra):
        threading.Thread(target=idle_deep, args=(100,), name=f"profkit-idle-{i}", daemon=True).start()
    while waiter.native_id is None or _state(waiter.native_id) != "S":  # blocked in the kernel
        NEVER.wait(0.01)
    print("ready", flush=True)
    NEVER.wait()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 0)

# SPDX-License-Identifier: Apache-2.0
"""What tests share: run directories made by hand, processes, free ports, and waiting for a
condition with a deadline (never a fixed sleep before a signal or an assertion)."""
import os
import socket
import time

from profkit.rundir import RunDir
from profkit.runrecord import RunRecord, TargetRecord


def make_run(path, *, name="x", pids=(1,), runtime="python", **fields) -> RunDir:
    """A run directory with a record of its own (status running), as a run would create it."""
    record = RunRecord(targets=[TargetRecord(p, name if i == 0 else "", runtime) for i, p in enumerate(pids)], **fields)
    return RunDir.create(str(path), record)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout, what, interval=0.05):
    """Poll ``predicate`` until it returns something true (returned) or ``timeout`` seconds pass
    (AssertionError naming ``what``). A predicate that raises OSError or ValueError (a file still
    being written) is not yet true."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, ValueError) as e:
            last = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}" + (f" (last: {last})" if last else ""))
        time.sleep(interval)


def built_tool(name: str, version: str):
    """The path of a tool .ci/tools built (``~/.cache/profkit/bin/NAME-VERSION``), or None."""
    path = os.path.join(os.path.expanduser("~"), ".cache", "profkit", "bin", f"{name}-{version}")
    return path if os.access(path, os.X_OK) else None

# SPDX-License-Identifier: Apache-2.0
"""The JVM's own heap dump on OutOfMemoryError (``-XX:+HeapDumpOnOutOfMemoryError``), found and
analysed when the heap runs out during ``profkit heap``.

    at the start  the flags (jcmd VM.flags, else /proc/PID/cmdline): HeapDumpOnOutOfMemoryError,
                  HeapDumpPath (a directory → java_pidPID.hprof in it; a file; unset → the JVM's
                  working directory); a handle on the target's root directory, so a container's
                  file system can still be read after the JVM has died
    at the end    a dump at that path written during the run means the heap ran out: the target
                  died of it (or survived it); profkit says so and reads the dump
    the verdict   a leak holds its memory from durable roots (static fields, threads): the paths
                  show them; when most of the heap was held only by one thread's stack (one request
                  in progress: a payload bigger than the heap), it is not a leak, and the report
                  says what that thread was allocating (its stack at the dump, the classes it held)
"""
from __future__ import annotations

import os
import time
from typing import Dict, Optional

from profkit.engine.probe import Probe, RunContext
from profkit.targets import process_state

__all__ = ["OomDumpProbe", "oom_results"]

#: the share of the live heap held only by one thread's stack above which an OOM is not a leak
STACK_SHARE = 0.5


def _cmdline_flags(pid: int) -> Dict[str, str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            argv = fh.read().decode("utf-8", "replace").split("\0")
    except OSError:
        return {}
    out: Dict[str, str] = {}
    for a in argv:
        if a.startswith("-XX:+") or a.startswith("-XX:-"):
            out[a[5:]] = "true" if a[3] == "+" else "false"
        elif a.startswith("-XX:") and "=" in a:
            k, v = a[4:].split("=", 1)
            out[k] = v
    return out


class OomDumpProbe(Probe):
    """Watches for the heap dump a JVM writes when it runs out of heap."""

    id = "oom-dump"
    kind = "heap"
    without = "no OutOfMemoryError heap dump analysis"

    def __init__(self, pid: int):
        super().__init__()
        self.pid = pid
        self.enabled = False
        self.path: Optional[str] = None        # as the JVM names it
        self.found: Optional[Dict[str, object]] = None
        self._root_fd: Optional[int] = None
        self._cwd: Optional[str] = None

    def start(self, ctx: RunContext) -> None:
        from profkit.heap.dump import _same_mount_ns

        self.t0 = time.time()
        flags = dict(_cmdline_flags(self.pid))
        flags.update((ctx.results.get("jvm") or {}).get("flags") or {})
        self.enabled = flags.get("HeapDumpOnOutOfMemoryError") == "true"
        if not self.enabled:
            return
        try:
            self._cwd = os.readlink(f"/proc/{self.pid}/cwd")
        except OSError:
            self._cwd = None
        where = flags.get("HeapDumpPath") or ""
        name = f"java_pid{self.pid}.hprof"
        if not where:
            self.path = os.path.join(self._cwd or "/", name)
        else:
            if not where.startswith("/"):
                where = os.path.join(self._cwd or "/", where)
            self.path = where
            self._is_dir_hint = name
        if not _same_mount_ns(self.pid):
            try:
                self._root_fd = os.open(f"/proc/{self.pid}/root", os.O_RDONLY | os.O_DIRECTORY)
            except OSError:
                self._root_fd = None
        self.attach_record(ctx).detail["heap_dump_path"] = self.path

    def _host(self, path: str) -> str:
        return f"/proc/self/fd/{self._root_fd}{path}" if self._root_fd is not None else path

    def _candidate(self) -> Optional[str]:
        assert self.path is not None
        host = self._host(self.path)
        if os.path.isdir(host):
            host = os.path.join(host, getattr(self, "_is_dir_hint", f"java_pid{self.pid}.hprof"))
        return host

    def finish(self, ctx: RunContext) -> None:
        if not self.enabled or self.path is None:
            return
        gone = process_state(self.pid) in (None, "Z")
        host = self._candidate()
        try:
            st = os.stat(host)
        except (OSError, TypeError):
            return
        if st.st_mtime < self.t0 - 1:
            return  # an older dump: not this run's
        if not gone:  # the JVM may still be writing it
            _wait_stable(host)
            st = os.stat(host)
        self.found = {"file": self.path, "bytes": st.st_size, "target_exited": gone}
        self.host_path = host
        ctx.warn(("the target died of an OutOfMemoryError" if gone else "the target ran out of heap "
                  "(OutOfMemoryError) during the run") + f": the JVM wrote its heap dump to {self.path}")


#: frameworks whose frames are not the application's own
FRAMEWORKS = ("org.springframework.", "com.fasterxml.", "org.apache.", "jakarta.", "javax.", "io.netty.",
              "io.micrometer.", "ch.qos.", "org.slf4j.", "reactor.")


def _application(frame: str) -> bool:
    from collectors.jvm_heap import is_application_class

    return is_application_class(frame.rsplit(".", 1)[0]) and not frame.startswith(FRAMEWORKS)


def _wait_stable(path: str, timeout: float = 60.0) -> None:
    last, deadline = -1, time.monotonic() + timeout
    while time.monotonic() < deadline:
        size = os.stat(path).st_size
        if size == last:
            return
        last = size
        time.sleep(1.0)


def oom_results(ctx: RunContext, heap: Dict[str, object], probe: OomDumpProbe) -> None:
    """``heap.json``'s ``oom``: the JVM's own dump analysed (paths for the suspects), and whether
    it is a leak or one thread's work in progress bigger than the heap."""
    from profkit.errors import ProfkitError
    from profkit.heap.dump import analyse_dump

    if probe.found is None:
        return
    info: Dict[str, object] = dict(probe.found)
    heap["oom"] = info
    try:
        heap.setdefault("suspects", [])
        info["analysis"] = analyse_dump(probe.host_path, heap["suspects"], stack=True)  # type: ignore[arg-type]
    except ProfkitError as e:
        ctx.warn(f"the OutOfMemoryError heap dump was not analysed: {e.message}")
        info["analysis"] = None
        return
    stack = info["analysis"].pop("stack")  # type: ignore[union-attr]
    info["stack_held"] = stack
    mib = stack["bytes"] / 2**20
    if stack["share"] >= STACK_SHARE:
        top = ", ".join(c["name"] for c in stack["classes"][:3])
        frames = stack["thread_stack"]
        where = " ← ".join(frames[:4]) or "(no stack recorded)"
        app = next((f for f in frames if _application(f)), None)
        if app and app not in frames[:4]:
            where += f" ← … ← {app}"
        info["leak"] = False
        info["text"] = (f"not a leak: when the heap ran out, {mib:.1f} MiB ({stack['share']:.0%} of the live heap) was "
                        f"held only by one thread's stack, work in progress that no cache keeps: one allocation bigger "
                        f"than the heap (a huge payload?). It held mostly {top}; the thread was in {where}")
        heap["classification"] = "out of memory (not a leak)"
        heap["projection"] = {"seconds_to_limit": None, "text": "no projection: one request's work exceeded the heap"}
    else:
        info["leak"] = True
        info["text"] = (f"the heap ran out holding memory that static fields or threads keep (only {mib:.1f} MiB was "
                        f"work in progress on threads' stacks): a leak; the paths below show what holds it")
    heap["oom_verdict"] = info["text"]
    heap["heap_dump"] = heap.get("heap_dump") or {"trigger": "by the JVM on OutOfMemoryError", "bytes": info["bytes"],
                                                  "taken_at_s": None, "pause_s": None, "file": info["file"],
                                                  "analysis": info["analysis"]}

# SPDX-License-Identifier: Apache-2.0
"""``profkit heap --heap-dump``: one heap dump of the JVM (``jcmd PID GC.heap_dump``) and what
holds its suspects' memory.

    when   as soon as the heap's projected time to -Xmx (jstat so far) is shorter than the run's
           time left, else at the run's end; never on a target that is gone
    where  the run's raw/ (the JVM writes the file itself: a JVM of another user gets a private
           directory of its own), or the target's /tmp when it runs in another mount namespace
           (a container), read back through /proc/PID/root
    checks free disk space first (the dump is about the heap's used bytes, with 8-byte
           references); mode 0600 (a dump holds the application's secrets and personal data);
           deleted once analysed unless --keep-dump
    then   retaining paths (profkit.heap.retain) for the top suspects into heap.json: class
           names, field names, counts and sizes only, never a value

Only profkit's own jcmd calls are started; the JVM pauses while it writes the dump (stated).
"""
from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from typing import Dict, List, Optional

from profkit.engine.probe import Probe, RunContext
from profkit.targets import process_state

__all__ = ["HeapDumpProbe", "analyse_dump", "TOP_RETAINED"]

#: suspects given retaining paths
TOP_RETAINED = 5
#: how often the early trigger looks at the heap's projection
WATCH_INTERVAL = 2.0
_CREATED = re.compile(r"Heap dump file created \[(\d+) bytes in ([\d.]+) secs\]")


def _same_mount_ns(pid: int) -> bool:
    """Whether the target sees the file system as profkit does (its mount namespace and root)."""
    try:
        if os.readlink(f"/proc/{pid}/ns/mnt") != os.readlink("/proc/self/ns/mnt"):
            return False
        a, b = os.stat(f"/proc/{pid}/root/"), os.stat("/")
    except OSError:
        return True
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


class HeapDumpProbe(Probe):
    """Takes the run's heap dump (early when the heap will run out before the run ends)."""

    id = "heap-dump"
    kind = "heap"
    without = "no heap dump (no retaining paths)"

    def __init__(self, pid: int, keep: bool = False, early: bool = True):
        super().__init__()
        self.pid, self.keep, self.early = pid, keep, early
        self.result: Optional[Dict[str, object]] = None
        self.host_path: Optional[str] = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._warnings: List[str] = []

    def start(self, ctx: RunContext) -> None:
        from collectors.jvm import find_jdk_tool
        from collectors.jvm_heap import INSTALL_HINT
        from profkit.errors import CollectorNotInstalled

        self.ctx = ctx
        self.jcmd = find_jdk_tool("jcmd")
        if self.jcmd is None:
            raise CollectorNotInstalled("jcmd (JDK) is not installed", hint=INSTALL_HINT)
        self.attach_record(ctx)
        if self.early:
            self._thread = threading.Thread(target=self._watch, name="heap-dump-watch", daemon=True)
            self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(WATCH_INTERVAL):
            eta = self._eta()
            left = self.ctx.duration - (time.monotonic() - self.ctx.t0)
            if eta is not None and eta < left - WATCH_INTERVAL:
                self._take(f"early: the heap was projected to reach -Xmx in {eta:.0f} s, "
                           f"before the run's end ({left:.0f} s left)")
                return

    def _eta(self) -> Optional[float]:
        """Seconds to -Xmx projected from the jstat rows so far (None: not growing, or unknown)."""
        from collectors.jvm_heap import parse_jstat
        from profkit import growth

        flags = (self.ctx.results.get("jvm") or {}).get("flags") or {}
        stream = self.ctx.results.get("jstat_stream")
        if not str(flags.get("MaxHeapSize", "")).isdigit() or stream is None:
            return None
        try:
            with open(stream.path, encoding="utf-8", errors="replace") as fh:
                rows = parse_jstat(fh.read())
        except OSError:
            return None
        if len(rows) < 8:
            return None
        pts = [(r["jvm_t"] if r["jvm_t"] is not None else i, r["heap_used"]) for i, r in enumerate(rows)]
        marks = [i > 0 and rows[i]["gc_count"] > rows[i - 1]["gc_count"] for i in range(len(rows))]
        limit = growth.Limit("-Xmx", int(flags["MaxHeapSize"]), "jcmd VM.flags MaxHeapSize")
        verdict = growth.analyse(pts, [limit], gc_marks=marks, what="heap")
        if verdict.get("classification") != "growing":
            return None
        return (verdict.get("projection") or {}).get("seconds_to_limit")

    def stop(self, reason: str) -> None:
        self._stop.set()

    def finish(self, ctx: RunContext) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self.result is None and process_state(self.pid) not in (None, "Z"):
            self._take("at the end of the run")
        for w in self._warnings:
            ctx.warn(w)
        if self.result is None and not self._warnings:
            ctx.warn("no heap dump: the target exited before it could be taken")

    def status(self) -> str:
        return f"heap dump {int(self.result['bytes']) / 2**20:.0f} MiB" if self.result else ""

    # -- the dump itself --
    def _place(self) -> tuple:
        """(the path the JVM writes, the path profkit reads it at)."""
        name = f"heap-{self.pid}-{int(time.time())}.hprof"
        if not _same_mount_ns(self.pid):
            target = f"/tmp/profkit-{name}"
            return target, f"/proc/{self.pid}/root{target}"
        try:
            uid = os.stat(f"/proc/{self.pid}").st_uid
        except OSError:
            uid = os.getuid()
        if uid == os.getuid():
            path = os.path.join(self.ctx.run.raw_dir, name)
            return path, path
        private = tempfile.mkdtemp(prefix="profkit-heap-")
        os.chown(private, uid, -1)
        path = os.path.join(private, name)
        return path, path

    def _expected_bytes(self) -> int:
        stream = self.ctx.results.get("jstat_stream")
        used = 0
        if stream is not None:
            from collectors.jvm_heap import parse_jstat
            try:
                with open(stream.path, encoding="utf-8", errors="replace") as fh:
                    rows = parse_jstat(fh.read())
                used = rows[-1]["heap_used"] if rows else 0
            except OSError:
                pass
        if not used:
            try:
                import psutil
                used = psutil.Process(self.pid).memory_info().rss
            except Exception:  # noqa: BLE001 - an estimate only
                used = 0
        return int(used * 1.5) + (32 << 20)

    def _take(self, trigger: str) -> None:
        from collectors.jvm import attach_preconditions, run_jcmd
        from profkit.errors import ProfkitError

        with self._lock:
            if self.result is not None:
                return
            try:
                attach_preconditions(self.pid)
                target_path, host_path = self._place()
                need = self._expected_bytes()
                free = shutil.disk_usage(os.path.dirname(host_path)).free
                if free < need:
                    self._warnings.append(f"no heap dump: {free / 2**20:.0f} MiB free at {os.path.dirname(host_path)}, "
                                          f"about {need / 2**20:.0f} MiB needed")
                    return
                t0 = time.monotonic()
                argv, rc, out = run_jcmd(self.jcmd, self.pid, ["GC.heap_dump", target_path], timeout=600.0)
                wall = time.monotonic() - t0
            except (ProfkitError, OSError) as e:
                self._warnings.append(f"no heap dump: {getattr(e, 'message', None) or e}")
                return
            if self.entry is not None:
                self.entry.set_commands([argv])
            m = _CREATED.search(out)
            if rc != 0 or not m or not os.path.exists(host_path):
                self._warnings.append(f"no heap dump: jcmd GC.heap_dump: {' '.join(out.split())[:200]}")
                return
            os.chmod(host_path, 0o600)
            self.host_path = host_path
            self.result = {"trigger": trigger, "taken_at_s": round(t0 - self.ctx.t0, 2), "bytes": int(m.group(1)),
                           "pause_s": float(m.group(2)), "jcmd_seconds": round(wall, 2),
                           "in_container": target_path != host_path and host_path.startswith("/proc/")}

    def dispose(self, ctx: RunContext) -> Optional[str]:
        """Delete the dump, or with --keep-dump move it into raw/ and return its run-relative path."""
        if self.host_path is None or not os.path.exists(self.host_path):
            return None
        if not self.keep:
            os.unlink(self.host_path)
            parent = os.path.dirname(self.host_path)
            if os.path.basename(parent).startswith("profkit-heap-"):
                shutil.rmtree(parent, ignore_errors=True)
            return None
        name = os.path.basename(self.host_path)
        dest = os.path.join(ctx.run.raw_dir, name[len("profkit-"):] if name.startswith("profkit-") else name)
        if os.path.abspath(dest) != os.path.abspath(self.host_path):
            shutil.move(self.host_path, dest)
        os.chmod(dest, 0o600)
        return ctx.run.relative(dest)


def analyse_dump(path: str, suspects: List[dict], top: int = TOP_RETAINED, stack: bool = False) -> dict:
    """Read the dump and give each of the first ``top`` suspects its ``retained_by`` list
    (without suspects: the dump's largest classes become them). Returns the analysis' own
    figures (seconds, objects, reachable bytes; with ``stack``, what only threads' stacks hold)."""
    try:
        import numpy  # noqa: F401
    except ImportError:
        from profkit.errors import CollectorNotInstalled

        raise CollectorNotInstalled("reading a heap dump needs numpy", hint="pip install 'profkit[heap]' (or numpy)") from None
    from profkit.heap.hprof import read_hprof
    from profkit.heap.retain import Paths, class_histogram, retaining_paths, stack_held

    t0 = time.monotonic()
    g = read_hprof(path)
    p = Paths(g)
    if not suspects:
        suspects.extend({"name": name, "kind": "largest class in the dump", "bytes": b, "instances": n, "site": "",
                         "growth": None, "holder": None} for name, n, b in class_histogram(g, p)[:top])
    from profkit.heap.oom import FRAMEWORKS
    from collectors.jvm_heap import is_application_class

    # the top ones, and the application's own classes further down (the cache's entry class)
    chosen = suspects[:top] + [s for s in suspects[top:3 * top]
                               if is_application_class(str(s["name"])) and not str(s["name"]).startswith(FRAMEWORKS)][:3]
    for s in chosen:
        s["retained_by"] = [{k: r[k] for k in ("path", "fields", "instances", "bytes", "retained_bytes")}
                            for r in retaining_paths(g, p, str(s["name"]))]
    out = {"seconds": round(time.monotonic() - t0, 2), "objects": g.nodes, "references": int(g.dst.size),
           "reachable_bytes": p.reachable_bytes}
    if stack:
        out["stack"] = stack_held(g, p)
    return out

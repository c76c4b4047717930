# SPDX-License-Identifier: Apache-2.0
"""``profkit doctor``'s trials: each recording collector really records a throwaway process that
profkit starts for the purpose, so that "ready" means it worked here, not that a binary exists.

    py-spy          records a busy Python child for 1 s
    memray          attaches to a Python child that allocates, for 1 s
    perf            records a busy Python child for 1 s
    async-profiler  loads its agent into a fresh `java -version` (-agentpath), writing a profile
    jfr             records a fresh `java -version` (-XX:StartFlightRecording) and reads it back

Every child is profkit's own and is killed at the end; nothing touches another process.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from typing import Callable, Dict, Optional, Tuple

from profkit.errors import Diagnostics, ProfkitError

__all__ = ["TRIALS", "run_trial"]

_BUSY = "import time\nprint('ready', flush=True)\nwhile True:\n    x = [bytearray(256) for _ in range(200)]\n    sum(range(5000))\n"


def _python_child() -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", _BUSY], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    assert proc.stdout is not None
    proc.stdout.readline()  # "ready": the interpreter is up and allocating
    return proc


def _record_child(cid: str, mode: str) -> str:
    """Record a busy Python child with collector ``cid`` for a second; returns what it recorded."""
    import collectors
    from collectors.base import RecordRequest
    from profkit.engine.captures import parse_captures

    c = collectors.get(cid)
    child = _python_child()
    try:
        with tempfile.TemporaryDirectory(prefix="profkit-doctor-") as tmp:
            rec = c.record(RecordRequest((child.pid,), "python", mode, 100, 1.0, tmp, None))
            raws = rec.finish(timeout=30)
            profile, _ = parse_captures(c, raws, rec.parse_options, {child.pid: "python3"}, Diagnostics())
            if not profile:
                raise ProfkitError(f"{cid} recorded nothing from a busy process")
            from profkit.reports.text import format_quantity

            what = "" if profile.unit in ("nanoseconds", "bytes") else f" {profile.unit}"
            return f"recorded a busy Python process for 1 s: {format_quantity(profile.total, profile.unit)}{what}"
    finally:
        child.kill()
        child.wait()


def _java(args, tmp: str) -> subprocess.CompletedProcess:
    java = shutil.which("java")
    if java is None:
        raise ProfkitError("java is not installed (apt-get install openjdk-17-jdk-headless)")
    return subprocess.run([java, *args, "-version"], capture_output=True, text=True, timeout=60, cwd=tmp)


def _async_profiler() -> str:
    from collectors.async_profiler_lib import find_library

    lib = find_library()
    with tempfile.TemporaryDirectory(prefix="profkit-doctor-") as tmp:
        out = os.path.join(tmp, "ap.collapsed")
        done = _java([f"-agentpath:{lib.path}=start,event=itimer,interval=1ms,file={out},collapsed"], tmp)
        if done.returncode != 0 or not os.path.exists(out):
            raise ProfkitError(f"the agent did not load into a JVM: {' '.join(done.stderr.split())[:200]}")
    return f"loaded {lib.path} into a JVM"


def _jfr() -> str:
    from collectors.jfr_print import check_recording

    with tempfile.TemporaryDirectory(prefix="profkit-doctor-") as tmp:
        out = os.path.join(tmp, "t.jfr")
        done = _java([f"-XX:StartFlightRecording=filename={out},settings=profile"], tmp)
        if done.returncode != 0 or not os.path.exists(out):
            raise ProfkitError(f"a JVM did not write a recording: {' '.join(done.stderr.split())[:200]}")
        check_recording(out, out)
    return "a JVM wrote a readable recording"


#: collector id → the trial that proves it records here.
TRIALS: Dict[str, Callable[[], str]] = {
    "py-spy": lambda: _record_child("py-spy", "cpu"),
    "memray": lambda: _record_child("memray", "alloc"),
    "perf": lambda: _record_child("perf", "cpu"),
    "async-profiler": _async_profiler,
    "jfr": _jfr,
}


def run_trial(cid: str) -> Optional[Tuple[bool, str]]:
    """(worked, what happened) of the collector's trial, or None if it has none."""
    trial = TRIALS.get(cid)
    if trial is None:
        return None
    try:
        return True, trial()
    except ProfkitError as e:
        return False, e.message + (f"; fix: {e.hint}" if e.hint else "")
    except (OSError, subprocess.SubprocessError) as e:
        return False, f"{type(e).__name__}: {e}"

# SPDX-License-Identifier: Apache-2.0
"""``profkit doctor``: permissions, tools and stack-quality advice, each as one line with a fix."""
from __future__ import annotations

import os
import re
import shutil
import sys
from typing import Iterator, Optional, Tuple

from profkit.errors import ProfkitError
from profkit.targets import (CAP_PERFMON, CAP_SYS_ADMIN, CAP_SYS_PTRACE, has_cap, in_container, inspect,
                             perf_event_paranoid, ptrace_scope)

__all__ = ["diagnose"]

Line = Tuple[str, str]


def _permissions() -> Iterator[Line]:
    scope = ptrace_scope()
    root = os.geteuid() == 0
    if scope is None:
        yield "OK", "ptrace: no Yama restrictions (kernel.yama.ptrace_scope absent)"
    elif scope == 0 or (scope == 1 and (root or has_cap(CAP_SYS_PTRACE))):
        yield "OK", f"ptrace: kernel.yama.ptrace_scope={scope}"
    elif scope == 1:
        yield "WARN", ("ptrace: kernel.yama.ptrace_scope=1 lets you attach only to your own descendants; "
                       "fix: run as root, or `sudo sysctl kernel.yama.ptrace_scope=0`")
    else:
        yield "FAIL", (f"ptrace: kernel.yama.ptrace_scope={scope} forbids attaching"
                       + ("" if scope == 3 else "; fix: run as root with CAP_SYS_PTRACE"))
    if has_cap(CAP_SYS_PTRACE):
        yield "OK", "CAP_SYS_PTRACE: present"
    elif root:
        yield "FAIL", "CAP_SYS_PTRACE: missing although root (a container?); fix: docker run --cap-add SYS_PTRACE"
    else:
        yield "INFO", "CAP_SYS_PTRACE: not held (fine for processes of your own user)"
    paranoid = perf_event_paranoid()
    perf_cap = root or has_cap(CAP_SYS_ADMIN) or has_cap(CAP_PERFMON)
    if paranoid is None:
        yield "WARN", "perf: no perf_event support in this kernel (/proc/sys/kernel/perf_event_paranoid absent)"
    elif paranoid <= 1 or perf_cap:
        yield "OK", f"perf: kernel.perf_event_paranoid={paranoid}" + (" (root/CAP_PERFMON overrides it)" if paranoid > 1 else "")
    else:
        yield "WARN", (f"perf: kernel.perf_event_paranoid={paranoid} limits perf to your own user space; "
                       "fix: `sudo sysctl kernel.perf_event_paranoid=1` or run as root")
    if in_container():
        yield "INFO", ("running in a container: to profile another container's process, start this one with "
                       "--pid=host --cap-add SYS_PTRACE (and --cap-add PERFMON or --privileged for perf)")


def _tools(trials: bool = True) -> Iterator[Line]:
    import collectors

    from profkit.trials import run_trial

    for cid, c in collectors.load_all().items():
        if c.RecordOptions is None:
            continue
        a = c.check()
        if not a.ok:
            yield "WARN", f"{cid}: {a.reason}" + (f"; fix: {a.hint}" if a.hint else "")
            continue
        tried = run_trial(cid) if trials else None
        if tried is None:
            yield "OK", f"{cid} {a.version}: installed".replace("  ", " ")
        elif tried[0]:
            yield "OK", f"{cid} {a.version}: {tried[1]}".replace("  ", " ")
        else:
            yield "FAIL", f"{cid} {a.version} is installed but did not record here: {tried[1]}".replace("  ", " ")
    if not shutil.which("lldb"):
        yield "INFO", "lldb: not found (memray attach needs it here): apt-get install lldb"


def _target(pid: int) -> Iterator[Line]:
    try:
        t = inspect(pid)
    except ProfkitError as e:
        yield "FAIL", f"pid {pid}: {e.message}"
        return
    yield "OK", f"pid {pid}: {t.name}, runtime {t.runtime}, user {t.uid}"
    cmd = " ".join(t.cmdline)
    if t.runtime == "jvm":
        if "-XX:+PreserveFramePointer" not in cmd:
            yield "WARN", ("JVM without -XX:+PreserveFramePointer: perf stacks through Java code break; "
                           "async-profiler and JFR are unaffected (they are the default)")
        if "-XX:+HeapDumpOnOutOfMemoryError" not in cmd:
            yield "INFO", "JVM without -XX:+HeapDumpOnOutOfMemoryError: an OOM will leave no heap dump"
    elif t.runtime == "python":
        m = re.search(r"python(\d+)\.(\d+)", t.exe)
        if m and (int(m.group(1)), int(m.group(2))) >= (3, 12):
            if "-X perf" not in cmd and "-Xperf" not in cmd:
                yield "INFO", "Python 3.12+: start it with `-X perf` (or PYTHONPERFSUPPORT=1) so perf sees Python functions"
        else:
            yield "INFO", "stock CPython before 3.12 has no perf trampolines: use py-spy (the default) for Python stacks"
    if t.uid != os.geteuid() and os.geteuid() != 0:
        yield "FAIL", f"pid {pid} belongs to uid {t.uid}, not you: run profkit as that user or as root"
    from profkit.doctor_ns import namespace_lines

    yield from namespace_lines(pid, t.runtime)


def diagnose(pid: Optional[int] = None, trials: bool = True) -> Iterator[Line]:
    """``(level, text)`` lines: OK, INFO, WARN or FAIL, each saying what to change. With
    ``trials`` each recording collector records a throwaway process first (:mod:`profkit.trials`)."""
    yield "INFO", f"python {sys.version.split()[0]} at {sys.executable}"
    yield from _permissions()
    yield from _tools(trials)
    if pid is not None:
        yield from _target(pid)

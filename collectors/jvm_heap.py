# SPDX-License-Identifier: Apache-2.0
"""JVM heap figures for ``profkit heap``: one long-running ``jstat``, class histograms, VM flags.

* ``jstat -gc -t PID INTERVAL_MS COUNT`` is started once and prints one line per interval into
  ``raw/jstat-PID.txt``: sampling costs the JVM nothing beyond reading its own hsperfdata
  counters (jstat reads the memory-mapped ``/tmp/hsperfdata_USER/PID`` file; no attach, no
  safepoint), and COUNT makes it end by itself. Sizes are in KB.
  https://docs.oracle.com/en/java/javase/17/docs/specs/man/jstat.html
* ``jcmd PID GC.class_histogram`` at the start and at the end: live objects per class (it runs
  a full GC first, so both are post-GC figures); the difference ranks the classes that grew.
* ``jcmd PID VM.flags``: ``MaxHeapSize`` (the ``-Xmx`` limit) and ``HeapDumpOnOutOfMemoryError``.

Parsers are pure functions of the tools' text, unit-tested on recorded output in
``tests/data/heap/``.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from profkit.atomic import atomic_write
from profkit.errors import CollectorFailed, CollectorNotInstalled
from profkit.targets import ChildTool

from collectors.jvm import INSTALL_HINT, attach_preconditions, find_jdk_tool, in_container, run_jcmd

__all__ = ["ClassGrowth", "JstatStream", "class_histogram", "diff_histograms", "display_class",
           "is_application_class", "parse_histogram", "parse_jstat", "parse_vm_flags", "vm_flags"]

#: Packages of the JDK itself: classes there are containers, not the thing that leaks.
JDK_PREFIXES = ("java.", "javax.", "jdk.", "sun.", "com.sun.", "org.w3c.", "org.xml.", "org.ietf.")
_PRIMITIVES = {"B": "byte", "C": "char", "D": "double", "F": "float", "I": "int", "J": "long", "S": "short",
               "Z": "boolean"}
_HIST_LINE = re.compile(r"^\s*\d+:\s+(\d+)\s+(\d+)\s+(\S+)(?:\s+\(.*\))?\s*$")
#: A lambda or hidden class: ``example.JsonService$$Lambda$15/0x00007f3624012210``.
_HIDDEN = re.compile(r"/0x[0-9a-f]+$")


# -- jstat -----------------------------------------------------------------------------------
class JstatStream:
    """``jstat -gc -t PID INTERVAL COUNT`` writing into ``raw/jstat-PID.txt``; it ends by itself."""

    def __init__(self, pid: int, interval: float, duration: float, raw_dir: str):
        jstat = find_jdk_tool("jstat")
        if jstat is None:
            raise CollectorNotInstalled("jstat (JDK) is not installed", hint=INSTALL_HINT)
        ms = max(100, int(interval * 1000))
        count = int(duration / interval) + 3
        self.path = os.path.join(raw_dir, f"jstat-{pid}.txt")
        self.argv = [jstat, "-gc", "-t", str(pid), str(ms), str(count)]
        self._out = open(self.path, "wb")
        self.tool = ChildTool(self.argv, stdout=self._out)
        try:
            self.tool.start()
        except OSError as e:
            self._out.close()
            raise CollectorFailed(self.argv, 127, str(e), hint=INSTALL_HINT) from None

    def stop(self) -> None:
        """Stop jstat (profkit's own child) and close its file."""
        if self.tool.poll() is None:
            self.tool.stop(grace=2.0, term_grace=2.0)
        self._out.close()

    def error(self) -> str:
        """jstat's stderr, when it ended with an error."""
        rc = self.tool.poll()
        return self.tool.stderr_text() if rc not in (None, 0) else ""


def parse_jstat(text: str) -> List[dict]:
    """Rows of ``jstat -gc [-t]`` output in bytes and seconds.

    Each row: ``jvm_t`` (the JVM's uptime, with ``-t``), ``heap_used``, ``heap_committed``,
    ``pools`` ({eden, survivor, old, metaspace}: used/committed bytes), ``gc_count`` (young +
    full + concurrent), ``gc_time_s``. Header repeats, blank and cut lines are skipped.
    """
    rows: List[dict] = []
    header: Optional[List[str]] = None
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if "S0C" in parts:
            header = parts
            continue
        if header is None or len(parts) != len(header):
            continue
        try:
            v = dict(zip(header, (float(p.replace(",", ".")) if p != "-" else 0.0 for p in parts)))
        except ValueError:
            continue
        k = 1024.0
        pools = {
            "eden": {"used": v.get("EU", 0) * k, "committed": v.get("EC", 0) * k},
            "survivor": {"used": (v.get("S0U", 0) + v.get("S1U", 0)) * k, "committed": (v.get("S0C", 0) + v.get("S1C", 0)) * k},
            "old": {"used": v.get("OU", 0) * k, "committed": v.get("OC", 0) * k},
            "metaspace": {"used": v.get("MU", 0) * k, "committed": v.get("MC", 0) * k},
        }
        rows.append({
            "jvm_t": v.get("Timestamp"),
            "heap_used": int(sum(pools[p]["used"] for p in ("eden", "survivor", "old"))),
            "heap_committed": int(sum(pools[p]["committed"] for p in ("eden", "survivor", "old"))),
            "pools": {p: {kk: int(vv) for kk, vv in d.items()} for p, d in pools.items()},
            "young_gc": int(v.get("YGC", 0)), "full_gc": int(v.get("FGC", 0)), "concurrent_gc": int(v.get("CGC", 0)),
            "gc_count": int(v.get("YGC", 0) + v.get("FGC", 0) + v.get("CGC", 0)),
            "gc_time_s": v.get("GCT", 0.0),
        })
    return rows


# -- VM flags --------------------------------------------------------------------------------
def parse_vm_flags(text: str) -> Dict[str, str]:
    """``-XX:MaxHeapSize=268435456 -XX:+UseG1GC …`` → ``{"MaxHeapSize": "268435456", "UseG1GC": "true"}``."""
    flags: Dict[str, str] = {}
    for tok in text.split():
        if not tok.startswith("-XX:"):
            continue
        body = tok[4:]
        if body[:1] in "+-":
            flags[body[1:]] = "true" if body[0] == "+" else "false"
        elif "=" in body:
            name, value = body.split("=", 1)
            flags[name] = value
    return flags


def vm_flags(pid: int) -> Dict[str, str]:
    """The target JVM's flags (``jcmd PID VM.flags``); one short jcmd call."""
    jcmd = find_jdk_tool("jcmd")
    if jcmd is None and not in_container(pid):  # a JVM in a container is spoken to over its socket
        raise CollectorNotInstalled("jcmd (JDK) is not installed", hint=INSTALL_HINT)
    attach_preconditions(pid)
    argv, rc, out = run_jcmd(jcmd or "jcmd", pid, ["VM.flags"])
    if rc != 0:
        raise CollectorFailed(argv, rc, out)
    return parse_vm_flags(out)


# -- class histograms ------------------------------------------------------------------------
def display_class(name: str) -> str:
    """A histogram's class name for people: ``[B`` → ``byte[]``, ``[Ljava.lang.Object;`` → ``java.lang.Object[]``."""
    dims = 0
    while name.startswith("["):
        dims += 1
        name = name[1:]
    if dims:
        if name.startswith("L") and name.endswith(";"):
            name = name[1:-1]
        else:
            name = _PRIMITIVES.get(name, name)
    return name + "[]" * dims


def parse_histogram(text: str) -> Dict[str, Tuple[int, int]]:
    """``jcmd PID GC.class_histogram`` text → {class (display form): (instances, bytes)}.

    Hidden classes (lambdas) lose their address suffix, so the same lambda matches across two
    histograms; their figures add up.
    """
    out: Dict[str, Tuple[int, int]] = {}
    for line in text.splitlines():
        m = _HIST_LINE.match(line)
        if not m:
            continue
        name = _HIDDEN.sub("", display_class(m.group(3)))
        n, b = out.get(name, (0, 0))
        out[name] = (n + int(m.group(1)), b + int(m.group(2)))
    return out


def class_histogram(pid: int, path: str) -> Dict[str, Tuple[int, int]]:
    """Take a class histogram of a JVM, keep its text at ``path`` (raw/) and return it parsed."""
    jcmd = find_jdk_tool("jcmd")
    if jcmd is None and not in_container(pid):  # a JVM in a container is spoken to over its socket
        raise CollectorNotInstalled("jcmd (JDK) is not installed", hint=INSTALL_HINT)
    attach_preconditions(pid)
    argv, rc, out = run_jcmd(jcmd or "jcmd", pid, ["GC.class_histogram"], timeout=60.0)
    atomic_write(path, out + "\n")
    hist = parse_histogram(out)
    if rc != 0 or not hist:
        raise CollectorFailed(argv, rc, out)
    return hist


def is_application_class(name: str) -> bool:
    """True for a class of the application: not a JDK class, not an array."""
    return not name.endswith("[]") and not name.startswith(JDK_PREFIXES) and name not in _PRIMITIVES.values()


@dataclass
class ClassGrowth:
    """How one class grew between two histograms."""

    name: str
    bytes_start: int
    bytes_end: int
    instances_start: int
    instances_end: int
    application: bool
    holder: Optional[str] = None   #: for JDK/array types: the application class that most likely holds them

    @property
    def bytes_growth(self) -> int:
        return self.bytes_end - self.bytes_start

    @property
    def instances_growth(self) -> int:
        return self.instances_end - self.instances_start


def diff_histograms(start: Dict[str, Tuple[int, int]], end: Dict[str, Tuple[int, int]], top: int = 20) -> List[ClassGrowth]:
    """Classes that grew, application classes first (by bytes grown, then instances), then JDK and
    array types, each with the application class that most likely holds them: the one whose
    instance growth is closest to its own (a leaked ``Entry`` per request keeps one ``byte[]``,
    one ``HashMap$Node``, one ``Long`` per request too)."""
    rows = []
    for name in set(start) | set(end):
        n0, b0 = start.get(name, (0, 0))
        n1, b1 = end.get(name, (0, 0))
        if b1 - b0 <= 0 and n1 - n0 <= 0:
            continue
        rows.append(ClassGrowth(name, b0, b1, n0, n1, is_application_class(name)))
    key = lambda r: (-r.bytes_growth, -r.instances_growth, r.name)  # noqa: E731
    app = sorted((r for r in rows if r.application), key=key)
    other = sorted((r for r in rows if not r.application), key=key)
    growing_app = [a for a in app if a.instances_growth > 0]
    for r in other:
        if growing_app and r.instances_growth > 0:
            best = min(growing_app, key=lambda a: (abs(math.log(a.instances_growth / r.instances_growth)),
                                                   -a.bytes_growth))
            # only a plausible match: within a factor of 4 of the holder's own instance growth
            if abs(math.log(best.instances_growth / r.instances_growth)) <= math.log(4):
                r.holder = best.name
    return app[:top] + other[:top]

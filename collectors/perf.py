# SPDX-License-Identifier: Apache-2.0
"""``perf``: the collector, and live recording with ``perf record`` / ``perf script``.

The text of ``perf script`` is parsed by :mod:`collectors.perf_script` (collapsed exactly as
FlameGraph's ``stackcollapse-perf.pl``); its public names are re-exported here.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

from profkit.errors import CollectorFailed, CollectorNotInstalled, Diagnostics, ProfkitError
from profkit.inputs import Source
from profkit.model import Profile
from profkit.namespaces import host_path, namespaces_of
from profkit.targets import CAP_PERFMON, CAP_SYS_ADMIN, ChildTool, has_cap, perf_event_paranoid, read_small

from collectors.base import Availability, Collector, RecordRequest, Recording, Sniff, option, raw_path
from collectors.perf_script import EVENT_HEADER, PerfOptions, collapse, parse

__all__ = ["PerfCollector", "PerfOptions", "collapse", "parse"]


class PerfCollector(Collector):
    """Linux ``perf``: samples with call graphs, read from the text of ``perf script``."""

    id = "perf"
    summary = "Linux perf: 'perf script' text, collapsed as stackcollapse-perf.pl does"
    Options = PerfOptions

    def sniff(self, head: bytes) -> Sniff:
        """YES for event headers whose samples start with a frame line; NO for anything else
        (MAYBE for headers whose samples, as far as ``head`` goes, have no frames)."""
        lines = head.split(b"\n")
        if len(head) >= 65536:
            lines.pop()  # may be cut short
        in_sample = seen = False
        for line in lines:
            if line[:1] == b"#":
                continue
            if not line.strip():
                in_sample = False
            elif in_sample:
                return Sniff.YES if _SNIFF_FRAME.match(line) else Sniff.NO
            elif _looks_like_header(line):
                in_sample = seen = True
            else:
                return Sniff.NO
        return Sniff.MAYBE if seen else Sniff.NO

    def parse(self, source: Source, options: PerfOptions, diag: Diagnostics) -> Profile:
        return parse(source, options, diag)

    # -- live recording (see PerfRecording below) --
    modes = {"native": ("cpu",), "jvm": ("cpu",), "python": ("cpu",)}
    defaults = {"native": 1}

    def check(self, runtime: str = "", mode: str = "", options: Any = None) -> Availability:
        """perf installed and allowed to sample other processes (perf_event_paranoid, root)."""
        return _perf_check(self, runtime, mode)

    def record(self, request: RecordRequest) -> "PerfRecording":
        """Start ``perf record`` on each target process."""
        perf = shutil.which("perf") or "perf"
        return PerfRecording(request, request.options or PerfRecordOptions(), perf)

    def recover(self, raws: Sequence[str], diag: Diagnostics) -> List[str]:
        """``perf script`` text for each ``perf-PID.data`` of a run whose profkit died before
        running it (the text of those that have it already is used as it is)."""
        out: List[str] = []
        perf = shutil.which("perf")
        for raw in raws:
            text = raw[: -len(".data")] + ".txt" if raw.endswith(".data") else raw
            if os.path.exists(text) and os.path.getsize(text) > 0:
                out.append(text)
            elif raw.endswith(".data") and os.path.exists(raw) and os.path.getsize(raw) > 0:
                if perf is None:
                    diag.warn(f"{raw}: perf is not installed to read it (apt-get install linux-perf)")
                    continue
                rc, err = _perf_script(perf, raw, text)
                if rc == 0 or os.path.getsize(text) > 0:
                    out.append(text)
                else:
                    diag.warn(f"perf script -i {raw} failed (exit status {rc}): {' '.join(err.split())[:200]}")
        return out


# a frame line: address, symbol, (module); the module may hold spaces (runs to the last ')')
_SNIFF_FRAME = re.compile(rb"\s*[0-9a-fA-F]+\s+\S.* \(.*\)")


def _looks_like_header(line: bytes) -> bool:
    m = EVENT_HEADER.match(line)
    return m is not None and b":" in line[m.end(2):]


# -- live recording ---------------------------------------------------------------------------

@dataclass(frozen=True)
class PerfRecordOptions:
    """How ``perf record`` samples (``profkit attach … --collector perf``)."""

    call_graph: str = option("fp", "stack unwinding: frame pointers (fp, cheap; needs -fno-omit-frame-pointer "
                                   "or the JVM's -XX:+PreserveFramePointer) or dwarf (works without, larger captures)",
                             choices=("fp", "dwarf"))
    event: str = option("auto", "perf event: auto = cycles where hardware counters exist, else cpu-clock")
    threads: bool = option(False, "a root frame per thread, comm-PID/TID (perf script -F +pid; "
                                  "stackcollapse-perf --tid)")


_HW_EVENTS: Dict[str, bool] = {}


def hardware_events_available(perf: str) -> bool:
    """Whether ``cycles`` can be counted here (VMs and containers often lack a PMU)."""
    if perf not in _HW_EVENTS:
        try:
            out = subprocess.run([perf, "stat", "-x,", "-e", "cycles", "--", "true"], capture_output=True,
                                 text=True, timeout=20)
            text = out.stderr + out.stdout
            _HW_EVENTS[perf] = out.returncode == 0 and "not supported" not in text and "not counted" not in text
        except (OSError, subprocess.TimeoutExpired):
            _HW_EVENTS[perf] = False
    return _HW_EVENTS[perf]


def _perf_hint(stderr: str) -> Optional[str]:
    text = stderr.lower()
    if "perf_event_paranoid" in text or "permission" in text or "not permitted" in text:
        hint = "run as root, or `sudo sysctl kernel.perf_event_paranoid=1`; in a container add --cap-add PERFMON (see profkit doctor)"
        if "2" == read_small("/proc/self/status").partition("Seccomp:")[2].split("\n", 1)[0].strip():
            # profkit itself runs under a seccomp filter: docker's default profile refuses perf_event_open
            hint += ", and --security-opt seccomp=unconfined (Kubernetes: seccompProfile: Unconfined)"
        return hint
    if "no such process" in text:
        return "the target exited"
    return None


class PerfRecording(Recording):
    """``perf record -g -p PID -- sleep N`` per process: perf ends by itself after N seconds (and
    on SIGTERM when profkit dies), writing ``raw/perf-PID.data``; ``finish`` runs ``perf script``
    into ``raw/perf-PID.txt``. For a JVM, ``jcmd PID Compiler.perfmap`` writes the JIT symbol
    map (/tmp/perf-PID.map) that ``perf script`` reads, before and after recording."""

    #: kernel and JIT frames annotated, so that they are coloured as such
    parse_options = PerfOptions(all=True)

    def __init__(self, request: RecordRequest, options: PerfRecordOptions, perf: str):
        import math

        self.request, self.perf = request, perf
        event = options.event
        if event == "auto":
            event = "cycles" if hardware_events_available(perf) else "cpu-clock"
        self.event = event
        self.commands: List[List[str]] = []
        self.tools: List[Tuple[int, ChildTool, str]] = []
        self.raw: Dict[int, str] = {}
        self.jvm = request.runtime == "jvm"
        self.threads = options.threads
        if options.threads:
            self.parse_options = PerfOptions(all=True, tid=True)
        #: per JVM in a container: its /tmp/perf-NSPID.map when profkit's request made it (removed at the end)
        self.maps_inside: Dict[int, Optional[str]] = {}
        if self.jvm:
            for pid in request.pids:
                self._perfmap(pid)
        for pid in request.pids:
            data = raw_path(request.raw_dir, "perf", pid, "data")
            self.raw[pid] = data
            cmd = [perf, "record", "-e", event, "-F", str(request.rate), "-g"]
            if options.call_graph == "dwarf":
                cmd[-1:] = ["--call-graph", "dwarf"]
            cmd += ["-p", str(pid), "-o", data, "--", "sleep", str(max(1, math.ceil(request.duration)))]
            self.commands.append(cmd)
            err = open(data + ".stderr", "wb")
            try:
                self.tools.append((pid, ChildTool(cmd, stderr=err).start(), data))
            except FileNotFoundError:
                raise CollectorNotInstalled("perf is not installed", hint="apt-get install linux-perf") from None
            finally:
                err.close()

    def _perfmap(self, pid: int) -> None:
        from collectors.jvm import in_container, run_jcmd

        jcmd = shutil.which("jcmd")
        inside = in_container(pid)
        if jcmd is None and not inside:
            return
        if inside and pid not in self.maps_inside:
            # a map the JVM writes at profkit's request is removed afterwards; one it had stays
            ns = namespaces_of(pid)
            theirs = host_path(pid, f"/tmp/perf-{ns.nspid}.map")
            self.maps_inside[pid] = None if os.path.exists(theirs) else theirs
        try:
            cmd, _, _ = run_jcmd(jcmd or "jcmd", pid, ["Compiler.perfmap"])
        except ProfkitError:
            return
        if cmd not in self.commands:
            self.commands.append(cmd)

    def poll(self) -> bool:
        return any(t.poll() is None for _, t, _ in self.tools)

    def stop(self) -> None:
        for _, tool, _ in self.tools:
            if tool.poll() is None:
                try:
                    tool.proc.send_signal(signal.SIGINT)  # perf finishes its file on SIGINT
                except ProcessLookupError:
                    pass

    def finish(self, timeout: float = 60.0) -> List[str]:
        out: List[str] = []
        failures: List[CollectorFailed] = []
        for pid, tool, data in self.tools:
            if tool.wait(timeout) is None:
                tool.stop(grace=2.0)
            err_path = data + ".stderr"
            err = read_small(err_path)
            if not (os.path.exists(data) and os.path.getsize(data) > 0):
                failures.append(CollectorFailed(tool.argv, tool.proc.returncode, err, hint=_perf_hint(err)))
                continue
            if self.jvm:
                self._perfmap(pid)
            text = data[: -len(".data")] + ".txt"
            self.commands.append([self.perf, "script", "-i", data] + (["-F", "+pid"] if self.threads else []))
            shown = expose_jit_map(pid)
            try:
                rc, script_err = _perf_script(self.perf, data, text, self.threads)
            finally:
                for path in (shown, self.maps_inside.get(pid)):
                    if path:
                        with contextlib.suppress(OSError):
                            os.unlink(path)
            if rc != 0 and os.path.getsize(text) == 0:
                failures.append(CollectorFailed(self.commands[-1], rc, script_err))
                continue
            for path in (err_path, text + ".stderr"):
                if not read_small(path).strip():
                    os.unlink(path)
            out.append(text)
        if failures and not out:
            raise failures[0]
        return out


def expose_jit_map(pid: int) -> Optional[str]:
    """For a process in another mount namespace, its JIT symbol map (``/tmp/perf-NSPID.map``
    inside it, written by a JIT: the JVM's Compiler.perfmap, node --perf-basic-prof, Python's
    -X perf) copied to ``/tmp/perf-PID.map`` on the host, where ``perf script`` also looks when it
    cannot read the map inside (the process has exited); returns the copy to remove afterwards,
    None when there is no map or the host already has one (someone else's: left alone)."""
    try:
        ns = namespaces_of(pid)
    except ProfkitError:
        return None
    if not ns.other_mnt:
        return None
    dst = f"/tmp/perf-{pid}.map"
    try:
        src = os.open(host_path(pid, f"/tmp/perf-{ns.nspid}.map"), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        try:
            out = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        except OSError:
            return None
        with os.fdopen(out, "wb") as fo, os.fdopen(os.dup(src), "rb") as fi:
            shutil.copyfileobj(fi, fo)
        return dst
    finally:
        os.close(src)


def _perf_script(perf: str, data: str, text: str, pids: bool = False) -> Tuple[int, str]:
    """``perf script -i DATA > TEXT`` (stderr kept beside it); (exit code, stderr)."""
    with open(text, "wb") as fh, open(text + ".stderr", "wb") as ferr:
        try:
            rc = subprocess.run([perf, "script", "-i", data] + (["-F", "+pid"] if pids else []), stdout=fh, stderr=ferr, timeout=600).returncode
        except subprocess.TimeoutExpired:
            rc = -9
    return rc, read_small(text + ".stderr")


def _perf_check(c: Collector, runtime: str, mode: str) -> Availability:
    perf = shutil.which("perf")
    if perf is None:
        return Availability(False, reason="perf is not installed", hint="apt-get install linux-perf", kind="not-installed")
    try:
        v = subprocess.run([perf, "--version"], capture_output=True, text=True, timeout=10)
        version = v.stdout.strip().split()[-1] if v.returncode == 0 and v.stdout.strip() else ""
    except (OSError, subprocess.TimeoutExpired):
        version = ""
    if not version:
        return Availability(False, reason="perf does not run here (no build for this kernel?)",
                            hint="apt-get install linux-perf", kind="not-installed")
    if mode and mode != "cpu":
        return Availability(False, version, reason=f"perf samples on-CPU time only, not --mode {mode}",
                            hint="use --mode cpu", kind="unsupported")
    refused = c.refusal(runtime, mode, version)
    if refused:
        return refused
    paranoid = perf_event_paranoid()
    if paranoid is None:
        return Availability(False, version, reason="this kernel has no perf_event support", kind="unsupported")
    if paranoid > 1 and os.geteuid() != 0 and not has_cap(CAP_PERFMON) and not has_cap(CAP_SYS_ADMIN):
        return Availability(False, version, reason=f"kernel.perf_event_paranoid={paranoid} forbids profiling other processes",
                            hint="run as root, or `sudo sysctl kernel.perf_event_paranoid=1`", kind="no-permission")
    return Availability(True, version)



PerfCollector.RecordOptions = PerfRecordOptions  # defined after the class, which only parses without it

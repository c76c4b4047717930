# SPDX-License-Identifier: Apache-2.0
"""wrk (Debian's ``wrk`` package): closed-loop HTTP load, parsed from its ``--latency`` text and
from profkit's Lua hooks (``wrk_report.lua``): ``done()`` adds p99.9, a percentile curve and the
error kinds, ``response()`` counts responses per second for the series (defining it makes wrk
parse every response's headers: measured in benchmarks/bench_load_series.py). See https://github.com/wg/wrk/blob/master/SCRIPTING for the hook's API."""
from __future__ import annotations

import json
import os
import re
import shutil
from typing import Dict, List

from collectors.base import Availability
from profkit.errors import CollectorNotInstalled
from profkit.loadgen import LoadGenerator, LoadRequest, ToolRun, empty_figures, finish_figures, tool_version
from profkit.loadgen.series import rows_from_counts
from profkit.targets import ChildTool

__all__ = ["WrkGenerator", "parse_wrk_output", "wrk_series"]

HOOK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wrk_report.lua")
_TIME = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0, "h": 3600000.0}
_COUNT = {"": 1, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9}


def _ms(value: str, unit: str) -> float:
    return float(value) * _TIME[unit]


def parse_wrk_output(text: str, request: LoadRequest) -> Dict:
    """RED figures from wrk's stdout: the ``profkit-wrk:`` hook line where present (exact), else
    the ``--latency`` text (p50/p90/p99 only; wrk's text has no p99.9). Pure; unit-tested on
    recorded output."""
    fig = empty_figures("wrk", request)
    hook, per_second = None, None
    for line in text.splitlines():
        if line.startswith("profkit-wrk: "):
            try:
                hook = json.loads(line[len("profkit-wrk: "):])
            except ValueError:
                hook = None
        elif line.startswith("profkit-wrk-series: "):
            try:
                per_second = json.loads(line[len("profkit-wrk-series: "):])
            except ValueError:
                per_second = None
    # -- the text summary (always printed by wrk) --------------------------------------------
    lat = fig["latency_ms"]
    in_dist = False
    for line in text.splitlines():
        s = line.strip()
        if s.startswith("Latency Distribution"):
            in_dist = True
            continue
        m = re.match(r"^(\d+(?:\.\d+)?)%\s+(\d+(?:\.\d+)?)(us|ms|s|m|h)$", s)
        if in_dist and m:
            key = {"50": "p50", "90": "p90", "99": "p99"}.get(m.group(1))
            if key:
                lat[key] = round(_ms(m.group(2), m.group(3)), 3)
            continue
        in_dist = False
        m = re.match(r"^Latency\s+(\d+(?:\.\d+)?)(us|ms|s|m|h)\s+\S+\s+(\d+(?:\.\d+)?)(us|ms|s|m|h)", s)
        if m:
            lat["mean"] = round(_ms(m.group(1), m.group(2)), 3)
            lat["max"] = round(_ms(m.group(3), m.group(4)), 3)
        m = re.match(r"^(\d+) requests in (\d+(?:\.\d+)?)(us|ms|s|m|h)", s)
        if m:
            fig["requests"] = int(m.group(1))
            fig["duration_s"] = round(_ms(m.group(2), m.group(3)) / 1000.0, 3)
        m = re.match(r"^Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", s)
        if m:
            for k, v in zip(("connect", "read", "write", "timeout"), m.groups()):
                fig["errors"][k] = int(v)
        m = re.match(r"^Non-2xx or 3xx responses: (\d+)", s)
        if m:
            fig["errors"]["status"] = int(m.group(1))
        m = re.match(r"^Requests/sec:\s+(\d+(?:\.\d+)?)", s)
        if m:
            fig["rate"] = float(m.group(1))
    if fig["requests"] is not None:
        # wrk omits the socket-error and non-2xx lines when they are zero.
        for k in fig["errors"]:
            if fig["errors"][k] is None:
                fig["errors"][k] = 0
    # -- the hook line: exact figures, p99.9 and the curve -----------------------------------
    if hook:
        fig["requests"] = hook["requests"]
        fig["duration_s"] = round(hook["duration_us"] / 1e6, 3)
        fig["bytes"] = hook.get("bytes")
        fig["errors"] = {k: int(hook["errors"].get(k, 0)) for k in fig["errors"]}
        curve = [[float(p), round(v / 1000.0, 3)] for p, v in hook.get("percentiles_us", [])]
        fig["distribution"] = curve
        by_pct = {p: v for p, v in curve}
        for key, p in (("p50", 50.0), ("p90", 90.0), ("p99", 99.0), ("p99.9", 99.9)):
            if p in by_pct:
                lat[key] = by_pct[p]
        lu = hook.get("latency_us", {})
        if fig["requests"]:
            lat["mean"] = round(lu.get("mean", 0) / 1000.0, 3)
            lat["max"] = round(lu.get("max", 0) / 1000.0, 3)
        if fig["duration_s"]:
            fig["rate"] = round(fig["requests"] / fig["duration_s"], 2)
    if isinstance(per_second, dict):
        fig["series"] = wrk_series(per_second, request.connections)
    if not fig["requests"]:
        # No response at all: wrk's latency figures are meaningless zeros.
        fig["latency_ms"] = {k: None for k in lat}
        fig["distribution"] = []
    return finish_figures(fig)


def wrk_series(per_second: Dict, connections: int) -> List[dict]:
    """Rows (:mod:`profkit.loadgen.series`) from the hook's per-second counts: ``rate`` and
    ``errors`` (non-2xx/3xx responses) per second, ``mean`` latency by Little's law
    (connections ÷ throughput); wrk has no per-second percentiles. Partial edge seconds dropped."""
    def ints(d) -> Dict[int, int]:
        out = {}
        for k, v in (d or {}).items():
            try:
                out[int(k)] = int(v)
            except (TypeError, ValueError):
                continue
        return out

    return rows_from_counts(ints(per_second.get("responses")), ints(per_second.get("errors")),
                            connections=max(1, connections))


class WrkGenerator(LoadGenerator):
    """wrk: many connections from few threads; the fastest closed-loop generator here."""

    id = "wrk"
    latency_model = ("from the write of each request (closed loop); wrk 4 back-fills its histogram for coordinated "
                     "omission (stats_correct: synthetic samples at the mean interval, run time ÷ (responses ÷ "
                     "connections)), so its percentiles are an estimate, not measured")
    summary = "wrk (apt-get install wrk): --latency text and a Lua done() hook for p99.9"

    def check(self) -> Availability:
        path = shutil.which("wrk")
        if not path:
            return Availability(False, reason="wrk is not installed",
                                hint="apt-get install wrk (Debian/Ubuntu), or use --load locust / --load cmd",
                                kind="not-installed")
        return Availability(True, version=tool_version(path, "--version", r"wrk (\S+)") or "")

    def command(self, request: LoadRequest, hook: str) -> List[str]:
        """The exact wrk command line (wrk takes whole seconds; at least 1)."""
        conns = max(1, request.connections)
        threads = max(1, min(request.threads, conns))
        return ["wrk", "--threads", str(threads), "--connections", str(conns),
                "--duration", f"{max(1, int(round(request.duration)))}s", "--timeout", f"{request.timeout:g}s",
                "--latency", "--script", hook, request.url]

    def start(self, request: LoadRequest) -> ToolRun:
        avail = self.check()
        if not avail.ok:
            raise CollectorNotInstalled(f"load generator wrk: {avail.reason}", hint=avail.hint)
        hook = os.path.join(request.raw_dir, "wrk-report.lua")
        shutil.copyfile(HOOK, hook)  # the run keeps the exact script it used
        raw = os.path.join(request.raw_dir, "load-wrk.txt")
        out = open(raw, "w", encoding="utf-8")
        tool = ChildTool(self.command(request, hook), stdout=out).start()
        return ToolRun(tool, [raw], out)

    def parse(self, raw: List[str], request: LoadRequest) -> Dict:
        text = ""
        for path in raw:
            with open(path, encoding="utf-8", errors="replace") as fh:
                text += fh.read()
        return parse_wrk_output(text, request)

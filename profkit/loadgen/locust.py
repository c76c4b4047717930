# SPDX-License-Identifier: Apache-2.0
"""Locust (``pip install locust``), run headless; its CSV stats parsed.

profkit writes a minimal locustfile into ``raw/`` (GET of the URL's path, no wait between
requests: one closed loop per user, like wrk's connections) and runs
``locust --headless -u N -r N -t Ss --host BASE --csv raw/locust --only-summary``. The
``Aggregated`` row of ``raw/locust_stats.csv`` gives the figures; the ``Aggregated`` rows of
``raw/locust_stats_history.csv`` (one about every second) give the series: requests and failures
per interval from the differences of its running totals, p50/p99 as Locust reports them there
(over its sliding window of the last 10 s, not the interval alone). Docs:
https://docs.locust.io/en/stable/retrieving-stats.html
"""
from __future__ import annotations

import csv
import importlib.util
import io
import os
import shutil
import sys
import urllib.parse
from typing import Dict, List, Optional

from collectors.base import Availability
from profkit.errors import CollectorNotInstalled
from profkit.loadgen import LoadGenerator, LoadRequest, ToolRun, empty_figures, finish_figures
from profkit.targets import ChildTool

__all__ = ["LocustGenerator", "parse_locust_history", "parse_locust_stats"]

LOCUSTFILE = '''# Written by profkit bench: GET {path!r} with no wait between requests.
from locust import HttpUser, constant, task


class ProfkitUser(HttpUser):
    wait_time = constant(0)

    @task
    def get(self):
        self.client.get({path!r}, name={path!r})
'''


def _f(row: Dict[str, str], key: str) -> Optional[float]:
    try:
        v = row.get(key)
        return float(v) if v not in (None, "", "N/A") else None
    except ValueError:
        return None


def parse_locust_stats(text: str, request: LoadRequest, duration: Optional[float] = None) -> Dict:
    """RED figures from ``locust_stats.csv`` (the ``Aggregated`` row); pure."""
    fig = empty_figures("locust", request)
    row = None
    for r in csv.DictReader(io.StringIO(text)):
        if (r.get("Name") or "").strip() == "Aggregated":
            row = r
    if row is None:
        return fig
    n, failures = _f(row, "Request Count"), _f(row, "Failure Count")
    fig["requests"] = int(n) if n is not None else None
    fig["rate"] = _f(row, "Requests/s")
    if fig["rate"] and fig["requests"] is not None:
        fig["duration_s"] = round(fig["requests"] / fig["rate"], 3)
    elif duration:
        fig["duration_s"] = duration
    # Locust counts every failure together (connection errors, timeouts, HTTP >= 400).
    fig["errors"] = {"connect": None, "read": None, "write": None, "timeout": None,
                     "status": int(failures) if failures is not None else None}
    lat = fig["latency_ms"]
    lat["mean"] = _f(row, "Average Response Time")
    lat["max"] = _f(row, "Max Response Time")
    for key, col in (("p50", "50%"), ("p90", "90%"), ("p99", "99%"), ("p99.9", "99.9%")):
        lat[key] = _f(row, col)
    fig["distribution"] = [[float(c.rstrip("%")), _f(row, c)] for c in row
                           if c and c.endswith("%") and c[:-1].replace(".", "").isdigit() and _f(row, c) is not None]
    if fig["requests"] is not None and failures is not None:
        # Failed requests are in Locust's Request Count: attempts = requests.
        fig["error_count"] = int(failures)
        fig["error_pct"] = round(100.0 * failures / n, 4) if n else 0.0
    return finish_figures(fig)


def parse_locust_history(text: str) -> List[dict]:
    """Series rows (:mod:`profkit.loadgen.series`) from ``locust_stats_history.csv``; pure."""
    rows, prev = [], None
    for r in csv.DictReader(io.StringIO(text)):
        if (r.get("Name") or "").strip() != "Aggregated":
            continue
        ts, total, fails = _f(r, "Timestamp"), _f(r, "Total Request Count"), _f(r, "Total Failure Count")
        if ts is None or total is None:
            continue
        if prev is not None and ts > prev[0]:
            dt = ts - prev[0]
            n = max(0.0, total - prev[1])
            bad = max(0.0, (fails or 0) - (prev[2] or 0))
            rows.append({"epoch": prev[0], "dt": dt, "requests": int(n), "rate": round(n / dt, 3),
                         "errors": round(bad / dt, 3), "p50": _f(r, "50%"), "p99": _f(r, "99%")})
        if prev is None or ts > prev[0]:
            prev = (ts, total, fails)
    return rows[1:] if len(rows) > 2 else rows  # the first interval holds the ramp-up of the users


class LocustGenerator(LoadGenerator):
    """Locust, headless: Python users in a closed loop; slower than wrk, scriptable."""

    id = "locust"
    summary = "Locust (pip install locust), headless, CSV stats"

    def _argv0(self) -> Optional[List[str]]:
        if importlib.util.find_spec("locust") is not None:
            return [sys.executable, "-m", "locust"]
        path = shutil.which("locust")
        return [path] if path else None

    def check(self) -> Availability:
        if self._argv0() is None:
            return Availability(False, reason="locust is not installed",
                                hint=f"{sys.executable} -m pip install locust, or use --load wrk", kind="not-installed")
        from importlib.metadata import PackageNotFoundError, version

        try:
            return Availability(True, version=version("locust"))
        except PackageNotFoundError:  # installed as a separate tool: the version is not ours to read
            return Availability(True)

    def start(self, request: LoadRequest) -> ToolRun:
        argv0 = self._argv0()
        if argv0 is None:
            avail = self.check()
            raise CollectorNotInstalled(f"load generator locust: {avail.reason}", hint=avail.hint)
        parts = urllib.parse.urlsplit(request.url)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        locustfile = os.path.join(request.raw_dir, "locustfile.py")
        with open(locustfile, "w", encoding="utf-8") as fh:
            fh.write(LOCUSTFILE.format(path=path))
        users = str(max(1, request.connections))
        argv = argv0 + ["-f", locustfile, "--headless", "-u", users, "-r", users,
                        "-t", f"{max(1, int(round(request.duration)))}s", "--host", f"{parts.scheme}://{parts.netloc}",
                        "--csv", os.path.join(request.raw_dir, "locust"), "--only-summary", "--stop-timeout", "2"]
        raw = os.path.join(request.raw_dir, "load-locust.txt")
        out = open(raw, "w", encoding="utf-8")
        run = ToolRun(ChildTool(argv, stdout=out).start(), [os.path.join(request.raw_dir, "locust_stats.csv"),
                                                             os.path.join(request.raw_dir, "locust_stats_history.csv")], out)
        return run

    def parse(self, raw: List[str], request: LoadRequest) -> Dict:
        texts = []
        for path in raw[:2]:
            text = ""
            if os.path.exists(path):
                with open(path, encoding="utf-8", errors="replace") as fh:
                    text = fh.read()
            texts.append(text)
        fig = parse_locust_stats(texts[0], request, duration=request.duration)
        if len(texts) > 1 and texts[1]:
            fig["series"] = parse_locust_history(texts[1])
        return fig

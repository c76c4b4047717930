# SPDX-License-Identifier: Apache-2.0
"""sysbench (Debian's ``sysbench``, 1.0): OLTP load on PostgreSQL, its per-second report parsed.

``--url postgresql://USER@127.0.0.1:PORT/DB`` (loopback only; no password in it: libpq, inside
sysbench, reads ``PGPASSWORD`` or the file ``PGPASSFILE`` names). ``--load-option``:

    script=oltp_write_only   any sysbench OLTP script (oltp_insert, oltp_read_write, …)
    tables=4  table_size=10000  the scale of the tables (prepare writes them)
    prepare=no               yes: ``cleanup`` then ``prepare`` before the run (failure: exit 1)
    percentile=99            the per-second latency percentile sysbench reports

profkit runs ``sysbench SCRIPT --db-driver=pgsql … --threads C --time D --report-interval 1
--percentile P --histogram=on run`` and reads its text: one line per second (``[ 5s ] thds: 4
tps: 812.3 qps: … lat (ms,99%): 9.4 err/s: 0.0 reconn/s: 0.0``) for the series (``rate`` =
``tps``, ``p99``, ``errors``, and ``mean`` = threads ÷ tps by Little's law), the final report for
the figures and its latency histogram for the percentiles. A transaction is a request here.
sysbench is closed-loop: each thread waits for its transaction to commit.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
import urllib.parse
from typing import Dict, List, Optional, Tuple

from collectors.base import Availability
from profkit.errors import CollectorNotInstalled, EnvironmentProblem, UsageError
from profkit.loadgen import LoadGenerator, LoadRequest, ToolRun, empty_figures, finish_figures, tool_version
from profkit.secrets import redact
from profkit.targets import ChildTool

__all__ = ["SysbenchGenerator", "connection_args", "parse_sysbench_output"]

INSTALL_HINT = "apt-get install sysbench (Debian/Ubuntu; its pgsql driver is built in)"
_LINE = re.compile(r"^\[\s*(\d+(?:\.\d+)?)s\s*\]\s+thds:\s*(\d+)\s+tps:\s*([\d.]+)\s+qps:\s*([\d.]+).*?"
                   r"lat \(ms,(\d+(?:\.\d+)?)%\):\s*([\d.]+)\s+err/s:\s*([\d.]+)\s+reconn/s:\s*([\d.]+)")
_HIST = re.compile(r"^\s*([\d.]+)\s+\|\**\s+(\d+)\s*$")


def connection_args(url: str) -> Tuple[List[str], str]:
    """(sysbench's --pgsql-* arguments, the database) from a loopback postgresql:// URL."""
    parts = urllib.parse.urlsplit(url)
    if parts.password:
        raise UsageError(f"--url {redact(url)!r} has a password in it; put it in PGPASSWORD or the file "
                         "PGPASSFILE names (libpq reads them)")
    db = parts.path.lstrip("/") or "sbtest"
    args = [f"--pgsql-host={parts.hostname}", f"--pgsql-port={parts.port or 5432}", f"--pgsql-db={db}"]
    if parts.username:
        args.append(f"--pgsql-user={urllib.parse.unquote(parts.username)}")
    return args, db


def _histogram_percentiles(hist: List[Tuple[float, int]]) -> Dict[str, float]:
    total = sum(n for _, n in hist)
    out: Dict[str, float] = {}
    if not total:
        return out
    for key, p in (("p50", 50), ("p90", 90), ("p99", 99), ("p99.9", 99.9)):
        rank, seen = total * p / 100.0, 0
        for v, n in hist:
            seen += n
            if seen >= rank:
                out[key] = v
                break
    return out


def parse_sysbench_output(text: str, request: LoadRequest, started_epoch: Optional[float] = None) -> Dict:
    """RED figures and per-second rows from sysbench's text (pure; unit-tested on recorded output).
    ``started_epoch`` is when its threads started (the origin of its ``[ Ns ]`` stamps)."""
    fig = empty_figures("sysbench", request)
    rows, hist = [], []
    summary: Dict[str, float] = {}
    pct_label = None
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if m:
            sec, thds, tps = float(m.group(1)), int(m.group(2)), float(m.group(3))
            pct_label = m.group(5).rstrip("0").rstrip(".")
            row = {"epoch": (started_epoch or 0.0) + sec - 1.0, "dt": 1.0, "requests": int(round(tps)), "rate": tps,
                   "tps": tps, "qps": float(m.group(4)), "errors": float(m.group(7)),
                   "reconnects": float(m.group(8)), "mean": round(1000.0 * thds / tps, 3) if tps else None}
            row["p99" if pct_label == "99" else f"p{pct_label}"] = float(m.group(6))
            rows.append(row)
            continue
        h = _HIST.match(line)
        if h:
            hist.append((float(h.group(1)), int(h.group(2))))
            continue
        for key, pat in (("transactions", r"^transactions:\s+(\d+)"), ("ignored", r"^ignored errors:\s+(\d+)"),
                         ("reconnects", r"^reconnects:\s+(\d+)"), ("time", r"^total time:\s+([\d.]+)s"),
                         ("min", r"^min:\s+([\d.]+)"), ("avg", r"^avg:\s+([\d.]+)"), ("max", r"^max:\s+([\d.]+)"),
                         ("pct", r"^(\d+)(?:st|nd|rd|th) percentile:\s+([\d.]+)")):
            mm = re.match(pat, line.strip())
            if mm:
                summary[key] = float(mm.group(mm.lastindex))
    fig["series"] = rows
    if "transactions" not in summary:
        return fig
    fig["requests"] = int(summary["transactions"])
    fig["duration_s"] = summary.get("time")
    fig["errors"] = {"connect": int(summary.get("reconnects", 0)), "read": 0, "write": 0, "timeout": 0,
                     "status": int(summary.get("ignored", 0))}
    lat = fig["latency_ms"]
    lat["mean"], lat["max"] = summary.get("avg"), summary.get("max")
    lat.update(_histogram_percentiles(hist))
    fig["distribution"] = [[p, v] for p, v in ((50, lat.get("p50")), (90, lat.get("p90")), (99, lat.get("p99")),
                                               (99.9, lat.get("p99.9"))) if v is not None]
    return finish_figures(fig)


class SysbenchGenerator(LoadGenerator):
    """sysbench's OLTP scripts against PostgreSQL (closed loop: threads wait for each commit)."""

    id = "sysbench"
    summary = "sysbench (apt-get install sysbench): OLTP on PostgreSQL, its per-second report"
    schemes = ("postgresql", "postgres")
    option_keys = ("script", "tables", "table_size", "prepare", "percentile")
    resolve_after_connect = True
    latency_model = "per transaction, from its start to its commit (closed loop: each thread waits for its commit)"

    def check(self) -> Availability:
        path = shutil.which("sysbench")
        if not path:
            return Availability(False, reason="sysbench is not installed", hint=INSTALL_HINT, kind="not-installed")
        return Availability(True, version=tool_version(path, "--version", r"sysbench (\S+)") or "")

    def validate(self, request: LoadRequest) -> None:
        super().validate(request)
        connection_args(request.url)
        script = request.option("script", "oltp_write_only") or ""
        if not re.fullmatch(r"oltp_[a-z_]+", script):
            raise UsageError(f"--load-option script={script!r}: one of sysbench's OLTP scripts (oltp_write_only, "
                             "oltp_insert, oltp_read_write, …)")
        for key, lo in (("tables", 1), ("table_size", 1), ("percentile", 1)):
            value = request.option(key)
            if value is not None and (not value.isdigit() or int(value) < lo or (key == "percentile" and int(value) > 100)):
                raise UsageError(f"--load-option {key}={value!r}: a whole number" + (" 1..100" if key == "percentile" else ""))
        if (request.option("prepare", "no") or "").lower() not in ("yes", "no", "true", "false", "1", "0"):
            raise UsageError("--load-option prepare= yes or no")

    def base(self, request: LoadRequest) -> List[str]:
        conn, _ = connection_args(request.url)
        return ["sysbench", request.option("script", "oltp_write_only"), "--db-driver=pgsql", *conn,
                f"--tables={request.option('tables', '4')}", f"--table_size={request.option('table_size', '10000')}"]

    def command(self, request: LoadRequest) -> List[str]:
        """The exact run command line (whole seconds, at least 1)."""
        return self.base(request) + [f"--threads={max(1, request.connections)}",
                                     f"--time={max(1, int(round(request.duration)))}", "--report-interval=1",
                                     f"--percentile={request.option('percentile', '99')}", "--histogram=on",
                                     "run"]

    def check_target(self, url: str, timeout: float = 3.0) -> None:
        parts = urllib.parse.urlsplit(url)
        try:
            with socket.create_connection((parts.hostname, parts.port or 5432), timeout=timeout):
                pass
        except OSError as e:
            raise EnvironmentProblem(f"PostgreSQL at {parts.hostname}:{parts.port or 5432} is unreachable: "
                                     f"{e.strerror or e}", hint="start the server first; profkit bench does not start it") from None

    def prepare(self, request: LoadRequest) -> None:
        if (request.option("prepare", "no") or "").lower() not in ("yes", "true", "1"):
            return
        for step in ("cleanup", "prepare"):
            argv = self.base(request) + [f"--threads={min(4, max(1, request.connections))}", step]
            try:
                p = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
            except (OSError, subprocess.SubprocessError) as e:
                raise EnvironmentProblem(f"sysbench {step} could not run: {e}", hint=INSTALL_HINT) from None
            if p.returncode != 0:
                raise EnvironmentProblem(f"sysbench {step} failed: {_fatal(p.stdout + p.stderr)}",
                                         hint="check the database, its user's rights and PGPASSFILE/PGPASSWORD")

    def start(self, request: LoadRequest) -> ToolRun:
        if not shutil.which("sysbench"):
            raise CollectorNotInstalled("load generator sysbench: sysbench is not installed", hint=INSTALL_HINT)
        raw = os.path.join(request.raw_dir, "load-sysbench.txt")
        out = open(raw, "w", encoding="utf-8")
        return ToolRun(ChildTool(self.command(request), stdout=out).start(), [raw], out)

    def wait_connected(self, handle, timeout: float) -> bool:
        """Until sysbench printed ``Threads started!`` (its connections are open); an exit first
        means the server refused it: EnvironmentProblem with sysbench's own error line."""
        deadline = time.monotonic() + timeout
        path = handle.raw[0]
        while time.monotonic() < deadline:
            with open(path, encoding="utf-8", errors="replace") as fh:
                text = fh.read()
            if "Threads started!" in text:
                return True
            if handle.poll() is not None:
                err = handle.close()
                raise EnvironmentProblem(f"sysbench could not start its load: {_fatal(text + err)}",
                                         hint="did the prepare step run (--load-option prepare=yes)? "
                                              "is the user allowed in (PGPASSFILE/PGPASSWORD)?")
            time.sleep(0.05)
        return False

    def parse(self, raw: List[str], request: LoadRequest) -> Dict:
        with open(raw[0], encoding="utf-8", errors="replace") as fh:
            text = fh.read()
        return parse_sysbench_output(text, request, request.started_epoch)


def _fatal(text: str) -> str:
    """The most telling line of sysbench's output, redacted and capped: the first FATAL / error
    line (the root cause: libpq's reason; the later ones say which Lua function gave up)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    picked = [line for line in lines if re.search(r"(?i)fatal|error|failed|refused", line)]
    return redact((picked[:1] or lines[-1:] or ["no output"])[0])[:240]

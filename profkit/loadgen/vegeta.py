# SPDX-License-Identifier: Apache-2.0
"""vegeta (github.com/tsenart/vegeta/v12): open-loop, constant-rate HTTP load.

``.ci/tools`` builds it from the Go module proxy into ``~/.cache/profkit/bin/vegeta-VERSION``
(a ``vegeta`` on PATH is used first). profkit runs
``vegeta attack -rate R/1s -duration Ds -timeout Ts -max-body 0 -targets raw/vegeta-targets.txt
-output raw/vegeta.bin`` and, at the end, ``vegeta encode --to csv raw/vegeta.bin`` into
``raw/load-vegeta.csv`` (both kept), whose rows it reads in two streaming passes.

**What vegeta's latency measures** (read in v12.13.0's ``lib/attack.go``): a result's
``timestamp`` is taken when a worker picks up the pacer's tick, i.e. when the request is
actually sent, and ``latency`` runs from there. The pacer spawns a new worker whenever all are
busy (``-max-workers`` is unbounded by default), so while vegeta keeps up the actual send time is
the intended one and a stalled service shows its queueing delay; but when vegeta itself falls
behind (its CPU, a ``-max-workers`` cap) the requests go out late and its latency leaves that lag
out. So profkit measures from the **intended** send time: the constant pacer schedules request
``seq`` at ``began + (seq + 1) / rate`` (``lib/pacer.go``); ``began`` is recovered as the
smallest ``timestamp - (seq + 1) / rate`` over the run, and each latency is
``lag + latency`` with ``lag = timestamp - intended``. vegeta's own figure is kept beside it
(``service_latency_ms``), and a lag that grows (p99 over 100 ms, or fewer requests sent than
asked) means the rate could not be sustained: reported, never hidden.
"""
from __future__ import annotations

import csv
import glob
import os
import re
import shutil
import subprocess
from typing import Dict, Iterator, List, Optional, Tuple

from collectors.base import Availability
from profkit.errors import CollectorNotInstalled, EnvironmentProblem, UsageError
from profkit.loadgen import LoadGenerator, LoadRequest, ToolRun, empty_figures, finish_figures, tool_version
from profkit.loadgen.series import LatencyHistogram
from profkit.targets import ChildTool

__all__ = ["VERSION", "VegetaGenerator", "parse_vegeta_csv", "vegeta_path"]

VERSION = "12.13.0"
INSTALL_HINT = (f"bash .ci/tools (builds vegeta {VERSION} from the Go module proxy into "
                f"~/.cache/profkit/bin/vegeta-{VERSION}), or put vegeta on PATH")
#: A send lag (p99) beyond this, or fewer requests sent than asked, means the rate was not sustained.
MAX_LAG_MS = 100.0
_NS = 1e9


def vegeta_path() -> Optional[str]:
    """vegeta on PATH, else the newest one .ci/tools built."""
    found = shutil.which("vegeta")
    if found:
        return found
    built = os.path.join(os.path.expanduser("~"), ".cache", "profkit", "bin")
    cands = [p for p in glob.glob(os.path.join(built, "vegeta-*")) if os.access(p, os.X_OK) and not p.endswith(".tmp")]
    return sorted(cands)[-1] if cands else None


def _rows(path: str) -> Iterator[Tuple[int, int, int, str, int]]:
    """(timestamp ns, code, latency ns, error, seq) of each result in vegeta's CSV encoding."""
    with open(path, newline="", encoding="utf-8", errors="replace") as fh:
        for rec in csv.reader(fh):
            if len(rec) < 9:
                continue
            try:
                yield int(rec[0]), int(rec[1]), int(rec[2]), rec[5], int(rec[8])
            except ValueError:
                continue


def _error_kind(code: int, error: str) -> Optional[str]:
    if not error and 200 <= code < 400:
        return None
    if code:
        return "status"
    low = error.lower()
    if "refused" in low or "dial" in low or "no such host" in low:
        return "connect"
    if "timeout" in low or "deadline" in low:
        return "timeout"
    if "write" in low or "broken pipe" in low:
        return "write"
    return "read"


def parse_vegeta_csv(path: str, request: LoadRequest) -> Dict:
    """RED figures and the per-second series from ``vegeta encode --to csv`` output; latencies
    from the intended send time (module docstring). Two streaming passes; memory bounded by the
    seconds of the run (one 1%-bucket histogram each)."""
    fig = empty_figures("vegeta", request, closed_loop=False)
    rate = float(request.request_rate or 0)
    interval = _NS / rate if rate > 0 else 0.0
    began = None
    for ts, _, _, _, seq in _rows(path):
        b = ts - (seq + 1) * interval
        began = b if began is None or b < began else began
    if began is None:
        return fig
    buckets: Dict[int, dict] = {}
    whole, service, lags = LatencyHistogram(), LatencyHistogram(), LatencyHistogram()
    errs = {k: 0 for k in fig["errors"]}
    n = 0
    last_end = began
    for ts, code, lat_ns, error, seq in _rows(path):
        intended = began + (seq + 1) * interval
        lag = max(0.0, ts - intended)
        total_ms = (lag + lat_ns) / 1e6
        k = int(seq * interval // _NS) if interval else int((ts - began) // _NS)
        row = buckets.get(k)
        if row is None:
            row = buckets[k] = {"requests": 0, "err": 0, "_hist": LatencyHistogram()}
        row["requests"] += 1
        kind = _error_kind(code, error)
        if kind:
            errs[kind] += 1
            row["err"] += 1
        row["_hist"].add(total_ms)
        whole.add(total_ms)
        service.add(lat_ns / 1e6)
        lags.add(lag / 1e6)
        n += 1
        last_end = max(last_end, ts + lat_ns)
    fig["requests"] = n - sum(errs[k] for k in ("connect", "read", "write", "timeout"))
    fig["errors"] = errs
    span = max(len(buckets), 1) if interval else max((last_end - began) / _NS, 1e-3)
    fig["duration_s"] = round(float(span), 3)
    fig["latency_ms"] = whole.figures()
    fig["distribution"] = whole.distribution()
    fig["service_latency_ms"] = service.figures()
    fig["requested_rate"] = rate or None
    fig["send_lag_ms"] = {"p50": round(lags.percentile(50) or 0, 3), "p99": round(lags.percentile(99) or 0, 3),
                          "max": round(lags.max, 3)}
    expected = rate * span if rate else n
    fig["sent_rate"] = round(n / span, 2)
    fig["rate_sustained"] = bool(fig["send_lag_ms"]["p99"] <= MAX_LAG_MS and n >= 0.95 * expected)
    fig["series"] = []
    for k in sorted(buckets):
        row = buckets[k]
        h = row.pop("_hist")
        fig["series"].append({"epoch": round((began + k * _NS) / _NS, 3), "dt": 1.0, "requests": row["requests"],
                              "rate": float(row["requests"]), "errors": float(row["err"]),
                              "p50": round(h.percentile(50), 3), "p99": round(h.percentile(99), 3),
                              "mean": round(h.total / h.count, 3), "_hist": h})
    fig["rate"] = round(n / span, 2)
    return finish_figures(fig)


class VegetaGenerator(LoadGenerator):
    """vegeta: a constant request rate whatever the service does (open loop)."""

    id = "vegeta"
    summary = f"vegeta {VERSION} (bash .ci/tools): open loop at --request-rate, latency from the intended send time"
    closed_loop = False
    latency_model = "from each request's intended send time (open loop; vegeta's own, from the actual send, in service_latency_ms)"

    def check(self) -> Availability:
        path = vegeta_path()
        if not path:
            return Availability(False, reason="vegeta is not installed", hint=INSTALL_HINT, kind="not-installed")
        named = re.search(r"(\d+\.\d+\.\d+)", os.path.basename(path))  # NAME-VERSION of .ci/tools
        version = tool_version(path, "-version", r"Version:[ \t]*v?(\S+)") or (named.group(1) if named else "")
        return Availability(True, version=version)

    def validate(self, request: LoadRequest) -> None:
        if not request.request_rate:
            raise UsageError("--load vegeta needs --request-rate, e.g. --request-rate 200/s")

    def command(self, path: str, request: LoadRequest, targets: str, out: str) -> List[str]:
        """The exact attack command line (vegeta takes whole seconds here; at least 1)."""
        return [path, "attack", "-rate", f"{request.request_rate:g}/1s",
                "-duration", f"{max(1, int(round(request.duration)))}s", "-timeout", f"{request.timeout:g}s",
                "-max-body", "0", "-targets", targets, "-output", out]

    def start(self, request: LoadRequest) -> ToolRun:
        self.validate(request)
        path = vegeta_path()
        if not path:
            raise CollectorNotInstalled("load generator vegeta: vegeta is not installed", hint=INSTALL_HINT)
        targets = os.path.join(request.raw_dir, "vegeta-targets.txt")
        with open(targets, "w", encoding="utf-8") as fh:
            fh.write(f"GET {request.url}\n")
        out_bin = os.path.join(request.raw_dir, "vegeta.bin")
        log = open(os.path.join(request.raw_dir, "load-vegeta.txt"), "w", encoding="utf-8")
        run = ToolRun(ChildTool(self.command(path, request, targets, out_bin), stdout=log).start(),
                      [out_bin, os.path.join(request.raw_dir, "load-vegeta.csv")], log)
        self._path = path
        return run

    def parse(self, raw: List[str], request: LoadRequest) -> Dict:
        out_bin, csv_path = raw[0], raw[1]
        if not os.path.exists(out_bin) or os.path.getsize(out_bin) == 0:
            return empty_figures("vegeta", request, closed_loop=False)
        path = getattr(self, "_path", None) or vegeta_path()
        if not path:
            raise EnvironmentProblem("vegeta disappeared before its results could be encoded", hint=INSTALL_HINT)
        with open(csv_path, "w", encoding="utf-8") as fh:
            p = subprocess.run([path, "encode", "--to", "csv", out_bin], stdout=fh, stderr=subprocess.PIPE,
                               text=True, timeout=600)
        if p.returncode != 0:
            raise EnvironmentProblem(f"vegeta encode failed: {' '.join(p.stderr.split())[:200]}")
        return parse_vegeta_csv(csv_path, request)

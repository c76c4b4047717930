# SPDX-License-Identifier: Apache-2.0
"""Load generators for ``profkit bench``: pluggable like collectors, registered as entry points.

    LoadGenerator             id, summary, closed_loop; check() → Availability
    ├── wrk      (wrk.py)     Debian's wrk; --latency text + Lua hooks (p99.9, distribution, per second)
    ├── locust   (locust.py)  Locust headless; its CSV stats and stats history
    ├── vegeta   (vegeta.py)  open loop at --request-rate; every result (latency from the intended time)
    ├── sysbench (sysbench.py) a database benchmark (PostgreSQL); its per-second report
    └── cmd      (cmd.py)     any command; the JSON line it prints (see :mod:`profkit.loadgen.cmd`)

A generator is started as profkit's child (:class:`profkit.targets.ChildTool`, so it dies with
profkit), writes its own output into the run's ``raw/`` (``raw/load-ID.txt``), and its pure
``parse`` turns that raw output into the RED figures of ``load.json``:

    generator, url, connections, duration_s, requests, rate (/s), errors {connect, read, write,
    timeout, status}, error_count, error_pct, latency_ms {mean, p50, p90, p99, p99.9, max},
    distribution [[percentile, ms], ...], closed_loop, and ``series`` (per-interval rows, see
:mod:`profkit.loadgen.series`) where the generator reports per interval

A figure the generator did not report is ``None`` (an SLO on it is ``unknown``). Load goes only
to loopback addresses (:func:`loopback_only`, the same rule as ``examples/load/``).
"""
from __future__ import annotations

import ipaddress
import re
import subprocess
import urllib.parse
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

from collectors.base import Availability
from profkit.errors import EnvironmentProblem, UsageError
from profkit.secrets import redact

__all__ = ["ERROR_KINDS", "GROUP", "LoadGenerator", "LoadRequest", "ToolRun", "available_ids", "empty_figures", "get", "tool_version",
           "loopback_only"]

GROUP = "profkit.loadgens"
ERROR_KINDS = ("connect", "read", "write", "timeout", "status")
PERCENTILES = ("p50", "p90", "p99", "p99.9", "max")
MAX_DURATION = 3600.0


@dataclass(frozen=True)
class LoadRequest:
    """What ``profkit bench`` asks a generator to do."""

    url: str
    duration: float                 #: seconds; generators stop by themselves at this time
    raw_dir: str                    #: where the generator's own output goes
    connections: int = 10           #: concurrent connections (closed loop: one request each at a time)
    threads: int = 2                #: generator threads (wrk) — never more than connections
    timeout: float = 5.0            #: per request, seconds
    command: Optional[str] = None   #: ``cmd`` only: the command line, with {url} {duration} {connections}
    request_rate: Optional[float] = None  #: open-loop generators: requests per second to send
    options: Tuple[Tuple[str, str], ...] = ()  #: ``--load-option KEY=VALUE`` for the generator
    started_epoch: Optional[float] = None  #: set when the generator started (Unix seconds)

    def option(self, key: str, default: Optional[str] = None) -> Optional[str]:
        """The ``--load-option`` value of ``key`` (the last one given), or ``default``."""
        found = default
        for k, v in self.options:
            if k == key:
                found = v
        return found


class LoadGenerator:
    """Base class of load generators; subclasses set ``id``, ``summary`` and implement the methods."""

    id = ""
    summary = ""
    #: A closed-loop generator waits for each response before sending the next request, so when
    #: the service slows down it also sends less: queueing delay that real users would see is
    #: hidden ("coordinated omission"). The report says so.
    closed_loop = True
    #: what the generator's latencies measure (said in load.json ``latency_model``)
    latency_model = "from the send of each request to its response (closed loop)"
    #: URL schemes the generator loads (``--url``); always to loopback hosts only
    schemes: Tuple[str, ...] = ("http", "https")
    #: ``--load-option`` keys it understands (others are usage errors)
    option_keys: Tuple[str, ...] = ()
    #: the server forks a process per client connection (PostgreSQL): with ``--name``/``--children``
    #: bench starts the load first and resolves the targets once it is connected
    resolve_after_connect = False

    def check_target(self, url: str) -> None:
        """Before any load: that the server at ``url`` answers (EnvironmentProblem, exit 1, if not)."""
        from profkit.loadgen.bench import check_reachable

        check_reachable(url)

    def validate(self, request: LoadRequest) -> None:
        """Refuse a request this generator cannot honour (UsageError, before anything runs)."""
        if request.request_rate and self.closed_loop:
            raise UsageError(f"--request-rate needs an open-loop generator (--load vegeta); {self.id} is closed-loop: "
                             "it sends as fast as the responses come back")
        unknown = sorted({k for k, _ in request.options} - set(self.option_keys))
        if unknown:
            known = ", ".join(self.option_keys) or "none"
            raise UsageError(f"--load-option {unknown[0]}=…: {self.id} does not know it (known: {known})")

    def prepare(self, request: LoadRequest) -> None:
        """Set up what the load needs before the run (sysbench's prepare); raises ProfkitError."""

    def wait_connected(self, handle, timeout: float) -> bool:
        """After ``start``: wait until the load is actually flowing (clients connected); the
        targets are resolved again after this (database backends fork per connection)."""
        return True

    def check(self) -> Availability:
        """Whether the generator can run here; ``hint`` says how to install it."""
        raise NotImplementedError

    def start(self, request: LoadRequest):
        """Start the load; returns a handle with ``poll()``, ``wait(timeout)``, ``stop()`` and
        ``raw`` (the paths of the raw output)."""
        raise NotImplementedError

    def parse(self, raw: List[str], request: LoadRequest) -> Dict:
        """The RED figures (see the module docstring) from the raw output files."""
        raise NotImplementedError


def empty_figures(generator: str, request: LoadRequest, closed_loop: bool = True) -> Dict:
    """A ``load.json`` body with every figure absent, for a parser to fill in."""
    return {"generator": generator, "url": request.url, "connections": request.connections,
            "duration_s": None, "requests": None, "rate": None,
            "errors": {k: None for k in ERROR_KINDS}, "error_count": None, "error_pct": None,
            "latency_ms": {k: None for k in ("mean",) + PERCENTILES}, "distribution": [],
            "closed_loop": closed_loop}


def finish_figures(fig: Dict) -> Dict:
    """Derive error_count, error_pct and rate where the parts are known."""
    errs = fig["errors"]
    if fig.get("error_count") is None and any(v is not None for v in errs.values()):
        fig["error_count"] = sum(v or 0 for v in errs.values())
    if fig.get("requests") is not None and fig.get("error_count") is not None:
        # Socket errors and timeouts are attempts that got no response; status errors are responses.
        attempts = fig["requests"] + sum(errs.get(k) or 0 for k in ("connect", "read", "write", "timeout"))
        fig["error_pct"] = round(100.0 * fig["error_count"] / attempts, 4) if attempts else 0.0
    if fig.get("rate") is None and fig.get("requests") is not None and fig.get("duration_s"):
        fig["rate"] = round(fig["requests"] / fig["duration_s"], 2)
    return fig


def tool_version(path: str, flag: str, pattern: str) -> Optional[str]:
    """The first group of ``pattern`` in what ``PATH FLAG`` prints on stdout, or None (the tool
    could not run or said nothing that matches)."""
    try:
        out = subprocess.run([path, flag], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        out = ""
    m = re.search(pattern, out)
    return m.group(1) if m else None


def loopback_only(url: str, schemes: Tuple[str, ...] = ("http", "https")) -> urllib.parse.SplitResult:
    """The parsed URL, or a UsageError unless it is http(s) to a loopback host.

    Same rule as ``examples/load/load.py``: 127.0.0.0/8, ``localhost`` or ``[::1]``; any other
    name is refused without being resolved, so no load is ever sent off the machine."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in schemes or not parts.hostname:
        want = " or ".join(f"{s}://" for s in schemes)
        raise UsageError(f"--url must be {want} with a host, not {redact(url)!r}")
    host = parts.hostname
    ok = host == "localhost"
    if not ok:
        try:
            ok = ipaddress.ip_address(host).is_loopback
        except ValueError:
            ok = False
    if not ok:
        raise UsageError(f"refusing to send load to {host!r}: only loopback targets (127.0.0.0/8, localhost, [::1])",
                         hint="run the service locally and point --url at http://127.0.0.1:PORT/...")
    try:
        parts.port
    except ValueError:
        raise UsageError(f"--url has a bad port: {url!r}") from None
    return parts


class ToolRun:
    """A running generator (profkit's child); its stdout goes straight to a raw file."""

    def __init__(self, tool, raw: List[str], out):
        self.tool, self.raw, self._out = tool, raw, out
        self.commands = [tool.argv]

    def poll(self) -> Optional[int]:
        """The exit code once it has ended, else None."""
        return self.tool.poll()

    def wait(self, timeout: Optional[float] = None) -> Optional[int]:
        """Wait for it to end by itself; None if still running after ``timeout``."""
        return self.tool.wait(timeout)

    def stop(self) -> None:
        """Stop early: SIGINT first, which lets wrk and locust write their figures so far."""
        if self.tool.poll() is None:
            self.tool.stop(grace=5.0, term_grace=2.0)

    def close(self) -> str:
        """Close the output file; returns the tool's stderr (for error messages)."""
        err = self.tool.stderr_text()
        self._out.close()
        return err


def _entry_points():
    from profkit.plugins import entry_points_of

    return entry_points_of(GROUP)


def available_ids() -> List[str]:
    """Every registered generator id, sorted, without importing any."""
    return sorted(_entry_points())


def get(gid: str) -> LoadGenerator:
    """The generator registered as ``gid``."""
    eps = _entry_points()
    ep = eps.get(gid)
    if ep is None:
        known = ", ".join(sorted(eps)) or "none (is profkit installed? pip install -e .)"
        raise UsageError(f"unknown load generator {gid!r}; known: {known}")
    try:
        return ep.load()()
    except Exception as e:  # a broken plugin must not take profkit down
        raise EnvironmentProblem(f"load generator {gid!r} ({ep.value}) failed to load: {type(e).__name__}: {e}") from None

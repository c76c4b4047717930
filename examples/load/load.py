#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Bounded HTTP load against a loopback URL, with the standard library only (for machines without wrk).

    load.py URL DURATION [CONNECTIONS] [--requests N] [--timeout S] [--json]

DURATION is seconds (30, 30s, 500ms, 2m; at most 600 s); CONNECTIONS (threads, each with one
keep-alive connection) defaults to 10. The run stops at the duration or after N requests, whichever
comes first. Prints a short summary, then one JSON line with the same keys as load.sh (wrk).
Exit status: 0 done, 1 no response at all, 2 bad arguments or a non-loopback URL.
"""
import argparse
import http.client
import ipaddress
import json
import re
import socket
import sys
import threading
import time
import urllib.parse

MAX_SECONDS = 600
MAX_CONNECTIONS = 256
ERROR_KINDS = ("connect", "read", "write", "status", "timeout")


def parse_duration(text):
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)?", text.strip().lower())
    if not m:
        raise ValueError(f"DURATION must look like 30, 30s, 500ms or 2m, not {text!r}")
    seconds = float(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, None: 1}[m.group(2)]
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"DURATION must be more than 0 and at most {MAX_SECONDS} s, not {text!r}")
    return seconds


def loopback_target(url):
    """(scheme, host, port, path) of url, or ValueError unless the host is loopback."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"URL must be http:// or https:// with a host: {url!r}")
    host = parts.hostname  # lower-cased, brackets stripped
    ok = host == "localhost"
    if not ok:
        try:
            ok = ipaddress.ip_address(host).is_loopback
        except ValueError:
            ok = False  # a name other than localhost: never resolved, so never sent anywhere
    if not ok:
        raise ValueError(f"refusing to load {host!r}: only loopback targets (127.0.0.0/8, localhost, [::1]) "
                         "are allowed")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return parts.scheme, host, parts.port, path


class Budget:
    """Shared request count and deadline: every worker stops at whichever comes first."""

    def __init__(self, seconds, max_requests):
        self.deadline = time.monotonic() + seconds
        self.left = max_requests
        self.stop = threading.Event()
        self._lock = threading.Lock()

    def take(self):
        if self.stop.is_set() or time.monotonic() >= self.deadline:
            return False
        with self._lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True


class Worker(threading.Thread):
    def __init__(self, target, timeout, budget):
        super().__init__(daemon=True)
        self.target, self.timeout, self.budget = target, timeout, budget
        self.latencies = []
        self.errors = dict.fromkeys(ERROR_KINDS, 0)
        self.bytes = 0

    def _connection(self):
        scheme, host, port, _ = self.target
        cls = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        return cls(host, port, timeout=self.timeout)

    def run(self):
        path = self.target[3]
        conn = None
        while self.budget.take():
            stage = "connect"
            start = time.perf_counter()
            try:
                if conn is None:
                    conn = self._connection()
                    conn.connect()
                stage = "write"
                conn.request("GET", path, headers={"User-Agent": "profkit-load.py"})
                stage = "read"
                resp = conn.getresponse()
                body = resp.read()
                self.latencies.append(time.perf_counter() - start)
                self.bytes += len(body)
                if resp.status > 399:  # as wrk counts them
                    self.errors["status"] += 1
                if resp.will_close:
                    conn.close()
                    conn = None
            except (socket.timeout, TimeoutError):
                self.errors["timeout"] += 1
                conn = _close(conn)
            except (OSError, http.client.HTTPException):
                self.errors[stage] += 1
                conn = _close(conn)
                if stage == "connect":
                    time.sleep(0.05)  # a refused connection fails at once; don't spin
        _close(conn)


def _close(conn):
    if conn is not None:
        conn.close()
    return None


def percentile(sorted_values, pct):
    if not sorted_values:
        return 0.0
    rank = max(1, -(-len(sorted_values) * pct // 100))  # nearest rank
    return sorted_values[int(rank) - 1]


def run(url, seconds, connections, max_requests, timeout):
    target = loopback_target(url)
    budget = Budget(seconds, max_requests)
    workers = [Worker(target, timeout, budget) for _ in range(connections)]
    started = time.monotonic()
    for w in workers:
        w.start()
    try:
        for w in workers:
            while w.is_alive():
                w.join(0.2)
    except KeyboardInterrupt:
        budget.stop.set()
        for w in workers:
            w.join(timeout + 1)
    elapsed = time.monotonic() - started
    lat = sorted(x for w in workers for x in w.latencies)
    errors = {k: sum(w.errors[k] for w in workers) for k in ERROR_KINDS}
    ms = lambda s: round(s * 1000, 3)  # noqa: E731
    return {
        "tool": "load.py",
        "url": url,
        "connections": connections,
        "duration_s": round(elapsed, 3),
        "requests": len(lat),
        "rps": round(len(lat) / elapsed, 2) if elapsed else 0.0,
        "bytes": sum(w.bytes for w in workers),
        "errors": errors,
        "error_count": sum(errors.values()),
        "latency_ms": {
            "mean": ms(sum(lat) / len(lat)) if lat else 0.0,
            "p50": ms(percentile(lat, 50)),
            "p90": ms(percentile(lat, 90)),
            "p99": ms(percentile(lat, 99)),
            "max": ms(lat[-1]) if lat else 0.0,
        },
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("duration")
    parser.add_argument("connections", nargs="?", type=int, default=10)
    parser.add_argument("--requests", type=int, default=1_000_000, help="stop after this many (default 1e6)")
    parser.add_argument("--timeout", type=float, default=5.0, help="per request, seconds (default 5)")
    parser.add_argument("--json", action="store_true", help="print only the JSON line")
    args = parser.parse_args(argv)
    try:
        seconds = parse_duration(args.duration)
        if not 1 <= args.connections <= MAX_CONNECTIONS:
            raise ValueError(f"CONNECTIONS must be from 1 to {MAX_CONNECTIONS}, not {args.connections}")
        if args.requests < 1 or args.timeout <= 0:
            raise ValueError("--requests and --timeout must be positive")
        loopback_target(args.url)
    except ValueError as exc:
        print(f"load.py: {exc}", file=sys.stderr)
        return 2
    result = run(args.url, seconds, args.connections, args.requests, args.timeout)
    if not args.json:
        lat = result["latency_ms"]
        print(f"requests {result['requests']} in {result['duration_s']:.2f}s ({result['rps']:.1f}/s), "
              f"errors {result['error_count']}, p50 {lat['p50']:.2f} ms, p99 {lat['p99']:.2f} ms, "
              f"max {lat['max']:.2f} ms")
    print(json.dumps(result))
    return 0 if result["requests"] else 1


if __name__ == "__main__":
    sys.exit(main())

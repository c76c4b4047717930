# SPDX-License-Identifier: Apache-2.0
"""RED per route from Prometheus: rate, error ratio and latency percentiles over a time range.

PromQL over a request counter and a latency histogram, each evaluated once at the range's end
with the range's length as window (``rate(m[W])`` handles counter resets):

    rate        sum by (ROUTE) (rate(REQUESTS{SEL}[W]))
    errors      sum by (ROUTE) (rate(REQUESTS{SEL, STATUS=~"5.."}[W]))   / rate
    pNN         histogram_quantile(0.NN, sum by (le, ROUTE) (rate(DURATION_bucket{SEL}[W])))

The metric names and labels follow one of two conventions (:data:`CONVENTIONS`), each field
overridable: the ``prometheus-client`` package's (``http_requests_total``,
``http_request_duration_seconds``, labels ``route`` and ``status``) and OpenTelemetry's HTTP
semantic conventions (``http.server.request.duration``, which Prometheus stores as
``http_server_request_duration_seconds``; its ``_count`` is the request counter; labels
``http_route`` and ``http_response_status_code``). Times are reported in ms, rates in requests/s,
the error ratio from 0 to 1; a range in which a route has no traffic gives nulls.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Dict, List, Optional, Sequence

from profkit.errors import EnvironmentProblem, ServerRefused, UsageError
from profkit.http import Client
from profkit.timeparse import TimeRange

__all__ = ["CONVENTIONS", "Metrics", "compare_ranges", "parse_selector", "red_by_route", "red_table"]

_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_MATCHER = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(?:,|\Z)')
QUANTILES = (50, 90, 99)


@dataclass(frozen=True)
class Metrics:
    """Which series hold the requests and their durations, and how they are labelled."""

    requests: str = "http_requests_total"           #: counter of requests (or a histogram's _count)
    duration: str = "http_request_duration_seconds"  #: histogram (its _bucket series)
    route_label: str = "route"
    status_label: str = "status"
    error_status: str = "5.."                        #: regex of the status values that are errors
    duration_scale: float = 1000.0                   #: to ms (the histogram is in seconds)

    def checked(self) -> "Metrics":
        for flag, v in (("--route-label", self.route_label), ("--status-label", self.status_label)):
            if not _LABEL.match(v or ""):
                raise UsageError(f"{flag}: {v!r} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)")
        for flag, v in (("--requests-metric", self.requests), ("--duration-metric", self.duration)):
            if not _METRIC.match(v or ""):
                raise UsageError(f"{flag}: {v!r} is not a Prometheus metric name")
        return self


#: Defaults of each convention (``--convention``).
CONVENTIONS = {
    "prometheus-client": Metrics(),
    "opentelemetry": Metrics(requests="http_server_request_duration_seconds_count",
                             duration="http_server_request_duration_seconds", route_label="http_route",
                             status_label="http_response_status_code"),
}


def metric_name(name: str) -> str:
    """An OpenTelemetry instrument name as Prometheus stores it (``http.server.request.duration``
    → ``http_server_request_duration_seconds``); a Prometheus name unchanged."""
    if "." not in name:
        return name
    base = re.sub(r"[^a-zA-Z0-9_:]", "_", name)
    return base if base.endswith("_seconds") or not base.endswith("duration") else base + "_seconds"


def metrics_for(convention: str, requests: Optional[str] = None, duration: Optional[str] = None,
                route_label: Optional[str] = None, status_label: Optional[str] = None) -> Metrics:
    m = CONVENTIONS[convention]
    if duration:
        d = metric_name(duration)
        m = replace(m, duration=d, duration_scale=1.0 if d.endswith(("_milliseconds", "_ms")) else 1000.0)
        if convention == "opentelemetry" and not requests:
            m = replace(m, requests=d + "_count")
    if requests:
        m = replace(m, requests=metric_name(requests))
    if route_label:
        m = replace(m, route_label=route_label)
    if status_label:
        m = replace(m, status_label=status_label)
    return m.checked()


def parse_selector(text: Optional[str]) -> List[str]:
    """The matchers of ``{job="checkout", instance=~"a.*"}`` as PromQL strings; exit 2 when malformed."""
    s = (text or "").strip()
    if not s or s == "{}":
        return []
    if not (s.startswith("{") and s.endswith("}")):
        raise UsageError(f"--selector: {text!r} is not a selector", hint='use e.g. \'{job="checkout"}\'')
    body, pos, out = s[1:-1].strip(), 0, []
    while pos < len(body):
        m = _MATCHER.match(body, pos)
        if not m:
            raise UsageError(f"--selector: cannot read {text!r} at {body[pos:pos + 20]!r}",
                             hint='matchers are label="value", label=~"regex", label!="value" or label!~"regex"')
        out.append(f'{m.group(1)}{m.group(2)}"{m.group(3)}"')
        pos = m.end()
    return out


def _window(r: TimeRange) -> str:
    return f"{max(1, int(round(r.seconds * 1000)))}ms"


def _query(client: Client, promql: str, at: float) -> List[dict]:
    try:
        doc = client.get("/api/v1/query", {"query": promql, "time": f"{at:.3f}"}).json()
    except ServerRefused as e:
        if e.status in (400, 422):
            raise UsageError(f"Prometheus refused the query {promql}: {e.message}",
                             hint="check --selector, the metric names and the labels") from None
        raise
    if not isinstance(doc, dict) or doc.get("status") != "success":
        raise EnvironmentProblem(f"Prometheus did not answer the query {promql}: {str(doc)[:200]}")
    result = (doc.get("data") or {}).get("result") or []
    return [r for r in result if isinstance(r, dict)]


def _by_route(rows: List[dict], label: str, scale: float = 1.0) -> Dict[str, Optional[float]]:
    out: Dict[str, Optional[float]] = {}
    for r in rows:
        route = str((r.get("metric") or {}).get(label, ""))
        try:
            v = float((r.get("value") or [0, "nan"])[1])
        except (TypeError, ValueError):
            v = math.nan
        out[route] = v * scale if math.isfinite(v) else None
    return out


def red_by_route(client: Client, selector: Sequence[str], rng: TimeRange, m: Metrics, *,
                 all_routes: bool = False) -> Dict[str, Dict[str, Optional[float]]]:
    """route → {rate, error_ratio, p50_ms, p90_ms, p99_ms} over ``rng`` (``all_routes``: one row,
    route ``""``, summed over every route). Routes without traffic in the range are absent."""
    w, at = _window(rng), rng.end.timestamp()
    by = "" if all_routes else m.route_label
    sel = ", ".join(selector)
    err = ", ".join([*selector, f'{m.status_label}=~"{m.error_status}"'])
    rates = _by_route(_query(client, f"sum by ({by}) (rate({m.requests}{{{sel}}}[{w}]))", at), by)
    errors = _by_route(_query(client, f"sum by ({by}) (rate({m.requests}{{{err}}}[{w}]))", at), by)
    q = {p: _by_route(_query(client, f"histogram_quantile({p / 100}, sum by (le{', ' + by if by else ''}) "
                                     f"(rate({m.duration}_bucket{{{sel}}}[{w}])))", at), by, m.duration_scale)
         for p in QUANTILES}
    out = {}
    for route, rate in rates.items():
        if not rate:
            continue
        row = {"rate": round(rate, 4), "error_ratio": round(min(1.0, (errors.get(route) or 0.0) / rate), 6)}
        row.update({f"p{p}_ms": _round(q[p].get(route)) for p in QUANTILES})
        out[route] = row
    return out


def _round(v: Optional[float]) -> Optional[float]:
    return None if v is None else round(v, 3)


def has_series(client: Client, selector: Sequence[str], rng: TimeRange, m: Metrics) -> Dict[str, bool]:
    """Whether the counter and the histogram's buckets have any series in the range (for the errors)."""
    w, at, sel = _window(rng), rng.end.timestamp(), ", ".join(selector)
    return {"requests": bool(_query(client, f"count(last_over_time({m.requests}{{{sel}}}[{w}]))", at)),
            "buckets": bool(_query(client, f"count(last_over_time({m.duration}_bucket{{{sel}}}[{w}]))", at))}


KEYS = ("rate", "error_ratio", "p50_ms", "p99_ms")


def compare_ranges(base: Dict[str, Dict], head: Dict[str, Dict]) -> Dict[str, List[Dict]]:
    """``{"routes": [{route, base, head, delta}]}`` sorted by ``delta.p99_ms`` descending (nulls last)."""
    routes = []
    for route in sorted(set(base) | set(head)):
        b, h = base.get(route), head.get(route)
        bb = {k: (b or {}).get(k) for k in KEYS}
        hh = {k: (h or {}).get(k) for k in KEYS}
        delta = {k: (None if bb[k] is None or hh[k] is None else round(hh[k] - bb[k], 6)) for k in KEYS}
        routes.append({"route": route, "base": bb, "head": hh, "delta": delta})
    routes.sort(key=lambda r: (r["delta"]["p99_ms"] is None, -(r["delta"]["p99_ms"] or 0.0), r["route"]))
    return {"routes": routes}


def _f(v, fmt: str) -> str:
    return "-" if v is None else fmt.format(v)


def red_table(doc: Dict[str, List[Dict]]) -> List[str]:
    """The table ``profkit red`` prints (route names made safe for the terminal by the caller)."""
    rows = [("route", "rate /s", "errors", "p50 ms", "p99 ms", "Δ p99 ms")]
    for r in doc["routes"]:
        b, h, d = r["base"], r["head"], r["delta"]
        rows.append((r["route"] or "(no route)",
                     f"{_f(b['rate'], '{:.2f}')} → {_f(h['rate'], '{:.2f}')}",
                     f"{_f(b['error_ratio'], '{:.1%}')} → {_f(h['error_ratio'], '{:.1%}')}",
                     f"{_f(b['p50_ms'], '{:.1f}')} → {_f(h['p50_ms'], '{:.1f}')}",
                     f"{_f(b['p99_ms'], '{:.1f}')} → {_f(h['p99_ms'], '{:.1f}')}",
                     _f(d["p99_ms"], "{:+.1f}")))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths))).rstrip()
            for row in rows]


def wait_for_scrape(client: Client, selector: Sequence[str], m: Metrics, end: float, timeout: float = 15.0) -> bool:
    """Wait until Prometheus holds a sample of the request counter at or after ``end`` (the
    last scrape of the window), at most ``timeout`` seconds; whether it does."""
    import time

    sel = ", ".join(selector)
    deadline = time.monotonic() + timeout
    while True:
        rows = _query(client, f"max(timestamp({m.requests}{{{sel}}}))", time.time())
        got = _by_route(rows, "")
        if (got.get("") or 0) >= end:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.5)


#: When Prometheus and the load generator disagree: relative rate, absolute error ratio, latency ratio.
RATE_TOLERANCE, ERROR_TOLERANCE, LATENCY_FACTOR, LATENCY_SLACK_MS = 0.2, 0.02, 1.5, 5.0


def disagreements(load: Dict, prom: Dict) -> List[str]:
    """What the generator's figures and Prometheus's disagree on, as sentences (empty: they agree).
    Histogram percentiles are interpolated within buckets: latencies agree within a factor of
    1.5 (plus 5 ms); rates within 20%; error ratios within 2 points."""
    out = []
    lr, pr = load.get("rate"), prom.get("rate")
    if lr is not None and pr is not None and abs(lr - pr) > RATE_TOLERANCE * max(lr, pr):
        out.append(f"rate: the load generator measured {lr:.1f}/s, Prometheus {pr:.1f}/s")
    le = (load.get("error_pct") / 100.0) if load.get("error_pct") is not None else None
    pe = prom.get("error_ratio")
    if le is not None and pe is not None and abs(le - pe) > ERROR_TOLERANCE:
        out.append(f"errors: the load generator counted {le:.1%}, Prometheus {pe:.1%} (timeouts at the client "
                   "are errors it never sees finish)")
    lat = load.get("latency_ms") or {}
    for p in ("p50", "p99"):
        a, b = lat.get(p), prom.get(f"{p}_ms")
        if a is not None and b is not None and (max(a, b) - LATENCY_SLACK_MS) > LATENCY_FACTOR * min(a, b):
            out.append(f"{p}: the load generator measured {a:.1f} ms, Prometheus {b:.1f} ms"
                       + (" (a closed-loop generator that stops waiting, or sends less while the service stalls, "
                          "hides the slow requests the service still served)" if b > a else ""))
    return out


def bench_red(client: Client, selector: Sequence[str], m: Metrics, start: float, end: float, load: Dict) -> Dict:
    """``load.json``'s ``prometheus`` object for a bench run's window [start, end] (epoch seconds)."""
    from datetime import datetime, timezone

    scraped = wait_for_scrape(client, selector, m, end)
    rng = TimeRange(datetime.fromtimestamp(start, timezone.utc), datetime.fromtimestamp(max(end, start + 1), timezone.utc))
    total = red_by_route(client, selector, rng, m, all_routes=True).get("")
    routes = red_by_route(client, selector, rng, m)
    from profkit.secrets import redact

    out: Dict[str, object] = {"url": redact(client.base), "selector": "{" + ", ".join(selector) + "}", "window": str(rng),
                              "requests_metric": m.requests, "duration_metric": m.duration, "route_label": m.route_label}
    if total is None:
        out.update({"rate": None, "error_ratio": None, "p50_ms": None, "p90_ms": None, "p99_ms": None, "routes": [],
                    "disagreements": [], "warning": "Prometheus has no requests for the selector in the run's window"})
        return out
    out.update(total)
    out["routes"] = [{"route": r, **v} for r, v in sorted(routes.items())]
    out["disagreements"] = disagreements(load, total)
    if not scraped:
        out["warning"] = "Prometheus had not scraped past the run's end: the figures may miss its last seconds"
    elif total.get("p99_ms") is None:
        out["warning"] = f"{m.duration}_bucket has no series for the selector: latency is null"
    return out

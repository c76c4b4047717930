# SPDX-License-Identifier: Apache-2.0
"""What the servers a service already has say: ``traces`` (Jaeger), ``red`` (Prometheus)."""
from __future__ import annotations

import sys
import time

import click

from profkit.cli.common import CONTEXT, echo_warnings
from profkit.errors import UsageError
from profkit.timeparse import RANGE_TYPE

_token_options = [
    click.option("--token-env", default=None, metavar="VAR",
                 help="Environment variable holding a bearer token for the server."),
    click.option("--token-file", default=None, metavar="FILE", help="File whose first line is a bearer token."),
    click.option("--ca-file", default=None, metavar="FILE", help="Extra CA certificate (PEM) for an https:// server."),
]


def token_options(f):
    for o in reversed(_token_options):
        f = o(f)
    return f


class _Progress:
    """One line on stderr at most every 2 s while traces are read (none with --quiet)."""

    def __init__(self, quiet: bool):
        self.quiet, self.last = quiet, time.monotonic()  # a first line only after 2 s

    def __call__(self, text: str) -> None:
        now = time.monotonic()
        if not self.quiet and now - self.last >= 2.0:
            self.last = now
            click.echo(f"profkit traces: {text}", err=True)


@click.command(context_settings=CONTEXT)
@click.option("--jaeger", required=True, metavar="URL", help="Jaeger's query service (e.g. http://127.0.0.1:16686).")
@click.option("--service", required=True, metavar="NAME", help="Traces that have a span of this service.")
@click.option("--operation", default=None, metavar="OP", help="… and of this operation (span name) of that service.")
@click.option("--base", type=RANGE_TYPE, default=None, metavar="RANGE", help="The earlier (good) range: TIME..TIME.")
@click.option("--head", type=RANGE_TYPE, default=None, metavar="RANGE", help="The later (bad) range.")
@click.option("--slow", default=None, metavar="pNN", help="With --fast and --range: slow traces are those at or above this percentile of duration.")
@click.option("--fast", default=None, metavar="pNN", help="Fast traces: at or below this percentile of duration.")
@click.option("--range", "range_", type=RANGE_TYPE, default=None, metavar="RANGE", help="The one range of --slow/--fast.")
@click.option("--max-traces", type=click.IntRange(1, 1_000_000), default=5000, show_default=True,
              help="Read at most this many traces per range (Jaeger is paged through up to that).")
@click.option("--output", "-o", "out_dir", default=None, metavar="OUT_DIR",
              help="Directory to create for traces.json, the span flame graphs and reports (default: runs/traces-<time>).")
@token_options
@click.option("--quiet", "-q", is_flag=True, help="No progress lines; only the verdict.")
def traces(jaeger, service, operation, base, head, slow, fast, range_, max_traces, out_dir, token_env, token_file,
           ca_file, quiet):
    """Which part of the request grew: compare the critical paths of two sets of traces from Jaeger.

    \b
      # before and after a deploy
      profkit traces --jaeger http://127.0.0.1:16686 --service gateway \\
          --base 2026-12-01T10:00:00Z..2026-12-01T10:15:00Z --head -15m..now -o runs/traces
      # the slowest traces of the last 10 minutes against the typical ones
      profkit traces --jaeger http://127.0.0.1:16686 --service gateway --slow p99 --fast p50 --range -10m..now

    Every trace's critical path (what the root waited on, children clamped to their parents) is
    summed per span path (service: operation, root to leaf) into a profile in nanoseconds.
    traces.json lists the traces used and the segments sorted by their growth per trace; the
    directory also has a span flame graph of each set, a differential graph, summary.md and
    report.html. The last line is the verdict: the segment that grew most, with a slow and a fast
    trace id to open in Jaeger. Exit 1 when Jaeger is unreachable or holds no traces in a range.
    """
    from profkit.http import token_from
    from profkit.textsafe import terminal_text
    from profkit.traces import run_traces
    from profkit.traces.compare import parse_percentile

    two = base is not None or head is not None
    one = slow is not None or fast is not None or range_ is not None
    if two == one or (two and (base is None or head is None)) or (one and None in (slow, fast, range_)):
        raise UsageError("give either --base RANGE --head RANGE, or --slow pNN --fast pNN --range RANGE")
    slow_p = parse_percentile(slow, "--slow") if one else None
    fast_p = parse_percentile(fast, "--fast") if one else None
    if one and fast_p >= slow_p:
        raise UsageError(f"--fast {fast} must be a lower percentile than --slow {slow}")
    if not service.strip():
        raise UsageError("--service is empty")
    out_dir = out_dir or f"runs/traces-{time.strftime('%Y%m%d-%H%M%S')}"
    doc = run_traces(jaeger, service, out_dir, operation=operation, base=base, head=head, slow=slow_p, fast=fast_p,
                     range_=range_, max_traces=max_traces, token=token_from(token_env, token_file), ca_file=ca_file,
                     progress=_Progress(quiet))
    echo_warnings(doc.get("warnings") or [])
    f = doc["fetch"]
    if not quiet:
        click.echo(f"profkit traces: {doc['base']['count']} {doc['base']['label']} and {doc['head']['count']} "
                   f"{doc['head']['label']} traces ({f['requests']} requests, Jaeger {f['jaeger_seconds']:.2f} s, "
                   f"analysis {f['parse_seconds'] + f['analyse_seconds']:.2f} s); wrote {out_dir}/", err=True)
        for s in [s for s in doc["segments"] if s["delta_ms"] > 0][:3]:
            click.echo(f"  {s['delta_ms']:+9.1f} ms  {terminal_text(' → '.join(s['path']))}", err=True)
    click.echo(terminal_text(doc["verdict"]))
    sys.stdout.flush()


def prometheus_metric_options(f):
    """--convention, --requests-metric, --duration-metric, --route-label, --status-label (red and bench)."""
    opts = [
        click.option("--convention", type=click.Choice(["prometheus-client", "opentelemetry"]), default="prometheus-client",
                     show_default=True, help="Default metric and label names: prometheus-client's http_requests_total / "
                                             "http_request_duration_seconds by route and status, or OpenTelemetry's "
                                             "http.server.request.duration by http_route."),
        click.option("--requests-metric", default=None, metavar="NAME", help="Request counter (default: the convention's)."),
        click.option("--duration-metric", default=None, metavar="NAME",
                     help="Latency histogram, in seconds unless its name ends in _milliseconds (default: the convention's)."),
        click.option("--route-label", default=None, metavar="LABEL", help="Label naming the route (default: route, or http_route)."),
        click.option("--status-label", default=None, metavar="LABEL",
                     help="Label holding the HTTP status; 5xx are errors (default: status, or http_response_status_code)."),
    ]
    for o in reversed(opts):
        f = o(f)
    return f


@click.command(context_settings=CONTEXT)
@click.option("--prometheus", required=True, metavar="URL", help="Prometheus's URL (e.g. http://127.0.0.1:9090).")
@click.option("--selector", default="{}", show_default=True, metavar="SELECTOR",
              help="Which series: PromQL matchers, e.g. '{job=\"checkout\"}'.")
@click.option("--base", type=RANGE_TYPE, required=True, metavar="RANGE", help="The earlier range: TIME..TIME.")
@click.option("--head", type=RANGE_TYPE, required=True, metavar="RANGE", help="The later range.")
@prometheus_metric_options
@click.option("--output", "-o", "out_file", default=None, metavar="FILE", help="Also write the comparison as JSON.")
@token_options
def red(prometheus, selector, base, head, convention, requests_metric, duration_metric, route_label, status_label,
        out_file, token_env, token_file, ca_file):
    """Did the rate, the errors or the latency of a route change? RED per route from Prometheus.

    \b
      profkit red --prometheus http://127.0.0.1:9090 --selector '{job="checkout"}' \\
          --base -2h..-1h --head -1h..now
      profkit red --prometheus http://127.0.0.1:9090 --convention opentelemetry \\
          --base 2026-12-01T09:00:00Z..2026-12-01T10:00:00Z --head -1h..now -o red.json

    Per route: requests per second, error ratio (5xx), p50 and p99 in ms, in each range and the
    change, routes sorted by the change of p99 (largest growth first). -o FILE writes
    {"routes": [{"route", "base", "head", "delta"}]}; null where a range has no traffic.
    Exit 1 when Prometheus is unreachable or the selector matches nothing in either range.
    """
    import json

    from profkit.atomic import atomic_write
    from profkit.http import Client, token_from
    from profkit.red import compare_ranges, has_series, metrics_for, parse_selector, red_by_route, red_table
    from profkit.textsafe import terminal_text

    matchers = parse_selector(selector)
    m = metrics_for(convention, requests_metric, duration_metric, route_label, status_label)
    client = Client(prometheus, token=token_from(token_env, token_file), ca_file=ca_file, name="Prometheus")
    if out_file:
        import os

        d = os.path.dirname(os.path.abspath(out_file))
        if not os.path.isdir(d):
            raise UsageError(f"cannot write {out_file}: directory {d} does not exist")
    sides = {"base": red_by_route(client, matchers, base, m), "head": red_by_route(client, matchers, head, m)}
    if not sides["base"] and not sides["head"]:
        from profkit.errors import EnvironmentProblem

        seen = has_series(client, matchers, head, m)
        raise EnvironmentProblem(f"Prometheus has no {m.requests} series for {selector} in either range"
                                 + ("" if not seen["requests"] else " with traffic"),
                                 hint=f"check --selector and --requests-metric (or --convention); "
                                      f"try {m.requests}{selector} in Prometheus's own query page")
    for side, rng in (("base", base), ("head", head)):
        if sides[side] and all(r["p99_ms"] is None for r in sides[side].values()):
            echo_warnings([f"{m.duration}_bucket has no series with {selector} in the {side} range: "
                           "latency is null (a histogram without buckets?)"])
    doc = compare_ranges(sides["base"], sides["head"])
    for line in red_table(doc):
        click.echo(terminal_text(line))
    if out_file:
        atomic_write(out_file, json.dumps(doc, indent=2) + "\n")  # keys in the documented order
        click.echo(f"wrote {out_file}", err=True)

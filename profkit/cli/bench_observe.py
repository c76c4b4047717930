# SPDX-License-Identifier: Apache-2.0
"""``bench``'s observability flags: ``--prometheus``, ``--jaeger``, ``--target SERVICE=PID``, and
the investigation it prints at the end (RED → traces → code)."""
from __future__ import annotations

import re
from dataclasses import replace
from typing import Dict, Sequence

import click

from profkit.errors import UsageError

__all__ = ["echo_investigation", "jaeger_reader", "observers", "prometheus_metric_options", "prometheus_reader",
           "target_services", "with_services"]

_SERVICE = re.compile(r"[^\s;\[\]=][^;\[\]\n\r]{0,99}")


def prometheus_metric_options(f):
    from profkit.cli.observe import prometheus_metric_options as options

    return options(f)


def prometheus_reader(url, selector, convention, requests_metric, duration_metric, route_label, status_label):
    """bench --prometheus: (start, end, load figures) → load.json's ``prometheus`` (checked now: exit 2 early)."""
    from profkit.http import Client
    from profkit.red import bench_red, metrics_for, parse_selector

    matchers = parse_selector(selector)
    m = metrics_for(convention, requests_metric, duration_metric, route_label, status_label)
    client = Client(url, name="Prometheus")
    return lambda start, end, load: bench_red(client, matchers, m, start, end, load)


def jaeger_reader(url, service):
    """bench --jaeger: (start, end, run) → warnings; the window's slow vs fast traces into the run."""
    from profkit.http import check_url

    check_url(url, "--jaeger")

    def read(start, end, run):
        import time as _time
        from datetime import datetime, timezone

        from profkit.timeparse import TimeRange
        from profkit.traces import run_traces

        _time.sleep(1.5)  # the services' and Jaeger's batch processors
        rng = TimeRange(datetime.fromtimestamp(start, timezone.utc), datetime.fromtimestamp(end, timezone.utc))
        doc = run_traces(url, service, run.path, range_=rng, slow=99.0, fast=50.0, into=run)
        return [doc["verdict"]] + list(doc.get("warnings") or [])

    return read


def observers(cctx, mode: str, quiet: bool, prometheus_url, selector, metric_names, jaeger_url, trace_service):
    """(``--prometheus`` reader or None, ``--jaeger`` reader or None, the mode): with --jaeger and
    no --mode, wall (a chain waits on its calls: wall time shows both running and waiting)."""
    red = prometheus_reader(prometheus_url, selector, *metric_names) if prometheus_url else None
    if bool(jaeger_url) != bool(trace_service):
        raise UsageError("--jaeger and --service go together")
    traces = jaeger_reader(jaeger_url, trace_service) if jaeger_url else None
    if jaeger_url and cctx.get_parameter_source("mode") == click.core.ParameterSource.DEFAULT:
        mode = "wall"
        if not quiet:
            click.echo("profkit: --jaeger: profiling in wall mode (running and waiting); --mode cpu for on-CPU only",
                       err=True)
    return red, traces, mode


def target_services(specs: Sequence[str]) -> Dict[int, str]:
    """``--target SERVICE=PID`` (repeatable) → pid → service; a PID given twice is a usage error."""
    out: Dict[int, str] = {}
    for text in specs:
        service, eq, pid = str(text).rpartition("=")
        if not eq or not pid.strip().isdigit() or not _SERVICE.fullmatch(service.strip()):
            raise UsageError(f"--target {text!r}: expected SERVICE=PID (e.g. payment=4242; a service name of 1 to 100 "
                             "characters without ';', '[', ']' or newlines)")
        p = int(pid)
        if p in out and out[p] != service.strip():
            raise UsageError(f"--target: PID {p} is given as both {out[p]!r} and {service.strip()!r}")
        out[p] = service.strip()
    return out


def with_services(opts, targeted: Dict[int, str]):
    """The session options with ``--target``'s services as the targets' service labels (the
    names their process frames and comparisons use); a different ``--label service=PID:NAME``
    for the same PID is a usage error."""
    if not targeted:
        return opts
    services = dict(opts.services)
    for pid, svc in targeted.items():
        if services.get(pid, svc) != svc:
            raise UsageError(f"--target {svc}={pid} and --label service={pid}:{services[pid]} name PID {pid} differently")
        services[pid] = svc
    return replace(opts, services=services)


def echo_investigation(run) -> None:
    """stdout: RED → traces → code, one line each, for a run with ``focus.json``."""
    from profkit.reports.focus import investigation_lines
    from profkit.textsafe import terminal_text

    for line in investigation_lines(run):
        click.echo(terminal_text(line))

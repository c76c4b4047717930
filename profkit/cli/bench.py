# SPDX-License-Identifier: Apache-2.0
"""Profiling under load and pull requests: ``bench``, ``compare``."""
from __future__ import annotations

import re
from typing import Optional

import click

from profkit.cli.common import CONTEXT, ProgressLine, positive_seconds, with_stop_signals
from profkit.cli.live import finish, live_options, session_options
from profkit.errors import UsageError

from profkit.cli.bench_observe import (echo_investigation, observers, prometheus_metric_options, target_services,
                                      with_services)


_slo_option = click.option("--slo", "slos", multiple=True, metavar="EXPR",
                           help="Service-level objective METRIC OP VALUE[UNIT] (repeatable): METRIC p50 p90 p99 "
                                "p99.9 max (ms, us, s) errors (%) rate (/s); OP < <= > >=. e.g. 'p99<500ms'.")


def parse_request_rate(text: Optional[str]) -> Optional[float]:
    """``200``, ``200/s``, ``12000/m``, ``1/ms`` → requests per second (a usage error otherwise)."""
    if text is None:
        return None
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(?:/\s*(\d*)\s*(ms|s|m|h))?\s*", text)
    if not m:
        raise UsageError(f"--request-rate {text!r}: expected N or N/UNIT (e.g. 200/s, 12000/m)")
    per = float(m.group(2) or 1) * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[m.group(3) or "s"]
    rate = float(m.group(1)) / per
    if not 0 < rate <= 1e6:
        raise UsageError(f"--request-rate {text!r}: between 0 and 1,000,000 requests per second")
    return rate


def parse_warmup(text: str) -> str:
    """``auto``, or seconds (a DURATION) as text; ``0`` keeps the whole run."""
    if text.strip().lower() == "auto":
        return "auto"
    from profkit.timeparse import parse_duration

    return f"{parse_duration(text, '--warmup'):g}"


def _load_options(pairs) -> tuple:
    out = []
    for text in pairs:
        key, eq, value = text.partition("=")
        if not eq or not re.fullmatch(r"[a-z][a-z0-9_]*", key):
            raise UsageError(f"--load-option {text!r}: expected KEY=VALUE (KEY like table_size)")
        out.append((key, value))
    return tuple(out)


@click.command(context_settings=CONTEXT)
@click.option("--pid", "-p", "pids", type=int, multiple=True, help="Process to profile (repeatable).")
@click.option("--name", "-n", default=None, metavar="PATTERN",
              help="Profile processes whose command line matches this regex (e.g. postgres); with a database "
                   "load they are found once its clients have connected.")
@click.option("--children", is_flag=True, help="Also profile the children of the processes (gunicorn workers, "
                                               "PostgreSQL backends).")
@click.option("--url", "-u", required=True, help="Loopback URL to load (127.0.0.0/8, localhost, [::1] only); "
                                                 "postgresql://USER@127.0.0.1:PORT/DB for sysbench.")
@click.option("--load", "load_id", default="wrk", show_default=True, metavar="ID",
              help="Load generator: wrk, locust, vegeta (open loop), sysbench (PostgreSQL) or cmd (see --load-command).")
@click.option("--load-command", default=None, metavar="CMD",
              help="For --load cmd: the command, with {url} {duration} {connections}; it may print one JSON "
                   "line of figures (see docs of profkit.loadgen.cmd).")
@click.option("--request-rate", default=None, metavar="N/s",
              help="Open-loop generators (vegeta): requests per second to send whatever the service does, e.g. 200/s.")
@click.option("--load-option", "load_options", multiple=True, metavar="KEY=VALUE",
              help="A generator's own setting (repeatable), e.g. sysbench's script=oltp_insert, tables=8, "
                   "table_size=100000, prepare=yes.")
@click.option("--warmup", default="0", show_default=True, metavar="auto|DURATION",
              help="Seconds at the start left out of the RED figures and SLOs; auto: until throughput and "
                   "latency settle (docs/contract.md).")
@click.option("--probe", "probe_specs", multiple=True, metavar="ID=ARG",
              help="Sample a service's own statistics each second into the series (repeatable), e.g. "
                   "postgres=postgresql://USER@127.0.0.1:5432/DB (password from PGPASSFILE or PGPASSWORD).")
@click.option("--connections", "-C", type=int, default=10, show_default=True, help="Concurrent connections (users, "
                                                                                   "sysbench threads).")
@click.option("--load-threads", type=int, default=2, show_default=True, help="wrk threads (at most --connections).")
@click.option("--timeout", type=float, default=5.0, show_default=True, help="Per-request timeout, seconds.")
@_slo_option
@click.option("--baseline", is_flag=True, help="Also measure the profiler's overhead: alternating pairs of "
                                               "loads without and with profiling (after the run).")
@click.option("--baseline-pairs", type=int, default=3, show_default=True, help="Pairs for --baseline.")
@click.option("--baseline-seconds", type=float, default=5.0, show_default=True, help="Seconds per load in --baseline.")
@click.option("--prometheus", "prometheus_url", default=None, metavar="URL",
              help="Also read the run's RED figures from this Prometheus (load.json 'prometheus', beside the generator's).")
@click.option("--selector", default="{}", show_default=True, metavar="SELECTOR",
              help="With --prometheus: which series, e.g. '{job=\"checkout\"}'.")
@prometheus_metric_options
@click.option("--jaeger", "jaeger_url", default=None, metavar="URL",
              help="Also compare the run's slow traces (>= p99) with its fast ones (<= p50) from this Jaeger "
                   "(traces.json and span flame graphs in the run; needs --service), then show the profile of "
                   "the service that owns the top segment, focused on that operation's frames (focus.json). "
                   "Profiles in wall mode unless --mode is given.")
@click.option("--service", "trace_service", default=None, metavar="NAME", help="With --jaeger: the traced service "
                                                                               "(the root of the chain, e.g. gateway).")
@click.option("--target", "target_specs", multiple=True, metavar="SERVICE=PID",
              help="Profile PID as the service SERVICE of the traces (repeatable; e.g. --target payment=4242). "
                   "Without it, targets are mapped by the process.pid resource attribute their spans report.")
@live_options
@click.pass_context
def bench(cctx, pids, name, children, url, load_id, load_command, request_rate, load_options, warmup, probe_specs,
          connections, load_threads, timeout, slos, baseline, baseline_pairs, baseline_seconds, prometheus_url,
          selector, convention, requests_metric, duration_metric, route_label, status_label, jaeger_url,
          trace_service, target_specs, duration, output, collector_ids, rate, mode, interval, quiet, **record):
    """Put load on URL and profile PID at the same time: flame graph, RED and USE, SLO verdicts.

    \b
      profkit bench --pid 1234 --url http://127.0.0.1:8000/items --duration 30 --slo 'p99<500ms'
      profkit bench --pid 1234 --url http://127.0.0.1:8000/ --load vegeta --request-rate 200/s --warmup auto
      profkit bench --pid 1234 --children --url http://127.0.0.1:8000/ --mode wall -o runs/head
      profkit bench --name postgres --children -c perf --call-graph dwarf --load sysbench \\
          --url postgresql://sbtest@127.0.0.1:5432/sbtest --load-option script=oltp_write_only \\
          --probe postgres=postgresql://sbtest@127.0.0.1:5432/sbtest --duration 60 --warmup auto
      profkit bench --pid 1234 --url http://127.0.0.1:8000/ --load cmd \\
          --load-command 'python3 examples/load/load.py {url} {duration} 4 --json'
      profkit bench --target gateway=4240 --target checkout=4241 --target payment=4242 \\
          --url http://127.0.0.1:8000/checkout --prometheus http://127.0.0.1:9090 \\
          --jaeger http://127.0.0.1:16686 --service gateway -o runs/incident

    Writes a run directory with load.json (rate, errors, latency percentiles, SLO verdicts,
    the per-second series, warm-up and drift) beside the profile; summary.md and report.html
    gain a load section with charts of the series. wrk, locust and sysbench are closed-loop:
    they wait for each response, so they hide queueing delay (the summary warns of coordinated
    omission, with the evidence); vegeta is open-loop and measures latency from each request's
    intended send time. Exit 4 when an SLO is missed (after everything is written), 1 when no
    request succeeded.

    With --jaeger over a chain: RED → slow vs fast traces → the top segment's service's profile,
    focused on its operation's frames (report and stdout; docs/contract.md).
    """
    from profkit import loadgen
    from profkit.live import resolve_targets
    from profkit.loadgen.bench import run_bench
    from profkit.slo import parse_objective

    if mode not in ("cpu", "wall"):
        raise UsageError(f"profkit bench profiles --mode cpu or wall, not {mode}")
    for text in slos:
        parse_objective(text)
    positive_seconds(timeout, "--timeout")
    if not 1 <= connections <= 10000 or load_threads < 1:
        raise UsageError("--connections must be 1..10000 and --load-threads positive")
    if baseline:
        positive_seconds(baseline_seconds, "--baseline-seconds")
        if baseline_pairs < 1:
            raise UsageError("--baseline-pairs must be at least 1")
    targeted = target_services(target_specs)
    pids = tuple(pids) + tuple(p for p in targeted if p not in pids)
    if not pids and not name:
        raise UsageError("give --pid PID (repeatable), --target SERVICE=PID or --name PATTERN")
    warmup_spec = parse_warmup(warmup)
    red, traces, mode = observers(cctx, mode, quiet, prometheus_url, selector, (convention, requests_metric, duration_metric,
                                                                         route_label, status_label), jaeger_url, trace_service)
    opts = session_options(duration, output, collector_ids, rate, mode, interval, record)
    opts = with_services(opts, targeted)
    gen = loadgen.get(load_id)
    loadgen.loopback_only(url, gen.schemes)
    req = loadgen.LoadRequest(url=url, duration=duration, raw_dir="", connections=connections,
                              threads=load_threads, timeout=timeout, command=load_command,
                              request_rate=parse_request_rate(request_rate), options=_load_options(load_options))
    gen.validate(req)
    from profkit import probes

    samplers = [probes.make(spec) for spec in probe_specs]
    later = gen.resolve_after_connect and (bool(name) or children)
    targets = None if later else resolve_targets(pids, name, children)
    what = f"{targets[0].name} [{targets[0].pid}]" if targets else (name or ",".join(map(str, pids)))
    progress = ProgressLine(quiet, f"profiling {what} under {load_id} load")
    try:
        run = with_stop_signals(lambda stop: run_bench(targets, opts, gen, req, slos, stop=stop, progress=progress,
                                                        baseline_pairs=baseline_pairs if baseline else 0,
                                                        baseline_seconds=baseline_seconds, warmup=warmup_spec,
                                                        samplers=samplers,
                                                        resolve=(lambda: resolve_targets(pids, name, children))
                                                        if later else None,
                                                        prometheus=red, jaeger=traces))
    finally:
        progress.done()
    finish(run, quiet)
    echo_investigation(run)


def _store_flags(fn):
    """``compare --store KIND=URL --query … --base RANGE --head RANGE`` (profkit.pull)."""
    from profkit.timeparse import RANGE_TYPE

    for o in reversed([
        click.option("--store", default=None, metavar="KIND=URL",
                     help="Compare two time ranges of a profile store instead of two run directories."),
        click.option("--query", default="{}", metavar="SELECTOR", help='With --store: {service="checkout"}.'),
        click.option("--type", "profile_type", default=None, metavar="TYPE", help="With --store: cpu, wall, …"),
        click.option("--base", "base_range", type=RANGE_TYPE, default=None, metavar="RANGE", help="With --store: e.g. -2h..-1h."),
        click.option("--head", "head_range", type=RANGE_TYPE, default=None, metavar="RANGE", help="With --store: e.g. -1h..now."),
        click.option("--token-file", type=click.Path(dir_okay=False), default=None,
                     help="With --store: the store's bearer token (else $PROFKIT_EXPORT_TOKEN)."),
        click.option("--ca-file", type=click.Path(dir_okay=False), default=None, help="With --store: a CA to trust."),
    ]):
        fn = o(fn)
    return fn


def _pull_pair(base_dir, head_dir, out_dir, store, query, profile_type, base_range, head_range, token_file, ca_file):
    """The two run directories to compare: given, or pulled from ``--store`` into OUT/base, OUT/head."""
    import os

    if store is None:
        if not base_dir or not head_dir:
            raise UsageError("give BASE_RUN_DIR and HEAD_RUN_DIR, or --store KIND=URL --base RANGE --head RANGE")
        return base_dir, head_dir
    if base_dir or head_dir:
        raise UsageError("--store compares two ranges of a store: give --base RANGE --head RANGE, not run directories")
    if base_range is None or head_range is None:
        raise UsageError("--store needs --base RANGE and --head RANGE", hint="e.g. --base -2h..-1h --head -1h..now")
    from profkit.cli.agent import export_options
    from profkit.pull import pull_run

    opts = export_options(token_file, ca_file)
    dirs = []
    for which, span in (("base", base_range), ("head", head_range)):
        path = os.path.join(out_dir, which)
        pull_run(store, query, profile_type, span, path, opts)
        dirs.append(path)
    return dirs[0], dirs[1]


@click.command(context_settings=CONTEXT)
@click.argument("base_dir", metavar="BASE_RUN_DIR", required=False)
@click.argument("head_dir", metavar="HEAD_RUN_DIR", required=False)
@click.option("--output", "-o", "out_dir", default="profkit-compare", show_default=True, metavar="OUT_DIR",
              help="Where diff.svg, comment.md and compare.json go.")
@click.option("--fail-on-regression", "fail_pct", type=float, default=None, metavar="PCT",
              help="Exit 3 when a function's total share grew by more than PCT percentage points.")
@_slo_option
@click.option("--redact-paths", is_flag=True, help="Strip file paths from frame names (for public repositories).")
@click.option("--top", type=int, default=10, show_default=True, help="Rows per function table.")
@click.option("--app", "app_patterns", multiple=True, metavar="PATTERN",
              help="Frames matching this regex are the application's own code (repeatable; default: the head run's).")
@click.option("--lib", "lib_patterns", multiple=True, metavar="PATTERN",
              help="Frames matching this regex are library code (repeatable; wins over --app).")
@_store_flags
def compare(base_dir, head_dir, out_dir, fail_pct, slos, redact_paths, top, app_patterns, lib_patterns,
            store, query, profile_type, base_range, head_range, token_file, ca_file):
    """Compare two bench (or attach) runs for a pull request: differential flame graph and comment.md.

    \b
      profkit compare runs/base runs/head -o out --fail-on-regression 5 --slo 'p99<500ms'
      gh pr comment 123 --body-file out/comment.md
      profkit compare --store parca=http://127.0.0.1:7070 --query '{service="checkout"}' \\
          --base -2h..-1h --head -1h..now -o out      # the hour before and after a deploy

    With --store the two ranges are pulled into OUT/base and OUT/head (run directories) first.

    comment.md has the RED deltas, the SLO verdicts, the top regressed and improved functions
    (self and total share) and where the SVGs are. The SLOs default to those the head run was
    benched with. Exit 4 when the head misses an SLO, else 3 when the regression gate trips.
    """
    from profkit.comment import compare_runs, shorten_key
    from profkit.errors import RegressionDetected, SLOMissed
    from profkit.slo import missed_message
    from profkit.textsafe import terminal_text

    base_dir, head_dir = _pull_pair(base_dir, head_dir, out_dir, store, query, profile_type, base_range, head_range,
                                    token_file, ca_file)
    res = compare_runs(base_dir, head_dir, out_dir, threshold=fail_pct, slos=slos, redact=redact_paths, top=top,
                       app=app_patterns, lib=lib_patterns)
    for what, path in res["files"].items():
        click.echo(f"wrote {path}" if what == "comment" or path.startswith(out_dir) else f"  ({what}: {path})", err=True)
    from profkit.compare import regressed

    for d in regressed(res["deltas"], 3):
        if d.delta_total > 0:
            click.echo(f"  {d.delta_total:+6.2f} pts  {terminal_text(shorten_key(d.key, redact_paths))}", err=True)
    missed = missed_message(res["head_slo"] or {})
    if missed:
        raise SLOMissed(f"head run: {missed}")
    bad = res["regressions"]
    if bad:
        raise RegressionDetected(f"{len(bad)} function(s) grew by more than {fail_pct:g} points; worst: "
                                 f"{shorten_key(bad[0].key, redact_paths)} ({bad[0].delta_total:+.2f} points)")

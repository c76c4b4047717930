# SPDX-License-Identifier: Apache-2.0
"""Profiling under load and its outputs: ``bench``, ``compare``, ``export``. Registered by :mod:`profkit.cli`."""
from __future__ import annotations



import click

from profkit.errors import UsageError

CONTEXT = dict(help_option_names=["-h", "--help"], max_content_width=100)

_slo_option = click.option("--slo", "slos", multiple=True, metavar="EXPR",
                           help="Service-level objective METRIC OP VALUE[UNIT] (repeatable): METRIC p50 p90 p99 "
                                "p99.9 max (ms, us, s) errors (%) rate (/s); OP < <= > >=. e.g. 'p99<500ms'.")


def register(cli: click.Group) -> None:
    """Add ``bench``, ``compare`` and ``export`` to the ``profkit`` group."""
    from profkit.cli_live import _live_options, _ProgressLine, _session_options, _with_stop_signals

    @cli.command(context_settings=CONTEXT)
    @click.option("--pid", "-p", "pids", type=int, multiple=True, required=True, help="Process to profile (repeatable).")
    @click.option("--children", is_flag=True, help="Also profile the children of the processes (gunicorn workers).")
    @click.option("--url", "-u", required=True, help="Loopback URL to load (127.0.0.0/8, localhost, [::1] only).")
    @click.option("--load", "load_id", default="wrk", show_default=True, metavar="ID",
                  help="Load generator: wrk, locust or cmd (see --load-command).")
    @click.option("--load-command", default=None, metavar="CMD",
                  help="For --load cmd: the command, with {url} {duration} {connections}; it may print one JSON "
                       "line of figures (see docs of profkit.loadgen.cmd).")
    @click.option("--connections", "-C", type=int, default=10, show_default=True, help="Concurrent connections (users).")
    @click.option("--load-threads", type=int, default=2, show_default=True, help="wrk threads (at most --connections).")
    @click.option("--timeout", type=float, default=5.0, show_default=True, help="Per-request timeout, seconds.")
    @_slo_option
    @click.option("--baseline", is_flag=True, help="Also measure the profiler's overhead: alternating pairs of "
                                                   "loads without and with profiling (after the run).")
    @click.option("--baseline-pairs", type=int, default=3, show_default=True, help="Pairs for --baseline.")
    @click.option("--baseline-seconds", type=float, default=5.0, show_default=True, help="Seconds per load in --baseline.")
    @_live_options
    def bench(pids, children, url, load_id, load_command, connections, load_threads, timeout, slos, baseline,
              baseline_pairs, baseline_seconds, duration, output, collector_ids, rate, mode, interval, quiet, **record):
        """Put load on URL and profile PID at the same time: flame graph, RED and USE, SLO verdicts.

        \b
          profkit bench --pid 1234 --url http://127.0.0.1:8000/items --duration 30 --slo 'p99<500ms'
          profkit bench --pid 1234 --children --url http://127.0.0.1:8000/ --mode wall -o runs/head
          profkit bench --pid 1234 --url http://127.0.0.1:8000/ --load cmd \\
              --load-command 'python3 examples/load/load.py {url} {duration} 4 --json'

        Writes a run directory with load.json (rate, errors, latency percentiles, SLO verdicts)
        beside the profile; summary.md and report.html gain a load section. wrk and locust are
        closed-loop generators: they wait for each response, so they hide queueing delay.
        Exit 4 when an SLO is missed (after everything is written), 1 when no request succeeded.
        """
        from profkit import loadgen
        from profkit.loadgen.bench import run_bench
        from profkit.session import resolve_targets
        from profkit.slo import parse_objective

        if mode not in ("cpu", "wall"):
            raise UsageError(f"profkit bench profiles --mode cpu or wall, not {mode}")
        for text in slos:
            parse_objective(text)
        if not 1 <= connections <= 10000 or load_threads < 1 or timeout <= 0:
            raise UsageError("--connections must be 1..10000, --load-threads and --timeout positive")
        if baseline and baseline_pairs < 1:
            raise UsageError("--baseline-pairs must be at least 1")
        loadgen.loopback_only(url)
        opts = _session_options(duration, output, collector_ids, rate, mode, interval, record)
        gen = loadgen.get(load_id)
        req = loadgen.LoadRequest(url=url, duration=duration, raw_dir="", connections=connections,
                                  threads=load_threads, timeout=timeout, command=load_command)
        targets = resolve_targets(pids, None, children)
        progress = _ProgressLine(quiet, f"profiling {targets[0].name} [{targets[0].pid}] under {load_id} load")
        try:
            run = _with_stop_signals(lambda stop: run_bench(targets, opts, gen, req, slos, stop=stop, progress=progress,
                                                            baseline_pairs=baseline_pairs if baseline else 0,
                                                            baseline_seconds=baseline_seconds))
        finally:
            progress.done()
        _bench_finish(run, quiet)


def _bench_finish(run, quiet: bool) -> None:
    from profkit.cli_live import _finish

    _finish(run, quiet)



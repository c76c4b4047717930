# SPDX-License-Identifier: Apache-2.0
"""Continuous profiling: ``agent`` (windows into profile stores) and ``pull`` (a time range back)."""
from __future__ import annotations

import re
from typing import Dict, Optional

import click

from profkit.cli.common import CONTEXT
from profkit.errors import UsageError
from profkit.timeparse import DURATION_TYPE, RANGE_TYPE

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)", re.I)


def parse_size(text: Optional[str], flag: str) -> Optional[int]:
    """Bytes of ``200MB``, ``1.5G``, ``500k``, ``1024`` (decimal units; ``MiB`` binary)."""
    if text is None:
        return None
    m = _SIZE.fullmatch(text.strip())
    if not m:
        raise UsageError(f"{flag}: {text!r} is not a size", hint="use e.g. 200MB, 1G, 500k or a number of bytes")
    power = "kmgt".find(m.group(2).lower()) + 1 if m.group(2) else 0
    base = 1024 if m.group(3).lower().startswith("i") else 1000
    return int(float(m.group(1)) * base ** power)


def parse_labels(labels) -> Dict[str, str]:
    """``--label KEY=VALUE`` (repeatable) with checked names."""
    from profkit.exporters import clean_labels

    out: Dict[str, str] = {}
    for text in labels:
        key, eq, value = text.partition("=")
        if not eq:
            raise UsageError(f"--label {text!r}: expected KEY=VALUE")
        out[key] = value
    return clean_labels(out)


def export_options(token_file: Optional[str], ca_file: Optional[str], timeout: float = 10.0):
    from profkit.exporters import ExportOptions
    from profkit.http import token_from

    return ExportOptions(timeout=timeout, ca_file=ca_file, token=token_from("PROFKIT_EXPORT_TOKEN", token_file))


def store_options(fn):
    """``--token-file`` and ``--ca-file`` (shared by agent, pull and compare --store)."""
    fn = click.option("--ca-file", type=click.Path(dir_okay=False), default=None,
                      help="A CA certificate (PEM) to trust for https:// stores, besides the system's.")(fn)
    fn = click.option("--token-file", type=click.Path(dir_okay=False), default=None,
                      help="A file whose first line is the store's bearer token (else $PROFKIT_EXPORT_TOKEN).")(fn)
    return fn


@click.command(context_settings=CONTEXT)
@click.option("--pid", "-p", "pids", type=int, multiple=True, help="A process to profile (repeatable).")
@click.option("--name", "-n", default=None, metavar="REGEX",
              help="Processes whose command line matches (re-resolved every window; never profkit itself).")
@click.option("--cgroup", default=None, metavar="PATH", help="Every process of a cgroup (systemd unit, container, pod).")
@click.option("--children", is_flag=True, help="Also the children of the processes found.")
@click.option("--mode", "-m", type=click.Choice(["cpu", "wall", "alloc", "lock"]), default="cpu", show_default=True)
@click.option("--collector", "-c", "collector_ids", multiple=True, metavar="ID", help="Collector (default: by runtime).")
@click.option("--rate", "-r", type=click.IntRange(1, 10000), default=100, show_default=True, help="Sampling rate, Hz.")
@click.option("--threads", is_flag=True, help="A root frame per thread (py-spy --threads, perf's comm-PID/TID).")
@click.option("--window", "window", type=DURATION_TYPE, default="10s", show_default=True, help="Length of a window.")
@click.option("--duration", "-d", type=DURATION_TYPE, default=None, help="Stop after this long (default: run until stopped).")
@click.option("--output", "-o", default=None, metavar="DIR", help="Keep windows in DIR/windows/ with DIR/windows.jsonl.")
@click.option("--keep", type=click.IntRange(1), default=None, help="Keep the newest N windows in DIR.")
@click.option("--keep-size", default=None, metavar="SIZE", help="Keep the newest windows that fit SIZE (e.g. 1G).")
@click.option("--keep-raw", is_flag=True, help="Keep each window's raw capture (raw/).")
@click.option("--render", is_flag=True, help="Write each window's flamegraph.svg, summary.md and report.html.")
@click.option("--timeline", is_flag=True,
              help="py-spy: time each sample (timeline.bin: render shows time and threads within a window); costs "
                   "the agent about 60% more CPU. perf and async-profiler windows always have it.")
@click.option("--export", "exports", multiple=True, metavar="KIND=URL",
              help="Send every window to a store: parca=http://HOST:7070, file=DIR, … (repeatable).")
@click.option("--label", "labels", multiple=True, metavar="KEY=VALUE",
              help="A label on every window: service=checkout, version=1.4.2, … (repeatable).")
@click.option("--spool-dir", default=None, metavar="DIR", help="The spool (default DIR/spool, else ~/.local/state/profkit/agent-spool).")
@click.option("--spool-size", default="200MB", show_default=True, metavar="SIZE", help="Bound of the spool; past it the oldest windows are dropped.")
@click.option("--flush-timeout", type=DURATION_TYPE, default="10s", show_default=True,
              help="On SIGINT/SIGTERM, how long the final delivery of the spool may take.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="json: one JSON object per event on stderr (journald, Kubernetes).")
@click.option("--quiet", "-q", is_flag=True, help="No status line.")
@store_options
def agent(pids, name, cgroup, children, mode, collector_ids, rate, threads, window, duration, output, keep, keep_size, keep_raw,
          render, timeline, exports, labels, spool_dir, spool_size, flush_timeout, log_format, quiet, token_file, ca_file):
    """Profile continuously in windows and send each window to profile stores.

    \b
      profkit agent --name 'gunicorn: worker' --label service=checkout --label version=1.4.2 \\
          --export parca=http://127.0.0.1:7070 -o /var/lib/profkit
      profkit agent --pid 1234 --window 30s --duration 1h -o runs/agent --keep 100
      profkit agent --cgroup system.slice/api.service --export file=/srv/profiles --log-format json

    Each window of each target is a run directory DIR/windows/<start>-<pid>-<name>/ (profkit
    render and profkit compare work on it), indexed in DIR/windows.jsonl. Targets are found
    anew every window: a process that starts later is picked up, one that exits is dropped.
    Windows wait in a spool on disk until every store has them (a store that is down gets them
    when it is back). SIGINT/SIGTERM end the current window early, deliver what they can within
    --flush-timeout and exit 0. Targets are only read, never signalled.
    """
    from profkit.agent import Agent, AgentOptions
    from profkit.agent.status import Status
    from profkit.agent.targets import TargetSpec
    from profkit.cli.common import with_stop_signals

    if window < 1:
        raise UsageError("--window must be at least 1 s")
    if duration is not None and duration <= 0:
        raise UsageError("--duration must be positive")
    if (keep or keep_size or keep_raw or render) and not output:
        raise UsageError("--keep, --keep-size, --keep-raw and --render apply to -o DIR; give -o DIR")
    if not output and not exports:
        raise UsageError("give -o DIR, --export KIND=URL, or both", hint="e.g. --export parca=http://127.0.0.1:7070")
    import os

    for spec in exports:
        kind, _, where = spec.partition("=")
        if kind == "file" and output and os.path.realpath(where) == os.path.realpath(output):
            raise UsageError(f"--export {spec}: that is -o {output} itself", hint="-o DIR already keeps every window there")
    opts = AgentOptions(spec=TargetSpec(pids, name, cgroup, children), mode=mode, rate=rate, window=window,
                        duration=duration, output=output, keep=keep, keep_size=parse_size(keep_size, "--keep-size"),
                        keep_raw=keep_raw, render=render, exports=exports, labels=parse_labels(labels),
                        spool_dir=spool_dir, spool_size=parse_size(spool_size, "--spool-size") or 0,
                        flush_timeout=flush_timeout, collectors=tuple(collector_ids),
                        export_options=export_options(token_file, ca_file), threads=threads, timeline=timeline)
    status = Status(log_format, quiet=quiet)
    with_stop_signals(lambda stop: Agent(opts, status, stop).run())


@click.command(context_settings=CONTEXT)
@click.option("--store", required=True, metavar="KIND=URL", help="parca=http://HOST:7070, file=DIR, …")
@click.option("--query", default="{}", show_default=True, metavar="SELECTOR",
              help='Labels to match: {service="checkout",version="1.4.2"} (a type before the braces is kept).')
@click.option("--type", "profile_type", default=None, metavar="TYPE", help="cpu, wall, alloc, lock, or a store's own type.")
@click.option("--range", "time_range", type=RANGE_TYPE, required=True, metavar="RANGE", help="TIME..TIME, e.g. -1h..now.")
@click.option("--output", "-o", required=True, metavar="RUN_DIR", help="The run directory to write (new or empty).")
@click.option("--render/--no-render", default=True, show_default=True, help="Write flamegraph.svg, summary.md, report.html.")
@store_options
def pull(store, query, profile_type, time_range, output, render, token_file, ca_file):
    """Read a time range back from a profile store into a run directory.

    \b
      profkit pull --store parca=http://127.0.0.1:7070 --query '{service="checkout"}' --range -1h..now -o runs/last-hour
      profkit pull --store file=/var/lib/profkit --query '{service="checkout"}' --type cpu --range -2h..-1h -o runs/before

    The run directory is an ordinary one (profkit render, profkit compare work on it); its
    manifest records the store, the query and the range. No data in the range: exit 1.
    """
    from profkit.pull import pull_run

    run = pull_run(store, query, profile_type, time_range, output, export_options(token_file, ca_file), render=render)
    click.echo(f"profkit: pulled {run.record.profile.samples if run.record.profile else 0:g} "
               f"{run.record.unit}: {run.path}/", err=True)

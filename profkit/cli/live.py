# SPDX-License-Identifier: Apache-2.0
"""Live profiling: ``attach``, ``run``, ``render``."""
from __future__ import annotations

import os
import shlex
import shutil
import time
from typing import Dict, List

import click

from profkit.cli.common import CONTEXT, ProgressLine, echo_warnings, positive_seconds, with_stop_signals, written
from profkit.errors import TargetNotFound, UsageError


def record_flags():
    """One flag per record-option field of every registered collector (the union): a flag applies
    to each chosen collector that has the field. Defaults are None: the collector's own default."""
    import collectors
    from profkit.options import describe

    seen: Dict[str, List] = {}
    for cid, c in collectors.load_all().items():
        if c.RecordOptions is None or cid == "psutil":  # psutil's options are --interval/--children
            continue
        for name, flag, default, help_text, choices in describe(c.RecordOptions):
            entry = seen.setdefault(name, [flag, default, help_text, choices, []])
            entry[4].append(cid)
    opts = []
    for name, (flag, default, help_text, choices, ids) in sorted(seen.items()):
        help_text = f"{help_text} [{', '.join(ids)}]"
        if isinstance(default, bool):
            opts.append(click.option(f"{flag}/--no-{flag[2:]}", name, default=None, help=help_text))
        else:
            kind = click.Choice(list(choices)) if choices else type(default) if default is not None else str
            opts.append(click.option(flag, name, type=kind, default=None, help=help_text))
    return opts


def live_options(fn):
    """The options ``attach``, ``run`` and ``bench`` share."""
    opts = [
        click.option("--duration", "-d", type=float, default=30.0, show_default=True,
                     help="Seconds to profile; Ctrl-C ends earlier and still writes everything."),
        click.option("--output", "-o", default=None, metavar="RUN_DIR",
                     help="Run directory (default runs/<time>-<pid>-<name>/); must be new or empty."),
        click.option("--collector", "-c", "collector_ids", multiple=True, metavar="ID",
                     help="Collector(s) to use (repeatable: the first is primary, never summed). "
                          "Default: by runtime and mode (py-spy, perf, async-profiler or jfr)."),
        click.option("--rate", "-r", type=int, default=100, show_default=True, help="Sampling rate in Hz."),
        click.option("--mode", "-m", type=click.Choice(["cpu", "wall", "alloc", "lock"]), default="cpu",
                     show_default=True, help="What to sample: on-CPU time, wall-clock time, allocations, locks."),
        click.option("--interval", type=float, default=1.0, show_default=True,
                     help="Seconds between process-metric samples (CPU, RSS, threads)."),
        click.option("--quiet", "-q", is_flag=True, help="No progress display or summary on the terminal."),
        click.option("--app", "app_patterns", multiple=True, metavar="PATTERN",
                     help="Frames whose text matches this regex are the application's own code (repeatable), "
                          "for the Application functions table."),
        click.option("--lib", "lib_patterns", multiple=True, metavar="PATTERN",
                     help="Frames whose text matches this regex are library code (repeatable; wins over --app)."),
        click.option("--label", "labels", multiple=True, metavar="service=NAME",
                     help="Name the process in keys and comparisons instead of its process name: service=NAME "
                          "for every target, service=PID:NAME for one (repeatable)."),
    ]
    for o in reversed(opts + record_flags()):
        fn = o(fn)
    return fn


def session_options(duration, output, collector_ids, rate, mode, interval, record):
    """The SessionOptions of the live flags, checked (non-finite or negative values are usage errors)."""
    from profkit.live import SessionOptions

    positive_seconds(duration, "--duration")
    positive_seconds(interval, "--interval")
    if not 1 <= rate <= 10000:
        raise UsageError("--rate must be between 1 and 10000 Hz")
    from profkit.attribution import parse_rules

    services = service_labels(record.pop("labels", ()) or ())
    rules = parse_rules(record.pop("app_patterns", ()) or (), record.pop("lib_patterns", ()) or ())
    return SessionOptions(duration=duration, rate=rate, mode=mode, collectors=tuple(collector_ids),
                          output=output, interval=interval, services=services,
                          attribution={k: list(v) for k, v in (("app", rules.app), ("lib", rules.lib)) if v},
                          record_options={k: v for k, v in record.items() if v is not None})


def service_labels(labels) -> Dict[int, str]:
    """``--label service=NAME`` (key 0: every target) and ``service=PID:NAME`` (that target)."""
    import re

    out: Dict[int, str] = {}
    for text in labels:
        key, eq, value = text.partition("=")
        if not eq or not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", key):
            raise UsageError(f"--label {text!r}: expected KEY=VALUE (KEY like [a-zA-Z_][a-zA-Z0-9_]*)")
        if key != "service":
            raise UsageError(f"--label {key}=…: profkit knows the label 'service' (the name processes are keyed by)")
        pid, colon, name = value.partition(":")
        if colon and pid.isdigit():
            out[int(pid)] = name
        else:
            out[0] = value
    for pid, name in out.items():
        if not name.strip() or len(name) > 100 or any(c in name for c in ";[]\n"):
            raise UsageError(f"--label service={name!r}: a name of 1 to 100 characters without ';', '[', ']' or newlines")
    return out


def finish(run, quiet: bool) -> None:
    """What a finished run prints: its summary (unless quiet), its warnings, where it is and
    which of its outputs it wrote."""
    if not quiet:
        from profkit.outputs import load_run_profile
        from profkit.reports import summary_markdown

        click.echo(summary_markdown(run, load_run_profile(run), for_terminal=True), err=True)
    echo_warnings(run.record.warnings)
    click.echo(f"profkit: {run.record.status}: {run.path}/ ({written(run)})", err=True)


@click.command(context_settings=CONTEXT)
@click.option("--pid", "-p", "pids", type=int, multiple=True, help="Process to profile (repeatable).")
@click.option("--name", "-n", default=None, metavar="PATTERN",
              help="Profile processes whose command line matches this regex (never profkit or its parents).")
@click.option("--children", is_flag=True, help="Also profile the children of the processes (gunicorn workers, pools).")
@live_options
def attach(pids, name, children, duration, output, collector_ids, rate, mode, interval, quiet, **record):
    """Attach to running process(es) and profile them for --duration seconds.

    \b
      profkit attach --pid 1234 --duration 60
      profkit attach --name 'gunicorn: worker' --children --mode wall
      profkit attach --pid 1234 -c perf -c py-spy     # two collectors; the first is primary

    Writes a run directory: flamegraph.svg, profile.folded, summary.md, report.html,
    metrics.jsonl, raw/ (each tool's own capture) and manifest.json. Ctrl-C or SIGTERM end
    the run early and still write everything; the target is only read, never signalled.
    """
    from profkit.live import resolve_targets, run_session

    opts = session_options(duration, output, collector_ids, rate, mode, interval, record)
    targets = resolve_targets(pids, name, children)
    progress = ProgressLine(quiet, f"profiling {targets[0].name} [{targets[0].pid}]")
    try:
        run, _ = with_stop_signals(lambda stop: run_session(targets, opts, stop=stop, progress=progress))
    finally:
        progress.done()
    finish(run, quiet)


@click.command(context_settings=dict(CONTEXT, ignore_unknown_options=True))
@live_options
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(duration, output, collector_ids, rate, mode, interval, quiet, command, **record):
    """Launch COMMAND and profile it until it exits or --duration ends (then it is stopped).

    \b
      profkit run -d 20 -- python3 examples/python_api/app.py --port 8000
      profkit run -c perf -- ./hotloop 5
    """
    from profkit.live import run_session
    from profkit.targets import ChildTool

    opts = session_options(duration, output, collector_ids, rate, mode, interval, record)
    argv = list(command)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise UsageError("give the command to run after --")
    if shutil.which(argv[0]) is None and not os.path.exists(argv[0]):
        raise UsageError(f"command not found: {argv[0]}")
    child = ChildTool(argv, inherit_output=True).start()
    progress = ProgressLine(quiet, f"profiling {shlex.join(argv)[:40]} [{child.pid}]")
    try:
        target = _settle(child.pid)
        run_dir, _ = with_stop_signals(lambda stop: run_session([target], opts, stop=stop, progress=progress,
                                                                 launched=child))
    finally:
        progress.done()
        if child.poll() is None:
            child.stop(grace=5.0)
    finish(run_dir, quiet)


@click.command(context_settings=CONTEXT)
@click.argument("run_dir", metavar="RUN_DIR")
@click.option("--app", "app_patterns", multiple=True, metavar="PATTERN",
              help="Frames matching this regex are the application's own code (repeatable; recorded in the run).")
@click.option("--lib", "lib_patterns", multiple=True, metavar="PATTERN",
              help="Frames matching this regex are library code (repeatable; wins over --app; recorded in the run).")
@click.option("--from", "since", metavar="TIME", default=None,
              help="Only the samples from this time on: a bare DURATION (12s, 500ms) is an offset from the run's "
                   "start; or now, -DURATION, RFC3339.")
@click.option("--until", metavar="TIME", default=None, help="Only the samples before this time (same forms as --from).")
@click.option("--thread", default=None, metavar="PATTERN",
              help="With --from/--until: only the threads whose names match this regex.")
@click.option("--target", default=None, metavar="PID|NAME",
              help="In a run of several targets: that target's own timed samples (its PID, process name or "
                   "service label), with or without --from/--until.")
@click.option("--output", "-o", "out_dir", default=None, metavar="OUT_DIR",
              help="With --from/--until: where the range's files go (default: RUN_DIR/ranges/FROM-UNTIL/).")
def render(run_dir, app_patterns, lib_patterns, since, until, thread, target, out_dir):
    """Rebuild flamegraph.svg, summary.md and report.html of a run from what is on disk.

    A run that profkit left 'running' (it was killed) is recovered first: its raw captures
    are parsed again and the run is marked interrupted. --app/--lib replace the attribution
    rules the run was recorded with.

    With --from/--until (or --thread), the run's timed samples (timeline.bin) in that range
    make a profile of their own: its profile.folded, flamegraph.svg and summary.md go into
    OUT_DIR, never over the run's own files.

    \b
      profkit render runs/20261201-101500-4242-app
      profkit render RUN_DIR --from 12s --until 20s          # → RUN_DIR/ranges/12s-20s/
      profkit render RUN_DIR --from 2026-12-01T10:15:12Z --until 20s -o /tmp/spike
      profkit render RUN_DIR --thread 'worker-1' -o /tmp/worker1
      profkit render RUN_DIR --target 4242 --from 5s --until 9s   # one target of several
    """
    from profkit.attribution import parse_rules
    from profkit.outputs import render_run
    from profkit.rundir import RunDir

    rules = parse_rules(app_patterns, lib_patterns)
    run_d = RunDir.open(run_dir)
    if since is not None or until is not None or thread is not None or out_dir is not None or target is not None:
        _render_range(run_d, since, until, thread, out_dir, target)
        return
    if rules.app or rules.lib:
        run_d.record.attribution = {k: list(v) for k, v in (("app", rules.app), ("lib", rules.lib)) if v}
        run_d.save()
    known = len(run_d.record.warnings)
    written = render_run(run_d)
    echo_warnings(run_d.record.warnings[known:])
    for path in written.values():
        click.echo(f"wrote {path}", err=True)


def _render_range(run_d, since, until, thread, out_dir, target=None) -> None:
    from profkit.timeline import epoch_of_iso
    from profkit.timeslice import offset_of, render_range

    start = epoch_of_iso(run_d.record.start) or 0.0
    a, b = offset_of(since, start, "--from"), offset_of(until, start, "--until")
    for path in render_range(run_d, a, b, out_dir, thread, target).values():
        click.echo(f"wrote {path}", err=True)


def _settle(pid: int, timeout: float = 2.0):
    """Inspect a just-launched process once it has exec'd its real program (shims, wrappers)."""
    from profkit.targets import inspect

    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            t = inspect(pid)
        except TargetNotFound:
            raise TargetNotFound(f"the command exited at once (pid {pid})") from None
        if t.runtime != "native" or time.monotonic() >= deadline:
            return t
        if last is not None and last.exe == t.exe and time.monotonic() > deadline - timeout + 0.5:
            return t
        last = t
        time.sleep(0.1)

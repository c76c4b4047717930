# SPDX-License-Identifier: Apache-2.0
"""Live-profiling commands: ``attach``, ``run``, ``render``, ``doctor``. Registered by :mod:`profkit.cli`."""
from __future__ import annotations

import os
import shlex
import shutil
import signal
import sys
import threading
import time
from typing import Dict, List

import click

from profkit.errors import ProfkitError, TargetNotFound, UsageError

CONTEXT = dict(help_option_names=["-h", "--help"], max_content_width=100)


def _record_flags():
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


def _live_options(fn):
    """The options ``attach`` and ``run`` share."""
    opts = [
        click.option("--duration", "-d", type=float, default=30.0, show_default=True,
                     help="Seconds to profile; Ctrl-C ends earlier and still writes everything."),
        click.option("--output", "-o", default=None, metavar="RUN_DIR",
                     help="Run directory (default runs/<time>-<pid>-<name>/)."),
        click.option("--collector", "-c", "collector_ids", multiple=True, metavar="ID",
                     help="Collector(s) to use (repeatable: the first is primary, never summed). "
                          "Default: by runtime and mode (py-spy, perf, async-profiler or jfr)."),
        click.option("--rate", "-r", type=int, default=100, show_default=True, help="Sampling rate in Hz."),
        click.option("--mode", "-m", type=click.Choice(["cpu", "wall", "alloc", "lock"]), default="cpu",
                     show_default=True, help="What to sample: on-CPU time, wall-clock time, allocations, locks."),
        click.option("--interval", type=float, default=1.0, show_default=True,
                     help="Seconds between process-metric samples (CPU, RSS, threads)."),
        click.option("--quiet", "-q", is_flag=True, help="No progress display or summary on the terminal."),
    ]
    for o in reversed(opts + _record_flags()):
        fn = o(fn)
    return fn


class _ProgressLine:
    """Elapsed / remaining time on one terminal line (a line every 10 s when not a terminal)."""

    def __init__(self, quiet: bool, what: str):
        self.quiet, self.what = quiet, what
        self.tty = sys.stderr.isatty()
        self.last = -10.0
        self.width = 0

    def __call__(self, elapsed: float, remaining: float, status: str) -> None:
        if self.quiet:
            return
        if self.tty:
            line = f"{self.what}: {elapsed:5.1f} s elapsed, {remaining:5.1f} s left · {status} (Ctrl-C stops early)"
            sys.stderr.write("\r" + line[: shutil.get_terminal_size().columns - 1].ljust(self.width))
            self.width = max(self.width, min(len(line), shutil.get_terminal_size().columns - 1))
            sys.stderr.flush()
        elif elapsed - self.last >= 10:
            self.last = elapsed
            sys.stderr.write(f"{self.what}: {elapsed:.0f} s elapsed, {remaining:.0f} s left · {status}\n")

    def done(self) -> None:
        if self.tty and not self.quiet:
            sys.stderr.write("\n")


def _with_stop_signals(body):
    """Run ``body(stop_event)`` with SIGINT/SIGTERM setting the event instead of killing profkit."""
    stop = threading.Event()
    old = {}

    def handler(signum, frame):
        if stop.is_set():  # a second Ctrl-C: the user insists; the session still stops its children
            raise KeyboardInterrupt
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        old[sig] = signal.signal(sig, handler)
    try:
        return body(stop)
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def _finish(run, quiet: bool) -> None:
    m = run.manifest
    if not quiet:
        from profkit.outputs import load_run_profile
        from profkit.reports import summary_markdown

        click.echo(summary_markdown(run, load_run_profile(run), for_terminal=True), err=True)
    for w in m.get("warnings", []):
        click.echo(f"profkit: warning: {w}", err=True)
    click.echo(f"profkit: {m.get('status')}: {run.path}/ (flamegraph.svg, summary.md, report.html)", err=True)


def _session_options(duration, output, collector_ids, rate, mode, interval, record):
    from profkit.session import SessionOptions

    if duration <= 0:
        raise UsageError("--duration must be positive")
    if not 1 <= rate <= 10000:
        raise UsageError("--rate must be between 1 and 10000 Hz")
    return SessionOptions(duration=duration, rate=rate, mode=mode, collectors=tuple(collector_ids),
                          output=output, interval=interval,
                          record_options={k: v for k, v in record.items() if v is not None})


def register(cli: click.Group) -> None:
    """Add the live commands to the ``profkit`` group."""

    @cli.command(context_settings=CONTEXT)
    @click.option("--pid", "-p", "pids", type=int, multiple=True, help="Process to profile (repeatable).")
    @click.option("--name", "-n", default=None, metavar="PATTERN", help="Profile processes whose command line matches this regex.")
    @click.option("--children", is_flag=True, help="Also profile the children of the processes (gunicorn workers, pools).")
    @_live_options
    def attach(pids, name, children, duration, output, collector_ids, rate, mode, interval, quiet, **record):
        """Attach to running process(es) and profile them for --duration seconds.

        \b
          profkit attach --pid 1234 --duration 60
          profkit attach --name 'gunicorn: worker' --children --mode wall
          profkit attach --pid 1234 -c perf -c py-spy     # two collectors; the first is primary

        Writes a run directory: flamegraph.svg, profile.folded, summary.md, report.html,
        metrics.jsonl, raw/ (each tool's own capture) and manifest.json.
        """
        from profkit.session import resolve_targets, run_session

        opts = _session_options(duration, output, collector_ids, rate, mode, interval, record)
        targets = resolve_targets(pids, name, children)
        progress = _ProgressLine(quiet, f"profiling {targets[0].name} [{targets[0].pid}]")
        run = _with_stop_signals(lambda stop: run_session(targets, opts, stop=stop, progress=progress))
        progress.done()
        _finish(run, quiet)

    @cli.command(context_settings=dict(CONTEXT, ignore_unknown_options=True))
    @_live_options
    @click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
    def run(duration, output, collector_ids, rate, mode, interval, quiet, command, **record):
        """Launch COMMAND and profile it until it exits or --duration ends (then it is stopped).

        \b
          profkit run -d 20 -- python3 examples/python_api/app.py --port 8000
          profkit run -c perf -- ./hotloop 5
        """
        from profkit.session import run_session
        from profkit.targets import ChildTool

        opts = _session_options(duration, output, collector_ids, rate, mode, interval, record)
        argv = list(command)
        if argv and argv[0] == "--":
            argv = argv[1:]
        if not argv:
            raise UsageError("give the command to run after --")
        if shutil.which(argv[0]) is None and not os.path.exists(argv[0]):
            raise UsageError(f"command not found: {argv[0]}")
        child = ChildTool(argv, inherit_output=True).start()
        try:
            target = _settle(child.pid)
            progress = _ProgressLine(quiet, f"profiling {shlex.join(argv)[:40]} [{child.pid}]")
            run_dir = _with_stop_signals(lambda stop: run_session([target], opts, stop=stop, progress=progress,
                                                                   launched=child))
        finally:
            if child.poll() is None:
                child.stop(grace=5.0)
        progress.done()
        _finish(run_dir, quiet)

    @cli.command(context_settings=CONTEXT)
    @click.argument("run_dir", metavar="RUN_DIR")
    def render(run_dir):
        """Rebuild flamegraph.svg, summary.md and report.html of a run from what is on disk."""
        from profkit.outputs import render_run
        from profkit.rundir import RunDir

        written = render_run(RunDir.open(run_dir))
        for path in written.values():
            click.echo(f"wrote {path}", err=True)

    @cli.command(context_settings=CONTEXT)
    @click.option("--pid", "-p", type=int, default=None, help="Also check what profiling this process needs.")
    def doctor(pid):
        """Check permissions and tools, and advise on getting usable stacks."""
        from profkit.doctor import diagnose

        problems = 0
        for level, text in diagnose(pid):
            click.echo(f"{level:5} {text}")
            problems += level == "FAIL"
        if problems:
            raise ProfkitError(f"{problems} check(s) failed; see above")


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

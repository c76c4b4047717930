# SPDX-License-Identifier: Apache-2.0
"""``heap``: memory growth, leak suspects and time to OOM."""
from __future__ import annotations

import click

from profkit.cli.common import CONTEXT, ProgressLine, echo_warnings, positive_seconds, with_stop_signals, written


@click.command(context_settings=CONTEXT)
@click.option("--pid", "-p", type=int, required=True, help="Process to watch.")
@click.option("--duration", "-d", type=float, default=60.0, show_default=True,
              help="Seconds to sample; Ctrl-C ends earlier and still writes the report.")
@click.option("--interval", type=float, default=1.0, show_default=True, help="Seconds between memory samples.")
@click.option("--warmup", type=float, default=None,
              help="Seconds left out of the growth fit [default: a quarter of the run, at most 60].")
@click.option("--no-allocations", is_flag=True,
              help="Memory figures only: no memray (Python) and no allocation profile (JVM).")
@click.option("--baseline", type=float, default=None, metavar="SECONDS",
              help="Python: watch RSS/USS alone for this long before memray attaches, so that the growth rate "
                   "and projection are the target's, not memray's (default: a third of --duration; 0: memray "
                   "from the start, and no projection).")
@click.option("--heap-dump", is_flag=True,
              help="JVM: take a heap dump (jcmd GC.heap_dump; the JVM pauses while it writes it) at the end, or as "
                   "soon as the heap is projected to reach -Xmx before the run ends, and show what holds the top "
                   "suspects: the shortest paths from GC roots and the retained bytes of their holder.")
@click.option("--keep-dump", is_flag=True, help="With --heap-dump: keep the dump in raw/ (mode 0600; it holds the "
                                                  "application's data), else it is deleted once analysed.")
@click.option("--output", "-o", default=None, metavar="RUN_DIR",
              help="Run directory (default runs/<time>-<pid>-<name>/); must be new or empty.")
@click.option("--quiet", "-q", is_flag=True, help="No progress display or summary on the terminal.")
def heap(pid, duration, interval, warmup, no_allocations, baseline, heap_dump, keep_dump, output, quiet):
    """Find what is growing in a process, how fast, and when it will run out of memory.

    \b
      profkit heap --pid 1234 --duration 120
      profkit heap --pid "$(pgrep -f JsonService)" -d 60 -o runs/leak
      profkit heap --pid 1234 -d 60 --heap-dump      # … and what holds the leak's memory

    RSS and USS for every process; for a JVM also heap pools and GC (one jstat), class
    histograms at the start and end, and an allocation flame graph; for Python, memray
    attached to the process (live allocations by line). Writes heap.json, summary.md,
    report.html (memory chart with fit and limit, leak suspects) in the run directory.
    """
    from profkit.heap import HeapOptions, run_heap
    from profkit.reports.heap import markdown_section
    from profkit.targets import inspect

    if keep_dump and not heap_dump:
        raise click.BadParameter("needs --heap-dump", param_hint="--keep-dump")
    positive_seconds(duration, "--duration")
    positive_seconds(interval, "--interval")
    if warmup is not None and not 0 <= warmup < float("inf"):
        raise click.BadParameter("must be a finite number of seconds, 0 or more", param_hint="--warmup")
    target = inspect(pid)
    if baseline is not None and not 0 <= baseline < duration:
        raise click.BadParameter("must be 0 or more seconds, and shorter than --duration", param_hint="--baseline")
    opts = HeapOptions(duration=duration, interval=interval, output=output, warmup=warmup,
                       allocations=not no_allocations, baseline=baseline, heap_dump=heap_dump, keep_dump=keep_dump)
    progress = ProgressLine(quiet, f"watching {target.name} [{pid}]")
    try:
        run = with_stop_signals(lambda stop: run_heap(target, opts, stop=stop, progress=progress))
    finally:
        progress.done()
    if not quiet:
        click.echo(markdown_section(run, for_terminal=True), err=True)
    echo_warnings(run.record.warnings)
    click.echo(f"profkit: {run.record.status}: {run.path}/ ({written(run)})", err=True)

# SPDX-License-Identifier: Apache-2.0
"""Profiles to outputs: ``flamegraph``, ``diff``, ``export`` (``collapse`` is :mod:`profkit.cli.collapse`)."""
from __future__ import annotations

import os
from typing import Any, Optional, Sequence, Tuple

import click

from profkit.cli.common import (CONTEXT, dataclass_options, default_output, echo_warnings, options_of, report,
                                write_output)
from profkit.errors import Diagnostics, RegressionDetected, UsageError


def _flamegraph_options():
    from flamegraph.options import FlameGraphOptions

    return FlameGraphOptions


def _load(inputs: Sequence[str], fmt: str, strict: bool, unit: Optional[str], keyed: bool = False):
    from profkit.loading import load_profile

    diag = Diagnostics()
    profile = load_profile(list(inputs), fmt, diag=diag, strict=strict, unit=unit, keyed=keyed)
    report(diag)
    return profile


_unit_option = click.option("--unit", type=click.Choice(["samples", "nanoseconds", "bytes", "objects"]),
                            default=None, help="Unit of folded counts (a bare folded file carries none; default samples).")


@click.command(context_settings=CONTEXT)
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("--output", "-o", default=None, help="SVG file to write (default: stdout when piped, else flamegraph.svg).")
@click.option("--format", "-f", "fmt", default="auto", show_default=True, metavar="ID", help="Input format, or auto.")
@click.option("--strict", is_flag=True, help="Fail (exit 2) on any malformed line.")
@_unit_option
@dataclass_options(_flamegraph_options())
def flamegraph_cmd(inputs: Tuple[str, ...], output: Optional[str], fmt: str, strict: bool,
                   unit: Optional[str], **params: Any) -> None:
    """Render an interactive SVG flame graph (hover, click to zoom, Ctrl-F to search).

    INPUT is folded text or any capture profkit reads (the format is sniffed).

    \b
      profkit flamegraph app.folded -o app.svg --title "checkout p99"
      profkit flamegraph app.folded --inverted -o icicle.svg       # icicle graph
      profkit flamegraph app.folded --minwidth 0.5% --colors java
    """
    from flamegraph import render_svg

    profile = _load(inputs, fmt, strict, unit)
    options = options_of(_flamegraph_options(), params)
    target = default_output(output, "flamegraph.svg")
    write_output(target, lambda out: render_svg(profile, options, out))
    if target != "-":
        from profkit.reports.text import format_quantity

        click.echo(f"wrote {target} ({len(profile):,} stacks, {format_quantity(profile.total, profile.unit)}"
                   f"{'' if profile.unit in ('nanoseconds', 'bytes') else ' ' + profile.unit})", err=True)


@click.command(context_settings=CONTEXT)
@click.argument("before", metavar="BEFORE")
@click.argument("after", metavar="AFTER")
@click.option("--output", "-o", default=None, help="SVG file to write (default: stdout when piped, else diff.svg).")
@click.option("--format", "-f", "fmt", default="auto", show_default=True, metavar="ID", help="Input format, or auto.")
@click.option("--strict", is_flag=True, help="Fail (exit 2) on any malformed line.")
@_unit_option
@click.option("--absolute", is_flag=True, help="Compare raw weights instead of shares of each profile's total.")
@click.option("--markdown", "markdown_path", default=None, metavar="FILE",
              help="Also write a Markdown table of the biggest changes (for a pull request).")
@click.option("--top", default=10, show_default=True, help="Rows per table in --markdown and on the terminal.")
@click.option("--fail-on-regression", "fail_pct", type=float, default=None, metavar="PCT",
              help="Exit 3 when a function's total share grew by more than PCT percentage points.")
@dataclass_options(_flamegraph_options(), overrides={"title": "Differential Flame Graph"})
def diff_cmd(before: str, after: str, output: Optional[str], fmt: str, strict: bool, unit: Optional[str],
             absolute: bool, markdown_path: Optional[str], top: int, fail_pct: Optional[float],
             **params: Any) -> None:
    """Differential flame graph: AFTER's shape, red where a frame grew, blue where it shrank.

    Shares are normalised to each profile's total unless --absolute. Functions are keyed by
    name and file without the line number, so moved code is not "new".

    \b
      profkit diff base.folded head.folded -o diff.svg --markdown diff.md --fail-on-regression 2
    """
    from flamegraph import render_diff
    from profkit.compare import compare_functions, markdown_report, regressed, regressions
    from profkit.forked import large_inputs, side_by_side
    from profkit.textsafe import terminal_text

    def keyed(path: str):
        # Functions are keyed by name and file without the line (shared/CONTRACT.md): key once,
        # for both the graph and the tables; large inputs are read side by side.
        prof = _load([path], fmt, strict, unit, keyed=True)
        prof.function_stats()
        return prof

    b, a = side_by_side(lambda: keyed(before), lambda: keyed(after), parallel=large_inputs(before, after))
    if b.unit != a.unit:
        raise UsageError(f"cannot compare {b.unit} with {a.unit}")
    options = options_of(_flamegraph_options(), params)
    target = default_output(output, "diff.svg")
    write_output(target, lambda out: render_diff(b, a, options, out, normalize=not absolute))
    deltas = compare_functions(b, a)
    if markdown_path:
        text = markdown_report(deltas, top=top, before_label=os.path.basename(before),
                               after_label=os.path.basename(after), threshold=fail_pct)
        write_output(markdown_path, lambda out: out.write(text))
    worst = regressed(deltas, min(top, 5))
    if target != "-":
        click.echo(f"wrote {target}", err=True)
    for d in worst:
        if d.delta_total > 0:
            click.echo(f"  {d.delta_total:+6.2f} pts  {terminal_text(d.key)}", err=True)
    if fail_pct is not None:
        bad = regressions(deltas, fail_pct)
        if bad:
            raise RegressionDetected(f"{len(bad)} function(s) grew by more than {fail_pct:g} points; "
                                     f"worst: {bad[0].key} ({bad[0].delta_total:+.2f} points)")


@click.command(context_settings=CONTEXT)
@click.argument("source", metavar="RUN_DIR|FOLDED")
@click.option("--to", "fmt", type=click.Choice(["speedscope", "pprof", "folded"]), required=True,
              help="Output format.")
@click.option("--output", "-o", required=True, metavar="FILE", help="File to write ('-' for stdout, not for pprof).")
@click.option("--unit", type=click.Choice(["samples", "nanoseconds", "bytes", "objects"]), default=None,
              help="Unit of a bare folded file (a run directory knows its own).")
@click.option("--rate", type=float, default=None, help="Sampling rate in Hz for pprof's time values "
                                                      "(a run directory knows its own).")
def export_cmd(source: str, fmt: str, output: str, unit: Optional[str], rate: Optional[float]) -> None:
    """Export a run's profile (or any capture profkit reads) for speedscope, pprof or folded tools.

    \b
      profkit export runs/head --to speedscope -o head.speedscope.json   # open in speedscope.app
      profkit export runs/head --to pprof -o head.pb.gz && go tool pprof -top head.pb.gz
      profkit export app.folded --to pprof --rate 100 -o app.pb.gz
    """
    from profkit.export import pprof_bytes, write_speedscope
    from profkit.folded import write_folded

    mode, duration, name = "cpu", None, os.path.basename(os.path.normpath(source))
    if os.path.isdir(source):
        from profkit.outputs import load_run_profile
        from profkit.rundir import RunDir

        run = RunDir.open(source)
        profile = load_run_profile(run)
        if profile is None:
            raise UsageError(f"{source}: the run has no profile.folded to export")
        rate = rate or run.record.rate
        mode, duration = run.record.mode or "cpu", run.record.duration
    else:
        diag = Diagnostics()
        profile = _load([source], "auto", False, unit)
        echo_warnings(diag.messages())
    if fmt == "pprof":
        data = pprof_bytes(profile, rate=rate, mode=mode, duration=duration, comment=f"profkit export of {name}")
        write_output(output, lambda fh: fh.write(data), binary=True)
    elif fmt == "speedscope":
        write_output(output, lambda fh: write_speedscope(profile, fh, name=name))
    else:
        write_output(output, lambda fh: write_folded(profile, fh))
    if output != "-":
        click.echo(f"wrote {output} ({fmt}, {len(profile):,} stacks)", err=True)

# SPDX-License-Identifier: Apache-2.0
"""The ``profkit`` command line: a thin layer that maps flags to options and calls the library.

Only this module catches :class:`~profkit.errors.ProfkitError`: it prints one line
(``profkit: error: …``, plus ``hint: …`` where there is a fix) and exits with the error's code
(``shared/CONTRACT.md``). ``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import dataclasses
import os
import sys
import tempfile
import traceback
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import click

from profkit.errors import Diagnostics, ProfkitError, RegressionDetected, UsageError
from profkit.options import describe

CONTEXT = dict(help_option_names=["-h", "--help"], max_content_width=100)


# -- helpers -----------------------------------------------------------------------------
def _report(diag: Diagnostics) -> None:
    for msg in diag.messages():
        click.echo(f"profkit: warning: {msg}", err=True)


def _write_output(path: str, write: Callable[[Any], None]) -> None:
    """Write text to ``path`` atomically (a temp file renamed into place), or to stdout for ``-``."""
    if path == "-":
        # As for files below: names that were not UTF-8 in the input (decoded with
        # surrogateescape) go out as the bytes they came in as, whatever the locale.
        out = click.get_text_stream("stdout", encoding="utf-8", errors="surrogateescape")
        write(out)
        out.flush()
        return
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"cannot write {path}: directory {directory} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=".profkit-", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape", newline="\n") as fh:
            write(fh)
        # mkstemp makes the file private (0600); outputs are meant to be shared: honour the umask.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _default_output(given: Optional[str], fallback: str) -> str:
    """``-o`` if given; else stdout when it is piped, else ``fallback`` in the current directory."""
    if given:
        return given
    return "-" if not sys.stdout.isatty() else fallback


def dataclass_options(cls: type, *, exclude: Sequence[str] = (), overrides: Optional[Dict[str, Any]] = None):
    """A decorator adding one click option per field of an options dataclass (one table of defaults)."""
    overrides = overrides or {}

    def decorate(fn):
        for name, flag, default, help_text, choices in reversed(describe(cls)):
            if name in exclude:
                continue
            default = overrides.get(name, default)
            kw: Dict[str, Any] = {"default": default, "help": help_text, "show_default": default not in (None, "", False)}
            if isinstance(default, bool):
                kw["is_flag"] = True
            elif choices:
                kw["type"] = click.Choice(list(choices))
            elif isinstance(default, int):
                kw["type"] = int
            elif isinstance(default, float):
                kw["type"] = float
            fn = click.option(flag, name, **kw)(fn)
        return fn

    return decorate


def _options_of(cls: type, params: Dict[str, Any], **fixed: Any) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in params.items() if k in names}
    values.update(fixed)
    return cls(**values)


def _format_options(fid: str, args: Sequence[str]) -> Dict[str, Any]:
    """Parse the format-specific flags (e.g. perf's ``--pid --kernel``) against that format's options."""
    import collectors

    collector = collectors.get(fid)
    params = []
    for name, flag, default, help_text, choices in describe(collector.Options):
        kw: Dict[str, Any] = {"default": default, "help": help_text}
        if isinstance(default, bool):
            kw["is_flag"] = True
        elif choices:
            kw["type"] = click.Choice(list(choices))
        params.append(click.Option([flag, name], **kw))
    cmd = click.Command(f"--format {fid}", params=params, context_settings=CONTEXT)
    try:
        ctx = cmd.make_context(f"profkit collapse --format {fid}", list(args))
    except click.UsageError as e:
        raise UsageError(f"{e.format_message()} (options of --format {fid}: "
                         f"{', '.join(d[1] for d in describe(collector.Options)) or 'none'})") from None
    return {k: v for k, v in ctx.params.items() if v != dict(((d[0], d[2]) for d in describe(collector.Options)))[k]}


def _split_format_args(fid: str, tokens: Sequence[str]) -> Tuple[List[str], List[str]]:
    """Separate input paths from format flags; a flag that takes a value keeps the token after it."""
    takes_value = {}
    if fid != "auto":
        import collectors

        takes_value = {d[1]: not isinstance(d[2], bool) for d in describe(collectors.get(fid).Options)}
    files: List[str] = []
    flags: List[str] = []
    it = iter(tokens)
    for tok in it:
        if tok == "-" or not tok.startswith("-"):
            files.append(tok)
            continue
        flags.append(tok)
        name = tok.split("=", 1)[0]
        if "=" not in tok and takes_value.get(name):
            value = next(it, None)
            if value is None:
                raise UsageError(f"{name} needs a value")
            flags.append(value)
    return files, flags


def _format_help() -> str:
    import collectors

    lines = ["Formats (--format) and their options:", ""]
    for cid, c in collectors.load_all().items():
        lines.append(f"  {cid}: {c.summary}")
        for _, flag, default, help_text, choices in describe(c.Options):
            extra = f" [{'|'.join(choices)}]" if choices else ""
            lines.append(f"      {flag}{extra}  {help_text}")
    return "\n".join(lines)


def _flamegraph_options():
    from flamegraph.options import FlameGraphOptions

    return FlameGraphOptions


# -- commands ----------------------------------------------------------------------------
@click.group(context_settings=CONTEXT)
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
@click.version_option(package_name="profkit")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """profkit: profile running processes and turn their stacks into flame graphs.

    \b
    Typical use:
      profkit collapse --format perf perf.txt > app.folded    # any capture → folded stacks
      profkit flamegraph app.folded -o app.svg                 # interactive flame graph
      profkit diff before.folded after.folded -o diff.svg --markdown diff.md

    Exit codes: 0 done, 1 environment/target error, 2 usage or bad input, 3 regression gate,
    4 SLO missed.
    """
    ctx.obj = {"debug": debug}


@cli.command(context_settings=dict(CONTEXT, ignore_unknown_options=True, allow_extra_args=True))
@click.option("--format", "-f", "fmt", default="auto", show_default=True, metavar="ID",
              help="Input format: perf, py-spy, async-profiler, jfr, folded, or auto to sniff it.")
@click.option("--strict", is_flag=True, help="Fail (exit 2) on any malformed line instead of skipping it.")
@click.option("--output", "-o", default="-", show_default=True, help="Where to write the folded stacks.")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.pass_context
def collapse(ctx: click.Context, fmt: str, strict: bool, output: str, inputs: Tuple[str, ...]) -> None:
    """Turn captures into folded stacks ('root;…;leaf COUNT' per line).

    INPUT is a file, '-' for stdin; .gz is read transparently. Several inputs are merged.
    Format-specific flags follow the format's own tools, e.g. for perf the flags of
    FlameGraph's stackcollapse-perf.pl: --pid --tid --kernel --jit --all --addrs.

    \b
      perf script | profkit collapse --format perf --all - > out.folded
      profkit collapse --format jfr --event alloc recording.jfr
    """
    from profkit.folded import write_folded
    from profkit.loading import load_profile

    # click hands the format's own flags (unknown to it) over mixed with the inputs.
    files, flags = _split_format_args(fmt, list(inputs) + list(ctx.args))
    if flags and fmt == "auto":
        raise UsageError(f"format options ({' '.join(flags)}) need an explicit --format")
    options = _format_options(fmt, flags) if flags else {}
    if not files:
        raise UsageError("no input given (use - for stdin)")
    diag = Diagnostics()
    profile = load_profile(files, fmt, options, diag=diag, strict=strict)
    _report(diag)
    _write_output(output, lambda out: write_folded(profile, out))


collapse.epilog = "Run 'profkit collectors' for every format and its options."


def _load_for_render(inputs: Sequence[str], fmt: str, strict: bool, unit: Optional[str], keyed: bool = False):
    from profkit.loading import load_profile

    diag = Diagnostics()
    profile = load_profile(list(inputs), fmt, diag=diag, strict=strict, unit=unit, keyed=keyed)
    _report(diag)
    return profile


_unit_option = click.option("--unit", type=click.Choice(["samples", "nanoseconds", "bytes", "objects"]),
                            default=None, help="Unit of folded counts (a bare folded file carries none; default samples).")


@cli.command(name="flamegraph", context_settings=CONTEXT)
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

    profile = _load_for_render(inputs, fmt, strict, unit)
    options = _options_of(_flamegraph_options(), params)
    target = _default_output(output, "flamegraph.svg")
    _write_output(target, lambda out: render_svg(profile, options, out))
    if target != "-":
        from profkit.reports import format_quantity

        click.echo(f"wrote {target} ({len(profile):,} stacks, {format_quantity(profile.total, profile.unit)}"
                   f"{'' if profile.unit in ('nanoseconds', 'bytes') else ' ' + profile.unit})", err=True)


@cli.command(name="diff", context_settings=CONTEXT)
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
    from profkit.compare import compare_functions, markdown_report, regressions

    from profkit.forked import large_inputs, side_by_side

    def keyed(path: str):
        # Functions are keyed by name and file without the line (shared/CONTRACT.md): key once,
        # for both the graph and the tables; large inputs are read side by side.
        prof = _load_for_render([path], fmt, strict, unit, keyed=True)
        prof.function_stats()
        return prof

    b, a = side_by_side(lambda: keyed(before), lambda: keyed(after), parallel=large_inputs(before, after))
    if b.unit != a.unit:
        raise UsageError(f"cannot compare {b.unit} with {a.unit}")
    options = _options_of(_flamegraph_options(), params)
    target = _default_output(output, "diff.svg")
    _write_output(target, lambda out: render_diff(b, a, options, out, normalize=not absolute))
    deltas = compare_functions(b, a)
    if markdown_path:
        text = markdown_report(deltas, top=top, before_label=os.path.basename(before),
                               after_label=os.path.basename(after), threshold=fail_pct)
        _write_output(markdown_path, lambda out: out.write(text))
    worst = sorted(deltas, key=lambda d: (-d.delta_total, d.key))[: min(top, 5)]
    if target != "-":
        click.echo(f"wrote {target}", err=True)
    for d in worst:
        if d.delta_total > 0:
            click.echo(f"  {d.delta_total:+6.2f} pts  {d.key}", err=True)
    if fail_pct is not None:
        bad = regressions(deltas, fail_pct)
        if bad:
            raise RegressionDetected(f"{len(bad)} function(s) grew by more than {fail_pct:g} points; "
                                     f"worst: {bad[0].key} ({bad[0].delta_total:+.2f} points)")


@cli.command(name="collectors", context_settings=CONTEXT)
def collectors_cmd() -> None:
    """List every registered collector: can it record here (and if not, why and how to fix it),
    and the options of its input format."""
    import collectors

    for cid, c in collectors.load_all().items():
        avail = c.check()
        state = ("ready" if avail.ok else f"cannot record: {avail.reason}") if c.RecordOptions is not None \
            else "reads captures only"
        version = f" {avail.version}" if avail.version else ""
        click.echo(f"{cid}{version}: {state}" + (f"\n    fix: {avail.hint}" if avail.hint and not avail.ok else ""))
    click.echo("")
    click.echo(_format_help())


def _register_command_modules() -> None:
    """Each ``profkit.cli_*`` module adds its commands to the group (live, heap, bench…)."""
    import importlib
    import importlib.util

    for name in ("profkit.cli_live", "profkit.cli_heap", "profkit.cli_bench"):
        if importlib.util.find_spec(name) is not None:
            importlib.import_module(name).register(cli)


_register_command_modules()



# -- entry point -------------------------------------------------------------------------
def main(argv: Optional[List[str]] = None) -> None:
    """Run the CLI, turning every ProfkitError into one line and its exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    try:
        cli.main(args=args, prog_name="profkit", standalone_mode=False)
    except ProfkitError as e:
        if debug:
            traceback.print_exc()
        click.echo(f"profkit: error: {e.message}", err=True)
        if e.hint:
            click.echo(f"hint: {e.hint}", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        e.show()
        sys.exit(2 if isinstance(e, click.UsageError) else e.exit_code)
    except click.Abort:
        click.echo("profkit: interrupted", err=True)
        sys.exit(130)
    except KeyboardInterrupt:
        click.echo("profkit: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); stop quietly, as Unix filters do.
        try:
            sys.stdout = None  # type: ignore[assignment]
        finally:
            os._exit(0)
    except Exception as e:  # a bug: still one line unless --debug
        if debug:
            traceback.print_exc()
        click.echo(f"profkit: error: internal error: {type(e).__name__}: {e} (rerun with --debug for the traceback)",
                   err=True)
        sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":  # pragma: no cover
    main()

# SPDX-License-Identifier: Apache-2.0
"""``collapse``: any capture to folded stacks. Kept apart from the graph commands so that it
imports no renderer: it is the command scripts run most often."""
from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple

import click

from profkit.cli.common import CONTEXT, report, write_output
from profkit.errors import Diagnostics, UsageError
from profkit.options import describe


def _format_options(fid: str, args: Sequence[str]) -> Dict[str, Any]:
    """Parse the format-specific flags (e.g. perf's ``--pid --kernel``) against that format's options."""
    import collectors

    fields = describe(collectors.get(fid).Options)
    params = []
    for name, flag, default, help_text, choices in fields:
        kw: Dict[str, Any] = {"default": default, "help": help_text}
        if isinstance(default, bool):
            kw["is_flag"] = True
        elif choices:
            kw["type"] = click.Choice(list(choices))
        elif isinstance(default, (int, float)):
            kw["type"] = type(default)
        params.append(click.Option([flag, name], **kw))
    cmd = click.Command(f"--format {fid}", params=params, context_settings=CONTEXT)
    try:
        ctx = cmd.make_context(f"profkit collapse --format {fid}", list(args))
    except click.UsageError as e:
        raise UsageError(f"{e.format_message()} (options of --format {fid}: "
                         f"{', '.join(d[1] for d in fields) or 'none'})") from None
    defaults = {d[0]: d[2] for d in fields}
    return {k: v for k, v in ctx.params.items() if v != defaults[k]}


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


@click.command(context_settings=dict(CONTEXT, ignore_unknown_options=True, allow_extra_args=True),
               epilog="Run 'profkit collectors' for every format and its options.")
@click.option("--format", "-f", "fmt", default="auto", show_default=True, metavar="ID",
              help="Input format: perf, py-spy, async-profiler, jfr, memray, folded, or auto to sniff it.")
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
    report(diag)
    write_output(output, lambda out: write_folded(profile, out))



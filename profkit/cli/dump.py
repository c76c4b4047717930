# SPDX-License-Identifier: Apache-2.0
"""``dump``: every thread's stack of a (hung) process, now."""
from __future__ import annotations

import json

import click

from profkit.cli.common import CONTEXT, echo_warnings, positive_seconds, write_output

_TOOLS = ["py-spy", "jcmd", "eu-stack", "gdb"]


@click.command(context_settings=CONTEXT)
@click.option("--pid", "-p", type=int, required=True, help="Process to dump.")
@click.option("--native", is_flag=True,
              help="Python: native frames too (C extensions, the interpreter), py-spy --native.")
@click.option("--locals", "show_locals", is_flag=True, help="Python: each frame's local variables, py-spy --locals.")
@click.option("--json", "json_file", default=None, metavar="FILE",
              help="Also write the snapshot as JSON to FILE (written whole or not at all); '-': JSON on "
                   "stdout instead of the text.")
@click.option("--tool", type=click.Choice(_TOOLS), default=None,
              help="Tool to use [default: py-spy for Python, jcmd for a JVM, eu-stack (else gdb) for the "
                   "rest]; eu-stack and gdb show native stacks of any process.")
@click.option("--timeout", type=float, default=60.0, show_default=True,
              help="Seconds the tool may take; then it is stopped and the process resumed.")
@click.option("--no-group", is_flag=True,
              help="Print every thread; by default threads with the same state and stack (a pool of idle "
                   "workers) are printed once, with the others' ids and names (--json always has them all).")
def dump(pid, native, show_locals, json_file, tool, timeout, no_group):
    """Print every thread's stack of a running process, as it is now: what is it doing?

    \b
      profkit dump --pid 1234                       # Python: py-spy; JVM: jcmd; else eu-stack/gdb
      profkit dump --pid 1234 --native --locals     # Python: C frames and local variables too
      profkit dump --pid "$(pgrep -f JsonService)" --json dump.json
      profkit dump --pid 1234 --tool gdb            # native stacks of any process

    Per thread: name, id, state (running, waiting, blocked: on which lock, held by whom),
    and its frames innermost first with file:line where known. Deadlocks the JVM finds are
    reported first. The process is never killed nor left stopped: py-spy, eu-stack and gdb
    pause it only while they read it (eu-stack one thread at a time), and if one of them
    dies or times out, or profkit is killed meanwhile, the process is resumed. A process that
    is already stopped, or traced by a debugger, is refused.
    """
    from profkit.dump import dump as take_dump
    from profkit.dump import render_text

    positive_seconds(timeout, "--timeout")
    if json_file and json_file != "-":
        _check_directory(json_file)
    snap = take_dump(pid, native=native, locals=show_locals, tool=tool, timeout=timeout)
    if json_file != "-":
        click.echo(render_text(snap, group=not no_group), nl=False)
    if json_file:
        document = snap.to_json()
        write_output(json_file, lambda fh: (json.dump(document, fh, indent=2), fh.write("\n")))
    echo_warnings(snap.warnings)
    if json_file and json_file != "-":
        from profkit.textsafe import terminal_text

        click.echo(f"profkit: wrote {terminal_text(json_file)}", err=True)


def _check_directory(path: str) -> None:
    """Refuse (exit 2) a --json FILE that could not be written, before the dump, not after it."""
    import os

    from profkit.errors import UsageError

    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UsageError(f"cannot write {path}: directory {directory} does not exist")

# SPDX-License-Identifier: Apache-2.0
"""The ``profkit`` command line: a thin layer that maps flags to options and calls the library.

Commands are registered in one table, :data:`COMMANDS` (name → module, function, one-line
help), and a command's module is imported only when that command runs (or its own ``--help``
is asked for): ``profkit --version`` and ``profkit collapse`` never import the collectors
they do not use, jinja2 or the recording engine.

    profkit.cli            the group, the table, main() — the error boundary
    profkit.cli.common     shared helpers: outputs, option tables, progress, stop signals
    profkit.cli.convert    collapse, flamegraph, diff, export        (captures → outputs)
    profkit.cli.live       attach, run, render                       (live profiling)
    profkit.cli.tools      collectors, doctor                        (what can run here)
    profkit.cli.heap       heap                                      (memory growth)
    profkit.cli.bench      bench, compare                            (load, pull requests)
    profkit.cli.dump       dump                                      (a hung process's stacks)
    profkit.cli.agent      agent, pull                               (continuous profiling, stores)
    profkit.cli.observe    traces, red                               (Jaeger, Prometheus)

Only :func:`main` catches :class:`~profkit.errors.ProfkitError`: it prints one line
(``profkit: error: …``, plus ``hint: …`` where there is a fix) and exits with the error's code
(``shared/CONTRACT.md``); click's own usage errors are printed the same way. ``--debug`` (a
flag of the group, parsed by click) shows the traceback instead.
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import Dict, List, NamedTuple, Optional

import click

__all__ = ["COMMANDS", "cli", "main"]

CONTEXT = dict(help_option_names=["-h", "--help"], max_content_width=100)


class Entry(NamedTuple):
    """Where a command lives, and its line in ``profkit --help``."""

    module: str
    attr: str
    short: str


#: Every command: name → (module, attribute, one-line help). The one registration point.
COMMANDS: Dict[str, Entry] = {
    "collapse": Entry("profkit.cli.collapse", "collapse", "Turn captures into folded stacks."),
    "flamegraph": Entry("profkit.cli.convert", "flamegraph_cmd", "Render an interactive SVG flame graph."),
    "diff": Entry("profkit.cli.convert", "diff_cmd", "Differential flame graph of two profiles."),
    "export": Entry("profkit.cli.convert", "export_cmd", "Export a profile for speedscope, pprof or folded tools."),
    "attach": Entry("profkit.cli.live", "attach", "Attach to running process(es) and profile them."),
    "run": Entry("profkit.cli.live", "run", "Launch a command and profile it."),
    "render": Entry("profkit.cli.live", "render", "Rebuild a run's graph and reports from disk."),
    "collectors": Entry("profkit.cli.tools", "collectors_cmd", "List collectors: can they record here, and how to fix it."),
    "doctor": Entry("profkit.cli.tools", "doctor", "Check permissions and tools; advice for usable stacks."),
    "heap": Entry("profkit.cli.heap", "heap", "Find what grows in a process and when it runs out of memory."),
    "bench": Entry("profkit.cli.bench", "bench", "Put load on a URL and profile the service at once."),
    "compare": Entry("profkit.cli.bench", "compare", "Compare two runs for a pull request (diff.svg, comment.md)."),
    "dump": Entry("profkit.cli.dump", "dump", "Print every thread's stack of a (hung) process, now."),
    "agent": Entry("profkit.cli.agent", "agent", "Profile continuously in windows into profile stores (Parca, …)."),
    "pull": Entry("profkit.cli.agent", "pull", "Read a time range back from a profile store into a run directory."),
    "traces": Entry("profkit.cli.observe", "traces", "Compare the critical paths of two sets of Jaeger traces."),
    "red": Entry("profkit.cli.observe", "red", "Rate, errors and latency per route from Prometheus, range vs range."),
}


class _State:
    """What the group's own options set, read by :func:`main` after the command."""

    debug = False


class LazyGroup(click.Group):
    """A group whose commands are imported from :data:`COMMANDS` on first use."""

    def list_commands(self, ctx: click.Context) -> List[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> Optional[click.Command]:
        entry = COMMANDS.get(name)
        if entry is None:
            return None
        cmd = getattr(importlib.import_module(entry.module), entry.attr)
        cmd.name = name
        return cmd

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # The table's own one-line help: listing the commands imports none of them.
        with formatter.section("Commands"):
            formatter.write_dl([(name, e.short) for name, e in COMMANDS.items()])


def _version() -> str:
    from profkit import __version__

    return __version__


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    _State.debug = _State.debug or bool(value)
    return value


@click.group(cls=LazyGroup, context_settings=CONTEXT)
@click.option("--debug", is_flag=True, is_eager=True, expose_value=False, callback=_set_debug,
              help="Show full tracebacks instead of one-line errors.")
@click.version_option(version=_version(), prog_name="profkit", message="%(prog)s, version %(version)s")
def cli() -> None:
    """profkit: profile running processes and turn their stacks into flame graphs.

    \b
    Typical use:
      profkit attach --pid 1234 --duration 60                  # profile a running process
      profkit collapse --format perf perf.txt > app.folded    # any capture → folded stacks
      profkit flamegraph app.folded -o app.svg                 # interactive flame graph
      profkit diff before.folded after.folded -o diff.svg --markdown diff.md

    Run 'profkit COMMAND --help' for a command's options and examples.

    Exit codes: 0 done, 1 environment/target error, 2 usage or bad input, 3 regression gate,
    4 SLO missed.
    """


def _print_error(message: str, hint: Optional[str]) -> None:
    from profkit.textsafe import terminal_text

    click.echo(f"profkit: error: {terminal_text(message)}", err=True)
    if hint:
        click.echo(f"hint: {terminal_text(hint)}", err=True)


def _usage_hint(e: click.UsageError) -> str:
    ctx = e.ctx
    path = ctx.command_path if ctx is not None else "profkit"
    return f"see '{path} --help'"


def _plugin_warnings() -> None:
    """Plugins that failed to load, if the registry was used at all."""
    registry = sys.modules.get("collectors")
    if registry is not None and hasattr(registry, "problems"):
        for msg in registry.problems.messages():
            click.echo(f"profkit: warning: {msg}", err=True)


def main(argv: Optional[List[str]] = None) -> None:
    """Run the CLI, turning every ProfkitError (and click's usage errors) into one line and its exit code."""
    from profkit.errors import ProfkitError

    args = list(sys.argv[1:] if argv is None else argv)
    try:
        try:
            cli.main(args=args, prog_name="profkit", standalone_mode=False)
        finally:
            _plugin_warnings()
    except ProfkitError as e:
        if _State.debug:
            import traceback

            traceback.print_exc()
        _print_error(e.message, e.hint)
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.UsageError as e:
        if _State.debug:
            import traceback

            traceback.print_exc()
        _print_error(e.format_message(), _usage_hint(e))
        sys.exit(2)
    except click.ClickException as e:
        _print_error(e.format_message(), None)
        sys.exit(e.exit_code)
    except (click.Abort, KeyboardInterrupt):
        click.echo("profkit: interrupted", err=True)
        sys.exit(130)
    except BrokenPipeError:
        # The reader went away (e.g. `| head`); stop quietly, as Unix filters do.
        try:
            sys.stdout = None  # type: ignore[assignment]
        finally:
            os._exit(0)
    except Exception as e:  # a bug: still one line unless --debug
        if _State.debug:
            import traceback

            traceback.print_exc()
        _print_error(f"internal error: {type(e).__name__}: {e}", "rerun with --debug for the traceback")
        sys.exit(1)
    sys.exit(0)

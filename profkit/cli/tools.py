# SPDX-License-Identifier: Apache-2.0
"""What can run here: ``collectors``, ``doctor``."""
from __future__ import annotations

import click

from profkit.cli.common import CONTEXT
from profkit.errors import EnvironmentProblem
from profkit.options import describe


def _format_help(registry) -> str:
    lines = ["Formats (--format) and their options:", ""]
    for cid, c in registry.items():
        lines.append(f"  {cid}: {c.summary}")
        for _, flag, default, help_text, choices in describe(c.Options):
            extra = f" [{'|'.join(choices)}]" if choices else ""
            lines.append(f"      {flag}{extra}  {help_text}")
    return "\n".join(lines)


@click.command(context_settings=CONTEXT)
def collectors_cmd() -> None:
    """List every registered collector: can it record here (and if not, why and how to fix it),
    which modes it records for which runtimes, and the options of its input format."""
    import collectors

    registry = collectors.load_all()
    for cid, c in registry.items():
        avail = c.check()
        if c.RecordOptions is None:
            state = "reads captures only"
        elif avail.ok:
            state = "installed (profkit doctor tries it)"
        else:
            state = f"cannot record: {avail.reason}"
        version = f" {avail.version}" if avail.version else ""
        modes = "; ".join(f"{rt}: {', '.join(ms)}" for rt, ms in sorted(c.modes.items())) if c.RecordOptions else ""
        click.echo(f"{cid}{version}: {state}" + (f" ({modes})" if modes else "")
                   + (f"\n    fix: {avail.hint}" if avail.hint and not avail.ok else ""))
    click.echo("")
    click.echo(_format_help(registry))


@click.command(context_settings=CONTEXT)
@click.option("--pid", "-p", type=int, default=None, help="Also check what profiling this process needs.")
@click.option("--no-trials", is_flag=True, help="Only look for the tools; do not let each one record a "
                                                 "throwaway process of profkit's own (a few seconds).")
def doctor(pid, no_trials) -> None:
    """Check permissions and tools, and advise on getting usable stacks.

    Each collector that is installed records a throwaway process profkit starts for the purpose
    (py-spy, memray, perf: a busy Python child; async-profiler, JFR: a fresh JVM), so that OK
    means it worked here. Exit 1 when a check failed (each FAIL line says what to change)."""
    from profkit.doctor import diagnose

    problems = 0
    for level, text in diagnose(pid, trials=not no_trials):
        click.echo(f"{level:5} {text}")
        problems += level == "FAIL"
    if problems:
        raise EnvironmentProblem(f"{problems} check(s) failed; see above")

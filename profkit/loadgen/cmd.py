# SPDX-License-Identifier: Apache-2.0
"""``--load cmd``: any command as the load generator.

The command (``--load-command``, split like a shell would, never run through one) may use
``{url}``, ``{duration}`` (whole seconds) and ``{connections}``. Its RED figures come from the
**last line of its stdout that is a JSON object**, with these keys (all optional; a missing one
is reported as absent, and an SLO on it is ``unknown``)::

    {"requests": 1200, "duration_s": 10.0, "rps": 120.0,
     "errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0, "status": 0}, "error_count": 0,
     "latency_ms": {"mean": 8.1, "p50": 7.9, "p90": 9.5, "p99": 14.2, "p99.9": 30.0, "max": 41.0}}

This is the line ``examples/load/load.py`` and ``load.sh`` print, so either works as is:
``--load cmd --load-command 'python3 examples/load/load.py {url} {duration} 4 --json'``. A command
that prints no such line still puts load on the service; the report then has no RED figures.
"""
from __future__ import annotations

import json
import os
import shlex
import shutil
from typing import Dict, List

from collectors.base import Availability
from profkit.errors import CollectorNotInstalled, UsageError
from profkit.loadgen import ERROR_KINDS, LoadGenerator, LoadRequest, ToolRun, empty_figures, finish_figures
from profkit.targets import ChildTool

__all__ = ["CmdGenerator", "parse_cmd_output"]


def _num(v):
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def parse_cmd_output(text: str, request: LoadRequest) -> Dict:
    """RED figures from the last JSON-object line of the command's stdout (pure)."""
    fig = empty_figures("cmd", request)
    found = None
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            if isinstance(obj, dict):
                found = obj
    if found is None:
        return fig
    req = _num(found.get("requests"))
    fig["requests"] = int(req) if req is not None else None
    fig["duration_s"] = _num(found.get("duration_s"))
    fig["rate"] = _num(found.get("rps", found.get("rate")))
    errs = found.get("errors") if isinstance(found.get("errors"), dict) else {}
    for k in ERROR_KINDS:
        v = _num(errs.get(k))
        fig["errors"][k] = int(v) if v is not None else None
    ec = _num(found.get("error_count"))
    fig["error_count"] = int(ec) if ec is not None else None
    lat = found.get("latency_ms") if isinstance(found.get("latency_ms"), dict) else {}
    for k in fig["latency_ms"]:
        fig["latency_ms"][k] = _num(lat.get(k))
    if fig["requests"] is not None and fig["error_count"] is None and not any(errs.values() if errs else []):
        fig["errors"] = {k: 0 if v is None else v for k, v in fig["errors"].items()}
    return finish_figures(fig)


class CmdGenerator(LoadGenerator):
    """Any command: it puts the load on; profkit reads the JSON line it prints, if any."""

    id = "cmd"
    summary = "any command (--load-command); RED figures from the JSON line it prints"

    def check(self) -> Availability:
        return Availability(True)

    def argv(self, request: LoadRequest) -> List[str]:
        """The command line with {url} {duration} {connections} filled in."""
        if not request.command:
            raise UsageError("--load cmd needs --load-command 'COMMAND {url} {duration}'")
        try:
            words = shlex.split(request.command)
        except ValueError as e:
            raise UsageError(f"--load-command does not parse: {e}") from None
        values = {"url": request.url, "duration": str(max(1, int(round(request.duration)))),
                  "connections": str(request.connections)}
        try:
            return [w.format(**values) for w in words]
        except (KeyError, IndexError, ValueError) as e:
            raise UsageError(f"--load-command: unknown placeholder {e} (use {{url}} {{duration}} {{connections}})") from None

    def start(self, request: LoadRequest) -> ToolRun:
        argv = self.argv(request)
        if shutil.which(argv[0]) is None and not os.path.exists(argv[0]):
            raise CollectorNotInstalled(f"load command not found: {argv[0]}")
        raw = os.path.join(request.raw_dir, "load-cmd.txt")
        out = open(raw, "w", encoding="utf-8")
        return ToolRun(ChildTool(argv, stdout=out).start(), [raw], out)

    def parse(self, raw: List[str], request: LoadRequest) -> Dict:
        text = ""
        for path in raw:
            with open(path, encoding="utf-8", errors="replace") as fh:
                text += fh.read()
        return parse_cmd_output(text, request)

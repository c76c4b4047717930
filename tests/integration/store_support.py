# SPDX-License-Identifier: Apache-2.0
"""What the profile-store exporter tests share: a real window (py-spy on a CPU-bound Python
process, through ``profkit attach``), hostile labels, and the built servers they run."""
import socket
import sys
from datetime import datetime

import pytest

from profkit.exporters.base import Window, clean_labels
from profkit.folded import read_folded
from conftest import TARGETS, manifest, profkit
from support import Proc, built_tool

#: process-name-like label values a store must keep escaped and capped
HOSTILE = {"quotes": 'say "hi" \'there\'', "braces": "a{b}c,d=e", "newline": "line1\nline2\r\n",
           "long": "x" * 10_000}


def tool(name, version):
    """A tool .ci/tools builds; a missing one fails the test with the way to build it."""
    path = built_tool(name, version)
    if path is None:
        pytest.fail(f"{name} {version} is not built (~/.cache/profkit/bin/{name}-{version}); "
                    "run: bash .ci/tools", pytrace=False)
    return path


def profiled_window(tmp, seconds=3, **labels):
    """A Window of a real profile: ``profkit attach`` for ``seconds`` on tests' pyhot.py."""
    run = tmp / "run"
    with Proc([sys.executable, TARGETS / "pyhot.py"]) as target:
        target.wait_ready()
        p = profkit("attach", "--pid", target.pid, "--duration", seconds, "-o", run)
        pid = target.pid
    assert p.returncode == 0, p.stderr
    m = manifest(run)
    with open(run / "profile.folded", encoding="utf-8") as f:
        profile = read_folded(f, unit=m.unit)
    assert profile.total > 50, "too few samples for a comparison"
    start, end = datetime.fromisoformat(m.start), datetime.fromisoformat(m.end)
    names = {"service": "pyhot", "host": socket.gethostname(), "pid": pid, "runtime": "python",
             "collector": "py-spy", "mode": "cpu", **labels}
    return Window(profile, clean_labels(names), start, end, mode="cpu", rate=m.rate or 100, run_dir=run)


def leaf_share(profile, name):
    """The share of ``profile``'s total whose leaf frame is the function ``name``."""
    total = profile.total
    hot = sum(w for key, w in profile.items() if profile.frame(key[-1]).name == name)
    return hot / total if total else 0.0

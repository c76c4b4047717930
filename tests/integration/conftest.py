# SPDX-License-Identifier: Apache-2.0
"""The integration tests' fixtures (over tests/support.py's processes) and readers of a run directory."""
import pathlib
import shutil
import subprocess
import sys

import pytest

TARGETS = pathlib.Path(__file__).resolve().parent / "targets"


@pytest.fixture
def start_target(start_process):
    """``start_target(*argv, **kw)``: tests/support.py's ``start_process`` (a ``Proc``, reaped at
    teardown), under the name the integration tests use for the processes they profile."""
    return start_process


@pytest.fixture
def start_profkit(start_process):
    """``start_profkit(*args)``: profkit's CLI in the background (a ``Proc``, reaped at teardown)."""
    return lambda *args: start_process(sys.executable, "-m", "profkit", *args)


@pytest.fixture(scope="module")
def hotloop(tmp_path_factory):
    """examples/native/hotloop.c built with frame pointers and symbols, for perf."""
    cc = shutil.which("cc") or shutil.which("gcc")
    assert cc, "a C compiler is needed (apt-get install gcc)"
    assert shutil.which("perf"), "perf is needed (apt-get install linux-perf)"
    exe = tmp_path_factory.mktemp("native") / "hotloop"
    subprocess.run([cc, "-O2", "-g", "-fno-omit-frame-pointer", "-o", str(exe),
                    str(TARGETS.parents[2] / "examples" / "native" / "hotloop.c")], check=True)
    return exe


@pytest.fixture
def pyhot(start_target):
    p = start_target(sys.executable, str(TARGETS / "pyhot.py"))
    p.wait_ready()
    return p


def profkit(*args, timeout=120, **kw):
    """Run the real CLI; returns CompletedProcess with text output."""
    return subprocess.run([sys.executable, "-m", "profkit", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, **kw)


def folded_shares(path):
    """function name (without file/line) → share of the total, from a folded file, by leaf."""
    total = 0
    by_leaf = {}
    with open(path) as fh:
        for line in fh:
            stack, n = line.rstrip("\n").rsplit(" ", 1)
            n = float(n)
            total += n
            leaf = stack.split(";")[-1].split(" (")[0]
            by_leaf[leaf] = by_leaf.get(leaf, 0) + n
    return {k: v / total for k, v in by_leaf.items()} if total else {}


def recording(run, seconds=2, kind="profiler"):
    """True once the run's record lists a started probe of ``kind`` (one with a command) and its
    metrics.jsonl covers ``seconds`` (the sampler writes a line a second, the first at the start)."""
    metrics = run / "metrics.jsonl"
    return (run / "manifest.json").exists() and any(p.commands for p in manifest(run).probes if p.kind == kind) \
        and metrics.exists() and metrics.read_text().count("\n") > seconds


def manifest(run):
    """The run's record, validated (profkit.runrecord.RunRecord)."""
    from profkit.rundir import RunDir

    return RunDir.open(str(run)).record

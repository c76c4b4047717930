# SPDX-License-Identifier: Apache-2.0
"""profkit.forked (two jobs side by side), and the comparisons that use it: reading two large
profiles at once must give exactly what reading them one after the other gives."""
import json
import os
import pathlib
import random
import re
import shutil
import signal
import subprocess
import sys

import psutil
import pytest

from profkit import forked
from profkit.errors import CaptureFormatError, InputError, ProfkitError, UsageError
from profkit.forked import ChildFailed, side_by_side
from support import state_of, wait_until

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def two_cpus(monkeypatch):
    """Fork whatever this machine's CPU count: these tests are about the mechanism."""
    monkeypatch.setattr(forked, "can_fork", lambda: True)


def _children():
    return {c.pid for c in psutil.Process().children()}


def test_results_come_back_in_order_from_another_process():
    before = _children()
    here = os.getpid()
    a, b = side_by_side(lambda: (os.getpid(), "a" * 300_000), lambda: (os.getpid(), "b"))
    assert a[0] != here and b[0] == here  # the first job ran in a child
    assert a[1] == "a" * 300_000 and b[1] == "b"  # more than a pipe buffer comes back whole
    a, b = side_by_side(lambda: os.getpid(), lambda: os.getpid(), parallel=False)
    assert a == b == here
    assert _children() <= before


def test_profkit_errors_keep_class_message_hint_and_details():
    def bad():
        raise CaptureFormatError("junk", location="x.folded:3", hint="try --format perf")

    before = _children()
    with pytest.raises(CaptureFormatError) as e:
        side_by_side(bad, lambda: 1)
    assert e.value.message == "x.folded:3: junk" and e.value.hint == "try --format perf"
    assert e.value.location == "x.folded:3" and e.value.exit_code == 2
    assert isinstance(e.value, InputError)
    assert _children() <= before


def test_an_unexpected_error_carries_the_childs_traceback():
    with pytest.raises(ChildFailed) as e:
        side_by_side(lambda: {}["missing"], lambda: 1)
    assert str(e.value) == "KeyError: 'missing' (in the forked reader)"  # one line, for the CLI
    assert "Traceback" in str(e.value.__cause__) and "test_forked.py" in str(e.value.__cause__)


def test_the_child_is_killed_when_this_side_fails():
    def slow():
        import time

        time.sleep(60)

    def boom():
        raise RuntimeError("here")

    before = _children()
    with pytest.raises(RuntimeError, match="here"):
        side_by_side(slow, boom)
    assert _children() <= before  # killed and reaped, no zombie


def test_when_both_fail_the_first_error_wins():
    def fail(cls, text):
        def job():
            raise cls(text)
        return job

    with pytest.raises(CaptureFormatError, match="first"):
        side_by_side(fail(CaptureFormatError, "first"), fail(UsageError, "second"))
    with pytest.raises(UsageError, match="second"):
        side_by_side(lambda: 1, fail(UsageError, "second"))


def test_errors_that_cannot_travel_and_dead_children_are_one_line_failures():
    class Local(ProfkitError):  # a class defined here does not pickle
        pass

    def local():
        raise Local("cannot travel")

    with pytest.raises(ChildFailed, match=r"Local: cannot travel \(in the forked reader\)"):
        side_by_side(local, lambda: 1)
    with pytest.raises(ChildFailed, match="killed by signal 9"):
        side_by_side(lambda: os.kill(os.getpid(), signal.SIGKILL), lambda: 1)
    with pytest.raises(ChildFailed, match=r"ValueError: two lines \(in the forked reader\)"):
        side_by_side(lambda: (_ for _ in ()).throw(ValueError("two\nlines")), lambda: 1)


def test_the_child_dies_with_its_parent(start_process, tmp_path):
    # GIVEN a process reading side by side, WHEN it is killed (SIGKILL: no cleanup of its own runs)
    script = tmp_path / "parent.py"
    pidfile = tmp_path / "child.pid"
    script.write_text(f"""
import os, time, profkit.forked as f
f.can_fork = lambda: True
def first():
    open({str(pidfile)!r}, "w").write(str(os.getpid()))
    time.sleep(60)
f.side_by_side(first, lambda: time.sleep(60))
""")
    parent = start_process(sys.executable, script, cwd=ROOT)
    child = int(parent.wait_for(lambda: pidfile.read_text(), 20, "the forked reader to start"))
    parent.kill()
    parent.wait(10)
    # THEN the child goes too (the kernel's parent-death signal)
    wait_until(lambda: state_of(child) in (None, "Z"), 5, "the forked child to die with its parent")


@pytest.mark.slow
def test_closed_stdout_is_no_problem(tmp_path):
    a, b = tmp_path / "a.folded", tmp_path / "b.folded"
    a.write_text(_profile_text(1))
    b.write_text(_profile_text(2))
    p = subprocess.run(f"'{sys.executable}' -m profkit diff '{a}' '{b}' -o '{tmp_path / 'd.svg'}' >&-", shell=True,
                       capture_output=True, text=True)
    assert p.returncode == 0 and "error" not in p.stderr, p.stderr
    assert (tmp_path / "d.svg").stat().st_size > 1000


def _profile_text(seed, n=9000):
    """Deep py-spy-like stacks with line numbers (≈ 4.5 MB): more than the parallel threshold in two."""
    rng = random.Random(seed)
    funcs = [f"{v}_{o} (app/{m}.py:{{}})" for v in ("get", "load", "parse", "emit") for o in ("row", "user", "item")
             for m in ("views", "models", "db")]
    lines = {}
    for _ in range(n):
        depth = rng.randrange(5, 40)
        stack = ";".join(rng.choice(funcs).format(rng.randrange(1, 400)) for _ in range(depth))
        lines[stack] = lines.get(stack, 0) + rng.randrange(1, 20)
    return "".join(f"{s} {w}\n" for s, w in sorted(lines.items()))


def _run_profkit(args, one_cpu=False):
    cmd = [sys.executable, "-m", "profkit", *map(str, args)]
    if one_cpu:  # one CPU: profkit.forked falls back to reading one after the other
        cmd = [shutil.which("taskset"), "-c", "0"] + cmd
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    return p


@pytest.mark.slow
def test_diff_of_large_inputs_is_the_same_read_at_once_or_in_turn(tmp_path):
    a, b = tmp_path / "a.folded", tmp_path / "b.folded"
    a.write_text(_profile_text(1))
    b.write_text(_profile_text(2))
    assert a.stat().st_size + b.stat().st_size > 8 << 20
    _run_profkit(["diff", a, b, "-o", tmp_path / "par.svg", "--markdown", tmp_path / "par.md"])
    _run_profkit(["diff", a, b, "-o", tmp_path / "seq.svg", "--markdown", tmp_path / "seq.md"], one_cpu=True)
    assert (tmp_path / "par.svg").read_bytes() == (tmp_path / "seq.svg").read_bytes()
    assert (tmp_path / "par.md").read_text() == (tmp_path / "seq.md").read_text()
    assert "| function |" in (tmp_path / "par.md").read_text()


@pytest.mark.slow
def test_compare_of_large_runs_is_the_same_read_at_once_or_in_turn(tmp_path):
    for name, seed in (("base", 3), ("head", 4)):
        run = tmp_path / name
        (run / "raw").mkdir(parents=True)
        (run / "profile.folded").write_text(_profile_text(seed))
        (run / "manifest.json").write_text(json.dumps({
            "schema": 1, "status": "complete", "mode": "wall", "rate": 100, "duration": 10.0, "unit": "samples",
            "primary": "py-spy", "target": {"pids": [1], "name": name, "runtime": "python"}, "warnings": [],
            "collectors": [{"id": "py-spy"}]}))
    outputs = {}
    for label, one_cpu in (("par", False), ("seq", True)):
        out = tmp_path / label / "cmp"
        _run_profkit(["compare", tmp_path / "base", tmp_path / "head", "-o", out], one_cpu=one_cpu)
        outputs[label] = {f: (out / f).read_text().replace(str(out), "OUT") for f in
                          ("diff.svg", "comment.md", "compare.json")}
    assert outputs["par"] == outputs["seq"]
    comment = outputs["par"]["comment.md"]
    assert "(app/" in comment and not re.search(r"\(app/\w+\.py:\d+\)", comment)  # keyed by function


def test_bad_input_read_in_the_child_is_one_line_and_exit_2(tmp_path):
    junk, good = tmp_path / "junk.folded", tmp_path / "good.folded"
    junk.write_bytes(random.Random(5).randbytes(5 << 20))
    good.write_text(_profile_text(6))
    assert junk.stat().st_size + good.stat().st_size > 8 << 20  # read side by side
    p = subprocess.run([sys.executable, "-m", "profkit", "diff", str(junk), str(good), "-o", str(tmp_path / "d.svg")],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    errors = [l for l in p.stderr.splitlines() if l.startswith("profkit: error: ")]
    assert len(errors) == 1 and "junk.folded: binary data" in errors[0], p.stderr

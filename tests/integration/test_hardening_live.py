# SPDX-License-Identifier: Apache-2.0
"""Issue 10's defects that need real processes, signals and file systems: profkit's own family
is never a target, a SIGKILLed profkit loses no perf sample, a full disk is one line."""
import contextlib
import os
import signal
import subprocess
import sys

import pytest

from conftest import TARGETS, folded_shares, manifest, profkit
from support import state_of, wait_until


# -- 1. --name never matches profkit's ancestors or its tools -------------------------------------------
@pytest.mark.parametrize("wrapper", [["timeout", "30"], ["sh", "-c", 'exec "$0" "$@"'],
                                     ["bash", "-c", '"$0" "$@"; exit $?']],
                         ids=["timeout", "sh-exec", "bash-child"])
def test_name_never_selects_profkit_or_its_ancestors(wrapper, tmp_path):
    # each wrapper's own command line contains the pattern; nothing else does
    cmd = [*wrapper, sys.executable, "-m", "profkit", "attach", "--name", "nomatch_xyz_1731", "-d", "2",
           "-o", str(tmp_path / "run")]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1, p.stderr
    assert p.stderr.startswith("profkit: error: no process matches --name 'nomatch_xyz_1731'"), p.stderr
    assert not (tmp_path / "run").exists()


def test_name_still_finds_a_real_match_beside_its_own_family(start_target, tmp_path):
    t = start_target(sys.executable, str(TARGETS / "pyhot.py"), "0", "--tag=namematch_5521")
    t.wait_ready()
    p = subprocess.run(["timeout", "60", sys.executable, "-m", "profkit", "attach", "--name", "namematch_5521",
                        "-d", "2", "-o", str(tmp_path / "run"), "-q"], capture_output=True, text=True, timeout=90)
    assert p.returncode == 0, p.stderr
    assert manifest(tmp_path / "run").pids == [t.pid]


# -- 2. SIGKILL of profkit: perf's capture is kept and render recovers it ------------------------------
def test_sigkill_of_profkit_keeps_perfs_samples_and_render_recovers_them(hotloop, start_target, tmp_path):
    t = start_target(str(hotloop), "0")
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "profkit", "attach", "--pid", str(t.pid), "-d", "60", "-o", str(run)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    metrics = run / "metrics.jsonl"
    wait_until(lambda: metrics.exists() and metrics.read_text().count("\n") > 3, 30, "profkit recording for 3 s")
    perfs = [int(x) for x in subprocess.run(["pgrep", "-P", str(proc.pid), "perf"], capture_output=True,
                                            text=True).stdout.split()]
    assert perfs, "perf was not running under profkit"
    proc.kill()
    proc.wait()
    # perf's parent-death signal (SIGTERM) makes it finish perf.data and exit
    wait_until(lambda: all(state_of(p) in (None, "Z") for p in perfs), 20, "perf to end with profkit")
    assert state_of(t.pid) in ("R", "S")
    assert (run / "raw" / f"perf-{t.pid}.data").stat().st_size > 0
    assert manifest(run).status == "running"
    p = profkit("render", run)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    m = manifest(run)
    assert m.status == "interrupted" and m.profile.samples > 0
    assert (run / "raw" / f"perf-{t.pid}.txt").exists()  # perf script ran at recovery
    shares = folded_shares(run / "profile.folded")
    assert sum(v for k, v in shares.items() if k.split(".")[0] in ("mix", "checksum_block", "shell_sort")) > 0.5


def test_render_refuses_a_run_that_is_still_being_recorded(start_target, tmp_path):
    t = start_target(sys.executable, str(TARGETS / "pyhot.py"))
    t.wait_ready()
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "profkit", "attach", "--pid", str(t.pid), "-d", "30", "-o", str(run)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: (run / "manifest.json").exists() and manifest(run).probes, 30, "the run to start")
        p = profkit("render", run)
        assert p.returncode == 1 and "still being recorded by profkit" in p.stderr, p.stderr
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(60)


# -- 9. a full disk ---------------------------------------------------------------------------------------
@contextlib.contextmanager
def tiny_filesystem(path, kib):
    """A tmpfs of ``kib`` KiB at ``path`` (root only; CI runs as root)."""
    assert os.geteuid() == 0, "the full-disk tests mount a tmpfs: run them as root (CI does)"
    path.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k", "tmpfs", str(path)], check=True)
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_full_disk_under_a_run_is_one_line_and_recorded(start_target, tmp_path):
    t = start_target(sys.executable, str(TARGETS / "pyhot.py"))
    t.wait_ready()
    with tiny_filesystem(tmp_path / "fs", 32) as fs:  # the raw capture, its .runtime and manifest fit; the SVG does not
        run = fs / "run"
        p = profkit("attach", "--pid", t.pid, "-d", 2, "-o", run, "-q")
        assert p.returncode == 1, p.stderr
        assert "Traceback" not in p.stderr and "internal error" not in p.stderr
        err = [line for line in p.stderr.splitlines() if line.startswith("profkit: error: ")]
        assert len(err) == 1 and "no space left on device" in err[0] and str(run) in err[0], p.stderr
        assert not [f for f in os.listdir(run) if f.endswith(".tmp")], os.listdir(run)
        m = manifest(run)
        assert m.status == "interrupted" and m.not_written and "no space left" in m.not_written[0]
        assert (run / "raw" / f"py-spy-{t.pid}.json").stat().st_size > 0  # nothing collected is lost
    assert state_of(t.pid) in ("R", "S")


def test_a_full_disk_for_a_file_output_is_one_line_and_leaves_nothing(tmp_path):
    src = tmp_path / "big.folded"
    src.write_text("".join(f"main;f{i};g{i} {i + 1}\n" for i in range(5000)))
    with tiny_filesystem(tmp_path / "fs", 16) as fs:
        out = fs / "out.folded"
        p = profkit("collapse", "--format", "folded", src, "-o", out)
        assert p.returncode == 1 and p.stderr.startswith(f"profkit: error: cannot write {out}: no space left"), p.stderr
        assert os.listdir(fs) == []

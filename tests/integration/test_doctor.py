# SPDX-License-Identifier: Apache-2.0
"""profkit doctor and collectors say what is true: doctor's OK means the collector recorded a
throwaway process here; an installed tool that cannot record is a FAIL with the reason."""
import os
import subprocess
import sys


def doctor(*args, env=None):
    return subprocess.run([sys.executable, "-m", "profkit", "doctor", *args], capture_output=True, text=True,
                          timeout=240, env=env)


def test_doctor_tries_every_collector_here():
    p = doctor()
    assert p.returncode == 0, p.stdout + p.stderr
    lines = {line.split()[1]: line for line in p.stdout.splitlines() if line.startswith(("OK", "FAIL", "WARN"))}
    for cid, proof in (("py-spy", "recorded a busy Python process"), ("memray", "recorded a busy Python process"),
                       ("perf", "recorded a busy Python process"), ("async-profiler", "into a JVM"),
                       ("jfr", "readable recording")):
        assert lines[cid].startswith("OK") and proof in lines[cid], lines[cid]


def test_an_installed_tool_that_cannot_record_is_a_failure(tmp_path):
    bogus = tmp_path / "libasyncProfiler.so"
    bogus.write_bytes(b"\x7fELF not really a library")
    env = dict(os.environ, PROFKIT_ASPROF=str(bogus))
    p = doctor(env=env)
    assert p.returncode == 1, p.stdout + p.stderr
    line = next(line for line in p.stdout.splitlines() if " async-profiler" in line)
    assert line.startswith("FAIL") and "did not record here" in line and "did not load" in line, line
    assert p.stderr.strip().startswith("profkit: error: 1 check(s) failed")


def test_collectors_says_installed_not_ready():
    p = subprocess.run([sys.executable, "-m", "profkit", "collectors"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "py-spy" in p.stdout and "installed (profkit doctor tries it)" in p.stdout and ": ready" not in p.stdout

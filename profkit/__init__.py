# SPDX-License-Identifier: Apache-2.0
"""profkit: a CPU and memory profiling orchestrator.

The public surface is the profile model and the error tree; the CLI (``profkit.cli``) is a
thin layer over the library. Collectors live in the top-level ``collectors`` package and
renderers in ``flamegraph``.
"""
from profkit.errors import (
    CaptureFormatError,
    CollectorFailed,
    CollectorNotInstalled,
    Diagnostics,
    EnvironmentProblem,
    InputError,
    PermissionDenied,
    ProfkitError,
    RegressionDetected,
    TargetNotFound,
    UsageError,
)
__version__ = "0.1.0"

#: The model's names, imported on first use (``profkit --version`` needs none of them).
_MODEL = ("Frame", "FrameKind", "FunctionStat", "Profile", "ProfileMeta", "function_key")


def __getattr__(name: str):
    if name in _MODEL:
        from profkit import model

        return getattr(model, name)
    raise AttributeError(f"module 'profkit' has no attribute {name!r}")

__all__ = [
    "CaptureFormatError",
    "CollectorFailed",
    "CollectorNotInstalled",
    "Diagnostics",
    "EnvironmentProblem",
    "Frame",
    "FrameKind",
    "FunctionStat",
    "InputError",
    "PermissionDenied",
    "Profile",
    "ProfileMeta",
    "ProfkitError",
    "RegressionDetected",
    "TargetNotFound",
    "UsageError",
    "function_key",
]

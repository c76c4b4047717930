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
from profkit.model import Frame, FrameKind, FunctionStat, Profile, ProfileMeta, function_key

__version__ = "0.1.0"

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

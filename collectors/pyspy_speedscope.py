# SPDX-License-Identifier: Apache-2.0
"""Checks of a speedscope file's profiles (``shared/FORMATS.md`` §8), for :mod:`collectors.pyspy`."""
from __future__ import annotations

from profkit.errors import CaptureFormatError, Diagnostics

__all__ = ["_NS_PER", "_sampled_profiles", "_units"]

# speedscope time units → nanoseconds
_NS_PER = {"nanoseconds": 1, "microseconds": 1_000, "milliseconds": 1_000_000, "seconds": 1_000_000_000}


def _sampled_profiles(profiles: list, name: str, diag: Diagnostics) -> list:
    """``(index, profile, samples, weights)`` of each sampled profile (evented ones skipped, warned)."""
    sampled = []
    for i, p in enumerate(profiles):
        if not isinstance(p, dict):
            raise CaptureFormatError(f"profile {i} is not an object", location=name)
        if p.get("type") != "sampled":
            diag.warn(f"{name}: skipped {p.get('type')!r} profile {p.get('name', i)!r}: only sampled profiles are read")
            continue
        samples, weights = p.get("samples"), p.get("weights")
        if not isinstance(samples, list) or not isinstance(weights, list) or len(samples) != len(weights):
            raise CaptureFormatError(f"profile {i}: samples and weights are not lists of the same length",
                                     location=name)
        sampled.append((i, p, samples, weights))
    return sampled


def _units(sampled: list, name: str) -> set:
    """The profiles' units, refused when they cannot share one profile."""
    units = {str(p.get("unit", "none")) for _, p, _, _ in sampled}
    timed = units & set(_NS_PER)
    unknown = units - set(_NS_PER) - {"none", "bytes"}
    if unknown:
        raise CaptureFormatError(f"unknown speedscope unit(s): {', '.join(sorted(unknown))}", location=name)
    if timed and units - set(_NS_PER):
        raise CaptureFormatError(f"profiles mix units ({', '.join(sorted(units))}); profkit keeps one unit",
                                 location=name)
    if "bytes" in units and "none" in units:
        raise CaptureFormatError("profiles mix bytes and unitless weights", location=name)
    return units

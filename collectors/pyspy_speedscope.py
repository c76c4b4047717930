# SPDX-License-Identifier: Apache-2.0
"""Checks of a speedscope file's profiles (``shared/FORMATS.md`` §8), for :mod:`collectors.pyspy`."""
from __future__ import annotations

from profkit.errors import CaptureFormatError, Diagnostics

__all__ = ["_NS_PER", "_sampled_profiles", "_units"]

# speedscope time units → nanoseconds
_NS_PER = {"nanoseconds": 1, "microseconds": 1_000, "milliseconds": 1_000_000, "seconds": 1_000_000_000}


def _sampled_profiles(profiles: list, name: str, diag: Diagnostics) -> list:
    """The sampled ones of :class:`~collectors.speedscope_stream.SpeedscopeProfile` entries (evented ones
    skipped, warned)."""
    sampled = []
    for p in profiles:
        i, fields = p.index, p.fields
        if fields is None:
            raise CaptureFormatError(f"profile {i} is not an object", location=name)
        if fields.get("type") != "sampled":
            diag.warn(f"{name}: skipped {fields.get('type')!r} profile {fields.get('name', i)!r}: only sampled "
                      "profiles are read")
            continue
        if p.samples is None or p.weights is None or len(p.samples) != len(p.weights):
            raise CaptureFormatError(f"profile {i}: samples and weights are not lists of the same length",
                                     location=name)
        sampled.append(p)
    return sampled


def _units(sampled: list, name: str) -> set:
    """The profiles' units, refused when they cannot share one profile."""
    units = {str(p.fields.get("unit", "none")) for p in sampled}
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

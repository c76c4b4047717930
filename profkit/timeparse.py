# SPDX-License-Identifier: Apache-2.0
"""DURATION, TIME and RANGE as every command takes them (shared/CONTRACT.md "Times, ranges,
durations"): ``DURATION`` = ``12``, ``12s``, ``500ms``, ``2m``, ``1h`` (a bare number is seconds);
``TIME`` = ``now`` | ``-DURATION`` (before now) | RFC3339; ``RANGE`` = ``TIME..TIME``, end
exclusive. Times are aware UTC datetimes. Parse errors are :class:`~profkit.errors.UsageError`
(exit 2) naming the flag; :data:`DURATION_TYPE`, :data:`TIME_TYPE` and :data:`RANGE_TYPE` are the
click parameter types that turn them into click's own usage errors.
"""
from __future__ import annotations

import math
import re
from datetime import datetime, timedelta, timezone
from typing import NamedTuple, Optional

import click

from profkit.errors import UsageError

__all__ = ["DURATION_TYPE", "RANGE_TYPE", "TIME_TYPE", "TimeRange", "format_time", "parse_duration",
           "parse_range", "parse_time"]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION = re.compile(r"(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h)?", re.ASCII)
# RFC3339: date, T or space, time, optional fraction, Z or an offset (required: a time without a zone is ambiguous)
_RFC3339 = re.compile(r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII)


class TimeRange(NamedTuple):
    """``start`` inclusive, ``end`` exclusive, both aware UTC."""
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def __str__(self) -> str:
        return f"{format_time(self.start)}..{format_time(self.end)}"


def parse_duration(text: str, flag: str = "DURATION") -> float:
    """Seconds of a DURATION (``12``, ``12s``, ``500ms``, ``2m``, ``1h``); negative, nan or inf refused."""
    m = _DURATION.fullmatch(str(text).strip())
    if not m:
        raise UsageError(f"{flag}: {text!r} is not a duration", hint="use e.g. 12, 12s, 500ms, 2m or 1h")
    value = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    if not math.isfinite(value):
        raise UsageError(f"{flag}: {text!r} is not a finite duration")
    return value


def parse_time(text: str, flag: str = "TIME", *, now: Optional[datetime] = None) -> datetime:
    """An aware UTC datetime from ``now``, ``-DURATION`` or RFC3339."""
    s = str(text).strip()
    now = now or datetime.now(timezone.utc)
    if s == "now":
        return now
    if s.startswith("-"):
        return now - timedelta(seconds=parse_duration(s[1:], flag))
    m = _RFC3339.fullmatch(s)
    if not m:
        raise UsageError(f"{flag}: {text!r} is not a time",
                         hint="use now, -DURATION (e.g. -1h) or RFC3339 (2026-12-01T10:00:00Z)")
    y, mo, d, h, mi, sec = (int(g) for g in m.groups()[:6])
    frac, zone = m.group(7), m.group(8)
    tz = timezone.utc
    if zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
    try:
        t = datetime(y, mo, d, h, mi, sec, int(round(float(frac) * 1e6)) if frac else 0, tzinfo=tz)
    except ValueError as e:
        raise UsageError(f"{flag}: {text!r} is not a valid time ({e})") from None
    return t.astimezone(timezone.utc)


def parse_range(text: str, flag: str = "RANGE", *, now: Optional[datetime] = None) -> TimeRange:
    """``TIME..TIME`` (end exclusive); the end must come after the start."""
    s = str(text)
    if s.count("..") != 1:
        raise UsageError(f"{flag}: {text!r} is not a range", hint="use TIME..TIME, e.g. -2h..-1h or now-less RFC3339 times")
    a, b = s.split("..")
    now = now or datetime.now(timezone.utc)
    start, end = parse_time(a, flag, now=now), parse_time(b, flag, now=now)
    if end <= start:
        raise UsageError(f"{flag}: {text!r} ends before it starts")
    return TimeRange(start, end)


def format_time(t: datetime) -> str:
    """RFC3339 UTC with a Z, to the millisecond when there are fractions."""
    t = t.astimezone(timezone.utc)
    if t.microsecond:
        return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Type(click.ParamType):
    def __init__(self, name: str, fn):
        self.name, self._fn = name, fn

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            return value
        try:
            return self._fn(value, "/".join(param.opts) if param is not None else self.name)
        except UsageError as e:
            self.fail(str(e), param, ctx)


DURATION_TYPE = _Type("DURATION", parse_duration)
TIME_TYPE = _Type("TIME", parse_time)
RANGE_TYPE = _Type("RANGE", parse_range)

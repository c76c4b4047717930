# SPDX-License-Identifier: Apache-2.0
"""Quantities for people, shared by every report and the terminal (no jinja2, no collectors)."""
from __future__ import annotations

from typing import Optional

from profkit.textsafe import terminal_text

__all__ = ["fmt_bytes", "format_quantity", "plain_text"]


def fmt_bytes(n: Optional[float]) -> str:
    """``12.5 MiB``; ``n/a`` for None."""
    if n is None:
        return "n/a"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024.0
    return f"{n:.1f} GiB"


def format_quantity(value: float, unit: str) -> str:
    """A weight for people: ``1.29 s`` for nanoseconds, ``12.5 MiB`` for bytes, ``12,345`` otherwise."""
    if unit == "nanoseconds":
        for div, name in ((1e9, "s"), (1e6, "ms"), (1e3, "µs")):
            if abs(value) >= div:
                return f"{value / div:.3g} {name}"
        return f"{value:g} ns"
    if unit == "bytes":
        return fmt_bytes(value)
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


def plain_text(text: str) -> str:
    """Untrusted text for a terminal (see :func:`profkit.textsafe.terminal_text`)."""
    return terminal_text(text)

# SPDX-License-Identifier: Apache-2.0
"""Option fields for frozen dataclasses: one table of defaults feeds both the dataclass and ``--help``.

Used by the collectors' parse options and the flame graph options; the CLI turns each field
into a flag (``some_name`` → ``--some-name``; booleans become on/off flags).
"""
from __future__ import annotations

from dataclasses import MISSING, field, fields
from typing import Any, Dict, Iterable, List, Tuple, Type

__all__ = ["describe", "option"]


def option(default: Any, help: str, *, choices: Iterable[str] = (), flag: str = "") -> Any:
    """A dataclass field carrying its ``--help`` text, allowed values and (optionally) its flag name."""
    meta: Dict[str, Any] = {"help": help}
    if choices:
        meta["choices"] = tuple(choices)
    if flag:
        meta["flag"] = flag
    return field(default=default, metadata=meta)


def describe(cls: Type[Any]) -> List[Tuple[str, str, Any, str, Tuple[str, ...]]]:
    """``(field name, flag, default, help, choices)`` for each field of an options dataclass."""
    out = []
    for f in fields(cls):
        default = f.default if f.default is not MISSING else None
        flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
        out.append((f.name, flag, default, f.metadata.get("help", ""), f.metadata.get("choices", ())))
    return out

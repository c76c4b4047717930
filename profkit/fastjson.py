# SPDX-License-Identifier: Apache-2.0
"""JSON for large documents (Jaeger's answers, traces.json): orjson where it is installed (a
dependency of profkit), else the standard library, with the same documents in and out.

``loads`` takes bytes or str; a document that is not JSON raises ValueError (orjson's
JSONDecodeError is one). ``dumps`` writes with two-space indentation, keys in insertion order
and a final newline, as ``json.dumps(value, indent=2) + "\\n"`` reads back (orjson writes
non-ASCII characters as UTF-8 instead of ``\\u`` escapes: the same document). The standard
library's encoder is pure Python once indenting (about 20 times slower on traces.json).
A leaf module.
"""
from __future__ import annotations

import json
from typing import Any, Union

__all__ = ["dumps", "loads"]

try:
    import orjson as _orjson
except ImportError:  # pragma: no cover - the standard library then
    _orjson = None


def loads(data: Union[bytes, str]) -> Any:
    if _orjson is not None:
        return _orjson.loads(data)
    return json.loads(data)


def dumps(value: Any) -> str:
    if _orjson is not None:
        try:
            return _orjson.dumps(value, option=_orjson.OPT_INDENT_2).decode("utf-8") + "\n"
        except TypeError:  # what orjson cannot write (an int past 64 bits, a str subclass, …)
            pass
    return json.dumps(value, indent=2) + "\n"

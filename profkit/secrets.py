# SPDX-License-Identifier: Apache-2.0
"""Secrets never reach disk or reports (``shared/CONTRACT.md``, "Servers and stores").

:func:`redact` removes, from any text that profkit records (command lines, tools' commands,
URLs, error messages): URL user-info (``http://user:pw@host`` → ``http://***@host``),
``password=``-style fields of DSNs and query strings (``password``, ``passwd``, ``pwd``,
``secret``, ``token``, ``api_key``, ``apikey``, ``access_key``, ``auth``), and the values of
authorization headers (``Authorization: Bearer …``, ``X-Api-Key: …``, ``Cookie: …``). A flag
whose name says it carries a secret (``--token VALUE``, ``--password=VALUE``) has its value
replaced too. A leaf module.
"""
from __future__ import annotations

import re
from typing import List, Sequence

__all__ = ["MASK", "redact", "redact_argv"]

MASK = "***"

_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<info>[^/@\s?#]+)@")
_FIELDS = r"password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|auth|client[_-]?secret"
_FIELD = re.compile(rf"(?i)(?P<key>\b(?:{_FIELDS})\s*[=:]\s*)(?P<q>['\"]?)(?P<value>[^\s&;,'\"]+)(?P=q)")
_HEADER = re.compile(r"(?i)(?P<key>\b(?:authorization|proxy-authorization|x-api-key|x-auth-token|cookie)\s*:\s*)"
                     r"(?P<value>[^\r\n'\"]+)")
_SECRET_FLAG = re.compile(rf"(?i)^--?(?:[\w-]*-)?(?:{_FIELDS})$")


def redact(text: str) -> str:
    """``text`` with URL user-info, secret fields and authorization header values masked."""
    if not text or ("@" not in text and "=" not in text and ":" not in text):
        return text  # each pattern needs one of these (most arguments, paths, have none)
    text = _USERINFO.sub(lambda m: f"{m.group('scheme')}{MASK}@", text)
    text = _HEADER.sub(lambda m: f"{m.group('key')}{MASK}", text)
    return _FIELD.sub(lambda m: f"{m.group('key')}{m.group('q')}{MASK}{m.group('q')}", text)


def redact_argv(argv: Sequence[str]) -> List[str]:
    """A command line with every secret masked, including the value after ``--token``-like flags."""
    out: List[str] = []
    hide_next = False
    for arg in argv:
        arg = str(arg)
        if hide_next:
            out.append(MASK)
            hide_next = False
            continue
        flag, eq, _ = arg.partition("=")
        if flag.startswith("-") and _SECRET_FLAG.match(flag):
            if eq:
                out.append(f"{flag}={MASK}")
            else:
                out.append(arg)
                hide_next = True
            continue
        out.append(redact(arg))
    return out

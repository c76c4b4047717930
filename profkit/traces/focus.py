# SPDX-License-Identifier: Apache-2.0
"""From a trace segment to the code: which frames of a service's profile run a span's operation.

A segment names a span by ``service: operation`` only (its span name). A stack profile of that
service cannot see spans, so the operation is mapped to frames by the name conventions of the
OpenTelemetry instrumentations, one rule per kind of span name (the first that applies):

``http-server``  ``METHOD /route`` (Flask, Django, FastAPI … server spans, ``GET /verify``): the
                 handler of the route, a function named after its last literal segment
                 (``/verify`` → ``verify``; ``/orders/<id>`` → ``orders``; ``/`` → ``index``),
                 or ``handle_``/``get_`` (the method) + that name, or that name + ``_view``/``_handler``;
``http-client``  a method alone or ``HTTP METHOD`` (the requests, urllib3, httpx … client spans,
                 ``GET``): the frames of the HTTP client library (files under ``requests/``,
                 ``urllib3/``, ``httpx/``, ``aiohttp/``, ``http/client.py``, ``urllib/request.py``),
                 every outbound call of the service — a profile cannot tell one call from another;
``database``     an SQL verb first (the DB-API instrumentations name a span after its statement,
                 ``SELECT``, ``INSERT shop.db``): the frames under a DB-API cursor call
                 (``execute``, ``executemany``, ``executescript``, ``callproc``), every statement of
                 the service;
``span-name``    any other span (one the code starts itself, ``bank.authorize``): a function named
                 like the span, the name with every non-identifier character as ``_``
                 (``bank_authorize``), else its last dotted part (``authorize``).

Names are compared case-insensitively, on a frame's function name and on its last dotted part
(``Class.method`` → ``method``). The focused profile keeps, of each stack that has a matching
frame, the part from the outermost matching frame to the leaf: what ran (or, in wall mode,
waited) under the operation. When no frame matches, there is nothing to focus on: the caller shows
the whole service's profile, saying so.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from profkit.model import Frame, Profile

__all__ = ["Rule", "focus", "rule_for"]

_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT")
_SQL = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "REPLACE", "UPSERT", "MERGE", "BEGIN", "COMMIT",
        "ROLLBACK", "CREATE", "DROP", "ALTER", "PRAGMA", "CALL", "EXEC", "EXECUTE", "SAVEPOINT", "RELEASE", "VACUUM")
_HTTP_FILES = re.compile(r"(?:^|[/\\])(?:requests|urllib3|httpx|httpcore|aiohttp)[/\\]|(?:^|[/\\])http[/\\]client\.py$"
                         r"|(?:^|[/\\])urllib[/\\]request\.py$")
_DB_CALLS = frozenset({"execute", "executemany", "executescript", "callproc"})
_PARAM = re.compile(r"^(?:<[^>]*>|\{[^}]*\}|:.+|\*.*|\d+)$")


def _ident(text: str) -> str:
    return re.sub(r"[^0-9a-z_]+", "_", text.lower()).strip("_")


@dataclass
class Rule:
    """How one operation maps to frames: its kind, in words, and the function names it matches
    (``names``) or, for the library rules, the files / call names (``files``, ``calls``)."""

    kind: str
    description: str
    names: Tuple[str, ...] = ()
    files: Optional["re.Pattern"] = None
    calls: frozenset = field(default_factory=frozenset)

    def matches(self, frame: Frame) -> bool:
        name = frame.name.lower()
        short = name.rsplit(".", 1)[-1]
        if self.names and (name in self.names or short in self.names):
            return True
        if self.calls and short in self.calls:
            return True
        return bool(self.files is not None and frame.file and self.files.search(frame.file))


def rule_for(operation: str) -> Rule:
    """The rule for a span name (see the module docstring)."""
    op = " ".join(str(operation or "").split())
    words = op.split(" ")
    first = words[0].upper() if words and words[0] else ""
    if first in _METHODS and len(words) >= 2 and words[1].startswith("/"):
        segs = [s for s in words[1].split("?")[0].split("/") if s and not _PARAM.match(s)]
        base = _ident(segs[-1]) if segs else "index"
        base = base or "index"
        names = (base, f"handle_{base}", f"{first.lower()}_{base}", f"{base}_view", f"{base}_handler")
        return Rule("http-server", f"the handler of route {words[1]}: a function named {', '.join(names)}", names=names)
    if (first in _METHODS and len(words) == 1) or (first == "HTTP" and len(words) == 2 and words[1].upper() in _METHODS):
        return Rule("http-client", "the frames of the HTTP client library (requests, urllib3, httpx, aiohttp, "
                                   "http.client): every outbound HTTP call of the service", files=_HTTP_FILES)
    if first in _SQL:
        return Rule("database", "the frames under DB-API cursor calls (execute, executemany, executescript, "
                                "callproc): every SQL statement of the service", calls=_DB_CALLS)
    full = _ident(op)
    last = _ident(re.split(r"[.\s/:]+", op.strip(" ./:"))[-1]) if op.strip(" ./:") else ""
    names = tuple(dict.fromkeys(n for n in (full, last) if n))
    return Rule("span-name", f"a function named like the span: {', '.join(names) or '(no usable name)'}", names=names)


def focus(profile: Profile, operation: str, top: int = 10) -> Tuple[Optional[Profile], Dict[str, object]]:
    """``(focused profile or None, what was done)``: each stack of ``profile`` with a frame that
    :func:`rule_for` ``(operation)`` matches, from the outermost such frame to the leaf."""
    rule = rule_for(operation)
    out = Profile(profile.unit, profile.meta)
    matched: Dict[str, float] = {}
    verdict: Dict[bool, bool] = {}
    for ids, w in profile.items():
        start = None
        for i, fid in enumerate(ids):
            hit = verdict.get(fid)
            if hit is None:
                hit = verdict[fid] = rule.matches(profile.frame(fid))
            if hit:
                start = i
                break
        if start is None:
            continue
        key = profile.frame(ids[start]).key
        matched[key] = matched.get(key, 0) + w
        out.add([profile.frame(f) for f in ids[start:]], w)
    info: Dict[str, object] = {"rule": rule.kind, "match": rule.description,
                               "service_total": profile.total, "focused_total": out.total,
                               "share": round(out.total / profile.total, 4) if profile.total else None,
                               "frames": [k for k, _ in sorted(matched.items(), key=lambda kv: -kv[1])[:top]]}
    if not out:
        return None, info
    return out, info


def top_functions(profile: Profile, n: int = 10) -> List[Dict[str, object]]:
    """The focused profile's top functions by self weight, with their self and total shares."""
    total = profile.total or 1
    return [{"function": s.key, "self": s.self, "self_share": round(s.self / total, 4),
             "total_share": round(s.total / total, 4)} for s in profile.top_functions(n, by="self")]

# SPDX-License-Identifier: Apache-2.0
"""The one HTTP client of profkit's servers and stores (Prometheus, Jaeger, Parca, OTLP,
Pyroscope), following ``shared/CONTRACT.md`` "Servers and stores":

- HTTPS is verified (the system CAs, plus ``ca_file``); plain HTTP only when the URL says so;
- credentials come from the environment or a file (:func:`token_from`), are sent as a header and
  never appear in an error: every message passes through :func:`profkit.secrets.redact`;
- responses are size-capped, and so is their decompressed size (gzip), ``max_bytes`` each;
- failures are :class:`~profkit.errors.ServerUnreachable` (no answer) or
  :class:`~profkit.errors.ServerRefused` (an error status, with the server's message, capped).

Standard library only (urllib), so that every command stays quick to start.
"""
from __future__ import annotations

import gzip
import json
import os
import socket
import ssl
import urllib.error
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional

from profkit.errors import InputError, ServerRefused, ServerUnreachable, UsageError
from profkit.secrets import redact

__all__ = ["Client", "Response", "check_url", "token_from"]

DEFAULT_MAX_BYTES = 64 * 1024 * 1024
MESSAGE_LIMIT = 300


def check_url(url: str, flag: str = "URL") -> str:
    """``url`` if it is an absolute http(s) URL with a host, else a UsageError (exit 2)."""
    parts = urllib.parse.urlsplit(url or "")
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{flag}: {redact(url)!r} is not an http:// or https:// URL")
    try:
        parts.port
    except ValueError:
        raise UsageError(f"{flag}: {redact(url)!r} has a bad port") from None
    return url.rstrip("/")


def token_from(env: Optional[str] = None, file: Optional[str] = None) -> Optional[str]:
    """A credential from a file (first line) or an environment variable; None when neither gives one."""
    if file:
        try:
            with open(file, encoding="utf-8") as f:
                return f.readline().strip() or None
        except OSError as e:
            raise InputError(f"cannot read {file}: {e.strerror}") from None
    return (os.environ.get(env) or None) if env else None


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise InputError(f"the server's answer is not JSON ({e})") from None


@dataclass
class Client:
    """Requests to one server. ``base`` is the server's URL; paths are joined to it."""
    base: str
    timeout: float = 10.0
    ca_file: Optional[str] = None
    token: Optional[str] = None                      #: sent as ``Authorization: Bearer TOKEN``
    headers: Dict[str, str] = field(default_factory=dict)
    max_bytes: int = DEFAULT_MAX_BYTES
    name: str = "server"                             #: how messages name it ("Parca", "Prometheus")

    def __post_init__(self):
        self.base = check_url(self.base)
        self._context = ssl.create_default_context(cafile=self.ca_file) if self.base.startswith("https:") else None

    def url(self, path: str, params: Optional[Mapping[str, Any]] = None) -> str:
        url = self.base + "/" + path.lstrip("/")
        if params:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(params, doseq=True)
        return url

    def get(self, path: str, params: Optional[Mapping[str, Any]] = None, **kw) -> Response:
        return self.request("GET", path, params=params, **kw)

    def post(self, path: str, body: bytes, content_type: str = "application/json", **kw) -> Response:
        return self.request("POST", path, body=body, headers={"Content-Type": content_type}, **kw)

    def request(self, method: str, path: str, *, params: Optional[Mapping[str, Any]] = None,
                body: Optional[bytes] = None, headers: Optional[Mapping[str, str]] = None,
                timeout: Optional[float] = None) -> Response:
        url = self.url(path, params)
        h = {"User-Agent": "profkit", "Accept-Encoding": "gzip", **self.headers, **(headers or {})}
        if self.token:
            h["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(url, data=body, headers=h, method=method)
        shown = redact(self.base)
        try:
            with urllib.request.urlopen(req, timeout=timeout or self.timeout, context=self._context) as r:
                return Response(r.status, dict(r.headers.items()), self._read(r, shown))
        except urllib.error.HTTPError as e:
            text = self._message(e)
            raise ServerRefused(f"{self.name} at {shown} answered {e.code} to {method} {redact(path)}"
                                + (f": {text}" if text else ""), e.code) from None
        except (urllib.error.URLError, socket.timeout, TimeoutError, ConnectionError, ssl.SSLError) as e:
            reason = getattr(e, "reason", e)
            raise ServerUnreachable(f"{self.name} at {shown} is unreachable: {redact(str(reason))}",
                                    hint=f"is {self.name} running and listening at that address?") from None

    def _read(self, r, shown: str) -> bytes:
        data = r.read(self.max_bytes + 1)
        if len(data) > self.max_bytes:
            raise InputError(f"{self.name} at {shown} sent more than {self.max_bytes} bytes; refused")
        if (r.headers.get("Content-Encoding") or "").lower() == "gzip":
            d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                data = d.decompress(data, self.max_bytes + 1)
            except zlib.error as e:
                raise InputError(f"{self.name} at {shown} sent corrupt gzip ({e})") from None
            if len(data) > self.max_bytes or d.unconsumed_tail:
                raise InputError(f"{self.name} at {shown} sent more than {self.max_bytes} bytes decompressed; refused")
        return data

    @staticmethod
    def _message(e: "urllib.error.HTTPError") -> str:
        try:
            raw = e.read(4096)
            if (e.headers.get("Content-Encoding") or "").lower() == "gzip":
                raw = gzip.decompress(raw)
        except Exception:  # noqa: BLE001 - the status alone still says what happened
            return ""
        text = " ".join(raw.decode("utf-8", "replace").split())
        return redact(text[:MESSAGE_LIMIT] + ("…" if len(text) > MESSAGE_LIMIT else ""))

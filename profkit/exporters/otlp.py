# SPDX-License-Identifier: Apache-2.0
"""``otlp=URL``: the OpenTelemetry profiles signal (``v1development``), to any OTLP profiles
receiver (an OpenTelemetry Collector with ``--feature-gates=service.profilesSupport``, say).

Spellings of URL:

- ``http://HOST:PORT`` / ``https://HOST:PORT`` — OTLP/HTTP with binary protobuf:
  ``POST /v1development/profiles`` (``Content-Type: application/x-protobuf``); a URL that already
  ends in ``/v1development/profiles`` is used as it is. The Collector's default port is 4318.
- ``grpc://HOST:PORT`` (plain) / ``grpcs://HOST:PORT`` (TLS, verified against the system CAs or
  ``--ca-file``) — OTLP/gRPC, ``ProfilesService/Export``; the default port is 4317.

What a window becomes is :mod:`profkit.exporters.otlp_model`. The token, when there is one, is
sent as ``Authorization: Bearer TOKEN`` (an HTTP header, or gRPC metadata). Failures follow the
OTLP specification's retry rules: unreachable, HTTP 429/502/503/504 and gRPC
UNAVAILABLE/DEADLINE_EXCEEDED/ABORTED/… are retryable; other 4xx and INVALID_ARGUMENT,
UNAUTHENTICATED, … are refusals with the receiver's message; an answer whose ``partial_success``
rejected the profile is a refusal too. OTLP receivers keep nothing to query: ``pull`` is refused.
protobuf (and grpcio for ``grpc://``) are imported on the first send only.
"""
from __future__ import annotations

import urllib.parse
from typing import Optional, Tuple

from profkit.errors import ServerRefused, ServerUnreachable, UsageError
from profkit.exporters.base import ExportOptions, Exporter, Window
from profkit.http import Client
from profkit.secrets import redact

__all__ = ["OtlpExporter", "PROFILES_PATH", "GRPC_METHOD"]

PROFILES_PATH = "/v1development/profiles"
GRPC_METHOD = "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export"
_INSTALL_HINT = "install profkit's OTLP support: pip install 'profkit[stores]'"
#: gRPC status names whose failure the OTLP specification says to retry
_GRPC_RETRYABLE = {"CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE", "DATA_LOSS",
                   "RESOURCE_EXHAUSTED"}
#: gRPC status → the HTTP status a refusal reports (``ServerRefused.status``)
_GRPC_AS_HTTP = {"INVALID_ARGUMENT": 400, "FAILED_PRECONDITION": 400, "UNAUTHENTICATED": 401,
                 "PERMISSION_DENIED": 403, "NOT_FOUND": 404, "ALREADY_EXISTS": 409, "RESOURCE_EXHAUSTED": 429,
                 "UNIMPLEMENTED": 501, "INTERNAL": 500, "UNKNOWN": 500}


def _check_installed(transport: str) -> None:
    """Fail at start (exit 1, with the install hint) rather than refuse every window later: the
    modules are looked up, not imported (``profkit --help`` stays quick)."""
    import importlib.util

    needed = ["google.protobuf", "opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2"]
    needed += ["grpc"] if transport != "http" else []
    for name in needed:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            from profkit.errors import EnvironmentProblem
            wants = "opentelemetry-proto and protobuf" + (" and grpcio" if transport != "http" else "")
            raise EnvironmentProblem(f"otlp={transport}:// needs {wants}; {name} is not installed", hint=_INSTALL_HINT)


def _import_protos():
    try:
        from profkit.exporters import otlp_model
        import opentelemetry.proto.collector.profiles.v1development.profiles_service_pb2  # noqa: F401
    except ImportError as e:
        from profkit.errors import EnvironmentProblem
        raise EnvironmentProblem(f"the otlp exporter needs opentelemetry-proto and protobuf ({e.name} is missing)",
                                 hint=_INSTALL_HINT) from None
    return otlp_model


def _status_message(body: bytes) -> str:
    """The message of an OTLP/HTTP error body (a ``google.rpc.Status``: field 2 is the message)."""
    def _DecodeVarint(b: bytes, i: int) -> Tuple[int, int]:
        n = shift = 0
        while True:
            c = b[i]
            i += 1
            n |= (c & 0x7F) << shift
            shift += 7
            if c < 0x80:
                return n, i

    i = 0
    try:
        while i < len(body):
            key, i = _DecodeVarint(body, i)
            field, wire = key >> 3, key & 7
            if wire == 0:
                _, i = _DecodeVarint(body, i)
            elif wire == 2:
                n, i = _DecodeVarint(body, i)
                if field == 2:
                    return body[i:i + n].decode("utf-8", "replace")
                i += n
            else:
                return ""
    except Exception:  # noqa: BLE001 - not a Status: the status alone says enough
        return ""
    return ""


class _OtlpClient(Client):
    """profkit's HTTP client, reading an OTLP error body (protobuf ``Status``) as its message."""

    @staticmethod
    def _message(e) -> str:
        if "protobuf" in (e.headers.get("Content-Type") or ""):
            try:
                text = _status_message(e.read(4096))
            except Exception:  # noqa: BLE001
                text = ""
            text = " ".join(text.split())
            return redact(text[:300] + ("…" if len(text) > 300 else ""))
        return Client._message(e)


def parse_target(url: str) -> Tuple[str, str, Optional[str]]:
    """(transport ``http``/``grpc``, address, HTTP path) of an ``otlp=`` URL; UsageError if bad."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("grpc", "grpcs"):
        try:
            port = parts.port
        except ValueError:
            port = None
        if not parts.hostname or not port or parts.path.strip("/"):
            raise UsageError(f"otlp={redact(url)}: a gRPC target is grpc://HOST:PORT or grpcs://HOST:PORT",
                             hint="e.g. otlp=grpc://127.0.0.1:4317")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        return parts.scheme, f"{host}:{port}", None
    if parts.scheme not in ("http", "https"):
        raise UsageError(f"otlp={redact(url)}: expected http://, https://, grpc:// or grpcs://",
                         hint="e.g. otlp=http://127.0.0.1:4318 (OTLP/HTTP) or otlp=grpc://127.0.0.1:4317")
    path = parts.path.rstrip("/")
    base = urllib.parse.urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    return "http", base, path if path.endswith(PROFILES_PATH) else path + PROFILES_PATH


class OtlpExporter(Exporter):
    """See the module docstring."""

    kind = "otlp"

    def __init__(self, url: str, options: ExportOptions = ExportOptions()):
        super().__init__(url, options)
        self.transport, self.address, self.path = parse_target(url)
        _check_installed(self.transport)
        self._channel = None
        self._client = None
        if self.transport == "http":
            self._client = options.client(self.address, "the OTLP receiver", _OtlpClient)

    def encode(self, window: Window) -> bytes:
        from profkit import __version__

        body = _import_protos().encode_window(window, __version__).SerializeToString()
        if len(body) > self.options.max_bytes:
            raise ServerRefused(f"the window is {len(body)} bytes of OTLP, more than the {self.options.max_bytes} "
                                "a request may carry; not sent", 413)
        return body

    def send(self, window: Window) -> None:
        body = self.encode(window)
        if self.transport == "http":
            answer = self._client.post(self.path, body, content_type="application/x-protobuf")
            self._check_partial(answer.body)
        else:
            self._check_partial(self._grpc_export(body))

    def _check_partial(self, answer: bytes) -> None:
        """A refusal when the receiver's ``partial_success`` rejected the profile."""
        if not answer:
            return
        from opentelemetry.proto.collector.profiles.v1development import profiles_service_pb2 as svc

        resp = svc.ExportProfilesServiceResponse()
        try:
            resp.ParseFromString(answer)
        except Exception:  # noqa: BLE001 - a 2xx answer that is not the response message: accepted
            return
        if resp.partial_success.rejected_profiles:
            msg = " ".join(resp.partial_success.error_message.split())[:300]
            raise ServerRefused(f"the OTLP receiver at {redact(self.address)} rejected "
                                f"{resp.partial_success.rejected_profiles} profile(s)" + (f": {msg}" if msg else ""), 400)

    def _grpc_export(self, body: bytes) -> bytes:
        try:
            import grpc
        except ImportError:
            from profkit.errors import EnvironmentProblem
            raise EnvironmentProblem("otlp=grpc:// needs grpcio", hint=_INSTALL_HINT) from None
        if self._channel is None:
            opts = [("grpc.max_send_message_length", self.options.max_bytes),
                    ("grpc.max_receive_message_length", self.options.max_bytes)]
            if self.transport == "grpcs":
                roots = None
                if self.options.ca_file:
                    try:
                        with open(self.options.ca_file, "rb") as f:
                            roots = f.read()
                    except OSError as e:
                        from profkit.errors import InputError
                        raise InputError(f"cannot read {self.options.ca_file}: {e.strerror}") from None
                self._channel = grpc.secure_channel(self.address, grpc.ssl_channel_credentials(roots), opts)
            else:
                self._channel = grpc.insecure_channel(self.address, opts)
        call = self._channel.unary_unary(GRPC_METHOD)  # bytes in, bytes out: no serializers
        metadata = [("authorization", f"Bearer {self.options.token}")] if self.options.token else None
        try:
            return call(body, timeout=self.options.timeout, metadata=metadata)
        except grpc.RpcError as e:
            raise self._grpc_error(e) from None

    def _grpc_error(self, e) -> Exception:
        code = e.code().name if callable(getattr(e, "code", None)) and e.code() else "UNKNOWN"
        detail = " ".join(redact(str(e.details() or "")).split())[:300]
        where = f"the OTLP receiver at {redact(self.address)}"
        if code in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "CANCELLED"):
            return ServerUnreachable(f"{where} is unreachable: {code}" + (f": {detail}" if detail else ""),
                                     hint="is the receiver running, with its gRPC endpoint at that address?")
        err = ServerRefused(f"{where} answered {code}" + (f": {detail}" if detail else ""), _GRPC_AS_HTTP.get(code, 500))
        err.retryable = code in _GRPC_RETRYABLE
        return err

    def close(self) -> None:
        if self._channel is not None:
            self._channel.close()
            self._channel = None

# SPDX-License-Identifier: Apache-2.0
"""DURATION/TIME/RANGE parsing (shared/CONTRACT.md) and the shared HTTP client against a real
loopback server: size caps (also decompressed), error statuses, secrets kept out of messages."""
import gzip
import http.server
import threading
from datetime import datetime, timedelta, timezone

import pytest

from profkit.errors import InputError, ServerRefused, ServerUnreachable, UsageError
from profkit.http import Client, check_url
from profkit.timeparse import format_time, parse_duration, parse_range, parse_time
from tests.support import free_port

NOW = datetime(2026, 12, 1, 10, 0, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("text,seconds", [("12", 12), ("12s", 12), ("500ms", 0.5), ("2m", 120), ("1h", 3600),
                                          ("1.5s", 1.5), (" 3 ", 3)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "-1", "1d", "nan", "inf", "1e400", "١٢", "12 s"])
def test_bad_durations_are_usage_errors(text):
    with pytest.raises(UsageError):
        parse_duration(text, "--window")


def test_times_and_ranges():
    assert parse_time("now", now=NOW) == NOW
    assert parse_time("-1h", now=NOW) == NOW - timedelta(hours=1)
    assert parse_time("2026-12-01T11:00:00+01:00") == NOW
    assert parse_time("2026-12-01T10:00:00.250Z").microsecond == 250000
    r = parse_range("-2h..-1h", now=NOW)
    assert (r.start, r.end, r.seconds) == (NOW - timedelta(hours=2), NOW - timedelta(hours=1), 3600)
    assert str(parse_range("2026-12-01T09:00:00Z..2026-12-01T10:00:00Z")) == "2026-12-01T09:00:00Z..2026-12-01T10:00:00Z"
    assert format_time(NOW + timedelta(milliseconds=5)) == "2026-12-01T10:00:00.005Z"
    for bad in ["2026-12-01T10:00:00", "-1h", "now..-1h", "2026-13-01T00:00:00Z..now", "a..b..c"]:
        with pytest.raises(UsageError):
            parse_range(bad, "--base", now=NOW)


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass

    def do_GET(self):
        if self.path.startswith("/big"):
            body = b"x" * 5000
        elif self.path.startswith("/bomb"):
            body = gzip.compress(b"0" * 100000)
        elif self.path.startswith("/bad"):
            self.send_response(400)
            self.end_headers()
            self.wfile.write(b"bad label token=hunter2 " + b"y" * 1000)
            return
        elif self.path.startswith("/down"):
            self.send_response(503)
            self.end_headers()
            return
        else:
            body = self.headers.get("Authorization", "").encode()
        self.send_response(200)
        if self.path.startswith("/bomb"):
            self.send_header("Content-Encoding", "gzip")
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def test_client_caps_and_statuses(server):
    c = Client(server, max_bytes=1000, token="s3cret", name="Store")
    assert c.get("/echo").body == b"Bearer s3cret"
    with pytest.raises(InputError, match="more than 1000 bytes"):
        c.get("/big")
    with pytest.raises(InputError, match="decompressed"):
        c.get("/bomb")
    with pytest.raises(ServerRefused) as e:
        c.get("/bad")
    assert e.value.status == 400 and not e.value.retryable
    assert "hunter2" not in str(e.value) and len(str(e.value)) < 400
    with pytest.raises(ServerRefused) as e:
        c.get("/down")
    assert e.value.retryable


def test_unreachable_and_bad_urls():
    with pytest.raises(ServerUnreachable) as e:
        Client(f"http://user:pw@127.0.0.1:{free_port()}", timeout=2).get("/")
    assert e.value.retryable and "pw" not in str(e.value)
    for bad in ["127.0.0.1:9090", "ftp://x", "http://", "http://h:99999"]:
        with pytest.raises(UsageError):
            check_url(bad, "--prometheus")

# SPDX-License-Identifier: Apache-2.0
"""pyroscope= against a real Pyroscope server (the Apache-2.0 v0.37.2, built by .ci/tools) on
loopback with its storage in a temporary directory: a window sent is read back by pull()."""
import json
import urllib.parse
import urllib.request
from datetime import timedelta

import pytest

from profkit.errors import ServerRefused, ServerUnreachable
from profkit.exporters import ExportOptions, exporter_for
from profkit.exporters.base import LABEL_VALUE_MAX, Window, clean_labels
from store_support import HOSTILE, leaf_share, profiled_window, tool
from support import Proc, free_port, wait_until

pytestmark = pytest.mark.slow
VERSION = "0.37.2"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pyroscope")
    port = free_port()
    proc = Proc([tool("pyroscope", VERSION), "server", f"-api-bind-addr=127.0.0.1:{port}",
                 f"-storage-path={tmp / 'data'}", f"-admin-socket-path={tmp / 'admin.sock'}",
                 "-no-self-profiling", "-analytics-opt-out", "-log-level=warn"], cwd=tmp,
                # it asks pyroscope.io for its latest version at start, unconditionally: through a
                # proxy on a closed loopback port that request fails here and never leaves the host
                env={"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""})
    url = f"http://127.0.0.1:{port}"
    proc.wait_for(lambda: urllib.request.urlopen(url + "/healthz", timeout=2).status == 200, 60,
                  "Pyroscope's /healthz")
    yield url
    proc.stop()


@pytest.fixture(scope="module")
def window(tmp_path_factory):
    return profiled_window(tmp_path_factory.mktemp("window"))


def _range(window):
    return window.start - timedelta(seconds=10), window.end + timedelta(seconds=10)


def _stored(exporter, query, window):
    """The pulled profile, once Pyroscope's ingestion queue has stored the window (it answers 200
    at once and stores in the background)."""
    return wait_until(lambda: (lambda p: p.total > 0 and p)(exporter.pull(query, "cpu", *_range(window))), 15,
                      f"{query} to be stored")


def _label_values(server, name):
    url = f"{server}/label-values?" + urllib.parse.urlencode({"label": name})
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def test_a_window_comes_back_with_the_same_totals_and_hot_function(server, window):
    exporter = exporter_for(f"pyroscope={server}")
    labels = dict(window.labels, service="pyhot-totals")
    exporter.send(Window(window.profile, labels, window.start, window.end, rate=window.rate))
    got = _stored(exporter, {"service": "pyhot-totals", "collector": "py-spy"}, window)
    assert got.unit == "samples" and got.meta.sample_rate == window.rate
    assert got.total == sum(int(round(w)) for _, w in window.profile.items())
    local, stored = leaf_share(window.profile, "hot_compute"), leaf_share(got, "hot_compute")
    assert local > 0.5 and abs(local - stored) < 0.001, (local, stored)
    assert sorted(got.items()) == sorted((k, int(round(w))) for k, w in window.profile.items() if int(round(w)))
    # another service's query matches nothing
    assert exporter.pull({"service": "pyhot-totals", "collector": "perf"}, "cpu", *_range(window)).total == 0


def test_hostile_labels_reach_the_store_escaped_and_capped(server, window):
    labels = clean_labels({**window.labels, "service": 'evil "svc" {x},\n', **HOSTILE})
    exporter = exporter_for(f"pyroscope={server}")
    exporter.send(Window(window.profile, labels, window.start, window.end, rate=window.rate))
    got = _stored(exporter, {"service": labels["service"], "braces": HOSTILE["braces"]}, window)
    assert got.total == sum(int(round(w)) for _, w in window.profile.items())
    apps = _label_values(server, "__name__")
    assert "evil__svc___x__.cpu" in apps, apps
    assert _label_values(server, "quotes") == ["say 'hi' 'there'"]
    assert _label_values(server, "braces") == ["a(b)c;d=e"]
    assert _label_values(server, "newline") == ["line1 line2"]
    (long,) = _label_values(server, "long")
    assert len(long) <= LABEL_VALUE_MAX and long.startswith("xxx") and long.endswith("…")


def test_a_server_that_is_down_is_unreachable_and_retryable(window):
    with pytest.raises(ServerUnreachable) as e:
        exporter_for(f"pyroscope=http://127.0.0.1:{free_port()}", ExportOptions(timeout=3)).send(window)
    assert e.value.retryable


def test_a_refusal_is_not_retried_and_carries_the_servers_message(server, window):
    # A profile type Pyroscope's query language cannot read: its 400, with its parser's message.
    with pytest.raises(ServerRefused) as e:
        exporter_for(f"pyroscope={server}").pull({"service": "pyhot"}, "cpu total", *_range(window))
    assert 400 <= e.value.status < 500 and not e.value.retryable
    assert "query" in str(e.value) and "invalid" in str(e.value).lower(), str(e.value)


def test_a_window_past_the_byte_cap_is_refused_unsent(server, window):
    with pytest.raises(ServerRefused) as e:
        exporter_for(f"pyroscope={server}", ExportOptions(max_bytes=20)).send(window)
    assert e.value.status == 413 and not e.value.retryable

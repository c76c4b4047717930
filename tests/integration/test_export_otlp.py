# SPDX-License-Identifier: Apache-2.0
"""otlp= against a real OpenTelemetry Collector (v0.165.0, OTLP receiver + file exporter, built
by .ci/tools, profiles feature gate on) on loopback: what it wrote to its file, decoded, is the
window profkit sent."""
import struct

import pytest

from profkit.errors import ServerRefused, ServerUnreachable
from profkit.exporters import ExportOptions, exporter_for
from profkit.exporters.base import LABEL_VALUE_MAX, Window, clean_labels
from profkit.exporters.otlp_model import profiles_of
from profkit.model import Profile
from store_support import HOSTILE, leaf_share, profiled_window, tool
from support import Proc, free_port

pytestmark = pytest.mark.slow
VERSION = "0.165.0"
CONFIG = """\
receivers:
  otlp:
    protocols:
      grpc: {{endpoint: "127.0.0.1:{grpc}"}}
      http: {{endpoint: "127.0.0.1:{http}"}}
exporters:
  file:
    path: "{out}"
    format: proto
    flush_interval: 100ms
service:
  telemetry:
    metrics: {{level: none}}
  pipelines:
    profiles:
      receivers: [otlp]
      exporters: [file]
"""


class Collector:
    def __init__(self, tmp):
        self.http_port, self.grpc_port = free_port(), free_port()
        self.out = tmp / "profiles.pb"
        cfg = tmp / "otelcol.yaml"
        cfg.write_text(CONFIG.format(grpc=self.grpc_port, http=self.http_port, out=self.out))
        self.proc = Proc([tool("otelcol-profkit", VERSION), "--config", f"file:{cfg}",
                          "--feature-gates=service.profilesSupport"])
        self.proc.wait_line("Everything is ready", timeout=60, stream="stderr")
        self.http, self.grpc = f"http://127.0.0.1:{self.http_port}", f"grpc://127.0.0.1:{self.grpc_port}"

    def messages(self):
        """Every ProfilesData the file exporter wrote (4-byte big-endian length, then the message)."""
        from opentelemetry.proto.profiles.v1development import profiles_pb2

        data = self.out.read_bytes() if self.out.exists() else b""
        out, i = [], 0
        while i + 4 <= len(data):
            (n,) = struct.unpack(">I", data[i:i + 4])
            if i + 4 + n > len(data):
                break
            msg = profiles_pb2.ProfilesData()
            msg.ParseFromString(data[i + 4:i + 4 + n])
            out.append(msg)
            i += 4 + n
        return out

    def wait_for(self, count):
        return self.proc.wait_for(lambda: len(self.messages()) >= count and self.messages(), 20,
                                  f"{count} message(s) in {self.out}")


@pytest.fixture(scope="module")
def collector(tmp_path_factory):
    c = Collector(tmp_path_factory.mktemp("otelcol"))
    yield c
    c.proc.stop()


@pytest.fixture(scope="module")
def window(tmp_path_factory):
    return profiled_window(tmp_path_factory.mktemp("window"))


def _check_same(window, attrs, sample_type, got):
    assert sample_type == "samples/count"
    assert got.total == sum(int(round(w)) for _, w in window.profile.items())
    local, stored = leaf_share(window.profile, "hot_compute"), leaf_share(got, "hot_compute")
    assert local > 0.5 and abs(local - stored) < 0.001, (local, stored)
    assert sorted(got.items()) == sorted((k, int(round(w))) for k, w in window.profile.items())
    assert attrs["service.name"] == "pyhot" and attrs["process.pid"] == int(window.labels["pid"])
    assert attrs["process.runtime.name"] == "python" and attrs["collector"] == "py-spy" and attrs["mode"] == "cpu"


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_a_window_reaches_the_collector_whole(collector, window, transport):
    before = len(collector.messages())
    exporter = exporter_for(f"otlp={getattr(collector, transport)}")
    try:
        exporter.send(window)
    finally:
        exporter.close()
    msg = collector.wait_for(before + 1)[before]
    (decoded,) = profiles_of(msg)
    _check_same(window, *decoded)
    prof = msg.resource_profiles[0].scope_profiles[0].profiles[0]
    strings = msg.dictionary.string_table
    assert strings[prof.period_type.type_strindex] == "cpu" and strings[prof.period_type.unit_strindex] == "nanoseconds"
    assert prof.period == 10_000_000  # 100 Hz
    assert prof.time_unix_nano == int(window.start.timestamp() * 1e9)
    assert abs(prof.duration_nano / 1e9 - window.seconds) < 1e-6
    assert msg.resource_profiles[0].scope_profiles[0].scope.name == "profkit"


def test_hostile_labels_arrive_capped_and_intact(collector, window):
    labels = clean_labels({**window.labels, **HOSTILE})
    before = len(collector.messages())
    exporter_for(f"otlp={collector.http}").send(Window(window.profile, labels, window.start, window.end, rate=100))
    attrs, _, got = profiles_of(collector.wait_for(before + 1)[before])[0]
    assert attrs["quotes"] == HOSTILE["quotes"] and attrs["braces"] == HOSTILE["braces"]
    assert attrs["newline"] == "line1 line2" + "  " and "\n" not in attrs["newline"]
    assert len(attrs["long"]) == LABEL_VALUE_MAX and attrs["long"].endswith("…")
    assert got.total == sum(int(round(w)) for _, w in window.profile.items())


@pytest.mark.parametrize("scheme", ["http", "grpc"])
def test_a_receiver_that_is_down_is_unreachable_and_retryable(window, scheme):
    exporter = exporter_for(f"otlp={scheme}://127.0.0.1:{free_port()}", ExportOptions(timeout=3))
    with pytest.raises(ServerUnreachable) as e:
        exporter.send(window)
    assert e.value.retryable and "127.0.0.1" in str(e.value)


def test_a_refusal_is_not_retried_and_carries_the_receivers_message(collector, window):
    # The Collector serves OTLP/HTTP at /v1development/profiles only: a wrong path is its 404.
    with pytest.raises(ServerRefused) as e:
        exporter_for(f"otlp={collector.http}/no/such/prefix").send(window)
    assert e.value.status == 404 and not e.value.retryable and "404" in str(e.value)
    assert "page not found" in str(e.value)  # the Collector's own answer
    with pytest.raises(ServerRefused) as e:  # larger than --max-bytes allows: refused before sending
        exporter_for(f"otlp={collector.http}", ExportOptions(max_bytes=20)).send(window)
    assert e.value.status == 413 and not e.value.retryable



def test_frame_kinds_and_lines_survive_the_collector(collector, window):
    p = Profile()
    p.add_tokens(["java.lang.Thread.run_[j]", "Foo.bar (Foo.java:12)_[0]", "Foo.baz_[1]", "write_[k]"], 7)
    p.add_tokens(["main (app.py:3)", "hot (app.py:20)"], 3)
    before = len(collector.messages())
    exporter_for(f"otlp={collector.grpc}").send(Window(p, window.labels, window.start, window.end, rate=100))
    _, _, got = profiles_of(collector.wait_for(before + 1)[before])[0]
    assert sorted(got.items()) == sorted(p.items())

# SPDX-License-Identifier: Apache-2.0
"""The otlp= and pyroscope= exporters' pure parts: the OTLP profiles mapping (encoded, then decoded
with the opentelemetry-proto messages), their URL spellings, and Pyroscope's series names."""
import subprocess
import sys
from datetime import datetime, timedelta, timezone

import pytest

from profkit.errors import UsageError
from profkit.exporters import available_exporters, exporter_for
from profkit.exporters.base import LABEL_VALUE_MAX, Window
from profkit.exporters.otlp import parse_target
from profkit.exporters.otlp_model import decode_request, encode_window, profiles_of, value_types
from profkit.exporters.pyroscope import app_name, label_value, query_of, series_name, series_type
from profkit.model import Profile

T0 = datetime(2026, 12, 1, 10, 0, 0, tzinfo=timezone.utc)


def _window(profile, mode="cpu", rate=100.0, **labels):
    return Window(profile, {"service": "svc", "pid": "42", "host": "h", **labels}, T0, T0 + timedelta(seconds=10),
                  mode=mode, rate=rate)


def _mixed():
    p = Profile()
    p.add_tokens(["<module> (app.py:10)", "main (app.py:3)", "hot (app.py:20)"], 70)
    p.add_tokens(["<module> (app.py:10)", "main (app.py:3)", "hot (app.py:21)"], 5)
    p.add_tokens(["java.lang.Thread.run_[j]", "Foo.bar_[0]", "Foo.baz_[1]", "read_[k]"], 5)
    p.add_tokens(["main [123]", "thread (0x1): w", "libc.so.6`memcpy", "[self]"], 1)
    return p


def test_otlp_round_trip_keeps_every_stack_frame_kind_and_line():
    p = _mixed()
    req = decode_request(encode_window(_window(p), "0.1").SerializeToString())
    ((attrs, st, got),) = profiles_of(req)
    assert st == "samples/count" and got.unit == "samples"
    assert sorted(got.items()) == sorted(p.items())
    assert attrs == {"service.name": "svc", "process.pid": 42, "host.name": "h"}


def test_otlp_dictionary_follows_the_proto_rules():
    req = encode_window(_window(_mixed()), "0.1")
    d = req.dictionary
    assert d.string_table[0] == "" and len(set(d.string_table)) == len(d.string_table)
    for table in (d.mapping_table, d.location_table, d.function_table, d.link_table, d.attribute_table, d.stack_table):
        assert table[0].ByteSize() == 0  # the zero value first
    # one Function per (name, file): hot (app.py:20) and hot (app.py:21) share one, with two Locations
    names = [(d.string_table[f.name_strindex], d.string_table[f.filename_strindex]) for f in d.function_table[1:]]
    assert len(names) == len(set(names)) and names.count(("hot", "app.py")) == 1
    hot_lines = sorted(loc.lines[0].line for loc in d.location_table[1:]
                       if d.string_table[d.function_table[loc.lines[0].function_index].name_strindex] == "hot")
    assert hot_lines == [20, 21]
    # stacks are leaf first
    prof = req.resource_profiles[0].scope_profiles[0].profiles[0]
    first = d.stack_table[prof.samples[0].stack_index].location_indices
    leaf_fn = d.function_table[d.location_table[first[0]].lines[0].function_index]
    assert d.string_table[leaf_fn.name_strindex] in ("hot", "read", "[self]")
    types = {d.string_table[d.attribute_table[i].key_strindex] + "=" + d.attribute_table[i].value.string_value
             for loc in d.location_table for i in loc.attribute_indices}
    assert {"profile.frame.type=cpython", "profile.frame.type=kernel", "profile.frame.type=jvm",
            "profkit.frame.kind=interpreted", "profkit.frame.kind=c1"} <= types
    assert prof.period == 10_000_000 and len(prof.profile_id) == 16
    assert prof.time_unix_nano == int(T0.timestamp()) * 10 ** 9 and prof.duration_nano == 10 * 10 ** 9


@pytest.mark.parametrize("unit,mode,rate,expected", [
    ("samples", "cpu", 100, (("samples", "count"), ("cpu", "nanoseconds"), 10_000_000)),
    ("samples", "wall", 50, (("samples", "count"), ("wall", "nanoseconds"), 20_000_000)),
    ("samples", "lock", None, (("samples", "count"), ("lock", "count"), 1)),
    ("nanoseconds", "lock", None, (("lock", "nanoseconds"), None, 0)),
    ("bytes", "alloc", None, (("alloc_space", "bytes"), None, 0)),
    ("objects", "alloc", None, (("alloc_objects", "count"), None, 0)),
])
def test_otlp_sample_types_per_mode(unit, mode, rate, expected):
    assert value_types(unit, mode, rate) == expected


def test_otlp_bytes_come_back_as_bytes():
    p = Profile("bytes")
    p.add_tokens(["main (a.py:1)", "alloc (a.py:2)"], 4096)
    ((_, st, got),) = profiles_of(decode_request(encode_window(_window(p, mode="alloc", rate=None)).SerializeToString()))
    assert st == "alloc_space/bytes" and got.unit == "bytes" and got.total == 4096


@pytest.mark.parametrize("url,expected", [
    ("http://127.0.0.1:4318", ("http", "http://127.0.0.1:4318", "/v1development/profiles")),
    ("https://otel.example:4318/v1development/profiles", ("http", "https://otel.example:4318", "/v1development/profiles")),
    ("http://gw:80/otlp", ("http", "http://gw:80", "/otlp/v1development/profiles")),
    ("grpc://127.0.0.1:4317", ("grpc", "127.0.0.1:4317", None)),
    ("grpcs://[::1]:4317", ("grpcs", "[::1]:4317", None)),
])
def test_otlp_url_spellings(url, expected):
    assert parse_target(url) == expected


@pytest.mark.parametrize("url", ["ftp://x:1", "grpc://host", "grpc://host:4317/path", "127.0.0.1:4317"])
def test_otlp_bad_urls_are_usage_errors(url):
    with pytest.raises(UsageError):
        exporter_for(f"otlp={url}")


def test_both_exporters_are_registered_entry_points():
    kinds = available_exporters()
    assert kinds["otlp"].kind == "otlp" and kinds["pyroscope"].kind == "pyroscope"


def test_pyroscope_names_are_made_safe_for_its_name_syntax():
    assert app_name('my "app" {x}\n') == "my__app___x_"
    assert app_name("...") == "unknown" and app_name("checkout-v2.svc") == "checkout-v2.svc"
    assert label_value('say "hi", {k=v}\\') == "say 'hi'; (k=v)/"
    assert label_value("a\nb\r") == "a b" and len(label_value("x" * 10_000)) == LABEL_VALUE_MAX
    name = series_name("svc", "cpu", {"b": "x,y}", "a": "1", "__name__": "evil", "empty": " "})
    assert name == "svc.cpu{a=1,b=x;y)}"
    assert query_of("svc", "cpu", {"service": 'a"b'}) == "svc.cpu{service=\"a'b\"}"


@pytest.mark.parametrize("mode,unit,expected", [
    ("cpu", "samples", ("cpu", "samples")), ("wall", "samples", ("wall", "samples")),
    ("cpu", "nanoseconds", ("cpu", "samples")), ("lock", "nanoseconds", ("lock", "lock_nanoseconds")),
    ("lock", "samples", ("lock", "lock_samples")), ("alloc", "bytes", ("alloc_space", "bytes")),
    ("alloc", "objects", ("alloc_objects", "objects")),
])
def test_pyroscope_types_and_units_per_mode(mode, unit, expected):
    assert series_type(mode, unit) == expected


def test_protobuf_is_not_loaded_by_the_cli_or_the_exporter_modules():
    code = ("import sys, profkit.cli, profkit.exporters.otlp, profkit.exporters.pyroscope;"
            "print(sorted(m for m in sys.modules if m.startswith(('google.protobuf', 'grpc', 'opentelemetry'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr


def test_pyroscope_windows_fill_one_slot_when_they_fit_in_one():
    from profkit.exporters.pyroscope import slot_range

    assert slot_range(1000.0, 1010.0) == (1000, 1010)
    assert slot_range(1007.5, 1012.0) == (1000, 1010)   # middle 1009.75
    assert slot_range(1008.0, 1015.0) == (1010, 1020)   # middle 1011.5
    assert slot_range(1003.2, 1063.9) == (1003, 1064)   # longer than a slot: its own range


def test_otlp_without_its_packages_fails_at_start_with_the_install_hint(monkeypatch):
    from profkit.errors import EnvironmentProblem

    monkeypatch.setitem(sys.modules, "google.protobuf", None)  # what find_spec sees when it is absent
    with pytest.raises(EnvironmentProblem) as e:
        exporter_for("otlp=http://127.0.0.1:4318")
    assert "protobuf" in str(e.value) and "profkit[stores]" in e.value.hint

# SPDX-License-Identifier: Apache-2.0
"""From a trace segment's operation to the frames of its service's profile (profkit/traces/focus.py)
and targets to services (profkit/traces/investigate.py)."""
from profkit.model import Frame, Profile
from profkit.runrecord import RunRecord, TargetRecord
from profkit.traces.focus import focus, rule_for
from profkit.traces.investigate import _owner, service_map


def test_rules_by_kind_of_span_name():
    r = rule_for("GET /verify")
    assert r.kind == "http-server" and r.names[0] == "verify" and "handle_verify" in r.names
    assert rule_for("GET /orders/<int:order_id>").names[0] == "orders"
    assert rule_for("POST /api/v1/{tenant}/charge").names[0] == "charge"
    assert rule_for("GET /").names[0] == "index"
    assert rule_for("GET /check-out").names[0] == "check_out"
    for client in ("GET", "HTTP POST", "delete"):
        assert rule_for(client).kind == "http-client", client
    for sql in ("SELECT", "INSERT shop.db", "select * from x"):
        assert rule_for(sql).kind == "database", sql
    r = rule_for("bank.authorize")
    assert r.kind == "span-name" and r.names == ("bank_authorize", "authorize")
    hostile = rule_for("a(b)[c]*+? <script>\x1b[31m")  # any text: never a regex error
    assert hostile.kind == "span-name"
    assert rule_for("").kind == "span-name" and rule_for("").names == ()


def _py(name, file="services.py", line=1):
    return Frame(name, file=file, line=line)


def _service_profile():
    p = Profile()
    thread = Frame("thread (1): worker")
    flask = [_py("Flask.dispatch_request", "flask/app.py"), _py("make_app.<locals>.handler.<locals>.view")]
    p.add([thread, *flask, _py("payment_main.<locals>.verify", line=190)], 40)
    p.add([thread, *flask, _py("payment_main.<locals>.verify"), _py("query"), _py("CursorTracer.execute", "dbapi/__init__.py")], 5)
    p.add([thread, *flask, _py("payment_main.<locals>.charge"), _py("get", "requests/api.py"), _py("Session.send", "requests/sessions.py")], 7)
    p.add([thread, _py("BaseServer.serve_forever", "socketserver.py"), _py("select", "selectors.py")], 100)
    return p


def test_focus_keeps_the_stacks_under_the_operation_from_the_matching_frame():
    prof = _service_profile()
    out, info = focus(prof, "GET /verify")
    assert info["rule"] == "http-server" and out.total == 45 and info["focused_total"] == 45 and info["service_total"] == 152
    assert info["frames"] == ["payment_main.<locals>.verify (services.py)"]
    assert all(stack[0].name == "payment_main.<locals>.verify" for stack, _ in out.stacks())
    client, info = focus(prof, "GET")
    assert info["rule"] == "http-client" and client.total == 7
    assert [s[0].name for s, _ in client.stacks()] == ["get"]
    db, info = focus(prof, "SELECT")
    assert info["rule"] == "database" and db.total == 5 and info["frames"] == ["CursorTracer.execute (dbapi/__init__.py)"]
    none, info = focus(prof, "bank.authorize")
    assert none is None and info["focused_total"] == 0 and info["share"] == 0


def test_targets_map_to_services_by_label_then_by_process_pid():
    rec = RunRecord(mode="wall", targets=[TargetRecord(10, "python", service="gateway"), TargetRecord(11, "python"),
                                          TargetRecord(12, "python")])
    services = {"gateway": {"process.pid": 99, "process.pids": [99]}, "payment": {"process.pid": 11, "process.pids": [11, 13]},
                "old": {"process.pid": None}}
    assert service_map(rec, services) == [
        {"pid": 10, "name": "python", "service": "gateway", "mapped_by": "--target"},
        {"pid": 11, "name": "python", "service": "payment", "mapped_by": "process.pid"},
        {"pid": 12, "name": "python", "service": None, "mapped_by": None}]


def test_the_owner_of_the_top_segment_or_why_there_is_none():
    targets = [{"pid": 11, "name": "python", "service": "payment", "mapped_by": "process.pid"}]
    grown = {"segments": [{"service": "payment", "operation": "GET /verify", "delta_ms": 600.0},
                          {"service": "checkout", "operation": "SELECT", "delta_ms": 3.0}]}
    top, owners, note = _owner(grown, targets)
    assert top["operation"] == "GET /verify" and owners == targets and note is None
    top, owners, note = _owner({"segments": [{"service": "bank", "operation": "x", "delta_ms": 5.0}]}, targets)
    assert owners == [] and "'bank' is not one of the profiled targets" in note and "--target bank=PID" in note
    top, owners, note = _owner({"segments": [{"service": "payment", "operation": "x", "delta_ms": -1.0}]}, targets)
    assert top is None and "no critical-path segment grew" in note


def test_target_flag_is_service_equals_pid():
    import subprocess
    import sys

    import pytest

    from profkit.cli.bench_observe import target_services
    from profkit.errors import UsageError

    assert target_services(["payment=12", "check out=13", "a=b=14"]) == {12: "payment", 13: "check out", 14: "a=b"}
    for bad in (["payment"], ["=12"], ["pay;x=12"], ["payment=x"], ["a=1", "b=1"]):
        with pytest.raises(UsageError):
            target_services(bad)
    p = subprocess.run([sys.executable, "-m", "profkit", "bench", "--target", "payment", "--url", "http://127.0.0.1:9/"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and p.stderr.startswith("profkit: error: --target 'payment': expected SERVICE=PID"), p.stderr
    assert "Traceback" not in p.stderr


def test_focus_analysis_writes_focus_files_and_escapes_untrusted_names(tmp_path):
    import json
    import threading
    from types import SimpleNamespace

    from support import make_run

    from profkit.engine.probe import RunContext
    from profkit.reports.focus import html_section, markdown_section
    from profkit.reports.traces import _env
    from profkit.traces.investigate import focus_analysis

    run = make_run(tmp_path / "run", pids=(11, 12), mode="wall")
    evil = "GET /<script>alert(1)</script>"
    run.write_text("traces.json", json.dumps({
        "verdict": "x", "services": {"pay <b>": {"process.pid": 12, "process.pids": [12]}},
        "segments": [{"service": "pay <b>", "operation": evil, "path": ["gw: GET /", f"pay <b>: {evil}"], "delta_ms": 9.0}]}))
    prof = Profile()
    prof.add([Frame("thread (1)"), Frame("script", file="app.py", line=3), Frame("leaf <i>", file="app.py", line=4)], 5)
    prof.add([Frame("thread (1)"), Frame("idle", file="app.py", line=9)], 20)
    ctx = RunContext(run, [SimpleNamespace(pid=11), SimpleNamespace(pid=12)], threading.Event(), 1.0)
    ctx.profiles["py-spy"], ctx.profiler_order = prof, ["py-spy"]
    ctx.per_target["py-spy"] = {11: Profile(), 12: prof}
    focus_analysis(ctx)
    doc = json.loads((tmp_path / "run" / "focus.json").read_text())
    # the route /<script>alert(1)</script> ends in the literal segment "script)" → "script"
    assert doc["owners"] == [12] and doc["focused"] and doc["focused_total"] == 5 and doc["share"] == 0.2, doc
    assert (tmp_path / "run" / "focus.folded").read_text().startswith("script (app.py:3)")
    md = markdown_section(run)
    assert "<script>" not in md and "<b>" not in md and "&lt;script&gt;" in md
    html = html_section(run, _env())
    assert "<script>alert" not in html and "<b>" not in html and "&lt;script&gt;" in html
    assert "<script>alert" not in (tmp_path / "run" / "focus.svg").read_text()

# SPDX-License-Identifier: Apache-2.0
"""``profkit agent --export parca=`` into a real Parca v0.28.0 on loopback (in-memory storage,
a temporary directory for everything else), read back with ``profkit pull`` and Parca's own
query API: totals, the hot function, the store down then up, a SIGKILLed agent's spool delivered
by the next run, ``compare --store`` naming the changed function, and hostile labels."""
import json
import signal
import time
import urllib.parse
import urllib.request
import uuid

import pytest

from agentkit import NS_PER_SAMPLE, agent_argv, events, index, py_target, pyspy_of, start_parca, tools_of, wait_gone
from conftest import folded_shares, profkit
from support import assert_running, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def parca(tmp_path_factory):
    p = start_parca(tmp_path_factory.mktemp("parca"))
    yield p
    p.stop()


def service():
    return "svc-" + uuid.uuid4().hex[:8]


def span(entries, pad=5):
    """A RANGE covering the windows of ``entries`` (padded seconds each side)."""
    from profkit.timeparse import format_time, parse_time
    from datetime import timedelta

    start = min(parse_time(e["start"]) for e in entries) - timedelta(seconds=pad)
    end = max(parse_time(e["end"]) for e in entries) + timedelta(seconds=pad)
    return f"{format_time(start)}..{format_time(end)}"


def parca_top_total(url, query, rng):
    """Parca's own sum of a range (REPORT_TYPE_TOP rows' flat values, in nanoseconds)."""
    start, end = rng.split("..")
    params = {"mode": "MODE_MERGE", "merge.query": query, "merge.start": start, "merge.end": end,
              "reportType": "REPORT_TYPE_TOP"}
    with urllib.request.urlopen(url + "/api/profiles/query?" + urllib.parse.urlencode(params), timeout=30) as r:
        answer = json.loads(r.read())
    return sum(int(row.get("flat", 0)) for row in answer["top"]["list"])


def pull(parca_url, query, rng, out):
    r = profkit("pull", "--store", f"parca={parca_url}", "--query", query, "--range", rng, "-o", out)
    assert r.returncode == 0, r.stderr
    return json.loads((out / "manifest.json").read_text())


def test_windows_reach_parca_with_the_local_totals_and_hot_function(parca, tmp_path, start_process):
    svc = service()
    target = start_process(*py_target("v2")).wait_ready()
    out = tmp_path / "out"
    r = profkit("agent", "--pid", target.pid, "--window", "3", "--duration", "9", "-o", out, "--label",
                f"service={svc}", "--label", "version=1.4.2", "--export", f"parca={parca.url}", "-q", timeout=90)
    assert r.returncode == 0, r.stderr
    entries = index(out)
    assert len(entries) == 3 and all(e["samples"] > 0 for e in entries), entries
    local = sum(e["samples"] for e in entries)
    rng = span(entries)
    m = pull(parca.url, f'{{service="{svc}",version="1.4.2"}}', rng, tmp_path / "pulled")
    assert m["profile"]["unit"] == "nanoseconds" and m["source"]["store"] == "parca"
    assert m["profile"]["samples"] == local * NS_PER_SAMPLE                # every sample, none twice
    assert parca_top_total(parca.url, f'process_cpu:cpu:nanoseconds:cpu:nanoseconds:delta{{service="{svc}"}}',
                           rng) == local * NS_PER_SAMPLE
    stored = folded_shares(tmp_path / "pulled" / "profile.folded")
    mine = {}
    for e in entries:
        for k, v in folded_shares(out / e["dir"] / "profile.folded").items():
            mine[k] = mine.get(k, 0) + v * e["samples"] / local
    top = max(mine, key=mine.get)
    assert top in ("parse_order", "validate_order") and max(stored, key=stored.get) in ("parse_order", "validate_order")
    assert abs(stored[top] - mine[top]) < 0.10
    types = {t["name"] + ":" + t["sampleType"] + ":" + t["sampleUnit"] for t in
             json.loads(urllib.request.urlopen(parca.url + "/api/profiles/types", timeout=10).read())["types"]}
    assert "process_cpu:samples:count" in types


def test_store_down_for_two_windows_then_up_gets_every_window_in_order(tmp_path, start_process):
    svc = service()
    port = free_port()
    target = start_process(*py_target("v1")).wait_ready()
    out = tmp_path / "out"
    agent = start_process(*agent_argv("--pid", target.pid, "--window", "2", "--duration", "14", "-o", out,
                                      "--label", f"service={svc}", "--export", f"parca=http://127.0.0.1:{port}"))
    agent.wait_for(lambda: len(events(agent, "window")) >= 2, 30, "two windows while Parca is down")
    assert any(e["result"] == "retry" for e in events(agent, "export"))
    late = start_parca(tmp_path / "parca", port)
    try:
        assert agent.wait(60) == 0, agent.output()
        sent = [e for e in events(agent, "export") if e["result"] == "sent"]
        entries = [e for e in index(out) if e["samples"] > 0]
        assert len(sent) == len(entries) >= 6
        assert [e["start"] for e in sent] == sorted(e["start"] for e in sent)     # in order
        stopped = events(agent, "stopped")[-1]
        assert stopped["left_in_spool"] == {"parca": 0} and stopped["dropped"] == 0
        m = pull(late.url, f'{{service="{svc}"}}', span(entries), tmp_path / "pulled")
        assert m["profile"]["samples"] == sum(e["samples"] for e in entries) * NS_PER_SAMPLE
    finally:
        late.stop()


def test_sigkill_harms_nothing_and_the_next_run_delivers_the_spool(tmp_path, start_process):
    svc = service()
    port = free_port()
    target = start_process(*py_target("v1")).wait_ready()
    out = tmp_path / "out"
    agent = start_process(*agent_argv("--pid", target.pid, "--window", "2", "-o", out, "--label", f"service={svc}",
                                      "--export", f"parca=http://127.0.0.1:{port}"))
    agent.wait_for(lambda: len(events(agent, "window")) >= 2 and tools_of(agent.pid), 30, "two windows spooled")
    tools = tools_of(agent.pid)
    agent.kill()
    agent.wait(10)
    wait_gone(tools)                                              # py-spy dies with profkit
    assert pyspy_of(target.pid) == []
    assert_running(target.pid)
    before = [e for e in index(out) if e["samples"] > 0]
    late = start_parca(tmp_path / "parca", port)                 # the store is up again
    try:
        r = profkit("agent", "--pid", target.pid, "--window", "2", "--duration", "2", "-o", out, "--label",
                    f"service={svc}", "--export", f"parca={late.url}", "--log-format", "json", timeout=90)
        assert r.returncode == 0, r.stderr
        assert '"event": "recovered"' in r.stderr                 # the window the kill cut short
        entries = [e for e in index(out) if e["samples"] > 0]
        assert len(entries) >= len(before) + 2
        m = pull(late.url, f'{{service="{svc}"}}', span(entries, pad=30), tmp_path / "pulled")
        assert m["profile"]["samples"] == sum(e["samples"] for e in entries) * NS_PER_SAMPLE
    finally:
        late.stop()


def test_sigterm_mid_window_exports_the_partial_window(parca, tmp_path, start_process):
    svc = service()
    target = start_process(*py_target("v1")).wait_ready()
    out = tmp_path / "out"
    agent = start_process(*agent_argv("--pid", target.pid, "--window", "60", "-o", out, "--label", f"service={svc}",
                                      "--export", f"parca={parca.url}"))
    agent.wait_for(lambda: tools_of(agent.pid), 20, "py-spy to start")
    time.sleep(3)
    agent.send_signal(signal.SIGTERM)
    assert agent.wait(30) == 0, agent.output()
    [entry] = index(out)
    assert entry["status"] == "interrupted" and entry["samples"] > 0
    m = pull(parca.url, f'{{service="{svc}"}}', span([entry]), tmp_path / "pulled")
    assert m["profile"]["samples"] == entry["samples"] * NS_PER_SAMPLE
    assert_running(target.pid)


def test_compare_store_names_the_changed_function(parca, tmp_path, start_process):
    svc = service()
    base_t = start_process(*py_target("v1")).wait_ready()
    r = profkit("agent", "--pid", base_t.pid, "--window", "3", "--duration", "6", "-o", tmp_path / "a", "--label",
                f"service={svc}", "--export", f"parca={parca.url}", "-q", timeout=90)
    assert r.returncode == 0, r.stderr
    base_t.stop()
    head_t = start_process(*py_target("v2")).wait_ready()              # the deploy: new code, same service
    r = profkit("agent", "--pid", head_t.pid, "--window", "3", "--duration", "6", "-o", tmp_path / "b", "--label",
                f"service={svc}", "--export", f"parca={parca.url}", "-q", timeout=90)
    assert r.returncode == 0, r.stderr
    base, head = span(index(tmp_path / "a"), pad=1), span(index(tmp_path / "b"), pad=1)
    out = tmp_path / "cmp"
    r = profkit("compare", "--store", f"parca={parca.url}", "--query", f'{{service="{svc}"}}', "--base", base,
                "--head", head, "-o", out)
    assert r.returncode == 0, r.stderr
    result = json.loads((out / "compare.json").read_text())
    assert result["top_regressed"][0]["key"].startswith("validate_order"), result["top_regressed"]
    assert (out / "diff.svg").exists() and "validate\\_order" in (out / "comment.md").read_text()  # Markdown-escaped
    assert json.loads((out / "base" / "manifest.json").read_text())["source"]["range"][0] == base.split("..")[0]


def test_hostile_process_names_reach_the_stores_escaped_and_capped(parca, tmp_path, start_process):
    hostile = 'q"{x}\\n\\x1b[2J'
    target = start_process(*py_target("v1", "--name", hostile)).wait_ready()
    out = tmp_path / "out"
    long_value = 'v"' + "x" * 400
    r = profkit("agent", "--pid", target.pid, "--window", "2", "--duration", "2", "-o", out, "--label",
                f"version={long_value}", "--export", f"parca={parca.url}", "--export", f"file={tmp_path / 'store'}",
                "-q", timeout=90)
    assert r.returncode == 0, r.stderr
    [entry] = [e for e in index(tmp_path / "store")]
    labels = entry["labels"]
    assert labels["service"] == 'q"{x}  [2J'                        # newline and ESC as spaces, quotes kept
    assert len(labels["version"]) == 200 and labels["version"].endswith("…")
    q = "{service=" + json.dumps(labels["service"]) + "}"
    m = pull(parca.url, q, span([entry]), tmp_path / "pulled")
    assert m["profile"]["samples"] == entry["samples"] * NS_PER_SAMPLE
    assert m["source"]["labels"]["service"] == labels["service"]

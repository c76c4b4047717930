# SPDX-License-Identifier: Apache-2.0
"""profkit bench over a service chain, from the segment to the code: the checkout example with the
bad deploy (examples/checkout/services.py: gateway → checkout → payment, OpenTelemetry to a real
Jaeger, prometheus-client metrics scraped by a real Prometheus), all three services profiled by
real py-spy in one bench run, each mapped to its service by --target or by the process.pid its
spans report. The report must read RED → traces → the payment service's code under GET /verify.
"""
import json
import pathlib
import re
import sys

import pytest

from conftest import profkit
from servers import jaeger, prometheus  # noqa: F401  (module-scoped server fixtures)
from support import Proc

SERVICES = pathlib.Path(__file__).resolve().parents[2] / "examples" / "checkout" / "services.py"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chain(jaeger, prometheus):  # noqa: F811
    proc = Proc([sys.executable, SERVICES, "up", "--otlp", jaeger.otlp_http, "--bad-deploy"], grace=15)
    try:
        info = json.loads(proc.wait_line(r"^\{", 180).string)
        for role, address in info["metrics"].items():
            prometheus.add_target(address, "checkout-chain", service=role)
        prometheus.wait_scraped("checkout-chain", timeout=60)
        yield info
    finally:
        proc.stop()


def _bench(chain, jaeger, prometheus, out, *targets, quiet=True):  # noqa: F811
    return profkit("bench", *targets, "--url", f"{chain['gateway']}/checkout?customer=7", "--duration", 7, "-C", 2,
                   "--prometheus", prometheus.url, "--selector", '{job="checkout-chain", service="gateway"}',
                   "--jaeger", jaeger.url, "--service", "gateway", "-o", out, *(["-q"] if quiet else []), timeout=240)


@pytest.fixture(scope="module")
def runs(chain, jaeger, prometheus, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("chain")
    by_target = _bench(chain, jaeger, prometheus, out / "target",
                       *[a for role in ("gateway", "checkout", "payment") for a in ("--target", f"{role}={chain[role + '_pid']}")],
                       quiet=False)
    by_pid = _bench(chain, jaeger, prometheus, out / "pid",
                    *[a for role in ("gateway", "checkout", "payment") for a in ("--pid", chain[role + "_pid"])])
    return {"target": (out / "target", by_target), "pid": (out / "pid", by_pid), "out": out}


def _focus_checks(run, chain):
    focus = json.loads((run / "focus.json").read_text())
    assert focus["service"] == "payment" and focus["segment"]["operation"] == "GET /verify", focus["segment"]
    assert focus["owners"] == [chain["payment_pid"]] and focus["focused"] and focus["rule"] == "http-server", focus
    top = focus["top"][0]
    # the new synchronous call's hot frame: the payment service's /verify handler, waiting on its ledger lock
    assert re.match(r"(\S+\.)?verify \(", top["function"]) and top["self_share"] > 0.5, focus["top"][:3]
    assert 0 < focus["share"] < 1 and focus["focused_total"] < focus["service_total"]
    # every focused stack starts at the handler's frame
    stacks = [line.rsplit(" ", 1)[0].split(";") for line in (run / "focus.folded").read_text().splitlines()]
    assert stacks and all(re.match(r"(\S+\.)?verify \(", s[0]) for s in stacks), stacks[:3]
    assert "<svg" in (run / "focus.svg").read_text()
    # one profile per target, kept apart
    dirs = {p.name.split("-")[0] for p in (run / "targets").iterdir() if (p / "profile.folded").exists()}
    assert dirs == {str(chain[r + "_pid"]) for r in ("gateway", "checkout", "payment")}, dirs
    assert json.loads((run / "manifest.json").read_text())["mode"] == "wall"
    return focus


def test_bench_over_the_chain_reads_red_then_traces_then_the_payment_code(runs, chain):
    run, p = runs["target"]
    assert p.returncode == 0, p.stderr
    assert "profiling in wall mode" in p.stderr
    focus = _focus_checks(run, chain)
    assert {t["pid"]: (t["service"], t["mapped_by"]) for t in focus["targets"]} == \
        {chain[r + "_pid"]: (r, "--target") for r in ("gateway", "checkout", "payment")}
    lines = p.stdout.splitlines()
    assert len(lines) == 3 and lines[0].startswith("RED (Prometheus") and "p99" in lines[0], lines
    assert lines[1].startswith("traces: payment: GET /verify grew most"), lines
    assert lines[2].startswith(f"code: payment [{chain['payment_pid']}] (py-spy, wall), focused on the frames under GET /verify"), lines
    md = (run / "summary.md").read_text()
    order = ["## Investigation", "## Load (RED)", "RED from Prometheus", "## Traces: gateway", "## Code: payment",
             "## All targets' profile"]
    assert [md.index(h) for h in order] == sorted(md.index(h) for h in order), md[:3000]
    assert "1. RED (Prometheus" in md and "3. code: payment" in md
    html = (run / "report.html").read_text()
    order = ['id="investigation"', '<section id="traces">', '<section id="code">', "<h2>Flame graph</h2>"]
    assert [html.index(h) for h in order] == sorted(html.index(h) for h in order)


def test_bench_maps_targets_by_the_process_pid_their_spans_report(runs, chain):
    run, p = runs["pid"]
    assert p.returncode == 0, p.stderr
    traces = json.loads((run / "traces.json").read_text())
    assert traces["services"]["payment"]["process.pids"] == [chain["payment_pid"]], traces["services"]
    focus = _focus_checks(run, chain)
    assert {t["pid"]: (t["service"], t["mapped_by"]) for t in focus["targets"]} == \
        {chain[r + "_pid"]: (r, "process.pid") for r in ("gateway", "checkout", "payment")}
    assert p.stdout.splitlines()[2].startswith(f"code: payment [{chain['payment_pid']}]")


def test_compare_of_two_chain_runs_has_red_and_segment_deltas(runs, tmp_path):
    p = profkit("compare", runs["target"][0], runs["pid"][0], "-o", tmp_path / "cmp")
    assert p.returncode == 0, p.stderr
    comment = (tmp_path / "cmp" / "comment.md").read_text()
    assert comment.index("### Top regressed functions") < comment.index("### RED from Prometheus") \
        < comment.index("### Slow traces' critical-path segments")
    observed = json.loads((tmp_path / "cmp" / "compare.json").read_text())["observed"]
    # both runs are of the same bad chain: which segment grew most between them is noise, so the
    # check is the shape (the chain's segments, sorted by delta_ms), not one segment on top
    segs = observed["segments"]
    assert segs and all(s["path"].split(":", 1)[0] in ("gateway", "checkout", "payment") for s in segs), segs
    assert [s["delta_ms"] for s in segs] == sorted((s["delta_ms"] for s in segs), reverse=True), segs
    assert all(abs(s["head_ms"] - s["base_ms"] - s["delta_ms"]) < 0.01 for s in segs), segs
    assert {r["metric"] for r in observed["red"]} >= {"rate", "p99_ms"}

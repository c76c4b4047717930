# SPDX-License-Identifier: Apache-2.0
"""profkit bench, compare and export on real services under real loopback load (wrk, py-spy)."""
import functools
import json
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from support import Proc, built_tool, free_port
from conftest import manifest, profkit

ROOT = pathlib.Path(__file__).resolve().parents[2]
def requires(found, message):
    """A missing tool fails the test with ``message`` (CI installs it): never a silent skip."""
    def decorate(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            assert found, message
            return fn(*args, **kwargs)
        return wrapper
    return decorate


needs_wrk = requires(shutil.which("wrk"), "wrk is not installed (apt-get install wrk)")


@pytest.fixture(scope="module")
def rest_api():
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    argv = ["bash", ROOT / "examples" / "python_api" / "serve.sh", "--port", port]
    with Proc(argv, env={"PYTHON": sys.executable}) as svc:
        yield svc.wait_url(f"{base}/health", 20)["pid"], base


@pytest.mark.slow
@needs_wrk
def test_rest_api_under_wrk_and_an_slo_that_cannot_be_met(rest_api, tmp_path):
    worker, base = rest_api
    run = tmp_path / "run"
    p = profkit("bench", "--pid", worker, "--url", f"{base}/items?limit=20", "--duration", 4, "-C", 4,
                "--slo", "p99<60s", "--slo", "p50<0.001ms", "-o", run, "-q")
    assert p.returncode == 4, p.stderr
    assert "SLO missed: p50<0.001ms" in p.stderr
    load = json.loads((run / "load.json").read_text())
    print("RED:", {k: load[k] for k in ("requests", "rate", "error_count", "error_pct", "latency_ms")})
    assert load["generator"] == "wrk" and load["rate"] > 0 and load["requests"] > 0
    assert load["error_count"] == 0 and load["error_pct"] == 0
    lat = load["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99.9"] <= lat["max"]
    assert [o["status"] for o in load["slo"]["objectives"]] == ["met", "missed"] and load["slo"]["overall"] == "missed"
    # nothing lost: the profile, reports and raw captures are all there
    assert "score_items" in (run / "profile.folded").read_text()
    assert (run / "raw" / "load-wrk.txt").exists() and manifest(run).load["generator"] == "wrk"
    summary = (run / "summary.md").read_text()
    assert "## Load (RED)" in summary and "closed-loop" in summary and "| p99.9 |" in summary
    html = (run / "report.html").read_text()
    assert 'id="load"' in html and "latency by percentile" in html and "<svg" in html


@pytest.mark.slow
@needs_wrk
def test_zero_successful_requests_keeps_the_run(rest_api, tmp_path):
    _, base = rest_api
    run = tmp_path / "run"
    p = profkit("bench", "--pid", rest_api[0], "--url", f"{base}/no-such-page", "--duration", 2, "-C", 2, "-o", run, "-q")
    assert p.returncode == 1, p.stderr
    assert "zero successful requests" in p.stderr
    load = json.loads((run / "load.json").read_text())
    assert load["requests"] > 0 and load["errors"]["status"] == load["requests"]
    assert (run / "report.html").exists() and (run / "profile.folded").exists()


@pytest.mark.slow
def test_cmd_generator_reads_the_json_line(rest_api, tmp_path):
    worker, base = rest_api
    run = tmp_path / "run"
    cmd = f"{sys.executable} {ROOT / 'examples' / 'load' / 'load.py'} {{url}} {{duration}} 2 --json"
    p = profkit("bench", "--pid", worker, "--url", f"{base}/items?limit=5", "--duration", 2, "--load", "cmd",
                "--load-command", cmd, "--slo", "rate>0", "-o", run, "-q")
    assert p.returncode == 0, p.stderr
    load = json.loads((run / "load.json").read_text())
    assert load["generator"] == "cmd" and load["requests"] > 0 and load["latency_ms"]["p99"] > 0
    assert load["slo"]["overall"] == "met"


@pytest.mark.slow
def test_locust_generator(rest_api, tmp_path):
    # Never `import locust` here: it monkey-patches subprocess and signals (gevent) for the whole
    # test process, after which gevent reaps other tests' children. Ask the metadata instead.
    from importlib.metadata import version

    assert version("locust"), "locust is in the test extra: pip install -e '.[test]'"
    worker, base = rest_api
    run = tmp_path / "run"
    p = profkit("bench", "--pid", worker, "--url", f"{base}/items?limit=5", "--duration", 3, "-C", 2, "--load", "locust",
                "-o", run, "-q")
    assert p.returncode == 0, p.stderr
    load = json.loads((run / "load.json").read_text())
    assert load["generator"] == "locust" and load["requests"] > 0 and load["error_count"] == 0
    lat = load["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["p99.9"]
    assert (run / "raw" / "locust_stats.csv").exists() and (run / "raw" / "locustfile.py").exists()


@pytest.mark.slow
def test_bench_refusals(tmp_path):
    me = os.getpid()
    # a malformed SLO: exit 2, nothing started
    p = profkit("bench", "--pid", me, "--url", "http://127.0.0.1:1/", "--slo", "p99<<5", "-o", tmp_path / "a")
    assert p.returncode == 2 and "malformed SLO" in p.stderr and not (tmp_path / "a").exists()
    # another host: exit 2, nothing sent
    p = profkit("bench", "--pid", me, "--url", "http://example.com/", "-o", tmp_path / "b")
    assert p.returncode == 2 and "only loopback" in p.stderr
    # nothing listening: exit 1, one line
    p = profkit("bench", "--pid", me, "--url", f"http://127.0.0.1:{free_port()}/", "-o", tmp_path / "c")
    assert p.returncode == 1 and "unreachable" in p.stderr and "Traceback" not in p.stderr
    # a missing generator: exit 1 with how to install it
    p = profkit("bench", "--pid", me, "--url", "http://127.0.0.1:1/", "-o", tmp_path / "d",
                env=dict(os.environ, PATH=str(tmp_path)))
    assert p.returncode == 1 and "wrk is not installed" in p.stderr and "hint: apt-get install wrk" in p.stderr


def _checkout(start_process, bad):
    """Start examples/checkout (all three services); returns (Proc, info dict)."""
    proc = start_process(sys.executable, ROOT / "examples" / "checkout" / "services.py", "up",
                         *(["--bad-deploy"] if bad else []))
    return proc, json.loads(proc.wait_line(r"^\{", 120).string)


@pytest.mark.slow
@needs_wrk
def test_checkout_bad_deploy_is_found_by_compare(start_process, tmp_path):
    runs = {}
    for variant, bad in (("good", False), ("bad", True)):
        proc, info = _checkout(start_process, bad)
        try:
            run = tmp_path / variant
            p = profkit("bench", "--pid", info["checkout_pid"], "--url", f"{info['gateway']}/checkout?customer=7",
                        "--duration", 5, "-C", 4, "--mode", "wall", "--slo", "p99<500ms", "-o", run, "-q", timeout=120)
            assert p.returncode == (4 if bad else 0), p.stderr
            runs[variant] = json.loads((run / "load.json").read_text())
        finally:
            proc.stop()
    print("RED good:", runs["good"]["rate"], runs["good"]["latency_ms"], "bad:", runs["bad"]["rate"], runs["bad"]["latency_ms"])
    assert runs["good"]["latency_ms"]["p99"] < 500 < runs["bad"]["latency_ms"]["p99"]
    assert runs["good"]["error_count"] == runs["bad"]["error_count"] == 0
    out = tmp_path / "cmp"
    # The head's own SLO (p99<500ms) is missed: 4, which wins over the regression's 3.
    p = profkit("compare", tmp_path / "good", tmp_path / "bad", "-o", out, "--fail-on-regression", 10)
    assert p.returncode == 4, p.stderr
    summary = json.loads((out / "compare.json").read_text())
    assert summary["top_regressed"][0]["key"].startswith("verify_payment ")
    comment = (out / "comment.md").read_text()
    first = next(line for line in comment.split("### Top regressed functions")[1].splitlines() if line.startswith("| verify"))
    assert "verify\\_payment" in first and "`" in comment.split("### Files")[1]
    assert "| p99 |" in comment and "❌ missed" in comment and "<" not in comment.replace("&lt;", "")
    # With an SLO the bad deploy meets, the regression gate alone decides: 3.
    p = profkit("compare", tmp_path / "good", tmp_path / "bad", "-o", tmp_path / "cmp2", "--fail-on-regression", 10,
                "--slo", "errors<1%", "--redact-paths")
    assert p.returncode == 3, p.stderr
    assert "verify_payment" in p.stderr and "services.py" not in (tmp_path / "cmp2" / "comment.md").read_text()
    assert (out / "diff.svg").stat().st_size > 0

    # Exports of the real run: go tool pprof sees the same total and top function; speedscope validates.
    from profkit.model import function_key

    folded = (tmp_path / "bad" / "profile.folded").read_text().splitlines()
    total = sum(int(line.rsplit(" ", 1)[1]) for line in folded)
    leaf = {}
    for line in folded:
        stack, n = line.rsplit(" ", 1)
        k = function_key(stack.rsplit(";", 1)[-1]).split(" (")[0]
        leaf[k] = leaf.get(k, 0) + int(n)
    top_name = max(leaf, key=leaf.get)
    pb = tmp_path / "bad.pb.gz"
    assert profkit("export", tmp_path / "bad", "--to", "pprof", "-o", pb).returncode == 0
    go = shutil.which("go") or "/usr/local/go/bin/go"
    assert os.path.exists(go), "go is not installed (apt-get install golang-go): go tool pprof reads the export"
    top = subprocess.run([go, "tool", "pprof", "-top", "-sample_index=samples", str(pb)], capture_output=True,
                         text=True, timeout=120)
    assert top.returncode == 0, top.stderr
    assert f"of {total} total" in top.stdout
    first_row = next(line for line in top.stdout.splitlines() if "%" in line and not line.startswith(("Showing", "Dropped")) and "flat%" not in line)
    assert first_row.split()[0] == str(leaf[top_name]) and first_row.split()[-1] == top_name
    ss = tmp_path / "bad.speedscope.json"
    assert profkit("export", tmp_path / "bad", "--to", "speedscope", "-o", ss).returncode == 0
    import jsonschema
    schema = json.loads((ROOT / "tests" / "data" / "speedscope" / "file-format-schema.json").read_text())
    jsonschema.validate(json.loads(ss.read_text()), schema)


@requires(built_tool("actionlint", "1.7.12"), "actionlint is not built: bash .ci/tools")
def test_github_actions_workflow_lints():
    p = subprocess.run([built_tool("actionlint", "1.7.12"), str(ROOT / "examples" / "github-actions" / "profkit-bench.yml")],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stdout + p.stderr

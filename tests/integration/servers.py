# SPDX-License-Identifier: Apache-2.0
"""Real servers for integration tests, started on loopback with temporary storage and always stopped.

* :func:`start_jaeger` — the Jaeger v2 binary (``jaeger`` of github.com/jaegertracing/jaeger
  v1.76.0, built by ``.ci/tools`` into ``~/.cache/profkit/bin/jaeger-1.76.0``) with in-memory
  storage, OTLP/HTTP and OTLP/gRPC receivers and the query service, every port a free one;
* :func:`start_prometheus` — Debian's ``prometheus`` with a 1 s scrape interval, storage in a
  temporary directory and targets from a file (``add_target`` adds one while it runs).

Both take tests/support.py's ``start_process`` (so the process is reaped at teardown); the
``jaeger`` and ``prometheus`` fixtures below are module-scoped and use :class:`support.Proc`.
A missing server is a failure with the install hint, never a skip.
"""
import json
import os
import shutil
import tempfile
import urllib.parse
import urllib.request

import pytest

from support import Proc, built_tool, free_port, wait_until

JAEGER_VERSION = "1.76.0"

JAEGER_CONFIG = """\
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
    logs:
      level: warn
extensions:
  jaeger_query:
    storage:
      traces: mem
    enable_tracing: false
    http:
      endpoint: 127.0.0.1:{query_http}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
  jaeger_storage:
    backends:
      mem:
        memory:
          max_traces: 100000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{otlp_grpc}
      http:
        endpoint: 127.0.0.1:{otlp_http}
processors:
  batch:
    timeout: 200ms
exporters:
  jaeger_storage_exporter:
    trace_storage: mem
"""


class Server:
    """A started server: ``url`` (its query/API URL), ``proc`` (a support.Proc), ``dir`` (its temp dir)."""

    def __init__(self, proc, url, directory, **extra):
        self.proc, self.url, self.dir = proc, url, directory
        self.__dict__.update(extra)

    def stop(self):
        self.proc.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def jaeger_binary():
    path = built_tool("jaeger", JAEGER_VERSION)
    if path is None:
        pytest.fail(f"jaeger {JAEGER_VERSION} is not built: run `bash .ci/tools` (it builds "
                    f"~/.cache/profkit/bin/jaeger-{JAEGER_VERSION} from the Go module proxy)")
    return path


def _proc(*argv):
    return Proc(list(argv))


def start_jaeger(start=_proc):
    """Jaeger with in-memory storage; ``.url`` the query API, ``.otlp_http`` the OTLP/HTTP base URL
    (``/v1/traces`` is appended by OTLP exporters), ``.otlp_grpc`` host:port."""
    binary = jaeger_binary()
    d = tempfile.mkdtemp(prefix="profkit-jaeger-")
    ports = {k: free_port() for k in ("query_http", "query_grpc", "otlp_grpc", "otlp_http")}
    cfg = os.path.join(d, "config.yaml")
    with open(cfg, "w") as fh:
        fh.write(JAEGER_CONFIG.format(**ports))
    proc = start(binary, "--config", cfg)
    url = f"http://127.0.0.1:{ports['query_http']}"
    proc.wait_for(lambda: _answers(url + "/api/v3/services"), 60, "jaeger's query API")
    otlp = f"http://127.0.0.1:{ports['otlp_http']}"
    proc.wait_for(lambda: _answers(otlp + "/v1/traces", b'{"resourceSpans":[]}'), 30, "jaeger's OTLP receiver")
    return Server(proc, url, d, otlp_http=otlp, otlp_grpc=f"127.0.0.1:{ports['otlp_grpc']}")


def _answers(url, body=None):
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"} if body else {})
    with urllib.request.urlopen(req, timeout=2) as r:
        return 200 <= r.status < 300


PROMETHEUS_CONFIG = """\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: file
    scrape_interval: 1s
    file_sd_configs:
      - files: ["{targets}"]
        refresh_interval: 1s
"""


def start_prometheus(start=_proc):
    """Prometheus scraping every 1 s the targets of ``add_target(address, job, **labels)``."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: apt-get install prometheus (tests/install-tools.sh does)")
    d = tempfile.mkdtemp(prefix="profkit-prometheus-")
    targets = os.path.join(d, "targets.json")
    with open(targets, "w") as fh:
        fh.write("[]")
    cfg = os.path.join(d, "prometheus.yml")
    with open(cfg, "w") as fh:
        fh.write(PROMETHEUS_CONFIG.format(targets=targets))
    port = free_port()
    proc = start(binary, f"--config.file={cfg}", f"--storage.tsdb.path={d}/data", f"--web.listen-address=127.0.0.1:{port}",
                 "--log.level=warn", "--storage.tsdb.retention.time=1d")
    url = f"http://127.0.0.1:{port}"
    proc.wait_for(lambda: _answers(url + "/-/ready"), 60, "prometheus to be ready")
    server = Server(proc, url, d, targets_file=targets, targets=[])

    def add_target(address, job, **labels):
        server.targets.append({"targets": [address], "labels": {"job": job, **labels}})
        tmp = targets + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(server.targets, fh)
        os.replace(tmp, targets)

    def wait_scraped(job, timeout=30):
        def up():
            q = urllib.parse.urlencode({"query": f'up{{job="{job}"}} == 1'})
            with urllib.request.urlopen(f"{url}/api/v1/query?{q}", timeout=2) as r:
                return json.load(r)["data"]["result"]
        return wait_until(up, timeout, f"prometheus to scrape job {job}", interval=0.3)

    server.add_target, server.wait_scraped = add_target, wait_scraped
    return server


@pytest.fixture(scope="module")
def jaeger():
    server = start_jaeger()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def prometheus():
    server = start_prometheus()
    try:
        yield server
    finally:
        server.stop()



def otlp_json(spans):
    """An OTLP/JSON ExportTraceServiceRequest of ``spans``: dicts with service, trace_id (32 hex),
    span_id (16 hex), parent ('' for a root), name, start and end (ns since the epoch)."""
    by_service = {}
    for s in spans:
        by_service.setdefault(s["service"], []).append(
            {"traceId": s["trace_id"], "spanId": s["span_id"], "parentSpanId": s.get("parent", ""), "name": s["name"],
             "kind": 2, "startTimeUnixNano": str(s["start"]), "endTimeUnixNano": str(s["end"])})
    return {"resourceSpans": [{"resource": {"attributes": [{"key": "service.name", "value": {"stringValue": svc}}]},
                               "scopeSpans": [{"scope": {"name": "profkit-tests"}, "spans": items}]}
                              for svc, items in by_service.items()]}


def post_spans(otlp_http, spans, chunk=2000):
    """Send ``spans`` to an OTLP/HTTP receiver (JSON), ``chunk`` spans a request."""
    for i in range(0, len(spans), chunk):
        body = json.dumps(otlp_json(spans[i:i + chunk])).encode()
        req = urllib.request.Request(otlp_http + "/v1/traces", data=body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as r:
            assert 200 <= r.status < 300, r.status

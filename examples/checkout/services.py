#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A checkout path for profkit: gateway → checkout service → payment service, with SQLite,
instrumented as a real service chain is.

    services.py up [--bad-deploy] [--missing-index] [--stall-every N [--stall-ms MS]] [--otlp URL] [--port P]
    services.py gateway|checkout|payment --port P [...]     # one service (what `up` starts)

Every service is its own process on 127.0.0.1 (so one can be profiled alone), a Flask app served
by werkzeug's threaded server, and exposes:

* Prometheus metrics at ``/metrics`` (the ``prometheus-client`` package): ``http_requests_total``
  (counter) and ``http_request_duration_seconds`` (histogram), both labelled ``route`` and
  ``status``, plus the process collector (``process_cpu_seconds_total``, ``process_resident_memory_bytes``…);
* OpenTelemetry traces (the SDK, with the Flask, requests and sqlite3 instrumentation packages:
  the server span of each request, the HTTP client span of each call to the next service, a span
  per SQL statement; context propagated across the services by W3C ``traceparent``), exported
  over OTLP/HTTP to ``--otlp URL`` (e.g. Jaeger's ``http://127.0.0.1:4318``); resource
  attributes ``service.name`` (gateway, checkout, payment) and ``process.pid``.

``up`` prints ``{"gateway": URL, "checkout": URL, "payment": URL, "gateway_pid": N,
"checkout_pid": N, "payment_pid": N, "bad_deploy": bool, ...}`` once all answer /health, and
stops them on SIGTERM/SIGINT (flushing their spans).

GET /checkout?customer=N on the gateway is forwarded to the checkout service, which
``load_cart`` (indexed SQLite query), ``price_cart`` (a little CPU), ``charge_payment`` (an HTTP
call to the payment service, ~5 ms) and ``record_order`` (SQLite insert).

Regressions, each its own switch:

* **the bad deploy** (``--bad-deploy``): checkout also calls ``verify_payment`` — an extra
  *synchronous* call to the payment service's /verify, which looks the payment up by reference
  in a table without an index for that column and waits on a (simulated) ledger lock: about
  150 ms, and 800 ms for one call in 20. p99 of the checkout path then breaches 500 ms;
* **a missing index** (``--missing-index``): the checkout service's cart table loses its index,
  so ``load_cart``'s SELECT scans every row: a slower query in checkout's own database;
* **an intermittent stall** (``--stall-every N``): one payment in N waits ``--stall-ms`` (300 ms)
  for the bank (the ``bank.authorize`` span of the payment service).
"""
import argparse
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

HERE = os.path.abspath(__file__)


# -- shared plumbing: Flask, metrics, traces ---------------------------------------------------
def telemetry(service, otlp):
    """Set up OpenTelemetry (traces to ``otlp`` when given) and instrument requests and sqlite3
    (before any connection is made); returns the tracer provider."""
    from opentelemetry import trace
    from opentelemetry.instrumentation.requests import RequestsInstrumentor
    from opentelemetry.instrumentation.sqlite3 import SQLite3Instrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service, "process.pid": os.getpid()}))
    if otlp:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp.rstrip("/") + "/v1/traces"),
                                                       schedule_delay_millis=200, max_export_batch_size=512))
    trace.set_tracer_provider(provider)
    RequestsInstrumentor().instrument()
    SQLite3Instrumentor().instrument()
    return provider


def make_app(service, routes):
    """A Flask app with ``routes`` (path → function of the query dict returning (status, body)),
    /health, /metrics and the RED metrics of every request."""
    from flask import Flask, Response, jsonify, request
    from opentelemetry.instrumentation.flask import FlaskInstrumentor
    from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

    app = Flask(service)
    requests_total = Counter("http_requests_total", "HTTP requests", ["route", "status"])
    duration = Histogram("http_request_duration_seconds", "HTTP request duration", ["route", "status"],
                         buckets=(.005, .01, .025, .05, .075, .1, .15, .2, .3, .5, .75, 1.0, 1.5, 2.5, 5.0, 10.0))

    def handler(fn):
        def view():
            t0 = time.perf_counter()
            try:
                status, body = fn(dict(request.args))
            except Exception as e:  # an example service: report, don't die
                status, body = 500, {"error": f"{type(e).__name__}: {e}"}
            route = request.url_rule.rule if request.url_rule is not None else "unmatched"
            requests_total.labels(route, str(status)).inc()
            duration.labels(route, str(status)).observe(time.perf_counter() - t0)
            return jsonify(body), status
        return view

    for path, fn in dict(routes, **{"/health": lambda q: (200, {"status": "ok", "pid": os.getpid()})}).items():
        app.add_url_rule(path, path, handler(fn))
    app.add_url_rule("/metrics", "metrics", lambda: Response(generate_latest(), mimetype=CONTENT_TYPE_LATEST))
    FlaskInstrumentor().instrument_app(app, excluded_urls="health,metrics")
    return app


def db_connect(path):
    """A connection to an example database. Durability is off (no fsync per commit): the example
    measures the service's code, not the disk of a shared CI machine."""
    conn = sqlite3.connect(path, timeout=30)
    conn.execute("PRAGMA synchronous=OFF")
    return conn


def query(db, sql, args=(), write=False):
    """One statement on a fresh connection, through a cursor (what the sqlite3 instrumentation
    traces: a span per statement; ``Connection.execute`` and ``with conn`` bypass it)."""
    conn = db_connect(db)
    try:
        cur = conn.cursor()
        cur.execute(sql, args)
        rows = cur.fetchall()
        if write:
            conn.commit()
        return rows
    finally:
        conn.close()


def serve(port, app, provider):
    from werkzeug.serving import make_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = make_server("127.0.0.1", port, app, threaded=True)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *a: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
    finally:
        provider.shutdown()  # flush the spans not yet exported


def call(base, path, timeout=10.0):
    """GET base+path (requests, so the call is a client span and carries the trace context)."""
    import requests

    resp = requests.get(base + path, timeout=timeout)
    return resp.status_code, resp.json() if resp.content else {}


# -- payment service ---------------------------------------------------------------------------
def payment_main(port, db, otlp, stall_every, stall_ms=300):
    provider = telemetry("payment", otlp)
    from opentelemetry import trace

    tracer = trace.get_tracer("checkout-example")
    conn = db_connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    # `reference` deliberately has no index: /verify scans the table.
    conn.execute("CREATE TABLE IF NOT EXISTS payments (id INTEGER PRIMARY KEY, reference TEXT, amount REAL, ts REAL)")
    if conn.execute("SELECT COUNT(*) FROM payments").fetchone()[0] == 0:
        conn.executemany("INSERT INTO payments (reference, amount, ts) VALUES (?, ?, 0)",
                         ((f"seed-{i}", i % 97) for i in range(20000)))
    conn.commit()
    conn.close()
    lock = threading.Lock()
    counter = [0, 0]

    def bank_authorize():
        """The bank's answer: ~5 ms; with --stall-every N, one call in N stalls --stall-ms (300 ms)."""
        with tracer.start_as_current_span("bank.authorize"):
            with lock:
                counter[1] += 1
                stall = bool(stall_every) and counter[1] % stall_every == 0
            time.sleep(stall_ms / 1000.0 if stall else 0.005)

    def charge(q):
        bank_authorize()
        ref = f"pay-{time.monotonic_ns()}-{threading.get_ident()}"
        with lock:
            query(db, "INSERT INTO payments (reference, amount, ts) VALUES (?, ?, ?)",
                  (ref, float(q.get("amount", 0)), time.time()), write=True)
        return 200, {"reference": ref}

    def verify(q):
        rows = query(db, "SELECT id, amount FROM payments WHERE reference = ?", (q.get("reference", ""),))
        with lock:
            counter[0] += 1
            slow = counter[0] % 20 == 0
        time.sleep(0.8 if slow else 0.15)  # waiting for the ledger lock (simulated)
        return 200, {"verified": bool(rows)}

    serve(port, make_app("payment", {"/charge": charge, "/verify": verify}), provider)


# -- checkout service (the one to profile) -----------------------------------------------------
def load_cart(db, customer):
    """The customer's cart: an indexed query (a full scan with --missing-index)."""
    return query(db, "SELECT sku, qty, price FROM cart_items WHERE customer_id = ? ORDER BY sku", (customer,))


def price_cart(items):
    """Total with a per-line discount rule (a little CPU)."""
    total = 0.0
    for sku, qty, price in items:
        discount = 0.0
        for step in range(200):
            discount += ((sku * 31 + step) % 7) * 0.0001
        total += qty * price * (1.0 - min(discount, 0.2))
    return round(total, 2)


def charge_payment(payment_url, amount):
    status, body = call(payment_url, f"/charge?amount={amount}")
    if status != 200:
        raise RuntimeError(f"payment failed: {status}")
    return body["reference"]


def verify_payment(payment_url, reference):
    """The bad deploy's extra synchronous call: waits for the payment service to re-check the payment."""
    status, body = call(payment_url, f"/verify?reference={urllib.parse.quote(reference)}")
    return status == 200 and body.get("verified")


def record_order(db, customer, amount, reference):
    query(db, "INSERT INTO orders (customer_id, amount, reference) VALUES (?, ?, ?)", (customer, amount, reference),
          write=True)


def handle_checkout(db, payment_url, bad_deploy, q):
    customer = int(q.get("customer", "1")) % 1000
    items = load_cart(db, customer)
    amount = price_cart(items)
    reference = charge_payment(payment_url, amount)
    if bad_deploy:
        verify_payment(payment_url, reference)
    record_order(db, customer, amount, reference)
    return 200, {"customer": customer, "amount": amount, "reference": reference}


#: Carts in the checkout database: 1000 real customers' plus old ones, so that a scan costs.
CART_ROWS = 400_000


def checkout_main(port, db, payment_url, bad_deploy, missing_index, otlp):
    provider = telemetry("checkout", otlp)
    with db_connect(db) as c:
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("CREATE TABLE IF NOT EXISTS cart_items (customer_id INTEGER, sku INTEGER, qty INTEGER, price REAL)")
        c.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, customer_id INTEGER, amount REAL, reference TEXT)")
        if c.execute("SELECT COUNT(*) FROM cart_items").fetchone()[0] == 0:
            c.executemany("INSERT INTO cart_items VALUES (?, ?, ?, ?)",
                          ((cust, cust * 7 + k, 1 + k % 3, 5.0 + (cust + k) % 40)
                           for cust in range(CART_ROWS // 3) for k in range(3)))
        if missing_index:
            c.execute("DROP INDEX IF EXISTS cart_by_customer")
        else:
            c.execute("CREATE INDEX IF NOT EXISTS cart_by_customer ON cart_items (customer_id)")
    serve(port, make_app("checkout", {"/checkout": lambda q: handle_checkout(db, payment_url, bad_deploy, q),
                                      "/health": lambda q: (200, {"status": "ok", "pid": os.getpid(),
                                                                  "bad_deploy": bad_deploy})}), provider)


# -- gateway -----------------------------------------------------------------------------------
def gateway_main(port, checkout_url, otlp):
    provider = telemetry("gateway", otlp)

    def forward(q):
        return call(checkout_url, "/checkout?" + urllib.parse.urlencode(q), timeout=30.0)

    serve(port, make_app("gateway", {"/checkout": forward}), provider)


# -- up: all three -----------------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_health(url, proc, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"a service exited at start (status {proc.returncode})")
        try:
            return json.load(urllib.request.urlopen(url + "/health", timeout=1))
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer /health")


def up(args):
    tmp = tempfile.mkdtemp(prefix="checkout-example-")
    ports = {"payment": free_port(), "checkout": free_port(), "gateway": args.port or free_port()}
    url = {k: f"http://127.0.0.1:{p}" for k, p in ports.items()}
    otlp = ["--otlp", args.otlp] if args.otlp else []
    argv = {"payment": ["payment", "--db", os.path.join(tmp, "payment.db")] + otlp
            + (["--stall-every", str(args.stall_every), "--stall-ms", str(args.stall_ms)] if args.stall_every else []),
            "checkout": ["checkout", "--db", os.path.join(tmp, "shop.db"), "--payment-url", url["payment"]] + otlp
            + (["--bad-deploy"] if args.bad_deploy else []) + (["--missing-index"] if args.missing_index else []),
            "gateway": ["gateway", "--checkout-url", url["checkout"]] + otlp}
    procs = {}

    def stop(*_):
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
        for p in procs.values():
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for role in ("payment", "checkout", "gateway"):
            procs[role] = subprocess.Popen([sys.executable, HERE] + argv[role] + ["--port", str(ports[role])])
        for role in ("payment", "checkout", "gateway"):
            wait_health(url[role], procs[role])
        print(json.dumps({"gateway": url["gateway"], "checkout": url["checkout"], "payment": url["payment"],
                          "gateway_pid": procs["gateway"].pid, "checkout_pid": procs["checkout"].pid,
                          "payment_pid": procs["payment"].pid, "bad_deploy": args.bad_deploy,
                          "missing_index": args.missing_index, "stall_every": args.stall_every,
                          "metrics": {role: f"127.0.0.1:{p}" for role, p in ports.items()}}), flush=True)
        while all(p.poll() is None for p in procs.values()):
            time.sleep(0.5)
    finally:
        stop()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("role", choices=["up", "gateway", "checkout", "payment"])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--db")
    ap.add_argument("--payment-url")
    ap.add_argument("--checkout-url")
    ap.add_argument("--otlp", default=None, help="OTLP/HTTP endpoint base for traces (e.g. http://127.0.0.1:4318)")
    ap.add_argument("--bad-deploy", action="store_true", help="checkout: the extra synchronous verify_payment call")
    ap.add_argument("--missing-index", action="store_true", help="checkout: the cart table without its index")
    ap.add_argument("--stall-every", type=int, default=0, metavar="N", help="payment: one bank call in N stalls")
    ap.add_argument("--stall-ms", type=int, default=300, metavar="MS", help="how long a stalled bank call waits (300)")
    args = ap.parse_args()
    if args.role == "up":
        up(args)
    elif args.role == "payment":
        payment_main(args.port, args.db, args.otlp, args.stall_every, args.stall_ms)
    elif args.role == "checkout":
        checkout_main(args.port, args.db, args.payment_url, args.bad_deploy, args.missing_index, args.otlp)
    else:
        gateway_main(args.port, args.checkout_url, args.otlp)


if __name__ == "__main__":
    main()

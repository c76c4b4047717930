#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""A checkout path for profkit: gateway → checkout service → payment service, with SQLite.

    services.py up [--bad-deploy] [--port GATEWAY_PORT]     # all three, one JSON line, until SIGTERM
    services.py gateway|checkout|payment --port P [...]     # one service (what `up` starts)

Standard library only; every service binds 127.0.0.1 and is its own process (so the checkout
service can be profiled alone). ``up`` prints ``{"gateway": URL, "checkout_pid": N,
"payment_pid": N, "gateway_pid": N, "bad_deploy": bool}`` once all answer /health, and stops them
on SIGTERM/SIGINT.

GET /checkout?customer=N on the gateway is forwarded to the checkout service, which
``load_cart`` (indexed SQLite query), ``price_cart`` (a little CPU), ``charge_payment`` (an HTTP
call to the payment service, ~5 ms) and ``record_order`` (SQLite insert).

**The bad deploy** (``--bad-deploy``): checkout also calls ``verify_payment`` — an extra
*synchronous* call to the payment service's /verify, which looks the payment up by reference
in a table without an index for that column and waits on a (simulated) ledger lock: about
150 ms, and 800 ms for one call in 20. p99 of the checkout path then breaches 500 ms.
"""
import argparse
import http.client
import json
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
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.abspath(__file__)


# -- shared plumbing ---------------------------------------------------------------------------
class Handler(BaseHTTPRequestHandler):
    """Routes GET paths to ``self.server.routes``; JSON in and out; no access log."""

    def do_GET(self):
        parts = urllib.parse.urlsplit(self.path)
        route = self.server.routes.get(parts.path)
        if route is None:
            return self._send(404, {"error": "not found"})
        try:
            status, body = route(dict(urllib.parse.parse_qsl(parts.query)))
        except Exception as e:  # an example service: report, don't die
            status, body = 500, {"error": f"{type(e).__name__}: {e}"}
        self._send(status, body)

    def _send(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        # A load generator closing its connections at the end is not worth a traceback.
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)


def db_connect(path):
    """A connection to an example database. Durability is off (no fsync per commit): the example
    measures the service's code, not the disk of a shared CI machine."""
    conn = sqlite3.connect(path, timeout=30)
    conn.execute("PRAGMA synchronous=OFF")
    return conn


def serve(port, routes):
    server = Server(("127.0.0.1", port), Handler)
    server.routes = dict(routes, **{"/health": lambda q: (200, {"status": "ok", "pid": os.getpid()})})
    signal.signal(signal.SIGTERM, lambda *a: threading.Thread(target=server.shutdown).start())
    server.serve_forever()


def call(base, path, timeout=10.0):
    """GET base+path on a fresh connection; (status, json body)."""
    u = urllib.parse.urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


# -- payment service ---------------------------------------------------------------------------
def payment_main(port, db):
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
    counter = [0]

    def charge(q):
        time.sleep(0.005)  # the bank
        ref = f"pay-{time.monotonic_ns()}-{threading.get_ident()}"
        with lock, db_connect(db) as c:
            c.execute("INSERT INTO payments (reference, amount, ts) VALUES (?, ?, ?)", (ref, float(q.get("amount", 0)), time.time()))
        return 200, {"reference": ref}

    def verify(q):
        with db_connect(db) as c:
            row = c.execute("SELECT id, amount FROM payments WHERE reference = ?", (q.get("reference", ""),)).fetchone()
        with lock:
            counter[0] += 1
            slow = counter[0] % 20 == 0
        time.sleep(0.8 if slow else 0.15)  # waiting for the ledger lock (simulated)
        return 200, {"verified": row is not None}

    serve(port, {"/charge": charge, "/verify": verify})


# -- checkout service (the one to profile) -----------------------------------------------------
def load_cart(db, customer):
    """The customer's cart: an indexed query."""
    with db_connect(db) as c:
        return c.execute("SELECT sku, qty, price FROM cart_items WHERE customer_id = ?", (customer,)).fetchall()


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
    with db_connect(db) as c:
        c.execute("INSERT INTO orders (customer_id, amount, reference) VALUES (?, ?, ?)", (customer, amount, reference))


def handle_checkout(db, payment_url, bad_deploy, q):
    customer = int(q.get("customer", "1")) % 1000
    items = load_cart(db, customer)
    amount = price_cart(items)
    reference = charge_payment(payment_url, amount)
    if bad_deploy:
        verify_payment(payment_url, reference)
    record_order(db, customer, amount, reference)
    return 200, {"customer": customer, "amount": amount, "reference": reference}


def checkout_main(port, db, payment_url, bad_deploy):
    with db_connect(db) as c:
        c.execute("PRAGMA journal_mode=WAL")
        c.execute("CREATE TABLE IF NOT EXISTS cart_items (customer_id INTEGER, sku INTEGER, qty INTEGER, price REAL)")
        c.execute("CREATE INDEX IF NOT EXISTS cart_by_customer ON cart_items (customer_id)")
        c.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, customer_id INTEGER, amount REAL, reference TEXT)")
        if c.execute("SELECT COUNT(*) FROM cart_items").fetchone()[0] == 0:
            c.executemany("INSERT INTO cart_items VALUES (?, ?, ?, ?)",
                          ((cust, cust * 7 + k, 1 + k % 3, 5.0 + (cust + k) % 40) for cust in range(1000) for k in range(3)))
    serve(port, {"/checkout": lambda q: handle_checkout(db, payment_url, bad_deploy, q),
                 "/health": lambda q: (200, {"status": "ok", "pid": os.getpid(), "bad_deploy": bad_deploy})})


# -- gateway -----------------------------------------------------------------------------------
def gateway_main(port, checkout_url):
    def forward(q):
        return call(checkout_url, "/checkout?" + urllib.parse.urlencode(q), timeout=30.0)

    serve(port, {"/checkout": forward})


# -- up: all three -----------------------------------------------------------------------------
def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_health(url, proc, timeout=20.0):
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
    argv = {"payment": ["payment", "--db", os.path.join(tmp, "payment.db")],
            "checkout": ["checkout", "--db", os.path.join(tmp, "shop.db"), "--payment-url", url["payment"]]
            + (["--bad-deploy"] if args.bad_deploy else []),
            "gateway": ["gateway", "--checkout-url", url["checkout"]]}
    procs = {}

    def stop(*_):
        for p in procs.values():
            if p.poll() is None:
                p.terminate()
        for p in procs.values():
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        for role in ("payment", "checkout", "gateway"):
            procs[role] = subprocess.Popen([sys.executable, HERE] + argv[role] + ["--port", str(ports[role])])
            wait_health(url[role], procs[role])
        print(json.dumps({"gateway": url["gateway"], "checkout": url["checkout"], "payment": url["payment"],
                          "gateway_pid": procs["gateway"].pid, "checkout_pid": procs["checkout"].pid,
                          "payment_pid": procs["payment"].pid, "bad_deploy": args.bad_deploy}), flush=True)
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
    ap.add_argument("--bad-deploy", action="store_true", help="checkout: the extra synchronous verify_payment call")
    args = ap.parse_args()
    if args.role == "up":
        up(args)
    elif args.role == "payment":
        payment_main(args.port, args.db)
    elif args.role == "checkout":
        checkout_main(args.port, args.db, args.payment_url, args.bad_deploy)
    else:
        gateway_main(args.port, args.checkout_url)


if __name__ == "__main__":
    main()

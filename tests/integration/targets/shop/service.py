# SPDX-License-Identifier: Apache-2.0
"""A small HTTP service of profkit's own, with a known culprit per case (issue 17).

    python service.py --port PORT [--culprit none|render|slow] [--downstream PORT] [--pool N]
                      [--role api|downstream] [--delay SECONDS] [--leak-kib N]

Prints ``ready`` once it listens on 127.0.0.1:PORT. Every request goes through handle_request();
what it does depends on --culprit:

* ``none``: price_items(), a little CPU in the application's own code;
* ``render``: also render_report(), whose time is spent inside the standard library's json
  encoder (the application function is the culprit, the library frames are only where it runs);
* ``slow``: also fetch_stock(), which blocks on a read from the downstream service
  (``--role downstream`` answers after --delay seconds).

``--pool N`` starts N worker threads that wait on an empty queue (idle pool workers, as in a
service whose pool is bigger than its load); the main thread waits in serve_forever's select.
``--leak-kib N`` makes every request keep N KiB of native memory (rows of an in-memory SQLite
database: malloc from a C library, never freed).
"""
import argparse
import http.client
import json
import queue
import sqlite3
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

OPTIONS = argparse.Namespace()
_jobs: "queue.Queue" = queue.Queue()
_kept = []
_lock = threading.Lock()


def price_items(n=300):
    total = 0.0
    for i in range(n):
        total += (i * 31 % 17) * 1.07
    return total


def render_report(rows=1500):
    data = [{"id": i, "name": f"item-{i}", "tags": ["red", "green", "blue"], "price": i * 1.5, "stock": i % 13}
            for i in range(rows)]
    return json.dumps(data, indent=1, sort_keys=True)


def fetch_stock():
    conn = http.client.HTTPConnection("127.0.0.1", OPTIONS.downstream, timeout=30)
    try:
        conn.request("GET", "/stock")
        return conn.getresponse().read()
    finally:
        conn.close()


def keep_native_memory(kib):
    # SQLite (a C library) keeps the row in pages it mallocs itself: native memory that grows
    # with every request, not Python objects
    if not _kept:
        _kept.append(sqlite3.connect(":memory:", check_same_thread=False))
        _kept[0].execute("create table kept (data blob)")
    with _lock:
        _kept[0].execute("insert into kept values (randomblob(?))", (kib * 1024,))


def handle_request(path):
    if OPTIONS.role == "downstream":
        time.sleep(OPTIONS.delay)
        return b"42"
    total = price_items()
    if OPTIONS.culprit == "render":
        render_report()
    elif OPTIONS.culprit == "slow":
        fetch_stock()
    if OPTIONS.leak_kib:
        keep_native_memory(OPTIONS.leak_kib)
    return json.dumps({"total": total}).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self):
        body = handle_request(self.path)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def pool_worker():
    while True:
        job = _jobs.get()  # idle: nobody ever submits a job
        job()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--culprit", choices=("none", "render", "slow"), default="none")
    ap.add_argument("--downstream", type=int, default=0)
    ap.add_argument("--pool", type=int, default=0)
    ap.add_argument("--role", choices=("api", "downstream"), default="api")
    ap.add_argument("--delay", type=float, default=0.05)
    ap.add_argument("--leak-kib", type=int, default=0)
    ap.parse_args(namespace=OPTIONS)
    for i in range(OPTIONS.pool):
        threading.Thread(target=pool_worker, name=f"pool-{i}", daemon=True).start()
    server = ThreadingHTTPServer(("127.0.0.1", OPTIONS.port), Handler)
    server.daemon_threads = True
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()

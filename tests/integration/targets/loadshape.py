# SPDX-License-Identifier: Apache-2.0
"""A loopback HTTP service with a chosen latency shape, for profkit bench's steady-state tests.

    loadshape.py PORT --stall 5:1.2     every 5 s the service stops answering for 1.2 s (a lock held)
    loadshape.py PORT --warmup 500:40   the first 500 requests each take 40 ms more (5 s at 100/s)
    loadshape.py PORT --grow 1.5        each request takes 1.5 ms more per second since the first one
    --base MS                           every request's own work (default 1 ms, CPU-bound)

Prints one line ``{"pid": …, "port": …}`` when it listens. HTTP/1.1 keep-alive, one thread per
connection, Nagle off (no 40 ms delayed-ACK stalls of its own).
"""
import argparse
import http.server
import json
import socketserver
import sys
import threading
import time

LOCK = threading.Lock()
STATE = {"first": None, "count": 0}


def work(ms):
    end = time.perf_counter() + ms / 1000.0
    x = 0
    while time.perf_counter() < end:
        x += 1
    return x


def make_handler(args):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_GET(self):
            now = time.monotonic()
            if STATE["first"] is None:
                STATE["first"] = now
            since = now - STATE["first"]
            STATE["count"] += 1
            nth = STATE["count"]
            with LOCK:  # held for the whole stall by the staller thread
                pass
            extra = 0.0
            if args.warmup and nth <= args.warmup[0]:
                extra = args.warmup[1]
            if args.grow:
                extra = args.grow * since
            if extra:
                time.sleep(extra / 1000.0)
            work(args.base)
            body = b"ok\n"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    return Handler


def staller(period, length):
    while True:
        time.sleep(period - length)
        with LOCK:
            time.sleep(length)


def pair(text):
    a, _, b = text.partition(":")
    return float(a), float(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port", type=int)
    ap.add_argument("--stall", type=pair)
    ap.add_argument("--warmup", type=pair)
    ap.add_argument("--grow", type=float, default=0.0)
    ap.add_argument("--base", type=float, default=1.0)
    args = ap.parse_args()

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        request_queue_size = 1024

    srv = Server(("127.0.0.1", args.port), make_handler(args))
    if args.stall:
        threading.Thread(target=staller, args=args.stall, daemon=True).start()
    print(json.dumps({"pid": __import__("os").getpid(), "port": args.port}), flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    sys.exit(main())

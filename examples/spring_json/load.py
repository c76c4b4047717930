#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Bounded loopback load for the Spring Boot example: JSON documents POSTed to /documents.

    load.py URL SECONDS [--rate N] [--size KB]   N documents a second (default 20) of about KB
                                                 kilobytes (default 16), for SECONDS seconds
    load.py URL --huge MB                        one document of MB megabytes, streamed (chunked)

Loopback only (refuses other hosts); prints one line of figures at the end.
"""
import argparse
import http.client
import json
import sys
import time
import urllib.parse


def document(i: int, kb: int) -> bytes:
    items = [{"sku": f"SKU-{i}-{k}", "qty": k % 7 + 1, "price": round(1.5 + k * 0.25, 2),
              "tags": ["json", "order", f"t{k % 13}"]} for k in range(max(1, kb * 1024 // 80))]
    return json.dumps({"id": i, "customer": f"c{i % 1000}", "items": items}).encode()


def huge(mb: int):
    """One JSON document of ``mb`` megabytes, produced as it is sent."""
    yield b'{"items":['
    chunk = b",".join(b'{"sku":"SKU-%d","qty":%d,"price":%d.5}' % (k, k % 9, k) for k in range(2000))
    sent = 0
    while sent < mb << 20:
        yield (b"," if sent else b"") + chunk
        sent += len(chunk) + 1
    yield b"]}"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("url")
    ap.add_argument("seconds", type=float, nargs="?", default=10.0)
    ap.add_argument("--rate", type=float, default=20.0)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--huge", type=int, default=0, metavar="MB")
    a = ap.parse_args()
    u = urllib.parse.urlsplit(a.url)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        print("load.py: loopback URLs only", file=sys.stderr)
        return 2
    path = (u.path.rstrip("/") or "") + "/documents"
    headers = {"Content-Type": "application/json"}
    if a.huge:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=300)
        try:
            conn.request("POST", path, body=huge(a.huge), headers=headers, encode_chunked=True)
            status = conn.getresponse().status
        except (OSError, http.client.HTTPException) as e:
            print(f"huge document of {a.huge} MB: no answer ({type(e).__name__}: the service died?)")
            return 0
        print(f"huge document of {a.huge} MB: HTTP {status}")
        return 0
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
    ok = errors = 0
    start = time.monotonic()
    i = 0
    while time.monotonic() - start < a.seconds:
        due = start + i / a.rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        try:
            conn.request("POST", path, body=document(i, a.size), headers=headers)
            r = conn.getresponse()
            r.read()
            ok += r.status == 200
            errors += r.status != 200
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
            time.sleep(0.2)
        i += 1
    print(f"{ok} documents in {time.monotonic() - start:.1f} s, {errors} errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())

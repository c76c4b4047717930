# SPDX-License-Identifier: Apache-2.0
"""Example web API for profkit: a product catalogue served from an in-memory list.

Behind gunicorn: see serve.sh.  Quick use: python app.py --port 8000 [--leak].
Known hot function: score_items().  Leak site (only with --leak / PROFKIT_EXAMPLE_LEAK=1):
remember_response().  examples/README.md gives their line numbers; a test keeps them true.
"""
import argparse
import heapq
import math
import os
import random

from flask import Flask, abort, jsonify, request
from werkzeug.exceptions import HTTPException

ITEM_COUNT = 10_000
MAX_LIMIT = 1_000
CATEGORIES = {"books": "book", "garden": "planter", "kitchen": "pan", "music": "speaker",
              "outdoor": "tent", "tools": "drill", "toys": "kite", "video": "camera"}
WORDS = ("red", "small", "steel", "oak", "quiet", "smart", "classic", "pro", "mini", "eco",
         "deluxe", "travel", "compact", "heavy", "bright", "soft")

# Off unless asked for: gunicorn owns the command line, so the switch is also an env variable.
LEAK = os.environ.get("PROFKIT_EXAMPLE_LEAK", "") == "1"
_REMEMBERED = []  # grows forever when LEAK is on
_remembered_bytes = 0


def build_items(n=ITEM_COUNT, seed=42):
    """The catalogue: n product dicts, the same on every start."""
    rng = random.Random(seed)
    items = []
    for i in range(n):
        category = rng.choice(sorted(CATEGORIES))
        words = " ".join(rng.choice(WORDS) for _ in range(3))
        items.append({
            "id": i,
            "name": f"{words} {CATEGORIES[category]}",
            "category": category,
            "price": round(rng.uniform(2, 500), 2),
            "stock": rng.randrange(0, 200),
            "ratings": [rng.randrange(1, 6) for _ in range(rng.randrange(4, 24))],
        })
    return items


def score_items(items, query=""):
    """Rank every item for the request: rating confidence, price, stock and text match.

    Deliberately plain Python over the whole catalogue, so it is where the CPU goes.
    """
    terms = query.lower().split()
    scored = []
    for item in items:
        ratings = item["ratings"]
        n = len(ratings)
        mean = 0.0
        for r in ratings:
            mean += r
        mean /= n
        var = 0.0
        for r in ratings:
            var += (r - mean) ** 2
        # Lower bound of the mean rating; the prior variance of 1 stops a few 5s from looking certain.
        confidence = mean - 1.96 * math.sqrt((var / n + 1.0) / n)
        value = 1.0 / (1.0 + math.log1p(item["price"]))
        availability = 1.0 - math.exp(-item["stock"] / 25.0)
        relevance = 1.0
        if terms:
            name = item["name"]
            for term in terms:
                if term in name:
                    relevance += 1.0
                elif term == item["category"]:
                    relevance += 0.5
        scored.append((confidence * 2.0 + value + availability) * relevance)
    return scored


def remember_response(payload):
    """The leak: keep a text copy of every response in a module-level list, forever."""
    global _remembered_bytes
    # repr() builds the string in C, so this line is the innermost Python frame of the allocation
    # and allocation profilers (memray, tracemalloc) blame it; json.dumps would blame json/encoder.py.
    _REMEMBERED.append(repr(payload))  # leak site; examples/README.md cites this line
    _remembered_bytes += len(_REMEMBERED[-1])


ITEMS = build_items()
app = Flask(__name__)


@app.errorhandler(HTTPException)
def http_error(exc):
    return jsonify(error=exc.description), exc.code


@app.get("/health")
def health():
    # The pid is the process that serves requests: under gunicorn, a worker, not the master.
    return jsonify(status="ok", pid=os.getpid(), items=len(ITEMS), leak=LEAK)


@app.get("/items")
def items():
    limit = request.args.get("limit", "20")
    if not limit.isdigit() or not 1 <= int(limit) <= MAX_LIMIT:
        abort(400, description=f"limit must be an integer from 1 to {MAX_LIMIT}")
    query = request.args.get("q", "")
    scores = score_items(ITEMS, query)
    top = heapq.nlargest(int(limit), range(len(ITEMS)), key=scores.__getitem__)
    payload = {
        "total": len(ITEMS),
        "count": len(top),
        "query": query,
        "items": [dict(ITEMS[i], score=round(scores[i], 4)) for i in top],
    }
    if LEAK:
        remember_response(payload)
    return jsonify(payload)


@app.get("/debug/leak-size")
def leak_size():
    return jsonify(leak=LEAK, retained=len(_REMEMBERED), retained_bytes=_remembered_bytes,
                   pid=os.getpid())


def main(argv=None):
    global LEAK
    parser = argparse.ArgumentParser(description="profkit example API on the Flask development server")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--leak", action="store_true", help="retain every response (unbounded growth)")
    args = parser.parse_args(argv)
    LEAK = LEAK or args.leak
    # Loopback only: this is a profiling target, not a service.
    app.run(host="127.0.0.1", port=args.port, threaded=True)


if __name__ == "__main__":
    main()

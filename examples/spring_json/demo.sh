#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The three cases of the Spring Boot example, each under bounded loopback load, with profkit's
# conclusions printed as it prints them (its heap section):
#   1. --leak: every parsed document kept in a static cache → growing, projected to -Xmx, and the
#      heap dump shows the cache's path: static example.spring.DocumentCache.ENTRIES → …
#   2. no leak, same load → steady
#   3. one JSON payload bigger than the heap, with -XX:+HeapDumpOnOutOfMemoryError → the JVM
#      dies of an OutOfMemoryError; profkit reads its dump: not a leak, and what was allocating
#   demo.sh [SECONDS]      (default 30 s a case; env: PROFKIT, default "python3 -m profkit")
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
seconds="${1:-30}"
read -r -a profkit <<< "${PROFKIT:-python3 -m profkit}"
work="$(mktemp -d)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
"$here/build.sh"

start() {  # start NAME ARGS… → sets url and pid
    local log="$work/$1.log"; shift
    JAVA_HEAP=64m "$here/run.sh" "$@" > "$log" 2>&1 &
    pid=$!
    pids+=("$pid")
    for _ in $(seq 300); do
        url="$(grep -o 'http://127.0.0.1:[0-9]*' "$log" | head -1 || true)"
        [ -n "$url" ] && return 0
        kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
        sleep 1
    done
    echo "demo.sh: the service did not start" >&2; exit 1
}

echo "== 1. --leak, $seconds s under load (20 documents/s of 16 KB), with a heap dump"
start leak --leak
python3 "$here/load.py" "$url" "$((seconds + 10))" --rate 20 > /dev/null &
"${profkit[@]}" heap --pid "$pid" -d "$seconds" --heap-dump -o "$work/leak" || true

echo "== 2. no leak, the same load"
start steady --oom-dump "$work"
python3 "$here/load.py" "$url" "$((seconds + 10))" --rate 20 > /dev/null &
"${profkit[@]}" heap --pid "$pid" -d "$seconds" -o "$work/steady" || true

echo "== 3. one 48 MB document into the 64 MB heap (the same service, HeapDumpOnOutOfMemoryError on)"
(sleep 5; python3 "$here/load.py" "$url" --huge 48) &
"${profkit[@]}" heap --pid "$pid" -d 120 --no-allocations -o "$work/huge" || true
wait

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Bench the example REST API (examples/python_api) of a source tree: its baseline latency and
# throughput under wrk, profiled with py-spy, into a run directory.
#   bench.sh SRC_DIR RUN_DIR [SECONDS] [CONNECTIONS]     (default 20 s, 4 connections)
# SRC_DIR is a checkout of the repository (the base or the head of a pull request); profkit itself
# is whatever `python3 -m profkit` runs. Loopback only. Exit status: profkit bench's, except that a
# missed SLO (4) is left to `profkit compare` to report (exit 0, recorded in load.json).
set -euo pipefail
src="$(cd "${1:?usage: bench.sh SRC_DIR RUN_DIR [SECONDS] [CONNECTIONS]}" && pwd)"
run="${2:?usage: bench.sh SRC_DIR RUN_DIR [SECONDS] [CONNECTIONS]}"
secs="${3:-20}"
conns="${4:-4}"
py="${PYTHON:-python3}"
port="$("$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
setsid bash "$src/examples/python_api/serve.sh" --port "$port" >/dev/null 2>&1 &
server=$!
trap 'kill -TERM -- "-$server" 2>/dev/null || kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true' EXIT
worker=""
for _ in $(seq 150); do
    worker="$("$py" -c 'import json, sys, urllib.request
print(json.load(urllib.request.urlopen(sys.argv[1], timeout=1))["pid"])' "http://127.0.0.1:$port/health" 2>/dev/null)" && break
    sleep 0.2
done
[ -n "$worker" ] || { echo "bench.sh: the REST API did not start" >&2; exit 1; }
"$py" -m profkit bench --pid "$worker" --url "http://127.0.0.1:$port/items?limit=20" --duration "$secs" \
    --connections "$conns" --slo 'p99<500ms' --slo 'errors<0.1%' -o "$run" -q || {
    status=$?
    [ "$status" -eq 4 ] || exit "$status"
}
echo "bench.sh: $run/load.json, $run/summary.md, $run/report.html"

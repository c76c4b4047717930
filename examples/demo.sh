#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The README's main job: a real profile of a real service under load, ending in a flame graph.
#   examples/demo.sh [RUN_DIR] [SECONDS]      (default: runs/demo, 10)
# Starts examples/python_api behind gunicorn on a free loopback port, puts bounded load on it
# (examples/load/load.py, loopback only), attaches profkit to the gunicorn master and its worker
# (--children), then stops the service. Open RUN_DIR/flamegraph.svg or RUN_DIR/report.html.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
run_dir="${1:-runs/demo}"
seconds="${2:-10}"
py="$(python3 -c 'import sys; print(sys.executable)')"
port="$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
rm -rf "$run_dir"

bash "$here/python_api/serve.sh" --port "$port" >/dev/null 2>&1 &
server=$!
cleanup() { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
trap cleanup EXIT

for _ in $(seq 100); do
    "$py" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/health', timeout=1)" 2>/dev/null && break
    sleep 0.1
done
"$py" "$here/load/load.py" "http://127.0.0.1:$port/items?limit=20" "$((seconds + 3))" 4 >/dev/null &
load=$!
sleep 1
"$py" -m profkit attach --pid "$server" --children --duration "$seconds" -o "$run_dir"
wait "$load" || true
echo "open $run_dir/flamegraph.svg (or $run_dir/report.html)"

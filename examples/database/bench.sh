#!/usr/bin/env bash
# A write-heavy database benchmark, profiled end to end (see README.md here):
#   a throw-away PostgreSQL cluster (pgcluster.py: unprivileged, loopback only, temp directory),
#   sysbench's prepare to a scale whose indexes do not fit in shared_buffers, then
#   profkit bench: sysbench oltp_write_only (or $SCRIPT) with perf on the backends and the
#   postgres probe sampling the bgwriter, checkpointer and WAL statistics each second.
#
#   bash examples/database/bench.sh [RUN_DIR]      env: TABLES=8 TABLE_SIZE=200000 DURATION=60
#                                                       THREADS=8 SCRIPT=oltp_write_only SHARED_BUFFERS=32MB
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
run="${1:-runs/database-$(date +%Y%m%d-%H%M%S)}"
python="${PYTHON:-python3}"
tables="${TABLES:-8}" size="${TABLE_SIZE:-200000}" duration="${DURATION:-60}" threads="${THREADS:-8}"
script="${SCRIPT:-oltp_write_only}"

info="$(mktemp)"
"$python" "$here/pgcluster.py" up --shared-buffers "${SHARED_BUFFERS:-32MB}" > "$info" &
cluster=$!
trap 'kill "$cluster" 2>/dev/null; wait "$cluster" 2>/dev/null; rm -f "$info"' EXIT
for _ in $(seq 1 240); do [ -s "$info" ] && break; sleep 0.5; done
[ -s "$info" ] || { echo "bench.sh: the PostgreSQL cluster did not start" >&2; exit 1; }
field() { "$python" -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$info" "$1"; }
url="$(field url)" pid="$(field pid)"
export PGPASSFILE="$(field pgpassfile)"
echo "bench.sh: PostgreSQL $(field version) on $url (postmaster $pid); prepare: $tables tables x $size rows" >&2

"$python" -m profkit bench --pid "$pid" --children -c perf --call-graph dwarf -r 49 \
  --load sysbench --url "$url" --load-option "script=$script" --load-option "tables=$tables" \
  --load-option "table_size=$size" --load-option prepare=yes -C "$threads" -d "$duration" \
  --probe "postgres=$url" --warmup auto -o "$run" -q || status=$?

psql "$url" -At -c "SELECT 'indexes ' || pg_size_pretty(sum(pg_indexes_size(c.oid))) || ', tables ' ||
  pg_size_pretty(sum(pg_table_size(c.oid))) || ', shared_buffers ' || current_setting('shared_buffers')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = 'public' AND c.relkind = 'r'" >&2 || true
echo "bench.sh: the run is in $run/ (summary.md, report.html, load.json)" >&2
exit "${status:-0}"

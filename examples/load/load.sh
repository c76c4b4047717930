#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Bounded load with wrk against a loopback URL only.
#   load.sh URL DURATION [CONNECTIONS]
# DURATION: seconds, as 30, 30s or 2m (at most 600 s). CONNECTIONS: default 10, at most 1000.
# Env: WRK_THREADS (default: number of CPUs, never more than CONNECTIONS), LOAD_TIMEOUT (default 5s).
# Prints wrk's summary, then one JSON line (same keys as load.py). Exit 2 on bad arguments.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
die() { echo "load.sh: $1" >&2; [ -z "${2:-}" ] || echo "hint: $2" >&2; exit "${3:-2}"; }

[ $# -ge 2 ] && [ $# -le 3 ] || die "usage: load.sh URL DURATION [CONNECTIONS]"
url="$1"; duration="$2"; conns="${3:-10}"

# Loopback only: parse the host out of the URL and refuse anything else before sending a byte.
case "$url" in
    http://*|https://*) rest="${url#*://}" ;;
    *) die "URL must start with http:// or https://: $url" ;;
esac
authority="${rest%%[/?#]*}"
authority="${authority##*@}"
if [[ "$authority" == \[* ]]; then
    host="${authority%%]*}]"
else
    host="${authority%%:*}"
fi
host="$(printf '%s' "$host" | tr '[:upper:]' '[:lower:]')"
loopback=0
if [ "$host" = localhost ] || [ "$host" = "[::1]" ]; then
    loopback=1
elif [[ "$host" =~ ^127\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$ ]]; then
    loopback=1
    for octet in "${BASH_REMATCH[@]:1}"; do
        [ "$((10#$octet))" -le 255 ] || loopback=0
    done
fi
[ "$loopback" = 1 ] || die "refusing to load '$host': only loopback targets (127.0.0.0/8, localhost, [::1]) are allowed" \
    "start the example locally and point load.sh at http://127.0.0.1:PORT/..."

case "$duration" in
    *[!0-9smSM]*|'') die "DURATION must be seconds (30, 30s) or minutes (2m), not '$duration'" ;;
esac
if [[ "$duration" =~ ^([0-9]+)[sS]?$ ]]; then
    secs="$((10#${BASH_REMATCH[1]}))"
elif [[ "$duration" =~ ^([0-9]+)[mM]$ ]]; then
    secs="$((10#${BASH_REMATCH[1]} * 60))"
else
    die "DURATION must be seconds (30, 30s) or minutes (2m), not '$duration'"
fi
[ "$secs" -ge 1 ] && [ "$secs" -le 600 ] || die "DURATION must be from 1 s to 600 s, not $secs s"
[[ "$conns" =~ ^[0-9]+$ ]] && [ "$((10#$conns))" -ge 1 ] && [ "$((10#$conns))" -le 1000 ] \
    || die "CONNECTIONS must be an integer from 1 to 1000, not '$conns'"
conns="$((10#$conns))"

command -v wrk >/dev/null 2>&1 || die "wrk is not installed" \
    "install it (Debian/Ubuntu: apt-get install wrk) or use: python3 $here/load.py $url $secs $conns" 1
threads="${WRK_THREADS:-$(nproc 2>/dev/null || echo 2)}"
[ "$threads" -le "$conns" ] || threads="$conns"

export LOAD_URL="$url" LOAD_CONNECTIONS="$conns"
exec wrk --threads "$threads" --connections "$conns" --duration "${secs}s" \
    --timeout "${LOAD_TIMEOUT:-5s}" --script "$here/report.lua" "$url"

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The checkout example end to end: bench the good deploy, bench the bad one, compare them.
#   compare.sh [OUT_DIR] [SECONDS]       (default: runs/checkout, 15 s per bench)
# Needs wrk and py-spy (profkit bench --mode wall on the checkout service). Loopback only.
# Exit status: that of `profkit compare ... --fail-on-regression 10` (3 when the bad deploy is caught;
# 4 when its p99 breaks the 500 ms SLO, which it does: a missed SLO wins over a regression).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-runs/checkout}"
secs="${2:-15}"
py="${PYTHON:-python3}"
mkdir -p "$out"
[ ! -e "$out/good" ] && [ ! -e "$out/bad" ] || { echo "compare.sh: $out/good or $out/bad exists; choose another OUT_DIR" >&2; exit 2; }

bench() {  # bench VARIANT [--bad-deploy]
    local variant="$1"; shift
    local info="$out/$variant.services.json"
    "$py" "$here/services.py" up "$@" > "$info" &
    local up_pid=$!
    trap 'kill $up_pid 2>/dev/null || true' RETURN
    for _ in $(seq 100); do [ -s "$info" ] && break; sleep 0.2; done
    [ -s "$info" ] || { echo "compare.sh: the services did not start" >&2; return 1; }
    local gateway checkout
    gateway="$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["gateway"])' "$info")"
    checkout="$("$py" -c 'import json,sys; print(json.load(open(sys.argv[1]))["checkout_pid"])' "$info")"
    echo "== $variant: profkit bench --pid $checkout (checkout service) --url $gateway/checkout --mode wall"
    # A missed SLO exits 4 after writing everything: expected for the bad deploy.
    "$py" -m profkit bench --pid "$checkout" --url "$gateway/checkout?customer=7" --duration "$secs" \
        --connections 4 --mode wall --slo 'p99<500ms' --slo 'errors<1%' -o "$out/$variant" -q || true
    kill "$up_pid" 2>/dev/null || true
    wait "$up_pid" 2>/dev/null || true
}

bench good
bench bad --bad-deploy
echo "== profkit compare $out/good $out/bad"
status=0
"$py" -m profkit compare "$out/good" "$out/bad" -o "$out/compare" --fail-on-regression 10 || status=$?
echo "== $out/compare/comment.md (exit status $status)"
cat "$out/compare/comment.md"
exit "$status"

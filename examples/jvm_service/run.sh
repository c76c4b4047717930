#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Start the example JVM service on loopback; exec, so this script's PID is the JVM's.
#   run.sh [--port P] [--threads N] [--leak] [--leak-bytes B]
# Env: BUILD_DIR (classes; built first if missing), JAVA_HEAP (default 256m),
#      FRAME_POINTERS=1 (adds -XX:+PreserveFramePointer, for perf), JAVA_OPTS (appended).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
build="${BUILD_DIR:-$here/build}"
java="${JAVA_HOME:+$JAVA_HOME/bin/}java"
if [ ! -f "$build/example/JsonService.class" ]; then
    "$here/build.sh" "$build" >&2
fi
# DebugNonSafepoints lets async-profiler and JFR attribute samples to the exact inlined frame.
opts=(-Xmx"${JAVA_HEAP:-256m}" -XX:+UnlockDiagnosticVMOptions -XX:+DebugNonSafepoints)
if [ "${FRAME_POINTERS:-0}" = 1 ]; then
    opts+=(-XX:+PreserveFramePointer)
fi
# shellcheck disable=SC2206  # JAVA_OPTS is a list of flags, split on purpose
opts+=(${JAVA_OPTS:-})
exec "$java" "${opts[@]}" -cp "$build" example.JsonService "$@"

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Start the Spring Boot example on loopback; exec, so this script's PID is the JVM's.
#   run.sh [--port P] [--leak] [--oom-dump DIR]
#     --leak          every parsed document stays in a static cache (DocumentCache.ENTRIES)
#     --oom-dump DIR  -XX:+HeapDumpOnOutOfMemoryError -XX:HeapDumpPath=DIR -XX:+ExitOnOutOfMemoryError
# Env: JAVA_HEAP (default 96m), JAVA_OPTS (appended). Builds the jar first if it is missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
jar="$here/target/spring-json.jar"
java="${JAVA_HOME:+$JAVA_HOME/bin/}java"
[ -f "$jar" ] || "$here/build.sh" >&2
port=0
args=()
opts=(-Xmx"${JAVA_HEAP:-96m}" -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Xss512k)
while [ $# -gt 0 ]; do
    case "$1" in
        --port) port="$2"; shift 2 ;;
        --leak) args+=(--example.leak=true); shift ;;
        --oom-dump) opts+=(-XX:+HeapDumpOnOutOfMemoryError "-XX:HeapDumpPath=$2" -XX:+ExitOnOutOfMemoryError); shift 2 ;;
        *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    esac
done
# shellcheck disable=SC2206  # JAVA_OPTS is a list of flags, split on purpose
opts+=(${JAVA_OPTS:-})
exec "$java" "${opts[@]}" -jar "$jar" --server.port="$port" "${args[@]}"

#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Compile the example JVM service with the JDK alone.
#   build.sh [OUT_DIR]      (default: $BUILD_DIR, else build/ next to this script)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-${BUILD_DIR:-$here/build}}"
javac="${JAVA_HOME:+$JAVA_HOME/bin/}javac"
if ! command -v "$javac" >/dev/null 2>&1; then
    echo "build.sh: javac not found (install a JDK, 11 or newer, or set JAVA_HOME)" >&2
    exit 1
fi
mkdir -p "$out"
# -g keeps line numbers and local variables for profilers and heap dumps.
"$javac" -g -encoding UTF-8 -d "$out" "$here"/src/example/*.java
echo "built $out/example/JsonService.class"

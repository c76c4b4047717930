#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Build hotloop with symbols and frame pointers, so perf can walk its stacks.
#   build.sh [OUT]      (default: build/hotloop next to this script; env CC picks the compiler)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:-$here/build/hotloop}"
cc="${CC:-cc}"
if ! command -v "$cc" >/dev/null 2>&1; then
    echo "build.sh: C compiler '$cc' not found (install gcc or clang, or set CC)" >&2
    exit 1
fi
mkdir -p "$(dirname "$out")"
"$cc" -O2 -g -fno-omit-frame-pointer -o "$out" "$here/hotloop.c"
echo "built $out"

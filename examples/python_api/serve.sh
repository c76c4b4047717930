#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Start the example API behind gunicorn on loopback. The script execs the interpreter itself, so
# its PID is gunicorn's master process (requests are served by its worker children; GET /health
# reports the worker's pid).
#   serve.sh [--port P] [--workers N] [--leak]     (env: PORT, WORKERS, PYTHON)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
port="${PORT:-8000}"
workers="${WORKERS:-1}"
while [ $# -gt 0 ]; do
    case "$1" in
        --port) port="${2:?--port needs a value}"; shift 2 ;;
        --port=*) port="${1#*=}"; shift ;;
        --workers) workers="${2:?--workers needs a value}"; shift 2 ;;
        --workers=*) workers="${1#*=}"; shift ;;
        --leak) export PROFKIT_EXAMPLE_LEAK=1; shift ;;
        -h|--help) sed -n '3,7p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "serve.sh: unknown argument: $1" >&2; exit 2 ;;
    esac
done
case "$port" in ''|*[!0-9]*) echo "serve.sh: --port must be a number, not '$port'" >&2; exit 2 ;; esac
case "$workers" in ''|*[!0-9]*|0) echo "serve.sh: --workers must be a positive number, not '$workers'" >&2; exit 2 ;; esac
# `python3` may be a pyenv shim (a bash script); resolve the real interpreter so the exec'd PID is it.
py="$("${PYTHON:-python3}" -c 'import sys; print(sys.executable)')"
if ! "$py" -c 'import gunicorn' 2>/dev/null; then
    echo "serve.sh: gunicorn is not installed for $py" >&2
    echo "hint: $py -m pip install -r $here/requirements.txt" >&2
    exit 1
fi
exec "$py" -m gunicorn -c "$here/gunicorn_conf.py" --chdir "$here" \
    --bind "127.0.0.1:$port" --workers "$workers" app:app

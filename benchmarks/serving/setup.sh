#!/usr/bin/env bash
# Set up the serving benchmark: wrk, and one virtualenv per peer server under .bench/.
#
# The peers' dependency pins conflict with ours, so each gets its own virtualenv; every one
# pins the same scikit-learn and numpy as the project so that they all load the same
# model.joblib. Ours runs from the project's own virtualenv (make's .venv).
#
#   bash benchmarks/serving/setup.sh        # idempotent: a virtualenv is remade only when
#                                           # its pins below change
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BENCH="${BENCH_DIR:-$ROOT/.bench}"
PYTHON="${PYTHON:-python3}"

# The versions these figures were taken with (docs/benchmarks.md).
SKLEARN="scikit-learn==1.9.1 numpy==2.4.6 joblib==1.6.0"
PINS_kserve="kserve==0.21.0 $SKLEARN"
# uvloop 0.22+ breaks MLServer 1.7.1's parallel workers (asyncio.get_event_loop() in a fresh
# worker process raises "no current event loop"); 0.21.0 is the uvloop of MLServer's release.
PINS_mlserver="mlserver==1.7.1 mlserver-sklearn==1.7.1 uvloop==0.21.0 $SKLEARN"
# The bare app runs on the same FastAPI, uvicorn, uvloop and httptools as ours.
PINS_bare="fastapi==0.165.0 uvicorn==0.54.0 uvloop==0.23.0 httptools==0.9.0 $SKLEARN"
# The data plane's proxy-hop candidates (router_choice.py); the pool comes from the repository.
PINS_router="granian==2.8.9 aiohttp==3.14.5 httpx==0.28.1 uvicorn==0.54.0 uvloop==0.23.0 httptools==0.9.0"

if ! command -v wrk >/dev/null 2>&1; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: wrk is missing; install it (apt-get install -y wrk) or run this as root" >&2
        exit 1
    fi
    echo "installing wrk (Debian package)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
# nginx is the proxy-hop reference (run unprivileged from a config of ours, never as a service).
if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: nginx is missing; install it (apt-get install -y nginx-light) or run this as root" >&2
        exit 1
    fi
    echo "installing nginx (Debian package nginx-light)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light >/dev/null
fi
if ! command -v taskset >/dev/null 2>&1; then
    echo "error: taskset is missing; install util-linux" >&2
    exit 1
fi

mkdir -p "$BENCH"
for peer in kserve mlserver bare router; do
    pins_var="PINS_$peer"
    pins="${!pins_var}"
    venv="$BENCH/venv-$peer"
    if [ -f "$venv/.pins" ] && [ "$(cat "$venv/.pins")" = "$pins" ]; then
        echo "$peer: up to date ($venv)"
        continue
    fi
    echo "$peer: installing $pins"
    rm -rf "$venv"
    "$PYTHON" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    # shellcheck disable=SC2086 # the pins are separate words on purpose
    "$venv/bin/python" -m pip install --quiet $pins
    echo "$pins" > "$venv/.pins"
done
echo "wrk: $(wrk -v 2>&1 | head -n 1)"
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
echo "nginx: $("$NGINX" -v 2>&1)"

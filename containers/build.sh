#!/usr/bin/env bash
# Build the four images (`make images`): training, then serving, controller and algorithms
# on top of it. Python packages come from the host-built wheelhouse (.ci/wheelhouse.sh), so
# the builds need no package index. The base is python:3.11-slim when the engine has it,
# otherwise the offline local/debian:bookworm made by .ci/docker.sh; BASE=... overrides.
set -euo pipefail

cd "$(dirname "$0")/.."
VERSION=${VERSION:-0.1.0}
WHEELHOUSE=${WHEELHOUSE:-.cache/wheelhouse}
# The same builder everywhere: the classic one (Debian's engine ships without buildx).
export DOCKER_BUILDKIT=0

if ! docker info >/dev/null 2>&1; then
    echo "images: no Docker engine answers (run 'make docker-setup' as root)" >&2
    if [[ "${CI:-}" == "true" ]]; then exit 1; fi
    exit 0
fi

if [[ -z "${BASE:-}" ]]; then
    if docker image inspect python:3.11-slim >/dev/null 2>&1 \
        || docker pull -q python:3.11-slim >/dev/null 2>&1; then
        BASE=python:3.11-slim
    else
        BASE=${ORCH_LOCAL_BASE:-local/debian:bookworm}
    fi
fi
echo "images: base $BASE"

WHEELHOUSE=$WHEELHOUSE bash .ci/wheelhouse.sh 2> >(grep -v "is ignored: it is neither" >&2)

build() { # name context [docker build args...]
    local name=$1 context=$2 start=$SECONDS
    shift 2
    local log=.cache/images/$name.log
    mkdir -p .cache/images
    if ! docker build -f "containers/$name/Dockerfile" -t "orchestrator/$name:$VERSION" \
        "$@" "$context" > "$log" 2>&1; then
        tail -n 40 "$log" >&2
        echo "images: building orchestrator/$name failed (whole log: $log)" >&2
        exit 1
    fi
    echo "images: orchestrator/$name:$VERSION built in $((SECONDS - start)) s"
}

training=orchestrator/training:$VERSION
build training "$WHEELHOUSE/python" --build-arg "BASE=$BASE"
build serving containers/serving --build-arg "TRAINING_IMAGE=$training"
build controller "$WHEELHOUSE/python" --build-arg "TRAINING_IMAGE=$training"
build algorithms "$WHEELHOUSE/tensorflow" --build-arg "TRAINING_IMAGE=$training"
for name in training serving controller algorithms; do
    size=$(docker image inspect "orchestrator/$name:$VERSION" --format '{{.Size}}')
    echo "images: orchestrator/$name:$VERSION $((size / 1000000)) MB"
done

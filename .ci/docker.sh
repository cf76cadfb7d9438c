#!/usr/bin/env bash
# Make a Docker engine and an offline base image available, idempotently:
#   1. `docker info` fails -> install Debian's docker.io if dockerd is missing, start dockerd
#      (log: /tmp/dockerd.log) and wait for it;
#   2. no `local/debian:bookworm` image -> debootstrap a minimal bookworm and `docker import` it
#      (the images are built on it where the public bases cannot be pulled).
# In CI (CI=true) anything missing is an error. Elsewhere, without root or apt, it says what
# is missing and exits 0, and the image tests skip naming it.
set -euo pipefail

BASE_IMAGE=${ORCH_LOCAL_BASE:-local/debian:bookworm}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

missing() {
    echo "docker-setup: $*" >&2
    if [[ "${CI:-}" == "true" ]]; then exit 1; fi
    echo "docker-setup: skipping; the image tests will skip (run 'make images' once fixed)" >&2
    exit 0
}

can_install() { [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; }

apt_install() { # packages...
    if ! can_install; then missing "need root and apt-get to install: $*"; fi
    if [[ -z "${APT_UPDATED:-}" ]]; then apt-get update -qq; APT_UPDATED=1; fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

if ! docker info >/dev/null 2>&1; then
    if ! command -v dockerd >/dev/null; then
        echo "docker-setup: installing docker.io"
        apt_install docker.io
    fi
    if ! command -v docker >/dev/null; then missing "the docker CLI is missing"; fi
    if [[ "$(id -u)" != 0 ]]; then
        missing "the Docker engine is not running and starting it needs root"
    fi
    if ! { command -v pgrep >/dev/null && pgrep -x dockerd >/dev/null; }; then
        echo "docker-setup: starting dockerd (log: /tmp/dockerd.log)"
        nohup dockerd > /tmp/dockerd.log 2>&1 &
    fi
    for _ in $(seq 60); do
        if docker info >/dev/null 2>&1; then break; fi
        sleep 0.5
    done
    if ! docker info >/dev/null 2>&1; then
        tail -n 20 /tmp/dockerd.log >&2 || true
        missing "dockerd did not answer within 30 s"
    fi
fi

if ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    if ! command -v debootstrap >/dev/null; then
        echo "docker-setup: installing debootstrap"
        apt_install debootstrap
    fi
    if [[ "$(id -u)" != 0 ]]; then missing "debootstrap needs root to build $BASE_IMAGE"; fi
    rootfs=$(mktemp -d /tmp/orch-rootfs.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    echo "docker-setup: debootstrap bookworm -> $BASE_IMAGE"
    debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" > /tmp/debootstrap.log 2>&1 \
        || { tail -n 20 /tmp/debootstrap.log >&2; missing "debootstrap failed"; }
    # The build's apt needs no cached lists or package files from debootstrap.
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" -c . | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' - "$BASE_IMAGE" >/dev/null
fi
echo "docker-setup: engine up, base image $BASE_IMAGE present"

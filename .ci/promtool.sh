#!/usr/bin/env bash
# promtool for the alerting rules' checks (`promtool check rules`, `promtool test rules`):
# Debian's prometheus package ships it. The package is downloaded and unpacked, never
# installed (no service starts); only promtool is kept, in .tools/bin. Does nothing when it
# is there; without apt it says so and the tests that need it skip.
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=.tools/bin
if [[ -x "$BIN/promtool" ]]; then
  exit 0
fi
if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
  echo "promtool: no apt-get/dpkg-deb here; the promtool tests will skip" >&2
  exit 0
fi

mkdir -p "$BIN"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
chmod 0777 "$work"  # apt's download user writes here

fetch() { (cd "$work" && apt-get download -q prometheus >/dev/null 2>&1); }
if ! fetch; then
  apt-get update -qq >/dev/null 2>&1 || true
  fetch || { echo "promtool: could not download Debian's prometheus package; the promtool tests will skip" >&2; exit 0; }
fi
dpkg-deb -x "$work"/prometheus_*.deb "$work/pkg"
install -m 0755 "$work/pkg/usr/bin/promtool" "$BIN/promtool"
"$BIN/promtool" --version 2>&1 | head -n 1 >&2

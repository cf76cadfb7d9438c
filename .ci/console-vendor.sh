#!/usr/bin/env bash
# Re-fetch the console's vendored files with `npm pack` and check them against
# orchestrator/console/static/vendor/VENDOR.json (the tarball's integrity and each file's
# sha256). With --write, copy the fetched files into the vendor folder first.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
vendor="$root/orchestrator/console/static/vendor"
manifest="$vendor/VENDOR.json"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
write="${1:-}"

for name in $(python3 -c 'import json,sys; print(" ".join(json.load(open(sys.argv[1]))))' "$manifest"); do
  spec=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]]["npm"])' "$manifest" "$name")
  want=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]]["integrity"])' "$manifest" "$name")
  (cd "$work" && npm pack --silent "$spec" > "$work/$name.tgz.name")
  tgz="$work/$(cat "$work/$name.tgz.name")"
  got="sha512-$(openssl dgst -sha512 -binary "$tgz" | base64 -w0)"
  if [ "$got" != "$want" ]; then
    echo "$spec: tarball integrity $got, VENDOR.json says $want" >&2
    exit 1
  fi
  mkdir -p "$work/$name"
  tar -xzf "$tgz" -C "$work/$name"
  python3 - "$manifest" "$name" "$work/$name/package" "$vendor/$name" "$write" <<'PY'
import hashlib, json, shutil, sys
from pathlib import Path
manifest, name, pkg, dest, write = sys.argv[1:]
entry = json.load(open(manifest))[name]
bad = 0
for fname, digest in entry["files"].items():
    found = [p for p in Path(pkg).rglob(fname) if p.is_file()]
    if len(found) != 1:
        print(f"{name}: {fname} is not in the package (found {len(found)})", file=sys.stderr)
        bad += 1
        continue
    got = hashlib.sha256(found[0].read_bytes()).hexdigest()
    if got != digest:
        print(f"{name}: {fname} sha256 {got}, VENDOR.json says {digest}", file=sys.stderr)
        bad += 1
        continue
    if write == "--write":
        Path(dest).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(found[0], Path(dest) / fname)
    vendored = Path(dest) / fname
    if not vendored.exists() or hashlib.sha256(vendored.read_bytes()).hexdigest() != digest:
        print(f"{name}: {vendored} differs from the package's {fname}", file=sys.stderr)
        bad += 1
sys.exit(1 if bad else 0)
PY
  echo "$spec: ok"
done

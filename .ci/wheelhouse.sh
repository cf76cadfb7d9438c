#!/usr/bin/env bash
# Build the wheelhouse the images install from, on the host (which reaches the package
# index), so that `docker build` needs no index and no network for Python packages.
#
#   .cache/wheelhouse/python/deps/          wheels of every dependency (core + extras below)
#   .cache/wheelhouse/python/orchestrator/  the orchestrator wheel, rebuilt on every run
#   .cache/wheelhouse/python/requirements/  one requirements file per image
#   .cache/wheelhouse/tensorflow/deps/      the tensorflow extra's wheels not already above
#   .cache/wheelhouse/tensorflow/requirements/algorithms.txt
#
# Each folder under .cache/wheelhouse/ is a Docker build context. Dependencies are
# re-downloaded only when pyproject.toml changes (its hash is stamped in the folder).
set -euo pipefail

cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${WHEELHOUSE:-.cache/wheelhouse}
WITH_TF=${WITH_TF:-1}

hash=$(sha256sum pyproject.toml | cut -d' ' -f1)

# One requirements file per image, read from pyproject.toml's dependencies and extras.
requirements() { # extras...
    "$PY" - "$@" <<'PYEOF'
import sys
import tomllib

with open("pyproject.toml", "rb") as f:
    project = tomllib.load(f)["project"]
lines = list(project["dependencies"]) if "core" in sys.argv[1:] else []
for extra in sys.argv[1:]:
    if extra != "core":
        lines += project["optional-dependencies"][extra]
print("\n".join(lines))
PYEOF
}

if [[ "$(cat "$OUT/python/.stamp" 2>/dev/null)" != "$hash" ]]; then
    echo "wheelhouse: building the Python wheels (pyproject.toml changed or first run)"
    rm -rf "$OUT/python"
    mkdir -p "$OUT/python/deps" "$OUT/python/requirements"
    requirements core sklearn datasources > "$OUT/python/requirements/training.txt"
    requirements core sklearn > "$OUT/python/requirements/serving.txt"
    requirements core sklearn docker s3 postgres > "$OUT/python/requirements/controller.txt"
    # The training image's download step splits data-source channels (pyarrow), and scripts
    # read the Parquet snapshots there.
    "$PY" -m pip wheel --quiet --wheel-dir "$OUT/python/deps" \
        -r "$OUT/python/requirements/controller.txt" \
        -r "$OUT/python/requirements/training.txt"
    echo "$hash" > "$OUT/python/.stamp"
fi

if [[ "$WITH_TF" == 1 && "$(cat "$OUT/tensorflow/.stamp" 2>/dev/null)" != "$hash" ]]; then
    echo "wheelhouse: building the TensorFlow wheels (pyproject.toml changed or first run)"
    rm -rf "$OUT/tensorflow"
    mkdir -p "$OUT/tensorflow/deps" "$OUT/tensorflow/requirements"
    requirements tensorflow datasources > "$OUT/tensorflow/requirements/algorithms.txt"
    # Resolve against the Python wheels too, then keep only what the training image lacks.
    "$PY" -m pip wheel --quiet --wheel-dir "$OUT/tensorflow/deps" \
        --find-links "$OUT/python/deps" \
        -r "$OUT/python/requirements/training.txt" \
        -r "$OUT/tensorflow/requirements/algorithms.txt"
    # What the training image installs: resolved offline from the Python wheels.
    training=$(mktemp -d)
    "$PY" -m pip wheel --quiet --no-index --find-links "$OUT/python/deps" \
        --wheel-dir "$training" -r "$OUT/python/requirements/training.txt"
    for whl in "$OUT"/tensorflow/deps/*.whl; do
        if [[ -e "$training/$(basename "$whl")" ]]; then rm -f "$whl"; fi
    done
    rm -rf "$training"
    echo "$hash" > "$OUT/tensorflow/.stamp"
fi

# The product itself: rebuilt whenever its source changes, so images carry the current code
# (and an unchanged wheel keeps Docker's layer cache).
source_hash=$( (sha256sum pyproject.toml; find orchestrator -type f \( -name "*.py" -o -name py.typed -o -path "*/console/static/*" \) -print0 \
    | sort -z | xargs -0 sha256sum) \
    | sha256sum | cut -d' ' -f1)
if [[ "$(cat "$OUT/python/orchestrator/.stamp" 2>/dev/null)" != "$source_hash" ]]; then
    echo "wheelhouse: building the orchestrator wheel"
    rm -rf "$OUT/python/orchestrator"
    mkdir -p "$OUT/python/orchestrator"
    "$PY" -m pip wheel --quiet --no-deps --wheel-dir "$OUT/python/orchestrator" .
    echo "$source_hash" > "$OUT/python/orchestrator/.stamp"
fi
du -sh "$OUT"/python "$OUT"/tensorflow 2>/dev/null || true

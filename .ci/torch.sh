#!/usr/bin/env bash
# PyTorch for the distributed-training tests (an optional test dependency, never a runtime
# one). Pinned: `torch==2.13.0` is the CPU build pip finds on the machine's own disk; a bare
# `torch` (or a range admitting newer releases) would fetch a CUDA build of several GB.
# Outside CI a missing torch only skips those tests (they say so).
set -eu
PY="${1:-.venv/bin/python}"
if "$PY" -c "import torch" >/dev/null 2>&1; then
  echo "torch: $("$PY" -c 'import torch; print(torch.__version__)') is installed"
elif [ "${CI:-}" = "true" ]; then
  echo "torch: installing torch==2.13.0 (CPU)"
  "$PY" -m pip install --quiet "torch==2.13.0"
else
  echo "torch: not installed; the PyTorch tests will skip (pip install torch==2.13.0)"
fi

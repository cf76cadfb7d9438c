"""Start a control plane in a subprocess for a benchmark (process backend, temp home)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path


@contextmanager
def control_plane(**env_overrides: str) -> Iterator[tuple[str, str, Path]]:
    """Yields (url, api_key, root) and stops the server and everything it started."""
    root = Path(tempfile.mkdtemp(prefix="orch-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    env.update(
        {
            "ORCH_HOME": str(root / "home"),
            "ORCH_CONFIG_DIR": str(root / "config"),
            "ORCH_SERVER__PORT": "0",
            **env_overrides,
        }
    )
    ready = root / "url"
    with open(root / "server.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator.cli", "server", "--ready-file", str(ready)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit((root / "server.log").read_text())
            time.sleep(0.05)
        key = json.loads((root / "config" / "credentials.json").read_text())["api_key"]
        yield ready.read_text().strip(), key, root
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        for pid_file in (root / "home").glob("work/**/*.pid"):
            with suppress(OSError, ValueError, KeyError):
                os.killpg(json.loads(pid_file.read_text())["pid"], signal.SIGKILL)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)

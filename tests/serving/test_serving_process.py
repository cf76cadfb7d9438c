"""``python -m orchestrator.serving`` as a real process: port file, HTTP, graceful SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sklearn.linear_model import LogisticRegression

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
WriteScript = Callable[..., Path]

SLOW_WHEN_NEGATIVE = """
import pathlib, time

STARTED = pathlib.Path(__file__).with_name("slow-request-started")

def predict_fn(data, model):
    if data[0][0] < 0:
        STARTED.touch()
        time.sleep(1.0)
        return [-1]
    return model.predict(data)
"""


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator.serving", *args],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_serves_over_http_and_drains_on_sigterm(
    tmp_path: Path, model_dir: Path, write_script: WriteScript, iris, trained: LogisticRegression
) -> None:
    code_dir = write_script(SLOW_WHEN_NEGATIVE)
    port_file = tmp_path / "port"
    proc = start(
        "--model-dir", str(model_dir), "--code-dir", str(code_dir), "--program", "inference.py",
        "--port", "0", "--port-file", str(port_file), "--grace-seconds", "5",
        "--endpoint", "ep", "--variant", "v1",
    )  # fmt: skip
    try:
        wait_for(lambda: port_file.exists() or proc.poll() is not None, 20, "the port file")
        assert proc.poll() is None, proc.communicate()
        base_url = f"http://127.0.0.1:{int(port_file.read_text())}"
        x, _ = iris
        with httpx.Client(base_url=base_url, trust_env=False, timeout=10) as client:
            assert client.get("/ping").status_code == 200
            response = client.post("/invocations", json=x[:4].tolist())
            assert response.status_code == 200
            assert response.json() == {"predictions": trained.predict(x[:4]).tolist()}

        slow: dict[str, httpx.Response] = {}

        def slow_request() -> None:
            with httpx.Client(base_url=base_url, trust_env=False, timeout=10) as client:
                slow["response"] = client.post("/invocations", json=[[-1, 0, 0, 0]])

        thread = threading.Thread(target=slow_request)
        thread.start()
        wait_for((code_dir / "slow-request-started").exists, 5, "the slow request")
        proc.send_signal(signal.SIGTERM)
        thread.join(timeout=10)
        assert slow["response"].status_code == 200
        assert slow["response"].json() == {"predictions": [-1]}
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_exits_non_zero_with_one_line_when_the_model_fails_to_load(tmp_path: Path) -> None:
    proc = start("--model-dir", str(tmp_path), "--port", "0")
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 1
    assert stderr.count("\n") == 1
    assert "no model file" in stderr

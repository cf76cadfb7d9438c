"""``python -m orchestrator.serving`` as a real process: port file, HTTP, graceful SIGTERM."""

from __future__ import annotations

import json
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


def test_sigterm_with_many_requests_in_flight_completes_them_all_within_the_grace(
    tmp_path: Path, model_dir: Path, write_script: WriteScript
) -> None:
    code_dir = write_script(SLOW_WHEN_NEGATIVE)
    port_file = tmp_path / "port"
    grace = 6.0
    proc = start(
        "--model-dir", str(model_dir), "--code-dir", str(code_dir), "--program", "inference.py",
        "--port-file", str(port_file), "--grace-seconds", str(grace), "--max-concurrency", "4",
        "--model-name", "iris",
    )  # fmt: skip
    try:
        wait_for(lambda: port_file.exists() or proc.poll() is not None, 20, "the port file")
        assert proc.poll() is None, proc.communicate()
        base_url = f"http://127.0.0.1:{int(port_file.read_text())}"
        with httpx.Client(base_url=base_url, trust_env=False, timeout=10) as client:
            assert client.get("/v2/models/iris/ready").status_code == 200
        responses: list[httpx.Response] = []
        lock = threading.Lock()

        def slow_request() -> None:
            with httpx.Client(base_url=base_url, trust_env=False, timeout=15) as client:
                response = client.post("/invocations", json=[[-1, 0, 0, 0]])
            with lock:
                responses.append(response)

        threads = [threading.Thread(target=slow_request) for _ in range(6)]
        for thread in threads:
            thread.start()
        wait_for((code_dir / "slow-request-started").exists, 10, "the slow requests")
        time.sleep(0.2)  # let the other requests reach the server (they queue behind 4 workers)
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        for thread in threads:
            thread.join(timeout=15)
        assert proc.wait(timeout=grace + 5) == 0
        assert time.monotonic() - signalled < grace
        assert [r.status_code for r in responses] == [200] * 6
        assert all(r.json() == {"predictions": [-1]} for r in responses)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_bad_batching_option_exits_non_zero_naming_it(model_dir: Path) -> None:
    proc = start("--model-dir", str(model_dir), "--max-batch-size", "0")
    _, stderr = proc.communicate(timeout=20)
    assert proc.returncode == 1
    assert "--max-batch-size" in stderr


STEP_PLUS_ONE = """
import json

def model_fn(model_dir):
    return None

def output_fn(prediction, accept):
    return json.dumps([[float(v) + 1.0 for v in row] for row in prediction]), "application/json"

def predict_fn(data, model):
    return data
"""


def test_replica_main_serves_a_pipeline_under_the_models_name(
    tmp_path: Path, model_dir: Path, iris, trained: LogisticRegression
) -> None:
    from orchestrator.backends.process.replicas import REPLICA_FILE
    from orchestrator.resources.models import PROGRAM_ENV, SUBMIT_DIR_ENV

    pre_code = tmp_path / "pre-code"
    pre_code.mkdir()
    (pre_code / "pre.py").write_text(STEP_PLUS_ONE)
    (tmp_path / "pre-model").mkdir()
    root = tmp_path / "replica"
    root.mkdir()
    containers = [
        {
            "ContainerHostname": "shift",
            "ModelDataUrl": (tmp_path / "pre-model").as_uri(),
            "Environment": {PROGRAM_ENV: "pre.py", SUBMIT_DIR_ENV: pre_code.as_uri()},
            "AdaptiveBatching": {"MaxBatchSize": 8},
        },
        {"ContainerHostname": "classifier", "ModelDataUrl": model_dir.as_uri()},
    ]
    replica = {
        "endpoint": "ep", "variant": "v1", "slot": 0, "replica_id": "r-1", "generation": 1,
        "container": containers[0], "containers": containers, "root": str(root),
        "store": {"object_store_url": (tmp_path / "objects").as_uri(),
                  "keyring_path": str(tmp_path / "keyring.json")},
        "grace_seconds": 5, "model_name": "shifted-iris",
    }  # fmt: skip
    (root / REPLICA_FILE).write_text(json.dumps(replica))
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.backends.process.replica_main", str(root)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port_file = root / "port"
        wait_for(lambda: port_file.exists() or proc.poll() is not None, 30, "the port file")
        assert proc.poll() is None, proc.communicate()
        assert (root / "steps" / "0" / "code" / "pre.py").is_file()
        assert (root / "steps" / "1" / "model" / "model.joblib").is_file()
        x, _ = iris
        base_url = f"http://127.0.0.1:{int(port_file.read_text())}"
        with httpx.Client(base_url=base_url, trust_env=False, timeout=10) as client:
            assert client.get("/v2/models/shifted-iris").status_code == 200
            response = client.post("/invocations", json=(x[:5] - 1.0).tolist())
            wrong = client.post("/invocations", json=[[1.0, 2.0]])
        assert response.status_code == 200, response.text
        assert response.json() == {"predictions": trained.predict(x[:5]).tolist()}
        assert wrong.status_code == 400
        assert wrong.json()["message"].startswith("pipeline step 1 (classifier): ")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()

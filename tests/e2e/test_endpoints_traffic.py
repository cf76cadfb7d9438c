"""Endpoints under live traffic on the process backend: variant weights, shadow copies,
scale to zero and back, autoscaling, blue/green updates (good and broken), replicas that stop
or drain under load. Every test counts failed requests: the goal is zero."""

from __future__ import annotations

import json
import math
import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import joblib
import pytest
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

from orchestrator.client import Client
from tests.e2e.conftest import RunningServer, source_tarball

pytestmark = pytest.mark.slow

GOOD = """
import joblib, os, time
def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
"""
CONSTANT = """
import json, os, time
import numpy as np
def model_fn(model_dir):
    return None
def predict_fn(data, model):
    time.sleep(float(os.environ.get("DELAY", "0")))
    return np.full(len(data), int(os.environ.get("ANSWER", "42")))
"""
BROKEN = """
def model_fn(model_dir):
    return None
def predict_fn(data, model):
    raise RuntimeError("this model version is broken")
"""
ROW = json.dumps([[5.1, 3.5, 1.4, 0.2]]).encode()


def make_model(c: Client, tmp: Path, name: str, script: str, **env: str) -> None:
    x, y = load_iris(return_X_y=True)
    model_dir = tmp / name
    model_dir.mkdir()
    joblib.dump(LogisticRegression(max_iter=500).fit(x, y), model_dir / "model.joblib")
    c.upload_file(model_dir / "model.joblib", f"s3://orchestrator/{name}/model.joblib")
    c.upload_bytes(source_tarball({"inference.py": script}), f"s3://orchestrator/{name}/src.tgz")
    c.create_model(
        ModelName=name,
        PrimaryContainer={
            "ModelDataUrl": f"s3://orchestrator/{name}/model.joblib",
            "Environment": {
                "SAGEMAKER_PROGRAM": "inference.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": f"s3://orchestrator/{name}/src.tgz",
                **env,
            },
        },
    )


def variant(name: str, model: str, **fields: Any) -> dict[str, Any]:
    return {"VariantName": name, "ModelName": model, **fields}


def endpoint(c: Client, name: str, config: str, **config_fields: Any) -> None:
    c.create_endpoint_config(EndpointConfigName=config, **config_fields)
    c.create_endpoint(EndpointName=name, EndpointConfigName=config, AuthMode="None")
    c.wait_for_endpoint(name, timeout=90)


def wait_until(what: str, check: Any, timeout: float = 60.0, poll: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(poll)


class Load:
    """Threads invoking an endpoint in a loop; every answer's status, variant and body."""

    def __init__(self, url: str, endpoint: str, threads: int) -> None:
        self.url = f"{url}/endpoints/{endpoint}/invocations"
        self.threads = threads
        self.answers: list[tuple[int, str, bytes, float]] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._workers: list[threading.Thread] = []

    def _run(self) -> None:
        with httpx.Client(timeout=30, trust_env=False) as http:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    r = http.post(
                        self.url, content=ROW, headers={"Content-Type": "application/json"}
                    )
                except httpx.HTTPError as e:
                    with self._lock:
                        self.errors.append(f"{type(e).__name__}: {e}")
                    continue
                took = time.perf_counter() - started
                with self._lock:
                    self.answers.append(
                        (
                            r.status_code,
                            r.headers.get("x-invoked-production-variant", ""),
                            r.content,
                            took,
                        )
                    )

    def __enter__(self) -> Load:
        for _ in range(self.threads):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._workers:
            t.join(30)

    def failed(self) -> list[tuple[int, bytes]]:
        with self._lock:
            bad = [(s, b[:200]) for s, _, b, _ in self.answers if s != 200]
        return bad + [(0, e.encode()) for e in self.errors]

    def count(self) -> int:
        with self._lock:
            return len(self.answers)


def predictions(answers: list[tuple[int, str, bytes, float]]) -> Counter[int]:
    return Counter(json.loads(b)["predictions"][0] for s, _, b, _ in answers if s == 200)


def replica_pids(server: RunningServer, name: str) -> dict[str, int]:
    root = server.root / "home" / "work" / "endpoints" / name
    out = {}
    for pid_file in root.glob("*/replica.pid"):
        if not (pid_file.parent / "terminating").exists():
            out[pid_file.parent.name] = int(json.loads(pid_file.read_text())["pid"])
    return out


def test_weights_are_honoured_and_answers_name_their_variant(
    server: RunningServer, tmp_path: Path
) -> None:
    c = server.client()
    make_model(c, tmp_path, "one", CONSTANT, ANSWER="1")
    make_model(c, tmp_path, "three", CONSTANT, ANSWER="3")
    endpoint(
        c,
        "weights",
        "weights-c",
        ProductionVariants=[
            variant("a", "one", InitialVariantWeight=1),
            variant("b", "three", InitialVariantWeight=3),
        ],
    )
    n = 400
    seen: Counter[str] = Counter()
    for _ in range(n):
        answer = c.invoke_endpoint("weights", ROW)
        assert json.loads(answer.body)["predictions"] == [1 if answer.variant == "a" else 3]
        seen[answer.variant] += 1
    # Binomial(400, 0.25): mean 100, sd ~8.7; 5 sd either way fails about once in 3 million.
    sd = math.sqrt(n * 0.25 * 0.75)
    assert abs(seen["a"] - n * 0.25) < 5 * sd, seen
    # A named variant is always the one that serves.
    for _ in range(20):
        answer = c.invoke_endpoint("weights", ROW, target_variant="a")
        assert answer.variant == "a"


def test_shadow_gets_copies_and_never_changes_answers_or_their_latency(
    server: RunningServer, tmp_path: Path
) -> None:
    c = server.client()
    make_model(c, tmp_path, "live", GOOD)
    make_model(c, tmp_path, "slow-shadow", CONSTANT, ANSWER="7", DELAY="0.5")
    endpoint(
        c,
        "shadowed",
        "shadowed-c",
        ProductionVariants=[variant("live", "live")],
        ShadowProductionVariants=[variant("shadow", "slow-shadow", InitialVariantWeight=1)],
    )
    with Load(server.url, "shadowed", threads=2) as load:
        wait_until("40 answers", lambda: load.count() >= 40)
    assert not load.failed()
    assert {v for _, v, _, _ in load.answers} == {"live"}
    assert set(predictions(load.answers)) == {0}  # iris setosa, never the shadow's 7
    took = sorted(t for *_, t in load.answers)
    assert took[len(took) // 2] < 0.25, "a 0.5 s shadow slowed the live answers"
    points = wait_until(
        "the shadow's invocations in the metrics",
        lambda: (
            c.endpoint_metrics("shadowed", "Invocations", variant="shadow", period=60).Datapoints
        ),
        timeout=30,
    )
    assert sum(p.Sum or 0 for p in points) > 0


def test_scale_to_zero_then_a_held_request_wakes_a_replica(
    server: RunningServer, tmp_path: Path
) -> None:
    c = server.client()
    make_model(c, tmp_path, "sleepy", GOOD)
    scaling = {"MinInstanceCount": 0, "MaxInstanceCount": 2, "ScaleToZeroAfterIdleSeconds": 10}
    endpoint(
        c,
        "sleepy",
        "sleepy-c",
        ProductionVariants=[variant("main", "sleepy", ManagedInstanceScaling=scaling)],
    )
    assert c.invoke_endpoint("sleepy", ROW).body
    wait_until(
        "scale to zero",
        lambda: (
            c.describe_endpoint("sleepy").ProductionVariants[0].CurrentInstanceCount == 0
            and not replica_pids(server, "sleepy")
        ),
        timeout=40,
    )
    assert c.describe_endpoint("sleepy").EndpointStatus == "InService"
    started = time.monotonic()
    answer = c.invoke_endpoint("sleepy", ROW)  # held while a replica starts, not refused
    cold = time.monotonic() - started
    assert json.loads(answer.body)["predictions"] == [0]
    assert cold < 30
    points = wait_until(
        "ModelSetupTime",
        lambda: (
            c.endpoint_metrics(
                "sleepy", "ModelSetupTime", period=60, statistics=("Maximum",)
            ).Datapoints
        ),
        timeout=20,
    )
    # ModelSetupTime is in microseconds; the held request waited at least that long.
    assert 0 < max(p.Maximum or 0 for p in points) < cold * 1e6 + 1e6


def test_autoscaling_adds_a_replica_under_load_and_stays_put(
    server: RunningServer, tmp_path: Path
) -> None:
    c = server.client()
    make_model(c, tmp_path, "busy", CONSTANT, ANSWER="5", DELAY="0.05")
    scaling = {
        "MinInstanceCount": 1,
        "MaxInstanceCount": 2,
        "TargetTracking": {
            "PredefinedMetricType": "SageMakerVariantConcurrentRequestsPerModelHighResolution",
            "TargetValue": 1.5,
            "ScaleOutCooldown": 0,
            "ScaleInCooldown": 600,
        },
    }
    endpoint(
        c,
        "busy",
        "busy-c",
        ProductionVariants=[variant("main", "busy", ManagedInstanceScaling=scaling)],
    )
    with Load(server.url, "busy", threads=4) as load:
        wait_until(
            "a second replica serving",
            lambda: c.describe_endpoint("busy").ProductionVariants[0].CurrentInstanceCount == 2,
            timeout=60,
        )
        time.sleep(3)  # no flapping: still two
        assert c.describe_endpoint("busy").ProductionVariants[0].DesiredInstanceCount == 2
    assert not load.failed()


def test_blue_green_canary_update_loses_no_request(server: RunningServer, tmp_path: Path) -> None:
    c = server.client()
    make_model(c, tmp_path, "v1", CONSTANT, ANSWER="1")
    make_model(c, tmp_path, "v2", CONSTANT, ANSWER="2")
    endpoint(c, "rollout", "rollout-1", ProductionVariants=[variant("main", "v1")])
    c.create_endpoint_config(
        EndpointConfigName="rollout-2", ProductionVariants=[variant("main", "v2")]
    )
    policy = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 25},
                "WaitIntervalInSeconds": 2,
            }
        }
    }
    with Load(server.url, "rollout", threads=3) as load:
        wait_until("some answers", lambda: load.count() > 20)
        c.update_endpoint("rollout", "rollout-2", deployment_config=policy)
        ep = c.wait_for_update("rollout", timeout=90)
        assert ep.CurrentEndpointConfigName == "rollout-2"
        assert ep.EndpointStatus == "InService"
        assert ep.LastDeployment is not None and ep.LastDeployment.Result == "Succeeded"
        n = load.count()
        wait_until("answers after the update", lambda: load.count() > n + 20)
    assert not load.failed()
    seen = predictions(load.answers)
    assert seen[1] > 0 and seen[2] > 0
    assert predictions(load.answers[-10:]) == Counter({2: 10})
    wait_until("the old fleet gone", lambda: len(replica_pids(server, "rollout")) == 1)


def test_a_broken_update_rolls_back_by_itself_with_zero_failed_requests(
    server: RunningServer, tmp_path: Path
) -> None:
    c = server.client()
    make_model(c, tmp_path, "stable", CONSTANT, ANSWER="1")
    make_model(c, tmp_path, "broken", BROKEN)
    endpoint(c, "guarded", "guarded-1", ProductionVariants=[variant("main", "stable")])
    c.create_endpoint_config(
        EndpointConfigName="guarded-2", ProductionVariants=[variant("main", "broken")]
    )
    policy = {
        "BlueGreenUpdatePolicy": {
            "TrafficRoutingConfiguration": {
                "Type": "CANARY",
                "CanarySize": {"Type": "CAPACITY_PERCENT", "Value": 20},
                "WaitIntervalInSeconds": 30,
            }
        },
        "AutoRollbackConfiguration": {
            "Alarms": [
                {"AlarmName": "errors", "MetricName": "Invocation5XXErrorRate", "Threshold": 0.01}
            ]
        },
    }
    with Load(server.url, "guarded", threads=3) as load:
        wait_until("some answers", lambda: load.count() > 20)
        c.update_endpoint("guarded", "guarded-2", deployment_config=policy)
        ep = c.wait_for_update("guarded", timeout=90)
    assert ep.LastDeployment is not None
    assert ep.LastDeployment.Result == "RolledBack"
    assert "errors" in ep.LastDeployment.Message
    assert ep.CurrentEndpointConfigName == "guarded-1" and ep.EndpointStatus == "InService"
    assert not load.failed()
    assert set(predictions(load.answers)) == {1}
    # Not retried by itself; still serving the old model.
    time.sleep(1)
    assert c.describe_endpoint("guarded").Deployment is None
    assert json.loads(c.invoke_endpoint("guarded", ROW).body)["predictions"] == [1]


def test_sigterm_to_one_of_two_replicas_under_load_fails_no_request(
    server: RunningServer, tmp_path: Path
) -> None:
    c = server.client()
    make_model(c, tmp_path, "pair", CONSTANT, ANSWER="3", DELAY="0.02")
    endpoint(
        c, "pair", "pair-c", ProductionVariants=[variant("main", "pair", InitialInstanceCount=2)]
    )
    with Load(server.url, "pair", threads=4) as load:
        wait_until("some answers", lambda: load.count() > 30)
        victim = sorted(replica_pids(server, "pair").items())[0]
        os.kill(victim[1], signal.SIGTERM)
        n = load.count()
        wait_until("answers after the SIGTERM", lambda: load.count() > n + 60)
        wait_until(
            "a replacement replica",
            lambda: (
                c.describe_endpoint("pair").ProductionVariants[0].CurrentInstanceCount == 2
                and victim[0] not in replica_pids(server, "pair")
            ),
            timeout=60,
        )
    assert not load.failed()


def test_a_replica_that_stops_answering_ping_gets_no_traffic(
    server: RunningServer, tmp_path: Path
) -> None:
    c = server.client()
    make_model(c, tmp_path, "frozen", CONSTANT, ANSWER="4")
    endpoint(
        c,
        "frozen",
        "frozen-c",
        ProductionVariants=[variant("main", "frozen", InitialInstanceCount=2)],
    )
    _rid, pid = sorted(replica_pids(server, "frozen").items())[0]
    os.kill(pid, signal.SIGSTOP)  # alive, but /ping no longer answers
    try:
        wait_until(
            "the frozen replica out of the route",
            lambda: c.describe_endpoint("frozen").ProductionVariants[0].CurrentInstanceCount == 1,
            timeout=30,
        )
        for _ in range(30):
            started = time.monotonic()
            answer = c.invoke_endpoint("frozen", ROW)
            assert json.loads(answer.body)["predictions"] == [4]
            assert time.monotonic() - started < 2.0  # never waited on the frozen one
    finally:
        os.kill(pid, signal.SIGCONT)


PRE = """
import json
def model_fn(model_dir):
    return None
def input_fn(body, content_type):
    return json.loads(body)["measurements"]
def predict_fn(data, model):
    return data
def output_fn(rows, accept):
    return "\\n".join(",".join(str(v) for v in row) for row in rows), "text/csv"
"""
POST = """
import json
def model_fn(model_dir):
    return ["setosa", "versicolor", "virginica"]
def input_fn(body, content_type):
    return json.loads(body)["predictions"]
def predict_fn(data, names):
    return [names[int(i)] for i in data]
def output_fn(labels, accept):
    return json.dumps({"species": labels}), "application/json"
"""


def test_an_inference_pipeline_runs_its_steps_in_order(
    server: RunningServer, tmp_path: Path
) -> None:
    c = server.client()
    make_model(c, tmp_path, "iris-core", GOOD)
    core = c.describe_model("iris-core").PrimaryContainer
    assert core is not None
    for step, script in (("pre", PRE), ("post", POST)):
        c.upload_bytes(
            source_tarball({"inference.py": script}), f"s3://orchestrator/{step}/src.tgz"
        )
    steps = [
        {
            "ContainerHostname": step,
            "Environment": {
                "SAGEMAKER_PROGRAM": "inference.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": f"s3://orchestrator/{step}/src.tgz",
            },
        }
        for step in ("pre", "post")
    ]
    c.create_model(
        ModelName="iris-pipeline",
        Containers=[steps[0], core.model_dump(exclude_none=True), steps[1]],
    )
    endpoint(c, "pipeline", "pipeline-c", ProductionVariants=[variant("main", "iris-pipeline")])
    body = json.dumps({"measurements": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]]}).encode()
    answer = c.invoke_endpoint("pipeline", body)
    assert json.loads(answer.body) == {"species": ["setosa", "virginica"]}


def test_a_full_queue_is_429_with_retry_after_and_a_slow_model_is_504(
    server: RunningServer, tmp_path: Path
) -> None:
    c = server.client()
    make_model(
        c,
        tmp_path,
        "slow",
        CONSTANT,
        ANSWER="9",
        DELAY="1.0",
        ORCH_SERVING__MAX_QUEUE="0",  # one call at a time, nobody waits
        ORCH_SERVING__INVOCATION_TIMEOUT_SECONDS="0.5",
    )
    endpoint(c, "slow", "slow-c", ProductionVariants=[variant("main", "slow")])
    url = f"{server.url}/endpoints/slow/invocations"

    def post(_: int) -> httpx.Response:
        with httpx.Client(timeout=30, trust_env=False) as http:
            return http.post(url, content=ROW, headers={"Content-Type": "application/json"})

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(post, range(4)))
    statuses = sorted(r.status_code for r in answers)
    # One request gets the model (and its 0.5 s deadline passes: 504); the others find the
    # queue full at once (429, Retry-After passed through by the router).
    assert 504 in statuses and 429 in statuses, statuses
    assert set(statuses) <= {429, 504}
    for r in answers:
        assert r.headers["x-invoked-production-variant"] == "main"
        if r.status_code == 429:
            assert r.headers.get("retry-after")
            assert "max_queue" in r.text or "waiting" in r.text


def test_open_inference_protocol_through_the_endpoint(
    server: RunningServer, tmp_path: Path
) -> None:
    c = server.client()
    make_model(c, tmp_path, "iris-v2", GOOD)
    endpoint(c, "oip", "oip-c", ProductionVariants=[variant("main", "iris-v2")])
    request = {
        "id": "r-1",
        "inputs": [
            {
                "name": "input-0",
                "shape": [2, 4],
                "datatype": "FP64",
                "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3],
            }
        ],
    }
    with httpx.Client(timeout=30, trust_env=False) as http:
        r = http.post(f"{server.url}/endpoints/oip/v2/models/iris-v2/infer", json=request)
        assert r.status_code == 200, r.text
        assert r.headers["x-invoked-production-variant"] == "main"
        answer = r.json()
        assert answer["id"] == "r-1" and answer["model_name"] == "iris-v2"
        assert answer["outputs"][0]["data"] == [0, 2]
        # A model the endpoint does not serve: the replica's own 404, in the protocol's shape.
        r = http.post(f"{server.url}/endpoints/oip/v2/models/other/infer", json=request)
        assert r.status_code == 404 and "error" in r.json()

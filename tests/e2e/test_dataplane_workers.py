"""Two router workers on one port (``ORCH_SERVER__ROUTER_WORKERS=2``): both serve, every request
is counted once (Prometheus and the series the autoscaler reads), a revoked key stops working
on both at once, the management API answers through either, a request held for a variant at
zero on either wakes the controller, and boto3's SigV4-signed sagemaker-runtime is served by
both."""

from __future__ import annotations

import json
import re
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import RunningServer, server_env
from tests.e2e.test_endpoints_traffic import CONSTANT, ROW, make_model, replica_pids, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def two(tmp_path: Path) -> Any:
    from tests.e2e.conftest import _kill_leftovers

    s = RunningServer(root=tmp_path, env=server_env(tmp_path, ORCH_SERVER__ROUTER_WORKERS="2"))
    s.start()
    try:
        yield s
    finally:
        s.stop()
        _kill_leftovers(tmp_path / "home")


def fresh_post(url: str, **headers: str) -> httpx.Response:
    """One request on a connection of its own (the kernel picks the worker per connection)."""
    with httpx.Client(timeout=60, trust_env=False) as http:
        return http.post(url, content=ROW, headers={"Content-Type": "application/json", **headers})


def per_worker(server: RunningServer) -> dict[str, float]:
    text = httpx.get(
        f"{server.url}/metrics", headers={"Authorization": f"Bearer {server.key}"}, trust_env=False
    ).text
    found = re.findall(r'orch_router_worker_invocations_total\{worker="(\d+)"\} ([0-9.e+]+)', text)
    return {w: float(n) for w, n in found}


def total(server: RunningServer, endpoint: str) -> float:
    text = httpx.get(
        f"{server.url}/metrics", headers={"Authorization": f"Bearer {server.key}"}, trust_env=False
    ).text
    m = re.search(
        rf'orch_invocations_total\{{endpoint="{endpoint}",variant="main"\}} ([0-9.e+]+)', text
    )
    return float(m.group(1)) if m else 0.0


def test_two_workers_count_once_and_revoke_everywhere(two: RunningServer, tmp_path: Path) -> None:
    c = two.client()
    make_model(c, tmp_path, "pair", CONSTANT, ANSWER="6")
    c.create_endpoint_config(
        EndpointConfigName="pair", ProductionVariants=[{"VariantName": "main", "ModelName": "pair"}]
    )
    c.create_endpoint(EndpointName="pair", EndpointConfigName="pair")  # a key is needed
    c.wait_for_endpoint("pair", timeout=90)
    key = c.create_api_key("load", role="invoke")
    url = f"{two.url}/endpoints/pair/invocations"
    auth = {"Authorization": f"Bearer {key.ApiKey}"}

    sent = 0
    deadline = time.monotonic() + 60
    while sent < 40 or len([n for n in per_worker(two).values() if n > 0]) < 2:
        assert time.monotonic() < deadline, f"not both workers served: {per_worker(two)}"
        r = fresh_post(url, **auth)
        assert r.status_code == 200 and json.loads(r.content)["predictions"] == [6]
        sent += 1
    counted = wait_until("every request in Prometheus", lambda: total(two, "pair") >= sent, 10)
    assert counted and total(two, "pair") == sent
    assert sum(per_worker(two).values()) == sent

    def series_sum() -> float:
        points = c.endpoint_metrics("pair", "Invocations", period=3600).Datapoints
        return sum(p.Sum or 0 for p in points)

    wait_until("every request in the series", lambda: series_sum() >= sent, 10)
    time.sleep(0.3)
    assert series_sum() == sent  # what the autoscaler reads: both workers' traffic, once

    # The management API answers through either worker.
    for _ in range(10):
        with httpx.Client(timeout=30, trust_env=False) as http:
            r = http.get(
                f"{two.url}/api/v1/endpoints/pair", headers={"Authorization": f"Bearer {two.key}"}
            )
            assert r.status_code == 200 and r.json()["EndpointName"] == "pair"

    c.revoke_api_key(key.KeyId)
    refused = [fresh_post(url, **auth).status_code for _ in range(30)]
    assert set(refused) == {401}, refused
    # Each refusal is in the audit trail, whichever worker refused it.
    denied = c.lookup_audit_events(event_name="InvokeEndpoint", max_results=100)["Events"]
    assert len(denied) == 30 and {e["statusCode"] for e in denied} == {401}
    assert {e["userIdentity"]["keyId"] for e in denied} == {key.KeyId}


def test_a_request_held_by_either_worker_wakes_a_replica(
    two: RunningServer, tmp_path: Path
) -> None:
    c = two.client()
    make_model(c, tmp_path, "nap", CONSTANT, ANSWER="8")
    scaling = {"MinInstanceCount": 0, "MaxInstanceCount": 1, "ScaleToZeroAfterIdleSeconds": 10}
    c.create_endpoint_config(
        EndpointConfigName="nap",
        ProductionVariants=[
            {"VariantName": "main", "ModelName": "nap", "ManagedInstanceScaling": scaling}
        ],
    )
    c.create_endpoint(EndpointName="nap", EndpointConfigName="nap", AuthMode="None")
    c.wait_for_endpoint("nap", timeout=90)
    url = f"{two.url}/endpoints/nap/invocations"
    assert fresh_post(url).status_code == 200
    wait_until(
        "scale to zero",
        lambda: (
            c.describe_endpoint("nap").ProductionVariants[0].CurrentInstanceCount == 0
            and not replica_pids(two, "nap")
        ),
        timeout=60,
    )
    before = per_worker(two)
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda _: fresh_post(url), range(12)))
    assert [r.status_code for r in answers] == [200] * 12, [r.text for r in answers]
    assert {json.loads(r.content)["predictions"][0] for r in answers} == {8}
    wait_until(
        "the held requests counted",
        lambda: sum(per_worker(two).values()) >= sum(before.values()) + 12,
        10,
    )
    after = per_worker(two)
    served = {w: after.get(w, 0) - before.get(w, 0) for w in after}
    assert served.get("0", 0) > 0 and served.get("1", 0) > 0, served  # held on both


def test_boto3_sagemaker_runtime_through_both_workers(two: RunningServer, tmp_path: Path) -> None:
    """boto3's sagemaker-runtime, SigV4-signed, served by each router worker with the hub's
    signing keys; a replica's refusal comes back as ModelError with its status."""
    boto3 = pytest.importorskip("boto3", reason="boto3 is in the [dev] extra")
    from botocore.config import Config
    from botocore.exceptions import ClientError

    from orchestrator.api.aws.credentials import AccessKeys
    from orchestrator.objects import LocalKeyring
    from orchestrator.settings import Settings
    from orchestrator.store import StateStore

    c = two.client()
    make_model(c, tmp_path, "signed", CONSTANT, ANSWER="3")
    c.create_endpoint_config(
        EndpointConfigName="signed",
        ProductionVariants=[{"VariantName": "main", "ModelName": "signed"}],
    )
    c.create_endpoint(EndpointName="signed", EndpointConfigName="signed")
    c.wait_for_endpoint("signed", timeout=90)
    settings = Settings(home=tmp_path / "home", config_dir=tmp_path / "config")
    store = StateStore(settings.resolved_database_url)  # the server's own store and keyring
    try:
        keys = AccessKeys(store, LocalKeyring(settings.keyring_path))
        record, secret = keys.create(name="app", role="invoke", now=datetime.now(UTC))
    finally:
        store.close()

    def runtime() -> Any:  # a client of its own: a connection of its own, so either worker
        return boto3.client(
            "sagemaker-runtime", endpoint_url=two.url, region_name="us-east-1",
            aws_access_key_id=record.access_key_id, aws_secret_access_key=secret,
            config=Config(retries={"max_attempts": 1}),
        )  # fmt: skip

    before = per_worker(two)
    deadline = time.monotonic() + 60
    while True:
        out = runtime().invoke_endpoint(
            EndpointName="signed", Body=ROW, ContentType="application/json"
        )
        assert json.loads(out["Body"].read())["predictions"] == [3]
        assert out["InvokedProductionVariant"] == "main"
        served = {w: n - before.get(w, 0) for w, n in per_worker(two).items()}
        if served.get("0", 0) > 0 and served.get("1", 0) > 0:
            break
        assert time.monotonic() < deadline, f"not both workers served: {served}"
    with pytest.raises(ClientError) as e:
        runtime().invoke_endpoint(
            EndpointName="signed", Body=b"{not json", ContentType="application/json"
        )
    assert e.value.response["Error"]["Code"] == "ModelError"
    assert 400 <= e.value.response["OriginalStatusCode"] < 500

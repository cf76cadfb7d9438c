"""The REST API through an HTTP client: auth, validation, idempotent creates, lists, invocations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from core_builders import training_doc

from orchestrator.api.app import build_control_plane, create_app
from orchestrator.api.auth import new_api_key
from orchestrator.api.service import ControlPlane
from orchestrator.backends.fake import FakeBackend
from orchestrator.settings import ServingSettings, Settings

JOBS = "/api/v1/training-jobs"
ARN = "arn:aws:sagemaker:us-east-1:000000000000"


@dataclass
class Api:
    client: httpx.AsyncClient
    plane: ControlPlane
    fake: FakeBackend
    auth: dict[str, str]
    tmp: Path

    async def post(self, path: str, body: Any) -> httpx.Response:
        return await self.client.post(path, json=body, headers=self.auth)

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(path, params=params, headers=self.auth)

    async def endpoint_chain(self, *, auth_mode: str = "ApiKey") -> None:
        model = {"ModelName": "model-1", "PrimaryContainer": {"Image": "example/serve:1"}}
        config = {
            "EndpointConfigName": "cfg-1",
            "ProductionVariants": [{"VariantName": "v1", "ModelName": "model-1"}],
        }
        endpoint = {"EndpointName": "ep-1", "EndpointConfigName": "cfg-1", "AuthMode": auth_mode}
        for path, body in (
            ("/api/v1/models", model),
            ("/api/v1/endpoint-configs", config),
            ("/api/v1/endpoints", endpoint),
        ):
            r = await self.post(path, body)
            assert r.status_code == 201, r.text


pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = Settings(
        home=tmp_path / "home",
        config_dir=tmp_path / "config",
        backend="fake",
        serving=ServingSettings(max_payload_bytes=1000),
    )
    fake = FakeBackend()
    plane = build_control_plane(settings, backend=fake)
    key = new_api_key(plane.store, name="t", role="admin", now=datetime.now(tz=UTC))
    app = create_app(plane, run_controller=False)
    transport = httpx.ASGITransport(app=app)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=transport, base_url="http://orch") as client,
    ):
        yield Api(client, plane, fake, {"Authorization": f"Bearer {key}"}, tmp_path)
    plane.store.close()


ROUTES = [
    ("POST", JOBS), ("GET", JOBS), ("GET", f"{JOBS}/job-1"), ("POST", f"{JOBS}/job-1/stop"),
    ("DELETE", f"{JOBS}/job-1"), ("GET", f"{JOBS}/job-1/logs"),
    ("POST", "/api/v1/models"), ("GET", "/api/v1/models"), ("GET", "/api/v1/models/m"),
    ("DELETE", "/api/v1/models/m"),
    ("POST", "/api/v1/endpoint-configs"), ("GET", "/api/v1/endpoint-configs"),
    ("GET", "/api/v1/endpoint-configs/c"), ("DELETE", "/api/v1/endpoint-configs/c"),
    ("POST", "/api/v1/endpoints"), ("GET", "/api/v1/endpoints"), ("GET", "/api/v1/endpoints/e"),
    ("DELETE", "/api/v1/endpoints/e"),
    ("PUT", "/api/v1/objects/b/k"), ("GET", "/api/v1/objects/b/k"),
    ("GET", "/api/v1/objects?prefix=s3://b/"), ("DELETE", "/api/v1/objects/b/k"),
    ("GET", "/metrics"), ("POST", "/endpoints/e/invocations"),
    ("PATCH", "/api/v1/endpoints/e"), ("GET", "/api/v1/endpoints/e/metrics"),
    ("POST", "/api/v1/endpoints/e/weights-and-capacities"),
    ("POST", "/endpoints/e/v2/models/m/infer"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer orch_000000000000_wrong"}, {"X-Api-Key": "not-a-key"}],
    ids=["no key", "wrong key", "malformed key"],
)
async def test_every_route_needs_a_key(
    api: Api, method: str, path: str, headers: dict[str, str]
) -> None:
    r = await api.client.request(method, path, json=training_doc(), headers=headers)
    assert r.status_code == 401
    assert r.json()["code"] == "UnauthorizedException"
    assert "missing or invalid API key" in r.json()["message"]


async def test_wrong_secret_of_a_real_key_is_refused(api: Api) -> None:
    key = api.auth["Authorization"].removeprefix("Bearer ")
    r = await api.client.get(JOBS, headers={"Authorization": f"Bearer {key[:-2]}xx"})
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("existing", "missing"),
    [
        (f"{JOBS}/job-1", f"{JOBS}/nope"),
        ("/endpoints/ep-1/invocations", "/endpoints/nope/invocations"),
    ],
)
async def test_401_says_nothing_about_existence(api: Api, existing: str, missing: str) -> None:
    assert (await api.post(JOBS, training_doc())).status_code == 201
    await api.endpoint_chain()
    method = "POST" if "invocations" in existing else "GET"
    a = await api.client.request(method, existing)
    b = await api.client.request(method, missing)
    assert a.status_code == b.status_code == 401
    assert a.json() == b.json()


async def test_refused_create_changes_nothing(api: Api) -> None:
    assert (await api.client.post(JOBS, json=training_doc())).status_code == 401
    assert (await api.get(JOBS)).json()["TrainingJobSummaries"] == []
    assert api.fake.launches == []


async def test_invoke_role_may_not_manage(api: Api) -> None:
    key = new_api_key(api.plane.store, name="i", role="invoke", now=datetime.now(tz=UTC))
    r = await api.client.get(JOBS, headers={"Authorization": f"Bearer {key}"})
    assert (r.status_code, r.json()["code"]) == (403, "AccessDeniedException")


async def test_healthz_is_open(api: Api) -> None:
    r = await api.client.get("/healthz")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"


async def test_create_is_idempotent_and_conflicts_on_a_different_spec(api: Api) -> None:
    first = await api.post(JOBS, training_doc())
    assert (first.status_code, first.json()) == (
        201,
        {"TrainingJobArn": f"{ARN}:training-job/job-1"},
    )
    again = await api.post(JOBS, training_doc())
    assert (again.status_code, again.json()) == (200, first.json())
    other = await api.post(JOBS, training_doc(HyperParameters={"epochs": "3"}))
    assert (other.status_code, other.json()["code"]) == (409, "ResourceInUse")
    described = (await api.get(f"{JOBS}/job-1")).json()
    assert described["HyperParameters"] == {}
    assert (described["TrainingJobStatus"], described["SecondaryStatus"]) == (
        "InProgress",
        "Starting",
    )


@pytest.mark.parametrize(
    ("body", "field", "needle"),
    [
        (training_doc(Bogus=1), "Bogus", "unknown field"),
        (training_doc(ResourceConfig={"InstanceCount": "many"}), "ResourceConfig.InstanceCount", "'many'"),
        (training_doc(ResourceConfig={"InstanceType": "ml.huge"}), "ResourceConfig.InstanceType", "allowed: local"),
        ([1, 2], "(body)", "must be a JSON object"),
        (training_doc(CheckpointConfig={"S3Uri": "s3://b/c", "LocalPath": "/tmp/ckpt"}),
         "CheckpointConfig.LocalPath", "is outside /opt/ml; use a directory under /opt/ml"),
    ],
    ids=["unknown field", "wrong type", "bad instance type", "not an object", "checkpoint path"],
)  # fmt: skip
async def test_bad_body_is_400_naming_the_field(
    api: Api, body: Any, field: str, needle: str
) -> None:
    r = await api.post(JOBS, body)
    assert r.status_code == 400
    assert r.json()["code"] == "ValidationException"
    assert r.json()["field"] == field
    assert r.json()["message"].startswith(f"{field}: ")
    assert needle in r.json()["message"]


async def test_non_json_body_is_400_saying_json(api: Api) -> None:
    r = await api.client.post(
        JOBS, content=b"{not json", headers={**api.auth, "Content-Type": "application/json"}
    )
    assert r.status_code == 400
    assert "JSON" in r.json()["message"]


async def test_non_json_body_error_names_the_body_not_a_position(api: Api) -> None:
    r = await api.client.post(
        JOBS, content=b"{not json", headers={**api.auth, "Content-Type": "application/json"}
    )
    assert r.json()["field"] == "(body)"
    assert r.json()["message"].startswith("(body): the body is not valid JSON")


async def test_non_json_body_without_key_is_401(api: Api) -> None:
    r = await api.client.post(
        JOBS, content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 401


CHANNEL_FIELD = "InputDataConfig[0].DataSource.S3DataSource.S3Uri"


def channel(uri: str) -> dict[str, Any]:
    return {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": uri}}}


async def test_missing_file_channel_is_400_naming_the_field(api: Api) -> None:
    r = await api.post(JOBS, training_doc(InputDataConfig=[channel(f"file://{api.tmp}/nothing")]))
    assert r.status_code == 400
    assert r.json()["field"] == CHANNEL_FIELD
    assert "does not exist on the server" in r.json()["message"]
    (api.tmp / "data").mkdir()
    ok = await api.post(JOBS, training_doc(InputDataConfig=[channel(f"file://{api.tmp}/data")]))
    assert ok.status_code == 201


async def test_s3_channel_needs_an_object_under_the_prefix(api: Api) -> None:
    r = await api.post(JOBS, training_doc(InputDataConfig=[channel("s3://data/train/")]))
    assert (r.status_code, r.json()["field"]) == (400, CHANNEL_FIELD)
    assert "no object at s3://data/train/" in r.json()["message"]
    assert (await api.get(JOBS)).json()["TrainingJobSummaries"] == []
    put = await api.client.put(
        "/api/v1/objects/data/train/part-0", content=b"1,2\n", headers=api.auth
    )
    assert put.status_code == 200
    assert (
        await api.post(JOBS, training_doc(InputDataConfig=[channel("s3://data/train/")]))
    ).status_code == 201


async def test_list_pages_through_every_job(api: Api) -> None:
    names = [f"job-{i}" for i in range(5)]
    for n in names:
        assert (await api.post(JOBS, training_doc(n))).status_code == 201
    seen: list[str] = []
    token: str | None = None
    for _ in range(5):
        params: dict[str, Any] = {"MaxResults": 2, "SortOrder": "Ascending"}
        if token:
            params["NextToken"] = token
        page = (await api.get(JOBS, **params)).json()
        seen += [s["TrainingJobName"] for s in page["TrainingJobSummaries"]]
        token = page.get("NextToken")
        if token is None:
            break
    assert seen == names
    bad = await api.get(JOBS, MaxResults=0)
    assert (bad.status_code, bad.json()["field"]) == (400, "MaxResults")
    assert (await api.get(JOBS, NextToken="garbage")).json()["field"] == "NextToken"


async def test_describe_missing_is_404(api: Api) -> None:
    r = await api.get(f"{JOBS}/nope")
    assert (r.status_code, r.json()["code"]) == (404, "ResourceNotFound")
    assert "'nope'" in r.json()["message"]


async def test_stop_completed_job_is_409_and_delete_in_progress_is_409(api: Api) -> None:
    await api.post(JOBS, training_doc("done"))
    await api.post(JOBS, training_doc("busy"))
    api.plane.controller.run_pass()
    api.fake.complete("done")
    api.plane.controller.run_pass()
    assert (await api.get(f"{JOBS}/done")).json()["TrainingJobStatus"] == "Completed"
    stop = await api.client.post(f"{JOBS}/done/stop", headers=api.auth)
    assert (stop.status_code, stop.json()["code"]) == (409, "ResourceInUse")
    delete = await api.client.delete(f"{JOBS}/busy", headers=api.auth)
    assert delete.status_code == 409
    assert "stop it first" in delete.json()["message"]
    assert (await api.client.delete(f"{JOBS}/done", headers=api.auth)).status_code == 202


async def test_model_with_missing_artifact_is_400(api: Api) -> None:
    body = {
        "ModelName": "m",
        "PrimaryContainer": {"Image": "i", "ModelDataUrl": "s3://models/m/model.tar.gz"},
    }
    r = await api.post("/api/v1/models", body)
    assert (r.status_code, r.json()["field"]) == (400, "PrimaryContainer.ModelDataUrl")


async def test_endpoint_config_naming_a_missing_model_is_400(api: Api) -> None:
    body = {
        "EndpointConfigName": "c",
        "ProductionVariants": [{"VariantName": "v1", "ModelName": "ghost"}],
    }
    r = await api.post("/api/v1/endpoint-configs", body)
    assert (r.status_code, r.json()["field"]) == (400, "ProductionVariants[0].ModelName")
    assert "'ghost'" in r.json()["message"]


async def test_endpoint_with_missing_config_is_400(api: Api) -> None:
    r = await api.post("/api/v1/endpoints", {"EndpointName": "e", "EndpointConfigName": "ghost"})
    assert (r.status_code, r.json()["field"]) == (400, "EndpointConfigName")


INVOKE = "/endpoints/ep-1/invocations"


async def test_invocation_before_route_is_503_with_retry_after(api: Api) -> None:
    await api.endpoint_chain()
    r = await api.client.post(INVOKE, content=b"1", headers=api.auth)
    assert r.status_code == 503
    assert r.headers["Retry-After"] == "1"
    assert "not in service yet" in r.json()["message"]
    missing = await api.client.post("/endpoints/nope/invocations", content=b"1", headers=api.auth)
    assert (missing.status_code, missing.json()["code"]) == (404, "ResourceNotFound")


async def test_public_endpoint_needs_no_key(api: Api) -> None:
    await api.endpoint_chain(auth_mode="None")
    api.plane.controller.run_pass()
    api.plane.controller.run_pass()
    assert (await api.get("/api/v1/endpoints/ep-1")).json()["EndpointStatus"] == "InService"
    r = await api.client.post(INVOKE, content=b"1,2")
    assert r.status_code == 503  # the fake replica's URL resolves nowhere: auth passed
    assert "no replica of variant 'v1' accepted the connection" in r.json()["message"]


async def test_private_endpoint_in_service_still_needs_a_key(api: Api) -> None:
    await api.endpoint_chain()
    api.plane.controller.run_pass()
    api.plane.controller.run_pass()
    assert (await api.client.post(INVOKE, content=b"1")).status_code == 401


async def test_payload_over_the_limit_is_413(api: Api) -> None:
    await api.endpoint_chain()
    api.plane.controller.run_pass()
    api.plane.controller.run_pass()
    r = await api.client.post(INVOKE, content=b"x" * 1001, headers=api.auth)
    assert (r.status_code, r.json()["code"]) == (413, "PayloadTooLarge")
    assert "1000-byte limit" in r.json()["message"]


async def test_objects_round_trip(api: Api) -> None:
    data = bytes(range(256)) * 10
    put = await api.client.put("/api/v1/objects/bkt/dir/a.bin", content=data, headers=api.auth)
    assert put.status_code == 200
    assert (put.json()["Uri"], put.json()["Size"]) == ("s3://bkt/dir/a.bin", len(data))
    got = await api.client.get("/api/v1/objects/bkt/dir/a.bin", headers=api.auth)
    assert (got.status_code, got.content) == (200, data)
    listed = (await api.get("/api/v1/objects", prefix="s3://bkt/dir/")).json()["Objects"]
    assert [o["Uri"] for o in listed] == ["s3://bkt/dir/a.bin"]
    assert (
        await api.client.delete("/api/v1/objects/bkt/dir/a.bin", headers=api.auth)
    ).status_code == 200
    assert (await api.get("/api/v1/objects", prefix="s3://bkt/dir/")).json()["Objects"] == []
    assert (
        await api.client.get("/api/v1/objects/bkt/dir/a.bin", headers=api.auth)
    ).status_code == 404


async def test_openapi_lists_training_job_paths(api: Api) -> None:
    paths = (await api.client.get("/openapi.json")).json()["paths"]
    assert {JOBS, f"{JOBS}/{{name}}", f"{JOBS}/{{name}}/stop"} <= set(paths)
    assert set(paths[JOBS]) == {"get", "post"}


async def test_metrics_need_a_key_and_count_requests(api: Api) -> None:
    assert (await api.client.get("/metrics")).status_code == 401
    await api.get(JOBS)
    r = await api.get("/metrics")
    assert r.status_code == 200
    assert (
        'orch_api_requests_total{method="GET",route="/api/v1/training-jobs",status="200"}' in r.text
    )


async def test_update_endpoint_checks_its_request_and_the_endpoint_state(api: Api) -> None:
    await api.endpoint_chain()
    ep = "/api/v1/endpoints/ep-1"

    async def update(body: Any) -> httpx.Response:
        return await api.client.patch(ep, json=body, headers=api.auth)

    r = await update({"EndpointConfigName": "ghost"})
    assert (r.status_code, r.json()["field"]) == (400, "EndpointConfigName")
    assert "does not exist" in r.json()["message"]
    r = await update({"EndpointConfigName": "cfg-1"})
    assert r.status_code == 400 and "already serves 'cfg-1'" in r.json()["message"]
    r = await update({"EndpointConfigName": "cfg-2", "Surprise": 1})
    assert r.status_code == 400 and "Surprise" in r.text
    bad_policy = {
        "EndpointConfigName": "cfg-1",
        "DeploymentConfig": {
            "BlueGreenUpdatePolicy": {"TrafficRoutingConfiguration": {"Type": "CANARY"}}
        },
    }
    r = await update(bad_policy)
    assert r.status_code == 400 and "CanarySize is required" in r.text
    config = {
        "EndpointConfigName": "cfg-2",
        "ProductionVariants": [{"VariantName": "v1", "ModelName": "model-1"}],
    }
    assert (await api.post("/api/v1/endpoint-configs", config)).status_code == 201
    api.plane.controller.run_pass()
    r = await update({"EndpointConfigName": "cfg-2"})
    assert r.status_code == 202, r.text
    described = (await api.get(ep)).json()
    assert described["EndpointConfigName"] == "cfg-2"
    assert described["CurrentEndpointConfigName"] == "cfg-1"
    # A second update while this one runs is refused; nothing of the first is lost.
    r = await update({"EndpointConfigName": "cfg-1"})
    assert r.status_code == 409 and "being updated" in r.json()["message"]
    api.plane.controller.run_pass()
    assert (await api.get(ep)).json()["EndpointStatus"] == "Updating"
    r = await api.client.patch(
        "/api/v1/endpoints/nope", json={"EndpointConfigName": "cfg-2"}, headers=api.auth
    )
    assert r.status_code == 404


async def test_weights_and_capacities_in_place(api: Api) -> None:
    await api.endpoint_chain()
    path = "/api/v1/endpoints/ep-1/weights-and-capacities"
    body = {"DesiredWeightsAndCapacities": [{"VariantName": "v1", "DesiredInstanceCount": 2}]}
    r = await api.post(path, body)
    assert r.status_code == 409 and "only while it is InService" in r.json()["message"]
    api.plane.controller.run_pass()
    api.plane.controller.run_pass()
    r = await api.post(
        path, {"DesiredWeightsAndCapacities": [{"VariantName": "nope", "DesiredWeight": 1}]}
    )
    assert (
        r.status_code == 400 and r.json()["field"] == "DesiredWeightsAndCapacities[0].VariantName"
    )
    r = await api.post(path, body)
    assert r.status_code == 202 and r.json()["EndpointArn"] == f"{ARN}:endpoint/ep-1"
    described = (await api.get("/api/v1/endpoints/ep-1")).json()
    assert described["EndpointStatus"] == "Updating"
    assert described["VariantOverrides"]["Variants"] == [
        {"VariantName": "v1", "DesiredWeight": None, "DesiredInstanceCount": 2}
    ]


async def test_lists_sort_by_name_and_status_and_refuse_an_order_they_lack(api: Api) -> None:
    await api.endpoint_chain()
    r = await api.get("/api/v1/endpoints", SortBy="Status", SortOrder="Ascending")
    assert r.status_code == 200 and [e["EndpointName"] for e in r.json()["Endpoints"]] == ["ep-1"]
    r = await api.get("/api/v1/models", SortBy="Status")
    assert r.status_code == 400 and r.json()["field"] == "SortBy"
    r = await api.get("/api/v1/models", SortBy="Name", LastModifiedTimeAfter="2000-01-01T00:00:00Z")
    assert [m["ModelName"] for m in r.json()["Models"]] == ["model-1"]


SPOT = {"EnableManagedSpotTraining": True}


@pytest.mark.parametrize(
    ("body", "field", "needle"),
    [
        (training_doc(RetryStrategy={"MaximumRetryAttempts": 1, "RetryableExitCodes": ["3", "x"]}),
         "RetryStrategy.RetryableExitCodes[1]", "'N' or 'N-M'"),
        (training_doc(RetryStrategy={"MaximumRetryAttempts": 1, "RetryableExitCodes": ["0"]}),
         "RetryStrategy.RetryableExitCodes[0]", "outside 1..255"),
        (training_doc(RetryStrategy={"MaximumRetryAttempts": 1, "RetryableExitCodes": ["200-256"]}),
         "RetryStrategy.RetryableExitCodes[0]", "outside 1..255"),
        (training_doc(RetryStrategy={"MaximumRetryAttempts": 1, "RetryableExitCodes": ["9-3"]}),
         "RetryStrategy.RetryableExitCodes[0]", "reversed"),
        (training_doc(RetryStrategy={"MaximumRetryAttempts": 1, "RetryableExitCodes": ["1-"]}),
         "RetryStrategy.RetryableExitCodes[0]", "'N' or 'N-M'"),
        (training_doc(RetryStrategy={"MaximumRetryAttempts": 0}),
         "RetryStrategy.MaximumRetryAttempts", "greater than or equal to 1"),
        (training_doc(**SPOT, StoppingCondition={"MaxRuntimeInSeconds": 100, "MaxWaitTimeInSeconds": 99}),
         "StoppingCondition.MaxWaitTimeInSeconds", "at least the runtime"),
        (training_doc(StoppingCondition={"MaxRuntimeInSeconds": 100, "MaxWaitTimeInSeconds": 200}),
         "StoppingCondition.MaxWaitTimeInSeconds", "EnableManagedSpotTraining"),
    ],
    ids=["exit code not a number", "exit code 0", "range past 255", "reversed range",
         "open range", "no retries", "wait below runtime", "wait without spot"],
)  # fmt: skip
async def test_bad_retry_and_spot_fields_are_400_naming_the_field(
    api: Api, body: Any, field: str, needle: str
) -> None:
    r = await api.post(JOBS, body)
    assert r.status_code == 400, r.text
    assert (r.json()["code"], r.json()["field"]) == ("ValidationException", field)
    assert needle in r.json()["message"]


async def test_a_spot_job_with_retries_and_exit_codes_is_accepted(api: Api) -> None:
    body = training_doc(
        **SPOT,
        RetryStrategy={"MaximumRetryAttempts": 2, "RetryableExitCodes": ["3", "137-143"]},
        StoppingCondition={"MaxRuntimeInSeconds": 100, "MaxWaitTimeInSeconds": 100},
    )
    r = await api.post(JOBS, body)
    assert r.status_code == 201, r.text
    described = (await api.get(f"{JOBS}/job-1")).json()
    assert described["RetryStrategy"]["RetryableExitCodes"] == ["3", "137-143"]
    assert (described["Attempts"], described["PreemptionCount"]) == ([], 0)

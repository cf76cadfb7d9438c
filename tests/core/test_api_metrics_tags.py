"""REST: a training job's metric series, and tags of any resource by ARN."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from core_builders import training_doc

from orchestrator.api.app import build_control_plane, create_app
from orchestrator.api.auth import new_api_key
from orchestrator.backends.fake import FakeBackend
from orchestrator.settings import Settings
from orchestrator.testing import FakeClock

pytestmark = pytest.mark.anyio
JOBS = "/api/v1/training-jobs"
ARN = "arn:aws:sagemaker:us-east-1:000000000000"
METRICS = [{"Name": "loss", "Regex": r"loss=(\S+)"}, {"Name": "acc", "Regex": r"acc=(\S+)"}]


class Api:
    def __init__(self, client: httpx.AsyncClient, fake: FakeBackend, key: str) -> None:
        self.client, self.fake = client, fake
        self.auth = {"Authorization": f"Bearer {key}"}

    async def post(self, path: str, body: Any) -> httpx.Response:
        return await self.client.post(path, json=body, headers=self.auth)

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(path, params=params, headers=self.auth)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = Settings(home=tmp_path / "home", config_dir=tmp_path / "config", backend="fake")
    fake = FakeBackend(clock=FakeClock())
    plane = build_control_plane(settings, backend=fake)
    key = new_api_key(plane.store, name="t", role="admin", now=datetime.now(tz=UTC))
    app = create_app(plane, run_controller=False)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://orch") as c,
    ):
        yield Api(c, fake, key)
    plane.store.close()


async def _job(api: Api, name: str = "job-1") -> None:
    doc = training_doc(
        name,
        AlgorithmSpecification={"TrainingImage": "example/train:1", "MetricDefinitions": METRICS},
    )
    r = await api.post(JOBS, doc)
    assert r.status_code == 201, r.text


async def test_metrics_returns_every_value_with_time_step_and_epoch(api: Api) -> None:
    await _job(api)
    api.fake.write_log("job-1", "Epoch 1/2 loss=0.9 acc=0.4\n")
    api.fake.clock.advance(60)  # type: ignore[attr-defined]
    api.fake.write_log("job-1", "Epoch 2/2 loss=0.5 acc=0.7\n")
    r = await api.get(f"{JOBS}/job-1/metrics")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["TrainingJobName"] == "job-1"
    by_name = {m["MetricName"]: m["Points"] for m in body["Metrics"]}
    assert set(by_name) == {"loss", "acc"}
    loss = by_name["loss"]
    assert [(p["Value"], p["Step"], p["Epoch"]) for p in loss] == [(0.9, 0, 1), (0.5, 1, 2)]
    times = [datetime.fromisoformat(p["Timestamp"]) for p in loss]
    assert (times[1] - times[0]).total_seconds() == 60


async def test_metric_filter_and_a_metric_the_job_does_not_emit(api: Api) -> None:
    await _job(api)
    api.fake.write_log("job-1", "loss=0.9 acc=0.4\n")
    r = await api.get(f"{JOBS}/job-1/metrics", metric="acc")
    assert [m["MetricName"] for m in r.json()["Metrics"]] == ["acc"]
    r = await api.get(f"{JOBS}/job-1/metrics", metric="f1")
    assert r.status_code == 400
    err = r.json()
    assert err["field"] == "metric"
    assert "'f1'" in err["message"]
    assert "loss, acc" in err["message"]


async def test_a_defined_metric_not_printed_yet_has_no_points(api: Api) -> None:
    await _job(api)
    r = await api.get(f"{JOBS}/job-1/metrics", metric="loss")
    assert r.json()["Metrics"] == [{"MetricName": "loss", "Host": None, "Points": []}]
    assert (await api.get(f"{JOBS}/job-1/metrics")).json()["Metrics"] == []


async def test_resource_usage_is_served_per_host_beside_the_algorithms_metrics(api: Api) -> None:
    await _job(api)
    api.fake.write_log("job-1", "loss=0.9 acc=0.4\n")
    api.fake.write_usage("job-1", "algo-1", {"MemoryUtilization": 10.0, "DiskUtilization": 1.5})
    api.fake.clock.advance(5)  # type: ignore[attr-defined]
    api.fake.write_usage("job-1", "algo-2", {"CPUUtilization": 250.0, "MemoryUtilization": 20.0})
    api.fake.write_usage("job-1", "algo-1", {"CPUUtilization": 98.5, "MemoryUtilization": 11.0})
    body = (await api.get(f"{JOBS}/job-1/metrics")).json()
    got = [(m["MetricName"], m["Host"], [p["Value"] for p in m["Points"]]) for m in body["Metrics"]]
    assert got == [
        ("loss", None, [0.9]),
        ("acc", None, [0.4]),
        ("CPUUtilization", "algo-1", [98.5]),
        ("MemoryUtilization", "algo-1", [10.0, 11.0]),
        ("DiskUtilization", "algo-1", [1.5]),
        ("CPUUtilization", "algo-2", [250.0]),
        ("MemoryUtilization", "algo-2", [20.0]),
    ]
    memory = body["Metrics"][3]["Points"]
    assert [(p["Step"], p["Epoch"]) for p in memory] == [(0, None), (1, None)]
    times = [datetime.fromisoformat(p["Timestamp"]) for p in memory]
    assert (times[1] - times[0]).total_seconds() == 5
    r = await api.get(f"{JOBS}/job-1/metrics", metric="CPUUtilization")
    assert [(m["MetricName"], m["Host"]) for m in r.json()["Metrics"]] == [
        ("CPUUtilization", "algo-1"),
        ("CPUUtilization", "algo-2"),
    ]
    # Not sampled (yet) is no series, not an error.
    r = await api.get(f"{JOBS}/job-1/metrics", metric="GPUUtilization")
    assert r.status_code == 200 and r.json()["Metrics"] == []
    r = await api.get(f"{JOBS}/job-1/metrics", metric="cpu")
    assert r.status_code == 400 and "CPUUtilization" in r.json()["message"]


async def test_metrics_of_an_unknown_job_is_a_404_naming_it(api: Api) -> None:
    r = await api.get(f"{JOBS}/nope/metrics")
    assert r.status_code == 404
    assert "nope" in r.json()["message"]


async def test_metrics_and_tags_need_a_key(api: Api) -> None:
    for path in (f"{JOBS}/job-1/metrics", f"/api/v1/tags?ResourceArn={ARN}:training-job/x"):
        assert (await api.client.get(path)).status_code == 401


# --- tags ------------------------------------------------------------------------------------
async def _tagged(api: Api, body: dict[str, Any]) -> httpx.Response:
    return await api.post("/api/v1/tags", body)


async def test_tags_added_listed_overwritten_and_removed(api: Api) -> None:
    await _job(api)
    arn = f"{ARN}:training-job/job-1"
    r = await _tagged(api, {"ResourceArn": arn, "Tags": [{"Key": "team", "Value": "a"}]})
    assert r.status_code == 200, r.text
    assert r.json()["Tags"] == [{"Key": "team", "Value": "a"}]
    tags = [{"Key": "team", "Value": "b"}, {"Key": "env", "Value": "dev"}]
    await _tagged(api, {"ResourceArn": arn, "Tags": tags})
    listed = (await api.get("/api/v1/tags", ResourceArn=arn)).json()
    assert listed == {"Tags": tags, "NextToken": None}
    described = (await api.get(f"{JOBS}/job-1")).json()
    assert described["Tags"] == tags  # the spec holds them
    r = await api.post("/api/v1/tags/delete", {"ResourceArn": arn, "TagKeys": ["team", "x"]})
    assert r.status_code == 200, r.text
    listed = (await api.get("/api/v1/tags", ResourceArn=arn)).json()
    assert listed["Tags"] == [{"Key": "env", "Value": "dev"}]


async def test_tags_of_every_kind_from_their_creates(api: Api) -> None:
    tags = [{"Key": "team", "Value": "a"}]
    creates = [
        ("/api/v1/models", {"ModelName": "m-1", "PrimaryContainer": {"Image": "x/y:1"}}),
        (
            "/api/v1/endpoint-configs",
            {
                "EndpointConfigName": "cfg-1",
                "ProductionVariants": [{"VariantName": "v1", "ModelName": "m-1"}],
            },
        ),
        ("/api/v1/endpoints", {"EndpointName": "ep-1", "EndpointConfigName": "cfg-1"}),
        (JOBS, training_doc("job-2")),
    ]
    slugs = ["model", "endpoint-config", "endpoint", "training-job"]
    for (path, body), slug, name in zip(
        creates, slugs, ["m-1", "cfg-1", "ep-1", "job-2"], strict=True
    ):
        r = await api.post(path, {**body, "Tags": tags})
        assert r.status_code == 201, r.text
        listed = (await api.get("/api/v1/tags", ResourceArn=f"{ARN}:{slug}/{name}")).json()
        assert listed["Tags"] == tags, slug


async def test_tags_list_in_pages(api: Api) -> None:
    await _job(api)
    arn = f"{ARN}:training-job/job-1"
    tags = [{"Key": f"k{i:02d}", "Value": str(i)} for i in range(7)]
    await _tagged(api, {"ResourceArn": arn, "Tags": tags})
    seen: list[dict[str, str]] = []
    token: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"ResourceArn": arn, "MaxResults": 3}
        if token:
            params["NextToken"] = token
        page = (await api.get("/api/v1/tags", **params)).json()
        seen += page["Tags"]
        pages += 1
        token = page["NextToken"]
        if not token:
            break
    assert seen == tags
    assert pages == 3
    r = await api.get("/api/v1/tags", ResourceArn=arn, NextToken="garbage")
    assert r.status_code == 400
    assert r.json()["field"] == "NextToken"


@pytest.mark.parametrize(
    ("arn", "status", "field"),
    [
        ("not-an-arn", 400, "ResourceArn"),
        (f"{ARN}:notebook-instance/x", 400, "ResourceArn"),
        ("arn:aws:sagemaker:eu-west-1:111111111111:training-job/job-1", 400, "ResourceArn"),
        (f"{ARN}:training-job/", 400, "ResourceArn"),
        (f"{ARN}:training-job/nope", 404, "ResourceArn"),
    ],
)
async def test_a_bad_or_unknown_arn_names_the_field(
    api: Api, arn: str, status: int, field: str
) -> None:
    await _job(api)
    for r in (
        await _tagged(api, {"ResourceArn": arn, "Tags": [{"Key": "a", "Value": "b"}]}),
        await api.get("/api/v1/tags", ResourceArn=arn),
        await api.post("/api/v1/tags/delete", {"ResourceArn": arn, "TagKeys": ["a"]}),
    ):
        assert r.status_code == status, r.text
        assert r.json()["field"] == field


async def test_reserved_keys_and_too_many_tags_are_refused(api: Api) -> None:
    await _job(api)
    arn = f"{ARN}:training-job/job-1"
    r = await _tagged(api, {"ResourceArn": arn, "Tags": [{"Key": "aws:owner", "Value": "x"}]})
    assert r.status_code == 400
    assert r.json()["field"] == "Tags"
    assert "aws:" in r.json()["message"]
    r = await api.post("/api/v1/tags/delete", {"ResourceArn": arn, "TagKeys": ["aws:owner"]})
    assert r.status_code == 400
    assert r.json()["field"] == "TagKeys"
    # More than 50 in one request: refused by the request's shape, naming Tags.
    many = [{"Key": f"k{i}", "Value": ""} for i in range(51)]
    r = await _tagged(api, {"ResourceArn": arn, "Tags": many})
    assert r.status_code == 400
    assert r.json()["field"].startswith("Tags")
    # 50 in all, over two requests: the resource's limit.
    ok = await _tagged(api, {"ResourceArn": arn, "Tags": many[:30]})
    assert ok.status_code == 200
    r = await _tagged(api, {"ResourceArn": arn, "Tags": many[30:]})
    assert r.status_code == 429  # the project's LimitExceededError
    assert "limit is 50" in r.json()["message"]
    listed = (await api.get("/api/v1/tags", ResourceArn=arn)).json()["Tags"]
    assert len(listed) == 30  # nothing of the refused request was kept


async def test_tag_requests_of_the_wrong_shape_name_the_field(api: Api) -> None:
    await _job(api)
    arn = f"{ARN}:training-job/job-1"
    r = await _tagged(api, {"ResourceArn": arn, "Tags": []})
    assert r.status_code == 400
    assert r.json()["field"] == "Tags"
    r = await api.post("/api/v1/tags/delete", {"ResourceArn": arn, "TagKeys": []})
    assert r.status_code == 400
    assert r.json()["field"] == "TagKeys"
    r = await api.get("/api/v1/tags")
    assert r.status_code == 400
    assert r.json()["field"] == "ResourceArn"

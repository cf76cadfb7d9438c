"""``Client``'s transform-job calls and ``Transformer`` over the REST contract of
``/api/v1/transform-jobs`` (served by ``FakeTransformApi``): the request the Transformer builds
with the SageMaker SDK's names and defaults, create / describe / list / stop / delete / logs,
waiting with progress, the errors of failed and stopped jobs, and bad input named.
``Estimator.transformer`` runs against an in-process control plane."""

from __future__ import annotations

import json
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator.api.app import build_control_plane, create_app
from orchestrator.api.auth import new_api_key
from orchestrator.api.service import ControlPlane
from orchestrator.backends.fake import FakeBackend
from orchestrator.client import Client, Estimator, Transformer
from orchestrator.client.transformer import sdk_parameter
from orchestrator.controller.plan.types import ObservedTransform, TransformLaunch
from orchestrator.errors import (
    ConflictError,
    DeadlineExceededError,
    JobFailedError,
    NotFoundError,
    ValidationError,
)
from orchestrator.resources.transform import (
    TransformFileProgress,
    TransformJobState,
    TransformProgress,
)
from orchestrator.settings import Settings
from orchestrator.testing import FakeClock, local_control_plane
from tests.transform_fake import FakeTransformApi

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's testclient warns about httpx at import
    from fastapi.testclient import TestClient

RUNNING = TransformJobState(
    TransformJobStatus="InProgress",
    Progress=TransformProgress(
        FilesTotal=2,
        BytesTotal=300,
        BytesProcessed=100,
        RecordsProcessed=10,
        RecordsPerSecond=5.0,
        Files=[TransformFileProgress(Key="a.csv", SizeBytes=200, BytesProcessed=100)],
    ),
)
DONE = TransformJobState(
    TransformJobStatus="Completed",
    Progress=TransformProgress(
        FilesTotal=2, FilesCompleted=2, BytesTotal=300, BytesProcessed=300, RecordsProcessed=30
    ),
)


@pytest.fixture
def fake() -> FakeTransformApi:
    return FakeTransformApi()


@pytest.fixture
def client(fake: FakeTransformApi) -> Iterator[Client]:
    with Client("http://testserver", "key", transport=fake.transport) as c:
        yield c


def request(name: str = "tj-1", **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "TransformJobName": name,
        "ModelName": "m",
        "TransformInput": {"DataSource": {"S3DataSource": {"S3Uri": "s3://b/in/"}}},
        "TransformOutput": {"S3OutputPath": "s3://b/out"},
        "TransformResources": {"InstanceType": "local", "InstanceCount": 1},
    }
    doc.update(overrides)
    return doc


def sent_bodies(fake: FakeTransformApi) -> list[Any]:
    return [json.loads(r.content) for r in fake.requests if r.method == "POST" and r.content]


# --- the Client's calls ------------------------------------------------------------------------
def test_create_describe_list_stop_delete(client: Client, fake: FakeTransformApi) -> None:
    arn = client.create_transform_job(request("tj-1"))
    assert arn.endswith("transform-job/tj-1")
    client.create_transform_job(request("tj-2"), ModelName="other")  # keyword fields win
    assert sent_bodies(fake)[1]["ModelName"] == "other"
    job = client.describe_transform_job("tj-1")
    assert job.TransformJobStatus == "InProgress" and job.ModelName == "m"
    assert job.Progress.FilesTotal == 0 and job.Progress.Files == []

    listed = client.list_transform_jobs(SortBy="Name", SortOrder="Ascending")
    assert [s.TransformJobName for s in listed.TransformJobSummaries] == ["tj-1", "tj-2"]
    fake.jobs["tj-2"].state = DONE
    done = client.list_transform_jobs(StatusEquals="Completed")
    assert [s.TransformJobName for s in done.TransformJobSummaries] == ["tj-2"]
    page = client.list_transform_jobs(MaxResults=1, NameContains="tj", NextToken=None)
    assert len(page.TransformJobSummaries) == 1 and page.NextToken == "1"
    assert "NextToken" not in fake.requests[-1].url.params  # None is left out

    client.stop_transform_job("tj-1")
    assert client.describe_transform_job("tj-1").TransformJobStatus == "Stopping"
    with pytest.raises(ConflictError, match="stop it and wait"):
        client.delete_transform_job("tj-1")
    client.delete_transform_job("tj-2")
    assert fake.paths("DELETE")[-1] == "/api/v1/transform-jobs/tj-2"
    with pytest.raises(NotFoundError, match="tj-2"):
        client.describe_transform_job("tj-2")


def test_the_same_create_again_is_a_no_op_another_spec_a_conflict(client: Client) -> None:
    arn = client.create_transform_job(request("tj-1"))
    assert client.create_transform_job(request("tj-1")) == arn
    with pytest.raises(ConflictError, match="already exists") as info:
        client.create_transform_job(request("tj-1", ModelName="other"))
    assert info.value.field == "TransformJobName"


def test_logs_by_offset_and_limit(client: Client, fake: FakeTransformApi) -> None:
    client.create_transform_job(request())
    fake.jobs["tj-1"].log = b"instance 0: scoring a.csv\ninstance 1: scoring b.csv\n"
    first = client.transform_job_logs("tj-1", 0, 11)
    assert (first.text, first.next_offset, first.more) == ("instance 0:", 11, True)
    assert fake.requests[-1].url.params["limit"] == "11"
    rest = client.transform_job_logs("tj-1", first.next_offset)
    assert rest.text.startswith(" scoring a.csv") and rest.next_offset == len(fake.jobs["tj-1"].log)
    assert "limit" not in fake.requests[-1].url.params


def test_wait_reports_each_describe_and_the_whole_log(
    client: Client, fake: FakeTransformApi
) -> None:
    client.create_transform_job(request())
    fake.jobs["tj-1"].log = b"line 1\nline 2\n"
    fake.script("tj-1", RUNNING, RUNNING, DONE)
    seen: list[tuple[str, int]] = []
    logged: list[str] = []
    job = client.wait_for_transform_job(
        "tj-1",
        poll=0,
        on_progress=lambda j: seen.append((j.TransformJobStatus, j.Progress.RecordsProcessed)),
        on_log=logged.append,
    )
    assert job.TransformJobStatus == "Completed" and job.Progress.FilesCompleted == 2
    assert seen == [("InProgress", 10), ("InProgress", 10), ("Completed", 30)]
    assert "".join(logged) == "line 1\nline 2\n"


def test_wait_gives_up_after_its_timeout(client: Client) -> None:
    client.create_transform_job(request())
    with pytest.raises(DeadlineExceededError, match="still InProgress"):
        client.wait_for_transform_job("tj-1", poll=0, timeout=0)


# --- Transformer: the request ------------------------------------------------------------------
def test_the_issue_s_example_builds_sagemaker_s_request(
    client: Client, fake: FakeTransformApi
) -> None:
    transformer = Transformer(
        "my-model",
        instance_count=2,
        strategy="MultiRecord",
        max_payload=6,
        assemble_with="Line",
        output_path="s3://bucket/out",
        client=client,
    )
    got = transformer.transform(
        "s3://bucket/in/",
        content_type="text/csv",
        split_type="Line",
        input_filter="$[1:]",
        join_source="Input",
        output_filter="$[0,-1]",
        job_name="batch-1",
        wait=False,
    )
    assert got is None and transformer.latest_transform_job == "batch-1"
    assert sent_bodies(fake) == [
        {
            "TransformJobName": "batch-1",
            "ModelName": "my-model",
            "BatchStrategy": "MultiRecord",
            "MaxPayloadInMB": 6,
            "TransformInput": {
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bucket/in/"}},
                "ContentType": "text/csv",
                "SplitType": "Line",
            },
            "TransformOutput": {"S3OutputPath": "s3://bucket/out", "AssembleWith": "Line"},
            "TransformResources": {"InstanceCount": 2, "InstanceType": "local"},
            "DataProcessing": {
                "InputFilter": "$[1:]", "OutputFilter": "$[0,-1]", "JoinSource": "Input",
            },
        }
    ]  # fmt: skip
    assert transformer.output_path == "s3://bucket/out"


def test_defaults_name_output_path_and_every_other_field(
    client: Client, fake: FakeTransformApi
) -> None:
    transformer = Transformer("my-model", client=client)
    transformer.transform("s3://b/manifest.json", "ManifestFile", wait=False)
    first = transformer.latest_transform_job
    assert first is not None and re.fullmatch(r"my-model-\d{8}-\d{6}-\d{3}", first)
    body = sent_bodies(fake)[0]
    assert body == {
        "TransformJobName": first,
        "ModelName": "my-model",
        "TransformInput": {
            "DataSource": {
                "S3DataSource": {"S3DataType": "ManifestFile", "S3Uri": "s3://b/manifest.json"}
            }
        },
        "TransformOutput": {"S3OutputPath": f"s3://orchestrator/{first}"},
        "TransformResources": {"InstanceCount": 1, "InstanceType": "local"},
    }
    assert transformer.output_path == f"s3://orchestrator/{first}"
    # A default output path is the job's own: the next job gets a new one (as the SDK).
    transformer.transform("s3://b/in/", job_name="second", wait=False)
    assert sent_bodies(fake)[1]["TransformOutput"]["S3OutputPath"] == "s3://orchestrator/second"
    assert transformer.output_path == "s3://orchestrator/second"

    full = Transformer(
        "m",
        1,
        "local",
        accept="text/csv",
        max_concurrent_transforms=4,
        env={"A": "1"},
        tags={"team": "ml"},
        output_kms_key="key-1",
        volume_kms_key="key-2",
        base_transform_job_name="nightly",
        output_path="s3://b/o",
        client=client,
    )
    full.transform(
        "s3://b/in/",
        compression_type="Gzip",
        model_client_config={"InvocationsTimeoutInSeconds": 30, "InvocationsMaxRetries": 1},
        experiment_config={"ExperimentName": "e"},
        wait=False,
    )
    assert full.latest_transform_job is not None
    assert full.latest_transform_job.startswith("nightly-")
    body = sent_bodies(fake)[2]
    assert body["TransformOutput"] == {
        "S3OutputPath": "s3://b/o", "Accept": "text/csv", "KmsKeyId": "key-1",
    }  # fmt: skip
    assert body["TransformResources"]["VolumeKmsKeyId"] == "key-2"
    assert body["TransformInput"]["CompressionType"] == "Gzip"
    assert body["MaxConcurrentTransforms"] == 4 and body["Environment"] == {"A": "1"}
    assert body["Tags"] == [{"Key": "team", "Value": "ml"}]
    assert body["ModelClientConfig"] == {
        "InvocationsTimeoutInSeconds": 30, "InvocationsMaxRetries": 1,
    }  # fmt: skip
    assert body["ExperimentConfig"] == {"ExperimentName": "e"}


@pytest.mark.parametrize(
    ("kwargs", "transform_kwargs", "field", "words"),
    [
        ({}, {"data": "/data/in"}, "data", "s3:// URI"),
        ({"strategy": "Multi"}, {}, "strategy", "BatchStrategy: must be one of"),
        (
            {"assemble_with": "Lines"},
            {},
            "assemble_with",
            "AssembleWith: must be one of 'None' or 'Line'",
        ),
        ({"instance_count": 0}, {}, "instance_count", "InstanceCount"),
        ({"max_payload": 101}, {}, "max_payload", "less than or equal to 100"),
        (
            {"max_concurrent_transforms": 50, "max_payload": 6},
            {},
            "max_concurrent_transforms",
            "max_concurrent_transforms, max_payload: ",
        ),
        ({"output_path": "/tmp/out"}, {}, "output_path", "S3OutputPath"),
        ({}, {"split_type": "Lines"}, "split_type", "'RecordIO' or 'TFRecord'"),
        ({}, {"data_type": "Prefix"}, "data_type", "'S3Prefix' or 'ManifestFile'"),
        ({}, {"join_source": "Output"}, "join_source", "'Input' or 'None'"),
        ({}, {"compression_type": "zip"}, "compression_type", "'Gzip'"),
        ({}, {"model_client_config": {"InvocationsMaxRetries": 9}}, "model_client_config", "3"),
        ({}, {"job_name": "bad name!"}, "job_name", "TransformJobName"),
    ],
)
def test_bad_input_names_the_sdk_parameter_and_sends_nothing(
    client: Client,
    fake: FakeTransformApi,
    kwargs: dict[str, Any],
    transform_kwargs: dict[str, Any],
    field: str,
    words: str,
) -> None:
    transformer = Transformer("m", client=client, **kwargs)
    args = {"data": "s3://b/in/", "wait": False, **transform_kwargs}
    with pytest.raises(ValidationError, match=re.escape(words)) as info:
        transformer.transform(**args)
    assert info.value.field == field
    assert info.value.message.startswith(field)
    assert fake.requests == [] and transformer.latest_transform_job is None


def test_sdk_parameter_maps_request_paths() -> None:
    assert sdk_parameter("TransformOutput.AssembleWith") == "assemble_with"
    assert sdk_parameter("ModelClientConfig.InvocationsMaxRetries") == "model_client_config"
    assert sdk_parameter("Tags[0].Key") == "tags"
    assert sdk_parameter("TransformInputs") is None and sdk_parameter(None) is None


# --- Transformer: waiting and the latest job ---------------------------------------------------
def test_transform_waits_and_returns_the_completed_job(
    client: Client, fake: FakeTransformApi, capsys: pytest.CaptureFixture[str]
) -> None:
    transformer = Transformer("m", output_path="s3://b/out", client=client)
    transformer.transform("s3://b/in/", job_name="tj-1", wait=False)
    fake.jobs["tj-1"].log = b"scored a.csv\n"
    fake.script("tj-1", RUNNING, DONE)
    records: list[int] = []
    job = transformer.wait(
        logs=True, poll=0, on_progress=lambda j: records.append(j.Progress.RecordsProcessed)
    )
    assert job.TransformJobStatus == "Completed" and records == [10, 30]
    assert capsys.readouterr().out == "scored a.csv\n"
    assert transformer.describe().Progress.BytesProcessed == 300


def test_transform_with_wait_raises_with_the_failure_reason(
    client: Client, fake: FakeTransformApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    failed = TransformJobState(
        TransformJobStatus="Failed", FailureReason="ClientError: a.csv line 3: bad feature count"
    )
    fake.script("tj-2", RUNNING, failed)
    monkeypatch.setattr("orchestrator.client.client.time.sleep", lambda _s: None)
    transformer = Transformer("m", output_path="s3://b/out", client=client)
    with pytest.raises(JobFailedError, match=r"tj-2 ended Failed: ClientError: a\.csv line 3"):
        transformer.transform("s3://b/in/", job_name="tj-2")
    assert transformer.latest_transform_job == "tj-2"


def test_a_stopped_job_raises_and_stop_transform_job_waits(
    client: Client, fake: FakeTransformApi
) -> None:
    transformer = Transformer("m", output_path="s3://b/out", client=client)
    with pytest.raises(ValidationError, match="call transform") as info:
        transformer.wait()
    assert info.value.field == "latest_transform_job"
    with pytest.raises(ValidationError, match="call transform"):
        transformer.stop_transform_job()
    transformer.transform("s3://b/in/", job_name="tj-3", wait=False)
    stopped = TransformJobState(TransformJobStatus="Stopped")
    fake.script("tj-3", TransformJobState(TransformJobStatus="Stopping"), stopped)
    job = transformer.stop_transform_job(poll=0)
    assert job is not None and job.TransformJobStatus == "Stopped"
    assert fake.paths("POST")[-1] == "/api/v1/transform-jobs/tj-3/stop"
    with pytest.raises(JobFailedError, match="tj-3 ended Stopped: stopped on request"):
        transformer.wait(poll=0)


def test_attach_takes_an_existing_job_s_settings(client: Client) -> None:
    client.create_transform_job(
        request(
            "tj-9",
            BatchStrategy="SingleRecord",
            MaxPayloadInMB=2,
            TransformOutput={"S3OutputPath": "s3://b/o", "AssembleWith": "Line", "Accept": "a/b"},
            TransformResources={"InstanceType": "local", "InstanceCount": 3},
        )
    )
    transformer = Transformer.attach("tj-9", client=client)
    assert transformer.latest_transform_job == "tj-9" and transformer.model_name == "m"
    assert (transformer.instance_count, transformer.strategy, transformer.max_payload) == (
        3,
        "SingleRecord",
        2,
    )
    assert (transformer.assemble_with, transformer.accept, transformer.output_path) == (
        "Line",
        "a/b",
        "s3://b/o",
    )
    assert transformer.describe().TransformJobName == "tj-9"


# --- Estimator.transformer ---------------------------------------------------------------------
def test_estimator_transformer_makes_the_model_from_the_training_job(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "train.py").write_text("print('hi')\n")
    with local_control_plane(tmp_path, clock=FakeClock()) as local:
        estimator = Estimator(str(src / "train.py"), client=local.client)
        with pytest.raises(ValidationError, match="call fit"):
            estimator.transformer()
        estimator.fit(wait=False, job_name="train-1")
        local.controller.run_pass()
        artifact = "s3://orchestrator/train-1/output/model.tar.gz"
        local.plane.objects.put_bytes(artifact, b"model")
        local.backend.complete("train-1", artifact=artifact)
        local.controller.run_pass()
        transformer = estimator.transformer(
            2, strategy="MultiRecord", assemble_with="Line", output_path="s3://b/out"
        )
        model = local.client.describe_model("train-1")
        assert model.PrimaryContainer is not None
        assert model.PrimaryContainer.ModelDataUrl == artifact
        assert model.PrimaryContainer.Environment == {
            "SAGEMAKER_PROGRAM": "train.py",
            "SAGEMAKER_SUBMIT_DIRECTORY": "s3://orchestrator/train-1/source/sourcedir.tar.gz",
        }
        assert transformer.model_name == "train-1" and transformer.client is local.client
        assert transformer.base_transform_job_name == "train"
        spec = transformer.transform_job_spec("t", "s3://b/in/")
        assert spec["TransformResources"]["InstanceCount"] == 2
        assert spec["BatchStrategy"] == "MultiRecord"
        named = estimator.transformer(model_name="scorer")
        assert named.model_name == "scorer"
        assert local.client.describe_model("scorer").PrimaryContainer is not None


# --- against the control plane's REST API --------------------------------------------------------
class LoggingBackend(FakeBackend):
    """The fake backend with a transform log per job, as the REST API reads it."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__(clock=clock)
        self.transform_logs: dict[str, bytes] = {}

    def launch_transform_instance(self, launch: TransformLaunch) -> None:
        return None

    def observe_transform(self, name: str) -> ObservedTransform:
        return ObservedTransform()

    def stop_transform(self, name: str, *, force: bool) -> None:
        return None

    def cleanup_transform(self, name: str) -> None:
        return None

    def read_transform_logs(self, name: str, offset: int, limit: int) -> tuple[bytes, int]:
        chunk = self.transform_logs.get(name, b"")[offset : offset + limit]
        return chunk, offset + len(chunk)


@dataclass
class Plane:
    plane: ControlPlane
    backend: LoggingBackend
    client: Client

    def end(self, name: str, status: str, reason: str | None = None) -> None:
        """What the controller writes when the job ends."""
        record = self.plane.store.get("TransformJob", name)
        state = {**record.status, "TransformJobStatus": status, "FailureReason": reason}
        now = self.plane.clock.now()
        self.plane.store.update_status(record, state, phase=status, active=False, now=now)


@pytest.fixture
def real(tmp_path: Path) -> Iterator[Plane]:
    settings = Settings(home=tmp_path / "home", config_dir=tmp_path / "config", backend="fake")
    clock = FakeClock()
    backend = LoggingBackend(clock)
    plane = build_control_plane(settings, backend=backend, clock=clock)
    key = new_api_key(plane.store, name="t", role="admin", now=clock.now())
    plane.objects.put_bytes("s3://data/in/a.csv", b"1,2\n3,4\n")
    with TestClient(create_app(plane, run_controller=False)) as http:
        api = Client("http://testserver", key, transport=http._transport)
        api.create_model(ModelName="m", PrimaryContainer={"Image": "x/y:1"})
        try:
            yield Plane(plane, backend, api)
        finally:
            api.close()
            plane.store.close()


def test_the_client_and_transformer_against_the_rest_api(real: Plane) -> None:
    api = real.client
    transformer = Transformer(
        "m", 2, strategy="MultiRecord", assemble_with="Line", output_path="s3://data/out",
        client=api,
    )  # fmt: skip
    transformer.transform(
        "s3://data/in/", content_type="text/csv", split_type="Line", input_filter="$[1:]",
        join_source="Input", job_name="tj-1", wait=False,
    )  # fmt: skip
    job = transformer.describe()
    assert job.TransformJobStatus == "InProgress" and job.Progress == TransformProgress()
    assert job.TransformResources.InstanceCount == 2 and job.DataProcessing is not None
    arn = api.create_transform_job(transformer.transform_job_spec(
        "tj-1", "s3://data/in/", content_type="text/csv", split_type="Line",
        input_filter="$[1:]", join_source="Input",
    ))  # fmt: skip
    assert arn == job.TransformJobArn  # the same create again: the job there
    listed = api.list_transform_jobs(StatusEquals="InProgress", NameContains="tj")
    assert [s.TransformJobName for s in listed.TransformJobSummaries] == ["tj-1"]

    real.backend.transform_logs["tj-1"] = b"instance 0: a.csv\n"
    chunk = api.transform_job_logs("tj-1", 0, 9)
    assert (chunk.text, chunk.next_offset, chunk.more) == ("instance ", 9, True)
    with pytest.raises(ConflictError, match="stop it first"):
        api.delete_transform_job("tj-1")
    real.end("tj-1", "Completed")
    logged: list[str] = []
    done = api.wait_for_transform_job("tj-1", poll=0, on_log=logged.append)
    assert done.TransformJobStatus == "Completed" and "".join(logged) == "instance 0: a.csv\n"
    assert transformer.wait(poll=0).TransformJobStatus == "Completed"

    transformer.transform("s3://data/in/", job_name="tj-2", wait=False)
    transformer.stop_transform_job(wait=False)
    assert api.describe_transform_job("tj-2").TransformJobStatus == "Stopping"
    real.end("tj-2", "Failed", "ClientError: a.csv line 2: bad row")
    with pytest.raises(JobFailedError, match=r"tj-2 ended Failed: ClientError: a\.csv line 2"):
        transformer.wait(poll=0)
    api.delete_transform_job("tj-2")
    with pytest.raises(ValidationError, match="does not exist") as info:
        Transformer("nope", client=api).transform("s3://data/in/", wait=False)
    assert info.value.field == "ModelName"

"""Transform jobs through REST on the in-process control plane: every bad input is a 400 naming
the field before anything is stored; idempotent creates and 409s; Describe with status and
times; the list's filters, orders and pages; stop, delete and logs."""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator.api.app import build_control_plane, create_app
from orchestrator.api.auth import new_api_key
from orchestrator.api.service import ControlPlane
from orchestrator.backends.base import TransformBackend
from orchestrator.backends.fake import FakeBackend
from orchestrator.controller.plan import support
from orchestrator.controller.plan.types import ObservedTransform, TransformLaunch
from orchestrator.settings import Settings
from orchestrator.testing import FakeClock

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette's testclient warns about httpx at import
    from fastapi.testclient import TestClient

JOBS = "/api/v1/transform-jobs"
KIND = "TransformJob"
ARN = "arn:aws:sagemaker:us-east-1:000000000000:transform-job"
INPUT_URI = "TransformInput.DataSource.S3DataSource.S3Uri"


class TransformFake(FakeBackend):
    """The fake backend with a transform log per job (what the API reads)."""

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
class Env:
    http: TestClient
    plane: ControlPlane
    backend: TransformFake
    clock: FakeClock
    headers: dict[str, str]

    def post(self, path: str, body: Any = None) -> Any:
        return self.http.post(path, json=body, headers=self.headers)

    def get(self, path: str, **params: Any) -> Any:
        return self.http.get(path, params=params, headers=self.headers)

    def delete(self, path: str) -> Any:
        return self.http.delete(path, headers=self.headers)

    def create(self, body: dict[str, Any]) -> Any:
        return self.post(JOBS, body)

    def end(self, name: str, status: str, reason: str | None = None) -> None:
        """What the controller writes when the job ends."""
        record = self.plane.store.get(KIND, name)
        state = {**record.status, "TransformJobStatus": status, "FailureReason": reason}
        state["TransformEndTime"] = self.clock.now().isoformat()
        self.plane.store.update_status(
            record, state, phase=status, active=False, now=self.clock.now()
        )


def job(name: str = "tf-1", **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "TransformJobName": name,
        "ModelName": "m",
        "BatchStrategy": "MultiRecord",
        "TransformInput": {
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://data/in/"}},
            "ContentType": "text/csv",
            "SplitType": "Line",
        },
        "TransformOutput": {"S3OutputPath": "s3://data/out/", "AssembleWith": "Line"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 2},
    }
    doc.update(fields)
    return doc


def with_input(uri: str, data_type: str = "S3Prefix", **input_fields: Any) -> dict[str, Any]:
    doc = job()
    doc["TransformInput"]["DataSource"]["S3DataSource"] = {"S3DataType": data_type, "S3Uri": uri}
    doc["TransformInput"].update(input_fields)
    return doc


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    settings = Settings(home=tmp_path / "home", config_dir=tmp_path / "config", backend="fake")
    clock = FakeClock()
    backend = TransformFake(clock)
    plane = build_control_plane(settings, backend=backend, clock=clock)
    key = new_api_key(plane.store, name="t", role="admin", now=clock.now())
    plane.objects.put_bytes("s3://data/in/a.csv", b"1,2\n3,4\n")
    plane.objects.put_bytes("s3://data/in/sub/b.csv", b"5,6\n")
    app = create_app(plane, run_controller=False)
    with TestClient(app) as http:
        e = Env(http, plane, backend, clock, {"Authorization": f"Bearer {key}"})
        r = e.post("/api/v1/models", {"ModelName": "m", "PrimaryContainer": {"Image": "x/y:1"}})
        assert r.status_code == 201, r.text
        yield e
    plane.store.close()


def refused(env: Env, body: dict[str, Any], field: str, *words: str) -> str:
    """A 400 naming ``field`` (and saying ``words``), with nothing stored."""
    r = env.create(body)
    assert r.status_code == 400, r.text
    error = r.json()
    assert error["code"] == "ValidationException"
    assert error["field"] == field, error
    for w in words:
        assert w in error["message"], error["message"]
    assert env.plane.store.find(KIND, body["TransformJobName"]) is None
    return str(error["message"])


# --- create -----------------------------------------------------------------------------------
def test_create_stores_the_job_in_progress_and_describe_shows_spec_status_and_times(
    env: Env,
) -> None:
    created = env.clock.now()
    r = env.create(job(Tags=[{"Key": "team", "Value": "a"}]))
    assert r.status_code == 201, r.text
    assert r.json() == {"TransformJobArn": f"{ARN}/tf-1"}
    d = env.get(f"{JOBS}/tf-1").json()
    assert d["TransformJobName"] == "tf-1" and d["TransformJobArn"] == f"{ARN}/tf-1"
    assert d["TransformJobStatus"] == "InProgress"
    assert d["ModelName"] == "m" and d["BatchStrategy"] == "MultiRecord"
    assert d["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == "s3://data/in/"
    assert d["TransformResources"] == {
        "InstanceType": "ml.m5.large",
        "InstanceCount": 2,
        "VolumeKmsKeyId": None,
        "TransformAmiVersion": None,
    }
    assert d["Tags"] == [{"Key": "team", "Value": "a"}]
    assert d["CreationTime"] == d["LastModifiedTime"] == created.isoformat().replace("+00:00", "Z")
    assert d["Progress"]["FilesTotal"] == 0 and d["Instances"] == [] and d["Conditions"] == []
    record = env.plane.store.get(KIND, "tf-1")
    assert record.active and record.phase == "InProgress"


def test_the_same_create_again_is_the_same_job_and_another_spec_is_a_409(env: Env) -> None:
    assert env.create(job()).status_code == 201
    again = env.create(job())
    assert again.status_code == 200 and again.json() == {"TransformJobArn": f"{ARN}/tf-1"}
    other = env.create(job(MaxPayloadInMB=1))
    assert other.status_code == 409, other.text
    assert other.json()["code"] == "ResourceInUse"
    assert "TransformJob 'tf-1' already exists with a different spec" in other.json()["message"]


def test_the_same_create_again_is_not_checked_again(env: Env) -> None:
    # Idempotent: the job exists, so its input having gone since is not the caller's problem.
    assert env.create(job()).status_code == 201
    for uri in ("s3://data/in/a.csv", "s3://data/in/sub/b.csv"):
        env.plane.objects.delete(uri)
    assert env.create(job()).status_code == 200


def test_a_missing_model_is_refused(env: Env) -> None:
    refused(env, job(ModelName="nope"), "ModelName", "Model 'nope' does not exist", "create it")


def test_an_empty_prefix_is_refused(env: Env) -> None:
    refused(env, with_input("s3://data/nothing/"), INPUT_URI, "no objects under s3://data/nothing/")


def test_a_prefix_in_a_bucket_that_does_not_exist_is_refused(env: Env) -> None:
    refused(env, with_input("s3://no-bucket/in/"), INPUT_URI, "no objects under s3://no-bucket")


def test_a_prefix_may_be_any_start_of_keys(env: Env) -> None:
    # S3Prefix is a key prefix, not a folder: s3://data/in/a matches in/a.csv.
    assert env.create(with_input("s3://data/in/a")).status_code == 201


def test_a_missing_manifest_is_refused(env: Env) -> None:
    body = with_input("s3://data/manifest.json", "ManifestFile")
    refused(env, body, INPUT_URI, "no manifest at s3://data/manifest.json")


def test_a_manifest_that_does_not_parse_is_refused(env: Env) -> None:
    env.plane.objects.put_bytes("s3://data/manifest.json", b'{"prefix": "s3://data/in/"}')
    body = with_input("s3://data/manifest.json", "ManifestFile")
    refused(env, body, INPUT_URI, "the manifest s3://data/manifest.json does not parse")


@pytest.mark.parametrize(
    ("manifest", "words"),
    [
        (b"not json", "is not JSON"),
        (b"[]", "must be a JSON array"),
        (b'["a.csv"]', "entry 0 must be"),
        (b'[{"prefix": "s3://data/in/"}]', "lists no objects after its prefix"),
        (b'[{"prefix": "s3://data/in/"}, "a.csv", "a.csv"]', "entry 2 repeats entry 1"),
    ],
)
def test_each_way_a_manifest_fails_to_parse_is_said(env: Env, manifest: bytes, words: str) -> None:
    env.plane.objects.put_bytes("s3://data/manifest.json", manifest)
    refused(env, with_input("s3://data/manifest.json", "ManifestFile"), INPUT_URI, words)


def test_a_manifest_naming_objects_that_do_not_exist_is_refused(env: Env) -> None:
    doc = [{"prefix": "s3://data/in/"}, "a.csv", "gone.csv", "sub/b.csv", "also-gone.csv"]
    env.plane.objects.put_bytes("s3://data/manifest.json", json.dumps(doc).encode())
    body = with_input("s3://data/manifest.json", "ManifestFile")
    refused(
        env,
        body,
        INPUT_URI,
        "names 2 object(s) that do not exist",
        "entry 2 (s3://data/in/gone.csv)",
    )


def test_a_manifest_whose_prefix_the_store_refuses_names_the_input_field(env: Env) -> None:
    doc = [{"prefix": "s3://b/in/"}, "a.csv"]
    env.plane.objects.put_bytes("s3://data/manifest.json", json.dumps(doc).encode())
    body = with_input("s3://data/manifest.json", "ManifestFile")
    refused(env, body, INPUT_URI, "bucket name 'b' breaks the S3 naming rules")


def test_a_manifest_that_parses_is_taken(env: Env) -> None:
    manifest = json.dumps([{"prefix": "s3://data/in/"}, "a.csv", "sub/b.csv"]).encode()
    env.plane.objects.put_bytes("s3://data/manifest.json", manifest)
    assert env.create(with_input("s3://data/manifest.json", "ManifestFile")).status_code == 201


def test_concurrency_times_payload_over_100_mb_names_both_fields(env: Env) -> None:
    r = env.create(job(MaxConcurrentTransforms=20, MaxPayloadInMB=6))
    assert r.status_code == 400, r.text
    message = r.json()["message"]
    assert "MaxConcurrentTransforms x MaxPayloadInMB is 20 x 6 = 120 MB" in message
    assert "at most 100 MB" in message
    assert env.plane.store.find(KIND, "tf-1") is None


@pytest.mark.parametrize("member", ["InputFilter", "OutputFilter"])
def test_a_filter_that_does_not_parse_names_the_field_and_the_position(
    env: Env, member: str
) -> None:
    field = f"DataProcessing.{member}"
    text = refused(env, job(DataProcessing={member: "$[1:"}), field, "position 4", "'$[1:'")
    assert text.startswith(f"{field}: ")


def test_a_filter_not_starting_with_the_root_is_refused(env: Env) -> None:
    refused(env, job(DataProcessing={"InputFilter": "[0]"}), "DataProcessing.InputFilter", "'$'")


@pytest.mark.parametrize(
    ("processing", "field"),
    [
        ({"InputFilter": "$[1:]"}, "DataProcessing.InputFilter"),
        ({"OutputFilter": "$.score"}, "DataProcessing.OutputFilter"),
        ({"JoinSource": "Input"}, "DataProcessing.JoinSource"),
    ],
)
@pytest.mark.parametrize("content_type", [None, "image/jpeg", "application/x-recordio"])
def test_data_processing_needs_csv_or_json_records(
    env: Env, processing: dict[str, str], field: str, content_type: str | None
) -> None:
    body = job(DataProcessing=processing)
    body["TransformInput"]["ContentType"] = content_type
    refused(
        env,
        body,
        field,
        "needs CSV or JSON records",
        repr(content_type) if content_type else "is not set",
        "use text/csv, application/json or application/jsonlines",
    )


@pytest.mark.parametrize(
    "content_type",
    ["text/csv", "Text/CSV; charset=utf-8", "application/json", "application/jsonlines"],
)
def test_data_processing_takes_csv_and_json(env: Env, content_type: str) -> None:
    body = job(DataProcessing={"InputFilter": "$[1:]", "JoinSource": "Input"})
    body["TransformInput"]["ContentType"] = content_type
    assert env.create(body).status_code == 201


def test_an_output_filter_reads_the_accept_type_when_nothing_is_joined(env: Env) -> None:
    body = job(DataProcessing={"OutputFilter": "$[0]"})
    body["TransformOutput"]["Accept"] = "image/png"
    refused(env, body, "DataProcessing.OutputFilter", "TransformOutput.Accept is 'image/png'")
    body["TransformOutput"]["Accept"] = "text/csv"
    assert env.create(body).status_code == 201


def test_the_root_filter_changes_nothing_and_takes_any_content_type(env: Env) -> None:
    body = job(DataProcessing={"InputFilter": "$", "OutputFilter": "$"})
    body["TransformInput"]["ContentType"] = "image/jpeg"
    assert env.create(body).status_code == 201


def test_what_the_backend_cannot_carry_out_is_refused_through_plan_support(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    rule = support.Rule(
        KIND,
        "TransformResources.VolumeKmsKeyId",
        support.ALL,
        "the instances' volumes are not encrypted with a KMS key",
        support.KMS_INSTEAD,
        lambda s: (
            ["TransformResources.VolumeKmsKeyId"] if s.TransformResources.VolumeKmsKeyId else []
        ),
    )
    monkeypatch.setattr(support, "RULES", (*support.RULES, rule))
    body = job()
    body["TransformResources"]["VolumeKmsKeyId"] = "key-1"
    refused(env, body, "TransformResources.VolumeKmsKeyId", "on the fake backend", "leave it unset")
    assert env.create(job()).status_code == 201


class NoTransforms(FakeBackend):
    """A backend that runs training jobs and endpoints, not transform jobs."""

    launch_transform_instance = None  # type: ignore[assignment]


def test_a_backend_that_runs_no_transform_jobs_refuses_them(env: Env) -> None:
    env.plane.backend = NoTransforms(clock=env.clock)
    env.plane.backend_name = "process"
    assert not isinstance(env.plane.backend, TransformBackend)
    refused(env, job(), "TransformJobName", "the process backend does not run transform jobs")


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (lambda d: d.pop("TransformInput"), "TransformInput", "required field is missing"),
        (lambda d: d.update(Colour="red"), "Colour", "unknown field"),
        (lambda d: d.update(TransformJobName="bad_name"), "TransformJobName", "pattern"),
        (lambda d: d.update(BatchStrategy="Some"), "BatchStrategy", "MultiRecord"),
        (
            lambda d: d["TransformResources"].update(InstanceCount=0),
            "TransformResources.InstanceCount",
            "greater than or equal to 1",
        ),
        (
            lambda d: d["TransformOutput"].update(S3OutputPath="/tmp/out"),
            "TransformOutput.S3OutputPath",
            "must be a URI, s3://bucket/key",
        ),
        (
            lambda d: d.update(ModelClientConfig={"InvocationsMaxRetries": 4}),
            "ModelClientConfig.InvocationsMaxRetries",
            "less than or equal to 3",
        ),
    ],
)
def test_malformed_requests_name_the_field(env: Env, change: Any, field: str, words: str) -> None:
    body = copy.deepcopy(job())
    change(body)
    r = env.create(body)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field and words in r.json()["message"], r.json()


# --- describe, list ---------------------------------------------------------------------------
def test_describe_of_a_missing_job_is_a_404_naming_it(env: Env) -> None:
    r = env.get(f"{JOBS}/nope")
    assert r.status_code == 404
    assert r.json() == {"code": "ResourceNotFound", "message": "TransformJob 'nope' does not exist"}


def make_jobs(env: Env) -> None:
    """a-1 (Completed), b-2 (Failed), a-3 (InProgress), c-4 (Stopped), a-5 (InProgress),
    created a minute apart."""
    for i, name in enumerate(["a-1", "b-2", "a-3", "c-4", "a-5"]):
        if i:
            env.clock.advance(60)
        assert env.create(job(name)).status_code == 201
    env.clock.advance(60)
    env.end("a-1", "Completed")
    env.end("b-2", "Failed", "ClientError: the model answered 400")
    env.end("c-4", "Stopped")


def names(r: Any) -> list[str]:
    assert r.status_code == 200, r.text
    return [s["TransformJobName"] for s in r.json()["TransformJobSummaries"]]


def test_list_is_newest_first_with_summaries(env: Env) -> None:
    make_jobs(env)
    r = env.get(JOBS)
    assert names(r) == ["a-5", "c-4", "a-3", "b-2", "a-1"]
    assert r.json()["NextToken"] is None
    failed = next(s for s in r.json()["TransformJobSummaries"] if s["TransformJobName"] == "b-2")
    assert failed["TransformJobStatus"] == "Failed"
    assert failed["FailureReason"] == "ClientError: the model answered 400"
    assert failed["TransformJobArn"] == f"{ARN}/b-2"
    assert failed["TransformEndTime"] is not None
    assert failed["LastModifiedTime"] > failed["CreationTime"]


def test_list_filters(env: Env) -> None:
    make_jobs(env)
    start = env.clock.now() - timedelta(seconds=300)  # when a-1 was created
    assert names(env.get(JOBS, NameContains="a-")) == ["a-5", "a-3", "a-1"]
    assert names(env.get(JOBS, StatusEquals="InProgress")) == ["a-5", "a-3"]
    assert names(env.get(JOBS, StatusEquals="Stopped")) == ["c-4"]
    assert names(env.get(JOBS, NameContains="a", StatusEquals="Completed")) == ["a-1"]
    after = (start + timedelta(seconds=90)).isoformat()
    assert names(env.get(JOBS, CreationTimeAfter=after)) == ["a-5", "c-4", "a-3"]
    before = (start + timedelta(seconds=90)).isoformat()
    assert names(env.get(JOBS, CreationTimeBefore=before)) == ["b-2", "a-1"]
    ended = env.clock.now() - timedelta(seconds=1)
    assert names(env.get(JOBS, LastModifiedTimeAfter=ended.isoformat())) == ["c-4", "b-2", "a-1"]
    assert names(env.get(JOBS, LastModifiedTimeBefore=ended.isoformat())) == ["a-5", "a-3"]


def test_list_orders(env: Env) -> None:
    make_jobs(env)
    assert names(env.get(JOBS, SortBy="Name", SortOrder="Ascending")) == [
        "a-1", "a-3", "a-5", "b-2", "c-4",
    ]  # fmt: skip
    assert names(env.get(JOBS, SortBy="CreationTime", SortOrder="Ascending")) == [
        "a-1", "b-2", "a-3", "c-4", "a-5",
    ]  # fmt: skip
    by_status = names(env.get(JOBS, SortBy="Status", SortOrder="Ascending"))
    assert by_status == ["a-1", "b-2", "a-3", "a-5", "c-4"]


def test_list_pages(env: Env) -> None:
    make_jobs(env)
    seen: list[str] = []
    token: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"MaxResults": 2, "SortBy": "Name", "SortOrder": "Ascending"}
        if token:
            params["NextToken"] = token
        r = env.get(JOBS, **params)
        page = names(r)
        assert len(page) <= 2
        seen += page
        pages += 1
        token = r.json()["NextToken"]
        if token is None:
            break
    assert seen == ["a-1", "a-3", "a-5", "b-2", "c-4"] and pages == 3


@pytest.mark.parametrize(
    ("params", "field", "words"),
    [
        ({"StatusEquals": "Running"}, "StatusEquals", "'InProgress', 'Completed'"),
        ({"SortBy": "Size"}, "SortBy", "Name"),
        ({"SortOrder": "Up"}, "SortOrder", "Ascending"),
        ({"MaxResults": 0}, "MaxResults", "greater than or equal to 1"),
        ({"MaxResults": 101}, "MaxResults", "less than or equal to 100"),
        ({"CreationTimeAfter": "yesterday"}, "CreationTimeAfter", "datetime"),
    ],
)
def test_bad_list_parameters_name_the_field(
    env: Env, params: dict[str, Any], field: str, words: str
) -> None:
    r = env.get(JOBS, **params)
    assert r.status_code == 400, r.text
    assert r.json()["field"] == field and words in r.json()["message"], r.json()


# --- stop, delete -------------------------------------------------------------------------------
def test_stop_sets_the_flag_and_shows_stopping_at_once(env: Env) -> None:
    env.create(job())
    r = env.post(f"{JOBS}/tf-1/stop")
    assert r.status_code == 202, r.text
    assert r.json() == {"TransformJobName": "tf-1", "TransformJobStatus": "Stopping"}
    assert env.plane.store.get(KIND, "tf-1").stop_requested
    assert env.get(f"{JOBS}/tf-1").json()["TransformJobStatus"] == "Stopping"
    [summary] = env.get(JOBS).json()["TransformJobSummaries"]
    assert summary["TransformJobStatus"] == "Stopping"
    assert env.post(f"{JOBS}/tf-1/stop").status_code == 202  # again: the same


@pytest.mark.parametrize("status", ["Completed", "Failed"])
def test_stopping_a_job_that_ended_is_a_409(env: Env, status: str) -> None:
    env.create(job())
    env.end("tf-1", status)
    r = env.post(f"{JOBS}/tf-1/stop")
    assert r.status_code == 409, r.text
    assert (
        r.json()["message"] == f"TransformJob 'tf-1' has already ended ({status}); nothing to stop"
    )
    assert not env.plane.store.get(KIND, "tf-1").stop_requested


def test_stop_and_delete_of_a_missing_job_are_404s(env: Env) -> None:
    for r in (env.post(f"{JOBS}/nope/stop"), env.delete(f"{JOBS}/nope")):
        assert r.status_code == 404 and "TransformJob 'nope' does not exist" in r.text


def test_delete_needs_the_job_to_have_ended(env: Env) -> None:
    env.create(job())
    r = env.delete(f"{JOBS}/tf-1")
    assert r.status_code == 409, r.text
    assert "TransformJob 'tf-1' is InProgress; stop it first (orch transform stop tf-1)" in r.text
    assert not env.plane.store.get(KIND, "tf-1").delete_requested
    env.end("tf-1", "Stopped")
    r = env.delete(f"{JOBS}/tf-1")
    assert r.status_code == 202 and r.json() == {"TransformJobName": "tf-1"}
    assert env.plane.store.get(KIND, "tf-1").delete_requested


# --- logs -----------------------------------------------------------------------------------------
def test_logs_are_the_backend_s_from_an_offset(env: Env) -> None:
    env.create(job())
    env.backend.transform_logs["tf-1"] = b"[algo-1] ping ok\n[algo-2] ping ok\n"
    r = env.get(f"{JOBS}/tf-1/logs")
    assert r.status_code == 200 and r.content == b"[algo-1] ping ok\n[algo-2] ping ok\n"
    assert r.headers["content-type"].startswith("text/plain")
    assert (r.headers["X-Next-Offset"], r.headers["X-More"]) == ("34", "true")
    r = env.get(f"{JOBS}/tf-1/logs", offset=17, limit=8)
    assert r.content == b"[algo-2]" and r.headers["X-Next-Offset"] == "25"
    env.end("tf-1", "Completed")
    r = env.get(f"{JOBS}/tf-1/logs", offset=34)
    assert r.content == b"" and (r.headers["X-Next-Offset"], r.headers["X-More"]) == ("34", "false")


def test_logs_of_a_missing_job_are_a_404(env: Env) -> None:
    r = env.get(f"{JOBS}/nope/logs")
    assert r.status_code == 404 and "TransformJob 'nope' does not exist" in r.text


@pytest.mark.parametrize(("params", "field"), [({"offset": -1}, "offset"), ({"limit": 0}, "limit")])
def test_bad_log_parameters_name_the_field(env: Env, params: dict[str, int], field: str) -> None:
    env.create(job())
    r = env.get(f"{JOBS}/tf-1/logs", **params)
    assert r.status_code == 400 and r.json()["field"] == field, r.text


def test_logs_on_a_backend_without_transform_jobs_say_so(env: Env) -> None:
    env.create(job())
    env.plane.backend = NoTransforms(clock=env.clock)
    r = env.get(f"{JOBS}/tf-1/logs")
    assert r.status_code == 400, r.text
    assert r.json()["field"] == "TransformJobName"
    assert "the fake backend runs no transform jobs" in r.json()["message"]


# --- tags -----------------------------------------------------------------------------------------
def test_a_transform_job_is_tagged_by_its_arn(env: Env) -> None:
    env.create(job(Tags=[{"Key": "team", "Value": "a"}]))
    arn = f"{ARN}/tf-1"
    r = env.post("/api/v1/tags", {"ResourceArn": arn, "Tags": [{"Key": "env", "Value": "dev"}]})
    assert r.status_code == 200, r.text
    listed = env.get("/api/v1/tags", ResourceArn=arn).json()["Tags"]
    assert listed == [{"Key": "team", "Value": "a"}, {"Key": "env", "Value": "dev"}]
    assert env.get(f"{JOBS}/tf-1").json()["Tags"] == listed
    # Tags play no part in what runs: the job is left to the reconciler as it was.
    record = env.plane.store.get(KIND, "tf-1")
    assert record.phase == "InProgress" and record.active


def test_a_uri_the_object_store_refuses_names_the_input_field(env: Env) -> None:
    refused(env, with_input("s3://b/in/"), INPUT_URI, "bucket name 'b' breaks the S3 naming rules")


# --- auth -----------------------------------------------------------------------------------------
ROUTES = [
    ("POST", JOBS), ("GET", JOBS), ("GET", f"{JOBS}/tf-1"), ("POST", f"{JOBS}/tf-1/stop"),
    ("DELETE", f"{JOBS}/tf-1"), ("GET", f"{JOBS}/tf-1/logs"),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
def test_every_route_needs_a_key(env: Env, method: str, path: str) -> None:
    env.create(job())
    r = env.http.request(method, path, json=job("other"))
    assert r.status_code == 401 and r.json()["code"] == "UnauthorizedException"
    assert env.plane.store.find(KIND, "other") is None
    assert not env.plane.store.get(KIND, "tf-1").stop_requested


def test_an_invoke_key_may_not_touch_transform_jobs(env: Env) -> None:
    key = new_api_key(env.plane.store, name="inv", role="invoke", now=env.clock.now())
    r = env.http.post(JOBS, json=job(), headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 403 and "may not sagemaker:CreateTransformJob" in r.json()["message"]

"""Buckets by account: one account's identities never see, list or guess another's buckets
or objects, through the S3 wire, ``/api/v1/objects`` or the URIs a create names; the answer
for another account's bucket is the one for an absent bucket, its name apart.

The identities' accounts are given here by wrapping ``principal_of_key`` where both front
doors call it: keys named ``tenant-a`` and ``tenant-b`` act for accounts A and B; every other
key (the test's admin) for the server's own account (ROOT)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from orchestrator import tenancy
from orchestrator.access import Principal
from orchestrator.api import auth
from orchestrator.api.auth import new_api_key
from orchestrator.api.usage import storage_usage
from orchestrator.errors import ConflictError, NotFoundError, ValidationError
from orchestrator.objects import FileObjectStore, LocalKeyring, buckets
from orchestrator.objects.store import BUCKET_MARKER
from orchestrator.resources.training import CreateTrainingJobRequest
from orchestrator.resources.transform import CreateTransformJobRequest
from orchestrator.testing import FakeClock, LocalControlPlane, local_control_plane
from orchestrator.usage.pricing import PriceTable

boto3 = pytest.importorskip("boto3", reason="boto3 is in the [dev] extra: pip install -e '.[dev]'")
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

from orchestrator.api.aws import credentials  # noqa: E402

A, B = "111111111111", "222222222222"
ACCOUNTS = {"tenant-a": A, "tenant-b": B}


# --- the store's records and the rules over them -------------------------------------------
@pytest.fixture
def store(tmp_path: Path) -> FileObjectStore:
    return FileObjectStore(tmp_path / "objects", LocalKeyring(tmp_path / "keys" / "keyring.json"))


def test_a_bucket_records_its_account_and_legacy_buckets_are_roots(store: FileObjectStore) -> None:
    assert store.create_bucket("alpha", A) is True
    assert store.create_bucket("alpha", B) is False  # the name is taken: still A's
    assert store.bucket_owner("alpha") == A
    store.put_bytes("s3://implicit/k", b"x")  # made by a put: the server's
    assert store.bucket_owner("implicit") == tenancy.ROOT
    (store.root / "legacy").mkdir()  # a marker from before accounts: the time only
    (store.root / "legacy" / BUCKET_MARKER).write_text("2024-05-01T12:00:00+00:00")
    assert store.bucket_owner("legacy") == tenancy.ROOT
    assert store.bucket_owner("absent") is None
    listed = {b.name: b.account for b in store.list_buckets()}
    assert listed == {"alpha": A, "implicit": "", "legacy": ""}
    legacy = next(b for b in store.list_buckets() if b.name == "legacy")
    assert legacy.created.year == 2024
    assert [p.name for p in store.root.iterdir() if p.name.startswith(".orch-tmp")] == []


def test_each_account_sees_only_its_buckets_and_the_system_all(store: FileObjectStore) -> None:
    store.create_bucket("alpha", A)
    store.create_bucket("beta", B)
    store.put_bytes("s3://legacy/k", b"x")
    with tenancy.acting_as(A):
        assert [b.name for b in buckets.listed(store)] == ["alpha"]
        assert buckets.visible(store, "alpha") and not buckets.visible(store, "beta")
        assert not buckets.visible(store, "legacy") and not buckets.visible(store, "absent")
        with pytest.raises(NotFoundError) as other:
            buckets.need(store, "beta")
        with pytest.raises(NotFoundError) as absent:
            buckets.need(store, "gamma")
        assert other.value.message.replace("beta", "gamma") == absent.value.message
        # A put makes an absent bucket the server's: only the server's account may.
        assert buckets.writable(store, "alpha") and not buckets.writable(store, "absent")
    with tenancy.acting_as(tenancy.ROOT):
        assert [b.name for b in buckets.listed(store)] == ["legacy"]
        assert buckets.writable(store, "absent") and not buckets.writable(store, "alpha")
    assert [b.name for b in buckets.listed(store)] == ["alpha", "beta", "legacy"]  # the system


def test_create_answers_yours_or_taken(store: FileObjectStore) -> None:
    with tenancy.acting_as(A):
        assert buckets.create(store, "alpha") is buckets.Created.CREATED
        assert buckets.create(store, "alpha") is buckets.Created.YOURS
    with tenancy.acting_as(B):
        assert buckets.create(store, "alpha") is buckets.Created.TAKEN
        # Another account's default bucket's name is taken before it is made.
        assert buckets.create(store, f"orchestrator-{A}") is buckets.Created.TAKEN
    assert store.bucket_owner(f"orchestrator-{A}") is None
    assert store.bucket_owner("alpha") == A


def test_make_default_bucket(store: FileObjectStore) -> None:
    assert buckets.make_default_bucket(store, A) == f"orchestrator-{A}"
    assert buckets.make_default_bucket(store, A) == f"orchestrator-{A}"  # idempotent
    assert store.bucket_owner(f"orchestrator-{A}") == A
    store.create_bucket(f"orchestrator-{B}", tenancy.ROOT)  # made by name before B existed
    with pytest.raises(ConflictError, match=f"orchestrator-{B}"):
        buckets.make_default_bucket(store, B)


# --- the front doors ---------------------------------------------------------------------
def _with_account(
    real: Callable[..., Principal | None],
) -> Callable[..., Principal | None]:
    def principal_of_key(*args: Any, **kwargs: Any) -> Principal | None:
        found = real(*args, **kwargs)
        if found is None or kwargs["name"] not in ACCOUNTS:
            return found
        return replace(found, account=ACCOUNTS[kwargs["name"]])

    return principal_of_key


@dataclass
class Tenants:
    local: LocalControlPlane
    s3: dict[str, Any]  # boto3 S3 clients: "a", "b", "root"
    rest: dict[str, httpx.Client]  # /api/v1 clients with the same keys' API keys


@pytest.fixture
def tenants(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Tenants]:
    monkeypatch.setattr(auth, "principal_of_key", _with_account(auth.principal_of_key))
    monkeypatch.setattr(
        credentials, "principal_of_key", _with_account(credentials.principal_of_key)
    )
    with local_control_plane(tmp_path, clock=FakeClock()) as local:
        plane, now = local.plane, local.plane.clock.now()
        s3: dict[str, Any] = {}
        rest: dict[str, httpx.Client] = {}
        for who, name in (("a", "tenant-a"), ("b", "tenant-b"), ("root", "admin")):
            record, secret = plane.access_keys.create(name=name, role="admin", now=now)
            s3[who] = boto3.client(
                "s3",
                endpoint_url=local.url,
                region_name="us-east-1",
                aws_access_key_id=record.access_key_id,
                aws_secret_access_key=secret,
                config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
            )
            key = new_api_key(plane.keys, name=name, role="admin", now=now)
            rest[who] = httpx.Client(base_url=local.url, headers={"Authorization": f"Bearer {key}"})
        try:
            yield Tenants(local, s3, rest)
        finally:
            for c in rest.values():
                c.close()


def _error(call: Callable[[], object]) -> tuple[int, dict[str, str]]:
    with pytest.raises(ClientError) as e:
        call()
    return e.value.response["ResponseMetadata"]["HTTPStatusCode"], e.value.response["Error"]


def test_another_accounts_bucket_is_no_such_bucket_on_the_s3_wire(tenants: Tenants) -> None:
    a, b = tenants.s3["a"], tenants.s3["b"]
    a.create_bucket(Bucket="alpha")
    a.put_object(Bucket="alpha", Key="k", Body=b"secret")
    assert a.get_object(Bucket="alpha", Key="k")["Body"].read() == b"secret"
    b.create_bucket(Bucket="beta")
    b.put_object(Bucket="beta", Key="k", Body=b"b's")

    calls: dict[str, Callable[[Any, str], object]] = {
        "GetObject": lambda c, n: c.get_object(Bucket=n, Key="k"),
        "PutObject": lambda c, n: c.put_object(Bucket=n, Key="k", Body=b"x"),
        "ListObjectsV2": lambda c, n: c.list_objects_v2(Bucket=n),
        "ListObjects": lambda c, n: c.list_objects(Bucket=n),
        "DeleteObject": lambda c, n: c.delete_object(Bucket=n, Key="k"),
        "DeleteObjects": lambda c, n: c.delete_objects(
            Bucket=n, Delete={"Objects": [{"Key": "k"}]}
        ),
        "GetBucketLocation": lambda c, n: c.get_bucket_location(Bucket=n),
        "DeleteBucket": lambda c, n: c.delete_bucket(Bucket=n),
        "CreateMultipartUpload": lambda c, n: c.create_multipart_upload(Bucket=n, Key="k"),
        "CopyObject into it": lambda c, n: c.copy_object(
            Bucket=n, Key="k", CopySource={"Bucket": "beta", "Key": "k"}
        ),
        "CopyObject out of it": lambda c, n: c.copy_object(
            Bucket="beta", Key="stolen", CopySource={"Bucket": n, "Key": "k"}
        ),
    }
    for name, call in calls.items():
        other = _error(lambda call=call: call(b, "alpha"))
        absent = _error(lambda call=call: call(b, "absent"))
        assert other[0] == absent[0] == 404, name
        assert other[1]["Code"] == "NoSuchBucket", name
        assert {**other[1], "BucketName": "absent"} == absent[1], name
    for call in (lambda n: b.head_object(Bucket=n, Key="k"), lambda n: b.head_bucket(Bucket=n)):
        assert _error(lambda call=call: call("alpha")) == _error(lambda call=call: call("absent"))
    # The audit trail's bucket is the server's: to another account, absent like any other.
    audit = _error(lambda: b.put_object(Bucket="orchestrator-audit", Key="k", Body=b"x"))
    assert (audit[0], audit[1]["Code"]) == (404, "NoSuchBucket")
    root = _error(lambda: tenants.s3["root"].put_object(Bucket="orchestrator-audit", Key="k"))
    assert root[1]["Code"] == "AccessDenied"
    # Nothing of A's moved: its object, its bucket.
    assert a.get_object(Bucket="alpha", Key="k")["Body"].read() == b"secret"
    assert [o["Key"] for o in b.list_objects_v2(Bucket="beta")["Contents"]] == ["k"]


def test_list_buckets_lists_the_callers_and_names_are_server_wide(tenants: Tenants) -> None:
    a, b, root = tenants.s3["a"], tenants.s3["b"], tenants.s3["root"]
    a.create_bucket(Bucket="alpha")
    b.create_bucket(Bucket="beta")
    root.create_bucket(Bucket="served")
    tenants.local.plane.objects.put_bytes("s3://legacy/k", b"x")  # no owner recorded: ROOT's
    assert [x["Name"] for x in a.list_buckets()["Buckets"]] == ["alpha"]
    assert a.list_buckets()["Owner"]["ID"] == A
    assert [x["Name"] for x in b.list_buckets()["Buckets"]] == ["beta"]
    served = ["legacy", "orchestrator-audit", "served"]  # the audit trail's is the server's
    assert [x["Name"] for x in root.list_buckets()["Buckets"]] == served
    status, error = _error(lambda: b.create_bucket(Bucket="alpha"))
    assert (status, error["Code"]) == (409, "BucketAlreadyExists")
    assert _error(lambda: a.create_bucket(Bucket="served"))[1]["Code"] == "BucketAlreadyExists"
    a.create_bucket(Bucket="alpha")  # one's own again: 200 in us-east-1, as S3
    assert tenants.local.plane.objects.bucket_owner("alpha") == A
    # A legacy bucket is the server's account's, and no tenant's.
    assert _error(lambda: a.get_object(Bucket="legacy", Key="k"))[1]["Code"] == "NoSuchBucket"
    assert root.get_object(Bucket="legacy", Key="k")["Body"].read() == b"x"


def test_another_accounts_bucket_is_absent_through_the_management_api(
    tenants: Tenants,
) -> None:
    tenants.s3["a"].create_bucket(Bucket="alpha")
    a, b, root = tenants.rest["a"], tenants.rest["b"], tenants.rest["root"]
    assert a.put("/api/v1/objects/alpha/k", content=b"secret").status_code == 200
    assert a.get("/api/v1/objects/alpha/k").content == b"secret"
    # (The server's own account's PUT into an absent bucket makes it: not compared.)
    for method, who in (("GET", b), ("PUT", b), ("DELETE", b), ("GET", root), ("DELETE", root)):
        other = who.request(method, "/api/v1/objects/alpha/k", content=b"x")
        absent = who.request(method, "/api/v1/objects/absent/k", content=b"x")
        assert (other.status_code, absent.status_code) == (404, 404), method
        assert other.json()["message"].replace("alpha", "absent") == absent.json()["message"]
        assert other.json()["field"] == absent.json()["field"] == "bucket"
    listing = b.get("/api/v1/objects", params={"prefix": "s3://alpha/"})
    assert listing.status_code == 200 and listing.json() == {"Objects": []}
    assert a.get("/api/v1/objects", params={"prefix": "s3://alpha/"}).json()["Objects"]
    assert b.put("/api/v1/objects/orchestrator-audit/k", content=b"x").status_code == 404
    assert root.put("/api/v1/objects/orchestrator-audit/k", content=b"x").status_code == 403
    # A tenant's put never makes a bucket (it would be the server's); the server's own may.
    assert b.put("/api/v1/objects/fresh/k", content=b"x").status_code == 404
    assert root.put("/api/v1/objects/fresh/k", content=b"x").status_code == 200
    assert a.get("/api/v1/objects/alpha/k").content == b"secret"


def _job(name: str, **fields: Any) -> dict[str, Any]:
    return {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingImage": "example/train:1"},
        "RoleArn": "arn:aws:iam::000000000000:role/x",
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1, "VolumeSizeInGB": 1},
        "StoppingCondition": {"MaxRuntimeInSeconds": 60},
        **fields,
    }


def _channel(uri: str) -> list[dict[str, Any]]:
    return [{"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": uri}}}]


def test_a_create_naming_another_accounts_bucket_is_refused(tenants: Tenants) -> None:
    tenants.s3["a"].create_bucket(Bucket="alpha")
    tenants.s3["a"].put_object(Bucket="alpha", Key="train/part-0", Body=b"1,2\n")
    tenants.s3["b"].create_bucket(Bucket="beta")
    tenants.s3["b"].put_object(Bucket="beta", Key="train/part-0", Body=b"1,2\n")
    b = tenants.rest["b"]
    channel = "InputDataConfig[0].DataSource.S3DataSource.S3Uri"
    cases = {
        channel: lambda n: _job("j", InputDataConfig=_channel(f"s3://{n}/train/")),
        "OutputDataConfig.S3OutputPath": lambda n: _job(
            "j", InputDataConfig=_channel("s3://beta/train/"),
            OutputDataConfig={"S3OutputPath": f"s3://{n}/out"},
        ),
        "CheckpointConfig.S3Uri": lambda n: _job(
            "j", InputDataConfig=_channel("s3://beta/train/"),
            OutputDataConfig={"S3OutputPath": "s3://beta/out"},
            CheckpointConfig={"S3Uri": f"s3://{n}/checkpoints"},
        ),
    }  # fmt: skip
    for field, doc in cases.items():
        other = b.post("/api/v1/training-jobs", json=doc("alpha"))
        absent = b.post("/api/v1/training-jobs", json=doc("absent"))
        assert (other.status_code, other.json()["field"]) == (400, field), other.text
        assert "does not exist or is not your account's" in other.json()["message"]
        assert other.json()["message"].replace("alpha", "absent") == absent.json()["message"]
    assert b.get("/api/v1/training-jobs").json()["TrainingJobSummaries"] == []
    ok = b.post(
        "/api/v1/training-jobs",
        json=_job(
            "j", InputDataConfig=_channel("s3://beta/train/"),
            OutputDataConfig={"S3OutputPath": "s3://beta/out"},
        ),
    )  # fmt: skip
    assert ok.status_code == 201, ok.text


def test_the_service_checks_the_callers_account(tenants: Tenants) -> None:
    plane = tenants.local.plane
    tenants.s3["a"].create_bucket(Bucket="alpha")
    tenants.s3["a"].put_object(Bucket="alpha", Key="model.tar.gz", Body=b"m")
    req = CreateTrainingJobRequest.model_validate(
        _job(
            "k", InputDataConfig=_channel("s3://alpha/model.tar.gz"),
            OutputDataConfig={"S3OutputPath": "s3://alpha/out"},
        )
    )  # fmt: skip
    with tenancy.acting_as(B), pytest.raises(ValidationError) as e:
        plane.create_training_job(req)
    assert e.value.field == "InputDataConfig[0].DataSource.S3DataSource.S3Uri"
    with tenancy.acting_as(A):
        plane.create_training_job(req)
    # The server's own account may still name an output bucket a put will make (legacy).
    with tenancy.acting_as(tenancy.ROOT):
        plane.check_bucket("s3://not-yet/out", "OutputDataConfig.S3OutputPath", output=True)
    with tenancy.acting_as(A), pytest.raises(ValidationError, match="not-yet"):
        plane.check_bucket("s3://not-yet/out", "OutputDataConfig.S3OutputPath", output=True)


def test_a_transform_reads_only_the_callers_buckets(tenants: Tenants) -> None:
    plane = tenants.local.plane
    plane.objects.create_bucket("alpha", A)
    plane.objects.put_bytes("s3://alpha/in/a.csv", b"1,2\n")
    plane.objects.create_bucket("beta", B)
    field = "TransformInput.DataSource.S3DataSource.S3Uri"

    def check(uri: str, data_type: str = "S3Prefix") -> str:
        req = CreateTransformJobRequest.model_validate(
            {
                "TransformJobName": "t",
                "ModelName": "m",
                "TransformInput": {
                    "DataSource": {"S3DataSource": {"S3DataType": data_type, "S3Uri": uri}}
                },
                "TransformOutput": {"S3OutputPath": "s3://beta/out/"},
                "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
            }
        )
        with tenancy.acting_as(B), pytest.raises(ValidationError) as e:
            plane.transform._check_input(req)
        assert e.value.field == field
        return e.value.message

    assert check("s3://alpha/in/").replace("alpha", "absent") == check("s3://absent/in/")
    other = check("s3://alpha/in/a.csv", "ManifestFile")
    assert other.replace("alpha", "absent") == check("s3://absent/m.json", "ManifestFile").replace(
        "m.json", "in/a.csv"
    )
    # A manifest of B's own naming A's prefix names objects that, for B, do not exist.
    plane.objects.put_bytes("s3://beta/m.json", b'[{"prefix": "s3://alpha/in/"}, "a.csv"]')
    assert "names 1 object(s) that do not exist" in check("s3://beta/m.json", "ManifestFile")
    with tenancy.acting_as(A):
        plane.transform._check_input(
            CreateTransformJobRequest.model_validate(
                {
                    "TransformJobName": "t",
                    "ModelName": "m",
                    "TransformInput": {"DataSource": {"S3DataSource": {"S3Uri": "s3://alpha/in/"}}},
                    "TransformOutput": {"S3OutputPath": "s3://alpha/out/"},
                    "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
                }
            )
        )


def test_a_tuning_jobs_trials_write_only_to_the_callers_buckets(tenants: Tenants) -> None:
    tenants.s3["a"].create_bucket(Bucket="alpha")
    tenants.s3["b"].create_bucket(Bucket="beta")

    def tuning(output: str) -> dict[str, Any]:
        ranges = {"Name": "lr", "MinValue": "0.001", "MaxValue": "0.1"}
        return {
            "HyperParameterTuningJobName": "tj",
            "HyperParameterTuningJobConfig": {
                "Strategy": "Random",
                "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "loss"},
                "ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 1},
                "ParameterRanges": {"ContinuousParameterRanges": [ranges]},
            },
            "TrainingJobDefinition": {
                "AlgorithmSpecification": {
                    "TrainingImage": "img:1",
                    "MetricDefinitions": [{"Name": "loss", "Regex": "loss=(\\S+)"}],
                },
                "OutputDataConfig": {"S3OutputPath": output},
            },
        }

    b = tenants.rest["b"]
    path = "/api/v1/hyper-parameter-tuning-jobs"
    other = b.post(path, json=tuning("s3://alpha/hpo"))
    absent = b.post(path, json=tuning("s3://absent/hpo"))
    field = "TrainingJobDefinition.OutputDataConfig.S3OutputPath"
    assert (other.status_code, other.json()["field"]) == (400, field), other.text
    assert other.json()["message"].replace("alpha", "absent") == absent.json()["message"]
    assert b.post(path, json=tuning("s3://beta/hpo")).status_code == 201
    # No OutputDataConfig: the trials write to the account's default bucket (made first).
    doc = tuning("s3://beta/hpo")
    doc["HyperParameterTuningJobName"] = "tj2"
    del doc["TrainingJobDefinition"]["OutputDataConfig"]
    refused = b.post(path, json=doc)
    assert refused.status_code == 400 and refused.json()["field"] == field, refused.text
    assert f"orchestrator-{B}" in refused.json()["message"]
    buckets.make_default_bucket(tenants.local.plane.objects, B)
    assert b.post(path, json=doc).status_code == 201
    assert b.post(path, json=doc).status_code == 200  # the same again
    stored = tenants.local.plane.store.get("HyperParameterTuningJob", "tj2").spec
    output = stored["TrainingJobDefinition"]["OutputDataConfig"]["S3OutputPath"]
    assert output == f"s3://orchestrator-{B}/training-jobs"


def test_a_tenants_job_with_no_output_path_writes_to_its_default_bucket(
    tenants: Tenants,
) -> None:
    plane = tenants.local.plane
    tenants.s3["b"].create_bucket(Bucket="beta")
    tenants.s3["b"].put_object(Bucket="beta", Key="train/part-0", Body=b"1,2\n")
    b = tenants.rest["b"]
    doc = _job("j", InputDataConfig=_channel("s3://beta/train/"))
    refused = b.post("/api/v1/training-jobs", json=doc)  # its default bucket is not made yet
    assert (refused.status_code, refused.json()["field"]) == (
        400,
        "OutputDataConfig.S3OutputPath",
    )
    assert f"orchestrator-{B}" in refused.json()["message"]
    assert buckets.make_default_bucket(plane.objects, B) == f"orchestrator-{B}"
    assert b.post("/api/v1/training-jobs", json=doc).status_code == 201
    assert b.post("/api/v1/training-jobs", json=doc).status_code == 200  # the same again
    described = b.get("/api/v1/training-jobs/j").json()
    assert described["OutputDataConfig"]["S3OutputPath"] == f"s3://orchestrator-{B}/training-jobs"
    # The server's own account's job keeps the server's default (no OutputDataConfig).
    root = tenants.rest["root"]
    root.put("/api/v1/objects/data/train/part-0", content=b"1,2\n")
    made = root.post(
        "/api/v1/training-jobs", json=_job("r", InputDataConfig=_channel("s3://data/train/"))
    )
    assert made.status_code == 201, made.text
    assert root.get("/api/v1/training-jobs/r").json().get("OutputDataConfig") is None


def test_storage_usage_counts_the_callers_buckets(store: FileObjectStore) -> None:
    store.create_bucket("alpha", A)
    store.put_bytes("s3://alpha/k", b"12345")
    store.put_bytes("s3://legacy/k", b"x")
    prices = PriceTable()
    with tenancy.acting_as(A):
        assert [(u.Bucket, u.Bytes) for u in storage_usage(store, prices)] == [("alpha", 5)]
    assert [u.Bucket for u in storage_usage(store, prices)] == ["alpha", "legacy"]


def test_a_model_naming_another_accounts_artifact_is_refused(tenants: Tenants) -> None:
    tenants.s3["a"].create_bucket(Bucket="alpha")
    tenants.s3["a"].put_object(Bucket="alpha", Key="model.tar.gz", Body=b"m")

    def model(name: str, url: str) -> dict[str, Any]:
        return {"ModelName": name, "PrimaryContainer": {"Image": "x/y:1", "ModelDataUrl": url}}

    b, a = tenants.rest["b"], tenants.rest["a"]
    other = b.post("/api/v1/models", json=model("m", "s3://alpha/model.tar.gz"))
    absent = b.post("/api/v1/models", json=model("m", "s3://absent/model.tar.gz"))
    assert (other.status_code, other.json()["field"]) == (400, "PrimaryContainer.ModelDataUrl")
    assert other.json()["message"].replace("alpha", "absent") == absent.json()["message"]
    assert a.post("/api/v1/models", json=model("m", "s3://alpha/model.tar.gz")).status_code == 201

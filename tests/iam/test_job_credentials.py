"""A job's own credential: the policy it gets (table-driven, evaluated by the real policy
engine) and the minting, replacing and revoking of its keys (a real SQL store and keyring)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator.api.auth import authenticate
from orchestrator.api.aws.credentials import AccessKeys
from orchestrator.api.jobcreds import JobCredentials
from orchestrator.controller.plan.credentials import (
    credential_expiry,
    job_identity,
    job_of_identity,
    output_prefix,
    prefix_arn,
    scope_policy,
    training_job_policy,
)
from orchestrator.controller.plan.types import JobLaunch
from orchestrator.errors import AuthenticationError
from orchestrator.iam import policy_set
from orchestrator.iam.engine import ALLOW
from orchestrator.iam.policy import parse_policy
from orchestrator.objects.keys import LocalKeyring
from orchestrator.resources.training import CreateTrainingJobRequest
from orchestrator.sigv4 import SignatureError
from orchestrator.store.state import StateStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)
OUT = "s3://out/jobs/j1/output/model.tar.gz"


def spec(**fields: Any) -> CreateTrainingJobRequest:
    doc: dict[str, Any] = {
        "TrainingJobName": "j1",
        "AlgorithmSpecification": {"TrainingImage": "example/train:1"},
        "InputDataConfig": [
            {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": "s3://data/train/"}}},
            {"ChannelName": "test", "DataSource": {"S3DataSource": {"S3Uri": "s3://data/test"}}},
        ],
        "OutputDataConfig": {"S3OutputPath": "s3://out/jobs"},
    }
    doc.update(fields)
    return CreateTrainingJobRequest.model_validate(doc)


def allowed(document: dict[str, Any], action: str, resource: str) -> bool:
    policies = policy_set([parse_policy(document, name="job-scope")], "job/training/j1")
    return policies.decide(action, resource) == ALLOW


JOB_ARN = "arn:aws:sagemaker:us-east-1:000000000000:training-job/j1"
CHECKPOINTS = {"CheckpointConfig": {"S3Uri": "s3://ckpt/j1"}}


@pytest.mark.parametrize(
    ("fields", "action", "resource", "expected"),
    [
        # Its channels: read, never written.
        ({}, "s3:GetObject", "arn:aws:s3:::data/train/part-0.csv", True),
        ({}, "s3:GetObject", "arn:aws:s3:::data/test", True),
        ({}, "s3:GetObject", "arn:aws:s3:::data/testing/x", True),  # a prefix, as S3 reads it
        ({}, "s3:PutObject", "arn:aws:s3:::data/train/part-0.csv", False),
        ({}, "s3:DeleteObject", "arn:aws:s3:::data/train/part-0.csv", False),
        # A directory prefix does not reach its neighbours; other buckets are out of reach.
        ({}, "s3:GetObject", "arn:aws:s3:::data/train-other/x", False),
        ({}, "s3:GetObject", "arn:aws:s3:::data/secret.csv", False),
        ({}, "s3:GetObject", "arn:aws:s3:::orchestrator/keys.json", False),
        # Its own output prefix: written and read back; another job's is not.
        ({}, "s3:PutObject", "arn:aws:s3:::out/jobs/j1/output/extra.bin", True),
        ({}, "s3:AbortMultipartUpload", "arn:aws:s3:::out/jobs/j1/output/x", True),
        ({}, "s3:GetObject", "arn:aws:s3:::out/jobs/j1/output/model.tar.gz", True),
        ({}, "s3:PutObject", "arn:aws:s3:::out/jobs/j10/output/model.tar.gz", False),
        ({}, "s3:PutObject", "arn:aws:s3:::out/jobs/j2/output/model.tar.gz", False),
        ({}, "s3:DeleteObject", "arn:aws:s3:::out/jobs/j1/output/model.tar.gz", False),
        # No listing, no bucket actions, no other API.
        ({}, "s3:ListBucket", "arn:aws:s3:::data", False),
        ({}, "s3:ListAllMyBuckets", "arn:aws:s3:::*", False),
        ({}, "s3:CreateBucket", "arn:aws:s3:::data", False),
        ({}, "sagemaker:CreateTrainingJob", "arn:aws:sagemaker:us-east-1:0:training-job/x", False),
        ({}, "sagemaker:DescribeTrainingJob", JOB_ARN, True),
        ({}, "sagemaker:DescribeTrainingJob", JOB_ARN + "0", False),
        ({}, "sagemaker:StopTrainingJob", JOB_ARN, False),
        ({}, "orchestrator:GetCallerIdentity", "*", True),
        ({}, "orchestrator:ListAccounts", "*", False),
        # Checkpoints: read and written under their prefix only.
        (CHECKPOINTS, "s3:GetObject", "arn:aws:s3:::ckpt/j1/step-10.pt", True),
        (CHECKPOINTS, "s3:PutObject", "arn:aws:s3:::ckpt/j1/step-10.pt", True),
        (CHECKPOINTS, "s3:PutObject", "arn:aws:s3:::ckpt/j10/step-10.pt", False),
        ({}, "s3:PutObject", "arn:aws:s3:::ckpt/j1/step-10.pt", False),
    ],
)
def test_a_training_job_policy_allows_its_own_data_and_nothing_else(
    fields: dict[str, Any], action: str, resource: str, expected: bool
) -> None:
    document = training_job_policy(spec(**fields), OUT, JOB_ARN)
    assert allowed(document, action, resource) is expected


def test_file_channels_get_no_statement_and_no_inputs_no_reads() -> None:
    doc = spec(
        InputDataConfig=[
            {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": "file:///data"}}}
        ]
    )
    document = training_job_policy(doc, OUT)
    reads = [s for s in document["Statement"] if s["Sid"] == "ReadInputs"]
    assert reads[0]["Resource"] == ["arn:aws:s3:::out/jobs/j1/*"]  # only its own output
    assert not allowed(document, "s3:GetObject", "arn:aws:s3:::data/x")


def test_a_policy_with_nothing_to_allow_denies_everything() -> None:
    document = scope_policy([], [])
    parse_policy(document)  # a valid document
    assert not allowed(document, "s3:GetObject", "arn:aws:s3:::any/thing")


@pytest.mark.parametrize(
    ("uri", "arn"),
    [
        ("s3://b/data/", "arn:aws:s3:::b/data/*"),
        ("s3://b/data", "arn:aws:s3:::b/data*"),
        ("s3://b", "arn:aws:s3:::b/*"),
        ("file:///tmp/x", None),
        ("s3:///x", None),
    ],
)
def test_prefix_arn(uri: str, arn: str | None) -> None:
    assert prefix_arn(uri) == arn


def test_output_prefix_and_identities() -> None:
    assert output_prefix(OUT) == "s3://out/jobs/j1/"
    assert job_identity("training", "j1") == "job/training/j1"
    assert job_of_identity("job/training/j1") == ("training", "j1")
    assert job_of_identity("admin") is None
    assert job_of_identity("job/training") is None


def test_the_credential_expires_after_the_longest_run_and_a_margin() -> None:
    s = spec(StoppingCondition={"MaxRuntimeInSeconds": 600})
    assert credential_expiry(s, NOW, margin=60) == NOW + timedelta(seconds=660)
    spot = spec(
        EnableManagedSpotTraining=True,
        StoppingCondition={"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 900},
    )
    assert credential_expiry(spot, NOW, margin=0) == NOW + timedelta(seconds=900)


# --- minting and revoking ---------------------------------------------------------------------
@pytest.fixture
def issuer(tmp_path: Path) -> JobCredentials:
    store = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    access = AccessKeys(store, LocalKeyring(tmp_path / "keyring.json"), ttl=0.0)
    return JobCredentials(
        store, access, endpoint_url="http://127.0.0.1:9", region="us-east-1",
        account_id="000000000000", now=lambda: datetime.now(UTC),
    )  # fmt: skip


def launch(attempt: int = 1, name: str = "j1") -> JobLaunch:
    return JobLaunch(name, attempt, spec(TrainingJobName=name), OUT)


def sigv4_works(issuer: JobCredentials, akid: str) -> bool:
    try:
        issuer.access.signing_key(akid, "20260101", "us-east-1", "s3")
    except SignatureError:
        return False
    return True


def api_key_works(issuer: JobCredentials, key: str) -> bool:
    try:
        authenticate(issuer.keys, key)
    except AuthenticationError:
        return False
    return True


def test_issue_hands_the_standard_variables_of_a_scoped_expiring_identity(
    issuer: JobCredentials,
) -> None:
    env = issuer.issue(launch(), "123456789012")
    assert env["AWS_ENDPOINT_URL"] == env["ORCH_ENDPOINT_URL"] == "http://127.0.0.1:9"
    assert sigv4_works(issuer, env["AWS_ACCESS_KEY_ID"])
    principal = authenticate(issuer.keys, env["ORCH_API_KEY"])
    assert principal.name == "job/training/j1"
    assert principal.account == "123456789012"  # its code acts in the job's own account
    assert principal.policies.decide("s3:GetObject", "arn:aws:s3:::data/train/a") == ALLOW
    assert principal.policies.decide("s3:GetObject", "arn:aws:s3:::data/other") != ALLOW
    arn = "arn:aws:sagemaker:us-east-1:123456789012:training-job/j1"
    assert principal.policies.decide("sagemaker:DescribeTrainingJob", arn) == ALLOW
    key = next(k for k in issuer.keys.list_api_keys() if k.identity == "job/training/j1")
    assert key.expires_at is not None and key.expires_at > datetime.now(UTC)
    assert key.expires_at < datetime.now(UTC) + timedelta(days=2)  # MaxRuntime 1 day + 1 h


def test_a_launch_planned_again_replaces_the_interrupted_ones_keys(
    issuer: JobCredentials,
) -> None:
    first = issuer.issue(launch(1))
    again = issuer.issue(launch(1))  # the controller died before the backend started it
    second = issuer.issue(launch(2))
    assert not sigv4_works(issuer, first["AWS_ACCESS_KEY_ID"])
    assert not api_key_works(issuer, again["ORCH_API_KEY"])
    assert sigv4_works(issuer, second["AWS_ACCESS_KEY_ID"])
    live = [k for k in issuer.keys.list_api_keys() if not k.revoked]
    assert [k.name for k in live] == ["job/training/j1/attempt-2"]


def test_revoke_and_sweep_end_the_keys_of_jobs_that_no_longer_run(
    issuer: JobCredentials,
) -> None:
    j1, j2, j3 = (issuer.issue(launch(name=n)) for n in ("j1", "j2", "j3"))
    issuer.revoke("training", "j1")
    issuer.revoke("training", "j1")  # idempotent
    assert not sigv4_works(issuer, j1["AWS_ACCESS_KEY_ID"])
    assert not api_key_works(issuer, j1["ORCH_API_KEY"])
    # After a restart: j3 ended while the controller was down; j2 still runs.
    assert issuer.sweep({"j2"}) == ["j3"]
    assert sigv4_works(issuer, j2["AWS_ACCESS_KEY_ID"])
    assert not sigv4_works(issuer, j3["AWS_ACCESS_KEY_ID"])
    assert issuer.sweep({"j2"}) == []


def test_a_revoked_key_is_dropped_from_the_key_caches_at_once(issuer: JobCredentials) -> None:
    told: list[str] = []
    issuer.access.revocation_listeners.append(told.append)
    env = issuer.issue(launch())
    issuer.revoke("training", "j1")
    api_key_id = env["ORCH_API_KEY"].split("_")[1]
    assert sorted(told) == sorted([api_key_id, env["AWS_ACCESS_KEY_ID"]])

"""Two accounts, A and B, on one control plane (the fake backend, served in-process), each
with an administrator made by the server's own administrator: a REST client and a boto3
SageMaker client (SigV4) for each."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from orchestrator import tenancy
from orchestrator.client import Client
from orchestrator.objects.buckets import default_bucket
from orchestrator.testing import FakeClock, LocalControlPlane, local_control_plane

boto3 = pytest.importorskip("boto3", reason="boto3 is in the [dev] extra: pip install -e '.[dev]'")
from botocore.config import Config  # noqa: E402

REGION = "us-east-1"
ROLE = "arn:aws:iam::111122223333:role/x"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
SOURCE = "s3://tenancy/src/sourcedir.tar.gz"


@dataclass
class Tenant:
    account: str  # its 12-digit id
    admin: str  # its administrator's identity
    key: str  # the administrator's API key
    http: httpx.Client  # REST, with the key
    client: Client
    sagemaker: Any  # boto3, SigV4 with the administrator's access key
    access_key_id: str
    secret: str

    @property
    def bucket(self) -> str:
        """Its default bucket, made with the account."""
        return default_bucket(self.account)

    def boto(self, service: str) -> Any:
        return boto3.client(
            service, endpoint_url=str(self.http.base_url), region_name=REGION,
            aws_access_key_id=self.access_key_id, aws_secret_access_key=self.secret,
            config=Config(retries={"max_attempts": 1}),
        )  # fmt: skip


@dataclass
class Tenants:
    local: LocalControlPlane
    a: Tenant
    b: Tenant

    @property
    def root(self) -> Client:
        return self.local.client


def tenant(local: LocalControlPlane, name: str) -> Tenant:
    made = local.client.create_account(name, admin=f"{name}-admin")
    key = made["ApiKey"]
    http = httpx.Client(base_url=local.url, headers={"Authorization": f"Bearer {key}"})
    client = Client(local.url, key)
    access = client.create_user_key(f"{name}-admin", "sigv4", aws=True)
    t = Tenant(
        made["AccountId"], f"{name}-admin", key, http, client, None, access["KeyId"],
        access["SecretAccessKey"],
    )  # fmt: skip
    t.sagemaker = t.boto("sagemaker")
    return t


@pytest.fixture
def tenants(tmp_path: Path) -> Iterator[Tenants]:
    with local_control_plane(tmp_path, clock=FakeClock()) as local:
        a, b = tenant(local, "alpha"), tenant(local, "beta")
        yield Tenants(local, a, b)
        a.http.close()
        b.http.close()


def put_source(t: Tenants, account: str) -> None:
    """The training script a tuning job's trials run and the data, put in ``account``'s
    default bucket (made with the account)."""
    from orchestrator.testing import tarball

    b = default_bucket(account)
    with tenancy.acting_as(account):
        t.local.plane.objects.put_bytes(
            f"s3://{b}/src/sourcedir.tar.gz", tarball({"train.py": "print('loss=1')\n"})
        )
        t.local.plane.objects.put_bytes(f"s3://{b}/train/data.csv", b"1,2\n3,4\n")
        t.local.plane.objects.put_bytes(f"s3://{b}/batch/a.csv", b"1,2\n")


def _in(doc: dict[str, Any], bucket: str) -> dict[str, Any]:
    """``doc`` with its ``s3://tenancy/`` URIs in ``bucket``."""
    return cast(
        dict[str, Any], json.loads(json.dumps(doc).replace("s3://tenancy/", f"s3://{bucket}/"))
    )


def training_job(name: str, bucket: str = "tenancy") -> dict[str, Any]:
    return _in({
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": IMAGE},
        "HyperParameters": {"sagemaker_program": "train.py", "sagemaker_submit_directory": SOURCE},
        "RoleArn": ROLE,
        "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": "s3://tenancy/train"}}}],
        "OutputDataConfig": {"S3OutputPath": "s3://tenancy/out"},
        "ResourceConfig": {"VolumeSizeInGB": 30, "InstanceCount": 1, "InstanceType": "ml.m5.large"},
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }, bucket)  # fmt: skip


def model(name: str) -> dict[str, Any]:
    return {"ModelName": name, "PrimaryContainer": {"Image": "example/serve:1"},
            "ExecutionRoleArn": ROLE}  # fmt: skip


def endpoint_config(name: str, model_name: str) -> dict[str, Any]:
    return {"EndpointConfigName": name, "ProductionVariants": [{
        "VariantName": "v", "ModelName": model_name, "InitialInstanceCount": 1,
        "InstanceType": "ml.m5.large"}]}  # fmt: skip


def tuning_job(name: str, bucket: str = "tenancy") -> dict[str, Any]:
    return _in({
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Random",
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "loss"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 2, "MaxParallelTrainingJobs": 1},
            "ParameterRanges": {"IntegerParameterRanges": [
                {"Name": "n", "MinValue": "1", "MaxValue": "4"}]},
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": {
                "sagemaker_program": "train.py", "sagemaker_submit_directory": SOURCE,
            },
            "AlgorithmSpecification": {
                "TrainingImage": IMAGE, "TrainingInputMode": "File",
                "MetricDefinitions": [{"Name": "loss", "Regex": "loss=([0-9.]+)"}],
            },
            "RoleArn": ROLE,
            "OutputDataConfig": {"S3OutputPath": "s3://tenancy/out"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1,
                               "VolumeSizeInGB": 30},
            "StoppingCondition": {"MaxRuntimeInSeconds": 600},
        },
    }, bucket)  # fmt: skip


def transform_job(name: str, model_name: str, bucket: str = "tenancy") -> dict[str, Any]:
    return _in({
        "TransformJobName": name,
        "ModelName": model_name,
        "TransformInput": {"DataSource": {"S3DataSource": {
            "S3DataType": "S3Prefix", "S3Uri": "s3://tenancy/batch/"}}, "ContentType": "text/csv"},
        "TransformOutput": {"S3OutputPath": "s3://tenancy/scored/"},
        "TransformResources": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
    }, bucket)  # fmt: skip

"""What a job's own credential may do: pure (no store, no clock of its own).

SageMaker hands a training container its execution role's short-lived credentials; here the
control plane mints, at each launch, a key pair for the job's service identity
(``job_identity``: ``job/training/<name>``) whose only policy is ``training_job_policy``:

* read (``s3:GetObject``) under each ``s3://`` channel's ``S3Uri`` and the checkpoint prefix;
* write (``s3:PutObject`` and the multipart actions) under the job's output prefix
  (``<S3OutputPath>/<job>/``) and the checkpoint prefix;
* describe the job itself (``sagemaker:DescribeTrainingJob`` on its ARN);
* ask who it is (``orchestrator:GetCallerIdentity``, as any AWS credential may);

and nothing else: no listing of a bucket (S3 authorizes ``ListBucket`` on the whole bucket,
with no prefix condition here, so a listing would name other jobs' objects), no delete, no
other API. ``file://`` channels are read by the supervisor, never through a key. It expires at
``credential_expiry`` (the job's ``MaxRuntimeInSeconds`` and a margin past the launch).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from orchestrator.resources.training import CreateTrainingJobRequest

POLICY_NAME = "job-scope"
# How long past MaxRuntime a job's key still works: the upload after a stop, retries.
EXPIRY_MARGIN_SECONDS = 3600
READ_ACTIONS = ("s3:GetObject",)
WRITE_ACTIONS = ("s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts")
IDENTITY_PREFIX = "job/"


def job_identity(kind: str, name: str) -> str:
    """The service identity a job's credentials act as (``kind``: training, transform)."""
    return f"{IDENTITY_PREFIX}{kind}/{name}"


def job_of_identity(identity: str) -> tuple[str, str] | None:
    """(kind, name) of a job's identity; None for any other identity."""
    if not identity.startswith(IDENTITY_PREFIX):
        return None
    kind, sep, name = identity[len(IDENTITY_PREFIX) :].partition("/")
    return (kind, name) if sep and kind and name else None


def prefix_arn(uri: str) -> str | None:
    """``s3://bucket/prefix`` as the ARN pattern of every object under it (``...prefix*``);
    None for any other scheme. A prefix that names a directory keeps its slash, so
    ``s3://b/data/`` does not reach ``s3://b/data-other``."""
    if not uri.startswith("s3://"):
        return None
    path = uri[len("s3://") :]
    bucket, _, key = path.partition("/")
    if not bucket:
        return None
    return f"arn:aws:s3:::{bucket}/{key}*"


def output_prefix(output_uri: str) -> str:
    """The job's own output prefix (``<S3OutputPath>/<job>/``) from its model artifact's URI
    (``<S3OutputPath>/<job>/output/model.tar.gz``)."""
    head, sep, _ = output_uri.rpartition("/output/")
    return f"{head}/" if sep else output_uri.rsplit("/", 1)[0] + "/"


def scope_policy(
    reads: list[str], writes: list[str], describe: list[str] | None = None
) -> dict[str, Any]:
    """An IAM policy document allowing reads under ``reads`` and writes under ``writes``
    (``s3://`` URIs; others are left out) and ``sagemaker:Describe*`` of ``describe`` ARNs."""
    read_arns = sorted({a for a in map(prefix_arn, reads + writes) if a is not None})
    write_arns = sorted({a for a in map(prefix_arn, writes) if a is not None})
    statements: list[dict[str, Any]] = []
    if read_arns:
        statements.append(
            {"Sid": "ReadInputs", "Effect": "Allow", "Action": list(READ_ACTIONS),
             "Resource": read_arns}
        )  # fmt: skip
    if write_arns:
        statements.append(
            {"Sid": "WriteOutputs", "Effect": "Allow", "Action": list(WRITE_ACTIONS),
             "Resource": write_arns}
        )  # fmt: skip
    if describe:
        statements.append(
            {"Sid": "DescribeSelf", "Effect": "Allow",
             "Action": ["sagemaker:DescribeTrainingJob"], "Resource": sorted(describe)}
        )  # fmt: skip
    # Who am I (``GET /api/v1/caller``), as AWS lets any credential call GetCallerIdentity.
    statements.append(
        {"Sid": "WhoAmI", "Effect": "Allow", "Action": ["orchestrator:GetCallerIdentity"],
         "Resource": "*"}
    )  # fmt: skip
    return {"Version": "2012-10-17", "Statement": statements}


def training_job_policy(
    spec: CreateTrainingJobRequest, output_uri: str, job_arn: str | None = None
) -> dict[str, Any]:
    """What a training job's own credential may do (see the module docstring)."""
    channels = [c.DataSource.S3DataSource.S3Uri for c in spec.InputDataConfig]
    writes = [output_prefix(output_uri)]
    if spec.CheckpointConfig is not None:
        writes.append(spec.CheckpointConfig.S3Uri.rstrip("/") + "/")
    return scope_policy(channels, writes, [job_arn] if job_arn else None)


def credential_expiry(
    spec: CreateTrainingJobRequest, now: datetime, margin: int = EXPIRY_MARGIN_SECONDS
) -> datetime:
    """When a training job's credential stops working: its longest run and a margin from now
    (a job that waits for spot capacity counts its MaxWaitTime too)."""
    stop = spec.StoppingCondition
    seconds = max(stop.MaxRuntimeInSeconds, stop.MaxWaitTimeInSeconds or 0)
    return now + timedelta(seconds=seconds + margin)

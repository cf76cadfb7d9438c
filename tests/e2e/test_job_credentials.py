"""A training job's code gets its own credential, through a real control plane on the process
backend: boto3 and the orchestrator client work with no configuration, reach only the job's
own data, and the credential is revoked once the job has ended."""

from __future__ import annotations

import io
import json
import tarfile
import time

import boto3
import botocore.exceptions
import httpx
import pytest

from tests.e2e.conftest import RunningServer, script_job

pytestmark = pytest.mark.slow

SCRIPT = """
import json, os
import boto3, botocore.exceptions
from orchestrator.client import Client

s3 = boto3.client("s3")  # nothing configured: the variables the job was given
seen = {"own": s3.get_object(Bucket="orchestrator", Key="creds-job/data/train.csv")["Body"]
        .read().decode()}
for name, bucket, key in [("other_prefix", "orchestrator", "other-job/secret.csv"),
                          ("other_bucket", "elsewhere", "secret.csv")]:
    try:
        s3.get_object(Bucket=bucket, Key=key)
        seen[name] = "read"
    except botocore.exceptions.ClientError as e:
        seen[name] = e.response["Error"]["Code"]
s3.put_object(Bucket="orchestrator", Key="training-jobs/creds-job/output/extra.txt", Body=b"x")
try:
    s3.put_object(Bucket="orchestrator", Key="other-job/secret.csv", Body=b"overwritten")
    seen["overwrite"] = "written"
except botocore.exceptions.ClientError as e:
    seen["overwrite"] = e.response["Error"]["Code"]
seen["describe"] = Client().describe_training_job("creds-job").TrainingJobName
seen["env"] = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                           "ORCH_API_KEY", "AWS_ENDPOINT_URL")}
seen["leaked"] = sorted(k for k in os.environ if k.startswith("ORCH_")
                        and k not in ("ORCH_API_KEY", "ORCH_ENDPOINT_URL", "ORCH_ML_ROOT"))
with open(os.path.join(os.environ["SM_MODEL_DIR"], "seen.json"), "w") as f:
    json.dump(seen, f)
"""


def test_a_jobs_code_reaches_its_own_data_only_and_loses_its_key_at_the_end(
    server: RunningServer,
) -> None:
    c = server.client()
    c.upload_bytes(b"1,2\n3,4\n", "s3://orchestrator/creds-job/data/train.csv")
    c.upload_bytes(b"top secret", "s3://orchestrator/other-job/secret.csv")
    channel = {"S3DataSource": {"S3Uri": "s3://orchestrator/creds-job/data/"}}
    script_job(
        c, "creds-job", SCRIPT, InputDataConfig=[{"ChannelName": "train", "DataSource": channel}]
    )
    job = c.wait_for_training_job("creds-job", timeout=60, poll=0.1)
    assert job.TrainingJobStatus == "Completed", job.FailureReason
    plain = c.download_bytes(job.ModelArtifacts.S3ModelArtifacts)
    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        seen = json.loads(tar.extractfile("seen.json").read())  # type: ignore[union-attr]
    assert seen["own"] == "1,2\n3,4\n"
    assert seen["other_prefix"] == "AccessDenied"
    assert seen["other_bucket"] == "AccessDenied"
    assert seen["overwrite"] == "AccessDenied"
    assert seen["describe"] == "creds-job"
    assert seen["leaked"] == []  # none of the server's own settings
    assert seen["env"]["AWS_ENDPOINT_URL"] == server.url
    assert c.download_bytes("s3://orchestrator/other-job/secret.csv") == b"top secret"
    assert c.download_bytes("s3://orchestrator/training-jobs/creds-job/output/extra.txt") == b"x"

    # Ended: both keys are revoked (the REST API's key cache forgets within seconds).
    env = seen["env"]
    s3 = boto3.client(
        "s3",
        endpoint_url=server.url,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name="us-east-1",
    )
    deadline = time.monotonic() + 15
    while True:
        try:
            s3.get_object(Bucket="orchestrator", Key="creds-job/data/train.csv")
            sigv4 = 200
        except botocore.exceptions.ClientError as e:
            sigv4 = e.response["ResponseMetadata"]["HTTPStatusCode"]
        rest = httpx.get(
            f"{server.url}/api/v1/training-jobs/creds-job",
            headers={"Authorization": f"Bearer {env['ORCH_API_KEY']}"},
        ).status_code
        if (sigv4 in (401, 403) and rest in (401, 403)) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert sigv4 == 403
    assert rest == 401

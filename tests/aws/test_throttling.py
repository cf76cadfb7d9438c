"""The per-key rate limit on the AWS protocols: AWS's own throttling answers (SageMaker's
ThrottlingException, S3's SlowDown), which botocore's retries back off on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from orchestrator.settings import RateLimitSettings
from orchestrator.testing import FakeClock, local_control_plane
from tests.aws.conftest import AwsPlane

NO_RETRIES = Config(
    retries={"max_attempts": 0, "mode": "standard"}, s3={"addressing_style": "path"}
)


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[AwsPlane]:
    limits = RateLimitSettings(api_requests_per_second=0.1, api_burst=2)
    with local_control_plane(tmp_path, clock=FakeClock(), rate_limits=limits) as local:
        record, secret = local.plane.access_keys.create(
            name="alice", role="admin", now=local.plane.clock.now()
        )
        yield AwsPlane(local, record.access_key_id, secret)


def test_sagemaker_answers_throttling_exception(limited: AwsPlane) -> None:
    sm = limited.client("sagemaker", config=NO_RETRIES)
    sm.list_models()
    sm.list_models()
    with pytest.raises(ClientError) as caught:
        sm.list_models()
    response = caught.value.response
    assert response["Error"]["Code"] == "ThrottlingException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "10"
    assert "rate limit exceeded" in response["Error"]["Message"]


def test_s3_answers_slow_down(limited: AwsPlane) -> None:
    s3 = limited.client("s3", config=NO_RETRIES)
    s3.list_buckets()
    s3.list_buckets()
    with pytest.raises(ClientError) as caught:
        s3.list_buckets()
    assert caught.value.response["Error"]["Code"] == "SlowDown"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503

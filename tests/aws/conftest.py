"""A control plane on the fake backend with a SigV4 access key, and boto3 clients for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator.testing import FakeClock, LocalControlPlane, local_control_plane

boto3 = pytest.importorskip("boto3", reason="boto3 is in the [dev] extra: pip install -e '.[dev]'")
from botocore.config import Config  # noqa: E402

REGION = "us-east-1"


@dataclass
class AwsPlane:
    local: LocalControlPlane
    access_key_id: str
    secret: str

    @property
    def url(self) -> str:
        return self.local.url

    def client(self, service: str, **overrides: Any) -> Any:
        kwargs: dict[str, Any] = {
            "endpoint_url": self.url,
            "region_name": REGION,
            "aws_access_key_id": self.access_key_id,
            "aws_secret_access_key": self.secret,
            "config": Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
        }
        kwargs.update(overrides)
        return boto3.client(service, **kwargs)


@pytest.fixture
def aws_plane(tmp_path: Path) -> Iterator[AwsPlane]:
    with local_control_plane(tmp_path, clock=FakeClock()) as local:
        record, secret = local.plane.access_keys.create(
            name="alice", role="admin", now=local.plane.clock.now()
        )
        yield AwsPlane(local, record.access_key_id, secret)


@pytest.fixture
def sagemaker(aws_plane: AwsPlane) -> Any:
    return aws_plane.client("sagemaker")


Factory = Callable[..., Any]


@pytest.fixture
def wire(sagemaker: Any) -> Iterator[Any]:
    """Every request the ``sagemaker`` client sends and every answer it gets, checked against
    botocore's service model when the test ends."""
    from tests.aws.shapes import Wire

    recorder = Wire(sagemaker)
    yield recorder
    recorder.check()

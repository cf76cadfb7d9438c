"""A SageMaker call without boto3's client-side checks: the JSON body as given, signed with
botocore's ``SigV4Auth`` and sent with httpx (what a client that skips botocore's validation,
or another SDK, would send)."""

from __future__ import annotations

import json
from typing import Any

import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.aws.conftest import REGION, AwsPlane


def call(plane: AwsPlane, operation: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    data = json.dumps(body).encode()
    request = AWSRequest(
        "POST",
        plane.url + "/",
        data=data,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"SageMaker.{operation}",
        },
    )
    SigV4Auth(Credentials(plane.access_key_id, plane.secret), "sagemaker", REGION).add_auth(request)
    r = httpx.post(plane.url + "/", content=data, headers=dict(request.headers.items()))
    answer: dict[str, Any] = r.json()
    return r.status_code, answer

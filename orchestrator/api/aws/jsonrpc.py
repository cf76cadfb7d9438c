"""The AWS JSON protocol (awsJson1_0 / awsJson1_1) for a table of operations.

``POST /`` with ``X-Amz-Target: <Prefix>.<Operation>`` and a JSON body; the answer is JSON
(``application/x-amz-json-1.x``); an error is its status with ``X-Amzn-ErrorType`` and
``{"__type": code, "Message": ...}``, which is how botocore reads it. Timestamps go out as
epoch seconds (``epoch``), as the protocol has them.

A service is its ``Operation`` table: name, the policy action it needs (``authorize``), the
handler (the request's members in, the response's members out, run off the event loop) and a
note for ``docs/sagemaker-compat.md``. A new operation is one row.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from orchestrator.access import Principal, authorize
from orchestrator.api.aws.errors import AwsError
from orchestrator.api.aws.gateway import AwsRequest, AwsResponse
from orchestrator.iam import TagSource

Handler = Callable[[dict[str, Any], Principal], dict[str, Any]]
# The resource an operation acts on, from its parameters: its ARN (``*`` for none) and its
# tags (a mapping, or a function that reads them: called only for a policy's tag condition).
Target = Callable[[dict[str, Any]], tuple[str, TagSource]]


def no_resource(params: dict[str, Any]) -> tuple[str, TagSource]:
    return "*", None


@dataclass(frozen=True)
class Operation:
    name: str
    action: str
    handler: Handler
    note: str = ""
    target: Target = no_resource


def epoch(value: datetime | None) -> float | None:
    """A timestamp as the JSON protocols send it (seconds since the epoch)."""
    return None if value is None else value.timestamp()


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    raise TypeError(f"{type(value).__name__} is not JSON")


def dumps(document: Any) -> bytes:
    return json.dumps(document, default=_default, separators=(",", ":")).encode()


class JsonService:
    """One JSON-protocol service: ``signing_name``, ``target_prefix`` and its operations."""

    streams_body: ClassVar[bool] = False
    signing_name: ClassVar[str] = ""
    target_prefix: ClassVar[str] = ""
    json_version: ClassVar[str] = "1.1"

    def __init__(self, operations: Mapping[str, Operation]) -> None:
        self.operations = dict(operations)

    @property
    def content_type(self) -> str:
        return f"application/x-amz-json-{self.json_version}"

    async def handle(self, request: AwsRequest) -> AwsResponse:
        if request.method != "POST":
            raise AwsError("UnknownOperationException", f"use POST for the {self.signing_name} API")
        target = request.header("x-amz-target") or ""
        prefix, _, name = target.partition(".")
        if prefix + "." != self.target_prefix or not name:
            raise AwsError(
                "UnknownOperationException",
                f"X-Amz-Target {target!r} is not {self.target_prefix}<Operation>",
            )
        operation = self.operations.get(name)
        if operation is None:
            raise AwsError(
                "UnknownOperationException",
                f"{name} is not an operation this server supports; see docs/sagemaker-compat.md",
            )
        try:
            params = json.loads(request.body or b"{}")
        except ValueError as e:
            raise AwsError("SerializationException", f"the body is not JSON: {e}") from e
        if not isinstance(params, dict):
            raise AwsError("SerializationException", "the body must be a JSON object")
        result = await asyncio.to_thread(self._call, operation, params, request)
        return AwsResponse(200, [("content-type", self.content_type)], dumps(result))

    @staticmethod
    def _call(operation: Operation, params: dict[str, Any], request: AwsRequest) -> dict[str, Any]:
        """Authorized (off the loop: the resource's tags may be a store read), then run."""
        arn, tags = operation.target(params)
        request.authorized = (operation.action, arn)
        authorize(request.principal, operation.action, arn, tags)
        return operation.handler(params, request.principal)

    def render_error(self, error: AwsError, request_id: str) -> AwsResponse:
        body: dict[str, Any] = {"__type": error.aws_code, "Message": error.message}
        body.update(error.extra)
        headers = [("content-type", self.content_type), ("x-amzn-errortype", error.aws_code)]
        if error.aws_code in {"ThrottlingException", "ServiceUnavailable"}:
            headers.append(("retry-after", "1"))
        return AwsResponse(error.http_status, headers, dumps(body))

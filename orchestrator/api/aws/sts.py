"""STS, as much of it as the SageMaker SDK calls: ``GetCallerIdentity`` (the query protocol:
a form-encoded ``Action``, an XML answer). The caller is the access key's identity, in its
account (``orchestrator.tenancy``: the server's own for ROOT)."""

from __future__ import annotations

from typing import ClassVar
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

from orchestrator import tenancy
from orchestrator.api.aws.errors import AwsError
from orchestrator.api.aws.gateway import AwsRequest, AwsResponse

_NS = "https://sts.amazonaws.com/doc/2011-06-15/"
SUPPORTED = {"GetCallerIdentity": "the access key's identity: UserId, Account and an IAM user ARN"}
# What the SageMaker SDK may call and this server does not answer (docs/sagemaker-compat.md).
NOT_SUPPORTED = ["AssumeRole", "GetSessionToken", "GetAccessKeyInfo", "DecodeAuthorizationMessage"]


class StsService:
    signing_name: ClassVar[str] = "sts"
    streams_body: ClassVar[bool] = False

    def __init__(self, account_id: str) -> None:
        self.account_id = account_id

    async def handle(self, request: AwsRequest) -> AwsResponse:
        params = dict(parse_qsl(request.body.decode("utf-8", "replace")))
        params.update(parse_qsl(request.query))
        action = params.get("Action", "")
        if action != "GetCallerIdentity":
            raise AwsError(
                "InvalidAction",
                f"STS action {action!r} is not supported here (only GetCallerIdentity)",
            )
        p = request.principal
        account = tenancy.arn_account(p.account, self.account_id)
        arn = f"arn:aws:iam::{account}:user/{escape(p.name)}"
        body = (
            f'<GetCallerIdentityResponse xmlns="{_NS}"><GetCallerIdentityResult>'
            f"<Arn>{arn}</Arn><UserId>{escape(p.key_id)}</UserId>"
            f"<Account>{account}</Account></GetCallerIdentityResult>"
            f"<ResponseMetadata><RequestId>{request.request_id}</RequestId></ResponseMetadata>"
            "</GetCallerIdentityResponse>"
        )
        return AwsResponse(200, [("content-type", "text/xml")], body.encode())

    def render_error(self, error: AwsError, request_id: str) -> AwsResponse:
        kind = "Receiver" if error.http_status >= 500 else "Sender"
        body = (
            f'<ErrorResponse xmlns="{_NS}"><Error><Type>{kind}</Type>'
            f"<Code>{escape(error.aws_code)}</Code><Message>{escape(error.message)}</Message>"
            f"</Error><RequestId>{request_id}</RequestId></ErrorResponse>"
        )
        return AwsResponse(error.http_status, [("content-type", "text/xml")], body.encode())

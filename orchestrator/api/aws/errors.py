"""AWS error codes and how each protocol writes them.

``AwsError`` is an ``OrchestratorError`` whose code and HTTP status are the AWS ones, for the
refusals that only exist on the wire (a bad signature, an unknown operation, ``NoSuchKey``).
``aws_error(e, service)`` maps any error of the product's tree onto what the service's botocore
model names (SageMaker: a missing resource is ``ValidationException``, which the waiters
depend on; a limit ``ResourceLimitExceeded``; a conflict ``ResourceInUse``).
"""

from __future__ import annotations

from typing import Any

from orchestrator.errors import (
    AuthenticationError,
    ConflictError,
    DeadlineExceededError,
    LimitExceededError,
    NotFoundError,
    OrchestratorError,
    PayloadTooLargeError,
    PermissionDeniedError,
    TemporaryError,
    ThrottlingError,
    ValidationError,
)
from orchestrator.sigv4 import ERROR_CODES, SignatureError


class AwsError(OrchestratorError):
    """An error with AWS's own code and status; ``extra`` members go into the error body."""

    def __init__(self, code: str, message: str, *, status: int = 400, **extra: Any) -> None:
        super().__init__(message)
        self.aws_code = code
        self.http_status = status
        self.extra = extra


_STS_CODES = {"unknown_key": "InvalidClientTokenId", "missing": "MissingAuthenticationToken"}


def signature_error(e: SignatureError, service: str) -> AwsError:
    json_code, xml_code, status = ERROR_CODES[e.kind]
    if service == "s3":
        code = xml_code
    elif service == "sts":
        code = _STS_CODES.get(e.kind, "SignatureDoesNotMatch" if status == 403 else xml_code)
    else:
        code = json_code
    return AwsError(code, e.message, status=status)


def aws_error(e: Exception, service: str) -> AwsError:
    """The AWS error a failure of the product's code is, for ``service`` (its signing name)."""
    if isinstance(e, AwsError):
        return e
    if isinstance(e, SignatureError):
        return signature_error(e, service)
    if not isinstance(e, OrchestratorError):
        return AwsError("InternalFailure", f"internal error: {type(e).__name__}", status=500)
    message = e.message if e.field is None or e.field in e.message else f"{e.field}: {e.message}"
    if isinstance(e, ValidationError):
        return AwsError("ValidationException", message)
    if isinstance(e, NotFoundError):
        # SageMaker answers a missing resource with ValidationException ("Could not find
        # ..."); botocore's waiters (endpoint_deleted, ...) match on that code.
        return AwsError("ValidationException", message)
    if isinstance(e, ConflictError):
        return AwsError("ResourceInUse", message)
    if isinstance(e, LimitExceededError):
        return AwsError("ResourceLimitExceeded", message)
    if isinstance(e, PayloadTooLargeError):
        return AwsError("ValidationException", message, status=413)
    if isinstance(e, AuthenticationError):
        return AwsError("UnrecognizedClientException", message, status=403)
    if isinstance(e, PermissionDeniedError):
        return AwsError("AccessDeniedException", message, status=400)
    if isinstance(e, ThrottlingError):
        # AWS's throttling answers, which botocore's retries back off on.
        if service == "s3":
            return AwsError("SlowDown", message, status=503)
        return AwsError("ThrottlingException", message, status=400)
    if isinstance(e, DeadlineExceededError):
        return AwsError("ServiceUnavailable", message, status=503)
    if isinstance(e, TemporaryError):
        return AwsError("ThrottlingException", message, status=400)
    return AwsError("InternalFailure", message, status=500)

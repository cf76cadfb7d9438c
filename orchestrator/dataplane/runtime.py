"""SageMaker Runtime's ``InvokeEndpoint`` on the data plane: its headers, signatures and answers.

boto3's ``sagemaker-runtime`` client sends rest-json ``POST /endpoints/NAME/invocations``
signed with SigV4 (signing name ``sagemaker``, the body's SHA-256 computed by the client and
not sent). The front serves it on the same path as the product's own callers; this module is
what differs, as pure functions the front calls:

- ``sagemaker_headers``: SageMaker's request headers, from any caller.
  ``X-Amzn-SageMaker-Target-Variant`` picks the variant (as ``X-Target-Variant``);
  ``-Custom-Attributes`` and ``-Inference-Id`` are passed on to the replica under those names,
  as SageMaker's container contract passes them. ``-Target-Model``,
  ``-Target-Container-Hostname``, ``-Enable-Explanations``, ``-Session-Id`` and
  ``-Inference-Component`` are refused with a ``ValidationError`` naming the header: no
  endpoint here is multi-model, direct-invocation multi-container, explained, stateful or made
  of inference components, so none can honour them, and ignoring one would answer a question
  that was not asked. ``-Prefix-Aware-Id`` (a cache-affinity hint that changes no answer) is
  accepted and unused. Any other header is dropped, as SageMaker drops headers outside its API.
- ``credential`` checks a signature's credential (format, time within five minutes of the
  wall clock, region, service ``sagemaker``) before the body is read; ``verify`` checks the
  signature over the body once it is.
- ``answer_headers``, ``model_error`` and ``error_answer``: what a SigV4 caller gets back, in
  SageMaker Runtime's shapes (the product's own callers keep the product's). A 2xx from the
  replica carries ``x-Amzn-Invoked-Production-Variant``, ``Content-Type`` and the replica's
  ``X-Amzn-SageMaker-Custom-Attributes``; every answer carries ``x-amzn-RequestId``. Errors are
  rest-json: ``X-Amzn-Errortype`` and a JSON body with ``message``/``Message`` and the
  shape's members, with the codes botocore's ``sagemaker-runtime`` model declares:

  ======================================  =============================  ======
  what happened                           code                           status
  ======================================  =============================  ======
  the replica answered non-2xx            ModelError (OriginalStatusCode,  424
                                          OriginalMessage, LogStreamArn)
  the replica did not answer in time      ModelError (SageMaker's words:   424
                                          "Received server error (0)")
  held for a variant at zero, too long    ModelNotReadyException           429
  the key's invocation rate limit         ThrottlingException (Retry-After) 400
  no ready replica, not in service yet    ServiceUnavailable               503
  bad input, a refused header, a Failed   ValidationError                  400
  endpoint, an unknown endpoint           ("Endpoint X of account Y not found.")
  a body over the limit                   ValidationError                  413
  a refused signature                     sigv4.ERROR_CODES (Invalid-      403/400
                                          SignatureException, ...)
  not allowed                             AccessDeniedException            400
  anything else                           InternalFailure                  500
  ======================================  =============================  ======

  (A timeout is SageMaker's ModelError, not ``InternalDependencyException``: SageMaker answers
  a container that did not answer within its 60 s with ModelError, "Received server error (0)
  from primary with message "Your invocation timed out while waiting for a response from
  container primary..."".)
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Any

from orchestrator import sigv4
from orchestrator.dataplane.pool import ReplicaAnswer
from orchestrator.errors import (
    AuthenticationError,
    ConflictError,
    DeadlineExceededError,
    ModelNotReadyError,
    NotFoundError,
    OrchestratorError,
    PayloadTooLargeError,
    PermanentError,
    PermissionDeniedError,
    TemporaryError,
    ThrottlingError,
    ValidationError,
)

SERVICE = "sagemaker"  # the signing name of sagemaker-runtime
PREFIX = b"x-amzn-sagemaker-"
INVOKED_VARIANT = b"x-amzn-invoked-production-variant"
CUSTOM_ATTRIBUTES = b"x-amzn-sagemaker-custom-attributes"
REQUEST_ID = b"x-amzn-requestid"
ERROR_TYPE = b"x-amzn-errortype"
# How much of a replica's error body goes into ModelError's OriginalMessage (and Message).
MAX_ORIGINAL_MESSAGE = 2048

_STAMPS = ("x-amz-date", "date")
_TARGET_VARIANT = b"x-amzn-sagemaker-target-variant"
_INFERENCE_ID = b"x-amzn-sagemaker-inference-id"
# Passed on to the replica: (the member name for errors, the model's length limit).
_PASSED_ON = {CUSTOM_ATTRIBUTES: ("CustomAttributes", 1024), _INFERENCE_ID: ("InferenceId", 64)}
# Refused: the member, and what an endpoint would need to be to honour it.
_REFUSED = {
    b"x-amzn-sagemaker-target-model": ("TargetModel", "a multi-model endpoint"),
    b"x-amzn-sagemaker-target-container-hostname": (
        "TargetContainerHostname",
        "a multi-container endpoint with direct invocation",
    ),
    b"x-amzn-sagemaker-enable-explanations": (
        "EnableExplanations",
        "an endpoint with an explainer (ExplainerConfig)",
    ),
    b"x-amzn-sagemaker-session-id": ("SessionId", "an endpoint with stateful sessions"),
    b"x-amzn-sagemaker-inference-component": (
        "InferenceComponentName",
        "an endpoint of inference components",
    ),
}


def _header_name(raw: bytes) -> str:
    """``x-amzn-sagemaker-target-model`` as botocore writes it: X-Amzn-SageMaker-Target-Model."""
    words = raw.decode("latin-1").split("-")
    return "-".join("SageMaker" if w == "sagemaker" else w.capitalize() for w in words)


def sagemaker_headers(
    amzn: list[tuple[bytes, bytes]], forwarded: list[bytes], target: str | None, endpoint: str
) -> str | None:
    """Apply SageMaker's request headers ``amzn`` (lower-case names starting with
    ``x-amzn-sagemaker-``): the variant to serve (``target`` unless one is named), with the
    headers passed on appended to ``forwarded`` as ``name: value\\r\\n`` lines. Raises
    ``ValidationError`` naming a refused or malformed header."""
    for key, value in amzn:
        if key == _TARGET_VARIANT:
            if len(value) > 63 or not value.isascii():
                raise ValidationError(
                    f"{_header_name(key)}: a variant name is at most 63 ASCII characters",
                    field="TargetVariant",
                )
            target = value.decode("ascii")
        elif key in _PASSED_ON:
            member, limit = _PASSED_ON[key]
            if len(value) > limit or not value.isascii():
                raise ValidationError(
                    f"{_header_name(key)}: at most {limit} visible US-ASCII characters, not "
                    f"{len(value)} bytes",
                    field=member,
                )
            forwarded.append(key + b": " + value + b"\r\n")
        elif key in _REFUSED:
            member, needs = _REFUSED[key]
            raise ValidationError(
                f"{_header_name(key)}: endpoint {endpoint!r} cannot honour {member}: that needs "
                f"{needs}, which this server does not have; send the request without it",
                field=member,
            )
    return target


# --- signatures -------------------------------------------------------------------------------
def credential(
    authorization: str, headers: list[tuple[str, str]], *, region: str, now: float
) -> sigv4.Credential:
    """The signature's credential, checked as far as it can be without the body: its form,
    its time (``now``: epoch seconds, the wall clock), region and service. ``headers``:
    (lower-case name, value) as received. Raises ``sigv4.SignatureError``."""
    stamps: dict[str, str] = {}
    for name, value in headers:
        if name in _STAMPS and name not in stamps:
            stamps[name] = value
    found = sigv4.parse(authorization, "", stamps)
    sigv4.check_time(found, datetime.fromtimestamp(now, UTC))
    sigv4.check_scope(found, region, (SERVICE,))
    return found


def verify(
    key: bytes,
    raw_target: bytes,
    headers: list[tuple[str, str]],
    found: sigv4.Credential,
    body: bytes,
) -> None:
    """Check the signature of the request (``raw_target``: the request target as sent, path
    and query) over ``body``. A client that sent ``x-amz-content-sha256`` signed that; boto3
    signs the body's hash without sending it. Raises ``sigv4.SignatureError``."""
    path, _, query = raw_target.decode("latin-1").partition("?")
    actual = sigv4.payload_hash_of(body)
    signed_hash = actual
    for name, value in headers:
        if name == "x-amz-content-sha256":
            if value not in (sigv4.UNSIGNED_PAYLOAD, actual):
                raise sigv4.SignatureError(
                    "payload", "The provided 'x-amz-content-sha256' header does not match the body"
                )
            signed_hash = value
            break
    sigv4.verify(key, sigv4.Request("POST", path, query, headers), found, signed_hash)


# --- answers ------------------------------------------------------------------------------
def answer_headers(
    answer: ReplicaAnswer, variant: str, request_id: bytes
) -> list[tuple[bytes, bytes]]:
    """The headers of a 2xx answer to a SigV4 caller."""
    out = [
        (b"content-type", answer.content_type),
        (b"content-length", str(len(answer.body)).encode()),
        (INVOKED_VARIANT, variant.encode()),
        (REQUEST_ID, request_id),
    ]
    if answer.custom_attributes is not None:
        out.append((CUSTOM_ATTRIBUTES, answer.custom_attributes))
    return out


def log_group_arn(region: str, account: str, endpoint: str) -> str:
    """Where an endpoint's logs are, as SageMaker names the log group."""
    return f"arn:aws:logs:{region}:{account}:log-group:/aws/sagemaker/Endpoints/{endpoint}"


def _original(body: bytes) -> str:
    text = body[: MAX_ORIGINAL_MESSAGE * 4].decode("utf-8", "replace")
    if len(text) <= MAX_ORIGINAL_MESSAGE and len(body) <= MAX_ORIGINAL_MESSAGE * 4:
        return text
    return text[:MAX_ORIGINAL_MESSAGE] + f"... ({len(body)} bytes in all)"


def model_error(
    answer: ReplicaAnswer,
    *,
    variant: str,
    endpoint: str,
    region: str,
    account: str,
    request_id: bytes,
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """ModelError (424) for a replica that answered non-2xx, in SageMaker's words."""
    status = answer.status
    original = _original(answer.body)
    kind = "server" if status >= 500 else "client"
    message = (
        f'Received {kind} error ({status}) from {variant} with message "{original}". See log '
        f"group /aws/sagemaker/Endpoints/{endpoint} in account {account} for more information."
    )
    return render(
        424, "ModelError", message, request_id,
        OriginalStatusCode=status, OriginalMessage=original,
        LogStreamArn=log_group_arn(region, account, endpoint),
    )  # fmt: skip


def error_answer(
    error: Exception, *, endpoint: str, region: str, account: str, request_id: bytes
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """A refusal or failure, as SageMaker Runtime writes it (the table in the docstring)."""
    if isinstance(error, sigv4.SignatureError):
        code, _, status = sigv4.ERROR_CODES[error.kind]
        return render(status, code, error.message, request_id)
    if not isinstance(error, OrchestratorError):
        return render(500, "InternalFailure", f"internal error: {type(error).__name__}", request_id)
    message = error.message
    if isinstance(error, NotFoundError):
        message = f"Endpoint {endpoint} of account {account} not found."
        return render(400, "ValidationError", message, request_id)
    if isinstance(error, PayloadTooLargeError):
        return render(413, "ValidationError", message, request_id, close=True)
    if isinstance(error, (ValidationError, ConflictError)):
        return render(400, "ValidationError", message, request_id)
    if isinstance(error, PermissionDeniedError):
        return render(400, "AccessDeniedException", message, request_id)
    if isinstance(error, AuthenticationError):
        return render(403, "UnrecognizedClientException", message, request_id)
    if isinstance(error, DeadlineExceededError):
        original = (
            f"Your invocation timed out while waiting for a response from the model ({message}). "
            "Review the latency metrics of the endpoint, resolve the issue, and try again."
        )
        return render(
            424, "ModelError", f'Received server error (0) from model with message "{original}".',
            request_id, OriginalMessage=original,
            LogStreamArn=log_group_arn(region, account, endpoint),
        )  # fmt: skip
    if isinstance(error, ThrottlingError):
        return render(400, "ThrottlingException", message, request_id, retry_after=error)
    if isinstance(error, ModelNotReadyError):
        return render(429, "ModelNotReadyException", message, request_id, retry_after=error)
    if isinstance(error, TemporaryError):
        return render(503, "ServiceUnavailable", message, request_id, retry_after=error)
    if isinstance(error, PermanentError):
        return render(400, "ValidationError", message, request_id)
    return render(500, "InternalFailure", message, request_id)


def render(
    status: int,
    code: str,
    message: str,
    request_id: bytes,
    *,
    close: bool = False,
    retry_after: TemporaryError | None = None,
    **members: Any,
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """A rest-json error: status, headers and body (``members``: the error shape's own)."""
    body = json.dumps(
        {"message": message, "Message": message, **members},
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (ERROR_TYPE, code.encode()),
        (REQUEST_ID, request_id),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", str(max(1, math.ceil(retry_after.retry_after))).encode()))
    if close:
        headers.append((b"connection", b"close"))  # the rest of the body is never read
    return status, headers, body

"""SageMaker Runtime's shapes on the data plane, without a server: which request headers are
passed on, honoured or refused; how each failure is written (the code botocore's
``sagemaker-runtime`` model declares, its status, its members); the credential checks that
come before the body."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest

from orchestrator import sigv4
from orchestrator.dataplane import runtime
from orchestrator.dataplane.pool import ReplicaAnswer
from orchestrator.errors import (
    AuthenticationError,
    ConflictError,
    DeadlineExceededError,
    ModelNotReadyError,
    NotFoundError,
    OrchestratorError,
    PayloadTooLargeError,
    PermissionDeniedError,
    ThrottlingError,
    UnavailableError,
    ValidationError,
)

KW = {"endpoint": "ep", "region": "us-east-1", "account": "000000000000", "request_id": b"rid"}


def test_sagemakers_headers_are_passed_on_under_their_own_names() -> None:
    forwarded: list[bytes] = []
    target = runtime.sagemaker_headers(
        [
            (b"x-amzn-sagemaker-custom-attributes", b"trace=1"),
            (b"x-amzn-sagemaker-inference-id", b"inf-1"),
            (b"x-amzn-sagemaker-target-variant", b"blue"),
            (b"x-amzn-sagemaker-prefix-aware-id", b"conversation-9"),  # a hint: accepted
            (b"x-amzn-sagemaker-something-new", b"x"),  # not in the API: dropped
        ],
        forwarded,
        None,
        "ep",
    )
    assert target == "blue"
    assert forwarded == [
        b"x-amzn-sagemaker-custom-attributes: trace=1\r\n",
        b"x-amzn-sagemaker-inference-id: inf-1\r\n",
    ]
    # Without SageMaker's own target, the product's X-Target-Variant stands.
    assert runtime.sagemaker_headers([], [], "green", "ep") == "green"


@pytest.mark.parametrize(
    ("header", "member"),
    [
        (b"x-amzn-sagemaker-target-model", "TargetModel"),
        (b"x-amzn-sagemaker-target-container-hostname", "TargetContainerHostname"),
        (b"x-amzn-sagemaker-enable-explanations", "EnableExplanations"),
        (b"x-amzn-sagemaker-session-id", "SessionId"),
        (b"x-amzn-sagemaker-inference-component", "InferenceComponentName"),
    ],
)
def test_what_no_endpoint_can_honour_is_refused_naming_the_header(
    header: bytes, member: str
) -> None:
    with pytest.raises(ValidationError) as e:
        runtime.sagemaker_headers([(header, b"v")], [], None, "ep")
    assert e.value.field == member
    assert e.value.message.startswith(
        runtime._header_name(header) + f": endpoint 'ep' cannot honour {member}"
    )
    assert "send the request without it" in e.value.message


def test_header_names_are_written_as_botocore_sends_them() -> None:
    assert runtime._header_name(b"x-amzn-sagemaker-target-model") == (
        "X-Amzn-SageMaker-Target-Model"
    )


@pytest.mark.parametrize(
    ("header", "value", "member"),
    [
        (b"x-amzn-sagemaker-custom-attributes", b"a" * 1025, "CustomAttributes"),
        (b"x-amzn-sagemaker-custom-attributes", "é".encode(), "CustomAttributes"),
        (b"x-amzn-sagemaker-inference-id", b"i" * 65, "InferenceId"),
        (b"x-amzn-sagemaker-target-variant", b"v" * 64, "TargetVariant"),
    ],
)
def test_values_past_the_models_limits_are_refused(
    header: bytes, value: bytes, member: str
) -> None:
    with pytest.raises(ValidationError) as e:
        runtime.sagemaker_headers([(header, value)], [], None, "ep")
    assert e.value.field == member and runtime._header_name(header) in e.value.message


def _decoded(status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> tuple[int, str, dict]:  # type: ignore[type-arg]
    named = dict(headers)
    assert named[b"x-amzn-requestid"] == b"rid"
    assert named[b"content-length"] == str(len(body)).encode()
    payload = json.loads(body)
    assert payload["message"] == payload["Message"]
    return status, named[b"x-amzn-errortype"].decode(), payload


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (sigv4.SignatureError("mismatch", "m"), 403, "InvalidSignatureException"),
        (sigv4.SignatureError("unknown_key", "m"), 403, "UnrecognizedClientException"),
        (sigv4.SignatureError("malformed", "m"), 400, "IncompleteSignatureException"),
        (sigv4.SignatureError("scope", "m"), 400, "InvalidSignatureException"),
        (ValidationError("bad"), 400, "ValidationError"),
        (ConflictError("endpoint 'ep' is Failed: x"), 400, "ValidationError"),
        (PayloadTooLargeError("too big"), 413, "ValidationError"),
        (PermissionDeniedError("no"), 400, "AccessDeniedException"),
        (UnavailableError("not yet"), 503, "ServiceUnavailable"),
        (ModelNotReadyError("at zero"), 429, "ModelNotReadyException"),
        (ThrottlingError("slow down", retry_after=0.2), 400, "ThrottlingException"),
        (DeadlineExceededError("slow"), 424, "ModelError"),
        (AuthenticationError("who"), 403, "UnrecognizedClientException"),
        (OrchestratorError("broken"), 500, "InternalFailure"),
        (RuntimeError("bug"), 500, "InternalFailure"),
    ],
)
def test_each_failure_has_sagemaker_runtimes_code(error: Exception, status: int, code: str) -> None:
    got_status, got_code, _ = _decoded(*runtime.error_answer(error, **KW))
    assert (got_status, got_code) == (status, code)


def test_every_code_is_one_the_runtime_model_declares_or_a_common_aws_one() -> None:
    botocore = pytest.importorskip("botocore.loaders")
    model = botocore.Loader().load_service_model("sagemaker-runtime", "service-2")
    declared = {e["shape"] for e in model["operations"]["InvokeEndpoint"]["errors"]}
    for shape in ("ModelError", "ModelNotReadyException", "ServiceUnavailable",
                  "ValidationError", "InternalFailure"):  # fmt: skip
        assert shape in declared
        http = model["shapes"][shape]["error"]["httpStatusCode"]
        error = {
            "ModelError": DeadlineExceededError("slow"),
            "ModelNotReadyException": ModelNotReadyError("zero"),
            "ServiceUnavailable": UnavailableError("not yet"),
            "ValidationError": ValidationError("bad"),
            "InternalFailure": OrchestratorError("broken"),
        }[shape]
        assert runtime.error_answer(error, **KW)[0] == http


def test_an_unknown_endpoint_is_named_with_the_account() -> None:
    _, code, payload = _decoded(*runtime.error_answer(NotFoundError("gone"), **KW))
    assert code == "ValidationError"
    assert payload["message"] == "Endpoint ep of account 000000000000 not found."


def test_a_timeout_and_a_body_over_the_limit() -> None:
    _, _, payload = _decoded(*runtime.error_answer(DeadlineExceededError("60 s"), **KW))
    assert payload["message"].startswith('Received server error (0) from model with message "')
    assert payload["LogStreamArn"] == (
        "arn:aws:logs:us-east-1:000000000000:log-group:/aws/sagemaker/Endpoints/ep"
    )
    assert "OriginalStatusCode" not in payload  # no status came back
    _, headers, _ = runtime.error_answer(PayloadTooLargeError("big"), **KW)
    assert (b"connection", b"close") in headers  # the rest of the body is never read
    _, headers, _ = runtime.error_answer(UnavailableError("x", retry_after=2.5), **KW)
    assert (b"retry-after", b"3") in headers


def test_a_replica_error_keeps_its_status_and_its_words() -> None:
    answer = ReplicaAnswer(400, b"text/plain", b'bad "input"', None)
    written = runtime.model_error(
        answer, variant="blue", endpoint="ep", region="us-east-1", account="000000000000",
        request_id=b"rid",
    )  # fmt: skip
    status, code, payload = _decoded(*written)
    assert (status, code) == (424, "ModelError")
    assert (payload["OriginalStatusCode"], payload["OriginalMessage"]) == (400, 'bad "input"')
    assert payload["message"].startswith("Received client error (400) from blue with message")
    undecodable = ReplicaAnswer(500, b"", b"\xff\xfe", None)
    _, _, body = runtime.model_error(
        undecodable, variant="v", endpoint="ep", region="r", account="a", request_id=b"rid"
    )
    assert json.loads(body)["OriginalMessage"] == "\ufffd\ufffd"


def test_a_2xx_answer_names_the_variant_and_hands_back_the_attributes() -> None:
    answer = ReplicaAnswer(200, b"text/csv", b"1\n", None, b"trace=9")
    assert runtime.answer_headers(answer, "blue", b"rid") == [
        (b"content-type", b"text/csv"),
        (b"content-length", b"2"),
        (b"x-amzn-invoked-production-variant", b"blue"),
        (b"x-amzn-requestid", b"rid"),
        (b"x-amzn-sagemaker-custom-attributes", b"trace=9"),
    ]


def _authorization(service: str = "sagemaker", region: str = "us-east-1") -> str:
    return (
        f"AWS4-HMAC-SHA256 Credential=AKIAALICE/{{date}}/{region}/{service}/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=00"
    )


def _check(authorization: str, when: datetime, now: float) -> sigv4.Credential:
    stamp = when.strftime(sigv4.TIMESTAMP)
    headers = [("host", "h"), ("x-amz-date", stamp)]
    return runtime.credential(
        authorization.format(date=stamp[:8]), headers, region="us-east-1", now=now
    )


def test_the_credential_is_checked_before_the_body() -> None:
    now = time.time()
    when = datetime.fromtimestamp(now, UTC)
    assert _check(_authorization(), when, now).access_key_id == "AKIAALICE"
    cases = [
        (_authorization("logs"), now, "scope"),
        (_authorization(region="eu-west-1"), now, "scope"),
        (_authorization(), now + 301, "skewed"),
        (_authorization(), now - 301, "skewed"),
        ("AWS4-HMAC-SHA256 Credential=AKIAALICE/x", now, "malformed"),
    ]
    for authorization, at, kind in cases:
        with pytest.raises(sigv4.SignatureError) as e:
            _check(authorization, when, at)
        assert e.value.kind == kind, authorization


def test_a_sent_content_hash_must_be_the_bodys() -> None:
    credential = sigv4.Credential(
        "AKIAALICE", "20261202", "us-east-1", "sagemaker", ("host",), "00", "20261202T000000Z"
    )
    headers = [("host", "h"), ("x-amz-content-sha256", sigv4.payload_hash_of(b"signed"))]
    with pytest.raises(sigv4.SignatureError) as e:
        runtime.verify(b"k", b"/endpoints/ep/invocations", headers, credential, b"sent")
    assert e.value.kind == "payload"
    with pytest.raises(sigv4.SignatureError) as e:  # the right hash, the wrong signature
        runtime.verify(b"k", b"/endpoints/ep/invocations", headers, credential, b"signed")
    assert e.value.kind == "mismatch"


def test_a_throttled_caller_is_told_when_to_come_back() -> None:
    status, headers, _ = runtime.error_answer(ThrottlingError("slow", retry_after=2.1), **KW)
    assert status == 400  # AWS's ThrottlingException; botocore backs off on the code
    assert dict(headers)[b"retry-after"] == b"3"

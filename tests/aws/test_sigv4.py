"""The SigV4 verifier against botocore's own signer: what botocore signs verifies; each tampered
part (secret, body, path, query, a signed header, the clock) does not, with its own kind."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest

from orchestrator import sigv4

botocore = pytest.importorskip("botocore", reason="botocore is in the [dev] extra")
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth, SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

AKID, SECRET = "AKIAEXAMPLEEXAMPLE00", "s3cr3t/s3cr3t+s3cr3t/s3cr3t+s3cr3t000000"


def _signed(
    service: str = "sagemaker",
    *,
    method: str = "POST",
    url: str = "http://127.0.0.1:8686/",
    body: bytes = b'{"TrainingJobName": "j"}',
    headers: dict[str, str] | None = None,
    signer: type[SigV4Auth] = SigV4Auth,
) -> AWSRequest:
    request = AWSRequest(method=method, url=url, data=body, headers=headers or {})
    signer(Credentials(AKID, SECRET), service, "us-east-1").add_auth(request)
    return request


def _check(
    request: AWSRequest,
    *,
    secret: str = SECRET,
    body: bytes | None = None,
    now: datetime | None = None,
    service: str = "sagemaker",
) -> None:
    parts = urlsplit(request.url)
    headers = [(k.lower(), v) for k, v in request.headers.items()]
    headers.append(("host", parts.netloc))
    first = dict(headers)
    cred = sigv4.parse(first.get("authorization"), parts.query, first)
    sigv4.check_time(cred, now or datetime.now(UTC))
    sigv4.check_scope(cred, "us-east-1", [service])
    data = request.body if body is None else body
    payload = first.get("x-amz-content-sha256") or hashlib.sha256(data or b"").hexdigest()
    if body is not None and "x-amz-content-sha256" in first:
        payload = hashlib.sha256(body).hexdigest()
    key = sigv4.signing_key(secret, cred.date, cred.region, cred.service)
    signed = sigv4.Request(request.method, parts.path, parts.query, headers)
    sigv4.verify(key, signed, cred, payload)


def test_what_botocore_signs_verifies() -> None:
    _check(_signed(headers={"X-Amz-Target": "SageMaker.ListTrainingJobs"}))


@pytest.mark.parametrize(
    "path",
    ["/", "/endpoints/my-endpoint/invocations", "/endpoints/a%20b/invocations", "/x/./y/../z"],
)
def test_paths_are_canonicalized_as_botocore_does(path: str) -> None:
    _check(_signed(url=f"http://127.0.0.1:8686{path}"))


def test_s3_paths_and_queries_are_signed_as_sent() -> None:
    url = "http://127.0.0.1:8686/bucket/a%20key/with%2Bplus?list-type=2&prefix=a%2Fb&delimiter=%2F"
    request = _signed("s3", method="GET", url=url, body=b"", signer=S3SigV4Auth)
    _check(request, service="s3")


def test_a_presigned_url_verifies_until_it_expires() -> None:
    request = AWSRequest(method="GET", url="http://127.0.0.1:8686/bucket/key")
    S3SigV4QueryAuth(Credentials(AKID, SECRET), "s3", "us-east-1", expires=60).add_auth(request)
    parts = urlsplit(request.url)
    headers = [("host", parts.netloc)]
    cred = sigv4.parse(None, parts.query, dict(headers))
    assert cred.presigned and cred.expires == 60
    key = sigv4.signing_key(SECRET, cred.date, cred.region, cred.service)
    signed = sigv4.Request("GET", parts.path, parts.query, headers)
    sigv4.verify(key, signed, cred, sigv4.UNSIGNED_PAYLOAD)
    sigv4.check_time(cred, datetime.now(UTC))
    with pytest.raises(sigv4.SignatureError) as e:
        sigv4.check_time(cred, datetime.now(UTC) + timedelta(seconds=120))
    assert e.value.kind == "expired"


def test_a_wrong_secret_is_a_mismatch() -> None:
    with pytest.raises(sigv4.SignatureError) as e:
        _check(_signed(), secret=SECRET[:-1] + "1")
    assert e.value.kind == "mismatch"


def test_a_tampered_body_is_a_mismatch() -> None:
    with pytest.raises(sigv4.SignatureError) as e:
        _check(_signed(), body=b'{"TrainingJobName": "other"}')
    assert e.value.kind == "mismatch"


def test_a_tampered_signed_header_is_a_mismatch() -> None:
    request = _signed(headers={"X-Amz-Target": "SageMaker.ListTrainingJobs"})
    request.headers.replace_header("X-Amz-Target", "SageMaker.DeleteEndpoint")
    with pytest.raises(sigv4.SignatureError) as e:
        _check(request)
    assert e.value.kind == "mismatch"


def test_clock_skew_beyond_five_minutes_is_refused_either_way() -> None:
    request = _signed()
    _check(request, now=datetime.now(UTC) + timedelta(minutes=4))
    for delta in (timedelta(minutes=6), -timedelta(minutes=6)):
        with pytest.raises(sigv4.SignatureError) as e:
            _check(request, now=datetime.now(UTC) + delta)
        assert e.value.kind == "skewed"
        assert "Signature expired" in e.value.message


def test_wrong_region_or_service_in_the_scope_is_refused() -> None:
    request = _signed("logs")
    with pytest.raises(sigv4.SignatureError) as e:
        _check(request, service="sagemaker")
    assert e.value.kind == "scope"
    assert "'logs'" in e.value.message


@pytest.mark.parametrize(
    ("authorization", "kind"),
    [
        (None, "missing"),
        ("Bearer orch_x_y", "malformed"),
        ("AWS4-HMAC-SHA256 Credential=AKID/20261202/us-east-1/sagemaker/aws4_request", "malformed"),
        ("AWS4-HMAC-SHA256 Credential=AKID/x, SignedHeaders=host, Signature=00", "malformed"),
    ],
)
def test_malformed_or_missing_authorization(authorization: str | None, kind: str) -> None:
    with pytest.raises(sigv4.SignatureError) as e:
        sigv4.parse(authorization, "", {"x-amz-date": "20261202T000000Z"})
    assert e.value.kind == kind


@pytest.mark.parametrize(
    "stamp",
    ["2026-12-02T00:00Z", "20261302T000000Z", "20261202T000000", "20261202T00a000Z", "20261202"],
)
def test_a_timestamp_not_in_the_basic_format_is_malformed(stamp: str) -> None:
    cred = sigv4.Credential("AKID", stamp[:8], "us-east-1", "sagemaker", ("host",), "00", stamp)
    with pytest.raises(sigv4.SignatureError) as e:
        sigv4.check_time(cred, datetime.now(UTC))
    assert e.value.kind == "malformed" and "YYYYMMDDTHHMMSSZ" in e.value.message

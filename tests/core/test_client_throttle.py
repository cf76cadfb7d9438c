"""The client sends a request answered 429 again after the server's ``Retry-After`` (as the
AWS SDKs do), a bounded number of times; a wait too long, a stream body, or retries spent
raise the 429 in the one error shape."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest

from orchestrator.client import Client
from orchestrator.client.client import _retry_after
from orchestrator.errors import ThrottlingError


def _throttled(refusals: int, retry_after: str = "1") -> tuple[httpx.MockTransport, list[bytes]]:
    seen: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.read())
        if len(seen) <= refusals:
            return httpx.Response(
                429,
                headers={"Retry-After": retry_after},
                json={"code": "ThrottlingException", "message": "rate exceeded"},
            )
        return httpx.Response(200, json={"TrainingJobArn": "arn:x"})

    return httpx.MockTransport(handler), seen


def _client(transport: httpx.MockTransport, **kw: object) -> tuple[Client, list[float]]:
    c = Client("http://cp.test", "orch_k_s", transport=transport, **kw)  # type: ignore[arg-type]
    waits: list[float] = []
    c._sleep = waits.append
    return c, waits


def test_a_429_is_sent_again_after_retry_after_with_the_same_body() -> None:
    transport, seen = _throttled(2, "2")
    c, waits = _client(transport)
    assert c.create_training_job({"TrainingJobName": "j"}) == "arn:x"
    assert waits == [2.0, 2.0]
    assert len(seen) == 3 and len(set(seen)) == 1  # the same JSON body each time


def test_retries_spent_raise_the_throttling_error() -> None:
    transport, seen = _throttled(10)
    c, waits = _client(transport, throttle_retries=2)
    with pytest.raises(ThrottlingError, match="rate exceeded"):
        c.create_training_job({"TrainingJobName": "j"})
    assert len(seen) == 3 and waits == [1.0, 1.0]


def test_no_retries_when_turned_off_or_the_wait_is_too_long() -> None:
    transport, seen = _throttled(1)
    c, waits = _client(transport, throttle_retries=0)
    with pytest.raises(ThrottlingError):
        c.create_training_job({"TrainingJobName": "j"})
    assert waits == [] and len(seen) == 1
    transport, seen = _throttled(1, "120")
    c, waits = _client(transport)
    with pytest.raises(ThrottlingError):
        c.create_training_job({"TrainingJobName": "j"})
    assert waits == [] and len(seen) == 1


def test_a_stream_body_is_not_sent_twice() -> None:
    transport, seen = _throttled(1)
    c, waits = _client(transport)

    def chunks() -> Iterator[bytes]:
        yield b"abc"

    with pytest.raises(ThrottlingError):
        c.request("PUT", "/api/v1/objects/b/k", content=chunks())
    assert waits == [] and len(seen) == 1


def test_retry_after_as_seconds_or_a_date() -> None:
    assert _retry_after("3") == 3.0
    assert _retry_after("0.5") == 0.5
    assert _retry_after("-4") == 0.0
    assert _retry_after(None) is None
    assert _retry_after("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=10), usegmt=True)
    assert 8.0 <= (_retry_after(later) or 0) <= 10.0


def test_a_negative_retry_count_is_refused() -> None:
    with pytest.raises(ValueError, match="throttle_retries"):
        Client("http://cp.test", "orch_k_s", throttle_retries=-1)

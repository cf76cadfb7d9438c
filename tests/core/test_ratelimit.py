"""Per-key rate limits: token buckets (burst, refill, per key), and the management API's 429
with ``Retry-After`` (whole seconds, rounded up) in the one error shape."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from orchestrator.api.app import build_control_plane, create_app
from orchestrator.api.auth import new_api_key
from orchestrator.errors import OrchestratorError, ThrottlingError, ValidationError, http_answer
from orchestrator.ratelimit import TokenBuckets, buckets_of
from orchestrator.settings import RateLimitSettings, Settings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_burst_then_one_request_per_token() -> None:
    clock = Clock()
    buckets = TokenBuckets(2.0, 3, clock=clock)
    assert [buckets.take("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("k") == pytest.approx(0.5)  # one token comes every 1/rate seconds
    clock.now += 0.25
    assert buckets.take("k") == pytest.approx(0.25)  # a refusal takes nothing
    clock.now += 0.25
    assert buckets.take("k") == 0.0
    assert buckets.take("k") > 0


def test_the_bucket_refills_up_to_the_burst_and_keys_are_apart() -> None:
    clock = Clock()
    buckets = TokenBuckets(10.0, 5, clock=clock)
    for _ in range(5):
        buckets.take("a")
    assert buckets.take("a") > 0
    assert buckets.take("b") == 0.0  # another key has its own bucket
    clock.now += 3600  # an hour idle: still only a burst's worth
    assert [buckets.take("a") for _ in range(6)].count(0.0) == 5


def test_a_refusal_says_when_and_which_setting() -> None:
    clock = Clock()
    buckets = TokenBuckets(0.4, 1, setting="ORCH_X", clock=clock)
    buckets.check("k")
    with pytest.raises(ThrottlingError) as caught:
        buckets.check("k")
    error = caught.value
    assert error.retry_after == pytest.approx(2.5)
    assert "retry after 3 s" in error.message and "ORCH_X" in error.message
    status, headers, _ = http_answer(error)
    assert (status, dict(headers)["retry-after"]) == (429, "3")
    buckets.forget("k")
    buckets.check("k")


def test_bad_limits_and_an_off_limit() -> None:
    assert buckets_of(0, 10, "S") is None
    with pytest.raises(ValidationError, match="above 0"):
        TokenBuckets(-1, 10)
    with pytest.raises(ValidationError, match="at least 1"):
        TokenBuckets(1, 0.5)


def test_the_client_gets_the_same_error_back() -> None:
    error = OrchestratorError.from_payload(
        429, {"code": "ThrottlingException", "message": "m", "retry_after": 0.4}
    )
    assert isinstance(error, ThrottlingError) and error.retry_after == 0.4


@dataclass
class Api:
    client: httpx.AsyncClient
    keys: list[str]
    limits: TokenBuckets


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    settings = Settings(
        home=tmp_path / "home",
        config_dir=tmp_path / "config",
        backend="fake",
        rate_limits=RateLimitSettings(api_requests_per_second=0.5, api_burst=3),
    )
    plane = build_control_plane(settings)
    now = datetime.now(tz=UTC)
    keys = [new_api_key(plane.keys, name=n, role="admin", now=now) for n in ("a", "b")]
    app = create_app(plane, run_controller=False)
    limits = app.state.api_limits
    assert isinstance(limits, TokenBuckets)
    limits.clock = Clock()
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://o") as client,
    ):
        yield Api(client, keys, limits)
    plane.store.close()


@pytest.mark.anyio
async def test_the_api_answers_429_with_retry_after_after_the_burst(api: Api) -> None:
    a, b = ({"Authorization": f"Bearer {k}"} for k in api.keys)
    for _ in range(3):
        assert (await api.client.get("/api/v1/models", headers=a)).status_code == 200
    r = await api.client.get("/api/v1/models", headers=a)
    assert r.status_code == 429
    assert r.headers["retry-after"] == "2"  # 1 / 0.5 per second
    assert r.json()["code"] == "ThrottlingException"
    assert "rate limit exceeded" in r.json()["message"]
    # The body is never parsed: a create is refused the same way.
    r = await api.client.post("/api/v1/models", headers=a, json={"ModelName": "m"})
    assert r.status_code == 429
    # Another key is not held back; a caller without a key is still 401.
    assert (await api.client.get("/api/v1/models", headers=b)).status_code == 200
    assert (await api.client.get("/api/v1/models")).status_code == 401
    assert (await api.client.get("/healthz")).status_code == 200  # not behind a key
    # Two seconds later one token is back.
    clock = api.limits.clock
    assert isinstance(clock, Clock)
    clock.now += 2.0
    assert (await api.client.get("/api/v1/models", headers=a)).status_code == 200
    assert (await api.client.get("/api/v1/models", headers=a)).status_code == 429

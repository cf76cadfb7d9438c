"""The invocation rate limit per key: off by default; when set, 429 with ``Retry-After``
before the body is read, on the fast path and the ASGI front alike."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from dataplane_harness import fake_replica_app

from orchestrator.api.app import build_control_plane, create_app
from orchestrator.api.auth import new_api_key
from orchestrator.controller.plan.types import VariantRoute
from orchestrator.controller.routing import EndpointRoute
from orchestrator.settings import RateLimitSettings, ServerSettings, Settings
from orchestrator.testing import ServerThread


@contextmanager
def serve(tmp_path: Path, limits: RateLimitSettings, fast: bool) -> Iterator[tuple[str, str]]:
    settings = Settings(
        home=tmp_path / "home",
        config_dir=tmp_path / "config",
        backend="fake",
        rate_limits=limits,
        server=ServerSettings(invocation_fast_path=fast),
    )
    plane = build_control_plane(settings)
    key = new_api_key(plane.store, name="t", role="admin", now=datetime.now(UTC))
    front = create_app(plane, run_controller=False)
    with ServerThread(fake_replica_app) as replica, ServerThread(front) as server:
        variant = VariantRoute("main", 1.0, (replica.url,), config="cfg")
        assert plane.controller is not None
        plane.controller.routes.publish(EndpointRoute("ep", False, (variant,)))
        yield server.url, key
    plane.store.close()


@pytest.mark.parametrize("fast", [True, False], ids=["fast path", "asgi"])
def test_429_with_retry_after_after_the_burst(tmp_path: Path, fast: bool) -> None:
    limits = RateLimitSettings(invocations_per_second=0.25, invocation_burst=2)
    with (
        serve(tmp_path, limits, fast) as (url, key),
        httpx.Client(base_url=url, trust_env=False, timeout=10) as http,
    ):
        auth = {"Authorization": f"Bearer {key}"}
        for _ in range(2):
            assert http.post("/endpoints/ep/invocations", content=b"[1]", headers=auth).is_success
        r = http.post("/endpoints/ep/invocations", content=b"[1]", headers=auth)
        assert r.status_code == 429
        assert r.headers["retry-after"] == "4"
        assert r.json()["code"] == "ThrottlingException"
        # The management API has its own limit (50 per second by default).
        assert http.get("/api/v1/endpoints", headers=auth).status_code == 200


def test_off_by_default(tmp_path: Path) -> None:
    with (
        serve(tmp_path, RateLimitSettings(), True) as (url, key),
        httpx.Client(base_url=url, trust_env=False, timeout=10) as http,
    ):
        auth = {"Authorization": f"Bearer {key}"}
        for _ in range(50):
            assert http.post("/endpoints/ep/invocations", content=b"[1]", headers=auth).is_success

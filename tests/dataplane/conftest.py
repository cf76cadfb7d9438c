"""Fixtures for the data plane's tests: both event loops, and a raw replica per test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from dataplane_harness import RawServer


@pytest.fixture(
    params=[("asyncio", {}), ("asyncio", {"use_uvloop": True})], ids=["asyncio", "uvloop"]
)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    return request.param


@pytest.fixture
async def raw() -> AsyncIterator[RawServer]:
    server = RawServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()

"""The key cache: a dict read on a hit, verified keys only, dropped at once on revocation."""

from __future__ import annotations

import pytest

from orchestrator.access import Principal
from orchestrator.dataplane.keys import KeyCache, presented_key
from orchestrator.errors import AuthenticationError

ALICE = Principal("k1", "alice", "invoke")
BOB = Principal("k2", "bob", "admin")


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_entries_live_ttl_seconds() -> None:
    clock = Clock()
    cache = KeyCache(ttl=5, clock=clock)
    cache.put("orch_k1_s", ALICE)
    assert cache.get("orch_k1_s") == ALICE and cache.get("orch_k1_other") is None
    clock.t += 5.1
    assert cache.get("orch_k1_s") is None


def test_forget_drops_every_entry_of_a_key_id_and_only_those() -> None:
    cache = KeyCache()
    cache.put("a", ALICE)
    cache.put("a ", ALICE)  # the same key presented another way
    cache.put("b", BOB)
    assert cache.forget("k1") == 2
    assert cache.get("a") is None and cache.get("b") == BOB


def test_the_cache_is_bounded() -> None:
    cache = KeyCache(size=3)
    for i in range(4):
        cache.put(f"key-{i}", ALICE)
    assert len(cache._entries) <= 3 and cache.get("key-3") == ALICE


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_check_asks_the_checker_once_and_never_caches_a_refusal(anyio_backend: str) -> None:
    asked: list[str | None] = []

    def checker(key: str | None) -> Principal:
        asked.append(key)
        if key != "good":
            raise AuthenticationError("missing or invalid API key")
        return ALICE

    cache = KeyCache()
    assert await cache.check(checker, "good") == ALICE
    assert await cache.check(checker, "good") == ALICE
    for _ in range(2):
        with pytest.raises(AuthenticationError):
            await cache.check(checker, "bad")
    assert asked == ["good", "bad", "bad"]


def test_the_key_comes_from_bearer_or_x_api_key() -> None:
    assert presented_key("Bearer  orch_a_b ", None) == "orch_a_b"
    assert presented_key("bearer orch_a_b", "other") == "orch_a_b"
    assert presented_key("Basic dXNlcg==", "orch_x_y") == "orch_x_y"
    assert presented_key(None, None) is None

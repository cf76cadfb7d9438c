"""The key caches (API keys, SigV4 signing keys): a dict read on a hit, verified keys only,
dropped at once on revocation."""

from __future__ import annotations

import pytest

from orchestrator.access import Principal
from orchestrator.dataplane.keys import KeyCache, SigningKeyCache, presented_key
from orchestrator.errors import AuthenticationError
from orchestrator.sigv4 import SignatureError

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


# --- SigV4 signing keys ----------------------------------------------------------------------
SCOPE = ("AKIAALICE", "20261202", "us-east-1", "sagemaker")


def test_signing_keys_live_ttl_seconds_by_scope() -> None:
    clock = Clock()
    cache = SigningKeyCache(ttl=5, clock=clock)
    cache.put(SCOPE, b"k" * 32, ALICE)
    assert cache.get(SCOPE) == (b"k" * 32, ALICE)
    assert cache.get(("AKIAALICE", "20261203", "us-east-1", "sagemaker")) is None  # another day
    clock.t += 5.1
    assert cache.get(SCOPE) is None


def test_forgetting_an_access_key_drops_all_its_scopes_and_only_those() -> None:
    cache = SigningKeyCache(size=10)
    cache.put(SCOPE, b"a", ALICE)
    cache.put(("AKIAALICE", "20261203", "us-east-1", "sagemaker"), b"b", ALICE)
    cache.put(("AKIABOB", "20261202", "us-east-1", "sagemaker"), b"c", BOB)
    assert cache.forget("AKIAALICE") == 2
    assert cache.get(SCOPE) is None
    assert cache.get(("AKIABOB", "20261202", "us-east-1", "sagemaker")) == (b"c", BOB)


def test_the_signing_key_cache_is_bounded() -> None:
    cache = SigningKeyCache(size=3)
    for i in range(4):
        cache.put((f"AKIA{i}", "20261202", "us-east-1", "sagemaker"), b"k", ALICE)
    assert len(cache._entries) <= 3
    assert cache.get(("AKIA3", "20261202", "us-east-1", "sagemaker")) == (b"k", ALICE)


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_signing_key_is_asked_for_once_and_a_refusal_never_cached(
    anyio_backend: str,
) -> None:
    asked: list[str] = []

    def source(akid: str, date: str, region: str, service: str) -> tuple[bytes, Principal]:
        asked.append(akid)
        if akid != "AKIAALICE":
            raise SignatureError("unknown_key", "The security token included is invalid.")
        return b"derived", ALICE

    cache = SigningKeyCache()
    assert await cache.check(source, SCOPE) == (b"derived", ALICE)
    assert await cache.check(source, SCOPE) == (b"derived", ALICE)
    other = ("AKIAOTHER", "20261202", "us-east-1", "sagemaker")
    for _ in range(2):
        with pytest.raises(SignatureError):
            await cache.check(source, other)
    assert asked == ["AKIAALICE", "AKIAOTHER", "AKIAOTHER"]


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_lookup_overtaken_by_a_revocation_is_not_cached(anyio_backend: str) -> None:
    cache = SigningKeyCache()

    def source(akid: str, date: str, region: str, service: str) -> tuple[bytes, Principal]:
        cache.forget(akid)  # revoked while the store was being read
        return b"derived", ALICE

    assert await cache.check(source, SCOPE) == (b"derived", ALICE)
    assert cache.get(SCOPE) is None

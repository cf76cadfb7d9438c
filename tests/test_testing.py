"""The test helpers users get (``orchestrator.testing``) behave as documented."""

from __future__ import annotations

import asyncio

import pytest

from orchestrator.testing import eventually, eventually_async


def test_eventually_returns_the_first_truthy_answer_and_retries_assertions() -> None:
    calls = [0]

    def check() -> int:
        calls[0] += 1
        assert calls[0] > 3, "not yet"
        return calls[0]

    assert eventually(check, interval=0) == 4


def test_eventually_says_what_it_waited_for_and_the_last_answer() -> None:
    with pytest.raises(AssertionError, match=r"not within 0.05 s: the job; last: \[\]"):
        eventually(lambda: [], timeout=0.05, what="the job")


def test_eventually_async_waits_on_the_loop() -> None:
    calls = [0]

    def check() -> int:
        calls[0] += 1
        return calls[0] if calls[0] > 2 else 0

    assert asyncio.run(eventually_async(check, interval=0)) == 3

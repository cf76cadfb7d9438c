"""The router: variant choice, retries, the old fleet's fallback, held requests, shadows."""

from __future__ import annotations

import asyncio
import math
import random
import socket
import time
from collections import Counter

import pytest
from dataplane_harness import RawServer, answer

from orchestrator.controller.plan.types import VariantRoute
from orchestrator.controller.routing import EndpointRoute, RoutingTable
from orchestrator.dataplane.recorder import InvocationLog
from orchestrator.dataplane.router import Router, fallback_variant, pick_variant
from orchestrator.errors import UnavailableError, ValidationError
from orchestrator.monitoring.series import ANSWERED, FINISHED, STARTED


def route(*variants: VariantRoute, public: bool = False) -> EndpointRoute:
    return EndpointRoute("ep", public, variants)


def v(name: str, weight: float = 1.0, *urls: str, **flags: bool) -> VariantRoute:
    return VariantRoute(name, weight, tuple(urls), config="c1", **flags)


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


# --- pure picking ---------------------------------------------------------------------------
def test_weights_are_honoured_within_tolerance() -> None:
    random.seed(3)
    r = route(
        v("a", 1.0, "http://a"), v("b", 3.0, "http://b"), v("s", 1.0, "http://s", shadow=True)
    )
    n = 4000
    picks = Counter(pick_variant(r, None).name for _ in range(n))
    sd = math.sqrt(n * 0.25 * 0.75)
    assert abs(picks["a"] - n / 4) < 5 * sd and picks["s"] == 0


def test_a_target_variant_is_always_the_one_and_an_unknown_one_is_named() -> None:
    r = route(v("a", 1.0, "http://a"), v("b", 0.0, "http://b"))
    assert {pick_variant(r, "b").name for _ in range(20)} == {"b"}
    with pytest.raises(ValidationError, match="no production variant 'zz'") as info:
        pick_variant(r, "zz")
    assert info.value.field == "x-target-variant"


def test_no_ready_replica_is_503_and_a_sleeping_variant_is_picked_to_wake() -> None:
    with pytest.raises(UnavailableError, match="no ready replica") as info:
        pick_variant(route(v("a", 1.0)), None)
    assert info.value.retry_after == 1
    assert pick_variant(route(v("a", 1.0, scaled_to_zero=True)), None).name == "a"


def test_the_fallback_is_the_old_fleet_of_the_same_variant() -> None:
    new = v("main", 1.0, "http://new", trial=True)
    old = v("main", 0.0, "http://old")
    assert fallback_variant(route(new, old), new) == old
    assert fallback_variant(route(new), new) is None


# --- against replicas -----------------------------------------------------------------------
def router(table: RoutingTable, **kw: object) -> tuple[Router, InvocationLog]:
    log = InvocationLog()
    return Router(table, timeout_seconds=2.0, log_=log, **kw), log  # type: ignore[arg-type]


async def invoke(r: Router, er: EndpointRoute, target: str | None = None):  # type: ignore[no-untyped-def]
    return await r.invoke(
        er, b"/invocations", b"", b"[1]", target=target, started=time.perf_counter()
    )


@pytest.mark.anyio
async def test_a_refused_connection_goes_to_the_next_replica(raw: RawServer) -> None:
    table = RoutingTable()
    er = route(v("main", 1.0, dead_url(), raw.url))
    r, log = router(table)
    for _ in range(4):
        assert (await invoke(r, er)).answer.status == 200
    await r.aclose()
    kinds = Counter(e[0] for e in log.drain())
    # Each request is in flight once; none is answered with a failure.
    assert kinds == {STARTED: 4, FINISHED: 4}


@pytest.mark.anyio
async def test_no_replica_taking_the_connection_is_503_recorded_once() -> None:
    table = RoutingTable()
    r, log = router(table)
    with pytest.raises(UnavailableError, match="no replica of variant 'main' accepted"):
        await invoke(r, route(v("main", 1.0, dead_url(), dead_url())))
    await r.aclose()
    answered = [e for e in log.drain() if e[0] == ANSWERED]
    assert [e[5] for e in answered] == [503]


@pytest.mark.anyio
async def test_a_5xx_from_the_new_fleet_is_served_by_the_old(raw: RawServer) -> None:
    old = RawServer()
    await old.start()
    raw.behaviour = lambda _r: answer(500, b"new fleet broke")
    old.behaviour = lambda _r: answer(200, b"old fleet")
    try:
        r, log = router(RoutingTable())
        er = route(v("main", 1.0, raw.url, trial=True), v("main", 0.0, old.url))
        served = await invoke(r, er)
        assert (served.answer.status, served.answer.body) == (200, b"old fleet")
        assert not served.variant.trial
        await r.aclose()
        answered = [e for e in log.drain() if e[0] == ANSWERED]
        assert [e[5] for e in answered] == [500]  # the new fleet's failure counts
    finally:
        await old.stop()


@pytest.mark.anyio
async def test_a_held_request_wakes_the_controller_and_is_served_when_a_replica_is_ready(
    raw: RawServer,
) -> None:
    table = RoutingTable()
    woken = []
    table.on_demand = lambda ep, variant: woken.append(table.waiting(ep, variant))
    sleeping = route(v("main", 1.0, scaled_to_zero=True))
    table.publish(sleeping)
    r, _ = router(table)
    task = asyncio.ensure_future(invoke(r, sleeping))
    await asyncio.sleep(0.1)
    assert woken == [1] and not task.done()
    table.publish(route(v("main", 1.0, raw.url)))
    served = await asyncio.wait_for(task, 2)
    assert served.answer.status == 200
    assert table.waiting("ep", "main") == 0
    await r.aclose()


@pytest.mark.anyio
async def test_shadow_copies_never_change_the_answer_and_are_bounded(raw: RawServer) -> None:
    shadow = RawServer()
    await shadow.start()
    raw.behaviour = lambda _r: answer(200, b"live")
    shadow.behaviour = lambda _r: b""  # never answers
    try:
        r, _log = router(RoutingTable(), shadow_max_in_flight=2)
        er = route(v("live", 1.0, raw.url), v("shadow", 1.0, shadow.url, shadow=True))
        for _ in range(5):
            assert (await invoke(r, er)).answer.body == b"live"
        await asyncio.sleep(0.05)
        assert len(shadow.requests) == 2 and r.shadow_dropped == 3
        await r.aclose()
    finally:
        await shadow.stop()


def test_a_variant_woken_from_zero_is_waking_until_its_first_replica_is_ready() -> None:
    table = RoutingTable()
    table.publish(route(v("main", 1.0, scaled_to_zero=True)))
    assert not table.waking("ep", "main")
    table.publish(route(v("main", 1.0)))  # desired 1, nothing ready yet
    assert table.waking("ep", "main")
    table.publish(route(v("main", 1.0, "http://r")))
    assert not table.waking("ep", "main")
    table.publish(route(v("main", 1.0)))  # the replica died: not waking, a plain 503
    assert not table.waking("ep", "main")
    copy = RoutingTable()
    copy.replace_all([route(v("main", 1.0, scaled_to_zero=True))])
    copy.replace_all([route(v("main", 1.0))])
    assert copy.waking("ep", "main")
    copy.replace_all([])
    assert not copy.waking("ep", "main")


@pytest.mark.anyio
async def test_a_request_arriving_while_the_variant_wakes_is_held_too(raw: RawServer) -> None:
    table = RoutingTable()
    table.publish(route(v("main", 1.0, scaled_to_zero=True)))
    table.publish(route(v("main", 1.0)))  # woken by an earlier request, starting
    r, _ = router(table)
    task = asyncio.ensure_future(invoke(r, table.get("ep")))  # type: ignore[arg-type]
    await asyncio.sleep(0.1)
    assert not task.done() and table.waiting("ep", "main") == 1
    table.publish(route(v("main", 1.0, raw.url)))
    assert (await asyncio.wait_for(task, 2)).answer.status == 200
    await r.aclose()

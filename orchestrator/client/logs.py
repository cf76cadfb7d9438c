"""Following a log group: pages of events, then polling on from where they ended."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from orchestrator.client.client import Client


def follow_log_events(
    client: Client,
    group: str,
    *,
    stream: str | None = None,
    stream_prefix: str | None = None,
    pattern: str | None = None,
    since: str | None = None,
    follow: bool = False,
    poll: float = 1.0,
    stop: Callable[[], bool] = lambda: False,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[dict[str, Any]]:
    """The group's events from ``since`` on; with ``follow``, keep polling (every ``poll``
    seconds while nothing is new) until ``stop()`` is true."""
    token: str | None = None
    start = since
    while True:
        page = client.log_events(
            group, stream=stream, stream_prefix=stream_prefix, pattern=pattern, since=start,
            next_token=token,
        )  # fmt: skip
        yield from page["Events"]
        new = page["NextToken"] != token
        token = page["NextToken"]
        if new and page["Events"]:
            continue  # more may be waiting: read on at once
        if not follow or stop():
            return
        sleep(poll)
        if stop():
            return

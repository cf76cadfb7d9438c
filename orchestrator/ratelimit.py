"""Per-identity rate limits: a token bucket per key id, refusing with ``ThrottlingError``.

Each key gets ``rate`` tokens a second up to ``burst``; a request takes one, and a request
that finds none is refused with the seconds until the next token (``Retry-After``, rounded
up). A bucket is two floats in a dict: a check is one dict read and a few float operations,
no lock (it runs on the server's event loop; called from threads, a race between two takes of
one key can at worst let one extra request through, never corrupt a bucket). One process
keeps its own buckets: with router workers (``ORCH_SERVER__ROUTER_WORKERS``), each worker
enforces the invocation limit on the requests it serves. Buckets are per authenticated key,
so their number is bounded by the keys that exist.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from orchestrator.errors import ThrottlingError, ValidationError


class TokenBuckets:
    """``rate`` requests a second per key, bursts of up to ``burst``. ``setting``: the setting
    that raises the limit, named in the refusal."""

    __slots__ = ("_buckets", "burst", "clock", "rate", "setting")

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        setting: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not rate > 0:
            raise ValidationError(f"{setting or 'rate'}: must be above 0 (got {rate})")
        if not burst >= 1:
            raise ValidationError(f"{setting or 'burst'}: burst must be at least 1 (got {burst})")
        self.rate = float(rate)
        self.burst = float(burst)
        self.setting = setting
        self.clock = clock
        # key -> [tokens, when they were counted]
        self._buckets: dict[str, list[float]] = {}

    def take(self, key: str) -> float:
        """Take a token for ``key``: 0.0 when there was one, else the seconds until there is
        (nothing taken)."""
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            self._buckets[key] = [self.burst - 1.0, now]
            return 0.0
        tokens = bucket[0] + (now - bucket[1]) * self.rate
        if tokens > self.burst:  # noqa: PLR1730 - cheaper than a call to min() per request
            tokens = self.burst
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self.rate

    def check(self, key: str) -> None:
        """Take a token for ``key`` or raise ``ThrottlingError`` with its ``retry_after``."""
        wait = self.take(key)
        if wait:
            raise self.refusal(key, wait)

    def refusal(self, key: str, wait: float) -> ThrottlingError:
        seconds = max(1, math.ceil(wait))
        hint = f"; an operator can raise it ({self.setting})" if self.setting else ""
        return ThrottlingError(
            f"rate limit exceeded for key {key}: {self.rate:g} requests per second, bursts of "
            f"{self.burst:g}; retry after {seconds} s{hint}",
            retry_after=wait,
        )

    def forget(self, key: str) -> None:
        self._buckets.pop(key, None)


def buckets_of(rate: float, burst: float, setting: str) -> TokenBuckets | None:
    """The buckets for a configured limit, or None when it is off (``rate`` 0)."""
    if rate == 0:
        return None
    return TokenBuckets(rate, burst, setting=setting)

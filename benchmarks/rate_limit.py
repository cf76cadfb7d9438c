"""What the per-key rate limit costs a request (``orchestrator.ratelimit.TokenBuckets``).

The hot path is one ``check(key_id)`` per authenticated request: a dict read and a few float
operations. Timed: a key let through (the common case), the same over 10,000 keys in turn (a
big dict, cold-ish buckets), a refusal (which builds the ``ThrottlingError``), and the cost of
the limit being off (the ``is not None`` the data plane pays).

    python benchmarks/rate_limit.py [--number 1000000]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import timeit

from orchestrator.errors import ThrottlingError
from orchestrator.ratelimit import TokenBuckets


def per_call_ns(fn: object, number: int, repeat: int = 5) -> float:
    best = min(timeit.repeat(fn, number=number, repeat=repeat))  # type: ignore[arg-type]
    return best / number * 1e9


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--number", type=int, default=1_000_000)
    args = parser.parse_args()
    n = args.number

    allowed = TokenBuckets(1e12, 1e12)
    hit = per_call_ns(lambda: allowed.check("orch_0123456789ab"), n)

    keys = [f"orch_{i:012x}" for i in range(10_000)]
    cycle = itertools.cycle(keys).__next__
    many = TokenBuckets(1e12, 1e12)
    spread = per_call_ns(lambda: many.check(cycle()), n)
    baseline = per_call_ns(cycle, n)  # the key picking alone, subtracted

    refusing = TokenBuckets(1e-9, 1)
    refusing.check("k")

    def refuse() -> None:
        with contextlib.suppress(ThrottlingError):
            refusing.check("k")

    refused = per_call_ns(refuse, n // 10)

    off: TokenBuckets | None = None

    def when_off() -> None:
        if off is not None:
            off.check("k")

    off_ns = per_call_ns(when_off, n)
    empty = per_call_ns(lambda: None, n)
    table = {"orch_0123456789ab": 1}
    lookup = per_call_ns(lambda: table.get("orch_0123456789ab"), n)

    print(f"check, one key let through:       {hit - empty:7.0f} ns")
    print(f"check, 10,000 keys in turn:       {spread - baseline:7.0f} ns")
    print(f"check, refused (error built):     {refused - empty:7.0f} ns")
    print(f"limit off (the None test):        {off_ns - empty:7.0f} ns")
    print(f"(a bare lambda call, subtracted:  {empty:7.0f} ns;")
    print(f" one dict.get, for scale:         {lookup - empty:7.0f} ns)")


if __name__ == "__main__":
    main()

"""Mergeable summaries of samples: count, sum, min, max and a log-bucketed histogram.

The histogram follows DDSketch: a positive value ``x`` lands in bucket
``ceil(log(x) / log(GAMMA))`` and is read back as ``2 * GAMMA**i / (GAMMA + 1)``, which is
within ``ALPHA`` (1 %) of every value of its bucket, whatever the magnitude. Buckets are a
sparse ``dict`` (about 2,300 possible indexes between 1e-6 and 1e9, far fewer in practice),
so a summary's size depends on how spread the values are, never on how many there were, and
two summaries merge by adding counts. Percentiles are then accurate to about 1 % plus the
gap between neighbouring order statistics.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

ALPHA = 0.01
GAMMA = (1 + ALPHA) / (1 - ALPHA)
_INV_LOG_GAMMA = 1.0 / math.log(GAMMA)
_ZERO = -(1 << 30)  # the bucket of zero and negative values


def bucket_of(value: float) -> int:
    if value <= 0.0:
        return _ZERO
    return math.ceil(math.log(value) * _INV_LOG_GAMMA)


def value_of(bucket: int) -> float:
    if bucket == _ZERO:
        return 0.0
    return 2.0 * GAMMA**bucket / (GAMMA + 1.0)


class Stat:
    """Samples of one metric in one time bucket (or a merge of several)."""

    __slots__ = ("count", "hist", "maximum", "minimum", "total")

    def __init__(self) -> None:
        self.count = 0
        self.total = 0.0
        self.minimum = math.inf
        self.maximum = -math.inf
        self.hist: dict[int, int] = {}

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)
        b = bucket_of(value)
        hist = self.hist
        hist[b] = hist.get(b, 0) + 1

    def merge(self, other: Stat) -> None:
        self.count += other.count
        self.total += other.total
        self.minimum = min(self.minimum, other.minimum)
        self.maximum = max(self.maximum, other.maximum)
        hist = self.hist
        for b, n in other.hist.items():
            hist[b] = hist.get(b, 0) + n

    def percentile(self, q: float) -> float | None:
        """The value at or below which ``q`` percent of the samples lie (None: no samples)."""
        if self.count == 0:
            return None
        rank = max(1, math.ceil(q / 100.0 * self.count))
        seen = 0
        for b in sorted(self.hist):
            seen += self.hist[b]
            if seen >= rank:
                # The exact extremes are known: never answer outside them.
                return min(max(value_of(b), self.minimum), self.maximum)
        return self.maximum


def merged(stats: Iterable[Stat | None]) -> Stat:
    out = Stat()
    for s in stats:
        if s is not None and s.count:
            out.merge(s)
    return out

"""Durable metric points: a series bucket as a stored point, rolled up to coarser resolutions.

Pure: no I/O. A ``Point`` is what one bucket of one series holds over ``resolution`` seconds
from ``at``: counts, the in-flight area and peak, and a ``Stat`` per sampled metric. Points of
a window merge into the window's point (counts and areas add, peaks take the maximum, stats
merge their histograms), so the 1-minute, 5-minute and 1-hour points are merges of the
1-second buckets they cover.

A stat is stored as bytes (``encode_stat``): count, sum, min, max, then the histogram's
(bucket, count) pairs as little-endian int32s; a few hundred bytes for a minute of latencies
whatever the rate, and decoded without parsing text.

Which resolution answers a query (``resolution_for``): the coarsest kept one that divides the
period, as CloudWatch keeps 1-minute points for 15 days, 5-minute for 63 and 1-hour for 455.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field

from orchestrator.monitoring.sketch import Stat

RESOLUTIONS = (1, 60, 300, 3600)
STAT_FIELDS = ("model", "overhead", "setup", "cpu", "memory")
_HEAD = struct.Struct("<qddd")


@dataclass
class Point:
    """One series over [at, at + resolution)."""

    count: int = 0
    e4: int = 0
    e5: int = 0
    area: float = 0.0
    peak: int = 0
    stats: dict[str, Stat] = field(default_factory=dict)

    def merge(self, other: Point) -> None:
        self.count += other.count
        self.e4 += other.e4
        self.e5 += other.e5
        self.area += other.area
        self.peak = max(self.peak, other.peak)
        for name, s in other.stats.items():
            mine = self.stats.get(name)
            if mine is None:
                mine = self.stats[name] = Stat()
            mine.merge(s)

    def empty(self) -> bool:
        return not (self.count or self.area or self.peak or self.stats)


def merge_points(points: Iterable[Point]) -> Point:
    out = Point()
    for p in points:
        out.merge(p)
    return out


def window_of(second: int, resolution: int) -> int:
    return second - second % resolution


def encode_stat(s: Stat) -> bytes:
    pairs = array("i")
    for b, n in sorted(s.hist.items()):  # in order: a percentile's sort of them is then cheap
        pairs.append(b)
        pairs.append(n)
    if pairs.itemsize != 4:  # pragma: no cover - every platform we run has 4-byte int
        raise RuntimeError("array('i') is not 32-bit here")
    return _HEAD.pack(s.count, s.total, s.minimum, s.maximum) + pairs.tobytes()


def decode_stat(data: bytes) -> Stat:
    if len(data) < _HEAD.size or (len(data) - _HEAD.size) % 8:
        raise ValueError(f"a stored stat of {len(data)} bytes is not one this version writes")
    pairs = array("i")
    pairs.frombytes(data[_HEAD.size :])
    # encode_stat writes the buckets in order, each once: kept so (Stat.from_sorted).
    return Stat.from_sorted(_HEAD.unpack_from(data), pairs[0::2], pairs[1::2])


def resolution_for(period: int, kept: dict[int, int], age_seconds: float) -> int:
    """The coarsest resolution that divides ``period`` and still holds points ``age_seconds``
    old (``kept``: resolution -> retention in seconds); the finest that divides it when none
    reaches back that far (it answers what it still holds)."""
    fits = [r for r in RESOLUTIONS if period % r == 0 and r in kept]
    if not fits:
        return 1
    reaching = [r for r in fits if kept[r] >= age_seconds]
    return max(reaching) if reaching else max(fits, key=lambda r: kept[r])


def retention_seconds(
    *, one_second_hours: float, one_minute_days: float, five_minute_days: float, hour_days: float
) -> dict[int, int]:
    return {
        1: int(one_second_hours * 3600),
        60: int(one_minute_days * 86400),
        300: int(five_minute_days * 86400),
        3600: int(hour_days * 86400),
    }

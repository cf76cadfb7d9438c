"""Adaptive batching, the pure part: which decoded inputs may share one ``predict`` call, how
their rows are joined, and how the joined prediction is cut back into one answer per request.

An input joins a batch when it is a plain numpy array of at least one dimension; inputs are
grouped by dtype and by the shape of a row (``shape[1:]``), so a request with a different
column count never shares a call with the others. A joined prediction splits back only when
it has exactly as many rows as went in; anything else means each request runs alone.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, slots=True)
class BatchingConfig:
    """Cut a batch at ``max_batch_size`` requests or ``max_delay_seconds`` after its first
    request, and never wait when nothing else is in flight."""

    max_batch_size: int
    max_delay_seconds: float = 0.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_batch_size <= 1024:
            raise ValueError(f"max_batch_size must be within 1..1024, not {self.max_batch_size}")
        if not 0 <= self.max_delay_seconds <= 1.0:
            raise ValueError(f"max_delay_seconds must be within 0..1, not {self.max_delay_seconds}")


def batch_key(data: Any) -> Hashable | None:
    """What inputs must share to join one batch, or None when ``data`` cannot join one."""
    if type(data) is not np.ndarray or data.ndim == 0 or data.shape[0] == 0:
        return None
    if data.dtype.hasobject:
        return None
    return (data.dtype.str, data.shape[1:])


def group(inputs: Sequence[Any]) -> tuple[list[list[int]], list[int]]:
    """Indexes of ``inputs`` that can be predicted together (groups of two or more), and the
    indexes that must run alone."""
    groups: dict[Hashable, list[int]] = {}
    alone: list[int] = []
    for index, data in enumerate(inputs):
        key = batch_key(data)
        if key is None:
            alone.append(index)
        else:
            groups.setdefault(key, []).append(index)
    together = []
    for indexes in groups.values():
        if len(indexes) > 1:
            together.append(indexes)
        else:
            alone.extend(indexes)
    return together, sorted(alone)


def join(arrays: Sequence[np.ndarray]) -> np.ndarray:
    """The rows of every array, in order, as one array."""
    return np.concatenate(arrays, axis=0)


def split(prediction: Any, rows: Sequence[int]) -> list[Any] | None:
    """``prediction`` cut into consecutive pieces of ``rows`` rows, or None when it does not
    have one row per input row (then the batch cannot be answered per request)."""
    total = sum(rows)
    if isinstance(prediction, np.ndarray):
        if prediction.ndim == 0 or prediction.shape[0] != total:
            return None
    elif isinstance(prediction, list | tuple):
        if len(prediction) != total:
            return None
    else:
        return None
    pieces: list[Any] = []
    start = 0
    for count in rows:
        pieces.append(prediction[start : start + count])
        start += count
    return pieces

"""When a running trial is stopped early: the median rule (early stopping ``Auto``) and
Hyperband's rungs. Both read the trials' objective series by epoch, as stored.

A series point's epoch is the epoch the line carried, else its position (the nth report of
the metric is epoch n), as SageMaker counts a metric emitted once per epoch.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

# The median rule judges a trial only against this many trials that reached the same epoch,
# and only from its second report on (one value says nothing about a curve).
MEDIAN_MIN_PEERS = 3
MEDIAN_MIN_REPORTS = 2
# Hyperband's reduction factor: one in ``ETA`` trials goes on from each rung.
ETA = 3


@dataclass(frozen=True)
class Point:
    epoch: int
    value: float
    at: datetime


@dataclass(frozen=True)
class Curve:
    """One trial's objective series, oldest first, and whether the trial still runs."""

    name: str
    points: tuple[Point, ...]
    running: bool
    bracket: int = 0


def _better(a: float, b: float, maximize: bool) -> bool:
    return a > b if maximize else a < b


def _best(values: Sequence[float], maximize: bool) -> float:
    return max(values) if maximize else min(values)


def median_rule(curves: Sequence[Curve], maximize: bool) -> list[tuple[str, str]]:
    """Running trials to stop, with why: a trial whose best value so far is worse than the
    median of the other trials' running averages up to the same epoch (finished trials, and
    running ones that have got further)."""
    out: list[tuple[str, str]] = []
    for c in curves:
        if not c.running or len(c.points) < MEDIAN_MIN_REPORTS:
            continue
        epoch = c.points[-1].epoch
        best = _best([p.value for p in c.points], maximize)
        averages = []
        for o in curves:
            if o.name == c.name or not o.points or o.points[-1].epoch < epoch:
                continue
            upto = [p.value for p in o.points if p.epoch <= epoch]
            if upto and (not o.running or o.points[-1].epoch > epoch):
                averages.append(statistics.fmean(upto))
        if len(averages) < MEDIAN_MIN_PEERS:
            continue
        median = statistics.median(averages)
        if _better(median, best, maximize):
            out.append(
                (
                    c.name,
                    f"early stopping: best objective {best:.6g} by epoch {epoch} is worse than "
                    f"the median {median:.6g} of {len(averages)} other trials' running averages",
                )
            )
    return out


def rungs(min_resource: int, max_resource: int, eta: int = ETA) -> list[int]:
    """The epochs at which Hyperband compares trials: min, min*eta, ... below max."""
    out = []
    r = min_resource
    while r < max_resource:
        out.append(r)
        r *= eta
    return out


def brackets(min_resource: int, max_resource: int, eta: int = ETA) -> int:
    """How many brackets there are: a trial of bracket b is first judged at rung b."""
    return max(1, len(rungs(min_resource, max_resource, eta)))


def _reached(c: Curve, epoch: int) -> tuple[float, datetime] | None:
    """The trial's value at ``epoch`` (its last report at or before it) and when it got there,
    or None if it has not got there."""
    at = next((p for p in c.points if p.epoch >= epoch), None)
    if at is None:
        return None
    upto = [p for p in c.points if p.epoch <= epoch]
    value = upto[-1].value if upto else at.value
    return value, at.at


def hyperband(
    curves: Sequence[Curve],
    maximize: bool,
    min_resource: int,
    max_resource: int,
    eta: int = ETA,
) -> list[tuple[str, str]]:
    """Running trials to stop (asynchronous successive halving within each bracket): at each
    rung from its bracket's first, a trial goes on only if it is in the top 1/eta of the trials
    of its bracket that reached that rung before it; at ``max_resource`` it is done."""
    out: list[tuple[str, str]] = []
    levels = rungs(min_resource, max_resource, eta)
    for c in curves:
        if not c.running or not c.points:
            continue
        if c.points[-1].epoch >= max_resource:
            out.append((c.name, f"Hyperband: reached MaxResource ({max_resource} epochs)"))
            continue
        for rung in levels[c.bracket :]:
            mine = _reached(c, rung)
            if mine is None:
                break
            value, when = mine
            earlier = []
            for o in curves:
                if o.name == c.name or o.bracket != c.bracket:
                    continue
                theirs = _reached(o, rung)
                if theirs is not None and (theirs[1], o.name) < (when, c.name):
                    earlier.append(theirs[0])
            field = len(earlier) + 1
            keep = max(1, field // eta)
            rank = 1 + sum(1 for v in earlier if _better(v, value, maximize))
            if field >= eta and rank > keep:
                out.append(
                    (
                        c.name,
                        f"Hyperband: at epoch {rung} ranked {rank} of {field} in bracket "
                        f"{c.bracket} (the top {keep} go on)",
                    )
                )
                break
    return out

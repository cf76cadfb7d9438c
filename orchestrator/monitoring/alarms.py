"""An alarm's state from its metric's datapoints: CloudWatch's M-of-N rule. Pure: the
datapoints and ``now`` are arguments (``api.alarms`` fetches them and acts on a change).

The evaluation range is the last ``EvaluationPeriods`` complete periods before ``now``. Each
period holds a datapoint (the statistic over it) or is missing. With ``M`` =
``DatapointsToAlarm`` (default ``EvaluationPeriods``):

- ``breaching`` / ``notBreaching``: a missing period counts as crossing / not crossing, then
  ALARM when at least M of the N cross, else OK;
- ``missing`` (the default) / ``ignore``: only present periods count; ALARM when at least
  min(M, present) of them cross, else OK (as CloudWatch's table: ``- X -`` with 3 of 3 is
  ALARM); when every period is missing, ``missing`` goes INSUFFICIENT_DATA and ``ignore``
  keeps the current state.

So an alarm on a metric that does not exist is INSUFFICIENT_DATA, as CloudWatch's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from orchestrator.resources.alarms import MetricAlarm

_WORDS = {
    "GreaterThanThreshold": "greater than",
    "GreaterThanOrEqualToThreshold": "greater than or equal to",
    "LessThanThreshold": "less than",
    "LessThanOrEqualToThreshold": "less than or equal to",
}


@dataclass(frozen=True)
class Evaluation:
    state: str
    reason: str
    reason_data: str


def window(alarm: MetricAlarm, now: datetime) -> tuple[float, float]:
    """[start, end) in epoch seconds: the last EvaluationPeriods complete periods."""
    period = alarm.Period or 60
    end = math.floor(now.timestamp() / period) * period
    return end - period * alarm.EvaluationPeriods, end


def crosses(alarm: MetricAlarm, value: float) -> bool:
    op, t = alarm.ComparisonOperator, alarm.Threshold
    if op == "GreaterThanThreshold":
        return value > t
    if op == "GreaterThanOrEqualToThreshold":
        return value >= t
    if op == "LessThanThreshold":
        return value < t
    return value <= t


def _stamp(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%d/%m/%y %H:%M:%S")


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def evaluate(
    alarm: MetricAlarm, points: Mapping[float, float], current: str, now: datetime
) -> Evaluation:
    """The state ``alarm`` should be in, given ``points`` (period start, epoch s -> the
    statistic's value over that period; periods absent are missing) and its ``current``
    state."""
    period = alarm.Period or 60
    start, _ = window(alarm, now)
    slots = [start + i * period for i in range(alarm.EvaluationPeriods)]
    present = [(t, points[t]) for t in reversed(slots) if t in points]  # newest first
    treat = alarm.TreatMissingData
    data: dict[str, object] = {
        "version": "1.0",
        "queryDate": _iso(now.timestamp()),
        "startDate": _iso(start),
        "statistic" if alarm.Statistic else "extendedStatistic": alarm.stat,
        "period": period,
        "recentDatapoints": [v for _, v in reversed(present)],
        "threshold": alarm.Threshold,
        "evaluatedDatapoints": [{"timestamp": _iso(t), "value": v} for t, v in present],
    }
    if treat in ("breaching", "notBreaching"):
        missing_crosses = treat == "breaching"
        flags = [crosses(alarm, points[t]) if t in points else missing_crosses for t in slots]
        counted, needed = len(slots), alarm.m
    else:
        if not present:
            if treat == "ignore":
                return Evaluation(
                    current, "Missing data ignored: the state is kept", json.dumps(data)
                )
            n = alarm.EvaluationPeriods
            verb = "was" if n == 1 else "were"
            return Evaluation(
                "INSUFFICIENT_DATA",
                f"Insufficient Data: {_plural(n, 'datapoint')} {verb} unknown.",
                json.dumps(data),
            )
        flags = [crosses(alarm, v) for _, v in present]
        counted, needed = len(present), min(alarm.m, len(present))
    crossing = sum(flags)
    state = "ALARM" if crossing >= needed else "OK"
    shown = ", ".join(f"{v:g} ({_stamp(t)})" for t, v in present)
    words = _WORDS[alarm.ComparisonOperator]
    if state == "ALARM":
        n, verb = crossing, ("was" if crossing == 1 else "were")
    else:
        n = counted - crossing
        verb = "was not" if n == 1 else "were not"
    reason = (
        f"Threshold Crossed: {n} out of the last {_plural(counted, 'datapoint')} [{shown}] "
        f"{verb} {words} the threshold ({alarm.Threshold:g}) (minimum "
        f"{_plural(needed, 'datapoint')} for {current} -> {state} transition)."
    )
    return Evaluation(state, reason, json.dumps(data))

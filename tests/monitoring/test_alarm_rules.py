"""Alarm evaluation (pure): CloudWatch's M-of-N rule, TreatMissingData, the reason strings;
PutMetricAlarm's shape refusing bad input by field."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from orchestrator.errors import ValidationError
from orchestrator.monitoring.alarms import evaluate, window
from orchestrator.resources.alarms import MetricAlarm, action_kind
from orchestrator.resources.validation import parse_spec

NOW = datetime(2026, 3, 12, 10, 3, 30, tzinfo=UTC)  # periods end at 10:03:00


def alarm(**fields: Any) -> MetricAlarm:
    base: dict[str, Any] = {
        "AlarmName": "a", "Namespace": "MyApp", "MetricName": "errors", "Statistic": "Sum",
        "Period": 60, "EvaluationPeriods": 3, "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanThreshold",
    }  # fmt: skip
    return parse_spec(MetricAlarm, {**base, **fields})


def points(*values: float | None) -> dict[float, float]:
    """Values for the window's periods, oldest first (None: missing)."""
    start, _ = window(alarm(EvaluationPeriods=len(values)), NOW)
    return {start + 60 * i: v for i, v in enumerate(values) if v is not None}


def test_window_is_the_last_complete_periods() -> None:
    start, end = window(alarm(), NOW)
    assert end == datetime(2026, 3, 12, 10, 3, tzinfo=UTC).timestamp()
    assert end - start == 180


def test_three_of_three_crossing_is_alarm_with_cloudwatchs_reason() -> None:
    ev = evaluate(alarm(), points(5.0, 4.0, 3.0), "OK", NOW)
    assert ev.state == "ALARM"
    assert ev.reason == (
        "Threshold Crossed: 3 out of the last 3 datapoints [3 (12/03/26 10:02:00), "
        "4 (12/03/26 10:01:00), 5 (12/03/26 10:00:00)] were greater than the threshold (1) "
        "(minimum 3 datapoints for OK -> ALARM transition)."
    )
    data = json.loads(ev.reason_data)
    assert data["recentDatapoints"] == [5.0, 4.0, 3.0]
    assert data["threshold"] == 1.0 and data["period"] == 60 and data["statistic"] == "Sum"


@pytest.mark.parametrize(
    ("values", "fields", "current", "state"),
    [
        ((5.0, 0.0, 5.0), {}, "OK", "OK"),  # 2 of 3 < M=3
        ((5.0, 0.0, 5.0), {"DatapointsToAlarm": 2}, "OK", "ALARM"),  # 2 of 3
        ((0.0, 0.0, 1.0), {"ComparisonOperator": "GreaterThanOrEqualToThreshold"}, "OK", "OK"),
        (
            (0.0, 1.0, 1.0),
            {"ComparisonOperator": "GreaterThanOrEqualToThreshold", "DatapointsToAlarm": 2},
            "OK",
            "ALARM",
        ),
        ((0.5, 0.5, 0.5), {"ComparisonOperator": "LessThanThreshold"}, "OK", "ALARM"),
        ((1.0, 1.0, 1.0), {"ComparisonOperator": "LessThanThreshold"}, "ALARM", "OK"),
        ((1.0, 1.0, 1.0), {"ComparisonOperator": "LessThanOrEqualToThreshold"}, "OK", "ALARM"),
        # TreatMissingData, CloudWatch's table for 3 of 3 (- missing)
        ((None, None, None), {}, "OK", "INSUFFICIENT_DATA"),
        ((None, None, None), {"TreatMissingData": "ignore"}, "ALARM", "ALARM"),
        ((None, None, None), {"TreatMissingData": "breaching"}, "OK", "ALARM"),
        ((None, None, None), {"TreatMissingData": "notBreaching"}, "ALARM", "OK"),
        ((None, 5.0, None), {}, "OK", "ALARM"),
        ((None, 5.0, None), {"TreatMissingData": "ignore"}, "OK", "ALARM"),
        ((None, 5.0, None), {"TreatMissingData": "breaching"}, "OK", "ALARM"),
        ((None, 5.0, None), {"TreatMissingData": "notBreaching"}, "ALARM", "OK"),
        ((0.0, None, None), {}, "ALARM", "OK"),
        ((0.0, None, None), {"TreatMissingData": "breaching"}, "OK", "OK"),
    ],
)
def test_m_of_n_and_missing_data(
    values: tuple[float | None, ...], fields: dict[str, Any], current: str, state: str
) -> None:
    assert evaluate(alarm(**fields), points(*values), current, NOW).state == state


def test_insufficient_data_reason() -> None:
    ev = evaluate(alarm(), {}, "INSUFFICIENT_DATA", NOW)
    assert ev.reason == "Insufficient Data: 3 datapoints were unknown."


def test_ok_reason_names_what_did_not_cross() -> None:
    ev = evaluate(alarm(EvaluationPeriods=1), points(0.0), "ALARM", NOW)
    assert ev.state == "OK"
    assert "1 out of the last 1 datapoint [0 (12/03/26 10:02:00)] was not greater than" in (
        ev.reason
    )
    assert "for ALARM -> OK transition" in ev.reason


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"Period": 45}, "Period", "multiple of 60"),
        ({"Period": 5}, "Period", "10 or 30"),
        ({"Threshold": "abc"}, "Threshold", "number"),
        ({"Threshold": "nan"}, "Threshold", "finite"),
        ({"DatapointsToAlarm": 4}, "DatapointsToAlarm", "at most EvaluationPeriods"),
        ({"EvaluationPeriods": 0}, "EvaluationPeriods", "greater than or equal to 1"),
        ({"ComparisonOperator": "Bigger"}, "ComparisonOperator", "GreaterThanThreshold"),
        ({"TreatMissingData": "skip"}, "TreatMissingData", "notBreaching"),
        ({"ExtendedStatistic": "p99"}, "Statistic", "exactly one"),
        ({"Statistic": None, "ExtendedStatistic": "p999x"}, "ExtendedStatistic", "percentile"),
        ({"Metrics": [{"Id": "m", "Expression": "a+b"}]}, "Metrics", "metric math"),
        ({"MetricName": None}, "MetricName", "required"),
        ({"AlarmActions": ["mailto:x@example.com"]}, "AlarmActions", "stop-training-job"),
        ({"Period": 86400, "EvaluationPeriods": 2}, "EvaluationPeriods", "one day"),
    ],
)
def test_bad_input_names_the_field(fields: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(ValidationError) as e:
        alarm(**fields)
    assert e.value.field == field, e.value.message
    assert words in e.value.message


def test_high_resolution_periods_and_percentiles_are_allowed() -> None:
    for period in (10, 30, 60, 300):
        assert alarm(Period=period).Period == period
    a = alarm(Statistic=None, ExtendedStatistic="p99.9")
    assert a.stat == "p99.9"
    assert alarm(Threshold="2.5").Threshold == 2.5  # the query protocol's strings


def test_action_forms() -> None:
    assert action_kind("https://hooks.example.com/x") == "webhook"
    assert (
        action_kind("arn:aws:sagemaker:us-east-1:000000000000:action/stop-training-job/job-1")
        == "stop-training-job"
    )
    assert action_kind("arn:aws:sagemaker:r:a:action/scale-variant/ep/AllTraffic/3") == (
        "scale-variant"
    )
    assert action_kind("arn:aws:sns:us-east-1:1:topic") is None


# --- blue/green rollback alarms named by AlarmName alone read these alarms' states -----------
def test_a_rollback_alarm_by_name_fires_while_the_metric_alarm_is_in_alarm() -> None:
    from orchestrator.controller.plan import deployment as dep
    from orchestrator.controller.plan.types import FleetHealth
    from orchestrator.resources.endpoints import DeploymentConfig, DeploymentState, RollbackAlarm

    by_name = RollbackAlarm(AlarmName="ep-5xx")
    assert dep.fired_alarm((by_name,), None, {"ep-5xx": "OK"}) is None
    assert dep.fired_alarm((by_name,), None, {}) is None
    assert dep.fired_alarm((by_name,), FleetHealth(), {"ep-5xx": "ALARM"}) == (
        "metric alarm 'ep-5xx' is in ALARM"
    )
    config = DeploymentConfig.model_validate(
        {"AutoRollbackConfiguration": {"Alarms": [{"AlarmName": "ep-5xx"}]}}
    )
    shifting = DeploymentState(
        TargetEndpointConfigName="cfg-2", Phase="Shifting", StartTime=NOW, StepStartTime=NOW,
        TrafficPercent=10.0,
    )  # fmt: skip
    fleet = dep.TargetFleet(ready=True, present=1, alarm_states={"ep-5xx": "ALARM"})
    moved = dep.advance(shifting, config, fleet, NOW)
    assert isinstance(moved, DeploymentState) and moved.Phase == "RollingBack"
    assert "metric alarm 'ep-5xx' is in ALARM at 10% of traffic" in (moved.Message or "")


def test_a_rollback_alarm_gives_metric_and_threshold_together_or_neither() -> None:
    from orchestrator.resources.endpoints import RollbackAlarm

    for fields, missing in (({"MetricName": "ModelLatency"}, "Threshold"),
                            ({"Threshold": 1.0}, "MetricName")):  # fmt: skip
        with pytest.raises(ValidationError) as e:
            parse_spec(RollbackAlarm, {"AlarmName": "a", **fields})
        assert e.value.field == missing

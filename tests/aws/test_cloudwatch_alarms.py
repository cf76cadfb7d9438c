"""Metric alarms on the wire: boto3's cloudwatch client (awsJson1_0) and the query protocol:
PutMetricAlarm, DescribeAlarms, SetAlarmState, DescribeAlarmHistory, DeleteAlarms; bad input
refused as CloudWatch refuses it, naming the parameter."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.aws.conftest import AwsPlane
from tests.aws.test_cloudwatch import _query_client

ALARM: dict[str, Any] = {
    "AlarmName": "ep-5xx",
    "Namespace": "AWS/SageMaker",
    "MetricName": "Invocation5XXErrors",
    "Dimensions": [
        {"Name": "EndpointName", "Value": "ep"},
        {"Name": "VariantName", "Value": "AllTraffic"},
    ],
    "Statistic": "Sum",
    "Period": 60,
    "EvaluationPeriods": 3,
    "DatapointsToAlarm": 2,
    "Threshold": 1.0,
    "ComparisonOperator": "GreaterThanOrEqualToThreshold",
    "TreatMissingData": "notBreaching",
}


@pytest.fixture
def cw(aws_plane: AwsPlane) -> Any:
    return aws_plane.client("cloudwatch")


def test_put_describe_set_state_history_delete(aws_plane: AwsPlane, cw: Any) -> None:
    cw.put_metric_alarm(**ALARM)
    [a] = cw.describe_alarms(AlarmNames=["ep-5xx"])["MetricAlarms"]
    assert (a["StateValue"], a["Threshold"], a["DatapointsToAlarm"]) == (
        "INSUFFICIENT_DATA", 1.0, 2,
    )  # fmt: skip
    assert a["AlarmArn"] == "arn:aws:cloudwatch:us-east-1:000000000000:alarm:ep-5xx"
    assert a["StateUpdatedTimestamp"].tzinfo is not None
    alarms = aws_plane.local.plane.alarms
    assert alarms is not None
    alarms.stop()
    alarms.evaluate_all()  # no such endpoint: every period missing, notBreaching -> OK
    assert cw.describe_alarms(StateValue="OK")["MetricAlarms"][0]["AlarmName"] == "ep-5xx"
    cw.set_alarm_state(AlarmName="ep-5xx", StateValue="ALARM", StateReason="drill")
    items = cw.describe_alarm_history(AlarmName="ep-5xx", HistoryItemType="StateUpdate")
    summaries = [i["HistorySummary"] for i in items["AlarmHistoryItems"]]
    assert summaries == ["Alarm updated from OK to ALARM",
                         "Alarm updated from INSUFFICIENT_DATA to OK"]  # fmt: skip
    with pytest.raises(cw.exceptions.ResourceNotFound):
        cw.delete_alarms(AlarmNames=["ep-5xx", "nope"])
    cw.delete_alarms(AlarmNames=["ep-5xx"])
    assert cw.describe_alarms()["MetricAlarms"] == []


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"Period": 45}, "Period"),
        ({"DatapointsToAlarm": 4}, "DatapointsToAlarm"),
        ({"AlarmActions": ["https://10.1.2.3/hook"]}, "AlarmActions"),
        ({"Statistic": None, "ExtendedStatistic": "p99", "MetricName": "ModelLatency"}, None),
    ],
)
def test_bad_input_is_invalid_parameter_value(
    cw: Any, fields: dict[str, Any], named: str | None
) -> None:
    body = {k: v for k, v in {**ALARM, **fields}.items() if v is not None}
    if named is None:  # a percentile alarm is fine
        cw.put_metric_alarm(**body)
        return
    with pytest.raises(cw.exceptions.InvalidParameterValueException) as e:
        cw.put_metric_alarm(**body)
    assert named in str(e.value)


def test_the_query_protocol(aws_plane: AwsPlane, tmp_path: Path) -> None:
    old = _query_client(aws_plane, tmp_path)
    old.put_metric_alarm(**ALARM)
    [a] = old.describe_alarms(AlarmNamePrefix="ep-")["MetricAlarms"]
    assert a["Dimensions"] == ALARM["Dimensions"] and a["Threshold"] == 1.0
    old.set_alarm_state(AlarmName="ep-5xx", StateValue="ALARM", StateReason="drill")
    history = old.describe_alarm_history(AlarmName="ep-5xx")["AlarmHistoryItems"]
    assert history[0]["HistoryItemType"] == "StateUpdate"
    with pytest.raises(old.exceptions.InvalidParameterValueException) as e:
        old.put_metric_alarm(**{**ALARM, "Period": 45})
    assert "Period" in str(e.value)
    old.delete_alarms(AlarmNames=["ep-5xx"])

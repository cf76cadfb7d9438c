"""PutMetricData: the client call and REST route, the CloudWatch operation, stored durably and
read by GetMetricStatistics, GetMetricData and ListMetrics; bad data refused by member."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator.access import Principal
from orchestrator.api.aws.cloudwatch import UNITS, Metrics
from orchestrator.api.aws.errors import AwsError
from orchestrator.errors import ValidationError
from orchestrator.monitoring.usermetrics import parse_metric_data
from orchestrator.testing import local_control_plane

ADMIN = Principal(key_id="k", name="t", role="admin")
DIMS = [{"Name": "Job", "Value": "j1"}, {"Name": "Host", "Value": "algo-1"}]


def test_put_through_the_client_then_read_with_cloudwatch(tmp_path: Path) -> None:
    with local_control_plane(tmp_path) as lcp:
        now = lcp.plane.clock.now()
        stored = lcp.client.put_metric_data(
            "MyApp/Training",
            [
                {"MetricName": "loss", "Value": 0.5, "Dimensions": DIMS, "Timestamp": now},
                {"MetricName": "loss", "Values": [0.25, 1.0], "Counts": [3, 1],
                 "Dimensions": DIMS[::-1], "Timestamp": now},  # same set, other order
                {"MetricName": "loss", "Value": 9.0, "Dimensions": DIMS[:1]},  # another set
            ],
        )  # fmt: skip
        assert stored == 3
        m = Metrics(lcp.plane)
        start, end = now - timedelta(minutes=5), now + timedelta(minutes=5)
        params: dict[str, Any] = {
            "Namespace": "MyApp/Training", "MetricName": "loss", "Dimensions": DIMS,
            "StartTime": start.isoformat(), "EndTime": end.isoformat(), "Period": 600,
            "Statistics": ["SampleCount", "Sum", "Maximum"],
        }  # fmt: skip
        [point] = m.get_metric_statistics(params, ADMIN)["Datapoints"]
        assert (point["SampleCount"], point["Sum"], point["Maximum"]) == (5.0, 2.25, 1.0)
        pct = m.get_metric_statistics(
            {**params, "Statistics": None, "ExtendedStatistics": ["p50"]}, ADMIN
        )["Datapoints"][0]
        assert pct["ExtendedStatistics"]["p50"] == pytest.approx(0.25, rel=0.02)
        data = m.get_metric_data(
            {
                "StartTime": start.isoformat(), "EndTime": end.isoformat(),
                "MetricDataQueries": [{"Id": "a", "MetricStat": {
                    "Metric": {"Namespace": "MyApp/Training", "MetricName": "loss",
                               "Dimensions": DIMS[:1]},
                    "Period": 60, "Stat": "Sum"}}],
            },
            ADMIN,
        )  # fmt: skip
        assert data["MetricDataResults"][0]["Values"] == [9.0]
        listed = m.list_metrics({"Namespace": "MyApp/Training"}, ADMIN)["Metrics"]
        assert sorted(len(x["Dimensions"]) for x in listed) == [1, 2]
        assert {"Name": "Host", "Value": "algo-1"} in next(
            x["Dimensions"] for x in listed if len(x["Dimensions"]) == 2
        )
        # and through the CloudWatch operation
        m.put_metric_data({"Namespace": "MyApp/Training", "MetricData": [
            {"MetricName": "loss", "StatisticValues": {"SampleCount": 2, "Sum": 4, "Minimum": 1,
                                                       "Maximum": 3}, "Dimensions": DIMS}]},
                          ADMIN)  # fmt: skip
        [point] = m.get_metric_statistics(params, ADMIN)["Datapoints"]
        assert point["SampleCount"] == 7.0
        with pytest.raises(AwsError, match=r"MetricData\.member\.1\.Value"):
            m.put_metric_data(
                {"Namespace": "N", "MetricData": [{"MetricName": "x", "Value": "abc"}]}, ADMIN
            )


@pytest.mark.parametrize(
    ("namespace", "data", "field"),
    [
        ("", [{"MetricName": "x", "Value": 1}], "Namespace"),
        ("AWS/Mine", [{"MetricName": "x", "Value": 1}], "Namespace"),
        ("N", [], "MetricData"),
        ("N", [{"Value": 1}], "MetricData.member.1.MetricName"),
        ("N", [{"MetricName": "x"}], "MetricData.member.1"),
        ("N", [{"MetricName": "x", "Value": float("nan")}], "MetricData.member.1.Value"),
        ("N", [{"MetricName": "x", "Value": 1, "Unit": "Parsecs"}], "MetricData.member.1.Unit"),
        (
            "N",
            [{"MetricName": "x", "Values": [1, 2], "Counts": [1]}],
            "MetricData.member.1.Counts",
        ),
        (
            "N",
            [{"MetricName": "x", "Value": 1, "Timestamp": "2000-01-01T00:00:00Z"}],
            "MetricData.member.1.Timestamp",
        ),
        (
            "N",
            [{"MetricName": "x", "Value": 1, "Dimensions": [{"Name": "a"}]}],
            "MetricData.member.1.Dimensions.member.1",
        ),
        (
            "N",
            [
                {
                    "MetricName": "x",
                    "StatisticValues": {"SampleCount": 0, "Sum": 1, "Minimum": 1, "Maximum": 1},
                }
            ],
            "MetricData.member.1.StatisticValues",
        ),
    ],
)
def test_bad_metric_data_names_the_member(namespace: str, data: Any, field: str) -> None:
    with pytest.raises(ValidationError) as e:
        parse_metric_data(namespace, data, now=1.8e9, units=UNITS)
    assert e.value.field == field


def test_the_rest_route_refuses_bad_data(tmp_path: Path) -> None:
    with (
        local_control_plane(tmp_path) as lcp,
        pytest.raises(ValidationError, match=r"MetricData\.member\.1\.Value"),
    ):
        lcp.client.put_metric_data("N", [{"MetricName": "x", "Value": "no"}])

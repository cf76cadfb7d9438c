"""CloudWatch metrics on the wire: boto3's cloudwatch client (awsJson1_0, and the older query
protocol) reads back exactly what was recorded into the endpoint series."""

from __future__ import annotations

import json
import statistics
from datetime import timedelta
from pathlib import Path
from typing import Any

import botocore.loaders
import botocore.session
import pytest
from botocore.exceptions import ClientError

from orchestrator.api.aws import cloudwatch as cloudwatch_module
from orchestrator.monitoring.series import SeriesStore
from tests.aws.conftest import REGION, AwsPlane

NS = "AWS/SageMaker"
DIMS = [{"Name": "EndpointName", "Value": "ep"}, {"Name": "VariantName", "Value": "v1"}]


@pytest.fixture
def cw(aws_plane: AwsPlane) -> Any:
    local = aws_plane.local
    local.client.create_model(ModelName="m", PrimaryContainer={"Image": "example/serve:1"})
    local.client.create_endpoint_config(
        EndpointConfigName="c", ProductionVariants=[{"VariantName": "v1", "ModelName": "m"}]
    )
    local.client.create_endpoint(EndpointName="ep", EndpointConfigName="c")
    series = _series(aws_plane)
    t0 = local.plane.clock.now().timestamp()
    for i in range(120):  # one a second for two minutes: 6 answered 5xx, 4 answered 4xx
        status = 500 if i < 6 else 404 if i < 10 else 200
        series.record_invocation("ep", "v1", "c", status=status, model_us=1000.0 + i,
                                 overhead_us=50.0, at=t0 + i)  # fmt: skip
    local.plane.clock.advance(180)  # type: ignore[attr-defined]
    return aws_plane.client("cloudwatch")


def _series(aws_plane: AwsPlane) -> SeriesStore:
    series = aws_plane.local.plane.series
    assert series is not None
    return series


def _t0(aws_plane: AwsPlane) -> Any:
    return aws_plane.local.plane.clock.now() - timedelta(seconds=180)


def _stats(cw: Any, t0: Any, metric: str, **kw: Any) -> list[dict[str, Any]]:
    args: dict[str, Any] = {"Namespace": NS, "MetricName": metric, "Dimensions": DIMS,
                            "StartTime": t0, "EndTime": t0 + timedelta(seconds=120),
                            "Period": 60, "Statistics": ["Sum"]}  # fmt: skip
    args.update(kw)
    points = cw.get_metric_statistics(**{k: v for k, v in args.items() if v is not None})[
        "Datapoints"
    ]
    return sorted(points, key=lambda p: p["Timestamp"])


def _code(e: pytest.ExceptionInfo[ClientError]) -> str:
    return str(e.value.response["Error"]["Code"])


def _message(e: pytest.ExceptionInfo[ClientError]) -> str:
    return str(e.value.response["Error"]["Message"])


def test_the_client_speaks_awsjson_1_0() -> None:
    model = botocore.session.get_session().get_service_model("cloudwatch")
    assert model.resolved_protocol == "json"
    assert model.metadata["jsonVersion"] == "1.0"
    assert model.metadata["protocols"] == ["smithy-rpc-v2-cbor", "json", "query"]


def test_get_metric_statistics_returns_what_was_recorded(aws_plane: AwsPlane, cw: Any) -> None:
    t0 = _t0(aws_plane)
    assert [p["Sum"] for p in _stats(cw, t0, "Invocations")] == [60.0, 60.0]
    assert [p["Sum"] for p in _stats(cw, t0, "Invocation5XXErrors")] == [6.0, 0.0]
    assert [p["Sum"] for p in _stats(cw, t0, "Invocation4XXErrors")] == [4.0, 0.0]
    latency = _stats(cw, t0, "ModelLatency",
                     Statistics=["SampleCount", "Average", "Minimum", "Maximum"])  # fmt: skip
    first = latency[0]
    assert first["Timestamp"] == t0
    assert (first["SampleCount"], first["Minimum"], first["Maximum"]) == (60.0, 1000.0, 1059.0)
    assert first["Average"] == pytest.approx(statistics.mean(1000 + i for i in range(60)))
    assert first["Unit"] == "Microseconds"
    (p99,) = _stats(cw, t0, "ModelLatency", Statistics=None, ExtendedStatistics=["p99"],
                    Period=120)  # fmt: skip
    direct = _series(aws_plane).query("ep", "ModelLatency", variant="v1", start=t0,
                                      end=t0 + timedelta(seconds=120), period=120,
                                      statistics=["p99"])  # fmt: skip
    assert direct.Datapoints[0].ExtendedStatistics is not None
    assert p99["ExtendedStatistics"]["p99"] == direct.Datapoints[0].ExtendedStatistics["p99"]
    assert p99["ExtendedStatistics"]["p99"] == pytest.approx(1118, rel=0.02)  # mergeable sketch


def test_a_metric_that_does_not_exist_has_no_datapoints(aws_plane: AwsPlane, cw: Any) -> None:
    t0 = _t0(aws_plane)
    other_variant = [DIMS[0], {"Name": "VariantName", "Value": "v2"}]
    assert _stats(cw, t0, "Invocations", Dimensions=other_variant) == []
    assert _stats(cw, t0, "Invocations", Dimensions=DIMS[:1]) == []  # not published that way
    assert _stats(cw, t0, "Invocations", Namespace="/aws/sagemaker/Endpoints") == []
    assert _stats(cw, t0, "Invocation", Namespace=NS) == []  # a typo: as CloudWatch, empty
    assert _stats(cw, t0, "ModelLatency", Unit="Milliseconds") == []
    assert len(_stats(cw, t0, "ModelLatency", Unit="Microseconds")) == 2


def test_refusals_are_cloudwatchs_codes_naming_the_parameter(aws_plane: AwsPlane, cw: Any) -> None:
    t0 = _t0(aws_plane)
    cases: list[tuple[dict[str, Any], type[Exception], str]] = [
        ({"Period": 7}, cw.exceptions.InvalidParameterValueException, "Period"),
        ({"Statistics": ["Median"]}, cw.exceptions.InvalidParameterValueException,
         "Statistics.member.1"),
        ({"Statistics": None}, cw.exceptions.MissingRequiredParameterException,
         "Statistics or ExtendedStatistics"),
        ({"ExtendedStatistics": ["p99"]}, cw.exceptions.InvalidParameterCombinationException,
         "ExtendedStatistics"),
        ({"Statistics": None, "ExtendedStatistics": ["tm99"]},
         cw.exceptions.InvalidParameterValueException, "ExtendedStatistics.member.1"),
        ({"Period": 1, "EndTime": t0 + timedelta(hours=1)},
         cw.exceptions.InvalidParameterCombinationException, "datapoints"),
        ({"EndTime": t0}, cw.exceptions.InvalidParameterValueException, "StartTime"),
        ({"Unit": "Parsecs"}, cw.exceptions.InvalidParameterValueException, "Unit"),
        ({"Statistics": ["Average"], "MetricName": "InvocationsPerInstance"},
         cw.exceptions.InvalidParameterValueException, "only Sum"),
    ]  # fmt: skip
    for kw, exc, text in cases:
        args = {k: v for k, v in kw.items() if v is not None}
        drop = [k for k, v in kw.items() if v is None]
        with pytest.raises(exc) as e:
            base: dict[str, Any] = {"Namespace": NS, "MetricName": "ModelLatency",
                                    "Dimensions": DIMS, "StartTime": t0,
                                    "EndTime": t0 + timedelta(seconds=120), "Period": 60,
                                    "Statistics": ["Sum"]}  # fmt: skip
            base.update(args)
            for k in drop:
                base.pop(k)
            cw.get_metric_statistics(**base)
        assert text in str(e.value), kw
        assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400  # type: ignore[attr-defined]


def test_get_metric_data_answers_each_query(aws_plane: AwsPlane, cw: Any) -> None:
    t0 = _t0(aws_plane)

    def query(qid: str, metric: str, stat: str, **kw: Any) -> dict[str, Any]:
        return {"Id": qid, "MetricStat": {"Metric": {"Namespace": NS, "MetricName": metric,
                "Dimensions": DIMS}, "Period": 60, "Stat": stat}, **kw}  # fmt: skip

    out = cw.get_metric_data(
        MetricDataQueries=[query("calls", "Invocations", "Sum"),
                           query("slow", "ModelLatency", "p50", Label="median"),
                           query("hidden", "Invocations", "Sum", ReturnData=False)],
        StartTime=t0, EndTime=t0 + timedelta(seconds=120),
    )  # fmt: skip
    results = {r["Id"]: r for r in out["MetricDataResults"]}
    assert set(results) == {"calls", "slow"}
    calls = results["calls"]
    assert calls["Values"] == [60.0, 60.0] and calls["StatusCode"] == "Complete"
    assert calls["Timestamps"] == [t0 + timedelta(seconds=60), t0]  # newest first by default
    assert results["slow"]["Label"] == "median"
    median = _stats(cw, t0, "ModelLatency", Statistics=None, ExtendedStatistics=["p50"])
    assert results["slow"]["Values"] == [median[1]["ExtendedStatistics"]["p50"],
                                         median[0]["ExtendedStatistics"]["p50"]]  # fmt: skip
    page1 = cw.get_metric_data(MetricDataQueries=[query("calls", "Invocations", "Sum")],
                               StartTime=t0, EndTime=t0 + timedelta(seconds=120),
                               ScanBy="TimestampAscending", MaxDatapoints=1)  # fmt: skip
    assert page1["MetricDataResults"][0]["Timestamps"] == [t0]
    assert page1["MetricDataResults"][0]["StatusCode"] == "PartialData"
    page2 = cw.get_metric_data(MetricDataQueries=[query("calls", "Invocations", "Sum")],
                               StartTime=t0, EndTime=t0 + timedelta(seconds=120),
                               ScanBy="TimestampAscending", MaxDatapoints=1,
                               NextToken=page1["NextToken"])  # fmt: skip
    assert page2["MetricDataResults"][0]["Timestamps"] == [t0 + timedelta(seconds=60)]
    assert "NextToken" not in page2
    # more periods than one GetMetricStatistics may return: cut into spans
    long = cw.get_metric_data(
        MetricDataQueries=[{**query("calls", "Invocations", "Sum"),
                            "MetricStat": {**query("x", "Invocations", "Sum")["MetricStat"],
                                           "Period": 1}}],
        StartTime=t0 - timedelta(hours=1), EndTime=t0 + timedelta(seconds=120),
    )  # fmt: skip
    assert sum(long["MetricDataResults"][0]["Values"]) == 120.0


def test_get_metric_data_refuses_metric_math_naming_the_query(aws_plane: AwsPlane, cw: Any) -> None:
    t0 = _t0(aws_plane)
    span = {"StartTime": t0, "EndTime": t0 + timedelta(seconds=120)}
    with pytest.raises(ClientError) as e:
        cw.get_metric_data(MetricDataQueries=[{"Id": "ratio", "Expression": "m1 / m2"}], **span)
    assert _code(e) == "InvalidParameterValue"
    assert "ratio" in _message(e) and "Expression" in _message(e)
    stat = {"Metric": {"Namespace": NS, "MetricName": "Invocations", "Dimensions": DIMS},
            "Period": 60, "Stat": "Sum"}  # fmt: skip
    with pytest.raises(ClientError) as e:
        cw.get_metric_data(MetricDataQueries=[{"Id": "a", "MetricStat": stat},
                                              {"Id": "a", "MetricStat": stat}], **span)  # fmt: skip
    assert "not unique" in _message(e)
    with pytest.raises(ClientError) as e:
        cw.get_metric_data(MetricDataQueries=[{"Id": "Upper", "MetricStat": stat}], **span)
    assert "MetricDataQueries.member.1.Id" in _message(e)


def test_list_metrics_lists_what_exists(aws_plane: AwsPlane, cw: Any) -> None:
    t = aws_plane.local.plane.clock.now().timestamp()
    _series(aws_plane).record_invocation("ghost", "v1", "c", status=200, model_us=1.0,
                                         overhead_us=1.0, at=t)  # no such endpoint  # fmt: skip
    _series(aws_plane).record_replica_usage("ep", "v1", "r", cpu_percent=50.0,
                                            memory_bytes=1 << 20, at=t)  # fmt: skip
    metrics = cw.list_metrics()["Metrics"]
    names = {(m["Namespace"], m["MetricName"]) for m in metrics}
    assert names == {(NS, "Invocations"), (NS, "Invocation4XXErrors"),
                     (NS, "Invocation5XXErrors"), (NS, "ModelLatency"), (NS, "OverheadLatency"),
                     ("/aws/sagemaker/Endpoints", "CPUUtilization"),
                     ("/aws/sagemaker/Endpoints", "MemoryUtilization")}  # fmt: skip
    assert all(m["Dimensions"] == DIMS for m in metrics)
    only = cw.list_metrics(Namespace=NS, MetricName="ModelLatency",
                           Dimensions=[{"Name": "VariantName", "Value": "v1"}])  # fmt: skip
    assert [m["MetricName"] for m in only["Metrics"]] == ["ModelLatency"]
    assert cw.list_metrics(Dimensions=[{"Name": "VariantName", "Value": "v9"}])["Metrics"] == []
    assert cw.list_metrics(Dimensions=[{"Name": "EndpointName"}])["Metrics"]


def _query_client(aws_plane: AwsPlane, tmp_path: Path) -> Any:
    """A cloudwatch client of the query protocol, as older botocore versions have it."""
    model = botocore.loaders.Loader().load_service_model("cloudwatch", "service-2")
    model["metadata"]["protocol"] = "query"
    model["metadata"]["protocols"] = ["query"]
    folder = tmp_path / "models" / "cloudwatch" / model["metadata"]["apiVersion"]
    folder.mkdir(parents=True)
    (folder / "service-2.json").write_text(json.dumps(model))
    session = botocore.session.Session()
    session.get_component("data_loader").search_paths.insert(0, str(tmp_path / "models"))
    client = session.create_client(
        "cloudwatch", endpoint_url=aws_plane.url, region_name=REGION,
        aws_access_key_id=aws_plane.access_key_id, aws_secret_access_key=aws_plane.secret,
    )  # fmt: skip
    assert client.meta.service_model.resolved_protocol == "query"
    return client


def test_the_query_protocol_is_served_from_the_same_table(
    aws_plane: AwsPlane, cw: Any, tmp_path: Path
) -> None:
    t0 = _t0(aws_plane)
    old = _query_client(aws_plane, tmp_path)
    latency = _stats(old, t0, "ModelLatency", Statistics=None, ExtendedStatistics=["p90"])
    assert latency == _stats(cw, t0, "ModelLatency", Statistics=None, ExtendedStatistics=["p90"])
    assert [p["Sum"] for p in _stats(old, t0, "Invocations")] == [60.0, 60.0]
    data = old.get_metric_data(
        MetricDataQueries=[{"Id": "calls", "MetricStat": {"Metric": {"Namespace": NS,
                            "MetricName": "Invocations", "Dimensions": DIMS}, "Period": 60,
                            "Stat": "Sum"}}],
        StartTime=t0, EndTime=t0 + timedelta(seconds=120), ScanBy="TimestampAscending",
    )  # fmt: skip
    assert data["MetricDataResults"][0]["Timestamps"] == [t0, t0 + timedelta(seconds=60)]
    assert old.list_metrics(MetricName="Invocations")["Metrics"][0]["Dimensions"] == DIMS
    with pytest.raises(old.exceptions.InvalidParameterValueException) as e:
        _stats(old, t0, "Invocations", Period=7)
    assert "Period" in str(e.value)


def test_the_operation_tables_name_real_operations() -> None:
    model = botocore.loaders.Loader().load_service_model("cloudwatch", "service-2")
    real = set(model["operations"])
    assert set(cloudwatch_module.SUPPORTED) <= real
    assert set(cloudwatch_module.NOT_SUPPORTED) <= real
    assert not set(cloudwatch_module.SUPPORTED) & set(cloudwatch_module.NOT_SUPPORTED)


# --- training jobs' resource use ------------------------------------------------------------
def test_training_job_usage_per_host_as_sagemaker_publishes_it(aws_plane: AwsPlane) -> None:
    from orchestrator.backends.fake import FakeBackend
    from orchestrator.testing import tarball, training_job_spec

    local = aws_plane.local
    source = "s3://orchestrator/code/sourcedir.tar.gz"
    local.plane.objects.put_bytes(source, tarball({"train.py": "print('hi')\n"}))
    local.client.create_training_job(training_job_spec("job-u", source=source))
    fake = local.plane.backend
    assert isinstance(fake, FakeBackend)
    clock = local.plane.clock
    t0 = clock.now()
    for i in range(12):  # one every 10 s for two minutes, two hosts
        fake.write_usage(
            "job-u", "algo-1", {"CPUUtilization": 100.0 + i, "MemoryUtilization": 20.0}
        )
        fake.write_usage("job-u", "algo-2", {"CPUUtilization": 50.0})
        clock.advance(10)  # type: ignore[attr-defined]
    cw = aws_plane.client("cloudwatch")
    args: dict[str, Any] = {
        "Namespace": "/aws/sagemaker/TrainingJobs",
        "MetricName": "CPUUtilization",
        "Dimensions": [{"Name": "Host", "Value": "job-u/algo-1"}],
        "StartTime": t0,
        "EndTime": t0 + timedelta(seconds=120),
        "Period": 60,
    }
    points = sorted(
        cw.get_metric_statistics(**args, Statistics=["Average", "Maximum", "SampleCount"])[
            "Datapoints"
        ],
        key=lambda p: p["Timestamp"],
    )
    assert [(p["SampleCount"], p["Average"], p["Maximum"], p["Unit"]) for p in points] == [
        (6.0, 102.5, 105.0, "Percent"),
        (6.0, 108.5, 111.0, "Percent"),
    ]
    p50 = cw.get_metric_statistics(**args, ExtendedStatistics=["p50"])["Datapoints"]
    assert sorted(p["ExtendedStatistics"]["p50"] for p in p50) == [102.0, 108.0]
    data = cw.get_metric_data(
        MetricDataQueries=[
            {
                "Id": "host2",
                "MetricStat": {
                    "Metric": {
                        "Namespace": "/aws/sagemaker/TrainingJobs",
                        "MetricName": "CPUUtilization",
                        "Dimensions": [{"Name": "Host", "Value": "job-u/algo-2"}],
                    },
                    "Period": 120,
                    "Stat": "Average",
                },
            }
        ],
        StartTime=t0,
        EndTime=t0 + timedelta(seconds=120),
    )["MetricDataResults"][0]
    assert data["Values"] == [50.0]
    # Another job, host, unit, or the endpoints' namespace: no datapoints, as CloudWatch.
    for changed in (
        {"Dimensions": [{"Name": "Host", "Value": "nope/algo-1"}]},
        {"Dimensions": [{"Name": "Host", "Value": "job-u/algo-9"}]},
        {"Dimensions": [{"Name": "Host", "Value": "job-u"}]},
        {"Namespace": "/aws/sagemaker/Endpoints"},
        {"Unit": "Count"},
    ):
        assert (
            cw.get_metric_statistics(**{**args, **changed}, Statistics=["Sum"])["Datapoints"] == []
        )
    with pytest.raises(ClientError) as e:
        cw.get_metric_statistics(**{**args, "Period": 1, "EndTime": t0 + timedelta(days=1)},
                                 Statistics=["Sum"])  # fmt: skip
    assert _code(e) == "InvalidParameterCombination"

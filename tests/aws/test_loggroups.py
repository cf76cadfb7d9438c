"""The log groups beside training and endpoints: transform jobs, the control plane's own log,
retention; on the CloudWatch Logs wire and over REST (``/api/v1/logs``), the client and CLI."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from orchestrator.api import serverlog
from orchestrator.api.aws.loggroups import line_marks
from orchestrator.cli import app
from orchestrator.client.logs import follow_log_events
from orchestrator.errors import NotFoundError, ValidationError
from orchestrator.testing import FakeClock, LocalControlPlane, transform_job_spec
from tests.aws.conftest import AwsPlane

DAY = 86_400


@pytest.fixture
def logs(aws_plane: AwsPlane) -> Any:
    return aws_plane.client("logs")


def _clock(local: LocalControlPlane) -> FakeClock:
    clock = local.plane.clock
    assert isinstance(clock, FakeClock)
    return clock


def _endpoint(local: LocalControlPlane, name: str = "ep") -> str:
    local.client.create_model(ModelName="m", PrimaryContainer={"Image": "example/serve:1"})
    local.client.create_endpoint_config(
        EndpointConfigName="c",
        ProductionVariants=[
            {"VariantName": "A", "ModelName": "m"},
            {"VariantName": "B", "ModelName": "m"},
        ],
    )
    local.client.create_endpoint(EndpointName=name, EndpointConfigName="c")
    return f"/aws/sagemaker/Endpoints/{name}"


def _transform(local: LocalControlPlane, name: str, instances: int) -> None:
    local.client.create_model(ModelName="tm", PrimaryContainer={"Image": "example/serve:1"})
    local.plane.objects.put_bytes("s3://orchestrator/in/a.csv", b"1\n")
    local.client.create_transform_job(
        transform_job_spec(name, "tm", "s3://orchestrator/in/", "s3://orchestrator/out/",
                           instances=instances)
    )  # fmt: skip


# --- transform jobs ------------------------------------------------------------------------
def test_transform_job_streams_are_named_job_slash_instance_dash_epoch(
    aws_plane: AwsPlane, logs: Any
) -> None:
    local = aws_plane.local
    group = "/aws/sagemaker/TransformJobs"
    with pytest.raises(ClientError) as e:
        logs.describe_log_streams(logGroupName=group)
    assert e.value.response["Error"]["Code"] == "ResourceNotFoundException"
    _transform(local, "batch", instances=2)
    local.backend.write_transform_log("batch", "[algo-1] one\n[algo-2] two\n[algo-1] three\n")
    epoch = local.client.describe_transform_job("batch").CreationTime.timestamp() // 1
    streams = [s["logStreamName"] for s in logs.describe_log_streams(logGroupName=group)[
        "logStreams"]]  # fmt: skip
    assert streams == [f"batch/algo-1-{epoch:.0f}", f"batch/algo-2-{epoch:.0f}"]
    got = logs.get_log_events(logGroupName=group, logStreamName=streams[1], startFromHead=True)
    assert [ev["message"] for ev in got["events"]] == ["two"]
    assert group in [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]]


# --- endpoints per variant and instance ---------------------------------------------------
def test_endpoint_logs_per_variant_over_rest_and_cli(aws_plane: AwsPlane) -> None:
    local = aws_plane.local
    group = _endpoint(local)
    local.backend.write_replica_log("ep", "A-0-1", "a says hi\n")
    local.backend.write_replica_log("ep", "B-0-1", "b says hi\n")
    streams = [s["Name"] for s in local.client.log_streams(group)]
    assert streams == ["A/A-0-1", "B/B-0-1"]  # VARIANT/INSTANCE
    page = local.client.log_events(group, stream_prefix="B/")
    assert [(e["Stream"], e["Message"]) for e in page["Events"]] == [("B/B-0-1", "b says hi")]
    out = CliRunner().invoke(
        app,
        ["--endpoint-url", local.url, "--api-key", local.api_key,
         "endpoints", "logs", "ep", "--variant", "A"],
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    assert out.output.strip().endswith("A/A-0-1 a says hi")
    assert "b says" not in out.output


# --- filter, since, follow ----------------------------------------------------------------
def test_filter_and_since_select_the_events(aws_plane: AwsPlane) -> None:
    local = aws_plane.local
    group = _endpoint(local)
    local.backend.write_replica_log("ep", "A-0-1", "ERROR old\n")
    _clock(local).advance(3600)
    local.backend.write_replica_log("ep", "A-0-1", "INFO fine\nERROR new\nERROR ignored x\n")
    page = local.client.log_events(group, pattern="ERROR -x", since="10m")
    assert [e["Message"] for e in page["Events"]] == ["ERROR new"]
    page = local.client.log_events(group, pattern="?fine ?old")
    assert [e["Message"] for e in page["Events"]] == ["ERROR old", "INFO fine"]


def test_follow_reads_what_comes_and_ends_when_asked(aws_plane: AwsPlane) -> None:
    local = aws_plane.local
    group = _endpoint(local)
    local.backend.write_replica_log("ep", "A-0-1", "first\n")
    polls: list[float] = []
    stop = threading.Event()

    def sleep(seconds: float) -> None:  # each poll: a new line, then asked to stop
        polls.append(seconds)
        if len(polls) == 1:
            local.backend.write_replica_log("ep", "B-0-1", "second\n")
        elif len(polls) == 2:
            local.backend.write_replica_log("ep", "A-0-1", "third\n")
        else:
            stop.set()

    events = follow_log_events(
        local.client, group, follow=True, poll=0.25, stop=stop.is_set, sleep=sleep
    )
    assert [e["Message"] for e in events] == ["first", "second", "third"]  # none twice
    assert polls == [0.25, 0.25, 0.25]


def test_without_follow_the_events_end(aws_plane: AwsPlane) -> None:
    local = aws_plane.local
    group = _endpoint(local)
    local.backend.write_replica_log("ep", "A-0-1", "only\n")
    out = CliRunner().invoke(
        app, ["--endpoint-url", local.url, "--api-key", local.api_key, "logs", "tail", group]
    )
    assert out.exit_code == 0, out.output
    assert out.output.strip().endswith("A/A-0-1 only")


# --- retention ----------------------------------------------------------------------------
def test_retention_drops_events_older_than_it(aws_plane: AwsPlane, logs: Any) -> None:
    local = aws_plane.local
    group = _endpoint(local)
    local.backend.write_replica_log("ep", "A-0-1", "day one\n")
    _clock(local).advance(2 * DAY)
    local.backend.write_replica_log("ep", "A-0-1", "day three\n")
    logs.put_retention_policy(logGroupName=group, retentionInDays=1)
    [g] = [g for g in logs.describe_log_groups()["logGroups"] if g["logGroupName"] == group]
    assert g["retentionInDays"] == 1
    out = logs.filter_log_events(logGroupName=group)
    assert [e["message"] for e in out["events"]] == ["day three"]
    got = logs.get_log_events(logGroupName=group, logStreamName="A/A-0-1", startFromHead=True)
    assert [e["message"] for e in got["events"]] == ["day three"]
    _clock(local).advance(2 * DAY)
    assert local.client.log_events(group)["Events"] == []  # now that one is too old
    local.client.put_log_retention(group, None)  # DeleteRetentionPolicy: all of them again
    assert len(local.client.log_events(group)["Events"]) == 2
    with pytest.raises(ClientError) as e:
        logs.put_retention_policy(logGroupName=group, retentionInDays=2)
    assert "retentionInDays: 2 is not one of" in e.value.response["Error"]["Message"]
    with pytest.raises(ValidationError) as bad:
        local.client.put_log_retention(group, 4)
    assert bad.value.field == "RetentionInDays"


# --- the control plane's own log ----------------------------------------------------------
def test_control_plane_log_is_a_group_with_a_stream_per_host(
    aws_plane: AwsPlane, logs: Any, tmp_path: Path
) -> None:
    local = aws_plane.local
    logger = logging.getLogger("orchestrator.test-control-plane")
    logger.propagate = False
    handler = serverlog.install(local.plane.settings.logs_dir, logger=logger)
    try:
        logger.warning("controller pass took too long")
        logger.info("pass done")
        handler.flush()
        groups = [g["Name"] for g in local.client.log_groups()]
        assert "/orchestrator/control-plane" in groups
        [stream] = local.client.log_streams("/orchestrator/control-plane")
        assert stream["Name"] == serverlog.log_path(local.plane.settings.logs_dir).stem
        out = logs.filter_log_events(logGroupName="/orchestrator/control-plane",
                                     filterPattern="WARNING")  # fmt: skip
        [event] = out["events"]
        assert event["message"].endswith("WARNING orchestrator.test-control-plane controller "
                                         "pass took too long")  # fmt: skip
        assert event["timestamp"] == stream["FirstEventTime"]
    finally:
        logger.removeHandler(handler)
        handler.close()


def test_control_plane_log_marks_are_read_on_from_where_they_were(tmp_path: Path) -> None:
    log = tmp_path / "h.log"
    first = b"2026-01-01T00:00:00.000Z INFO a\n"
    log.write_bytes(first + b"2026-01-01T00:00:01.000Z INFO par")  # the last line not whole
    assert len(line_marks(log)) == 1
    with log.open("ab") as f:
        f.write(b"tial\n")
    marks = line_marks(log)
    assert [marks[i] for i in range(len(marks))] == [
        (0, 1767225600000),
        (len(first), 1767225601000),
    ]
    log.unlink()  # rotated: a new file
    log.write_bytes(b"2026-01-02T00:00:00.000Z INFO new\n")
    assert line_marks(log)[0] == (0, 1767312000000)


def test_control_plane_log_lines_take_their_own_times(tmp_path: Path) -> None:
    log = tmp_path / "h.log"
    log.write_text(
        "2026-01-01T00:00:00.000Z INFO a start\nTraceback (most recent call last):\n"
        "2026-01-01T00:00:01.500Z ERROR a later\n"
    )
    marks = line_marks(log)
    assert [marks[i] for i in range(len(marks))] == [
        (0, 1767225600000), (len("2026-01-01T00:00:00.000Z INFO a start\nTraceback (most "
                                 "recent call last):\n"), 1767225601500),
    ]  # fmt: skip


# --- bad input ----------------------------------------------------------------------------
def test_unknown_group_is_404_naming_it_and_resource_not_found_on_the_wire(
    aws_plane: AwsPlane, logs: Any
) -> None:
    with pytest.raises(NotFoundError) as e:
        aws_plane.local.client.log_events("/aws/sagemaker/Endpoints/nope")
    assert "'/aws/sagemaker/Endpoints/nope' does not exist" in e.value.message
    assert e.value.field == "Group"
    with pytest.raises(ClientError) as wire:
        logs.filter_log_events(logGroupName="/no/such/group")
    assert wire.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert wire.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_bad_since_and_bad_pattern_name_the_field_and_the_position(aws_plane: AwsPlane) -> None:
    local = aws_plane.local
    group = _endpoint(local)
    with pytest.raises(ValidationError) as e:
        local.client.log_events(group, since="ten minutes")
    assert e.value.field == "StartTime"
    assert "30s, 10m, 2h, 1d" in e.value.message
    with pytest.raises(ValidationError) as e:
        local.client.log_events(group, pattern='ERROR "unclosed')
    assert e.value.field == "Filter"
    assert "at character 7" in e.value.message
    with pytest.raises(NotFoundError) as nf:
        local.client.log_events(group, stream="A/none")
    assert nf.value.field == "Stream"
    out = CliRunner().invoke(
        app,
        ["--endpoint-url", local.url, "--api-key", local.api_key,
         "logs", "tail", group, "--since", "yesterday"],
    )  # fmt: skip
    assert out.exit_code != 0
    assert "StartTime" in out.output


def test_cli_lists_groups_and_streams_and_sets_retention(aws_plane: AwsPlane) -> None:
    local = aws_plane.local
    group = _endpoint(local)
    local.backend.write_replica_log("ep", "A-0-1", "hello\n")
    base = ["--endpoint-url", local.url, "--api-key", local.api_key]
    runner = CliRunner()
    out = runner.invoke(app, [*base, "logs", "retention", group, "7"])
    assert out.exit_code == 0, out.output
    out = runner.invoke(app, [*base, "-o", "json", "logs", "groups"])
    assert out.exit_code == 0, out.output
    groups = {g["Name"]: g["RetentionInDays"] for g in json.loads(out.output)["LogGroups"]}
    assert groups[group] == 7
    out = runner.invoke(app, [*base, "-o", "json", "logs", "streams", group])
    assert [s["Name"] for s in json.loads(out.output)["LogStreams"]] == ["A/A-0-1"]
    out = runner.invoke(app, [*base, "logs", "streams", "/no/such"])
    assert out.exit_code != 0 and "'/no/such' does not exist" in out.output

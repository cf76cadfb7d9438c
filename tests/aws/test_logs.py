"""CloudWatch Logs on the wire: the SageMaker SDK's ``logs_for_job`` prints a job's real lines
and returns when it ends; boto3's logs client pages, filters and polls the same streams."""

from __future__ import annotations

import io
from collections.abc import Callable
from contextlib import redirect_stdout
from typing import Any

import pytest
from botocore.exceptions import ClientError

from orchestrator.api.aws import logs as logs_module
from orchestrator.testing import LocalControlPlane, tarball, training_job_spec
from tests.aws.conftest import REGION, AwsPlane

SOURCE = "s3://orchestrator/code/sourcedir.tar.gz"
GROUP = "/aws/sagemaker/TrainingJobs"


def _job(local: LocalControlPlane, name: str, *, hosts: int = 1) -> None:
    if not local.plane.objects.exists(SOURCE):
        local.plane.objects.put_bytes(SOURCE, tarball({"train.py": "print('hi')\n"}))
    spec = training_job_spec(name, source=SOURCE)
    if hosts > 1:
        spec["ResourceConfig"] = {"InstanceType": "ml.m5.large", "InstanceCount": hosts,
                                  "VolumeSizeInGB": 1}  # fmt: skip
    local.client.create_training_job(spec)
    local.controller.run_pass()  # launched on the fake backend


def _code(e: pytest.ExceptionInfo[ClientError]) -> str:
    return str(e.value.response["Error"]["Code"])


def _message(e: pytest.ExceptionInfo[ClientError]) -> str:
    return str(e.value.response["Error"]["Message"])


def _stream(logs: Any, job: str) -> str:
    out = logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix=f"{job}/")
    return str(out["logStreams"][0]["logStreamName"])


@pytest.fixture
def logs(aws_plane: AwsPlane) -> Any:
    return aws_plane.client("logs")


# --- the SageMaker Python SDK ---------------------------------------------------------------
class VirtualTime:
    """``sagemaker.session``'s ``time``: ``sleep`` runs the next step of the job instead of
    waiting and moves a virtual clock on, so ``logs_for_job`` sees a job progress between its
    polls in no real time."""

    def __init__(self, steps: list[Callable[[], None]]) -> None:
        self.steps = steps
        self.offset = 0.0
        self.sleeps: list[float] = []

    def time(self) -> float:
        import time

        return time.time() + self.offset

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.offset += seconds
        if self.steps:
            self.steps.pop(0)()


def test_sdk_logs_for_job_prints_the_lines_and_returns_when_the_job_completes(
    aws_plane: AwsPlane, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_plane.url)  # the SDK's own logs client
    import boto3
    import sagemaker.session

    local = aws_plane.local
    fake, clock = local.backend, local.plane.clock
    _job(local, "sdk-job")
    fake.write_log("sdk-job", "[orchestrator] Downloading\n")

    def burst() -> None:
        clock.advance(1.5)  # type: ignore[attr-defined]
        fake.write_log("sdk-job", "epoch 1 loss=0.9\nepoch 2 loss=0.7\n")

    def same_millisecond() -> None:  # lines at the SDK's last timestamp: its skip count
        fake.write_log("sdk-job", "epoch 3 loss=0.5\n")

    def finish() -> None:
        clock.advance(2)  # type: ignore[attr-defined]
        fake.write_log("sdk-job", "saved the model\n")
        fake.complete("sdk-job", artifact="s3://orchestrator/out/model.tar.gz")
        local.controller.run_pass()

    steps = [lambda: None, burst, same_millisecond, lambda: None, finish]
    virtual = VirtualTime(steps)
    monkeypatch.setattr(sagemaker.session, "time", virtual)
    boto = boto3.Session(aws_access_key_id=aws_plane.access_key_id,
                         aws_secret_access_key=aws_plane.secret, region_name=REGION)  # fmt: skip
    sess = sagemaker.session.Session(
        boto_session=boto,
        sagemaker_client=aws_plane.client("sagemaker"),
        default_bucket="orchestrator",
        sagemaker_config={"SchemaVersion": "1.0",
                          "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}},
    )  # fmt: skip
    out = io.StringIO()
    with redirect_stdout(out):
        sess.logs_for_job("sdk-job", wait=True, poll=10)
    text = out.getvalue()
    lines = ["[orchestrator] Downloading", "epoch 1 loss=0.9", "epoch 2 loss=0.7",
             "epoch 3 loss=0.5", "saved the model"]  # fmt: skip
    assert [text.count(line + "\n") for line in lines] == [1] * len(lines)  # each once
    assert sorted(lines, key=text.index) == lines  # in order
    assert "Completed - Training job completed" in text
    assert not steps  # it ran until the job completed, and returned then
    assert virtual.sleeps[0] == 5 and set(virtual.sleeps[1:]) == {10}


# --- GetLogEvents ---------------------------------------------------------------------------
def test_get_log_events_pages_forward_and_the_token_is_stable(
    aws_plane: AwsPlane, logs: Any
) -> None:
    _job(aws_plane.local, "pager")
    aws_plane.local.backend.write_log("pager", "".join(f"line {i}\n" for i in range(5)))
    stream = _stream(logs, "pager")
    seen, token = [], None
    while True:
        kw = {"nextToken": token} if token else {}
        out = logs.get_log_events(logGroupName=GROUP, logStreamName=stream, startFromHead=True,
                                  limit=2, **kw)  # fmt: skip
        if not out["events"]:
            break
        seen += [e["message"] for e in out["events"]]
        token = out["nextForwardToken"]
    assert seen == [f"line {i}" for i in range(5)]
    assert out["nextForwardToken"] == token  # caught up: the same token, no events
    again = logs.get_log_events(logGroupName=GROUP, logStreamName=stream, nextToken=token)
    assert again["events"] == [] and again["nextForwardToken"] == token
    aws_plane.local.backend.write_log("pager", "line 5\n")
    new = logs.get_log_events(logGroupName=GROUP, logStreamName=stream, nextToken=token)
    assert [e["message"] for e in new["events"]] == ["line 5"]


def test_events_carry_the_time_each_line_was_written(aws_plane: AwsPlane, logs: Any) -> None:
    local = aws_plane.local
    _job(local, "timed")
    t0 = local.plane.clock.now().timestamp()
    local.backend.write_log("timed", "first\nsecond\n")
    local.plane.clock.advance(2.5)  # type: ignore[attr-defined]
    local.backend.write_log("timed", "third\n")
    stream = _stream(logs, "timed")
    assert stream == f"timed/algo-1-{int(t0)}"
    out = logs.get_log_events(logGroupName=GROUP, logStreamName=stream, startFromHead=True)
    times = [(e["message"], e["timestamp"], e["ingestionTime"]) for e in out["events"]]
    ms = int(t0 * 1000)
    assert times == [("first", ms, ms), ("second", ms, ms), ("third", ms + 2500, ms + 2500)]
    later = logs.get_log_events(logGroupName=GROUP, logStreamName=stream, startFromHead=True,
                                startTime=ms + 1)  # fmt: skip
    assert [e["message"] for e in later["events"]] == ["third"]
    earlier = logs.get_log_events(logGroupName=GROUP, logStreamName=stream, startFromHead=True,
                                  endTime=ms + 2500)  # fmt: skip
    assert [e["message"] for e in earlier["events"]] == ["first", "second"]


def test_without_start_from_head_the_tail_comes_back_and_pages_backward(
    aws_plane: AwsPlane, logs: Any
) -> None:
    _job(aws_plane.local, "tail")
    aws_plane.local.backend.write_log("tail", "".join(f"row {i}\n" for i in range(7)))
    stream = _stream(logs, "tail")
    last = logs.get_log_events(logGroupName=GROUP, logStreamName=stream, limit=3)
    assert [e["message"] for e in last["events"]] == ["row 4", "row 5", "row 6"]
    before = logs.get_log_events(logGroupName=GROUP, logStreamName=stream, limit=3,
                                 nextToken=last["nextBackwardToken"])  # fmt: skip
    assert [e["message"] for e in before["events"]] == ["row 1", "row 2", "row 3"]
    head = logs.get_log_events(logGroupName=GROUP, logStreamName=stream, limit=3,
                               nextToken=before["nextBackwardToken"])  # fmt: skip
    assert [e["message"] for e in head["events"]] == ["row 0"]
    # the forward token of the tail page is the end: nothing new
    fwd = logs.get_log_events(logGroupName=GROUP, logStreamName=stream,
                              nextToken=last["nextForwardToken"])  # fmt: skip
    assert fwd["events"] == []


def test_polling_at_the_end_reads_only_what_is_new(
    aws_plane: AwsPlane, logs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = aws_plane.local.backend
    _job(aws_plane.local, "big")
    fake.write_log("big", ("x" * 99 + "\n") * 50_000)  # 5 MB
    stream = _stream(logs, "big")
    token = logs.get_log_events(logGroupName=GROUP, logStreamName=stream)["nextForwardToken"]
    read: list[int] = []
    original = fake.read_job_logs

    def spy(name: str, offset: int, limit: int) -> tuple[bytes, int]:
        data, nxt = original(name, offset, limit)
        read.append(len(data))
        return data, nxt

    monkeypatch.setattr(fake, "read_job_logs", spy)
    fake.write_log("big", "new line\n")
    out = logs.get_log_events(logGroupName=GROUP, logStreamName=stream, nextToken=token)
    assert [e["message"] for e in out["events"]] == ["new line"]
    assert sum(read) < 1000  # the new bytes and a probe, not the 5 MB before them
    read.clear()
    # the SDK's way: no token, startTime = the last timestamp seen (a binary search of marks)
    aws_plane.local.plane.clock.advance(1)  # type: ignore[attr-defined]
    fake.write_log("big", "newer line\n")
    ts = int(aws_plane.local.plane.clock.now().timestamp() * 1000)
    out = logs.get_log_events(logGroupName=GROUP, logStreamName=stream, startTime=ts,
                              startFromHead=True)  # fmt: skip
    assert [e["message"] for e in out["events"]] == ["newer line"]
    assert sum(read) < 1000


# --- streams of several hosts, DescribeLogStreams ------------------------------------------
def test_a_multi_host_job_has_a_stream_per_host(aws_plane: AwsPlane, logs: Any) -> None:
    _job(aws_plane.local, "multi", hosts=2)
    aws_plane.local.backend.write_log(
        "multi", "[orchestrator] Training\n[algo-1] a1\n[algo-2] b1\n[algo-2] b2\n[algo-1] a2\n"
    )
    out = logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix="multi/",
                                    orderBy="LogStreamName", limit=2)  # fmt: skip
    names = [s["logStreamName"] for s in out["logStreams"]]
    assert [n.rsplit("-", 1)[0] for n in names] == ["multi/algo-1", "multi/algo-2"]
    assert "nextToken" not in out  # the SDK loops for as long as one comes back

    def messages(stream: str) -> list[str]:
        ev = logs.get_log_events(logGroupName=GROUP, logStreamName=stream, startFromHead=True)
        return [e["message"] for e in ev["events"]]

    assert messages(names[0]) == ["[orchestrator] Training", "a1", "a2"]
    assert messages(names[1]) == ["b1", "b2"]


def test_a_log_without_marks_is_one_stream_at_the_jobs_creation_time(
    aws_plane: AwsPlane, logs: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As on Kubernetes: the backend keeps one pod's log, no marks and no host tags."""
    local = aws_plane.local
    fake = local.backend

    class PodLogs:  # what a Kubernetes backend gives the logs: bytes, no marks
        def read_job_logs(self, name: str, offset: int, limit: int) -> tuple[bytes, int]:
            return fake.read_job_logs(name, offset, limit)

    created = int(local.plane.clock.now().timestamp() * 1000)
    _job(local, "pods", hosts=2)
    monkeypatch.setattr(local.plane, "backend", PodLogs())
    local.plane.clock.advance(30)  # type: ignore[attr-defined]
    fake.write_log("pods", "from one pod\nand more\n")
    streams = logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix="pods/")
    assert [s["logStreamName"] for s in streams["logStreams"]] == [f"pods/algo-1-{created // 1000}"]
    out = logs.get_log_events(logGroupName=GROUP, logStreamName=f"pods/algo-1-{created // 1000}",
                              startFromHead=True)  # fmt: skip
    assert [(e["message"], e["timestamp"]) for e in out["events"]] == [
        ("from one pod", created), ("and more", created)
    ]  # fmt: skip
    window = logs.get_log_events(logGroupName=GROUP, logStreamName=f"pods/algo-1-{created // 1000}",
                                 startFromHead=True, startTime=created + 1)  # fmt: skip
    assert window["events"] == []  # a time window takes all of such a log or none of it


def test_describe_log_streams_orders_and_pages(aws_plane: AwsPlane, logs: Any) -> None:
    local = aws_plane.local
    for name in ("job-b", "job-a", "job-c", "quiet"):
        _job(local, name)
    for name in ("job-b", "job-a", "job-c"):  # job-c written last
        local.plane.clock.advance(1)  # type: ignore[attr-defined]
        local.backend.write_log(name, "hello\n")
    out = logs.describe_log_streams(logGroupName=GROUP)
    names = [s["logStreamName"].split("/")[0] for s in out["logStreams"]]
    assert names == ["job-a", "job-b", "job-c"]  # "quiet" has no output: no stream yet
    s = out["logStreams"][0]
    assert s["arn"].startswith("arn:aws:logs:us-east-1:000000000000:log-group:" + GROUP)
    assert s["firstEventTimestamp"] == s["lastEventTimestamp"] == s["creationTime"]
    by_time = logs.describe_log_streams(logGroupName=GROUP, orderBy="LastEventTime",
                                        descending=True)  # fmt: skip
    assert [s["logStreamName"][:5] for s in by_time["logStreams"]] == ["job-c", "job-a", "job-b"]
    page1 = logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix="job-", limit=2)
    page2 = logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix="job-", limit=2,
                                      nextToken=page1["nextToken"])  # fmt: skip
    assert [s["logStreamName"][:5] for s in page1["logStreams"] + page2["logStreams"]] == [
        "job-a", "job-b", "job-c"
    ]  # fmt: skip
    assert "nextToken" not in page2


# --- FilterLogEvents ------------------------------------------------------------------------
def test_filter_log_events_interleaves_streams_and_matches_patterns(
    aws_plane: AwsPlane, logs: Any
) -> None:
    local = aws_plane.local
    _job(local, "one")
    _job(local, "two")
    local.backend.write_log("one", "INFO start one\n")
    local.plane.clock.advance(1)  # type: ignore[attr-defined]
    local.backend.write_log("two", "ERROR disk full on two\n")
    local.plane.clock.advance(1)  # type: ignore[attr-defined]
    local.backend.write_log("one", "WARN slow step\nERROR Exiting one\n")

    def messages(**kw: Any) -> list[str]:
        out = logs.filter_log_events(logGroupName=GROUP, **kw)
        return [e["message"] for e in out["events"]]

    assert messages() == ["INFO start one", "ERROR disk full on two", "WARN slow step",
                          "ERROR Exiting one"]  # fmt: skip
    assert messages(filterPattern="ERROR") == ["ERROR disk full on two", "ERROR Exiting one"]
    assert messages(filterPattern="ERROR -Exiting") == ["ERROR disk full on two"]
    assert messages(filterPattern='"disk full"') == ["ERROR disk full on two"]
    assert messages(filterPattern="?WARN ?INFO") == ["INFO start one", "WARN slow step"]
    assert messages(filterPattern="error") == []  # case-sensitive, as CloudWatch
    assert messages(logStreamNamePrefix="two/") == ["ERROR disk full on two"]
    one = _stream(logs, "one")
    assert messages(logStreamNames=[one], filterPattern="one") == ["INFO start one",
                                                                  "ERROR Exiting one"]  # fmt: skip
    out = logs.filter_log_events(logGroupName=GROUP, logStreamNames=[one])
    assert out["events"][0]["logStreamName"] == one
    ids = [e["eventId"] for e in out["events"]]
    assert len(set(ids)) == 3 and all(i.isdigit() for i in ids)
    assert "nextToken" not in out


def test_filter_log_events_pages_with_its_token(aws_plane: AwsPlane, logs: Any) -> None:
    _job(aws_plane.local, "many")
    aws_plane.local.backend.write_log("many", "".join(f"n{i}\n" for i in range(5)))
    paginator = logs.get_paginator("filter_log_events")
    pages = list(paginator.paginate(logGroupName=GROUP, PaginationConfig={"PageSize": 2}))
    assert [[e["message"] for e in p["events"]] for p in pages] == [
        ["n0", "n1"], ["n2", "n3"], ["n4"]
    ]  # fmt: skip


# --- endpoints -------------------------------------------------------------------------------
def test_endpoint_replica_logs_are_streams_of_the_endpoint_group(
    aws_plane: AwsPlane, logs: Any
) -> None:
    local = aws_plane.local
    local.client.create_model(ModelName="m", PrimaryContainer={"Image": "example/serve:1"})
    local.client.create_endpoint_config(
        EndpointConfigName="c", ProductionVariants=[{"VariantName": "AllTraffic", "ModelName": "m"}]
    )
    local.client.create_endpoint(EndpointName="ep", EndpointConfigName="c")
    group = "/aws/sagemaker/Endpoints/ep"
    assert logs.describe_log_streams(logGroupName=group)["logStreams"] == []
    local.backend.write_replica_log("ep", "AllTraffic-0-1", "model loaded\nlistening on 8080\n")
    streams = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix="AllTraffic/")
    assert [s["logStreamName"] for s in streams["logStreams"]] == ["AllTraffic/AllTraffic-0-1"]
    out = logs.filter_log_events(logGroupName=group, logStreamNamePrefix="AllTraffic/")
    assert [e["message"] for e in out["events"]] == ["model loaded", "listening on 8080"]
    groups = logs.describe_log_groups(logGroupNamePrefix="/aws/sagemaker/")["logGroups"]
    assert [g["logGroupName"] for g in groups] == [group]  # no training job: no such group


def test_describe_log_groups_lists_the_training_group_once_a_job_exists(
    aws_plane: AwsPlane, logs: Any
) -> None:
    with pytest.raises(ClientError) as e:
        logs.describe_log_streams(logGroupName=GROUP)
    assert _code(e) == "ResourceNotFoundException"  # what the SDK tolerates before a job
    assert _message(e) == "The specified log group does not exist."
    _job(aws_plane.local, "first")
    groups = logs.describe_log_groups()["logGroups"]
    assert [g["logGroupName"] for g in groups] == [GROUP]
    assert groups[0]["logGroupArn"] == f"arn:aws:logs:us-east-1:000000000000:log-group:{GROUP}"
    by_arn = logs.describe_log_streams(logGroupIdentifier=groups[0]["arn"])
    assert by_arn["logStreams"] == []


# --- errors ----------------------------------------------------------------------------------
def test_errors_are_cloudwatchs_and_name_the_parameter(aws_plane: AwsPlane, logs: Any) -> None:
    _job(aws_plane.local, "err")
    aws_plane.local.backend.write_log("err", "x\n")
    stream = _stream(logs, "err")
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"logGroupName": "/aws/sagemaker/Nope", "logStreamName": stream},
         "ResourceNotFoundException", "The specified log group does not exist."),
        ({"logGroupName": GROUP, "logStreamName": "err/algo-2-1"},
         "ResourceNotFoundException", "The specified log stream does not exist."),
        ({"logGroupName": GROUP, "logStreamName": stream, "nextToken": "f/0/bad"},
         "InvalidParameterException", "nextToken"),
        ({"logGroupName": GROUP, "logStreamName": stream, "startTime": 5, "endTime": 1},
         "InvalidParameterException", "endTime"),
    ]  # fmt: skip
    for params, code, text in cases:
        with pytest.raises(ClientError) as e:
            logs.get_log_events(**params)
        assert _code(e) == code, params
        assert text in _message(e), params
    # a token of another stream is refused, not read at a foreign offset
    _job(aws_plane.local, "other")
    aws_plane.local.backend.write_log("other", "y\n")
    token = logs.get_log_events(logGroupName=GROUP, logStreamName=_stream(logs, "other"))[
        "nextForwardToken"
    ]
    with pytest.raises(ClientError) as e:
        logs.get_log_events(logGroupName=GROUP, logStreamName=stream, nextToken=token)
    assert _code(e) == "InvalidParameterException" and "nextToken" in _message(e)
    with pytest.raises(ClientError) as e:
        logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix="err/",
                                  orderBy="LastEventTime")  # fmt: skip
    assert _message(e) == "Cannot order by LastEventTime with a logStreamNamePrefix."
    with pytest.raises(ClientError) as e:
        logs.filter_log_events(logGroupName=GROUP, logStreamNames=[stream],
                               logStreamNamePrefix="err/")  # fmt: skip
    assert "logStreamNames and logStreamNamePrefix" in _message(e)
    for pattern, word in [("{ $.level = 1 }", "JSON"), ("[ip, user]", "space-delimited"),
                          ("%ab+%", "regular-expression"), ('"open', "quote"),
                          ("?a b", "?alternatives")]:  # fmt: skip
        with pytest.raises(ClientError) as e:
            logs.filter_log_events(logGroupName=GROUP, filterPattern=pattern)
        assert _code(e) == "InvalidParameterException"
        assert "filterPattern" in _message(e) and word in _message(e), pattern
    with pytest.raises(ClientError) as e:
        logs.filter_log_events(logStreamNamePrefix="err/")
    assert "logGroupName: required" in _message(e)


def test_a_group_of_another_kind_takes_its_own_action(aws_plane: AwsPlane) -> None:
    record, secret = aws_plane.local.plane.access_keys.create(
        name="bob", role="invoke", now=aws_plane.local.plane.clock.now()
    )
    _job(aws_plane.local, "private")
    client = aws_plane.client("logs", aws_access_key_id=record.access_key_id,
                              aws_secret_access_key=secret)  # fmt: skip
    with pytest.raises(ClientError) as e:
        client.describe_log_streams(logGroupName=GROUP)
    assert _code(e) == "AccessDeniedException"


def test_the_operation_tables_name_real_operations() -> None:
    import botocore.loaders

    model = botocore.loaders.Loader().load_service_model("logs", "service-2")
    real = set(model["operations"])
    assert set(logs_module.SUPPORTED) <= real
    assert set(logs_module.NOT_SUPPORTED) <= real
    assert not set(logs_module.SUPPORTED) & set(logs_module.NOT_SUPPORTED)
    assert all(logs_module.SUPPORTED.values())


def test_an_operation_not_served_says_so(logs: Any) -> None:
    with pytest.raises(ClientError) as e:
        logs.put_log_events(logGroupName=GROUP, logStreamName="s",
                            logEvents=[{"timestamp": 1, "message": "m"}])  # fmt: skip
    assert _code(e) == "UnknownOperationException"
    assert "PutLogEvents" in _message(e)

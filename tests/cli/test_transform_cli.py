"""``orch transform`` over the REST contract of ``/api/v1/transform-jobs`` (served by
``FakeTransformApi``): run with its progress bar (also when Progress is empty), the request
each flag makes, failure and stop exit 1 with the reason, bad flags named, list, describe,
wait, logs (and --follow), stop and delete."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from cli_harness import Cli
from typer.testing import CliRunner, Result

from orchestrator.cli import app
from orchestrator.cli.common import State, console
from orchestrator.cli.transform import ProgressBar, progress_fields
from orchestrator.client import Client
from orchestrator.resources.transform import (
    DescribeTransformJobResponse,
    TransformFileProgress,
    TransformInstanceState,
    TransformJobState,
    TransformProgress,
)
from tests.transform_fake import T0, FakeTransformApi

ISSUE_FLAGS = [
    "--model", "m", "--input", "s3://bucket/in/", "--output", "s3://bucket/out",
    "--content-type", "text/csv", "--split-type", "Line", "--strategy", "MultiRecord",
    "--max-payload", "6", "--assemble-with", "Line", "--instance-count", "2",
    "--input-filter", "$[1:]", "--join-source", "Input", "--output-filter", "$[0,-1]",
]  # fmt: skip
RUNNING = TransformJobState(
    TransformJobStatus="InProgress",
    Progress=TransformProgress(
        FilesTotal=2, BytesTotal=3000, BytesProcessed=1000, RecordsProcessed=10,
        RecordsPerSecond=5.0,
    ),
)  # fmt: skip
DONE = TransformJobState(
    TransformJobStatus="Completed",
    Progress=TransformProgress(
        FilesTotal=2, FilesCompleted=2, BytesTotal=3000, BytesProcessed=3000,
        RecordsProcessed=1234, RecordsPerSecond=400.0, ModelLatencyMicroseconds=2500.0,
    ),
)  # fmt: skip
FAILED = TransformJobState(
    TransformJobStatus="Failed",
    FailureReason="ClientError: in.csv line 3: the model answered 400: expected 4 features",
)


class Orch:
    """``orch`` run by CliRunner against the fake transform-jobs API."""

    def __init__(self, fake: FakeTransformApi) -> None:
        self.fake = fake
        self.runner = CliRunner()

    def __call__(self, *args: str) -> Result:
        obj = State(endpoint_url="http://testserver", api_key="k", transport=self.fake.transport)
        return self.runner.invoke(app, list(args), obj=obj, env={"COLUMNS": "200"})

    def ok(self, *args: str) -> Result:
        result = self(*args)
        assert result.exit_code == 0, (result.output, result.exception)
        return result

    def json(self, *args: str) -> Any:
        return json.loads(self.ok("-o", "json", *args).stdout)

    def created(self) -> list[dict[str, Any]]:
        return [
            json.loads(r.content)
            for r in self.fake.requests
            if r.method == "POST" and r.url.path.endswith("/transform-jobs")
        ]


@pytest.fixture
def fake() -> FakeTransformApi:
    return FakeTransformApi()


@pytest.fixture
def orch(fake: FakeTransformApi) -> Orch:
    return Orch(fake)


def make_job(orch: Orch, name: str, state: TransformJobState | None = None) -> None:
    orch.ok("transform", "run", "--model", "m", "--input", "s3://b/in/", "--name", name,
            "--no-wait")  # fmt: skip
    if state is not None:
        orch.fake.jobs[name].state = state


# --- run ---------------------------------------------------------------------------------------
def test_run_the_issue_s_example_waits_with_a_progress_bar(orch: Orch) -> None:
    orch.fake.script("tj-1", RUNNING, RUNNING, DONE)
    result = orch.ok("transform", "run", *ISSUE_FLAGS, "--name", "tj-1", "--poll", "0")
    assert orch.created() == [
        {
            "TransformJobName": "tj-1",
            "ModelName": "m",
            "BatchStrategy": "MultiRecord",
            "MaxPayloadInMB": 6,
            "TransformInput": {
                "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": "s3://bucket/in/"}},
                "ContentType": "text/csv",
                "SplitType": "Line",
            },
            "TransformOutput": {"S3OutputPath": "s3://bucket/out", "AssembleWith": "Line"},
            "TransformResources": {"InstanceCount": 2, "InstanceType": "local"},
            "DataProcessing": {
                "InputFilter": "$[1:]", "OutputFilter": "$[0,-1]", "JoinSource": "Input",
            },
        }
    ]  # fmt: skip
    out = result.stdout
    assert "started transform job tj-1" in out
    # The bar's last state, then the summary.
    assert "tj-1 Completed" in out and "100%" in out
    assert "3.0 kB/3.0 kB" in out and "2/2 files" in out and "1,234 records 400/s" in out
    assert "model latency 2.5 ms" in out and "s3://bucket/out" in out


def test_run_every_other_flag_and_the_defaults(orch: Orch) -> None:
    orch.fake.script("tj-2", DONE)
    orch.ok(
        "transform", "run", "--model", "m", "--input", "s3://b/manifest.json", "--manifest",
        "--compression", "Gzip", "--accept", "text/csv", "--max-concurrent", "4",
        "--instance-type", "local", "--invocations-timeout", "30", "--invocations-retries", "1",
        "--env", "A=1", "--tag", "team=ml", "--name", "tj-2", "--poll", "0",
    )  # fmt: skip
    body = orch.created()[0]
    assert body["TransformInput"] == {
        "DataSource": {"S3DataSource": {"S3DataType": "ManifestFile",
                                        "S3Uri": "s3://b/manifest.json"}},
        "CompressionType": "Gzip",
    }  # fmt: skip
    assert body["TransformOutput"] == {
        "S3OutputPath": "s3://orchestrator/tj-2",
        "Accept": "text/csv",
    }
    assert body["MaxConcurrentTransforms"] == 4 and body["Environment"] == {"A": "1"}
    assert body["ModelClientConfig"] == {
        "InvocationsTimeoutInSeconds": 30, "InvocationsMaxRetries": 1,
    }  # fmt: skip
    assert body["Tags"] == [{"Key": "team", "Value": "ml"}]
    assert "BatchStrategy" not in body and "DataProcessing" not in body

    out = orch.ok("transform", "run", "--model", "scorer", "--input", "s3://b/in/", "--no-wait")
    name = orch.created()[1]["TransformJobName"]
    assert re.fullmatch(r"scorer-\d{8}-\d{6}-\d{3}", name)
    assert f"started transform job {name}" in out.stdout
    assert f"orch transform wait {name}" in out.stdout


def test_run_with_empty_progress_does_not_break_the_bar(orch: Orch) -> None:
    empty = TransformJobState(TransformJobStatus="InProgress")
    orch.fake.script("tj-3", empty, empty, TransformJobState(TransformJobStatus="Completed"))
    out = orch.ok("transform", "run", "--model", "m", "--input", "s3://b/in/", "--name", "tj-3",
                  "--poll", "0").stdout  # fmt: skip
    assert "tj-3 Completed" in out and "100%" in out and "- files" in out
    assert "0 records" in out


def test_the_bar_takes_empty_partial_and_overfull_progress() -> None:
    def job(state: TransformJobState) -> DescribeTransformJobResponse:
        return DescribeTransformJobResponse.model_validate(
            {
                "TransformJobName": "j", "ModelName": "m", "TransformJobArn": "a",
                "CreationTime": T0, "LastModifiedTime": T0,
                "TransformInput": {"DataSource": {"S3DataSource": {"S3Uri": "s3://b/in/"}}},
                "TransformOutput": {"S3OutputPath": "s3://b/out"},
                "TransformResources": {"InstanceType": "local"},
                **state.model_dump(),
            }
        )  # fmt: skip

    with console.capture(), ProgressBar("j") as bar:
        bar.update(job(TransformJobState()))
        task = bar.progress.tasks[0]
        assert task.total is None and task.completed == 0
        assert task.fields["files"] == "- files" and task.fields["bytes"] == ""
        bar.update(job(RUNNING))
        assert (task.total, task.completed) == (3000, 1000)
        over = RUNNING.Progress.model_copy(update={"BytesProcessed": 5000})
        bar.update(job(RUNNING.model_copy(update={"Progress": over})))
        assert task.completed == 3000  # never past the total
    assert progress_fields(TransformProgress(RecordsProcessed=5)) == {
        "bytes": "", "files": "- files", "records": "5 records",
    }  # fmt: skip


def test_run_exits_1_with_the_failure_reason(orch: Orch) -> None:
    orch.fake.script("tj-4", RUNNING, FAILED)
    result = orch("transform", "run", "--model", "m", "--input", "s3://b/in/", "--name", "tj-4",
                  "--poll", "0")  # fmt: skip
    assert result.exit_code == 1
    assert "transform job tj-4 ended Failed: ClientError: in.csv line 3" in result.stderr
    assert "expected 4 features" in result.stdout  # the summary shows it too

    orch.fake.script("tj-5", TransformJobState(TransformJobStatus="Stopped"))
    stopped = orch("-o", "json", "transform", "run", "--model", "m", "--input", "s3://b/in/",
                   "--name", "tj-5", "--poll", "0")  # fmt: skip
    assert stopped.exit_code == 1
    assert json.loads(stopped.stdout)["TransformJobStatus"] == "Stopped"
    assert "ended Stopped: stopped on request" in stopped.stderr


def test_run_as_json_prints_the_final_describe(orch: Orch) -> None:
    orch.fake.script("tj-6", RUNNING, DONE)
    job = orch.json("transform", "run", "--model", "m", "--input", "s3://b/in/", "--name", "tj-6",
                    "--poll", "0")  # fmt: skip
    assert job["TransformJobStatus"] == "Completed"
    assert job["Progress"]["RecordsProcessed"] == 1234
    started = orch.json("transform", "run", "--model", "m", "--input", "s3://b/in/",
                        "--name", "tj-7", "--no-wait")  # fmt: skip
    assert started["TransformJobName"] == "tj-7" and started["TransformJobStatus"] == "InProgress"


@pytest.mark.parametrize(
    ("flags", "named", "words"),
    [
        (["--split-type", "Lines"], "--split-type", "'Lines' is not one of"),
        (["--strategy", "Batch"], "--strategy", "'Batch' is not one of"),
        (["--assemble-with", "Record"], "--assemble-with", "is not one of"),
        (["--join-source", "Output"], "--join-source", "is not one of"),
        (["--compression", "zip"], "--compression", "is not one of"),
        (["--instance-count", "0"], "--instance-count", "greater than or equal to 1"),
        (["--max-payload", "101"], "--max-payload", "less than or equal to 100"),
        (["--invocations-retries", "4"], "--invocations-retries", "less than or equal to 3"),
        (["--output", "/tmp/out"], "--output", "give an s3:// URI"),
        (
            ["--max-concurrent", "50", "--max-payload", "6"],
            "--max-concurrent / --max-payload",
            "50 x 6 = 300 MB",
        ),
        (["--strategy", "MultiRecord", "--max-payload", "0"], "--max-payload", "SingleRecord"),
        (["--name", "bad name!"], "--name", "TransformJobName"),
        (["--env", "novalue"], "--env", "expected KEY=VALUE"),
        (["--input-filter", "x" * 64], "--input-filter", "at most 63 characters"),
    ],
)
def test_bad_flags_are_usage_errors_naming_the_flag(
    orch: Orch, flags: list[str], named: str, words: str
) -> None:
    result = orch("transform", "run", "--model", "m", "--input", "s3://b/in/", *flags)
    assert result.exit_code == 2, result.output
    assert named in result.stderr and words in result.stderr, result.stderr
    assert orch.fake.requests == []


def test_the_input_and_model_flags_are_required_and_checked(orch: Orch) -> None:
    local = orch("transform", "run", "--model", "m", "--input", "/data/in")
    assert local.exit_code == 2 and "--input" in local.stderr and "s3://" in local.stderr
    missing = orch("transform", "run", "--input", "s3://b/in/")
    assert missing.exit_code == 2 and "--model" in missing.stderr
    assert orch.fake.requests == []


# --- list, describe, wait, logs, stop, delete ------------------------------------------------------
def test_list_with_status_and_json(orch: Orch) -> None:
    make_job(orch, "tj-a", DONE)
    make_job(orch, "tj-b", FAILED)
    make_job(orch, "tj-c")
    out = orch.ok("transform", "list").stdout
    for name in ("tj-a", "tj-b", "tj-c"):
        assert name in out
    assert out.index("tj-c") < out.index("tj-a")  # newest first
    assert "expected 4 features" in out
    failed = orch.ok("transform", "list", "--status", "Failed").stdout
    assert "tj-b" in failed and "tj-a" not in failed
    page = orch.json("transform", "list", "--max", "2")
    assert len(page["TransformJobSummaries"]) == 2 and page["NextToken"]
    every = orch.json("transform", "list", "--max", "2", "--all")
    assert len(every["TransformJobSummaries"]) == 3 and every["NextToken"] is None
    bad = orch("transform", "list", "--status", "Running")
    assert bad.exit_code == 2 and "--status" in bad.stderr and "InProgress" in bad.stderr


def test_describe_shows_status_progress_files_and_instances(orch: Orch) -> None:
    orch.ok("transform", "run", *ISSUE_FLAGS, "--name", "tj-d", "--no-wait")
    orch.fake.jobs["tj-d"].state = TransformJobState(
        TransformJobStatus="Failed",
        FailureReason="ClientError: b.csv line 7: no output",
        TransformStartTime=T0,
        Progress=TransformProgress(
            FilesTotal=3, FilesCompleted=1, BytesTotal=2000, BytesProcessed=1500,
            RecordsProcessed=42, RecordsPerSecond=7.0,
            Files=[
                TransformFileProgress(Key="a.csv", SizeBytes=1000, BytesProcessed=1000,
                                      RecordsProcessed=30, Status="Completed"),
                TransformFileProgress(Key="b.csv", SizeBytes=1000, BytesProcessed=500,
                                      RecordsProcessed=12, Status="Failed"),
            ],
        ),
        Instances=[
            TransformInstanceState(Instance=0, Attempt=1, Status="Failed",
                                   Message="exit 1: b.csv line 7"),
            TransformInstanceState(Instance=1, Status="Completed"),
        ],
    )  # fmt: skip
    out = orch.ok("transform", "describe", "tj-d").stdout
    assert "Failed" in out and "ClientError: b.csv line 7: no output" in out
    assert "s3://bucket/in/ (S3Prefix)" in out and "text/csv, split Line" in out
    assert "MultiRecord, at most 6 MB a request" in out
    assert "input $[1:], join Input, output $[0,-1]" in out
    assert "2 x local" in out and "1/3 files, 42 records 7/s, 1.5 kB/2.0 kB" in out
    assert re.search(r"a\.csv .*1\.0 kB .*1\.0 kB \(100%\) .*30 .*Completed", out)
    assert re.search(r"b\.csv .*500 bytes \(50%\) .*12 .*Failed", out)
    assert "2 of 3 files shown" in out
    assert re.search(r"algo-1 .*1 .*Failed .*exit 1: b\.csv line 7", out)
    assert "algo-2" in out
    described = orch.json("transform", "describe", "tj-d")
    assert described["Progress"]["Files"][1]["Key"] == "b.csv"

    make_job(orch, "tj-e")  # nothing listed yet: no file or instance tables
    fresh = orch.ok("transform", "describe", "tj-e").stdout
    assert re.search(r"Progress\s+- files, 0 records\s", fresh)
    assert "algo-" not in fresh
    missing = orch("transform", "describe", "nope")
    assert missing.exit_code == 1 and "not found" in missing.stderr


def test_wait_exits_by_the_outcome(orch: Orch) -> None:
    make_job(orch, "tj-w")
    orch.fake.script("tj-w", RUNNING, DONE)
    assert "tj-w Completed" in orch.ok("transform", "wait", "tj-w", "--poll", "0").stdout
    make_job(orch, "tj-x")
    orch.fake.script("tj-x", FAILED)
    failed = orch("transform", "wait", "tj-x", "--poll", "0")
    assert failed.exit_code == 1 and "ended Failed" in failed.stderr
    missing = orch("transform", "wait", "tj-none", "--poll", "0")
    assert missing.exit_code == 1 and "not found" in missing.stderr
    make_job(orch, "tj-y")
    timed = orch("transform", "wait", "tj-y", "--poll", "0", "--timeout", "0")
    assert timed.exit_code == 1 and "still InProgress after 0.0 s" in timed.stderr


def test_logs_and_follow(orch: Orch, monkeypatch: pytest.MonkeyPatch) -> None:
    make_job(orch, "tj-l")
    job = orch.fake.jobs["tj-l"]
    job.log = b"instance 0: a.csv\n"
    assert orch.ok("transform", "logs", "tj-l").stdout == "instance 0: a.csv\n"

    def later(_seconds: float) -> None:  # time passes: more log, then the job ends
        job.log += b"instance 0: done\n"
        job.state = DONE

    monkeypatch.setattr("orchestrator.cli.common.time.sleep", later)
    followed = orch.ok("transform", "logs", "tj-l", "--follow").stdout
    assert followed == "instance 0: a.csv\ninstance 0: done\n"


def test_stop_and_delete(orch: Orch) -> None:
    make_job(orch, "tj-s")
    assert "stopping tj-s" in orch.ok("transform", "stop", "tj-s").stdout
    assert orch.fake.jobs["tj-s"].state.TransformJobStatus == "Stopping"
    running = orch("transform", "delete", "tj-s")
    assert running.exit_code == 1 and "stop it and wait" in running.stderr
    orch.fake.jobs["tj-s"].state = TransformJobState(TransformJobStatus="Stopped")
    assert orch.json("transform", "delete", "tj-s") == {"TransformJobName": "tj-s"}
    assert "tj-s" not in orch.fake.jobs
    make_job(orch, "tj-t", DONE)
    again = orch("transform", "stop", "tj-t")
    assert again.exit_code == 1 and "already ended Completed" in again.stderr


def test_transform_is_listed_in_the_help(orch: Orch) -> None:
    assert "transform" in orch.ok("--help").stdout
    help_text = orch.ok("transform", "--help").stdout
    for command in ("run", "list", "describe", "wait", "logs", "stop", "delete"):
        assert command in help_text


# --- against the control plane's REST API --------------------------------------------------------
def test_run_describe_list_stop_wait_delete_against_the_rest_api(cli: Cli) -> None:
    cli.plane.objects.put_bytes("s3://data/in/a.csv", b"1,2\n3,4\n")
    with Client("http://testserver", cli.api_key, transport=cli.http._transport) as api:
        api.create_model(ModelName="m", PrimaryContainer={"Image": "x/y:1"})
    flags = ["--model", "m", "--input", "s3://data/in/", "--output", "s3://data/out",
             "--content-type", "text/csv", "--split-type", "Line", "--input-filter", "$[1:]"]  # fmt: skip
    started = cli.ok("transform", "run", *flags, "--name", "tj-1", "--no-wait").stdout
    assert "started transform job tj-1" in started
    described = cli.json("transform", "describe", "tj-1")
    assert described["TransformJobStatus"] == "InProgress"
    assert described["DataProcessing"]["InputFilter"] == "$[1:]"
    text = cli.ok("transform", "describe", "tj-1").stdout
    assert "InProgress" in text and re.search(r"Progress\s+- files, 0 records\s", text)
    assert "tj-1" in cli.ok("transform", "list", "--status", "InProgress").stdout

    # What the server refuses about a flag's value is a usage error naming the flag.
    no_model = cli("transform", "run", "--model", "nope", "--input", "s3://data/in/")
    assert no_model.exit_code == 2 and "--model" in no_model.stderr
    assert "does not exist" in no_model.stderr
    no_input = cli("transform", "run", "--model", "m", "--input", "s3://data/none/")
    assert no_input.exit_code == 2 and "--input" in no_input.stderr
    assert "no objects under" in no_input.stderr

    assert "stopping tj-1" in cli.ok("transform", "stop", "tj-1").stdout
    assert cli.json("transform", "describe", "tj-1")["TransformJobStatus"] == "Stopping"
    record = cli.plane.store.get("TransformJob", "tj-1")
    now = cli.plane.clock.now()
    stopped = {**record.status, "TransformJobStatus": "Stopped"}
    cli.plane.store.update_status(record, stopped, phase="Stopped", active=False, now=now)
    waited = cli("transform", "wait", "tj-1", "--poll", "0")
    assert waited.exit_code == 1 and "ended Stopped: stopped on request" in waited.stderr
    assert "deleted tj-1" in cli.ok("transform", "delete", "tj-1").stdout

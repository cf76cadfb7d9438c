"""``orch jobs metrics`` (table and chart) and ``orch tags`` against an in-process plane."""

from __future__ import annotations

from cli_harness import Cli

from orchestrator.cli.metricsview import BLOCKS, sparkline
from orchestrator.resources.training import CreateTrainingJobRequest
from orchestrator.testing import training_job_spec

ARN = "arn:aws:sagemaker:us-east-1:000000000000:training-job/job-1"


def _job(cli: Cli) -> None:
    spec = training_job_spec(
        "job-1",
        AlgorithmSpecification={
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "loss", "Regex": r"loss=(\S+)"}],
        },
    )
    cli.plane.create_training_job(CreateTrainingJobRequest.model_validate(spec))


def test_metrics_table_shows_each_point(cli: Cli) -> None:
    _job(cli)
    for epoch, loss in enumerate((0.9, 0.5, 0.25), start=1):
        cli.backend.write_log("job-1", f"epoch={epoch} loss={loss}\n")
    out = cli.ok("jobs", "metrics", "job-1").stdout
    assert "loss" in out
    for value in ("0.9", "0.5", "0.25"):
        assert value in out
    body = cli.json("jobs", "metrics", "job-1")
    points = body["Metrics"][0]["Points"]
    assert [(p["Step"], p["Epoch"], p["Value"]) for p in points] == [
        (0, 1, 0.9),
        (1, 2, 0.5),
        (2, 3, 0.25),
    ]
    tail = cli.ok("jobs", "metrics", "job-1", "--last", "1").stdout
    assert "0.25" in tail
    assert "0.9" not in tail
    assert "the last 1 of 3 points" in tail


def test_metrics_chart_is_a_sparkline_per_metric(cli: Cli) -> None:
    _job(cli)
    cli.backend.write_log("job-1", "".join(f"loss={v}\n" for v in (3, 2, 1)))
    out = cli.ok("jobs", "metrics", "job-1", "--chart").stdout
    assert "█▅▁" in out
    assert "3 points; min 1, max 3, last 1 (step 2)" in out


def test_metrics_errors_name_the_job_or_the_metric(cli: Cli) -> None:
    result = cli("jobs", "metrics", "nope")
    assert result.exit_code == 1
    assert "nope" in result.output
    _job(cli)
    result = cli("jobs", "metrics", "job-1", "--metric", "f1")
    assert result.exit_code == 1
    assert "emits no metric 'f1'" in result.output
    assert "loss" in result.output
    assert "no metric lines yet" in cli.ok("jobs", "metrics", "job-1").stdout


def test_sparkline_scales_and_squeezes() -> None:
    assert sparkline([]) == ""
    assert sparkline([1.0, 1.0]) == BLOCKS[4] * 2
    assert sparkline([0.0, 7.0]) == BLOCKS[0] + BLOCKS[-1]
    assert len(sparkline([float(i) for i in range(1000)], width=40)) == 40


def test_tags_add_list_remove(cli: Cli) -> None:
    _job(cli)
    out = cli.ok("tags", "add", ARN, "team=ml", "env=dev").stdout
    assert "team=ml" in out
    listed = cli.ok("tags", "list", ARN).stdout
    assert "team" in listed
    assert "dev" in listed
    assert cli.json("tags", "list", ARN) == {
        "Tags": [{"Key": "team", "Value": "ml"}, {"Key": "env", "Value": "dev"}]
    }
    cli.ok("tags", "remove", ARN, "team")
    assert cli.json("tags", "list", ARN) == {"Tags": [{"Key": "env", "Value": "dev"}]}
    cli.ok("tags", "remove", ARN, "env")
    assert "has no tags" in cli.ok("tags", "list", ARN).stdout


def test_tags_bad_input(cli: Cli) -> None:
    _job(cli)
    result = cli("tags", "add", ARN, "oops")
    assert result.exit_code == 2
    assert "KEY=VALUE" in result.output
    result = cli("tags", "add", "not-an-arn", "a=b")
    assert result.exit_code == 1
    assert "ResourceArn" in result.output
    result = cli("tags", "add", ARN, "aws:x=1")
    assert result.exit_code == 1
    assert "reserved" in result.output
    result = cli("tags", "list", ARN.replace("job-1", "nope"))
    assert result.exit_code == 1
    assert "does not exist" in result.output


def test_resource_usage_in_the_chart_and_in_describe(cli: Cli) -> None:
    _job(cli)
    out = cli.ok("jobs", "describe", "job-1").stdout
    assert "Resource use" not in out  # nothing sampled yet
    for cpu in (100.0, 180.0, 150.0):
        cli.backend.write_usage(
            "job-1", "algo-1", {"CPUUtilization": cpu, "MemoryUtilization": 12.5}
        )
    cli.backend.write_usage("job-1", "algo-2", {"CPUUtilization": 42.0, "DiskUtilization": 3.25})
    chart = cli.ok("jobs", "metrics", "job-1", "--chart").stdout
    assert "CPUUtilization [algo-1]" in chart
    assert "▁█▅" in chart
    assert "3 points; min 100, max 180, last 150 (step 2)" in chart
    assert "CPUUtilization [algo-2]" in chart
    out = cli.ok("jobs", "describe", "job-1").stdout
    assert "Resource use (latest)" in out
    rows = {h: line for line in out.splitlines() for h in ("algo-1", "algo-2") if h in line}
    assert "150.0" in rows["algo-1"] and "12.5" in rows["algo-1"]
    assert "42.0" in rows["algo-2"] and "3.2" in rows["algo-2"]  # 3.25 shown as 3.2
    assert "GPU" not in out  # no GPU column where nothing reported one

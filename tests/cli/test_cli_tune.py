"""``orch tune``: create from a file, list, describe, trials sorted, the live watch until the
tuning job ends, stop, delete, and bad input named."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from cli_harness import Cli

from orchestrator.testing import eventually, tarball

SOURCE = "s3://orchestrator/src/sourcedir.tar.gz"


def request(name: str, **config: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": "Random",
            "RandomSeed": 3,
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "loss"},
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 3, "MaxParallelTrainingJobs": 2},
            "ParameterRanges": {
                "ContinuousParameterRanges": [
                    {"Name": "lr", "MinValue": "0.001", "MaxValue": "0.1",
                     "ScalingType": "Logarithmic"}
                ],
                "CategoricalParameterRanges": [{"Name": "opt", "Values": ["adam", "sgd"]}],
            },
        },
        "TrainingJobDefinition": {
            "StaticHyperParameters": {
                "sagemaker_program": "train.py", "sagemaker_submit_directory": SOURCE,
            },
            "AlgorithmSpecification": {
                "TrainingInputMode": "File",
                "MetricDefinitions": [{"Name": "loss", "Regex": "loss=([0-9.]+)"}],
            },
            "ResourceConfig": {"InstanceType": "local", "InstanceCount": 1},
        },
    }  # fmt: skip
    doc["HyperParameterTuningJobConfig"].update(config)
    return doc


@pytest.fixture
def doc_file(cli: Cli, tmp_path: Path) -> Path:
    cli.plane.objects.put_bytes(SOURCE, tarball({"train.py": "print('loss=0.5')\n"}))
    path = tmp_path / "tune.json"
    path.write_text(json.dumps(request("hpo-1")))
    return path


def finish_pass(cli: Cli, losses: dict[int, float]) -> None:
    cli.run_pass()
    for name, job in list(cli.backend.jobs.items()):
        if job.state != "exited":
            cli.backend.complete(name, metrics={"loss": losses[int(name.split("-")[2])]})
    cli.run_pass()


def test_create_list_describe_trials(cli: Cli, doc_file: Path) -> None:
    out = cli.ok("tune", "create", str(doc_file)).stdout
    assert "hyper-parameter-tuning-job/hpo-1" in out
    for _ in range(3):
        finish_pass(cli, {1: 0.4, 2: 0.2, 3: 0.3})
    listed = cli.ok("tune", "list").stdout
    assert "hpo-1" in listed and "Completed" in listed and "3/3" in listed
    described = cli.json("tune", "describe", "hpo-1")
    assert described["HyperParameterTuningJobStatus"] == "Completed"
    best = described["BestTrainingJob"]["TrainingJobName"]
    assert best.startswith("hpo-1-002-")
    text = cli.ok("tune", "describe", "hpo-1").stdout
    assert f"Best: {best}" in text and "Minimize loss" in text
    rows = cli.json("tune", "trials", "hpo-1", "--sort", "FinalObjectiveMetricValue")
    values = [
        r["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
        for r in rows["TrainingJobSummaries"]
    ]
    assert values == [0.2, 0.3, 0.4]  # Minimize: best first
    table = cli.ok("tune", "trials", "hpo-1").stdout
    assert "lr" in table and "opt" in table and f"{best} *" in table


def test_watch_shows_the_trials_until_the_job_ends(cli: Cli, doc_file: Path) -> None:
    cli.ok("tune", "create", str(doc_file))

    def drive() -> None:
        for _ in range(3):
            finish_pass(cli, {1: 0.4, 2: 0.2, 3: 0.3})

    thread = threading.Thread(target=drive, daemon=True)
    thread.start()
    out = cli.ok("tune", "watch", "hpo-1", "--poll", "0.05", "--timeout", "20").stdout
    thread.join(10)
    assert "hpo-1 ended Completed; best trial hpo-1-002-" in out
    # The last table: every trial, its values, its objective and the best so far.
    last = out[out.rindex("hpo-1: Completed") :]
    for number, loss, best in (("001", "0.4", "0.4"), ("002", "0.2", "0.2"), ("003", "0.3", "0.2")):
        line = next(row for row in last.splitlines() if f"hpo-1-{number}-" in row)
        cells = [c.strip() for c in line.split("│") if c.strip()]
        assert cells[-2:] == [loss, best], line
        assert "Completed" in cells


def test_create_watch_then_a_failed_tuning_job_exits_1(cli: Cli, doc_file: Path) -> None:
    def drive() -> None:
        def ended() -> bool:
            cli.run_pass()
            for name, job in list(cli.backend.jobs.items()):
                if job.state != "exited":
                    cli.backend.fail(name, "boom")
            record = cli.plane.store.find("HyperParameterTuningJob", "hpo-1")
            return record is not None and record.phase == "Failed"

        eventually(ended, timeout=20, interval=0.02, what="hpo-1 failed")

    thread = threading.Thread(target=drive, daemon=True)
    thread.start()
    result = cli("tune", "create", str(doc_file), "--watch", "--poll", "0.05", "--timeout", "20")
    thread.join(10)
    assert result.exit_code == 1, result.output
    assert "ended Failed" in result.stdout


def test_stop_and_delete(cli: Cli, doc_file: Path) -> None:
    cli.ok("tune", "create", str(doc_file))
    cli.run_pass()
    refused = cli("tune", "delete", "hpo-1")
    assert refused.exit_code == 1 and "stop it first" in refused.output
    assert "stopping hpo-1" in cli.ok("tune", "stop", "hpo-1").stdout
    for _ in range(3):
        cli.run_pass()
        for name, job in list(cli.backend.jobs.items()):
            if job.state != "exited":
                cli.backend.complete(name)
    assert cli.json("tune", "describe", "hpo-1")["HyperParameterTuningJobStatus"] == "Stopped"
    assert "deleted hpo-1" in cli.ok("tune", "delete", "hpo-1").stdout


def test_bad_input_names_the_field(cli: Cli, doc_file: Path, tmp_path: Path) -> None:
    bad = request("hpo-2")
    bad["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxParallelTrainingJobs"] = 5
    path = tmp_path / "bad.yaml"
    path.write_text(json.dumps(bad))
    result = cli("tune", "create", str(path))
    assert result.exit_code == 1
    assert "MaxParallelTrainingJobs" in result.output and "Traceback" not in result.output
    missing = cli("tune", "create", str(tmp_path / "nope.json"))
    assert missing.exit_code == 2 and "cannot read" in missing.output
    unknown = cli("tune", "describe", "nope")
    assert unknown.exit_code == 1 and "nope" in unknown.output
    sort = cli("tune", "trials", "hpo-1", "--sort", "Loss")
    assert sort.exit_code == 1

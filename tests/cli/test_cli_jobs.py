from __future__ import annotations

import json
import threading
from dataclasses import replace
from pathlib import Path

from cli_harness import Cli

from orchestrator.testing import eventually


def _start(cli: Cli, script: Path, name: str, *extra: str) -> None:
    cli.ok("train", str(script), "--job-name", name, "--no-wait", *extra)
    cli.run_pass()


def test_help_lists_the_command_groups(cli: Cli) -> None:
    out = cli.ok("--help").stdout
    for group in ("server", "train", "jobs", "models", "endpoint-configs", "endpoints"):
        assert group in out
    for command in ("deploy", "invoke", "objects"):
        assert command in out


def test_train_no_wait_builds_the_spec(cli: Cli, script: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "x.csv").write_text("1,2\n")
    cli.ok("objects", "put", str(data), "s3://bucket/test")
    result = cli.ok(
        "train", str(script), "--job-name", "job-1", "--no-wait",
        "--hp", "C=0.5", "--hp", "kernel=rbf",
        "--channel", f"train={data}", "--channel", "test=s3://bucket/test",
        "--metric", "acc=acc=(\\S+)", "--max-run", "600",
    )  # fmt: skip
    assert "job-1" in result.stdout
    job = cli.json("jobs", "describe", "job-1")
    hps = job["HyperParameters"]
    assert hps["C"] == "0.5"
    assert hps["kernel"] == "rbf"
    assert hps["sagemaker_program"] == "train.py"
    assert hps["sagemaker_submit_directory"] == "s3://orchestrator/job-1/source/sourcedir.tar.gz"
    channels = {
        c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in job["InputDataConfig"]
    }
    assert channels == {"train": data.resolve().as_uri(), "test": "s3://bucket/test"}
    assert job["AlgorithmSpecification"]["MetricDefinitions"] == [
        {"Name": "acc", "Regex": "acc=(\\S+)"}
    ]
    assert job["StoppingCondition"]["MaxRuntimeInSeconds"] == 600
    listed = cli.json("objects", "ls", "s3://orchestrator/job-1/")["Objects"]
    assert [o["Uri"] for o in listed] == ["s3://orchestrator/job-1/source/sourcedir.tar.gz"]
    cli.run_pass()
    assert [launch.name for launch in cli.backend.launches] == ["job-1"]


def test_train_bad_hp_names_the_option(cli: Cli, script: Path) -> None:
    result = cli("train", str(script), "--hp", "oops", "--no-wait")
    assert result.exit_code == 2
    assert "--hp" in result.output
    assert "KEY=VALUE" in result.output


def test_train_missing_script_is_a_clean_error(cli: Cli, tmp_path: Path) -> None:
    result = cli("train", str(tmp_path / "nope.py"), "--no-wait")
    assert result.exit_code == 1
    assert "error:" in result.stderr
    assert "field: entry_point" in result.stderr
    assert "Traceback" not in result.output


def test_list_and_describe(cli: Cli, script: Path) -> None:
    _start(cli, script, "job-a")
    _start(cli, script, "job-b")
    cli.backend.complete(
        "job-a", artifact="s3://orchestrator/job-a/model.tar.gz", metrics={"acc": 0.9}
    )
    cli.run_pass()

    table = cli.ok("jobs", "list").stdout
    assert "job-a" in table and "job-b" in table
    assert "Completed" in table and "InProgress" in table

    listed = cli.json("jobs", "list", "--status", "Completed")
    assert [j["TrainingJobName"] for j in listed["TrainingJobSummaries"]] == ["job-a"]
    paged = cli.json("jobs", "list", "--max", "1", "--all")
    assert sorted(j["TrainingJobName"] for j in paged["TrainingJobSummaries"]) == ["job-a", "job-b"]
    assert paged["NextToken"] is None
    one = cli.json("jobs", "list", "--max", "1")
    assert len(one["TrainingJobSummaries"]) == 1 and one["NextToken"]

    panel = cli.ok("jobs", "describe", "job-a").stdout
    assert "s3://orchestrator/job-a/model.tar.gz" in panel
    assert "acc" in panel and "0.9" in panel
    assert "sagemaker_program" in panel
    described = cli.json("jobs", "describe", "job-a")
    assert described["TrainingJobStatus"] == "Completed"
    assert described["FinalMetricDataList"][0]["MetricName"] == "acc"


def test_logs(cli: Cli, script: Path) -> None:
    _start(cli, script, "job-l")
    cli.backend.write_log("job-l", "epoch 1\nepoch 2\n")
    assert cli.ok("jobs", "logs", "job-l").stdout == "epoch 1\nepoch 2\n"
    cli.backend.write_log("job-l", "done\n")
    cli.backend.complete("job-l")
    cli.run_pass()
    assert cli.ok("jobs", "logs", "-f", "job-l").stdout == "epoch 1\nepoch 2\ndone\n"


def test_stop_and_delete(cli: Cli, script: Path) -> None:
    _start(cli, script, "job-s")
    assert cli.json("jobs", "stop", "job-s") == {
        "TrainingJobName": "job-s",
        "TrainingJobStatus": "Stopping",
    }
    cli.run_pass()
    cli.run_pass()
    assert cli.json("jobs", "describe", "job-s")["TrainingJobStatus"] == "Stopped"
    assert "deleted job-s" in cli.ok("jobs", "delete", "job-s").stdout
    cli.run_pass()
    result = cli("jobs", "describe", "job-s")
    assert result.exit_code == 1
    assert "error:" in result.stderr


def test_wait_for_a_failed_job_exits_1_with_the_reason(cli: Cli, script: Path) -> None:
    _start(cli, script, "job-f")
    cli.backend.write_log("job-f", "boom\n")
    cli.backend.fail("job-f", "ValueError: C must be positive")
    cli.run_pass()
    result = cli("jobs", "wait", "job-f")
    assert result.exit_code == 1
    assert "ValueError: C must be positive" in result.stderr
    assert "Failed" in result.stdout

    as_json = cli("-o", "json", "jobs", "wait", "job-f")
    assert as_json.exit_code == 1


def test_wait_for_a_completed_job(cli: Cli, script: Path) -> None:
    _start(cli, script, "job-c")
    cli.backend.complete(
        "job-c", artifact="s3://orchestrator/job-c/model.tar.gz", metrics={"loss": 0.25}
    )
    cli.run_pass()
    out = cli.ok("jobs", "wait", "job-c").stdout
    assert "Completed" in out and "loss" in out and "0.25" in out


def test_wrong_api_key_is_a_clean_401(cli: Cli) -> None:
    result = cli("jobs", "list", api_key="orch_nope_nope")
    assert result.exit_code == 1
    assert "error:" in result.stderr
    assert "API key" in result.stderr
    assert "Traceback" not in result.output


def _finish_in_background(cli: Cli, name: str, *, fail: bool = False) -> threading.Thread:
    """Play the controller: launch the job once it exists, log, then end it."""

    def run() -> None:
        def launched() -> bool:
            cli.run_pass()
            return name in cli.backend.jobs

        eventually(launched, timeout=20, interval=0.05, what=f"{name} launched")
        line = "epoch 1 loss=0.5\n"
        cli.backend.write_log(name, line)
        # The CLI streams the log while the job runs: end it once the line was read.
        eventually(lambda: cli.backend.log_reads.get(name, 0) >= len(line), what="log read")
        if fail:
            cli.backend.fail(name, "RuntimeError: diverged")
        else:
            cli.backend.complete(
                name, artifact=f"s3://orchestrator/{name}/model.tar.gz", metrics={"loss": 0.5}
            )
        cli.run_pass()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_train_waits_streams_the_log_and_summarizes(cli: Cli, script: Path) -> None:
    thread = _finish_in_background(cli, "job-w")
    result = cli("train", str(script), "--job-name", "job-w")
    thread.join()
    assert result.exit_code == 0, result.output
    assert "epoch 1 loss=0.5" in result.stdout
    assert "Completed" in result.stdout
    assert "s3://orchestrator/job-w/model.tar.gz" in result.stdout


def test_train_json_prints_the_final_job_and_fails_with_exit_1(cli: Cli, script: Path) -> None:
    thread = _finish_in_background(cli, "job-x", fail=True)
    result = cli("-o", "json", "train", str(script), "--job-name", "job-x")
    thread.join()
    assert result.exit_code == 1
    job = json.loads(result.stdout)
    assert job["TrainingJobStatus"] == "Failed"
    assert job["FailureReason"] == "AlgorithmError: RuntimeError: diverged"
    assert "epoch 1 loss=0.5" in result.stderr
    assert "RuntimeError: diverged" in result.stderr


def test_describe_shows_the_evaluation_and_confusion_matrix(cli: Cli, script: Path) -> None:
    _start(cli, script, "evaluated")
    artifact = "s3://orchestrator/evaluated/output/model.tar.gz"
    cli.backend.complete("evaluated", artifact=artifact)
    cli.run_pass()
    doc = {
        "predictor_type": "multiclass_classifier",
        "classes": [0, 1, 2],
        "test": {
            "accuracy": 0.9333,
            "macro_f1": 0.93,
            "per_class": [
                {"label": c, "precision": 0.9, "recall": 0.9, "f1": 0.9, "support": 10}
                for c in range(3)
            ],
            "confusion_matrix": [[10, 0, 0], [0, 9, 1], [0, 1, 9]],
        },
    }
    cli.plane.objects.put_bytes(
        "s3://orchestrator/evaluated/output/evaluation.json", json.dumps(doc).encode()
    )
    out = cli.ok("jobs", "describe", "evaluated").stdout
    assert "Evaluation (test)" in out and "0.9333" in out
    assert "Confusion matrix" in out and "Per class" in out
    # A job without an evaluation still describes cleanly.
    _start(cli, script, "plain")
    cli.backend.complete("plain", artifact="s3://orchestrator/plain/output/model.tar.gz")
    cli.run_pass()
    assert "Confusion matrix" not in cli.ok("jobs", "describe", "plain").stdout


def test_export_of_a_script_job_is_refused_with_the_reason(cli: Cli, script: Path) -> None:
    _start(cli, script, "scripted")
    cli.backend.complete("scripted", artifact="s3://orchestrator/scripted/output/model.tar.gz")
    cli.run_pass()
    result = cli("jobs", "export", "scripted")
    assert result.exit_code == 1
    assert "did not run a built-in algorithm" in result.output


def test_train_with_a_built_in_algorithm_needs_no_script(cli: Cli, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.csv").write_text("1,0.5\n0,0.1\n")
    cli.ok(
        "train",
        "--algorithm",
        "linear-learner",
        "--hp",
        "predictor_type=binary_classifier",
        "--channel",
        f"train={data}",
        "--job-name",
        "builtin",
        "--no-wait",
    )
    spec = cli.json("jobs", "describe", "builtin")
    assert spec["AlgorithmSpecification"]["AlgorithmName"] == "linear-learner"
    assert "sagemaker_program" not in spec["HyperParameters"]
    # A bad hyperparameter is refused before any job exists, naming it.
    result = cli(
        "train",
        "--algorithm",
        "linear-learner",
        "--hp",
        "predictor_type=classifier",
        "--channel",
        f"train={data}",
        "--job-name",
        "nope",
        "--no-wait",
    )
    assert result.exit_code == 1 and "predictor_type" in result.output
    # Neither a script nor an algorithm: a clear error.
    result = cli("train", "--job-name", "nothing", "--no-wait")
    assert result.exit_code == 1 and "entry_point" in result.output


def test_describe_shows_the_attempts_and_logs_says_what_an_attempt_needs(
    cli: Cli, script: Path
) -> None:
    from orchestrator.resources.training import CreateTrainingJobRequest

    spec = CreateTrainingJobRequest.model_validate(
        {
            "TrainingJobName": "job-r",
            "AlgorithmSpecification": {"TrainingImage": "example/train:1"},
            "RetryStrategy": {"MaximumRetryAttempts": 2},
        }
    )
    cli.plane.create_training_job(spec)
    cli.run_pass()
    cli.backend.fail("job-r", "OutOfMemory: killed", exit_code=-9, exit_kind="oom")
    cli.run_pass()
    panel = cli.ok("jobs", "describe", "job-r").stdout
    assert "Attempts" in panel and "Next attempt" in panel
    assert "AlgorithmError: OutOfMemory: killed" in panel
    described = cli.json("jobs", "describe", "job-r")
    assert [(a["AttemptNumber"], a["Outcome"]) for a in described["Attempts"]] == [(1, "Failed")]
    assert described["SecondaryStatus"] == "Restarting"
    # The fake backend keeps one log per job, not per attempt: said, naming the option.
    result = cli("jobs", "logs", "job-r", "--attempt", "1")
    assert result.exit_code == 1
    assert "attempt: the fake backend keeps no log per attempt" in result.stderr
    assert cli("jobs", "logs", "job-r", "--attempt", "2").exit_code == 1  # not made yet


def test_list_shows_the_queue_position_and_reason(cli: Cli, script: Path) -> None:
    cli.plane.controller.reconciler.host = replace(cli.plane.controller.reconciler.host, slots=1)
    _start(cli, script, "job-run")
    _start(cli, script, "job-wait")
    table = cli.ok("jobs", "list").stdout
    assert "Pending #1: Waiting for a job slot" in " ".join(table.split())
    assert cli.json("jobs", "describe", "job-wait")["QueuePosition"] == 1
    assert "Queue position" in cli.ok("jobs", "describe", "job-wait").stdout


def test_preempt_refuses_a_job_that_is_not_a_spot_job(cli: Cli, script: Path) -> None:
    _start(cli, script, "job-p")
    result = cli("jobs", "preempt", "job-p")
    assert result.exit_code == 1
    assert "EnableManagedSpotTraining" in result.stderr and "orch jobs stop" in result.stderr
    assert not cli.plane.store.get("TrainingJob", "job-p").preempt_requested

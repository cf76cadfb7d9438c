"""Training scenarios, written once, run on every backend (``declarations.scenario``)."""

from __future__ import annotations

from tests.conformance.declarations import Refused, scenario
from tests.conformance.harness import Harness, Script

WALK = ["Starting", "Downloading", "Training", "Uploading", "Completed"]
LOSS = {"Name": "train:loss", "Regex": r"loss=(\S+)"}
TRAIN = Script(prints=("reading 3 rows", "loss=0.25"), model_files=(("model.json", '{"rows": 3}'),))


def artifact_of(name: str) -> str:
    return f"s3://orchestrator/training-jobs/{name}/output/model.tar.gz"


@scenario(
    "Train and complete",
    "the status walk Starting, Downloading, Training, Uploading, Completed; the model "
    "artifact; the final metric from MetricDefinitions; the job's log",
    uses=("model_files",),
)
def test_train_and_complete(h: Harness) -> None:
    name = "train-and-complete"
    spec = {"TrainingInputMode": "File", "MetricDefinitions": [LOSS]}
    h.create_script_job(name, TRAIN, AlgorithmSpecification=spec)
    job = h.wait_job(name)
    assert job.TrainingJobStatus == "Completed", f"{h.backend}: {job.FailureReason}"
    assert [t.Status for t in job.SecondaryStatusTransitions] == WALK, h.backend
    assert job.ModelArtifacts is not None, f"{h.backend}: no ModelArtifacts"
    assert job.ModelArtifacts.S3ModelArtifacts == artifact_of(name)
    metrics = [(m.MetricName, m.Value) for m in job.FinalMetricDataList]
    assert metrics == [("train:loss", 0.25)], f"{h.backend}: FinalMetricDataList {metrics}"
    assert "reading 3 rows" in h.client.training_job_logs(name).text, h.backend
    if h.checks("model_files"):
        assert h.model_files(artifact_of(name))["model.json"] == b'{"rows": 3}'


@scenario(
    "Fail with reason",
    "Failed, with the script's own failure file as FailureReason (AlgorithmError: ...)",
)
def test_fail_with_reason(h: Harness) -> None:
    name = "fail-with-reason"
    h.create_script_job(name, Script(failure="label column missing", exit_code=3))
    job = h.wait_job(name)
    assert job.TrainingJobStatus == "Failed", h.backend
    assert job.FailureReason == "AlgorithmError: label column missing", (
        f"{h.backend}: FailureReason {job.FailureReason!r}"
    )
    assert job.SecondaryStatus == "Failed"
    succeeded = {c.Type: c for c in job.Conditions}["Succeeded"]
    assert succeeded.Status == "False" and "label column missing" in succeeded.Message


STOPPABLE = Script(until_stopped=True, model_files=(("partial.txt", "saved"),))


@scenario(
    "Stop",
    "a running job stopped through the API: Stopping, then Stopped; what the script saved on "
    "SIGTERM is its artifact",
    uses=("saved_on_stop",),
)
def test_stop(h: Harness) -> None:
    name = "stop"
    h.create_script_job(name, STOPPABLE)
    h.wait_log(name, Script.READY)
    h.client.stop_training_job(name)
    job = h.wait_job(name)
    assert (job.TrainingJobStatus, job.SecondaryStatus) == ("Stopped", "Stopped"), (
        f"{h.backend}: {job.TrainingJobStatus}/{job.SecondaryStatus} {job.FailureReason}"
    )
    assert "Stopping" in [t.Status for t in job.SecondaryStatusTransitions], h.backend
    if h.checks("saved_on_stop"):
        assert h.saved_on_stop(name)["partial.txt"] == b"saved", h.backend


@scenario(
    "Max runtime",
    "a script that never ends is Stopped with MaxRuntimeExceeded after MaxRuntimeInSeconds, "
    "and the stop reason says so",
    waits=True,
)
def test_max_runtime(h: Harness) -> None:
    name = "max-runtime"
    h.create_script_job(
        name, Script(until_stopped=True), StoppingCondition={"MaxRuntimeInSeconds": 2}
    )
    job = h.wait_job(name)
    assert (job.TrainingJobStatus, job.SecondaryStatus) == ("Stopped", "MaxRuntimeExceeded"), (
        f"{h.backend}: {job.TrainingJobStatus}/{job.SecondaryStatus}"
    )
    assert "MaxRuntimeInSeconds=2" in (job.StopReason or ""), f"{h.backend}: {job.StopReason!r}"


@scenario(
    "Two instances",
    "InstanceCount 2: the job runs on hosts algo-1 and algo-2 and completes when both have",
    process=Refused("TrainingJob", "ResourceConfig.InstanceCount"),
)
def test_two_instances(h: Harness) -> None:
    name = "two-instances"
    script = Script(prints=("host={host}",), model_files=(("hosts.txt", "2"),))
    h.create_script_job(name, script, ResourceConfig={"InstanceType": "local", "InstanceCount": 2})
    job = h.wait_job(name, timeout=90)
    assert job.TrainingJobStatus == "Completed", f"{h.backend}: {job.FailureReason}"
    assert h.hosts_of(name) == ["algo-1", "algo-2"], h.backend


ISOLATION_PROBE = """
import socket
for host, port in [("1.1.1.1", 53), (os.environ["PROBE_HOST"], int(os.environ["PROBE_PORT"]))]:
    try:
        socket.create_connection((host, port), timeout=3).close()
        print("connected to %s:%d" % (host, port), flush=True)
    except OSError as e:
        print("blocked %s:%d: %s" % (host, port, e), flush=True)
"""


@scenario(
    "Network isolation",
    "EnableNetworkIsolation: the job completes and could reach nothing (the backend's own "
    "evidence: the container's probes, or the attempt's NetworkPolicy)",
    process=Refused("TrainingJob", "EnableNetworkIsolation"),
)
def test_network_isolation(h: Harness) -> None:
    name = "network-isolation"
    host, port = h.control_plane_address()
    h.create_script_job(
        name,
        Script(prints=("probing",), extra=ISOLATION_PROBE),
        EnableNetworkIsolation=True,
        Environment={"PROBE_HOST": host, "PROBE_PORT": str(port)},
    )
    job = h.wait_job(name)
    assert job.TrainingJobStatus == "Completed", f"{h.backend}: {job.FailureReason}"
    h.check_isolated(name)


FLAKY = Script(prints=("trying",), failure="flaky data source", exit_code=3)


@scenario(
    "Retry by exit code",
    "an exit code listed in RetryStrategy.RetryableExitCodes is retried after a backoff "
    "(Restarting, NextAttemptTime); every attempt is recorded with its reason and its own "
    "log; the FailureReason names the attempt that failed",
)
def test_retry_by_exit_code(h: Harness) -> None:
    name = "retry-exit-code"
    retry = {"MaximumRetryAttempts": 1, "RetryableExitCodes": ["3"]}
    h.create_script_job(name, FLAKY, RetryStrategy=retry)
    job = h.wait_job(name)
    assert job.TrainingJobStatus == "Failed", h.backend
    assert job.FailureReason == "attempt 2 of 2: AlgorithmError: flaky data source", (
        f"{h.backend}: FailureReason {job.FailureReason!r}"
    )
    attempts = [(a.AttemptNumber, a.Outcome, a.Retried, a.FailureReason) for a in job.Attempts]
    assert attempts == [
        (1, "Failed", True, "AlgorithmError: flaky data source"),
        (2, "Failed", False, "AlgorithmError: flaky data source"),
    ], f"{h.backend}: {attempts}"
    restarting = [t for t in job.SecondaryStatusTransitions if t.Status == "Restarting"]
    assert restarting, h.backend
    assert restarting[0].StatusMessage.startswith("Restarting in "), restarting[0].StatusMessage
    assert "exit code 3 is in RetryStrategy.RetryableExitCodes" in restarting[0].StatusMessage
    assert job.NextAttemptTime is None
    for n in (1, 2):
        assert "trying" in h.client.training_job_logs(name, attempt=n).text, (h.backend, n)

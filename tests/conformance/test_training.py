"""Training scenarios, written once, run on every backend (``declarations.scenario``)."""

from __future__ import annotations

import itertools
import json
from datetime import datetime

from orchestrator.resources.training import DescribeTrainingJobResponse
from tests.conformance.declarations import Refused, scenario
from tests.conformance.harness import FRAMEWORK_PROBE, Harness, Script

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


CHECKPOINTING = Script(
    until_stopped=True,
    extra=(
        "ckpt = os.environ['SM_CHECKPOINT_DIR']\n"
        "os.makedirs(ckpt, exist_ok=True)\n"
        "with open(os.path.join(ckpt, 'epoch-1.pt'), 'wb') as f:\n"
        "    f.write(b'epoch 1')\n"
    ),
)


@scenario(
    "Checkpoints while running",
    "a checkpoint written under CheckpointConfig.LocalPath (/opt/ml/state/ckpt) is in the store "
    "under S3Uri while the job still runs, not only at its end",
    uses=("checkpoint_object",),
)
def test_checkpoints_while_running(h: Harness) -> None:
    name = "checkpoints-while-running"
    uri = f"s3://orchestrator/{name}/checkpoints"
    h.create_script_job(
        name, CHECKPOINTING, CheckpointConfig={"S3Uri": uri, "LocalPath": "/opt/ml/state/ckpt"}
    )
    h.wait_log(name, Script.READY)
    if h.checks("checkpoint_object"):
        saved = h.wait(
            lambda: h.checkpoint_object(f"{uri}/epoch-1.pt"),
            "the checkpoint in the store while the job runs",
        )
        assert saved == b"epoch 1", h.backend
        assert h.job(name).TrainingJobStatus == "InProgress", h.backend
    h.client.stop_training_job(name)
    job = h.wait_job(name)
    assert job.TrainingJobStatus == "Stopped", f"{h.backend}: {job.FailureReason}"


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
)
def test_two_instances(h: Harness) -> None:
    name = "two-instances"
    script = Script(prints=("host={host}",), model_files=(("hosts.txt", "2"),))
    h.create_script_job(name, script, ResourceConfig={"InstanceType": "local", "InstanceCount": 2})
    job = h.wait_job(name, timeout=90)
    assert job.TrainingJobStatus == "Completed", f"{h.backend}: {job.FailureReason}"
    assert h.hosts_of(name) == ["algo-1", "algo-2"], h.backend


@scenario(
    "Distributed environment",
    "InstanceCount 2 with torch_distributed, then multi_worker_mirrored_strategy: each host "
    "gets MASTER_ADDR/MASTER_PORT (algo-1's), WORLD_SIZE 2, its RANK, or a TF_CONFIG naming "
    "both workers and its index",
)
def test_distributed_environment(h: Harness) -> None:
    script = Script(prints=("host={host}",), extra=FRAMEWORK_PROBE)
    for name, flag in (
        ("torch-env", "sagemaker_torch_distributed_enabled"),
        ("mwms-env", "sagemaker_multi_worker_mirrored_strategy_enabled"),
    ):
        h.create_script_job(
            name,
            script,
            ResourceConfig={"InstanceType": "local", "InstanceCount": 2},
            HyperParameters={**h.script_hyperparameters(name), flag: "true"},
        )
    for name in ("torch-env", "mwms-env"):
        job = h.wait_job(name, timeout=90)
        assert job.TrainingJobStatus == "Completed", f"{h.backend}: {job.FailureReason}"
    torch = h.framework_env("torch-env")
    assert sorted(torch) == ["algo-1", "algo-2"], f"{h.backend}: {torch}"
    one, two = torch["algo-1"], torch["algo-2"]
    for k, env in enumerate((one, two)):
        assert (env["WORLD_SIZE"], env["RANK"], env["NODE_RANK"]) == ("2", str(k), str(k)), env
        assert (env["LOCAL_RANK"], env["LOCAL_WORLD_SIZE"]) == ("0", "1"), env
        assert "TF_CONFIG" not in env, env
    assert (one["MASTER_ADDR"], one["MASTER_PORT"]) == (two["MASTER_ADDR"], two["MASTER_PORT"])
    assert one["MASTER_ADDR"] in ("127.0.0.1", "algo-1"), f"{h.backend}: {one}"
    tf = {host: json.loads(env["TF_CONFIG"]) for host, env in h.framework_env("mwms-env").items()}
    assert sorted(tf) == ["algo-1", "algo-2"], f"{h.backend}: {tf}"
    workers = tf["algo-1"]["cluster"]["worker"]
    assert len(set(workers)) == 2 and tf["algo-2"]["cluster"]["worker"] == workers, tf
    assert [tf[f"algo-{k}"]["task"] for k in (1, 2)] == [
        {"type": "worker", "index": 0},
        {"type": "worker", "index": 1},
    ], f"{h.backend}: {tf}"
    assert "MASTER_ADDR" not in h.framework_env("mwms-env")["algo-1"]


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


BUSY = Script(
    prints=("busy for 3 s",),
    extra=(
        "held = bytearray(100 << 20)\n"
        "for i in range(0, len(held), 4096):\n"
        "    held[i] = 1\n"
        "t = time.time()\n"
        "while time.time() - t < 3:\n"
        "    pass"
    ),
)


@scenario(
    "Resource usage",
    "a job running a few seconds has CPUUtilization and MemoryUtilization points for algo-1 "
    "(SageMaker's names and ranges), served beside its metrics",
    uses=("usage_series",),
)
def test_resource_usage(h: Harness) -> None:
    name = "resource-usage"
    h.create_script_job(name, BUSY)
    job = h.wait_job(name)
    assert job.TrainingJobStatus == "Completed", f"{h.backend}: {job.FailureReason}"
    if not h.checks("usage_series"):
        return
    usage = h.usage_series(name)
    cpu = usage.get(("CPUUtilization", "algo-1"), [])
    memory = usage.get(("MemoryUtilization", "algo-1"), [])
    assert cpu and memory, f"{h.backend}: usage series {sorted(usage)}"
    # Percent of one core summed over cores; one busy core on a shared machine.
    assert max(cpu) > 5.0 and all(0.0 <= v <= 100.0 * 64 for v in cpu), (h.backend, cpu)
    assert all(0.0 < v <= 100.0 for v in memory), (h.backend, memory)
    log = h.client.training_job_logs(name).text
    assert "busy for 3 s" in log and "orchestrator:usage" not in log, (h.backend, log)


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
    assert job.FailureReason == "AlgorithmError: attempt 2 of 2: flaky data source", (
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


SLOT_REASON = (
    "Waiting for a job slot: 1 of 1 in use (ORCH_CONTROLLER__MAX_CONCURRENT_TRAINING_JOBS)"
)
QUEUED = "Queued behind jobs ahead of it (see QueuePosition)"


def _began(job: DescribeTrainingJobResponse, status: str) -> datetime:
    found = [t.StartTime for t in job.SecondaryStatusTransitions if t.Status == status]
    assert len(found) == 1, f"{job.TrainingJobName}: {status} transitions {found}"
    return found[0]


@scenario(
    "Queue",
    "with 1 job slot, jobs beyond it wait as Pending with the reason and a QueuePosition; then "
    "every one runs to completion, one at a time, a higher Priority submitted later first",
)
def test_queue(h: Harness) -> None:
    with h.job_slots(1):
        h.create_script_job("queue-holder", Script(until_stopped=True))
        h.wait_log("queue-holder", Script.READY)
        quick = Script(prints=("ran",))
        for name, priority in (("queue-low-a", None), ("queue-low-b", None), ("queue-high", 10)):
            h.create_script_job(name, quick, **({"Priority": priority} if priority else {}))
        expected = {
            "queue-high": (1, SLOT_REASON),
            "queue-low-a": (2, QUEUED),
            "queue-low-b": (3, QUEUED),
        }

        seen: dict[str, object] = {}

        def queued() -> bool:
            for name in expected:
                job = h.job(name)
                transitions = job.SecondaryStatusTransitions
                reason = transitions[-1].StatusMessage if transitions else None
                seen[name] = (job.SecondaryStatus, job.QueuePosition, reason)
            return seen == {n: ("Pending", *want) for n, want in expected.items()}

        try:
            h.wait(queued, "the three jobs queued behind the one slot, in priority order")
        except AssertionError as e:
            raise AssertionError(f"{e}; (status, QueuePosition, reason) last seen: {seen}") from e
        assert h.job("queue-holder").TrainingJobStatus == "InProgress", h.backend
        h.client.stop_training_job("queue-holder")
        holder = h.wait_job("queue-holder")
        assert holder.TrainingJobStatus == "Stopped", h.backend
        order = ("queue-holder", "queue-high", "queue-low-a", "queue-low-b")
        jobs = {name: h.wait_job(name, timeout=90) for name in order[1:]}
        jobs["queue-holder"] = holder
    for name in order[1:]:
        job = jobs[name]
        assert job.TrainingJobStatus == "Completed", f"{h.backend}: {name}: {job.FailureReason}"
        assert job.QueuePosition is None and job.Attempt == 1, (h.backend, name)
        assert "ran" in h.client.training_job_logs(name).text, (h.backend, name)
    # One at a time, in priority order: each started once the one before it had ended.
    for before, after in itertools.pairwise(order):
        ended = jobs[before].SecondaryStatusTransitions[-1].StartTime
        assert _began(jobs[after], "Starting") >= ended, (
            f"{h.backend}: {after} started before {before} ended"
        )


SPOT = Script(prints=("epoch 1",), resumes=True, model_files=(("model.txt", "trained"),))


@scenario(
    "Managed spot",
    "a spot job (EnableManagedSpotTraining, MaxWaitTimeInSeconds, CheckpointConfig) preempted "
    "through the API: SIGTERM, Interrupted then Pending, relaunched; the new attempt resumes "
    "from its checkpoint and completes; PreemptionCount 1, attempts Preempted and Completed, "
    "BillableTimeInSeconds the attempts' run time, the retries left untouched",
    uses=("resumed_from_checkpoint",),
)
def test_managed_spot(h: Harness) -> None:
    name = "managed-spot"
    h.create_script_job(
        name,
        SPOT,
        EnableManagedSpotTraining=True,
        StoppingCondition={"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 1200},
        CheckpointConfig={"S3Uri": f"s3://orchestrator/{name}/checkpoints"},
    )
    h.wait_log(name, Script.READY)
    if h.checks("resumed_from_checkpoint"):  # the checkpoint is uploaded before the preemption
        h.wait(
            lambda: h.checkpoint_object(f"s3://orchestrator/{name}/checkpoints/epoch-1"),
            "the checkpoint in the store",
        )
    h.client.preempt_training_job(name)
    job = h.wait_job(name)
    assert job.TrainingJobStatus == "Completed", f"{h.backend}: {job.FailureReason}"
    assert job.PreemptionCount == 1, h.backend
    attempts = [(a.AttemptNumber, a.Outcome) for a in job.Attempts]
    assert attempts == [(1, "Preempted"), (2, "Completed")], f"{h.backend}: {attempts}"
    statuses = [t.Status.value for t in job.SecondaryStatusTransitions]
    i = statuses.index("Interrupted")
    assert statuses[i + 1] == "Pending" and statuses[-1] == "Completed", (h.backend, statuses)
    # No RetryStrategy, yet it relaunched: a preemption is not a retry.
    assert job.FailureReason is None and job.RetryStrategy is None, h.backend
    ran = sum(
        (a.EndTime - a.StartTime).total_seconds()
        for a in job.Attempts
        if a.StartTime is not None and a.EndTime is not None
    )
    assert job.BillableTimeInSeconds == int(ran), (h.backend, job.BillableTimeInSeconds, ran)
    assert job.TrainingTimeInSeconds is not None
    assert job.BillableTimeInSeconds <= job.TrainingTimeInSeconds, h.backend
    if h.checks("resumed_from_checkpoint"):
        assert h.resumed_from_checkpoint(name, 2), h.backend
        assert not h.resumed_from_checkpoint(name, 1), h.backend


LATE_SPOT = Script(resumes=True, saves_on_sigterm=True, model_files=(("model.txt", "trained"),))


@scenario(
    "Managed spot, killed after the grace",
    "a preempted spot job that writes its checkpoint on SIGTERM and does not exit is killed "
    "after the stop grace; the attempt is Preempted all the same, and the next one resumes "
    "from the checkpoint written during the grace",
    uses=("resumed_from_checkpoint",),
)
def test_managed_spot_killed_after_the_grace(h: Harness) -> None:
    name = "managed-spot-killed"
    h.create_script_job(
        name,
        LATE_SPOT,
        EnableManagedSpotTraining=True,
        StoppingCondition={"MaxRuntimeInSeconds": 600, "MaxWaitTimeInSeconds": 1200},
        CheckpointConfig={"S3Uri": f"s3://orchestrator/{name}/checkpoints"},
    )
    h.wait_log(name, Script.READY)
    h.client.preempt_training_job(name)
    job = h.wait_job(name)
    assert job.TrainingJobStatus == "Completed", f"{h.backend}: {job.FailureReason}"
    attempts = [(a.AttemptNumber, a.Outcome) for a in job.Attempts]
    assert attempts == [(1, "Preempted"), (2, "Completed")], f"{h.backend}: {attempts}"
    if h.checks("resumed_from_checkpoint"):
        assert "checkpoint written" in h.client.training_job_logs(name, attempt=1).text
        assert h.resumed_from_checkpoint(name, 2), h.backend

"""TransformJob custom resources -> a batch/v1 Job per instance attempt, and status from what
the pods say and what the runners recorded in the object store's scratch space.

The operator runs against kmock's API emulator through the real client; the tests play the
Job controller and kubelet (the model server is a native sidecar: an init container that runs
beside the runner, stopped by the kubelet once the runner ends) and the runners (their
records written with ``transformer.scratch`` into the file store the operator reads).
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from kube_harness import NS, Cluster, Emulator, stamp
from kubernetes import client

from orchestrator.controller.plan.types import TransformLaunch
from orchestrator.errors import ValidationError
from orchestrator.kube.backend import KubernetesBackend
from orchestrator.kube.convert import to_pascal
from orchestrator.kube.operator import Operator, operator_store
from orchestrator.kube.transforms import STEP_ENV, TransformStepConfig
from orchestrator.objects import LocalKeyring, ObjectStore, open_object_store
from orchestrator.resources.failures import FailureReason, client_error
from orchestrator.resources.models import CreateModelRequest
from orchestrator.resources.transform import CreateTransformJobRequest
from orchestrator.settings import KubeSettings, Settings
from orchestrator.testing import FakeClock
from orchestrator.transform.workplan import InputObject, WorkPlan, WorkRange
from orchestrator.transformer.scratch import InstanceProgress, InstanceResult, TransformScratch

MODEL = {
    "primaryContainer": {
        "image": "registry.example/churn-serve:1",
        "modelDataUrl": "s3://ml-bucket/models/churn/model.tar.gz",
    }
}


def spec(instances: int = 2, **over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "modelName": "churn",
        "batchStrategy": "MultiRecord",
        "transformInput": {
            "dataSource": {"s3DataSource": {"s3Uri": "s3://ml-bucket/in/"}},
            "contentType": "text/csv",
            "splitType": "Line",
        },
        "transformOutput": {"s3OutputPath": "s3://ml-bucket/out/", "assembleWith": "Line"},
        "transformResources": {"instanceType": "ml.m5.large", "instanceCount": instances},
    }
    doc.update(over)
    return doc


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    return open_object_store(
        (tmp_path / "store").as_uri(), LocalKeyring(tmp_path / "keys" / "keyring.json")
    )


@pytest.fixture
def op(api: client.ApiClient, settings: KubeSettings, store: ObjectStore) -> Operator:
    """The operator with the object store its pods write (as ``operator_store`` opens it)."""
    return Operator(api, settings, store=store)


# --- the cluster's part ----------------------------------------------------------------------
def job_of(cluster: Cluster, name: str) -> dict[str, Any]:
    [job] = [j for j in cluster.items("Job") if j["metadata"]["name"] == name]
    return job


def kubelet(cluster: Cluster, job: str, stage: str, code: int = 0, message: str = "") -> str:
    """Job ``job``'s pod at ``stage``: ``starting`` (the model step done, the sidecar not
    answering yet), ``running`` (the sidecar ready, the runner running) or ``exited`` (the
    runner ended with ``code``; the kubelet then stopped the sidecar). Its name."""
    pod = f"{job}-pod"
    model = {"name": "model", "state": {"terminated": {"exitCode": 0, "startedAt": stamp(-9)}}}
    serve: dict[str, Any] = {"name": "serve", "state": {"running": {"startedAt": stamp(-8)}}}
    status: dict[str, Any] = {"phase": "Pending", "initContainerStatuses": [model, serve]}
    if stage in ("running", "exited"):
        serve.update(ready=True, started=True)
        runner = {"name": "runner", "state": {"running": {"startedAt": stamp(-7)}}}
        status.update(phase="Running", containerStatuses=[runner])
    if stage == "exited":
        runner["state"] = {
            "terminated": {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "message": message,
                "startedAt": stamp(-7),
                "finishedAt": stamp(-1),
            }
        }
        serve["state"] = {"terminated": {"exitCode": 0, "startedAt": stamp(-8)}}
        status["phase"] = "Succeeded" if code == 0 else "Failed"
    cluster.pod(job_of(cluster, job), pod, status)
    return pod


def job_ended(cluster: Cluster, job: str, *, ok: bool) -> None:
    """The Job controller's answer to its pod's end (``backoffLimit: 0``: one failure ends it)."""
    kind, reason = ("Complete", "Completed") if ok else ("Failed", "BackoffLimitExceeded")
    cluster.job_status(
        job,
        {
            "active": 0,
            "succeeded" if ok else "failed": 1,
            "conditions": [
                {"type": kind, "status": "True", "reason": reason, "lastTransitionTime": stamp()}
            ],
        },
    )


def pod_deleted(cluster: Cluster, pod: str) -> None:
    cluster.core.delete_namespaced_pod(pod, NS)


# --- the runners' part -----------------------------------------------------------------------
PLAN = WorkPlan(
    Inputs=[
        InputObject(Key="a.csv", Uri="s3://ml-bucket/in/a.csv", Size=600),
        InputObject(Key="b.csv", Uri="s3://ml-bucket/in/b.csv", Size=400),
    ],
    Ranges=[
        WorkRange(File=0, Index=0, Start=0, End=600, Instance=0),
        WorkRange(File=1, Index=0, Start=0, End=400, Instance=1),
    ],
    InstanceCount=2,
    RangeBytes=1 << 20,
)


def progress(scratch: TransformScratch, instance: int, attempt: int, records: int) -> None:
    now = datetime.now(UTC)
    scratch.write_progress(
        InstanceProgress(
            Instance=instance,
            Attempt=attempt,
            UpdatedAt=now,
            StartedAt=now,
            InProgress=[
                {"File": instance, "Range": 0, "BytesProcessed": 100, "RecordsProcessed": records}
            ],
            Requests=4,
            ModelSeconds=0.2,
            RecordsPerSecond=50.0,
        )
    )


def finished(scratch: TransformScratch, instance: int, attempt: int, records: int) -> None:
    size = PLAN.Inputs[instance].Size
    scratch.write_part(instance, 0, b"1\n" * records, records=records, size=size)
    scratch.mark_assembled(instance)
    scratch.write_result(InstanceResult(Instance=instance, Attempt=attempt, Outcome="completed"))


def instances(cluster: Cluster) -> list[tuple[int, int, str]]:
    status = cluster.status("TransformJob", "scores")
    return [(i["instance"], i["attempt"], i["status"]) for i in status["instances"]]


# --- the tests -------------------------------------------------------------------------------
def test_instances_run_as_jobs_and_the_job_completes_with_their_progress(
    cluster: Cluster, op: Operator, store: ObjectStore
) -> None:
    cluster.create("Model", "churn", MODEL)
    cr = cluster.create("TransformJob", "scores", spec())
    op.run_once()

    assert cluster.names("Job") == ["scores-0-1", "scores-1-1"]
    job = job_of(cluster, "scores-1-1")
    assert job["metadata"]["ownerReferences"][0]["kind"] == "TransformJob"
    assert job["metadata"]["ownerReferences"][0]["uid"] == cr["metadata"]["uid"]
    pod = job["spec"]["template"]["spec"]
    [serve] = [c for c in pod["initContainers"] if c["name"] == "serve"]
    assert (serve["image"], serve["restartPolicy"]) == ("registry.example/churn-serve:1", "Always")
    runner = pod["containers"][0]
    cfg = TransformStepConfig.model_validate_json(
        next(e["value"] for e in runner["env"] if e["name"] == STEP_ENV)
    )
    assert (cfg.instance["Instance"], cfg.instance["Attempt"]) == (1, 1)
    assert cluster.status("TransformJob", "scores")["transformJobStatus"] == "InProgress"
    assert cluster.get("TransformJob", "scores")["metadata"]["finalizers"] == [
        "orchestrator.dev/cleanup"
    ]

    for name in ("scores-0-1", "scores-1-1"):
        cluster.job_status(name, {"startTime": stamp(-10), "active": 1})
        kubelet(cluster, name, "starting")
    op.run_once()
    assert instances(cluster) == [(0, 1, "Starting"), (1, 1, "Starting")]

    scratch = TransformScratch(store, "scores")
    scratch.write_plan(PLAN)
    for i, name in enumerate(("scores-0-1", "scores-1-1")):
        kubelet(cluster, name, "running")
        progress(scratch, i, 1, records=10 + i)
    op.run_once()
    status = cluster.status("TransformJob", "scores")
    assert instances(cluster) == [(0, 1, "Running"), (1, 1, "Running")]
    assert status["progress"]["filesTotal"] == 2
    assert status["progress"]["recordsProcessed"] == 21
    assert status["progress"]["bytesTotal"] == 1000

    finished(scratch, 0, 1, records=30)
    kubelet(cluster, "scores-0-1", "exited")
    job_ended(cluster, "scores-0-1", ok=True)
    op.run_once()
    assert instances(cluster) == [(0, 1, "Completed"), (1, 1, "Running")]
    assert cluster.status("TransformJob", "scores")["transformJobStatus"] == "InProgress"

    finished(scratch, 1, 1, records=20)
    kubelet(cluster, "scores-1-1", "exited")
    job_ended(cluster, "scores-1-1", ok=True)
    op.run_once()
    status = cluster.status("TransformJob", "scores")
    assert status["transformJobStatus"] == "Completed"
    assert status["progress"]["recordsProcessed"] == 50
    assert status["progress"]["filesCompleted"] == 2
    # The scratch records go; the ended Jobs (and their pods' logs) stay with the resource.
    assert store.scratch("transform").list("s3://jobs/scores/") == []
    assert cluster.names("Job") == ["scores-0-1", "scores-1-1"]

    cluster.delete("TransformJob", "scores")  # held by the finalizer until cleaned up
    for _ in range(2):
        op.run_once()
    assert cluster.get("TransformJob", "scores") is None
    assert cluster.items("Job") == []


def test_a_killed_pod_is_relaunched_as_the_next_attempt(
    cluster: Cluster, op: Operator, store: ObjectStore, emulator: Emulator
) -> None:
    cluster.create("Model", "churn", MODEL)
    cluster.create("TransformJob", "scores", spec())
    op.run_once()
    scratch = TransformScratch(store, "scores")
    scratch.write_plan(PLAN)
    pods = {}
    for i, name in enumerate(("scores-0-1", "scores-1-1")):
        cluster.job_status(name, {"startTime": stamp(-10), "active": 1})
        pods[name] = kubelet(cluster, name, "running")
        progress(scratch, i, 1, records=5)
    op.run_once()

    # The node of instance 0 is lost: its pod is gone, the Job controller fails its Job.
    pod_deleted(cluster, pods["scores-0-1"])
    op.run_once()  # seen before the Job controller says so: the pod is gone
    assert cluster.names("Job") == ["scores-0-1", "scores-0-2", "scores-1-1"]
    job_ended(cluster, "scores-0-1", ok=False)
    op.run_once()
    assert cluster.names("Job") == ["scores-0-1", "scores-0-2", "scores-1-1"]  # no attempt 3
    assert instances(cluster)[0][:2] == (0, 2)
    second = job_of(cluster, "scores-0-2")
    assert second["metadata"]["labels"]["orchestrator.dev/attempt"] == "2"

    cluster.job_status("scores-0-2", {"startTime": stamp(), "active": 1})
    kubelet(cluster, "scores-0-2", "running")
    op.run_once()
    assert instances(cluster) == [(0, 2, "Running"), (1, 1, "Running")]

    for i, job in ((0, "scores-0-2"), (1, "scores-1-1")):
        finished(scratch, i, 2 if i == 0 else 1, records=7)
        kubelet(cluster, job, "exited")
        job_ended(cluster, job, ok=True)
    op.run_once()
    assert cluster.status("TransformJob", "scores")["transformJobStatus"] == "Completed"
    assert [c for c in emulator.km.created if c[0] == "jobs"] == [
        ("jobs", "scores-0-1"),
        ("jobs", "scores-1-1"),
        ("jobs", "scores-0-2"),
    ]


def test_a_failed_instance_fails_the_job_and_stops_the_others(
    cluster: Cluster, op: Operator, store: ObjectStore
) -> None:
    cluster.create("Model", "churn", MODEL)
    cluster.create("TransformJob", "scores", spec())
    op.run_once()
    pods = {}
    for name in ("scores-0-1", "scores-1-1"):
        cluster.job_status(name, {"startTime": stamp(-10), "active": 1})
        pods[name] = kubelet(cluster, name, "running")
    op.run_once()

    why = client_error("b.csv record 3: the model answered 400: expected 4 features, got 3")
    TransformScratch(store, "scores").write_result(
        InstanceResult(Instance=1, Attempt=1, Outcome="failed", Failure=why, File=1)
    )
    kubelet(cluster, "scores-1-1", "exited", code=1, message=why.encode())
    job_ended(cluster, "scores-1-1", ok=False)
    op.run_once()
    status = cluster.status("TransformJob", "scores")
    assert status["transformJobStatus"] == "Failed"
    assert status["failureReason"] == why.render()
    # The other instance is stopped: its Job suspended (its pod gets SIGTERM).
    assert job_of(cluster, "scores-0-1")["spec"]["suspend"] is True
    assert job_of(cluster, "scores-1-1")["spec"].get("suspend") is not True

    pod_deleted(cluster, pods["scores-0-1"])  # the Job controller's part of a suspension
    cluster.job_status("scores-0-1", {"active": 0})
    op.run_once()
    assert cluster.status("TransformJob", "scores")["transformJobStatus"] == "Failed"
    assert instances(cluster) == [(0, 1, "Stopped"), (1, 1, "Failed")]
    assert store.scratch("transform").list("s3://jobs/scores/") == []
    # Over: the job is not reconciled again (its instances' Jobs stay, with their logs).
    assert not op.source.get("TransformJob", "scores").active


def test_without_the_store_the_runners_termination_message_says_why(
    cluster: Cluster, operator: Operator
) -> None:
    cluster.create("Model", "churn", MODEL)
    cluster.create("TransformJob", "scores", spec(instances=1))
    operator.run_once()
    cluster.job_status("scores-0-1", {"startTime": stamp(-10), "active": 1})
    why = FailureReason(kind="ClientError", message="a.csv record 9: OutputFilter selects nothing")
    kubelet(cluster, "scores-0-1", "exited", code=1, message=why.encode())
    job_ended(cluster, "scores-0-1", ok=False)
    operator.run_once()
    status = cluster.status("TransformJob", "scores")
    assert (status["transformJobStatus"], status["failureReason"]) == ("Failed", why.render())
    assert "progress" not in status or status["progress"].get("filesTotal", 0) == 0


def test_a_stop_suspends_every_instance_then_the_job_is_stopped(
    cluster: Cluster, op: Operator
) -> None:
    cluster.create("Model", "churn", MODEL)
    cluster.create("TransformJob", "scores", spec())
    op.run_once()
    pods = {}
    for name in ("scores-0-1", "scores-1-1"):
        cluster.job_status(name, {"startTime": stamp(-10), "active": 1})
        pods[name] = kubelet(cluster, name, "running")
    op.run_once()

    cluster.annotate("TransformJob", "scores", {"orchestrator.dev/stop": "true"})
    op.run_once()
    assert cluster.status("TransformJob", "scores")["transformJobStatus"] == "Stopping"
    assert [job_of(cluster, n)["spec"]["suspend"] for n in pods] == [True, True]

    # SIGTERM: one runner ends of it, the other's pod is deleted by the Job controller.
    kubelet(cluster, "scores-0-1", "exited", code=143)
    pod_deleted(cluster, pods["scores-1-1"])
    for name in pods:
        cluster.job_status(name, {"active": 0})
    op.run_once()
    status = cluster.status("TransformJob", "scores")
    assert status["transformJobStatus"] == "Stopped"
    assert instances(cluster) == [(0, 1, "Stopped"), (1, 1, "Stopped")]
    assert cluster.names("Job") == ["scores-0-1", "scores-1-1"]  # no relaunch


def test_a_pipeline_model_is_refused_naming_the_field(cluster: Cluster, op: Operator) -> None:
    containers = [{"image": "registry.example/pre:1"}, {"image": "registry.example/serve:1"}]
    cluster.create("Model", "churn", {"containers": containers})
    cluster.create("TransformJob", "scores", spec(instances=1))
    for _ in range(2):
        op.run_once()
    status = cluster.status("TransformJob", "scores")
    assert status["transformJobStatus"] == "Failed"
    assert "spec.containers" in status["failureReason"]
    assert "inference pipeline" in status["failureReason"]
    assert cluster.items("Job") == []


def test_a_job_of_the_same_name_that_is_not_ours_is_a_conflict(
    cluster: Cluster, op: Operator
) -> None:
    foreign = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "scores-0-1", "namespace": NS, "labels": {"app": "someone-else"}},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": []}}},
    }
    cluster.batch.create_namespaced_job(NS, foreign)
    cluster.create("Model", "churn", MODEL)
    cluster.create("TransformJob", "scores", spec(instances=1))
    op.run_once()
    status = cluster.status("TransformJob", "scores")
    assert status["transformJobStatus"] == "Failed"
    assert "Job scores-0-1 already exists" in status["failureReason"]
    assert job_of(cluster, "scores-0-1")["metadata"]["labels"] == {"app": "someone-else"}


def test_a_restarted_operator_adopts_the_instances(
    cluster: Cluster,
    api: client.ApiClient,
    settings: KubeSettings,
    store: ObjectStore,
    emulator: Emulator,
) -> None:
    cluster.create("Model", "churn", MODEL)
    cluster.create("TransformJob", "scores", spec())
    Operator(api, settings, store=store).run_once()
    for name in ("scores-0-1", "scores-1-1"):
        cluster.job_status(name, {"startTime": stamp(-10), "active": 1})
        kubelet(cluster, name, "running")
    again = Operator(api, settings, store=store)  # a new process: nothing in memory
    for _ in range(3):
        again.run_once()
    assert instances(cluster) == [(0, 1, "Running"), (1, 1, "Running")]
    assert sorted(n for p, n in emulator.km.created if p == "jobs") == ["scores-0-1", "scores-1-1"]


def test_the_logs_are_every_pods_containers_merged_in_time_order(
    cluster: Cluster, op: Operator, emulator: Emulator
) -> None:
    cluster.create("Model", "churn", MODEL)
    cluster.create("TransformJob", "scores", spec())
    op.run_once()
    p0 = kubelet(cluster, "scores-0-1", "running")
    p1 = kubelet(cluster, "scores-1-1", "running")
    logs = emulator.km.logs
    logs[(p0, "model")] = "2024-05-01T12:00:01Z fetched model.tar.gz\n"
    logs[(p0, "serve")] = "2024-05-01T12:00:02.5Z listening on 8080\n"
    logs[(p0, "runner")] = "2024-05-01T12:00:03Z scoring a.csv\n2024-05-01T12:00:06Z done\n"
    logs[(p1, "runner")] = "2024-05-01T12:00:04Z scoring b.csv\n"
    # p1's model server has not started: no log (the kubelet answers 400), nothing from it.
    data, offset = op.backend.read_transform_logs("scores", 0, 1 << 20)
    assert data.decode().splitlines() == [
        "[algo-1] fetched model.tar.gz",
        "[algo-1] listening on 8080",
        "[algo-1] scoring a.csv",
        "[algo-2] scoring b.csv",
        "[algo-1] done",
    ]
    assert offset == len(data)
    rest, end = op.backend.read_transform_logs("scores", 20, 1 << 20)
    assert rest == data[20:] and end == len(data)
    assert op.backend.read_transform_logs("nothing", 0, 100) == (b"", 0)


def test_the_backend_refuses_a_model_it_cannot_serve_before_creating_anything(
    cluster: Cluster, api: client.ApiClient, settings: KubeSettings
) -> None:
    pipeline = CreateModelRequest(
        ModelName="churn",
        Containers=[{"Image": "registry.example/pre:1"}, {"Image": "registry.example/serve:1"}],
    )
    doc = {"TransformJobName": "scores", **to_pascal(spec())}
    launch = TransformLaunch(
        name="scores",
        instance=0,
        attempt=1,
        spec=CreateTransformJobRequest.model_validate(doc),
        model_name="churn",
        model=pipeline,
    )
    with pytest.raises(ValidationError) as e:
        KubernetesBackend(api, settings).launch_transform_instance(launch)
    assert e.value.field == "ModelName"
    assert e.value.message.startswith("Model churn: Containers: a variant serves one container")
    assert cluster.items("Job") == []


def test_the_operator_reads_the_store_with_the_installations_keyring(
    tmp_path: Path, settings: KubeSettings, caplog: pytest.LogCaptureFixture
) -> None:
    kube = settings.model_copy(update={"object_store_url": (tmp_path / "objects").as_uri()})
    install = Settings(home=tmp_path / "home", config_dir=tmp_path / "config", kube=kube)
    assert operator_store(install, kube) is None  # no keyring: a new one would read nothing
    assert "no keyring at" in caplog.text
    assert not install.keyring_path.exists()  # and none was made
    LocalKeyring(install.keyring_path).active_key_id  # noqa: B018 - creates the keyring
    opened = operator_store(install, kube)
    assert opened is not None
    opened.create_bucket("sealed-bucket")
    opened.put_bytes("s3://sealed-bucket/x", b"sealed")
    again = open_object_store(kube.object_store_url, LocalKeyring(install.keyring_path))
    assert again.get_bytes("s3://sealed-bucket/x") == b"sealed"


def test_an_attempt_stuck_before_its_runner_is_replaced_and_stopped(
    cluster: Cluster, op: Operator
) -> None:
    cluster.create("Model", "churn", MODEL)
    cluster.create("TransformJob", "scores", spec(instances=1))
    op.run_once()
    cluster.job_status("scores-0-1", {"startTime": stamp(-10), "active": 1})
    model = {"name": "model", "state": {"terminated": {"exitCode": 0, "startedAt": stamp(-9)}}}
    stuck = {"waiting": {"reason": "ImagePullBackOff", "message": "manifest unknown"}}
    status = {
        "phase": "Pending",
        "initContainerStatuses": [model, {"name": "serve", "state": stuck}],
    }
    cluster.pod(job_of(cluster, "scores-0-1"), "scores-0-1-pod", status)
    op.run_once()
    # Given up: the next attempt, and the stuck one stopped (one attempt of an instance runs).
    assert cluster.names("Job") == ["scores-0-1", "scores-0-2"]
    assert job_of(cluster, "scores-0-1")["spec"]["suspend"] is True
    assert job_of(cluster, "scores-0-2")["spec"].get("suspend") is not True
    assert instances(cluster) == [(0, 2, "Starting")]


def test_a_model_artifact_the_model_step_refused_fails_the_job_at_once(
    cluster: Cluster, op: Operator
) -> None:
    cluster.create("Model", "churn", MODEL)
    cluster.create("TransformJob", "scores", spec(instances=1))
    op.run_once()
    said = "ClientError: ModelDataUrl s3://ml-bucket/models/churn/model.tar.gz: no such object"
    model = {
        "name": "model",
        "state": {"terminated": {"exitCode": 2, "message": said, "finishedAt": stamp()}},
    }
    cluster.pod(
        job_of(cluster, "scores-0-1"),
        "scores-0-1-pod",
        {"phase": "Failed", "initContainerStatuses": [model]},
    )
    job_ended(cluster, "scores-0-1", ok=False)
    op.run_once()
    status = cluster.status("TransformJob", "scores")
    assert status["transformJobStatus"] == "Failed"
    assert status["failureReason"] == (
        "ClientError: the Model's artifact cannot be used: ModelDataUrl "
        "s3://ml-bucket/models/churn/model.tar.gz: no such object"
    )
    assert cluster.names("Job") == ["scores-0-1"]  # not launched again


def test_runners_still_going_after_the_grace_are_killed(
    cluster: Cluster, api: client.ApiClient, settings: KubeSettings, store: ObjectStore
) -> None:
    clock = FakeClock(datetime.now(UTC))
    op = Operator(api, settings, store=store, clock=clock)
    cluster.create("Model", "churn", MODEL)
    cluster.create("TransformJob", "scores", spec())
    op.run_once()
    for name in ("scores-0-1", "scores-1-1"):
        cluster.job_status(name, {"startTime": stamp(-10), "active": 1})
        kubelet(cluster, name, "running")
    op.run_once()
    cluster.annotate("TransformJob", "scores", {"orchestrator.dev/stop": "true"})
    op.run_once()
    assert cluster.names("Pod") == ["scores-0-1-pod", "scores-1-1-pod"]  # SIGTERM, the grace
    kubelet(cluster, "scores-1-1", "exited", code=143)  # one ends of it; the other does not
    op.run_once()
    assert cluster.names("Pod") == ["scores-0-1-pod", "scores-1-1-pod"]
    clock.advance(op.policies.training.stop_grace_seconds + 1)
    op.run_once()
    assert cluster.names("Pod") == ["scores-1-1-pod"]  # killed: deleted with no grace
    cluster.job_status("scores-0-1", {"active": 0})
    op.run_once()
    assert cluster.status("TransformJob", "scores")["transformJobStatus"] == "Stopped"

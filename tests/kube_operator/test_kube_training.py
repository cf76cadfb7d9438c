"""TrainingJob custom resources -> batch/v1 Jobs, and status written back from Job/Pod state.

The operator runs against kmock's API emulator over HTTP through the real kubernetes client;
the tests play the Job controller and kubelet by creating pods and patching status.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from kube_harness import NS, Cluster, algo_exited, complete, running, stamp, trained
from kubernetes import client

from orchestrator.kube.objects import KubeSettings
from orchestrator.kube.operator import Operator

SPEC: dict[str, Any] = {
    "algorithmSpecification": {"trainingImage": "registry.example/algo:1"},
    "resourceConfig": {"instanceType": "ml.p3.2xlarge", "volumeSizeInGB": 50},
    "inputDataConfig": [
        {
            "channelName": "train",
            "dataSource": {"s3DataSource": {"s3Uri": "s3://ml-bucket/data/train"}},
        }
    ],
    "outputDataConfig": {"s3OutputPath": "s3://ml-bucket/out"},
    "stoppingCondition": {"maxRuntimeInSeconds": 3600},
    "retryStrategy": {"maximumRetryAttempts": 2},
    "hyperParameters": {"epochs": "3"},
}


def test_the_job_manifest(cluster: Cluster, operator: Operator, settings: KubeSettings) -> None:
    cr = cluster.create("TrainingJob", "resnet", SPEC)
    operator.run_once()

    job = cluster.one("Job")
    meta, spec = job["metadata"], job["spec"]
    assert meta["name"] == "resnet-1"
    assert meta["labels"]["orchestrator.dev/training-job"] == "resnet"
    assert meta["labels"]["orchestrator.dev/attempt"] == "1"
    assert meta["ownerReferences"] == [
        {
            "apiVersion": "orchestrator.dev/v1alpha1",
            "kind": "TrainingJob",
            "name": "resnet",
            "uid": cr["metadata"]["uid"],
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    # No pod is retried inside the Job: RetryStrategy retries whole attempts (new Jobs).
    assert spec["backoffLimit"] == 0
    assert "completionMode" not in spec  # one host: a plain Job
    assert spec["activeDeadlineSeconds"] == 3600
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0] == {
        "action": "Ignore",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }
    assert rules[1]["action"] == "FailJob"
    assert rules[1]["onExitCodes"] == {"containerName": "algo", "operator": "NotIn", "values": [0]}

    pod = spec["template"]["spec"]
    assert spec["template"]["metadata"]["labels"]["orchestrator.dev/training-job"] == "resnet"
    assert pod["restartPolicy"] == "Never"
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert pod["runtimeClassName"] == "nvidia"
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    containers = {c["name"]: c for c in pod["initContainers"] + pod["containers"]}
    assert list(containers) == ["download", "algo", "upload"]
    for c in containers.values():
        sc = c["securityContext"]
        assert sc["allowPrivilegeEscalation"] is False
        assert sc["capabilities"] == {"drop": ["ALL"]}
        assert {"name": "ml", "mountPath": "/opt/ml"} in c["volumeMounts"]

    algo = containers["algo"]
    assert algo["image"] == "registry.example/algo:1"
    assert algo["args"] == ["train"]
    assert algo["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert algo["resources"]["requests"]["cpu"] == "8"
    assert algo["terminationMessagePath"] == "/opt/ml/output/failure"
    env = {e["name"]: e["value"] for e in algo["env"]}
    assert env["SM_NUM_GPUS"] == "1"
    assert env["SM_CHANNEL_TRAIN"] == "/opt/ml/input/data/train"
    assert env["SM_CURRENT_HOST"] == "algo-1"
    # The user's container never sees a secret: no envFrom, no keyring, no API token.
    assert "envFrom" not in algo
    assert [m["name"] for m in algo["volumeMounts"]] == ["ml", "hosts"]
    assert algo["volumeMounts"][1] == {
        "name": "hosts",
        "mountPath": "/etc/hosts",
        "subPath": "hosts",
        "readOnly": True,
    }
    assert not any("valueFrom" in e for e in algo["env"])

    download, upload = containers["download"], containers["upload"]
    assert download["image"] == settings.training_image
    assert download["command"][-2:] == ["orchestrator.kube.steps", "download"]
    assert download["envFrom"] == [
        {"secretRef": {"name": "orchestrator-object-store", "optional": True}}
    ]
    assert "keyring" in [m["name"] for m in download["volumeMounts"]]
    assert "kube-api" in [m["name"] for m in upload["volumeMounts"]]
    assert "$(POD_NAME)" in upload["args"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["ml"] == {"name": "ml", "emptyDir": {"sizeLimit": "50Gi"}}
    assert volumes["step"]["configMap"]["name"] == "resnet-1"
    config_map = cluster.one("ConfigMap")
    assert config_map["metadata"]["name"] == "resnet-1"
    assert "s3://ml-bucket/out/resnet/output/model.tar.gz" in config_map["data"]["job.json"]

    status = cluster.status("TrainingJob", "resnet")
    assert status["trainingJobStatus"] == "InProgress"
    assert status["secondaryStatus"] == "Starting"
    assert status["attempt"] == 1
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Valid"]["status"] == "True"
    assert conditions["Running"]["status"] == "True"
    assert cluster.get("TrainingJob", "resnet")["metadata"]["finalizers"] == [  # type: ignore[index]
        "orchestrator.dev/cleanup"
    ]


def test_success_walks_the_secondary_statuses(cluster: Cluster, operator: Operator) -> None:
    cluster.create("TrainingJob", "ok", SPEC)
    operator.run_once()
    job = cluster.one("Job")
    # The pod's timestamps, after the Job started and taken once: kubelet reports the same
    # times on every read, however slowly the passes come.
    t0, t1, t2, t3, t4 = (stamp(i) for i in range(5))

    cluster.job_status("ok-1", {"startTime": t0, "active": 1})
    cluster.pod(job, "ok-1-abcde", running(t1))
    operator.run_once()
    assert cluster.status("TrainingJob", "ok")["secondaryStatus"] == "Downloading"

    cluster.pod(job, "ok-1-abcde", running(t1, t2))
    operator.run_once()
    assert cluster.status("TrainingJob", "ok")["secondaryStatus"] == "Training"

    cluster.job_status("ok-1", complete(t4))
    cluster.pod(job, "ok-1-abcde", trained(t1, t2, t3))
    operator.run_once()

    status = cluster.status("TrainingJob", "ok")
    assert status["trainingJobStatus"] == "Completed"
    assert status["secondaryStatus"] == "Completed"
    seen = [t["status"] for t in status["secondaryStatusTransitions"]]
    assert seen == ["Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert status["modelArtifacts"]["s3ModelArtifacts"] == (
        "s3://ml-bucket/out/ok/output/model.tar.gz"
    )
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Succeeded"]["status"] == "True"
    assert conditions["Running"]["status"] == "False"


def test_failure_carries_the_termination_message(cluster: Cluster, operator: Operator) -> None:
    cluster.create("TrainingJob", "bad", SPEC)
    operator.run_once()
    job = cluster.one("Job")
    cluster.pod(job, "bad-1-xyz", algo_exited(1, "ValueError: learning rate must be positive"))
    cluster.job_status(
        "bad-1",
        {
            "failed": 1,
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "PodFailurePolicy",
                    "message": "Container algo for pod ml/bad-1-xyz failed with exit code 1",
                    "lastTransitionTime": stamp(),
                }
            ],
        },
    )
    operator.run_once()

    status = cluster.status("TrainingJob", "bad")
    assert status["trainingJobStatus"] == "Failed"
    assert status["secondaryStatus"] == "Failed"
    assert status["failureReason"] == ("AlgorithmError: ValueError: learning rate must be positive")
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Succeeded"]["status"] == "False"
    assert "learning rate" in conditions["Succeeded"]["message"]
    assert cluster.names("Job") == ["bad-1"]  # failed fast: no retry of a user error


def test_deadline_exceeded_is_stopped_at_max_runtime(cluster: Cluster, operator: Operator) -> None:
    cluster.create("TrainingJob", "slow", SPEC)
    operator.run_once()
    job = cluster.one("Job")
    cluster.pod(job, "slow-1-aaa", running(stamp(1), stamp(2)))
    cluster.job_status("slow-1", {"startTime": stamp(), "active": 1})
    operator.run_once()
    cluster.job_status(
        "slow-1",
        {
            "active": 0,
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "DeadlineExceeded",
                    "message": "Job was active longer than specified deadline",
                    "lastTransitionTime": stamp(3),
                }
            ],
        },
    )
    operator.run_once()

    status = cluster.status("TrainingJob", "slow")
    assert (status["trainingJobStatus"], status["secondaryStatus"]) == (
        "Stopped",
        "MaxRuntimeExceeded",
    )
    assert "failureReason" not in status or status["failureReason"] is None
    running_condition = {c["type"]: c for c in status["conditions"]}["Running"]
    assert "MaxRuntimeInSeconds=3600" in running_condition["message"]


def test_an_evicted_pod_interrupts_but_does_not_fail(cluster: Cluster, operator: Operator) -> None:
    cluster.create("TrainingJob", "spot", SPEC)
    operator.run_once()
    job = cluster.one("Job")
    cluster.job_status("spot-1", {"startTime": stamp(), "active": 1})
    cluster.pod(job, "spot-1-one", running(stamp(1), stamp(2)))
    operator.run_once()

    evicted = running(stamp(1), stamp(2))
    evicted.update(
        phase="Failed",
        conditions=[
            {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "EvictionByEvictionAPI",
                "message": "Eviction API: evicting",
                "lastTransitionTime": stamp(3),
            }
        ],
    )
    cluster.pod(job, "spot-1-one", evicted)
    operator.run_once()
    status = cluster.status("TrainingJob", "spot")
    assert status["trainingJobStatus"] == "InProgress"
    assert status["secondaryStatus"] == "Interrupted"
    message = status["secondaryStatusTransitions"][-1]["statusMessage"]
    assert "spot-1-one" in message
    assert "EvictionByEvictionAPI" in message

    # The Job controller starts a replacement pod (the disruption was not counted).
    cluster.pod(job, "spot-1-two", running(stamp(5), stamp(6)), creationTimestamp=stamp(4))
    operator.run_once()
    status = cluster.status("TrainingJob", "spot")
    assert (status["trainingJobStatus"], status["secondaryStatus"]) == ("InProgress", "Training")
    assert cluster.names("Job") == ["spot-1"]


def test_delete_stops_then_cleans_up_and_releases(cluster: Cluster, operator: Operator) -> None:
    cluster.create("TrainingJob", "gone", SPEC)
    operator.run_once()
    job = cluster.one("Job")
    cluster.job_status("gone-1", {"startTime": stamp(), "active": 1})
    cluster.pod(job, "gone-1-p", running(stamp(1), stamp(2)))
    operator.run_once()

    cluster.delete("TrainingJob", "gone")  # held by the finalizer
    operator.run_once()
    assert cluster.one("Job")["spec"]["suspend"] is True  # stopped: pods get SIGTERM
    assert cluster.status("TrainingJob", "gone")["trainingJobStatus"] == "Stopping"

    cluster.job_status(
        "gone-1",
        {
            "active": 0,
            "conditions": [{"type": "Suspended", "status": "True", "lastTransitionTime": stamp(3)}],
        },
    )
    for _ in range(3):
        operator.run_once()
    assert cluster.get("TrainingJob", "gone") is None
    assert cluster.items("Job") == []
    assert cluster.items("ConfigMap") == []
    # (Its pods go with the Job, deleted by the garbage collector, which the emulator lacks.)


def test_stop_annotation_stops_the_job(cluster: Cluster, operator: Operator) -> None:
    cluster.create("TrainingJob", "halt", SPEC)
    operator.run_once()
    cluster.job_status("halt-1", {"startTime": stamp(), "active": 1})
    cluster.annotate("TrainingJob", "halt", {"orchestrator.dev/stop": "true"})
    operator.run_once()
    assert cluster.one("Job")["spec"]["suspend"] is True
    cluster.job_status("halt-1", {"active": 0})
    operator.run_once()
    status = cluster.status("TrainingJob", "halt")
    assert (status["trainingJobStatus"], status["secondaryStatus"]) == ("Stopped", "Stopped")
    assert cluster.get("TrainingJob", "halt") is not None  # stopping is not deleting


def test_a_restarted_operator_converges_without_duplicates(
    cluster: Cluster, api: client.ApiClient, settings: KubeSettings
) -> None:
    cluster.create("TrainingJob", "again", SPEC)
    first = Operator(api, settings)
    first.run_once()
    job = cluster.one("Job")
    cluster.job_status("again-1", {"startTime": stamp(), "active": 1})
    cluster.pod(job, "again-1-p", running(stamp(1), stamp(2)))
    first.run_once()
    before = cluster.status("TrainingJob", "again")

    second = Operator(api, settings)  # a new process: nothing in memory
    for _ in range(3):
        second.run_once()
    assert cluster.names("Job") == ["again-1"]
    assert cluster.names("ConfigMap") == ["again-1"]
    after = cluster.status("TrainingJob", "again")
    assert after == before


def test_a_launch_the_status_never_recorded_is_adopted(
    cluster: Cluster, api: client.ApiClient, settings: KubeSettings
) -> None:
    """Killed between creating the Job and writing the status: the next operator adopts it."""
    cluster.create("TrainingJob", "adopt", SPEC)
    operator = Operator(api, settings)
    operator.run_once()
    cluster.custom.patch_namespaced_custom_object_status(
        "orchestrator.dev", "v1alpha1", NS, "trainingjobs", "adopt", {"status": None}
    )
    assert cluster.status("TrainingJob", "adopt") == {}
    Operator(api, settings).run_once()
    assert cluster.names("Job") == ["adopt-1"]
    status = cluster.status("TrainingJob", "adopt")
    assert status["attempt"] == 1
    # As its launch would have written it (the Job is there, not yet started).
    assert [t["status"] for t in status["secondaryStatusTransitions"]] == ["Starting"]
    running_condition = {c["type"]: c for c in status["conditions"]}["Running"]
    assert (running_condition["status"], running_condition["reason"]) == ("True", "Starting")


def test_a_missing_required_field_is_rejected_by_name(cluster: Cluster, operator: Operator) -> None:
    spec = {k: v for k, v in SPEC.items() if k != "algorithmSpecification"}
    cluster.create("TrainingJob", "nothing", spec)
    operator.run_once()
    status = cluster.status("TrainingJob", "nothing")
    valid = {c["type"]: c for c in status["conditions"]}["Valid"]
    assert (valid["status"], valid["reason"]) == ("False", "InvalidSpec")
    assert "spec.algorithmSpecification: required field is missing" in valid["message"]
    assert status["trainingJobStatus"] == "Failed"
    assert status["failureReason"].startswith("ValidationException: spec.algorithmSpecification")
    assert cluster.items("Job") == []


def test_a_wrong_type_is_rejected_by_name(cluster: Cluster, operator: Operator) -> None:
    spec = {**SPEC, "resourceConfig": {"instanceType": "ml.m5.large", "instanceCount": "two"}}
    cluster.create("TrainingJob", "typo", spec)
    operator.run_once()
    status = cluster.status("TrainingJob", "typo")
    valid = {c["type"]: c for c in status["conditions"]}["Valid"]
    assert valid["status"] == "False"
    assert valid["message"].startswith("spec.resourceConfig.instanceCount: ")
    assert "'two'" in valid["message"]
    assert cluster.items("Job") == []
    operator.run_once()  # nothing else happens, on every pass
    assert cluster.items("Job") == []


def test_the_loop_runs_passes_until_stopped(
    cluster: Cluster, api: client.ApiClient, settings: KubeSettings
) -> None:
    import threading

    from orchestrator.controller.reconciler import Policies
    from orchestrator.testing import eventually

    operator = Operator(api, settings, policies=Policies(resync_seconds=0.2))
    thread = threading.Thread(target=operator.run, kwargs={"watch_events": False}, daemon=True)
    thread.start()
    try:
        cluster.create("TrainingJob", "looped", SPEC)
        eventually(lambda: cluster.items("Job"), what="the Job, from the loop's own passes")
        assert cluster.names("Job") == ["looped-1"]
    finally:
        operator.stop()
        thread.join(10)
    assert not thread.is_alive()


def test_final_metrics_are_read_from_the_algo_log_once_the_job_ended(
    cluster: Cluster, operator: Operator, emulator: Any
) -> None:
    """MetricDefinitions are honoured here too: the Job carries them, and once it has ended
    the operator reads the user's container's log (kubelet's, here the emulator's) for each
    metric's last value, as the local supervisors read a job's output."""
    spec = {
        **SPEC,
        "algorithmSpecification": {
            **SPEC["algorithmSpecification"],
            "metricDefinitions": [
                {"name": "train:loss", "regex": r"loss=(\S+)"},
                {"name": "train:acc", "regex": r"acc=(\S+)"},
            ],
        },
    }
    cluster.create("TrainingJob", "measured", spec)
    operator.run_once()
    job = cluster.one("Job")
    definitions = json.loads(job["metadata"]["annotations"]["orchestrator.dev/metric-definitions"])
    assert definitions == [["train:loss", r"loss=(\S+)"], ["train:acc", r"acc=(\S+)"]]
    cluster.job_status("measured-1", {"startTime": stamp(), "active": 1})
    cluster.pod(job, "measured-1-p", running(stamp(1), stamp(2)))
    emulator.km.logs[("measured-1-p", "algo")] = "loss=0.9\nacc=0.5\nloss=0.25\nnot a metric\n"
    operator.run_once()
    assert not cluster.status("TrainingJob", "measured").get("finalMetricDataList")  # not yet

    cluster.pod(job, "measured-1-p", trained(stamp(1), stamp(2), stamp(3)))
    cluster.job_status("measured-1", complete(stamp(4)))
    operator.run_once()
    status = cluster.status("TrainingJob", "measured")
    assert status["trainingJobStatus"] == "Completed"
    final = {m["metricName"]: m["value"] for m in status["finalMetricDataList"]}
    assert final == {"train:loss": 0.25, "train:acc": 0.5}


def test_a_job_without_metric_definitions_reads_no_log(
    cluster: Cluster, operator: Operator
) -> None:
    cluster.create("TrainingJob", "quiet", SPEC)
    operator.run_once()
    assert (
        "orchestrator.dev/metric-definitions" not in cluster.one("Job")["metadata"]["annotations"]
    )


def test_the_preempt_annotation_is_the_preempt_flag(cluster: Cluster, operator: Operator) -> None:
    cluster.create("TrainingJob", "spare", SPEC)
    operator.run_once()
    source = operator.source
    assert not source.get("TrainingJob", "spare").preempt_requested
    cluster.annotate("TrainingJob", "spare", {"orchestrator.dev/preempt": "true"})
    assert source.get("TrainingJob", "spare").preempt_requested
    flagged = source.set_flag("TrainingJob", "spare", "preempt_requested", datetime.now(UTC))
    assert flagged.preempt_requested
    withdrawn = source.set_flag(
        "TrainingJob", "spare", "preempt_requested", datetime.now(UTC), value=False
    )
    assert not withdrawn.preempt_requested
    annotations = cluster.get("TrainingJob", "spare")["metadata"].get("annotations") or {}
    assert "orchestrator.dev/preempt" not in annotations
    assert not source.get("TrainingJob", "spare").stop_requested

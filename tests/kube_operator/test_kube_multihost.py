"""Multi-host and network-isolated TrainingJobs on Kubernetes, through the operator against the
API emulator: the Indexed Job, its headless Service, the NetworkPolicy, how each ends, and the
refusal of an isolated job the operator is not configured for."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kube_harness import Cluster, stamp
from kubernetes import client

from orchestrator.kube.jobs import AS_HOST
from orchestrator.kube.objects import INDEX_ANNOTATION, KubeSettings
from orchestrator.kube.operator import Operator
from orchestrator.resources.failures import FailureReason
from orchestrator.settings import EgressRule

SCRIPT: dict[str, Any] = {
    "algorithmSpecification": {"trainingInputMode": "File"},
    "hyperParameters": {
        "sagemaker_program": '"train.py"',
        "sagemaker_submit_directory": '"s3://ml-bucket/code/src.tar.gz"',
    },
    "resourceConfig": {"instanceType": "ml.m5.large", "instanceCount": 3},
    "inputDataConfig": [
        {
            "channelName": "train",
            "dataSource": {
                "s3DataSource": {
                    "s3Uri": "s3://ml-bucket/data/train",
                    "s3DataDistributionType": "ShardedByS3Key",
                }
            },
        }
    ],
    "outputDataConfig": {"s3OutputPath": "s3://ml-bucket/out"},
    "stoppingCondition": {"maxRuntimeInSeconds": 3600},
}
EGRESS = [
    EgressRule.model_validate(
        {"to": [{"ipBlock": {"cidr": "172.18.0.2/32"}}], "ports": [{"port": 6443}]}
    ),
    EgressRule.model_validate(
        {
            "to": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "storage"}
                    },
                    "podSelector": {"matchLabels": {"app": "minio"}},
                }
            ],
            "ports": [{"port": 9000}],
        }
    ),
]


@pytest.fixture
def isolating(api: client.ApiClient, settings: KubeSettings) -> Operator:
    """An operator configured for EnableNetworkIsolation."""
    return Operator(api, settings.model_copy(update={"network_isolation_egress": EGRESS}))


def host_pod(cluster: Cluster, job: dict[str, Any], index: int, status: dict[str, Any]) -> None:
    """What the Job controller creates for one index of an Indexed Job."""
    name = f"{job['metadata']['name']}-{index}-abcde"
    cluster.pod(job, name, status, annotations={INDEX_ANNOTATION: str(index)})


# The pods' own times: after the operator launched the job (as on a cluster), and fixed once
# set (kubelet records a container's times once, however often the passes read them).
T: dict[int, str] = {}


def launched() -> None:
    """The job was launched just now: its pods' times are from now on."""
    T.update({k: stamp(k) for k in range(1, 9)})


def terminated(code: int, finished: int, message: str = "", started: int = 2) -> dict[str, Any]:
    """A container that ran from ``T[started]`` to ``T[finished]``."""
    return {
        "terminated": {
            "exitCode": code,
            "message": message,
            "startedAt": T[started],
            "finishedAt": T[finished],
        }
    }


def host_status(algo: dict[str, Any], upload: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "phase": "Running",
        "initContainerStatuses": [{"name": "download", "state": terminated(0, 2, started=1)}],
        "containerStatuses": [
            {"name": "algo", "state": algo},
            {"name": "upload", "state": upload or {"running": {"startedAt": T[2]}}},
        ],
    }


def failed_job(cluster: Cluster, name: str) -> None:
    cluster.job_status(
        name,
        {
            "failed": 1,
            "conditions": [
                {
                    "type": "Failed",
                    "status": "True",
                    "reason": "PodFailurePolicy",
                    "lastTransitionTime": stamp(),
                }
            ],
        },
    )


def test_several_hosts_are_an_indexed_job_with_a_headless_service(
    cluster: Cluster, operator: Operator
) -> None:
    cr = cluster.create("TrainingJob", "dist", SCRIPT)
    operator.run_once()

    job = cluster.one("Job")
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == ("Indexed", 3, 3)
    assert spec["backoffLimit"] == 0  # RetryStrategy retries the whole job, as SageMaker
    rules = spec["podFailurePolicy"]["rules"]
    assert rules[0] == {
        "action": "FailJob",
        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
    }
    pod = spec["template"]["spec"]
    assert pod["subdomain"] == "dist-1"

    service = cluster.one("Service")
    assert service["metadata"]["name"] == "dist-1"
    assert service["metadata"]["ownerReferences"][0]["uid"] == cr["metadata"]["uid"]
    assert service["spec"]["clusterIP"] == "None"
    assert service["spec"]["publishNotReadyAddresses"] is True
    assert service["spec"]["selector"] == {
        "orchestrator.dev/training-job": "dist",
        "orchestrator.dev/attempt": "1",
    }
    labels = spec["template"]["metadata"]["labels"]
    assert all(labels[k] == v for k, v in service["spec"]["selector"].items())

    containers = {c["name"]: c for c in pod["initContainers"] + pod["containers"]}
    for step in ("download", "upload"):
        c = containers[step]
        assert c["args"][-2:] == ["--host-index", "$(ORCH_HOST_INDEX)"]
        index = next(e for e in c["env"] if e["name"] == "ORCH_HOST_INDEX")
        assert index["valueFrom"]["fieldRef"]["fieldPath"] == (
            f"metadata.annotations['{INDEX_ANNOTATION}']"
        )
    algo = containers["algo"]
    env = {e["name"]: e.get("value") for e in algo["env"]}
    assert json.loads(env["SM_HOSTS"]) == ["algo-1", "algo-2", "algo-3"]
    assert "SM_CURRENT_HOST" not in env  # set per pod, from its resourceconfig.json
    assert algo["command"][:4] == ["python", "-m", "orchestrator.kube.hostenv", "--"]
    assert algo["command"][4:] == ["python", "/opt/ml/code/train.py"]

    step = json.loads(cluster.one("ConfigMap")["data"]["job.json"])
    assert step["peers"] == [f"dist-1-{i}.dist-1.ml.svc.cluster.local" for i in range(3)]
    assert cluster.items("NetworkPolicy") == []  # not isolated


def test_several_hosts_complete_only_together(cluster: Cluster, operator: Operator) -> None:
    cluster.create("TrainingJob", "together", SCRIPT)
    operator.run_once()
    job = cluster.one("Job")
    launched()
    cluster.job_status("together-1", {"startTime": stamp(), "active": 3})
    for i in range(3):
        host_pod(cluster, job, i, host_status({"running": {"startedAt": T[2]}}))
    operator.run_once()
    assert cluster.status("TrainingJob", "together")["secondaryStatus"] == "Training"

    for i in range(3):
        host_pod(cluster, job, i, host_status(terminated(0, 3 + i), terminated(0, 6)))
    cluster.job_status(
        "together-1",
        {
            "active": 0,
            "succeeded": 3,
            "completedIndexes": "0-2",
            "completionTime": T[7],
            "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": T[7]}],
        },
    )
    operator.run_once()
    status = cluster.status("TrainingJob", "together")
    assert status["trainingJobStatus"] == "Completed"
    seen = [t["status"] for t in status["secondaryStatusTransitions"]]
    assert seen == ["Starting", "Downloading", "Training", "Uploading", "Completed"]


def test_a_failing_host_fails_the_job_with_its_reason(cluster: Cluster, operator: Operator) -> None:
    cluster.create("TrainingJob", "split", SCRIPT)
    operator.run_once()
    job = cluster.one("Job")
    launched()
    host_pod(cluster, job, 0, host_status(terminated(143, 5)))
    host_pod(cluster, job, 1, host_status(terminated(2, 3, "CUDA error: out of memory")))
    host_pod(cluster, job, 2, host_status(terminated(143, 6)))
    failed_job(cluster, "split-1")
    operator.run_once()
    status = cluster.status("TrainingJob", "split")
    assert status["trainingJobStatus"] == "Failed"
    assert status["failureReason"] == "AlgorithmError: algo-2: CUDA error: out of memory"
    assert cluster.names("Job") == ["split-1"]  # an AlgorithmError is not retried


def test_an_internal_failure_retries_the_whole_job_as_a_new_attempt(
    cluster: Cluster, operator: Operator
) -> None:
    cluster.create("TrainingJob", "again", {**SCRIPT, "retryStrategy": {"maximumRetryAttempts": 1}})
    operator.run_once()
    job = cluster.one("Job")
    launched()
    broken = FailureReason(kind="InternalServerError", message="upload failed: store down")
    for i in range(3):
        upload = terminated(1, 4, broken.encode(4096)) if i == 0 else terminated(0, 4)
        host_pod(cluster, job, i, host_status(terminated(0, 3), upload))
    failed_job(cluster, "again-1")
    operator.run_once()
    assert cluster.names("Job") == ["again-1", "again-2"]
    assert cluster.names("Service") == ["again-1", "again-2"]
    status = cluster.status("TrainingJob", "again")
    assert (status["trainingJobStatus"], status["attempt"]) == ("InProgress", 2)
    last = status["secondaryStatusTransitions"][-1]
    assert last["status"] == "Restarting"
    assert "InternalServerError: algo-1: upload failed: store down" in last["statusMessage"]


def test_an_isolated_job_is_refused_where_the_egress_is_not_configured(
    cluster: Cluster, operator: Operator
) -> None:
    cluster.create("TrainingJob", "sealed", {**SCRIPT, "enableNetworkIsolation": True})
    operator.run_once()
    status = cluster.status("TrainingJob", "sealed")
    assert status["trainingJobStatus"] == "Failed"
    # Refused as a spec this backend cannot carry out: Valid=False naming the resource's field.
    valid = {c["type"]: c for c in status["conditions"]}["Valid"]
    assert valid["status"] == "False"
    reason = status["failureReason"]
    assert reason.startswith("ValidationException: spec.enableNetworkIsolation: ")
    assert valid["message"] in reason
    assert "on the kubernetes backend" in reason
    assert "ORCH_KUBE__NETWORK_ISOLATION_EGRESS" in reason
    for kind in ("Job", "ConfigMap", "Service", "NetworkPolicy"):
        assert cluster.items(kind) == [], kind  # nothing created
    operator.run_once()
    assert cluster.items("Job") == []


def test_an_isolated_job_gets_a_policy_that_denies_all_but_its_steps_dns_and_peers(
    cluster: Cluster, isolating: Operator
) -> None:
    cr = cluster.create("TrainingJob", "sealed", {**SCRIPT, "enableNetworkIsolation": True})
    isolating.run_once()
    policy = cluster.one("NetworkPolicy")
    assert policy["metadata"]["name"] == "sealed-1"
    assert policy["metadata"]["ownerReferences"][0]["uid"] == cr["metadata"]["uid"]
    spec = policy["spec"]
    attempt = {"orchestrator.dev/training-job": "sealed", "orchestrator.dev/attempt": "1"}
    assert spec["podSelector"] == {"matchLabels": attempt}
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == [{"from": [{"podSelector": {"matchLabels": attempt}}]}]
    dns, peers, api, store = spec["egress"]
    assert dns["to"] == [
        {"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
    ]
    assert dns["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    assert peers == {"to": [{"podSelector": {"matchLabels": attempt}}]}
    assert api == {
        "to": [{"ipBlock": {"cidr": "172.18.0.2/32"}}],
        "ports": [{"protocol": "TCP", "port": 6443}],
    }
    assert store["ports"] == [{"protocol": "TCP", "port": 9000}]
    assert cluster.names("Job") == ["sealed-1"]

    # Deleted: every object of the attempt goes, the policy and the Service with the Job.
    cluster.delete("TrainingJob", "sealed")
    isolating.run_once()  # stops it first: the Job is suspended
    cluster.job_status(
        "sealed-1",
        {
            "active": 0,
            "conditions": [{"type": "Suspended", "status": "True", "lastTransitionTime": stamp(3)}],
        },
    )
    for _ in range(3):
        isolating.run_once()
    assert cluster.get("TrainingJob", "sealed") is None
    for kind in ("Job", "ConfigMap", "Service", "NetworkPolicy"):
        assert cluster.items(kind) == [], kind


def test_one_isolated_host_accepts_no_connection_at_all(
    cluster: Cluster, isolating: Operator
) -> None:
    one = {**SCRIPT, "resourceConfig": {"instanceType": "ml.m5.large"}}
    cluster.create("TrainingJob", "alone", {**one, "enableNetworkIsolation": True})
    isolating.run_once()
    spec = cluster.one("NetworkPolicy")["spec"]
    assert spec["ingress"] == []
    assert len(spec["egress"]) == 1 + len(EGRESS)  # DNS and the steps' egress: no peers
    assert cluster.items("Service") == []  # one host: no headless Service


def test_a_builtin_algorithm_runs_in_the_algorithms_image(
    cluster: Cluster, operator: Operator, settings: KubeSettings
) -> None:
    spec = {
        **SCRIPT,
        "algorithmSpecification": {"algorithmName": "linear-learner"},
        "hyperParameters": {"predictor_type": "regressor"},
        "resourceConfig": {"instanceType": "ml.m5.large"},
    }
    cluster.create("TrainingJob", "builtin", spec)
    operator.run_once()
    pod = cluster.one("Job")["spec"]["template"]["spec"]
    algo = next(c for c in pod["containers"] if c["name"] == "algo")
    assert algo["image"] == settings.algorithms_image
    # Through hostenv, which samples the container's usage beside it (training.usage).
    assert algo["command"] == [*AS_HOST, "python", "-m", "orchestrator.algorithms.train"]
    env = {e["name"]: e["value"] for e in algo["env"]}
    assert env["ORCH_ALGORITHM"] == "linear-learner"
    assert env["ORCH_USAGE_INTERVAL_SECONDS"] == f"{settings.usage_interval_seconds:g}"
    assert (env["ORCH_USAGE_ATTEMPT"], env["ORCH_USAGE_VOLUME_GB"]) == ("1", "30")

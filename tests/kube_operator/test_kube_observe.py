"""Pure pieces, without I/O: names, scaling, observation mapping and the planner's deadline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator.controller.plan.training import DesiredJob, plan_training_job
from orchestrator.controller.plan.types import ObservedJob
from orchestrator.kube.objects import k8s_name
from orchestrator.kube.observe import job_observation, pod_problem
from orchestrator.resources.failures import FailureReason, algorithm_error
from orchestrator.resources.training import (
    CreateTrainingJobRequest,
    SecondaryStatus,
    TrainingJobState,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_names_are_dns_labels() -> None:
    assert k8s_name("resnet", "1") == "resnet-1"
    upper = k8s_name("web", "AllTraffic")
    assert upper.startswith("web-alltraffic-") and upper != k8s_name("web", "alltraffic")
    assert len(k8s_name("x" * 80, "1")) <= 63
    assert k8s_name("9lives")[0].isalpha()


def test_the_planner_stops_a_job_the_backend_timed_out() -> None:
    spec = CreateTrainingJobRequest.model_validate(
        {"TrainingJobName": "j", "AlgorithmSpecification": {"TrainingImage": "i"}}
    )
    desired = DesiredJob("j", spec, TrainingJobState(Attempt=1), T0)
    observed = ObservedJob(
        "j",
        1,
        "exited",
        outcome="stopped",
        phase=SecondaryStatus.MAX_RUNTIME_EXCEEDED,
        phase_message="MaxRuntimeExceeded: too long",
        ended_at=T0 + timedelta(seconds=9),
    )
    plan = plan_training_job(desired, observed, T0 + timedelta(seconds=10))
    assert (plan.status.TrainingJobStatus, plan.status.SecondaryStatus) == (
        "Stopped",
        "MaxRuntimeExceeded",
    )
    running = {c.Type: c for c in plan.status.Conditions}["Running"]
    assert running.Message == "MaxRuntimeExceeded: too long"


def test_a_failed_download_is_a_client_error() -> None:
    job = {
        "metadata": {"labels": {"orchestrator.dev/attempt": "2"}},
        "status": {
            "conditions": [{"type": "Failed", "status": "True", "reason": "PodFailurePolicy"}]
        },
    }
    said = FailureReason(kind="ClientError", message="channel 'train': no objects")
    pod = {
        "metadata": {"name": "p", "creationTimestamp": "2024-05-01T12:00:00Z"},
        "status": {
            "initContainerStatuses": [
                {
                    "name": "download",
                    "state": {"terminated": {"exitCode": 2, "message": said.encode(4096)}},
                }
            ]
        },
    }
    seen = job_observation("j", job, [pod])
    assert (seen.attempt, seen.state, seen.outcome) == (2, "exited", "failed")
    assert seen.failure == said


def test_an_oom_killed_container_says_so() -> None:
    job = {"status": {"conditions": [{"type": "Failed", "status": "True"}]}}
    pod = {
        "metadata": {"name": "p"},
        "status": {
            "containerStatuses": [
                {"name": "algo", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}
            ]
        },
    }
    reason = job_observation("j", job, [pod]).failure
    assert reason == algorithm_error(
        "OutOfMemory: container algo was OOM-killed at its memory limit (OOMKilled, exit code 137)"
    )


def test_a_bad_image_is_a_pod_problem() -> None:
    pod = {
        "metadata": {"name": "p"},
        "status": {
            "containerStatuses": [
                {
                    "name": "serve",
                    "state": {"waiting": {"reason": "ImagePullBackOff", "message": "nope"}},
                }
            ]
        },
    }
    assert pod_problem(pod) == "ImagePullBackOff: nope"


def test_managed_instance_scaling_becomes_the_hpa_when_the_hpa_sizes_fleets() -> None:
    from orchestrator.controller.plan.types import VariantFleet
    from orchestrator.kube.fleets import CONCURRENCY_METRIC, fleet_objects
    from orchestrator.resources.endpoints import ProductionVariant
    from orchestrator.resources.models import CreateModelRequest
    from orchestrator.settings import KubeSettings

    variant = ProductionVariant.model_validate(
        {
            "VariantName": "v1",
            "ModelName": "m",
            "InitialInstanceCount": 2,
            "ManagedInstanceScaling": {
                "MinInstanceCount": 0,
                "MaxInstanceCount": 5,
                "TargetTracking": {
                    "PredefinedMetricType": (
                        "SageMakerVariantConcurrentRequestsPerModelHighResolution"
                    ),
                    "TargetValue": 4,
                    "ScaleOutCooldown": 15,
                    "ScaleInCooldown": 120,
                },
            },
        }
    )
    model = CreateModelRequest.model_validate(
        {"ModelName": "m", "PrimaryContainer": {"ModelDataUrl": "s3://b/model.tar.gz"}}
    )
    fleet = VariantFleet("cfg", variant, model, replicas=2)
    planner = fleet_objects("web", "default", fleet, owner=None, settings=KubeSettings())
    assert [o["kind"] for o in planner] == ["Deployment", "Service", "PodDisruptionBudget"]
    objects = fleet_objects(
        "web", "default", fleet, owner=None, settings=KubeSettings(autoscaler="hpa")
    )
    hpa = next(o for o in objects if o["kind"] == "HorizontalPodAutoscaler")["spec"]
    # A HorizontalPodAutoscaler cannot go below one pod: MinInstanceCount 0 keeps one.
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 5)
    pods = hpa["metrics"][0]["pods"]
    assert pods["metric"]["name"] == CONCURRENCY_METRIC
    assert pods["target"] == {"type": "AverageValue", "averageValue": "4"}
    assert hpa["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 120
    assert {p["periodSeconds"] for p in hpa["behavior"]["scaleUp"]["policies"]} == {15}
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2

"""Endpoint custom resources -> a Deployment, Service, HPA and PDB per production variant."""

from __future__ import annotations

import json
from typing import Any

from kube_harness import Cluster

from orchestrator.kube.operator import Operator

MODEL = {"primaryContainer": {"modelDataUrl": "s3://ml-bucket/out/resnet/output/model.tar.gz"}}
GPU_MODEL = {"primaryContainer": {"image": "registry.example/serve:1"}}
CONFIG = {
    "productionVariants": [
        {
            "variantName": "Blue",
            "modelName": "resnet",
            "initialInstanceCount": 2,
            "instanceType": "ml.m5.large",
            "initialVariantWeight": 3.0,
        },
        {
            "variantName": "green",
            "modelName": "resnet-gpu",
            "initialInstanceCount": 1,
            "instanceType": "ml.g5.xlarge",
            "initialVariantWeight": 1.0,
        },
    ]
}
SCALING = {
    "orchestrator.dev/autoscaling": json.dumps(
        {"minInstances": 2, "maxInstances": 6, "targetInvocationsPerInstance": 100}
    )
}


def setup(cluster: Cluster, **meta: Any) -> None:
    cluster.create("Model", "resnet", MODEL)
    cluster.create("Model", "resnet-gpu", GPU_MODEL)
    cluster.create("EndpointConfig", "cfg", CONFIG)
    cluster.create("Endpoint", "web", {"endpointConfigName": "cfg"}, **meta)


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["metadata"]["name"]: i for i in items}


def test_one_deployment_per_variant_with_service_hpa_and_pdb(
    cluster: Cluster, operator: Operator
) -> None:
    setup(cluster, annotations=SCALING)
    operator.run_once()

    deployments = by_name(cluster.items("Deployment"))
    assert sorted(deployments) == [
        "web-blue-" + sorted(deployments)[0].rsplit("-", 1)[1],
        "web-green",
    ]
    blue_name = next(n for n in deployments if n.startswith("web-blue"))
    blue, green = deployments[blue_name], deployments["web-green"]
    assert blue["metadata"]["annotations"]["orchestrator.dev/variant-name"] == "Blue"
    assert blue["spec"]["replicas"] == 2
    assert blue["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert blue["metadata"]["ownerReferences"][0]["kind"] == "Endpoint"
    pod = blue["spec"]["template"]["spec"]
    serve = pod["containers"][0]
    assert serve["readinessProbe"]["httpGet"] == {"path": "/ping", "port": "http"}
    assert serve["livenessProbe"]["httpGet"] == {"path": "/ping", "port": "http"}
    assert serve["command"] == ["python", "-m", "orchestrator.serving"]
    assert "envFrom" not in serve and [m["name"] for m in serve["volumeMounts"]] == ["ml"]
    assert pod["initContainers"][0]["args"][-2:] == [
        "--model-data",
        "s3://ml-bucket/out/resnet/output/model.tar.gz",
    ]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert "nodeSelector" not in pod and "runtimeClassName" not in pod
    gpu = green["spec"]["template"]["spec"]
    assert gpu["containers"][0]["image"] == "registry.example/serve:1"
    assert gpu["containers"][0]["args"] == ["serve"]
    assert gpu["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert gpu["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert gpu["runtimeClassName"] == "nvidia"

    services = by_name(cluster.items("Service"))
    assert services["web-green"]["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
    ] or services["web-green"]["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http"}
    ]
    hpas = by_name(cluster.items("HorizontalPodAutoscaler"))
    hpa = hpas["web-green"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "web-green",
    }
    assert hpa["metrics"][0]["pods"]["target"] == {"type": "AverageValue", "averageValue": "100"}
    pdbs = by_name(cluster.items("PodDisruptionBudget"))
    assert pdbs["web-green"]["spec"]["maxUnavailable"] == 1

    status = cluster.status("Endpoint", "web")
    assert status["endpointStatus"] == "Creating"
    operator.run_once()  # again: nothing duplicated
    assert len(cluster.items("Deployment")) == 2 and len(cluster.items("Service")) == 2


def test_default_scaling_is_the_initial_count(cluster: Cluster, operator: Operator) -> None:
    setup(cluster)
    operator.run_once()
    hpa = by_name(cluster.items("HorizontalPodAutoscaler"))["web-green"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (1, 1)


def test_in_service_once_ready_replicas_reach_the_count(
    cluster: Cluster, operator: Operator
) -> None:
    setup(cluster)
    operator.run_once()
    blue = next(n for n in cluster.names("Deployment") if n.startswith("web-blue"))
    cluster.deployment_status(blue, {"readyReplicas": 1, "replicas": 2})
    cluster.deployment_status("web-green", {"readyReplicas": 1, "replicas": 1})
    operator.run_once()
    assert cluster.status("Endpoint", "web")["endpointStatus"] == "Creating"

    cluster.deployment_status(blue, {"readyReplicas": 2, "replicas": 2})
    operator.run_once()
    status = cluster.status("Endpoint", "web")
    assert status["endpointStatus"] == "InService"
    variants = {v["variantName"]: v for v in status["productionVariants"]}
    assert variants["Blue"]["currentInstanceCount"] == 2
    assert variants["Blue"]["currentWeight"] == 3.0
    route = operator.routes.get("web")
    assert route is not None
    weights = {v.name: (v.weight, set(v.urls)) for v in route.variants}
    # Routes carry normalised shares; the status keeps SageMaker's raw CurrentWeight.
    assert weights["green"] == (0.25, {"http://web-green.ml.svc.cluster.local:8080"})
    assert weights["Blue"][0] == 0.75


def test_waits_for_a_missing_endpoint_config(cluster: Cluster, operator: Operator) -> None:
    cluster.create("Endpoint", "early", {"endpointConfigName": "later"})
    operator.run_once()
    status = cluster.status("Endpoint", "early")
    ready = {c["type"]: c for c in status["conditions"]}["Ready"]
    assert (ready["status"], ready["reason"]) == ("False", "ReferenceNotReady")
    assert "'later' not found" in ready["message"]
    assert status["endpointStatus"] == "Creating"
    cluster.create("Model", "resnet", MODEL)
    cluster.create(
        "EndpointConfig", "later", {"productionVariants": [CONFIG["productionVariants"][0]]}
    )
    operator.run_once()
    assert len(cluster.items("Deployment")) == 1


def test_a_crash_looping_variant_fails_the_endpoint_with_its_message(
    cluster: Cluster, operator: Operator
) -> None:
    cluster.create("Model", "resnet", MODEL)
    cluster.create(
        "EndpointConfig",
        "one",
        {"productionVariants": [{"variantName": "main", "modelName": "resnet"}]},
    )
    cluster.create("Endpoint", "crash", {"endpointConfigName": "one"})
    operator.run_once()
    deployment = cluster.one("Deployment")
    for attempt in range(3):
        crash = {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "serve",
                    "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                    "lastState": {
                        "terminated": {
                            "exitCode": 1,
                            "message": "ImportError: no module named torch",
                        }
                    },
                    "restartCount": 2,
                }
            ],
        }
        cluster.pod(deployment, f"crash-main-{attempt}", crash)
        operator.run_once()
    status = cluster.status("Endpoint", "crash")
    assert status["endpointStatus"] == "Failed"
    assert "no module named torch" in status["failureReason"]
    operator.run_once()
    assert cluster.items("Deployment") == [] and cluster.items("Service") == []


def test_delete_removes_every_variant_object_and_the_finalizer(
    cluster: Cluster, operator: Operator
) -> None:
    setup(cluster)
    operator.run_once()
    assert cluster.get("Endpoint", "web")["metadata"]["finalizers"] == ["orchestrator.dev/cleanup"]  # type: ignore[index]
    cluster.delete("Endpoint", "web")
    for _ in range(3):
        operator.run_once()
    assert cluster.get("Endpoint", "web") is None
    for kind in ("Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"):
        assert cluster.items(kind) == [], kind


def test_bad_autoscaling_annotation_is_rejected_by_name(
    cluster: Cluster, operator: Operator
) -> None:
    setup(
        cluster, annotations={"orchestrator.dev/autoscaling": json.dumps({"minInstances": "many"})}
    )
    operator.run_once()
    status = cluster.status("Endpoint", "web")
    valid = {c["type"]: c for c in status["conditions"]}["Valid"]
    assert valid["status"] == "False"
    assert "metadata.annotations[orchestrator.dev/autoscaling].minInstances" in valid["message"]
    assert status["endpointStatus"] == "Failed"
    assert cluster.items("Deployment") == []


def test_models_and_configs_get_a_valid_condition(cluster: Cluster, operator: Operator) -> None:
    cluster.create("Model", "ok", MODEL)
    cluster.create("EndpointConfig", "broken", {"productionVariants": [{"variantName": "v"}]})
    operator.run_once()
    model_valid = cluster.status("Model", "ok")["conditions"][0]
    assert (model_valid["type"], model_valid["status"]) == ("Valid", "True")
    config_valid = cluster.status("EndpointConfig", "broken")["conditions"][0]
    assert config_valid["status"] == "False"
    assert (
        "spec.productionVariants[0].modelName: required field is missing" in config_valid["message"]
    )

"""Endpoint custom resources -> a Deployment, a Service and a PDB per variant of each fleet.

The planner sizes the Deployments (``spec.replicas``), as it sizes replicas on the local
backends; the tests play the Deployment controller and kubelet by creating pods and marking
them ready (``make_ready``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from kube_harness import NS, Cluster, make_ready
from kubernetes import client

from orchestrator.controller.plan.types import FleetHealth, VariantLoad
from orchestrator.controller.reconciler import Policies
from orchestrator.kube.operator import Operator
from orchestrator.settings import KubeSettings

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
            "containerStartupHealthCheckTimeoutInSeconds": 300,
        },
    ]
}


def setup(cluster: Cluster, config: dict[str, Any] | None = None, **meta: Any) -> None:
    cluster.create("Model", "resnet", MODEL)
    cluster.create("Model", "resnet-gpu", GPU_MODEL)
    cluster.create("EndpointConfig", "cfg", config or CONFIG)
    cluster.create("Endpoint", "web", {"endpointConfigName": "cfg"}, **meta)


def by_name(items: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {i["metadata"]["name"]: i for i in items}


def deployment(cluster: Cluster, prefix: str) -> dict[str, Any]:
    found = [d for d in cluster.items("Deployment") if d["metadata"]["name"].startswith(prefix)]
    assert len(found) == 1, [d["metadata"]["name"] for d in cluster.items("Deployment")]
    return found[0]


def test_one_deployment_service_and_pdb_per_fleet_variant(
    cluster: Cluster, operator: Operator
) -> None:
    setup(cluster)
    operator.run_once()

    deployments = by_name(cluster.items("Deployment"))
    assert sorted(deployments) == sorted(
        ["web-green-cfg", deployment(cluster, "web-blue")["metadata"]["name"]]
    )
    blue, green = deployment(cluster, "web-blue"), deployments["web-green-cfg"]
    annotations = blue["metadata"]["annotations"]
    assert annotations["orchestrator.dev/variant-name"] == "Blue"
    assert annotations["orchestrator.dev/endpoint-config-name"] == "cfg"
    assert blue["spec"]["replicas"] == 2 and green["spec"]["replicas"] == 1
    assert blue["spec"]["strategy"]["rollingUpdate"] == {"maxUnavailable": 0, "maxSurge": 1}
    assert blue["metadata"]["ownerReferences"][0]["kind"] == "Endpoint"
    pod = blue["spec"]["template"]["spec"]
    serve = pod["containers"][0]
    assert serve["readinessProbe"]["httpGet"] == {"path": "/ping", "port": "http"}
    assert serve["livenessProbe"]["httpGet"] == {"path": "/ping", "port": "http"}
    # The planner's startup timeout (120 s by default) as the startup probe's budget.
    assert serve["startupProbe"]["failureThreshold"] * serve["startupProbe"]["periodSeconds"] == 120
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
    assert gpu["containers"][0]["startupProbe"]["failureThreshold"] == 60  # 300 s / 5 s
    assert gpu["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert gpu["runtimeClassName"] == "nvidia"

    services = by_name(cluster.items("Service"))
    assert services["web-green-cfg"]["spec"]["ports"] == [
        {"name": "http", "port": 8080, "targetPort": "http"}
    ]
    assert services["web-green-cfg"]["spec"]["selector"] == green["spec"]["selector"]["matchLabels"]
    assert (
        by_name(cluster.items("PodDisruptionBudget"))["web-green-cfg"]["spec"]["maxUnavailable"]
        == 1
    )
    # The planner sizes the Deployments: no HPA (and no metrics adapter) unless asked for.
    assert cluster.items("HorizontalPodAutoscaler") == []

    assert cluster.status("Endpoint", "web")["endpointStatus"] == "Creating"
    operator.run_once()  # again: nothing duplicated
    assert len(cluster.items("Deployment")) == 2 and len(cluster.items("Service")) == 2


def test_the_hpa_option_sizes_deployments_from_managed_instance_scaling(
    cluster: Cluster, api: client.ApiClient, settings: KubeSettings
) -> None:
    config = {
        "productionVariants": [
            {
                **CONFIG["productionVariants"][0],
                "managedInstanceScaling": {
                    "minInstanceCount": 2,
                    "maxInstanceCount": 6,
                    "targetTracking": {"targetValue": 100},
                },
            }
        ]
    }
    setup(cluster, config)
    Operator(api, settings.model_copy(update={"autoscaler": "hpa"})).run_once()
    hpa = cluster.one("HorizontalPodAutoscaler")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 6)
    assert hpa["metrics"][0]["pods"]["target"] == {"type": "AverageValue", "averageValue": "100"}
    assert hpa["scaleTargetRef"]["name"] == cluster.one("Deployment")["metadata"]["name"]


def test_in_service_once_its_pods_are_ready_with_the_planned_routes_in_the_status(
    cluster: Cluster, operator: Operator
) -> None:
    setup(cluster)
    operator.run_once()
    blue = deployment(cluster, "web-blue")
    make_ready(cluster, blue, 1)
    make_ready(cluster, deployment(cluster, "web-green"), 1)
    operator.run_once()
    assert cluster.status("Endpoint", "web")["endpointStatus"] == "Creating"

    make_ready(cluster, blue, 2)
    operator.run_once()
    status = cluster.status("Endpoint", "web")
    assert status["endpointStatus"] == "InService"
    variants = {v["variantName"]: v for v in status["productionVariants"]}
    assert variants["Blue"]["currentInstanceCount"] == 2
    assert variants["Blue"]["currentWeight"] == 3.0  # SageMaker's raw weight
    routes = {r["variantName"]: r for r in status["routes"]}
    # The planner's routes carry normalised shares and the fleet variant's Service.
    assert routes["green"]["weight"] == 0.25 and routes["Blue"]["weight"] == 0.75
    assert routes["green"]["urls"] == [f"http://web-green-cfg.{NS}.svc.cluster.local:8080"]
    assert routes["Blue"]["endpointConfigName"] == "cfg"


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


def test_a_crash_looping_pod_is_replaced_and_three_in_a_row_fail_the_endpoint(
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
    fleet = cluster.one("Deployment")
    crash = {
        "phase": "Running",
        "containerStatuses": [
            {
                "name": "serve",
                "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                "lastState": {
                    "terminated": {"exitCode": 1, "message": "ImportError: no module named torch"}
                },
                "restartCount": 2,
            }
        ],
    }
    cluster.pod(fleet, "crash-main-0", crash)
    operator.run_once()
    # The dead pod is deleted: the Deployment starts another.
    assert "crash-main-0" not in cluster.names("Pod")
    for attempt in (1, 2):
        cluster.pod(fleet, f"crash-main-{attempt}", crash)
        operator.run_once()
    status = cluster.status("Endpoint", "crash")
    assert status["endpointStatus"] == "Failed"
    assert "no module named torch" in status["failureReason"]
    operator.run_once()
    assert cluster.items("Deployment") == [] and cluster.items("Service") == []


def test_delete_removes_every_fleet_object_and_the_finalizer(
    cluster: Cluster, operator: Operator
) -> None:
    setup(cluster)
    operator.run_once()
    assert cluster.get("Endpoint", "web")["metadata"]["finalizers"] == ["orchestrator.dev/cleanup"]  # type: ignore[index]
    cluster.delete("Endpoint", "web")
    for _ in range(3):
        operator.run_once()
    assert cluster.get("Endpoint", "web") is None
    for kind in ("Deployment", "Service", "PodDisruptionBudget"):
        assert cluster.items(kind) == [], kind


def test_models_and_configs_get_a_valid_condition_naming_camel_case_fields(
    cluster: Cluster, operator: Operator
) -> None:
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


def test_what_kubernetes_cannot_run_is_refused_by_field_and_backend(
    cluster: Cluster, operator: Operator
) -> None:
    pipeline = {"containers": [MODEL["primaryContainer"], MODEL["primaryContainer"]]}
    cluster.create("Model", "pipe", pipeline)
    cluster.create("EndpointConfig", "sealed", {"kmsKeyId": "alias/x", **CONFIG})
    operator.run_once()
    valid = cluster.status("Model", "pipe")["conditions"][0]
    assert valid["status"] == "False"
    assert valid["message"].startswith("spec.containers: a variant serves one container")
    assert "on the kubernetes backend" in valid["message"]
    sealed = cluster.status("EndpointConfig", "sealed")["conditions"][0]
    assert sealed["status"] == "False" and sealed["message"].startswith("spec.kmsKeyId:")


@dataclass
class FakeTraffic:
    """The API pods' traffic, as the operator would read it (``kube.load.ApiTraffic``)."""

    loads: dict[tuple[str, str, str], VariantLoad] = field(default_factory=dict)

    def variant_load(
        self, endpoint: str, variant: str, config: str, window_seconds: float, now: datetime
    ) -> VariantLoad | None:
        return self.loads.get((endpoint, variant, config), VariantLoad())

    def fleet_health(
        self, endpoint: str, config: str, since: datetime, now: datetime
    ) -> FleetHealth | None:
        return FleetHealth()


SCALED = {
    "productionVariants": [
        {
            "variantName": "main",
            "modelName": "resnet",
            "initialInstanceCount": 1,
            "managedInstanceScaling": {
                "minInstanceCount": 0,
                "maxInstanceCount": 4,
                "scaleToZeroAfterIdleSeconds": 10,
                "targetTracking": {"targetValue": 100, "scaleInCooldown": 0},
            },
        }
    ]
}


def test_the_planners_autoscaler_sizes_the_deployment_up_and_down_to_zero(
    cluster: Cluster, api: client.ApiClient, settings: KubeSettings
) -> None:
    from orchestrator.testing import FakeClock

    clock, traffic = FakeClock(), FakeTraffic()
    op = Operator(api, settings, clock=clock, telemetry=traffic, policies=Policies())
    cluster.create("Model", "resnet", MODEL)
    cluster.create("EndpointConfig", "auto", SCALED)
    cluster.create("Endpoint", "scaled", {"endpointConfigName": "auto"})
    op.run_once()
    fleet = cluster.one("Deployment")
    assert fleet["spec"]["replicas"] == 1
    make_ready(cluster, fleet, 1)
    op.run_once()

    # 350 invocations a minute against a target of 100 per instance: 4 replicas.
    clock.advance(60)
    traffic.loads[("scaled", "main", "auto")] = VariantLoad(
        invocations_per_minute=350, last_invocation_at=clock.now()
    )
    op.run_once()
    assert cluster.one("Deployment")["spec"]["replicas"] == 4

    # Idle past ScaleToZeroAfterIdleSeconds: the Deployment goes to zero, the route waits.
    traffic.loads.clear()
    clock.advance(30)
    op.run_once()
    assert cluster.one("Deployment")["spec"]["replicas"] == 0
    routes = cluster.status("Endpoint", "scaled")["routes"]
    assert [(r["variantName"], r["scaledToZero"], r["urls"]) for r in routes] == [
        ("main", True, [])
    ]

    # A request held by an API pod (its demand annotation): back to one replica.
    op.source.request_replicas("scaled", "main", clock.now())
    op.run_once()
    assert cluster.one("Deployment")["spec"]["replicas"] == 1


def test_a_blue_green_update_runs_the_new_fleet_beside_the_old_then_removes_the_old(
    cluster: Cluster, operator: Operator
) -> None:
    one = {"productionVariants": [{"variantName": "main", "modelName": "resnet"}]}
    cluster.create("Model", "resnet", MODEL)
    cluster.create("EndpointConfig", "v1", one)
    cluster.create("EndpointConfig", "v2", one)
    cluster.create("Endpoint", "web", {"endpointConfigName": "v1"})
    operator.run_once()
    make_ready(cluster, cluster.one("Deployment"), 1)
    operator.run_once()
    assert cluster.status("Endpoint", "web")["endpointStatus"] == "InService"

    # UpdateEndpoint on a cluster: the spec names another config.
    cluster.custom.patch_namespaced_custom_object(
        "orchestrator.dev", "v1alpha1", NS, "endpoints", "web",
        {"spec": {"endpointConfigName": "v2"}},
    )  # fmt: skip
    operator.run_once()
    assert sorted(cluster.names("Deployment")) == ["web-main-v1", "web-main-v2"]
    status = cluster.status("Endpoint", "web")
    assert status["endpointStatus"] == "Updating"
    # While the new fleet starts, all traffic stays on the old one.
    assert {r["endpointConfigName"] for r in status["routes"]} == {"v1"}

    make_ready(cluster, deployment(cluster, "web-main-v2"), 1)
    for _ in range(4):
        operator.run_once()
    status = cluster.status("Endpoint", "web")
    assert status["endpointStatus"] == "InService"
    assert status["currentEndpointConfigName"] == "v2"
    assert cluster.names("Deployment") == ["web-main-v2"]
    assert [r["urls"] for r in status["routes"]] == [
        [f"http://web-main-v2.{NS}.svc.cluster.local:8080"]
    ]


def test_a_pass_over_a_steady_state_writes_nothing(
    cluster: Cluster, operator: Operator, emulator: Any
) -> None:
    """Level-triggered, not write-happy: once nothing changes, a pass only reads."""
    setup(cluster)
    cluster.create("TrainingJob", "steady", {"algorithmSpecification": {"trainingImage": "i:1"}})
    operator.run_once()
    make_ready(cluster, deployment(cluster, "web-blue"), 2)
    make_ready(cluster, deployment(cluster, "web-green"), 1)
    operator.run_once()
    operator.run_once()
    before = len(emulator.km.writes)
    operator.run_once()
    assert emulator.km.writes[before:] == []

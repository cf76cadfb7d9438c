"""On a cluster, tags and UpdateEndpointWeightsAndCapacities write the custom resources' spec,
the one copy of the desired state: kubectl shows them, and the operator carries the weights
and counts out on the Deployments and routes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kube_harness import Cluster, cluster_settings, make_ready
from kubernetes import client

from orchestrator.api.app import build_control_plane
from orchestrator.api.service import ControlPlane
from orchestrator.errors import ConflictError
from orchestrator.kube.operator import Operator
from orchestrator.kube.source import CustomResources
from orchestrator.resources.common import Tag
from orchestrator.resources.endpoints import UpdateEndpointWeightsAndCapacitiesRequest
from orchestrator.settings import KubeSettings


@pytest.fixture
def plane(api: client.ApiClient, settings: KubeSettings, tmp_path: Path) -> Iterator[ControlPlane]:
    cp = build_control_plane(cluster_settings(tmp_path, settings), kube_api=api)
    assert isinstance(cp.store, CustomResources)
    yield cp


def _serving(cluster: Cluster, operator: Operator, variants: list[dict[str, object]]) -> None:
    cluster.create("Model", "m", {"primaryContainer": {"image": "registry.example/serve:1"}})
    cluster.create("EndpointConfig", "cfg", {"productionVariants": variants})
    cluster.create("Endpoint", "web", {"endpointConfigName": "cfg", "tags": [{"key": "team", "value": "x"}]})  # fmt: skip
    operator.run_once()
    for deployment in cluster.items("Deployment"):
        make_ready(cluster, deployment, 1)
    operator.run_once()


def test_tags_are_the_custom_resource_s_and_leave_it_to_the_operator(
    plane: ControlPlane, cluster: Cluster, operator: Operator
) -> None:
    _serving(cluster, operator, [{"variantName": "main", "modelName": "m"}])
    before = cluster.get("Endpoint", "web")
    assert before is not None
    record = plane.tags.find_by_arn("arn:aws:sagemaker:us-east-1:000000000000:endpoint/web")
    plane.tags.add_tags(record.kind, record.name, [Tag(Key="env", Value="prod"), Tag(Key="team", Value="y")])  # fmt: skip
    cr = cluster.get("Endpoint", "web")
    assert cr is not None
    assert cr["spec"]["tags"] == [{"key": "team", "value": "y"}, {"key": "env", "value": "prod"}]
    assert cr["status"] == before["status"]  # nothing but the spec's tags changed
    plane.tags.delete_tags("Endpoint", "web", ["team"])
    assert [(t.Key, t.Value) for t in plane.tags.tags_of("Endpoint", "web")] == [("env", "prod")]
    operator.run_once()
    assert plane.describe_endpoint("web").EndpointStatus == "InService"


def test_weights_and_capacities_are_carried_out_by_the_operator(
    plane: ControlPlane, cluster: Cluster, operator: Operator
) -> None:
    _serving(cluster, operator, [
        {"variantName": "a", "modelName": "m"}, {"variantName": "b", "modelName": "m"},
    ])  # fmt: skip
    request = UpdateEndpointWeightsAndCapacitiesRequest.model_validate(
        {"DesiredWeightsAndCapacities": [{"VariantName": "a", "DesiredWeight": 3, "DesiredInstanceCount": 2}]}
    )  # fmt: skip
    plane.update_endpoint_weights_and_capacities("web", request)
    cr = cluster.get("Endpoint", "web")
    assert cr is not None
    assert cr["spec"]["variantOverrides"] == {
        "endpointConfigName": "cfg", "generation": 1,
        "variants": [{"variantName": "a", "desiredWeight": 3.0, "desiredInstanceCount": 2}],
    }  # fmt: skip
    assert plane.describe_endpoint("web").EndpointStatus == "Updating"
    with pytest.raises(ConflictError, match="only while it is InService"):
        plane.update_endpoint_weights_and_capacities("web", request)
    operator.run_once()
    deployments = {d["metadata"]["name"]: d for d in cluster.items("Deployment")}
    a = next(d for n, d in deployments.items() if "-a-" in n)
    assert a["spec"]["replicas"] == 2
    assert plane.describe_endpoint("web").EndpointStatus == "Updating"
    make_ready(cluster, a, 2)
    operator.run_once()
    described = plane.describe_endpoint("web")
    assert described.EndpointStatus == "InService"
    summary = {v.VariantName: v for v in described.ProductionVariants}
    assert (summary["a"].DesiredWeight, summary["a"].CurrentInstanceCount) == (3.0, 2)
    routes = {r.VariantName: r.Weight for r in described.Routes}
    assert routes == {"a": 0.75, "b": 0.25}

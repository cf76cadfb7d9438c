"""Every rendered and shipped manifest against the upstream Kubernetes schemas (the oldest
supported version, 1.30, and the newest ``kubernetes-validate`` knows), and through
``kubectl create --dry-run=client`` (client side only: no cluster, no server validation)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from tests.kube_manifests.conftest import (
    MANIFESTS,
    is_our_cr,
    load_docs,
    manifest_files,
    run_tool,
)

VERSIONS = ["1.30.0", latest_version()]
# Kinds with no upstream schema: ours (checked against their CRDs) and the Prometheus
# Operator's ServiceMonitor (checked field by field in test_helm_chart).
NO_UPSTREAM_SCHEMA = {"ServiceMonitor"}


def validate_all(docs: list[dict[str, Any]]) -> int:
    checked = 0
    for doc in docs:
        if is_our_cr(doc) or doc["kind"] in NO_UPSTREAM_SCHEMA:
            continue
        for version in VERSIONS:
            try:
                kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} on {version}: {e}")
        checked += 1
    return checked


def test_newest_version_is_at_least_1_30() -> None:
    assert tuple(int(p) for p in VERSIONS[1].split(".")[:2]) >= (1, 30)


def test_rendered_chart_is_valid_kubernetes(
    rendered_default: list[dict[str, Any]], rendered_gpu: list[dict[str, Any]]
) -> None:
    assert validate_all(rendered_default) == 13
    assert validate_all(rendered_gpu) == 13


def _attempt(**spec: Any) -> list[dict[str, Any]]:
    from orchestrator.kube.network import attempt_objects
    from orchestrator.resources.training import CreateTrainingJobRequest
    from orchestrator.settings import EgressRule, KubeSettings

    settings = KubeSettings(
        namespace="ml",
        gpu_runtime_class_name="nvidia",
        network_isolation_egress=[
            EgressRule.model_validate(
                {"to": [{"ipBlock": {"cidr": "172.18.0.2/32"}}], "ports": [{"port": 6443}]}
            ),
            EgressRule.model_validate(
                {
                    "to": [
                        {
                            "namespaceSelector": {"matchLabels": {"name": "storage"}},
                            "podSelector": {"matchLabels": {"app": "minio"}},
                        },
                        {"ipBlock": {"cidr": "10.0.0.0/8", "except": ["10.1.0.0/16"]}},
                    ],
                    "ports": [{"port": 9000, "endPort": 9001}],
                }
            ),
        ],
    )
    request = CreateTrainingJobRequest.model_validate(
        {
            "TrainingJobName": "resnet",
            "AlgorithmSpecification": {"TrainingImage": "registry.example/algo:1"},
            "InputDataConfig": [
                {
                    "ChannelName": "train",
                    "DataSource": {
                        "S3DataSource": {
                            "S3Uri": "s3://ml-bucket/train",
                            "S3DataDistributionType": "ShardedByS3Key",
                        }
                    },
                }
            ],
            **spec,
        }
    )
    owner = {
        "apiVersion": "orchestrator.dev/v1alpha1",
        "kind": "TrainingJob",
        "name": "resnet",
        "uid": "0b6a3ef2-55b0-4a4e-9d0b-0f9d1c2c7f11",
        "controller": True,
        "blockOwnerDeletion": True,
    }
    return attempt_objects(
        "resnet", "ml", 1, request, output_uri="s3://ml-bucket/out/model.tar.gz",
        owner=owner, settings=settings,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "kinds"),
    [
        (
            {
                "ResourceConfig": {"InstanceType": "ml.p3.2xlarge", "InstanceCount": 3},
                "EnableNetworkIsolation": True,
            },
            ["ConfigMap", "NetworkPolicy", "Service", "Job"],
        ),
        ({"ResourceConfig": {"InstanceType": "ml.m5.large"}}, ["ConfigMap", "Job"]),
        (
            {
                "AlgorithmSpecification": {"AlgorithmName": "linear-learner"},
                "ResourceConfig": {"InstanceCount": 2},
            },
            ["ConfigMap", "Service", "Job"],
        ),
    ],
    ids=["3-hosts-isolated", "1-host", "builtin-2-hosts"],
)
def test_what_a_training_attempt_becomes_is_valid_kubernetes(
    spec: dict[str, Any], kinds: list[str]
) -> None:
    docs = _attempt(**spec)
    assert [d["kind"] for d in docs] == kinds
    assert validate_all(docs) == len(kinds)


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(MANIFESTS)))
def test_manifest_is_valid_kubernetes(path: Path) -> None:
    docs = load_docs(path)
    assert docs
    if path.parent.name == "samples":
        assert all(is_our_cr(d) for d in docs)  # checked against the CRDs instead
    else:
        assert validate_all(docs) == len(docs)


def test_kubectl_parses_every_manifest(kubectl: str, discovery_kubeconfig: Path) -> None:
    files = manifest_files()
    args = [arg for f in files for arg in ("-f", str(f))]
    env = {
        **os.environ,
        "KUBECONFIG": str(discovery_kubeconfig),
        "HOME": str(discovery_kubeconfig.parent),
    }
    # --validate=false: validation would fetch the server's OpenAPI, and there is no server.
    proc = run_tool(
        kubectl, "create", "--dry-run=client", "--validate=false", "-o", "yaml", *args, env=env
    )
    assert proc.returncode == 0, proc.stderr
    out = [d for d in yaml.safe_load_all(proc.stdout) if d]
    items = [i for d in out for i in (d["items"] if d["kind"] == "List" else [d])]
    expected = [d for f in files for d in load_docs(f)]
    assert sorted((i["kind"], i["metadata"]["name"]) for i in items) == sorted(
        (d["kind"], d["metadata"]["name"]) for d in expected
    )

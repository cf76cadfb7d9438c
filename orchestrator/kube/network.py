"""The network of a training-job attempt: the headless Service that names the hosts of a
multi-host job, and the NetworkPolicy of an isolated one. Pure: plain dicts.

Both have the attempt's name (that of its Job and ConfigMap), select exactly the attempt's pods
(its training-job and attempt labels) and are owned by the TrainingJob resource.

``EnableNetworkIsolation``: the policy denies every connection to and from the attempt's pods
but three kinds. A NetworkPolicy holds a whole pod, so the orchestrator's own steps in it
(download, upload) are held with the user's container; they need the object store and, for the
upload step, the Kubernetes API, which the operator's setting ``network_isolation_egress``
(``ORCH_KUBE__NETWORK_ISOLATION_EGRESS``) allows. So the user's container can reach those
addresses too, but holds no credential for either (no keys, no keyring, no API token). Then
DNS, to the cluster's DNS pods only (the steps resolve the store; the hosts resolve each
other). Then, on several hosts, every port between the attempt's own pods. Nothing else: no
ingress from outside the attempt, no egress anywhere else. It is enforced only where the
cluster's network plugin (CNI) enforces NetworkPolicy (Calico, Cilium, ...; not kindnet or
flannel alone).
"""

from __future__ import annotations

from typing import Any

from orchestrator.kube.jobs import job_labels, job_name, step_config_map, training_job_manifest
from orchestrator.kube.objects import meta
from orchestrator.resources.training import CreateTrainingJobRequest
from orchestrator.settings import KubeSettings

DNS_PORTS = [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]


def peers_service(
    name: str, namespace: str, attempt: int, *, owner: dict[str, Any] | None
) -> dict[str, Any]:
    """The headless Service of a multi-host attempt: ``<job>-<i>.<job>.<ns>.svc`` resolves to
    host ``i`` as soon as its pod has an address (ready or not: the user's container is not
    running yet when its peers look it up)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": meta(job_name(name, attempt), namespace, job_labels(name, attempt), owner),
        "spec": {
            "clusterIP": "None",
            "publishNotReadyAddresses": True,
            "selector": job_labels(name, attempt),
        },
    }


def network_policy(
    name: str,
    namespace: str,
    attempt: int,
    *,
    hosts: int,
    owner: dict[str, Any] | None,
    settings: KubeSettings,
) -> dict[str, Any]:
    """What an attempt with ``EnableNetworkIsolation`` may reach (see the module's text).
    The caller checks that ``settings.network_isolation_egress`` is set (``plan.support``)."""
    pods = {"podSelector": {"matchLabels": job_labels(name, attempt)}}
    dns = {
        "to": [
            {
                "namespaceSelector": {},
                "podSelector": {"matchLabels": dict(settings.network_isolation_dns_labels)},
            }
        ],
        "ports": DNS_PORTS,
    }
    egress: list[dict[str, Any]] = [dns]
    ingress: list[dict[str, Any]] = []
    if hosts > 1:
        egress.append({"to": [pods]})
        ingress.append({"from": [pods]})
    egress += [rule.manifest() for rule in settings.network_isolation_egress or []]
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": meta(job_name(name, attempt), namespace, job_labels(name, attempt), owner),
        "spec": {
            "podSelector": {"matchLabels": job_labels(name, attempt)},
            "policyTypes": ["Ingress", "Egress"],
            "ingress": ingress,
            "egress": egress,
        },
    }


def attempt_objects(
    name: str,
    namespace: str,
    attempt: int,
    spec: CreateTrainingJobRequest,
    *,
    output_uri: str,
    owner: dict[str, Any] | None,
    settings: KubeSettings,
) -> list[dict[str, Any]]:
    """Every object of one attempt, in the order to create them: the ConfigMap (a Job never
    waits on a missing volume), the NetworkPolicy (the pods are isolated from their start),
    the headless Service (the hosts' names exist before their pods look for each other),
    then the Job."""
    hosts = spec.ResourceConfig.InstanceCount
    args = (name, namespace, attempt)
    out = [step_config_map(*args, spec, output_uri=output_uri, owner=owner, settings=settings)]
    if spec.EnableNetworkIsolation:
        out.append(network_policy(*args, hosts=hosts, owner=owner, settings=settings))
    if hosts > 1:
        out.append(peers_service(*args, owner=owner))
    out.append(
        training_job_manifest(*args, spec, output_uri=output_uri, owner=owner, settings=settings)
    )
    return out

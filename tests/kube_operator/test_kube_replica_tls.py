"""Replica TLS on a cluster (``ORCH_SERVING__REPLICA_TLS=true``), against the API emulator:
the operator makes the replica CA Secret once, gives each fleet variant a serving certificate
Secret for its Service's names, mounts it into the model server container only, probes over
HTTPS, routes to ``https://`` Service URLs, re-issues a certificate near its end (rolling the
pods onto it), and fails an endpoint whose CA Secret is missing or malformed with the fix."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest
from kube_harness import NS, Cluster, make_ready
from kubernetes import client
from test_kube_endpoints import deployment, setup

from orchestrator.kube import replica_tls as rt
from orchestrator.kube.operator import Operator
from orchestrator.settings import KubeSettings
from orchestrator.testing import FakeClock
from orchestrator.tls import certificate_info, load_ca_pem

CA_SECRET = "orchestrator-replica-ca"
ONE = {
    "productionVariants": [
        {"variantName": "Blue", "modelName": "resnet", "initialInstanceCount": 1}
    ]
}


def tls_operator(api: client.ApiClient, settings: KubeSettings, clock: FakeClock) -> Operator:
    op = Operator(api, settings, clock=clock, replica_tls=True)
    assert op.backend.certificates is not None
    return op


def secrets(cluster: Cluster) -> dict[str, dict[str, Any]]:
    return {s["metadata"]["name"]: s for s in cluster.items("Secret")}


def cert_of(secret: dict[str, Any]) -> bytes:
    return base64.b64decode(secret["data"]["tls.crt"])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def test_each_fleet_variant_serves_https_with_a_certificate_for_its_service(
    cluster: Cluster, api: client.ApiClient, settings: KubeSettings, clock: FakeClock
) -> None:
    op = tls_operator(api, settings, clock)
    op.backend.certificates.ensure_ca()  # type: ignore[union-attr]
    ca = secrets(cluster)[CA_SECRET]
    assert ca["type"] == "kubernetes.io/tls"
    setup(cluster, ONE)
    op.run_once()

    fleet = deployment(cluster, "web-blue")
    name = fleet["metadata"]["name"]
    serving = secrets(cluster)[f"{name}-tls"]
    assert serving["type"] == "kubernetes.io/tls"
    assert serving["metadata"]["ownerReferences"][0]["kind"] == "Endpoint"
    seen = certificate_info(cert_of(serving))
    assert seen is not None
    assert seen.names == (f"{name}.{NS}.svc.cluster.local", f"{name}.{NS}.svc")
    pair = rt.read_ca(ca, CA_SECRET, NS)
    assert seen.issuer_key_id == load_ca_pem(pair, rt.ca_source(CA_SECRET, NS))

    template = fleet["spec"]["template"]
    pod = template["spec"]
    assert {
        "name": "serving-tls",
        "secret": {"secretName": f"{name}-tls", "defaultMode": 0o440},
    } in (pod["volumes"])
    [serve] = pod["containers"]
    assert {"name": "serving-tls", "mountPath": "/opt/ml/tls", "readOnly": True} in serve[
        "volumeMounts"
    ]
    for init in pod["initContainers"]:  # the key is for the model server alone
        assert all(m["name"] != "serving-tls" for m in init["volumeMounts"])
    assert serve["args"][-4:] == [
        "--tls-cert",
        "/opt/ml/tls/tls.crt",
        "--tls-key",
        "/opt/ml/tls/tls.key",
    ]
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert serve[probe]["httpGet"]["scheme"] == "HTTPS", probe
    assert template["metadata"]["annotations"][rt.ANNOTATION_SERVING_CERT] == rt.fingerprint_of(
        cert_of(serving)
    )

    # The data plane's route: the Service by its certificate's first name, over https.
    make_ready(cluster, fleet, 1)
    op.run_once()
    status = cluster.status("Endpoint", "web")
    assert status["endpointStatus"] == "InService", status
    urls = [u for r in status["routes"] for u in r["urls"]]
    assert urls == [f"https://{name}.{NS}.svc.cluster.local:8080"]

    # Another pass, nothing due: the Secret and the pods are left as they are.
    version = serving["metadata"]["resourceVersion"]
    op.run_once()
    assert secrets(cluster)[f"{name}-tls"]["metadata"]["resourceVersion"] == version
    assert len(cluster.items("Secret")) == 2


def test_a_certificate_near_its_end_is_reissued_and_the_pods_roll_onto_it(
    cluster: Cluster, api: client.ApiClient, settings: KubeSettings, clock: FakeClock
) -> None:
    op = tls_operator(api, settings, clock)
    op.backend.certificates.ensure_ca()  # type: ignore[union-attr]
    setup(cluster, ONE)
    op.run_once()
    fleet = deployment(cluster, "web-blue")
    name = fleet["metadata"]["name"]
    first = cert_of(secrets(cluster)[f"{name}-tls"])

    clock.advance(timedelta(days=rt.CERT_DAYS - 31).total_seconds())
    op.run_once()
    assert cert_of(secrets(cluster)[f"{name}-tls"]) == first  # 31 days left: kept

    clock.advance(timedelta(days=2).total_seconds())
    op.run_once()
    renewed = cert_of(secrets(cluster)[f"{name}-tls"])
    assert renewed != first
    seen = certificate_info(renewed)
    assert seen is not None and seen.not_after > clock.now() + timedelta(days=60)
    rolled = deployment(cluster, "web-blue")["spec"]["template"]["metadata"]["annotations"]
    assert rolled[rt.ANNOTATION_SERVING_CERT] == rt.fingerprint_of(renewed)


def test_a_deleted_endpoint_takes_its_serving_certificates_with_it(
    cluster: Cluster, api: client.ApiClient, settings: KubeSettings, clock: FakeClock
) -> None:
    op = tls_operator(api, settings, clock)
    op.backend.certificates.ensure_ca()  # type: ignore[union-attr]
    setup(cluster, ONE)
    op.run_once()
    assert len(cluster.items("Secret")) == 2
    cluster.delete("Endpoint", "web")
    for _ in range(3):
        op.run_once()
    assert list(secrets(cluster)) == [CA_SECRET]  # the CA stays: made once


def test_the_ca_is_made_once_and_kept(
    cluster: Cluster, api: client.ApiClient, settings: KubeSettings, clock: FakeClock
) -> None:
    tls_operator(api, settings, clock).backend.certificates.ensure_ca()  # type: ignore[union-attr]
    first = secrets(cluster)[CA_SECRET]["data"]
    tls_operator(api, settings, clock).backend.certificates.ensure_ca()  # type: ignore[union-attr]
    assert secrets(cluster)[CA_SECRET]["data"] == first


def _fails_naming_the_ca(cluster: Cluster, op: Operator, problem: str) -> None:
    setup(cluster, ONE)
    op.run_once()
    status = cluster.status("Endpoint", "web")
    assert status["endpointStatus"] == "Failed", status
    reason = status["failureReason"]
    assert f"replica CA Secret {NS}/{CA_SECRET}" in reason and problem in reason
    assert "restart the operator" in reason
    assert cluster.items("Deployment") == []


def test_a_missing_ca_secret_fails_the_endpoint_with_the_fix(
    cluster: Cluster, api: client.ApiClient, settings: KubeSettings, clock: FakeClock
) -> None:
    _fails_naming_the_ca(cluster, tls_operator(api, settings, clock), "does not exist")


def test_a_malformed_ca_secret_fails_the_endpoint_with_the_fix(
    cluster: Cluster, api: client.ApiClient, settings: KubeSettings, clock: FakeClock
) -> None:
    body = client.V1Secret(
        metadata=client.V1ObjectMeta(name=CA_SECRET),
        type="kubernetes.io/tls",
        data={"tls.crt": base64.b64encode(b"junk").decode(), "tls.key": "eA=="},
    )
    client.CoreV1Api(api).create_namespaced_secret(NS, body)
    op = tls_operator(api, settings, clock)
    op.backend.certificates.ensure_ca()  # type: ignore[union-attr]  # said, not replaced
    assert secrets(cluster)[CA_SECRET]["data"]["tls.key"] == "eA=="
    _fails_naming_the_ca(cluster, op, "not a PEM certificate")


def test_a_model_with_its_own_image_is_refused_under_replica_tls(
    cluster: Cluster, api: client.ApiClient, settings: KubeSettings, clock: FakeClock
) -> None:
    op = tls_operator(api, settings, clock)
    op.backend.certificates.ensure_ca()  # type: ignore[union-attr]
    config = {"productionVariants": [{"variantName": "g", "modelName": "resnet-gpu"}]}
    setup(cluster, config)
    op.run_once()
    status = cluster.status("Endpoint", "web")
    assert status["endpointStatus"] == "Failed"
    assert "its own image" in status["failureReason"]
    assert "ORCH_SERVING__REPLICA_TLS" in status["failureReason"]

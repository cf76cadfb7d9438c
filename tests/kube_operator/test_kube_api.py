"""On a cluster the custom resources are the store: REST, the Python client and ``kubectl`` are
three doors onto the same objects, which the operator reconciles.

The control-plane API runs in-process with ``ORCH_DESIRED_STATE=kubernetes`` against the API
emulator; it keeps no state of its own (keys from a file, routes from the Endpoint status).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kube_harness import KEY, NS, Cluster, cluster_settings, make_ready
from kubernetes import client

from orchestrator.api.app import build_control_plane, create_app
from orchestrator.api.service import ControlPlane
from orchestrator.client import Client
from orchestrator.errors import ConflictError, NotFoundError, TemporaryError, ValidationError
from orchestrator.kube.operator import Operator
from orchestrator.settings import KubeSettings
from orchestrator.testing import ServerThread, training_job_spec

KUBECTL_SPEC: dict[str, Any] = {
    "algorithmSpecification": {"trainingImage": "registry.example/algo:1"},
    "resourceConfig": {"instanceType": "ml.m5.large"},
}


@dataclass
class Front:
    plane: ControlPlane
    client: Client
    url: str


@pytest.fixture
def front(api: client.ApiClient, settings: KubeSettings, tmp_path: Path) -> Iterator[Front]:
    plane = build_control_plane(cluster_settings(tmp_path, settings), kube_api=api)
    with ServerThread(create_app(plane)) as server, Client(server.url, KEY) as c:
        yield Front(plane, c, server.url)


def rest_job(front: Front, name: str, **fields: Any) -> str:
    front.client.upload_bytes(b"print('hi')\n", "s3://orchestrator/code/sourcedir.tar.gz")
    return front.client.create_training_job(training_job_spec(name, **fields))


def test_a_job_from_rest_and_one_from_kubectl_are_the_same_kind_of_object(
    front: Front, cluster: Cluster, operator: Operator
) -> None:
    assert front.plane.controller is None  # the API runs no work on a cluster
    rest_job(front, "from-rest")
    cluster.create("TrainingJob", "from-kubectl", KUBECTL_SPEC)

    # The REST job is a custom resource (kubectl get otj shows it), in camelCase.
    cr = cluster.get("TrainingJob", "from-rest")
    assert cr is not None
    assert cr["spec"]["hyperParameters"]["sagemaker_program"] == "train.py"
    assert "trainingJobName" not in cr["spec"]  # the name is metadata.name

    operator.run_once()
    # Both run as batch/v1 Jobs.
    assert sorted(cluster.names("Job")) == ["from-kubectl-1", "from-rest-1"]
    # orch jobs list shows both, with the status the operator wrote.
    listed = {s.TrainingJobName: s for s in front.client.list_training_jobs().TrainingJobSummaries}
    assert set(listed) == {"from-rest", "from-kubectl"}
    for name, summary in listed.items():
        described = front.client.describe_training_job(name)
        status = cluster.status("TrainingJob", name)
        assert described.TrainingJobStatus == status["trainingJobStatus"] == "InProgress"
        assert described.SecondaryStatus == status["secondaryStatus"] == "Starting"
        assert summary.TrainingJobStatus == "InProgress"


def test_creates_are_idempotent_and_a_different_spec_is_409(front: Front, cluster: Cluster) -> None:
    arn = rest_job(front, "same")
    assert rest_job(front, "same") == arn  # same spec: the existing job (200)
    with pytest.raises(ConflictError, match="different spec"):
        hp = {**training_job_spec("same")["HyperParameters"], "epochs": "9"}
        rest_job(front, "same", HyperParameters=hp)
    # kubectl's spec and the client's compare as what they mean, not as text.
    cluster.create("TrainingJob", "applied", KUBECTL_SPEC)
    front.client.create_training_job(
        {
            "TrainingJobName": "applied",
            "AlgorithmSpecification": {"TrainingImage": "registry.example/algo:1"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
        }
    )
    assert len([i for i in cluster.names("Job")]) == 0  # nothing ran twice, nothing ran yet


def test_stop_and_delete_from_either_side(
    front: Front, cluster: Cluster, operator: Operator
) -> None:
    rest_job(front, "rest-stop")
    cluster.create("TrainingJob", "kubectl-stop", KUBECTL_SPEC)
    operator.run_once()
    # Stopped through REST: the annotation kubectl would set; the operator suspends the Job.
    front.client.stop_training_job("rest-stop")
    cr = cluster.get("TrainingJob", "rest-stop")
    assert cr is not None and cr["metadata"]["annotations"]["orchestrator.dev/stop"] == "true"
    cluster.annotate("TrainingJob", "kubectl-stop", {"orchestrator.dev/stop": "true"})
    operator.run_once()
    for name in ("rest-stop-1", "kubectl-stop-1"):
        job = next(j for j in cluster.items("Job") if j["metadata"]["name"] == name)
        assert job["spec"]["suspend"] is True
    assert front.client.describe_training_job("kubectl-stop").TrainingJobStatus == "Stopping"
    # The Job controller suspends them; the operator records Stopped.
    for name in ("rest-stop-1", "kubectl-stop-1"):
        cluster.job_status(name, {"conditions": [{"type": "Suspended", "status": "True"}]})
    operator.run_once()
    assert front.client.describe_training_job("rest-stop").TrainingJobStatus == "Stopped"

    # Deleted through REST and through kubectl: the finalizer holds each until cleaned up.
    front.client.delete_training_job("rest-stop")
    cluster.delete("TrainingJob", "kubectl-stop")
    for _ in range(2):
        operator.run_once()
    assert cluster.items("Job") == [] and cluster.items("ConfigMap") == []
    for name in ("rest-stop", "kubectl-stop"):
        assert cluster.get("TrainingJob", name) is None
        with pytest.raises(NotFoundError):
            front.client.describe_training_job(name)


def test_lists_filter_and_page_like_sagemaker(front: Front, cluster: Cluster) -> None:
    for i in range(5):
        cluster.create("TrainingJob", f"job-{i}", KUBECTL_SPEC)
    cluster.create("TrainingJob", "other", KUBECTL_SPEC)
    seen: list[str] = []
    token = None
    while True:
        page = front.client.list_training_jobs(
            NameContains="job", MaxResults=2, NextToken=token, SortOrder="Ascending"
        )
        seen += [s.TrainingJobName for s in page.TrainingJobSummaries]
        token = page.NextToken
        if token is None:
            break
    assert sorted(seen) == [f"job-{i}" for i in range(5)] and len(seen) == 5
    assert {s.TrainingJobName for s in front.client.list_training_jobs(
        StatusEquals="InProgress").TrainingJobSummaries} == {*seen, "other"}  # fmt: skip
    with pytest.raises(ValidationError, match="NextToken"):
        front.client.list_training_jobs(NextToken="garbage")


def test_a_bad_or_unsupported_spec_is_a_400_and_nothing_is_created(
    front: Front, cluster: Cluster
) -> None:
    with pytest.raises(ValidationError, match=r"ResourceConfig\.InstanceType"):
        rest_job(front, "bad", ResourceConfig={"InstanceType": "ml.nonsense"})
    with pytest.raises(ValidationError) as refused:
        front.client.create_model(
            {
                "ModelName": "pipe",
                "Containers": [{"Image": "a:1"}, {"Image": "b:1"}],
            }
        )
    assert refused.value.field == "Containers"
    assert "on the kubernetes backend" in refused.value.message
    assert cluster.get("TrainingJob", "bad") is None and cluster.get("Model", "pipe") is None


def test_an_unreachable_kubernetes_api_is_a_503_with_retry_after(
    settings: KubeSettings, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nothing listens there
    config = client.Configuration()
    config.host = f"http://127.0.0.1:{port}"
    with client.ApiClient(config) as dead:
        plane = build_control_plane(cluster_settings(tmp_path, settings), kube_api=dead)
        with ServerThread(create_app(plane)) as server, Client(server.url, KEY) as c:
            c.upload_bytes(b"x", "s3://orchestrator/code/sourcedir.tar.gz")
            with pytest.raises(TemporaryError) as down:
                c.list_training_jobs()
            assert "Kubernetes API unreachable" in down.value.message
            resp = c._http.get("/api/v1/training-jobs")
            assert resp.status_code == 503 and int(resp.headers["Retry-After"]) >= 1
            with pytest.raises(TemporaryError):
                c.create_training_job(training_job_spec("never"))


def test_a_call_the_kubernetes_api_answers_too_slowly_is_sent_once_within_its_deadline() -> None:
    """urllib3 by itself sends a GET that timed out three more times (four deadlines in a
    row); the product's client (``api_client``) sends each call once: one deadline, then a
    temporary error that says so."""
    import socket
    import threading
    import time

    from orchestrator.errors import BackendError
    from orchestrator.kube.api import api_client, call

    received: list[bytes] = []
    held: list[socket.socket] = []
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(0.1)
        done = threading.Event()

        def mute() -> None:  # reads each request, never answers
            while not done.is_set():
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    continue
                held.append(conn)
                received.append(conn.recv(65536))

        thread = threading.Thread(target=mute, daemon=True)
        thread.start()
        config = client.Configuration()
        config.host = f"http://127.0.0.1:{server.getsockname()[1]}"
        with api_client(config) as api:
            began = time.monotonic()
            with pytest.raises(BackendError, match="did not answer in time"):
                pods = client.CoreV1Api(api).list_namespaced_pod
                call("list pods", pods, NS, _request_timeout=(1.0, 0.3))
            took = time.monotonic() - began
        done.set()
        thread.join(5)
    for conn in held:
        conn.close()
    assert len(received) == 1 and received[0].startswith(b"GET /api/v1/namespaces/ml/pods")
    assert took < 1.0  # 0.3 s, not 1.2 s
    assert config.retries is None  # the caller's configuration is left as it was


def test_a_lost_resource_version_race_is_retried_not_overwritten(
    front: Front, cluster: Cluster, operator: Operator
) -> None:
    """UpdateEndpoint reads the Endpoint, then writes it with that resourceVersion; the
    operator writes in between: the API's write fails (409) and is retried on a fresh read."""
    cluster.create("Model", "m", {"primaryContainer": {"image": "registry.example/serve:1"}})
    one = {"productionVariants": [{"variantName": "main", "modelName": "m"}]}
    cluster.create("EndpointConfig", "v1", one)
    cluster.create("EndpointConfig", "v2", one)
    cluster.create("Endpoint", "web", {"endpointConfigName": "v1"})
    operator.run_once()
    make_ready(cluster, cluster.one("Deployment"), 1)
    operator.run_once()

    source = front.plane.store
    real = source.update_spec
    raced: list[str] = []

    def racing(record: Any, spec: Any, **kw: Any) -> Any:
        if not raced:  # another writer gets in first, once
            raced.append(record.version)
            cluster.annotate("Endpoint", "web", {"team": "search"})
        return real(record, spec, **kw)

    source.update_spec = racing  # type: ignore[method-assign]
    front.client.update_endpoint("web", "v2")
    cr = cluster.get("Endpoint", "web")
    assert cr is not None and raced
    assert cr["spec"]["endpointConfigName"] == "v2"
    assert cr["metadata"]["annotations"]["team"] == "search"  # the other write survived
    assert cr["metadata"]["resourceVersion"] != raced[0]


def test_endpoints_made_through_rest_are_served_from_the_cluster(
    front: Front, cluster: Cluster, operator: Operator
) -> None:
    c = front.client
    c.create_model({"ModelName": "m", "PrimaryContainer": {"Image": "registry.example/serve:1"}})
    c.create_endpoint_config(
        {
            "EndpointConfigName": "cfg",
            "ProductionVariants": [{"VariantName": "main", "ModelName": "m"}],
        }
    )
    c.create_endpoint({"EndpointName": "web", "EndpointConfigName": "cfg"})
    with pytest.raises(ValidationError, match="EndpointConfigName"):
        c.create_endpoint({"EndpointName": "orphan", "EndpointConfigName": "nope"})
    operator.run_once()
    make_ready(cluster, cluster.one("Deployment"), 1)
    operator.run_once()
    assert c.describe_endpoint("web").EndpointStatus == "InService"
    assert [e.EndpointName for e in c.list_endpoints().Endpoints] == ["web"]
    # The API decodes the route the operator wrote (once its watch or relist has it).
    routes = front.plane.routes
    for service in front.plane.services:
        if hasattr(service, "refresh"):  # the routes' watch (not the key re-wrap)
            service.refresh()
    route = routes.get("web")
    assert route is not None and route.ready
    assert route.variants[0].urls == (f"http://web-main-cfg.{NS}.svc.cluster.local:8080",)
    c.delete_endpoint("web")
    for _ in range(3):
        operator.run_once()
    assert cluster.get("Endpoint", "web") is None and cluster.items("Deployment") == []


def test_the_operator_reads_endpoint_traffic_from_the_api_pods(
    front: Front, api: client.ApiClient, settings: KubeSettings
) -> None:
    """What the API's router recorded is what the operator's autoscaler and alarms read, added
    up over the API pods (here two, both this one); no API pod answering is 'unknown'."""
    from datetime import timedelta

    from orchestrator.kube.load import ApiTraffic

    series = front.plane.series
    assert series is not None
    now = series.clock.now()
    at = now.timestamp() - 2
    for i in range(30):
        status = 500 if i < 3 else 200
        series.record_invocation(
            "web", "main", "v2", status=status, model_us=900.0, overhead_us=100.0, at=at
        )
    traffic = ApiTraffic(api, settings, namespace=NS, api_key=KEY, urls=lambda: [front.url] * 2)
    load = traffic.variant_load("web", "main", "v2", 10, now)
    assert load is not None
    assert load.invocations_per_minute == pytest.approx(2 * 30 * 6)  # 30 in 10 s, two pods
    assert load.last_invocation_at is not None
    health = traffic.fleet_health("web", "v2", now - timedelta(seconds=5), now)
    assert health is not None and (health.invocations, health.errors_5xx) == (60, 6)
    assert health.model_latency_p99_us is not None and health.model_latency_p99_us > 800
    unknown = ApiTraffic(
        api, settings, namespace=NS, api_key="orch_x_wrong", urls=lambda: [front.url]
    )
    assert unknown.variant_load("web", "main", "v2", 10, now) is None  # 401: not a measurement
    traffic.close()
    unknown.close()


def test_traffic_queries_name_their_bad_parameters(front: Front) -> None:
    r = front.client._http.get("/api/v1/endpoints/web/traffic", params={"VariantName": "v"})
    assert r.status_code == 400 and "EndpointConfigName" in r.text
    r = front.client._http.get(
        "/api/v1/endpoints/web/fleet-health",
        params={"EndpointConfigName": "c", "Since": "yesterday"},
    )
    assert r.status_code == 400 and r.json()["field"] == "Since"


def test_an_isolated_job_is_a_400_unless_the_cluster_says_what_its_steps_may_reach(
    api: client.ApiClient, settings: KubeSettings, tmp_path: Path, cluster: Cluster
) -> None:
    sealed = training_job_spec("sealed", EnableNetworkIsolation=True)
    rule = {"to": [{"ipBlock": {"cidr": "10.0.0.9/32"}}]}
    for egress, accepted in ((None, False), ([rule], True)):
        kube = settings.model_copy(update={"network_isolation_egress": egress})
        plane = build_control_plane(cluster_settings(tmp_path, kube), kube_api=api)
        with ServerThread(create_app(plane)) as server, Client(server.url, KEY) as c:
            c.upload_bytes(b"x", "s3://orchestrator/code/sourcedir.tar.gz")
            if accepted:
                c.create_training_job(sealed)
                continue
            with pytest.raises(ValidationError) as refused:
                c.create_training_job(sealed)
            assert refused.value.field == "EnableNetworkIsolation"
            assert "on the kubernetes backend" in refused.value.message
            assert "ORCH_KUBE__NETWORK_ISOLATION_EGRESS" in refused.value.message
            assert cluster.get("TrainingJob", "sealed") is None
    assert cluster.get("TrainingJob", "sealed") is not None

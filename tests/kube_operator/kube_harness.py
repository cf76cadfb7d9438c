"""kmock's Kubernetes API emulator over HTTP, the real client, and the cluster's part.

The emulator runs no controllers: no pod appears for a Job and no status changes by itself, so
the tests play the cluster (``Cluster``) by creating pods and patching Job, Pod and Deployment
status through the same API, exactly where kubelet and the Job controller would.
``CallCounter`` counts what a client asks the API (the tests of what one pass costs, and the
benchmarks in ``benchmarks/`` that import this module).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import kmock
import kmock._internal.dns as _kmock_dns
from aiohttp import web
from kmock._internal.k8s import KubernetesError, KubernetesObjectConflictError
from kubernetes import client

from orchestrator.kube.api import api_client
from orchestrator.kube.convert import API_GROUP, API_VERSION
from orchestrator.resources.kinds import KINDS
from orchestrator.settings import KubeSettings, Settings

NS = "ml"
RESOURCES = {
    "batch/v1/jobs": "Job",
    "v1/pods": "Pod",
    "v1/configmaps": "ConfigMap",
    "v1/services": "Service",
    "apps/v1/deployments": "Deployment",
    "autoscaling/v2/horizontalpodautoscalers": "HorizontalPodAutoscaler",
    "policy/v1/poddisruptionbudgets": "PodDisruptionBudget",
    "networking.k8s.io/v1/networkpolicies": "NetworkPolicy",
    "v1/secrets": "Secret",
    **{f"{API_GROUP}/{API_VERSION}/{k.crd_plural}": k.name for k in KINDS.values()},
}
PLURAL = {name: kind.crd_plural for name, kind in KINDS.items()}
# The API key of the cluster-mode API in these tests (``keys_file`` holds its hash).
KEY_ID, SECRET = "a1b2c3d4e5f6", "not-a-real-secret-but-long-enough-for-tests"
KEY = f"orch_{KEY_ID}_{SECRET}"
# /api/v1/namespaces/ml/pods[/NAME[/SUB]] and /apis/GROUP/VERSION/namespaces/ml/PLURAL[...]
_PATH = re.compile(
    r"/namespaces/[^/]+/(?P<plural>[^/?]+)(?:/(?P<name>[^/?]+))?(?:/(?P<sub>[^/?]+))?"
)


def stamp(seconds: float = 0.0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")


class ApiServer(kmock.KubernetesEmulator):
    """kmock's emulator plus what the real API server does and the product relies on: every
    object gets a uid and a creationTimestamp; every write bumps ``resourceVersion``; a write
    that names a ``resourceVersion`` other than the stored one fails with 409 Conflict (the
    optimistic concurrency of status, spec and finalizer writes); a spec change bumps
    ``generation``; errors (404, 409) answer with their status code. Kubelet's part of the
    API, a container's log (``pods/NAME/log``), is served from ``logs`` (what a test puts
    there for ``(pod, container)``); a container with none has not started (400).

    For fault tests: ``created`` logs every create that succeeded, and ``latency`` (when set)
    says how many seconds to hold each answer back, the request already carried out, as a slow
    or far-away API server would."""

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        self._writes = asyncio.Lock()
        self._version = 0
        self.logs: dict[tuple[str, str], str] = {}
        # Every write, as (action, plural, name, subresource): what a pass changed.
        self.writes: list[tuple[str, str, str | None, str | None]] = []
        # Every create that succeeded, as (plural, name): an object made twice shows here.
        self.created: list[tuple[str, str]] = []
        self.latency: Callable[[Any], float] | None = None
        self._unmatched: set[int] = set()  # id() of the requests not yet handed over

    def _next(self) -> str:
        self._version += 1
        return str(self._version)

    async def _handle(self, request: Any) -> Any:
        # kmock keeps every request for assertions, and finds the reaction to one by walking
        # that log with every reaction's filter: each request costs as much as the log is long.
        # No test here asserts on it: keep only the requests the walk must still find, those
        # not yet handed to their reaction (``_matched``; a watch is handed over at its start).
        self._unmatched.add(id(request))
        self._requests[:] = [r for r in self._requests if id(r) in self._unmatched]
        # Errors answer as the API server does (a Status with its code), not as a 500.
        try:
            response = await self._strict(request)
        except KubernetesError as e:
            response = await self._render_error(e)
        finally:
            self._unmatched.discard(id(request))
        delay = self.latency(request) if self.latency is not None else 0.0
        if delay > 0:
            await asyncio.sleep(delay)
        return response

    def _matched(self, request: Any) -> None:
        self._unmatched.discard(id(request))

    async def _serve_list(self, request: Any) -> Any:
        self._matched(request)
        return await super()._serve_list(request)

    async def _serve_watch(self, request: Any) -> Any:
        self._matched(request)
        async for event in super()._serve_watch(request):
            yield event

    async def _serve_fetch(self, request: Any) -> Any:
        self._matched(request)
        return await super()._serve_fetch(request)

    async def _serve_create(self, request: Any) -> Any:
        self._matched(request)
        return await super()._serve_create(request)

    async def _serve_update(self, request: Any) -> Any:
        self._matched(request)
        return await super()._serve_update(request)

    async def _serve_delete(self, request: Any) -> Any:
        self._matched(request)
        return await super()._serve_delete(request)

    async def _strict(self, request: Any) -> Any:
        action = request.action
        if request.subresource == "log" and action == kmock.action.FETCH:
            return self._log(request)
        mutating = request.resource is not None and action in {
            kmock.action.CREATE,
            kmock.action.UPDATE,
            kmock.action.DELETE,
        }
        if not mutating:
            return await super()._handle(request)
        async with self._writes:  # check and write as one step, as etcd does
            self.writes.append(
                (str(action), request.resource.plural, request.name, request.subresource)
            )
            data = request.data if isinstance(request.data, dict) else None
            key = None
            if action == kmock.action.CREATE and data is not None:
                meta = data.setdefault("metadata", {})
                meta.setdefault("uid", str(uuid.uuid4()))
                meta.setdefault("creationTimestamp", stamp())
                meta["resourceVersion"] = self._next()
                meta["generation"] = 1
            elif action == kmock.action.UPDATE and data is not None:
                key = (request.resource, request.namespace, request.name)
                current = self._objects[key] if key in self._objects else None  # noqa: SIM401 - no .get()
                if current is not None and not current.deleted:
                    stored = current.get("metadata", {})
                    meta = data.get("metadata") or {}
                    wanted = meta.get("resourceVersion")
                    if wanted is not None and str(wanted) != str(stored.get("resourceVersion")):
                        raise KubernetesObjectConflictError()
                    data.setdefault("metadata", {})["resourceVersion"] = self._next()
                    spec = data.get("spec")
                    if spec is not None and request.subresource != "status":
                        merged = dict(current.get("spec") or {})
                        merged.update(spec)
                        if merged != current.get("spec"):
                            generation = int(stored.get("generation") or 1) + 1
                            data["metadata"]["generation"] = generation
            elif action == kmock.action.DELETE:
                key = (request.resource, request.namespace, request.name)
            response = await super()._handle(request)
            if action == kmock.action.CREATE and data is not None:
                self.created.append((request.resource.plural, str(data["metadata"].get("name"))))
            if action == kmock.action.DELETE and key is not None and key in self._objects:
                obj = self._objects[key]
                if not obj.deleted:  # held by a finalizer: marked, so a new version
                    obj.patch({"metadata": {"resourceVersion": self._next()}})
            return response

    def _log(self, request: Any) -> Any:
        container = str((request.params or {}).get("container", ""))
        text = self.logs.get((request.name, container))
        if text is None:
            message = f'container "{container}" in pod "{request.name}" is waiting to start'
            body = {"kind": "Status", "status": "Failure", "message": message, "code": 400}
            return web.json_response(body, status=400)
        return web.Response(text=text, content_type="text/plain")


async def _no_interception_enter(self: Any) -> Any:
    return self


async def _no_interception_exit(self: Any, *_exc: object) -> None:
    return None


# Each kmock server patches aiohttp's resolver for the whole process while it runs and insists
# that servers stop in the reverse order they started. These emulators are reached through
# the kubernetes client (urllib3), never through aiohttp, and two of them may live in one
# process with interleaved lives (the conformance suite's session emulator and a test module's
# on one xdist worker), which made the last stop raise. So the interception is switched off.
_kmock_dns.AiohttpInterceptor.__aenter__ = _no_interception_enter  # type: ignore[method-assign]
_kmock_dns.AiohttpInterceptor.__aexit__ = _no_interception_exit  # type: ignore[method-assign]


class Emulator:
    """The API server double (``ApiServer``) served from a thread with its own event loop."""

    def __init__(self) -> None:
        self.km = ApiServer()
        for key, kind in RESOURCES.items():
            self.km.resources[key] = kmock.ResourceInfo(
                kind=kind, namespaced=True, subresources={"status"}
            )
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the API emulator did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        async with kmock.Server(self.km):
            self._ready.set()
            await self._stop.wait()
            # Watch streams never end by themselves here (kmock ignores timeoutSeconds): end
            # them, as an API server going away would, so that the server can shut down.
            me = asyncio.current_task()
            for task in asyncio.all_tasks():
                if task is not me:
                    task.cancel()

    @property
    def url(self) -> str:
        return str(self.km.url).rstrip("/")

    def close(self) -> None:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._loop.close()


class Cluster:
    """The client side of the tests: custom resources in, the cluster's part played."""

    def __init__(self, api: client.ApiClient) -> None:
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.batch = client.BatchV1Api(api)
        self.apps = client.AppsV1Api(api)
        self.hpa = client.AutoscalingV2Api(api)
        self.policy = client.PolicyV1Api(api)
        self.networking = client.NetworkingV1Api(api)

    # custom resources
    def create(self, kind: str, name: str, spec: Any, **meta: Any) -> dict[str, Any]:
        body = {
            "apiVersion": f"{API_GROUP}/{API_VERSION}",
            "kind": kind,
            "metadata": {
                "name": name,
                "namespace": NS,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": stamp(),
                **meta,
            },
            "spec": spec,
        }
        self.custom.create_namespaced_custom_object(API_GROUP, API_VERSION, NS, PLURAL[kind], body)
        return body

    def resources(self, kind: str) -> list[dict[str, Any]]:
        """Every custom resource of ``kind`` in the namespace."""
        found = self.custom.list_namespaced_custom_object(API_GROUP, API_VERSION, NS, PLURAL[kind])
        return list(found["items"])

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        found = [i for i in self.resources(kind) if i["metadata"]["name"] == name]
        return found[0] if found else None

    def status(self, kind: str, name: str) -> dict[str, Any]:
        obj = self.get(kind, name)
        assert obj is not None
        return dict(obj.get("status") or {})

    def annotate(self, kind: str, name: str, annotations: dict[str, str]) -> None:
        self.custom.patch_namespaced_custom_object(
            API_GROUP,
            API_VERSION,
            NS,
            PLURAL[kind],
            name,
            {"metadata": {"annotations": annotations}},
        )

    def delete(self, kind: str, name: str) -> None:
        self.custom.delete_namespaced_custom_object(API_GROUP, API_VERSION, NS, PLURAL[kind], name)

    # plain objects, as dicts
    def items(self, kind: str) -> list[dict[str, Any]]:
        fn = {
            "Job": self.batch.list_namespaced_job,
            "Pod": self.core.list_namespaced_pod,
            "ConfigMap": self.core.list_namespaced_config_map,
            "Service": self.core.list_namespaced_service,
            "Deployment": self.apps.list_namespaced_deployment,
            "HorizontalPodAutoscaler": self.hpa.list_namespaced_horizontal_pod_autoscaler,
            "PodDisruptionBudget": self.policy.list_namespaced_pod_disruption_budget,
            "NetworkPolicy": self.networking.list_namespaced_network_policy,
            "Secret": self.core.list_namespaced_secret,
        }[kind]
        data = json.loads(fn(NS, _preload_content=False).data)
        return list(data.get("items") or [])

    def names(self, kind: str) -> list[str]:
        return sorted(i["metadata"]["name"] for i in self.items(kind))

    def one(self, kind: str) -> dict[str, Any]:
        items = self.items(kind)
        assert len(items) == 1, [i["metadata"]["name"] for i in items]
        return items[0]

    # the cluster's part
    def job_status(self, name: str, status: dict[str, Any]) -> None:
        self.batch.patch_namespaced_job_status(
            name, NS, {"status": status}, _content_type="application/merge-patch+json"
        )

    def pod(self, job: dict[str, Any], name: str, status: dict[str, Any], **meta: Any) -> None:
        """Create the pod a Job or Deployment would (once), or move its status on (kubelet)."""
        labels = job["spec"]["template"]["metadata"]["labels"]
        for key in ("initContainerStatuses", "containerStatuses"):
            for cs in status.get(key) or []:
                for field, value in {
                    "image": "x",
                    "imageID": "",
                    "ready": False,
                    "restartCount": 0,
                }.items():
                    cs.setdefault(field, value)
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": NS,
                "labels": labels,
                "creationTimestamp": stamp(),
                **meta,
            },
            "spec": job["spec"]["template"]["spec"],
            "status": status,
        }
        existing = [p for p in self.items("Pod") if p["metadata"]["name"] == name]
        if existing:
            self.core.patch_namespaced_pod_status(
                name, NS, {"status": status}, _content_type="application/merge-patch+json"
            )
        else:
            self.core.create_namespaced_pod(NS, body)

    def deployment_status(self, name: str, status: dict[str, Any]) -> None:
        self.apps.patch_namespaced_deployment_status(
            name, NS, {"status": status}, _content_type="application/merge-patch+json"
        )


def ready_status(at: str | None = None) -> dict[str, Any]:
    """A serving pod that answers its readiness probe (as kubelet reports it)."""
    when = at or stamp()
    return {
        "phase": "Running",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": when}],
        "containerStatuses": [
            {"name": "serve", "state": {"running": {"startedAt": when}}, "ready": True}
        ],
    }


def make_ready(cluster: Cluster, deployment: dict[str, Any], count: int) -> list[str]:
    """The Deployment's controller and kubelet: ``count`` ready pods of it (named after it)."""
    name = deployment["metadata"]["name"]
    pods = [f"{name}-{i}" for i in range(count)]
    for pod in pods:
        cluster.pod(deployment, pod, ready_status())
    return pods


# --- training pods as kubelet reports them (single host: download, then algo and upload) ----
def running(download_at: str, train_at: str | None = None) -> dict[str, Any]:
    """The pod downloading since ``download_at``; given ``train_at``, training since then."""
    init = {"name": "download", "state": {"running": {"startedAt": download_at}}}
    if train_at is None:
        return {"phase": "Pending", "initContainerStatuses": [init]}
    init = {
        "name": "download",
        "state": {"terminated": {"exitCode": 0, "startedAt": download_at, "finishedAt": train_at}},
    }
    return {
        "phase": "Running",
        "initContainerStatuses": [init],
        "containerStatuses": [
            {"name": "algo", "state": {"running": {"startedAt": train_at}}},
            {"name": "upload", "state": {"running": {"startedAt": train_at}}},
        ],
    }


def algo_exited(code: int, message: str = "", *, reason: str = "Error") -> dict[str, Any]:
    status = running(stamp(-30), stamp(-20))
    status["phase"] = "Failed" if code else "Succeeded"
    status["containerStatuses"][0]["state"] = {
        "terminated": {
            "exitCode": code,
            "reason": reason,
            "message": message,
            "startedAt": stamp(-20),
            "finishedAt": stamp(-10),
        }
    }
    return status


def trained(download_at: str, train_at: str, ended_at: str) -> dict[str, Any]:
    """The pod whose ``algo`` container exited 0 at ``ended_at`` (``upload`` still running)."""
    status = running(download_at, train_at)
    status["containerStatuses"][0]["state"] = {
        "terminated": {"exitCode": 0, "startedAt": train_at, "finishedAt": ended_at}
    }
    return status


def complete(at: str) -> dict[str, Any]:
    """A one-pod Job's status once its pod succeeded (the Job controller's)."""
    return {
        "active": 0,
        "succeeded": 1,
        "completionTime": at,
        "conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": at}],
    }


class JobController:
    """The Job controller and kubelet for single-host training Jobs that all succeed.

    Each ``step()`` moves every Job that is due one stage on: started, its pod downloading ->
    training -> ``algo`` exited 0 -> ``upload`` done and the Job ``Complete``. A Job is due
    ``pace`` seconds after its last move (first seen: after one pace), ``pace`` drawn once per
    Job from ``rng`` in ``paces``, so that Jobs end at various times.
    """

    STAGES = 4

    def __init__(
        self, cluster: Cluster, rng: random.Random, paces: tuple[float, float] = (0.1, 1.0)
    ) -> None:
        self.cluster = cluster
        self.rng = rng
        self.paces = paces
        self._stage: dict[str, int] = {}
        self._due: dict[str, float] = {}
        self._pace: dict[str, float] = {}
        self._times: dict[str, list[str]] = {}

    def finished(self) -> set[str]:
        return {name for name, stage in self._stage.items() if stage >= self.STAGES}

    def step(self) -> None:
        now = time.monotonic()
        for job in self.cluster.items("Job"):
            name = job["metadata"]["name"]
            if name not in self._stage:
                self._pace[name] = self.rng.uniform(*self.paces)
                self._stage[name], self._due[name] = 0, now + self._pace[name]
                continue
            if self._stage[name] >= self.STAGES or now < self._due[name]:
                continue
            self._move(job, name, self._stage[name])
            self._stage[name] += 1
            self._due[name] = time.monotonic() + self._pace[name]

    def _move(self, job: dict[str, Any], name: str, stage: int) -> None:
        times = self._times.setdefault(name, [])
        times.append(stamp())
        pod = f"{name}-pod"
        if stage == 0:
            self.cluster.job_status(name, {"startTime": times[0], "active": 1})
            self.cluster.pod(job, pod, running(times[0]))
        elif stage == 1:
            self.cluster.pod(job, pod, running(times[0], times[1]))
        elif stage == 2:
            self.cluster.pod(job, pod, trained(times[0], times[1], times[2]))
        else:
            done = trained(times[0], times[1], times[2])
            done["phase"] = "Succeeded"
            done["containerStatuses"][1]["state"] = {
                "terminated": {"exitCode": 0, "startedAt": times[1], "finishedAt": times[3]}
            }
            self.cluster.pod(job, pod, done)
            self.cluster.job_status(name, complete(times[3]))


# --- what processes of the product are given to find the cluster --------------------------
def kubeconfig(path: Path, url: str) -> Path:
    """A kubeconfig naming the emulator (no credentials: it asks for none); JSON is YAML."""
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "emulator", "cluster": {"server": url}}],
        "users": [{"name": "test", "user": {}}],
        "contexts": [
            {
                "name": "emulator",
                "context": {"cluster": "emulator", "user": "test", "namespace": NS},
            }
        ],
        "current-context": "emulator",
    }
    path.write_text(json.dumps(doc))
    return path


def keys_file(path: Path) -> Path:
    """The cluster API's key file (a mounted Secret on a cluster) holding ``KEY``."""
    doc = {
        "keys": [
            {
                "KeyId": KEY_ID,
                "SecretHash": hashlib.sha256(SECRET.encode()).hexdigest(),
                "Name": "admin",
                "Role": "admin",
            }
        ]
    }
    path.write_text(json.dumps(doc))
    return path


def cluster_settings(tmp_path: Path, kube: KubeSettings) -> Settings:
    """An in-process cluster API's settings (``ORCH_DESIRED_STATE=kubernetes``)."""
    return Settings(
        home=tmp_path / "home",
        config_dir=tmp_path / "config",
        desired_state="kubernetes",
        api_keys_file=keys_file(tmp_path / "keys.json"),
        kube=kube,
    )


def call_label(method: str, url: str) -> str:
    """``GET list trainingjobs``, ``GET get trainingjobs``, ``PATCH trainingjobs/status``."""
    m = _PATH.search(url.split("?", 1)[0])
    if m is None:
        return f"{method} {url}"
    plural, name, sub = m["plural"], m["name"], m["sub"]
    if method == "GET":
        verb = "list" if name is None else ("get" if sub is None else f"get {sub} of")
        return f"GET {verb} {plural}"
    return f"{method} {plural}" + (f"/{sub}" if sub else "")


class CallCounter:
    """Counts an ``ApiClient``'s HTTP requests by kind (``call_label``) and the wall time
    spent in them (sent, served, body read), so a pass's time splits into API and operator.
    A watch's stream is handed on unread (and counted)."""

    def __init__(self, api: client.ApiClient) -> None:
        self.calls: Counter[str] = Counter()
        self.seconds = 0.0
        rest = api.rest_client
        real: Callable[..., Any] = rest.request

        def counted(method: str, url: str, *args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                response = real(method, url, *args, **kwargs)
                if "watch=" not in url:
                    response.read()  # the body too (cached: the caller's read is free)
                return response
            finally:
                self.seconds += time.perf_counter() - t0
                self.calls[call_label(method, url)] += 1

        rest.request = counted

    def reset(self) -> None:
        self.calls.clear()
        self.seconds = 0.0

    @property
    def writes(self) -> int:
        return sum(n for label, n in self.calls.items() if not label.startswith("GET "))


def operator_settings() -> KubeSettings:
    """The operator tests' (and the Kubernetes benchmarks') settings: a GPU placement, an
    object store the steps reach, images by name."""
    return KubeSettings(
        namespace=NS,
        training_image="registry.example/orchestrator/training:1",
        serving_image="registry.example/orchestrator/serving:1",
        gpu_node_selector={"nvidia.com/gpu.present": "true"},
        gpu_runtime_class_name="nvidia",
        object_store_url="s3://ml-bucket",
        s3_endpoint_url="http://minio.storage:9000",
    )


def emulator_client(url: str) -> client.ApiClient:
    """A client of the emulator at ``url``, configured as the product's own (one try per
    call: ``orchestrator.kube.api.api_client``)."""
    config = client.Configuration()
    config.host = url
    return api_client(config)

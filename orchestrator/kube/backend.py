"""The Kubernetes backend: training attempts as Jobs, endpoint variants as Deployments.

Namespace-scoped, over the official client. Creates are idempotent (AlreadyExists is success),
deletes tolerate NotFound, and every observation is read from the cluster, so a restarted
operator simply observes again. API errors are wrapped into the product's error tree: 4xx
(other than the 404/409 handled here) are ``PermanentError``\\ s, 5xx, 429 and connection
failures ``BackendError`` (temporary). What Jobs and Pods say is mapped to ``ObservedJob``
and ``ObservedReplica`` by the pure functions in ``orchestrator.kube.observe``.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any, cast

import urllib3
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from orchestrator.controller.plan.types import (
    JobLaunch,
    ObservedJob,
    ObservedReplica,
    ReplicaLaunch,
)
from orchestrator.errors import (
    AuthenticationError,
    BackendError,
    ConflictError,
    NotFoundError,
    OrchestratorError,
    PermanentError,
    PermissionDeniedError,
    ValidationError,
)
from orchestrator.kube import objects as o
from orchestrator.kube.convert import API_GROUP, API_VERSION
from orchestrator.kube.observe import (
    job_observation,
    pod_problem,
    pod_ready,
    replica_observations,
)
from orchestrator.resources.endpoints import ProductionVariant
from orchestrator.settings import KubeSettings

PLURALS = {"TrainingJob": "trainingjobs", "Endpoint": "endpoints"}


def wrap_api_error(e: ApiException, what: str) -> OrchestratorError:
    """One of our errors for a Kubernetes API error, with the API's own message."""
    status = int(e.status or 0)
    detail = str(e.reason or "")
    with contextlib.suppress(ValueError, AttributeError):
        detail = json.loads(e.body or "{}").get("message") or detail
    message = f"{what}: Kubernetes API answered {status}: {detail}"
    by_status: dict[int, type[OrchestratorError]] = {
        400: ValidationError,
        401: AuthenticationError,
        403: PermissionDeniedError,
        404: NotFoundError,
        409: ConflictError,
        422: ValidationError,
    }
    if status in by_status:
        return by_status[status](message)
    if 400 <= status < 500 and status != 429:
        return PermanentError(message)
    return BackendError(message, retry_after=5.0)


class KubernetesBackend:
    name = "kubernetes"

    def __init__(
        self, api: client.ApiClient, settings: KubeSettings, *, namespace: str | None = None
    ) -> None:
        self.api = api
        self.settings = settings
        self.namespace = namespace or settings.namespace
        batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
        apps, hpa, policy = (
            client.AppsV1Api(api),
            client.AutoscalingV2Api(api),
            client.PolicyV1Api(api),
        )
        self.custom = client.CustomObjectsApi(api)
        self.core = core
        # kind -> (list, create, delete, patch)
        self._ops: dict[str, tuple[Any, Any, Any, Any]] = {
            "Job": (
                batch.list_namespaced_job,
                batch.create_namespaced_job,
                batch.delete_namespaced_job,
                batch.patch_namespaced_job,
            ),
            "Pod": (core.list_namespaced_pod, None, core.delete_namespaced_pod, None),
            "ConfigMap": (
                core.list_namespaced_config_map,
                core.create_namespaced_config_map,
                core.delete_namespaced_config_map,
                None,
            ),
            "Service": (
                core.list_namespaced_service,
                core.create_namespaced_service,
                core.delete_namespaced_service,
                None,
            ),
            "Deployment": (
                apps.list_namespaced_deployment,
                apps.create_namespaced_deployment,
                apps.delete_namespaced_deployment,
                None,
            ),
            "HorizontalPodAutoscaler": (
                hpa.list_namespaced_horizontal_pod_autoscaler,
                hpa.create_namespaced_horizontal_pod_autoscaler,
                hpa.delete_namespaced_horizontal_pod_autoscaler,
                None,
            ),
            "PodDisruptionBudget": (
                policy.list_namespaced_pod_disruption_budget,
                policy.create_namespaced_pod_disruption_budget,
                policy.delete_namespaced_pod_disruption_budget,
                None,
            ),
        }

    # --- plumbing ----------------------------------------------------------------------------
    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the API; the JSON answer as plain dicts (camelCase, like the manifests)."""
        try:
            response = fn(*args, _preload_content=False, **kwargs)
        except ApiException as e:
            raise wrap_api_error(e, what) from e
        except urllib3.exceptions.HTTPError as e:
            raise BackendError(f"{what}: Kubernetes API unreachable: {e}", retry_after=5.0) from e
        data = response.data
        return json.loads(data) if data else {}

    def list_items(self, kind: str, labels: dict[str, str]) -> list[dict[str, Any]]:
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        found = self.call(
            f"list {kind}", self._ops[kind][0], self.namespace, label_selector=selector
        )
        items: list[dict[str, Any]] = found.get("items") or []
        # Filtered here too: cheap, and exact whatever the server did with the selector.
        return [
            i
            for i in items
            if all(
                (i.get("metadata", {}).get("labels") or {}).get(k) == v for k, v in labels.items()
            )
        ]

    def create(self, body: dict[str, Any]) -> None:
        """Create unless it exists (looked up first; AlreadyExists is success all the same)."""
        kind, meta = body["kind"], body["metadata"]
        existing = self.list_items(kind, meta.get("labels") or {})
        if any(i.get("metadata", {}).get("name") == meta["name"] for i in existing):
            return
        # AlreadyExists is success: an earlier pass (or an earlier operator) made it.
        with contextlib.suppress(ConflictError):
            self.call(f"create {kind} {meta['name']}", self._ops[kind][1], self.namespace, body)

    def delete(self, kind: str, name: str, *, grace: int | None = None) -> None:
        kwargs: dict[str, Any] = {"propagation_policy": "Background"}
        if grace is not None:
            kwargs["grace_period_seconds"] = grace
        with contextlib.suppress(NotFoundError):
            self.call(f"delete {kind} {name}", self._ops[kind][2], name, self.namespace, **kwargs)

    def owner(self, kind: str, name: str) -> dict[str, Any] | None:
        """An owner reference to the custom resource (None when it is not there)."""
        try:
            cr = self.call(
                f"get {kind} {name}",
                self.custom.get_namespaced_custom_object,
                API_GROUP,
                API_VERSION,
                self.namespace,
                PLURALS[kind],
                name,
            )
        except NotFoundError:
            return None
        uid = cr.get("metadata", {}).get("uid")
        return o.owner_reference(kind, name, uid) if uid else None

    # --- training ----------------------------------------------------------------------------
    def launch_job(self, launch: JobLaunch) -> None:
        owner = self.owner("TrainingJob", launch.name)
        args = (launch.name, self.namespace, launch.attempt, launch.spec)
        kw: dict[str, Any] = {
            "output_uri": launch.output_uri,
            "owner": owner,
            "settings": self.settings,
        }
        # The ConfigMap first: a Job never waits on a missing volume.
        self.create(o.step_config_map(*args, **kw))
        self.create(o.training_job_manifest(*args, **kw))

    def _latest_job(self, name: str) -> dict[str, Any] | None:
        jobs = self.list_items("Job", o.job_labels(name))
        return max(jobs, key=_attempt, default=None)

    def _pods(self, name: str, attempt: int) -> list[dict[str, Any]]:
        return self.list_items("Pod", o.job_labels(name, attempt))

    def observe_job(self, name: str) -> ObservedJob | None:
        job = self._latest_job(name)
        if job is None:
            return None
        return job_observation(name, job, self._pods(name, _attempt(job)))

    def stop_job(self, name: str, *, force: bool) -> None:
        """Suspend the Job (its pods get SIGTERM, the Job stays to be observed); force: kill."""
        job = self._latest_job(name)
        if job is None:
            return
        job_name = job["metadata"]["name"]
        self.call(
            f"stop Job {job_name}",
            self._ops["Job"][3],
            job_name,
            self.namespace,
            {"spec": {"suspend": True}},
        )
        if force:
            for pod in self._pods(name, _attempt(job)):
                self.delete("Pod", pod["metadata"]["name"], grace=0)

    def cleanup_job(self, name: str) -> None:
        # Pods go with their Job (background propagation: the garbage collector deletes them).
        for kind in ("Job", "ConfigMap"):
            for item in self.list_items(kind, o.job_labels(name)):
                self.delete(kind, item["metadata"]["name"])

    def read_job_logs(self, name: str, offset: int, limit: int) -> tuple[bytes, int]:
        job = self._latest_job(name)
        pods = self._pods(name, _attempt(job)) if job else []
        if not pods:
            return b"", offset
        pod = max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")
        try:
            resp = self.core.read_namespaced_pod_log(
                pod["metadata"]["name"], self.namespace, container=o.ALGO, _preload_content=False
            )
        except ApiException as e:
            if e.status in (400, 404):  # not started yet, or gone
                return b"", offset
            raise wrap_api_error(e, f"logs of {name}") from e
        body: bytes = cast(Any, resp).data
        data = body[offset : offset + limit]
        return data, offset + len(data)

    # --- endpoints ---------------------------------------------------------------------------
    def launch_replica(
        self,
        launch: ReplicaLaunch,
        *,
        variant: ProductionVariant | None = None,
        scaling: o.ScalingPolicy | None = None,
    ) -> None:
        """Make sure the variant's Deployment, Service, HPA and PDB exist (one per variant:
        every slot of the variant is a replica of that Deployment)."""
        if variant is None:
            variant = ProductionVariant(
                VariantName=launch.variant,
                ModelName=launch.model_name,
                InitialInstanceCount=launch.slot + 1,
                InstanceType=launch.instance_type,
            )
        owner = self.owner("Endpoint", launch.endpoint)
        for body in o.endpoint_variant_objects(
            launch.endpoint,
            self.namespace,
            variant,
            launch.model,
            owner=owner,
            settings=self.settings,
            scaling=scaling,
        ):
            self.create(body)

    def observe_replicas(self, endpoint: str) -> list[ObservedReplica]:
        out: list[ObservedReplica] = []
        for deployment in self.list_items("Deployment", o.variant_labels(endpoint)):
            variant = _annotation(deployment, o.ANNOTATION_VARIANT_NAME)
            pods = self.list_items("Pod", o.variant_labels(endpoint, variant))
            url = o.service_url(endpoint, variant, self.namespace, self.settings)
            out.extend(replica_observations(endpoint, variant, deployment, pods, url))
        return out

    def list_endpoints(self) -> list[str]:
        deployments = self.list_items("Deployment", {o.LABEL_MANAGED: "orchestrator"})
        return sorted({_annotation(d, o.ANNOTATION_ENDPOINT_NAME) for d in deployments} - {""})

    def remove_replica(self, endpoint: str, replica_id: str) -> None:
        """Delete the failing pod of that slot's variant; the Deployment starts a new one."""
        variant = replica_id.rsplit("-", 2)[0]
        pods = self.list_items("Pod", o.variant_labels(endpoint, variant))
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        failing = [p for p in live if pod_problem(p) is not None] or [
            p for p in live if not pod_ready(p)
        ]
        if failing:
            self.delete("Pod", failing[0]["metadata"]["name"])

    def remove_endpoint(self, endpoint: str) -> None:
        """Every object of every variant of the endpoint (a failed or deleted endpoint)."""
        for kind in ("HorizontalPodAutoscaler", "PodDisruptionBudget", "Service", "Deployment"):
            for item in self.list_items(kind, o.variant_labels(endpoint)):
                self.delete(kind, item["metadata"]["name"])

    def close(self) -> None:
        self.api.close()  # type: ignore[no-untyped-call]


def _attempt(job: dict[str, Any]) -> int:
    try:
        return int((job.get("metadata", {}).get("labels") or {}).get(o.LABEL_ATTEMPT, "0"))
    except ValueError:
        return 0


def _annotation(obj: dict[str, Any], key: str) -> str:
    return str((obj.get("metadata", {}).get("annotations") or {}).get(key, ""))

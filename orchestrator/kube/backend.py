"""The Kubernetes backend: training attempts and transform instances as Jobs, endpoint fleets
as Deployments.

Namespace-scoped, over the official client (``api.call``: errors in the product's tree).
Creates are idempotent (AlreadyExists is success), deletes tolerate NotFound, and every
observation is read from the cluster, so a restarted operator simply observes again.

Capabilities (``backends.base``): ``VariantFleets`` (each variant of each fleet is a
Deployment of the size the planner chose, which replaces dead pods itself) and
``PassSnapshot``: ``refresh()`` lists the Jobs, Pods and Deployments it manages once per pass
and every observation answers from that listing, so a pass over a thousand resources makes a
handful of list calls, not a thousand. What Jobs and Pods say is mapped to ``ObservedJob`` and
``ObservedReplica`` by the pure functions in ``orchestrator.kube.observe``.

``TransformBackend``: each attempt of each instance of a transform job is a Job
(``kube.transforms``); what its runner recorded (progress, its result) is read from the object
store's scratch space (``transformer.scratch``), given a store.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from orchestrator.clock import Clock, SystemClock
from orchestrator.controller.plan.support import problems_of, unmet_requirements
from orchestrator.controller.plan.types import (
    JobLaunch,
    ObservedJob,
    ObservedReplica,
    ObservedTransform,
    ObservedTransformInstance,
    TransformLaunch,
    VariantFleet,
)
from orchestrator.errors import ConflictError, NotFoundError, ValidationError
from orchestrator.kube import fleets as f
from orchestrator.kube import jobs as j
from orchestrator.kube import network as n
from orchestrator.kube import objects as o
from orchestrator.kube import transforms as t
from orchestrator.kube.api import call, wrap_api_error
from orchestrator.kube.convert import API_GROUP, API_VERSION
from orchestrator.kube.fleet_tls import FleetCertificates
from orchestrator.kube.observe import (
    fleet_observations,
    job_observation,
    metric_patterns_of,
    metrics_of,
    metrics_pod,
)
from orchestrator.kube.replica_logs import KubeReplicaLogs
from orchestrator.kube.replica_tls import ServingTls
from orchestrator.objects import ObjectStore
from orchestrator.resources.kinds import KINDS
from orchestrator.settings import KubeSettings, TransformSettings
from orchestrator.training.usage import split_usage
from orchestrator.transformer.scratch import InstanceResult, TransformScratch, observe_scratch

MANAGED = {o.LABEL_MANAGED: "orchestrator"}
FLEET_KINDS = ("HorizontalPodAutoscaler", "PodDisruptionBudget", "Service", "Deployment")
# What an attempt of a training job may consist of (cleaned up by its labels).
ATTEMPT_KINDS = ("Job", "ConfigMap", "Service", "NetworkPolicy")


@dataclass
class Snapshot:
    """What one pass observes: the managed Jobs, Pods and Deployments, indexed by owner."""

    jobs: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by job label
    pods: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by job/fleet key
    deployments: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by endpoint
    transforms: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # by job label


def _labels(obj: dict[str, Any]) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def _pod_key(labels: dict[str, str]) -> str | None:
    if o.LABEL_TRAINING_JOB in labels:
        return f"job:{labels[o.LABEL_TRAINING_JOB]}:{labels.get(o.LABEL_ATTEMPT, '')}"
    if t.LABEL_TRANSFORM_JOB in labels:
        return f"transform:{labels[t.LABEL_TRANSFORM_JOB]}"
    if o.LABEL_ENDPOINT in labels:
        fleet = labels.get(o.LABEL_FLEET, "")
        return f"fleet:{labels[o.LABEL_ENDPOINT]}:{fleet}:{labels.get(o.LABEL_VARIANT, '')}"
    return None


class KubernetesBackend(KubeReplicaLogs):
    name = "kubernetes"
    schedules_gpus = True  # the scheduler places nvidia.com/gpu requests

    def __init__(
        self,
        api: client.ApiClient,
        settings: KubeSettings,
        *,
        namespace: str | None = None,
        store: ObjectStore | None = None,
        transform: TransformSettings | None = None,
        replica_tls: bool = False,
        clock: Clock | None = None,
    ) -> None:
        self.api = api
        self.settings = settings
        # Where transform runners record progress and results (None: only what the pods say).
        self.store = store
        self.transform = transform or TransformSettings()
        self.namespace = namespace or settings.namespace
        batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
        apps, hpa, policy = (
            client.AppsV1Api(api),
            client.AutoscalingV2Api(api),
            client.PolicyV1Api(api),
        )
        networking = client.NetworkingV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.core = core
        self.batch = batch
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
                apps.patch_namespaced_deployment,
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
            # Training attempts with EnableNetworkIsolation.
            "NetworkPolicy": (
                networking.list_namespaced_network_policy,
                networking.create_namespaced_network_policy,
                networking.delete_namespaced_network_policy,
                None,
            ),
        }
        self._snapshot: Snapshot | None = None
        # ORCH_SERVING__REPLICA_TLS: each fleet variant serves HTTPS with its own certificate.
        self.certificates = (
            FleetCertificates(core, self.namespace, settings, clock or SystemClock())
            if replica_tls
            else None
        )

    # --- plumbing ----------------------------------------------------------------------------
    def watch_targets(self) -> list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]]:
        """What the operator watches to wake early: the objects this backend manages."""
        ours = {"label_selector": f"{o.LABEL_MANAGED}=orchestrator"}
        return [
            (self._ops[kind][0], (self.namespace,), ours) for kind in ("Job", "Deployment", "Pod")
        ]

    def list_items(self, kind: str, labels: dict[str, str]) -> list[dict[str, Any]]:
        selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
        found = call(f"list {kind}", self._ops[kind][0], self.namespace, label_selector=selector)
        items: list[dict[str, Any]] = found.get("items") or []
        # Filtered here too: cheap, and exact whatever the server did with the selector.
        return [i for i in items if all(_labels(i).get(k) == v for k, v in labels.items())]

    def create(self, body: dict[str, Any]) -> None:
        """Create; AlreadyExists is success (an earlier pass, or an earlier operator, made it)."""
        kind, meta = body["kind"], body["metadata"]
        with contextlib.suppress(ConflictError):
            call(f"create {kind} {meta['name']}", self._ops[kind][1], self.namespace, body)

    def delete(self, kind: str, name: str, *, grace: int | None = None) -> None:
        kwargs: dict[str, Any] = {"propagation_policy": "Background"}
        if grace is not None:
            kwargs["grace_period_seconds"] = grace
        with contextlib.suppress(NotFoundError):
            call(f"delete {kind} {name}", self._ops[kind][2], name, self.namespace, **kwargs)

    def owner(self, kind: str, name: str) -> dict[str, Any] | None:
        """An owner reference to the custom resource (None when it is not there)."""
        try:
            cr = call(
                f"get {kind} {name}",
                self.custom.get_namespaced_custom_object,
                API_GROUP,
                API_VERSION,
                self.namespace,
                KINDS[kind].crd_plural,
                name,
            )
        except NotFoundError:
            return None
        uid = cr.get("metadata", {}).get("uid")
        return o.owner_reference(kind, name, uid) if uid else None

    # --- PassSnapshot ------------------------------------------------------------------------
    def refresh(self) -> None:
        snap = Snapshot()
        for job in self.list_items("Job", MANAGED):
            labels = _labels(job)
            if t.LABEL_TRANSFORM_JOB in labels:
                snap.transforms.setdefault(labels[t.LABEL_TRANSFORM_JOB], []).append(job)
            else:
                snap.jobs.setdefault(labels.get(o.LABEL_TRAINING_JOB, ""), []).append(job)
        for pod in self.list_items("Pod", MANAGED):
            key = _pod_key(_labels(pod))
            if key is not None:
                snap.pods.setdefault(key, []).append(pod)
        for d in self.list_items("Deployment", MANAGED):
            endpoint = _annotation(d, o.ANNOTATION_ENDPOINT_NAME)
            snap.deployments.setdefault(endpoint, []).append(d)
        if self.certificates is not None:
            self.certificates.refresh()
        self._snapshot = snap

    def _jobs_of(self, name: str) -> list[dict[str, Any]]:
        if self._snapshot is not None:
            return self._snapshot.jobs.get(o.k8s_name(name), [])
        return self.list_items("Job", j.job_labels(name))

    def _pods(self, labels: dict[str, str]) -> list[dict[str, Any]]:
        key = _pod_key(labels)
        if self._snapshot is not None and key is not None:
            return self._snapshot.pods.get(key, [])
        return self.list_items("Pod", labels)

    def _deployments(self, endpoint: str) -> list[dict[str, Any]]:
        if self._snapshot is not None:
            return self._snapshot.deployments.get(endpoint, [])
        return [
            d
            for d in self.list_items("Deployment", f.fleet_labels(endpoint))
            if _annotation(d, o.ANNOTATION_ENDPOINT_NAME) == endpoint
        ]

    # --- training ----------------------------------------------------------------------------
    def configured(self) -> set[str]:
        """The settings (environment variable names) that requirements ask about."""
        out: set[str] = set()
        if self.settings.network_isolation_egress:
            out.add("ORCH_KUBE__NETWORK_ISOLATION_EGRESS")
        return out

    def launch_job(self, launch: JobLaunch) -> None:
        """The attempt's ConfigMap, NetworkPolicy (isolated), headless Service (several
        hosts) and Job, in that order; a spec this backend cannot honour as configured is
        refused (terminal) before anything is created."""
        problems = unmet_requirements("TrainingJob", launch.spec, self.name, self.configured())
        if problems:
            text = "; ".join(p.message for p in problems)
            raise ValidationError(text, field=problems[0].field)
        owner = self.owner("TrainingJob", launch.name)
        for body in n.attempt_objects(
            launch.name,
            self.namespace,
            launch.attempt,
            launch.spec,
            output_uri=launch.output_uri,
            owner=owner,
            settings=self.settings,
        ):
            self.create(body)

    def _latest_job(self, name: str) -> dict[str, Any] | None:
        return max(self._jobs_of(name), key=_attempt, default=None)

    def observe_job(self, name: str) -> ObservedJob | None:
        job = self._latest_job(name)
        if job is None:
            return None
        pods = self._pods(j.job_labels(name, _attempt(job)))
        observed = job_observation(name, job, pods)
        patterns = metric_patterns_of(job)
        if observed.state != "exited" or not patterns:
            return observed
        # Once, when it has ended: the status it gets now is final (the job is then inactive).
        pod = metrics_pod(job, pods)
        log = split_usage(self._algo_log(pod, f"metrics of {name}"))[0] if pod is not None else b""
        metrics = metrics_of(log.decode(errors="replace"), patterns)
        return replace(observed, metrics=metrics) if metrics else observed

    def _algo_log(self, pod: dict[str, Any], what: str) -> bytes:
        """The user's container's log in ``pod`` (empty: not started yet, or gone)."""
        return self._container_log(pod, o.ALGO, what)

    def _container_log(
        self, pod: dict[str, Any], container: str, what: str, *, timestamps: bool = False
    ) -> bytes:
        """A container's log in ``pod`` (empty: not started yet, or gone)."""
        try:
            resp = self.core.read_namespaced_pod_log(
                pod["metadata"]["name"],
                self.namespace,
                container=container,
                timestamps=timestamps,
                _preload_content=False,
            )
        except ApiException as e:
            if e.status in (400, 404):
                return b""
            raise wrap_api_error(e, what) from e
        body: bytes = cast(Any, resp).data
        return body

    def stop_job(self, name: str, *, force: bool) -> None:
        """Suspend the Job (its pods get SIGTERM, the Job stays to be observed); force: kill."""
        job = self._latest_job(name)
        if job is None:
            return
        job_name = job["metadata"]["name"]
        call(
            f"stop Job {job_name}",
            self._ops["Job"][3],
            job_name,
            self.namespace,
            {"spec": {"suspend": True}},
        )
        if force:
            for pod in self.list_items("Pod", j.job_labels(name, _attempt(job))):
                self.delete("Pod", pod["metadata"]["name"], grace=0)

    def cleanup_job(self, name: str) -> None:
        # Pods go with their Job (background propagation: the garbage collector deletes them).
        for kind in ATTEMPT_KINDS:
            for item in self.list_items(kind, j.job_labels(name)):
                self.delete(kind, item["metadata"]["name"])

    def read_job_logs(self, name: str, offset: int, limit: int) -> tuple[bytes, int]:
        log, _ = split_usage(self._latest_log(name))
        data = log[offset : offset + limit]
        return data, offset + len(data)

    def job_log_size(self, name: str) -> int:
        log, _ = split_usage(self._latest_log(name))
        return len(log)

    def read_job_usage(self, name: str, offset: int, limit: int) -> tuple[bytes, int]:
        """The usage samples ``kube.hostenv`` wrote into the pod's log (``JobUsage``)."""
        _, usage = split_usage(self._latest_log(name))
        data = usage[offset : offset + limit]
        return data, offset + len(data)

    def _latest_log(self, name: str) -> bytes:
        jobs = self.list_items("Job", j.job_labels(name))
        job = max(jobs, key=_attempt, default=None)
        return self._attempt_log(name, _attempt(job)) if job else b""

    def _attempt_log(self, name: str, attempt: int) -> bytes:
        pods = self.list_items("Pod", j.job_labels(name, attempt))
        if not pods:
            return b""
        pod = max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "")
        return self._algo_log(pod, f"logs of {name}")

    def read_attempt_log(
        self, name: str, attempt: int, offset: int, limit: int
    ) -> tuple[bytes, int]:
        """The ``algo`` log of the attempt's latest pod (one host's on several), while
        Kubernetes keeps the attempt's Job and pod; the usage samples split off."""
        log, _ = split_usage(self._attempt_log(name, attempt))
        data = log[offset : offset + limit]
        return data, offset + len(data)

    # --- transform jobs: TransformBackend -------------------------------------------------------
    def _transform_jobs(self, name: str) -> list[dict[str, Any]]:
        if self._snapshot is not None:
            return self._snapshot.transforms.get(o.k8s_name(name), [])
        return self.list_items("Job", t.transform_labels(name))

    def launch_transform_instance(self, launch: TransformLaunch) -> None:
        """The attempt's Job; a Model this backend cannot serve is refused (terminal) first.
        A Job of that name that is not this attempt's is a conflict, not adopted."""
        problems = problems_of("Model", launch.model, self.name, self.configured())
        if problems:
            text = "; ".join(f"Model {launch.model_name}: {p.message}" for p in problems)
            raise ValidationError(text, field="ModelName")
        body = t.transform_job_manifest(
            launch,
            self.namespace,
            owner=self.owner("TransformJob", launch.name),
            settings=self.settings,
            transform=self.transform,
        )
        job = body["metadata"]["name"]
        # At most one attempt of an instance runs: an earlier one still there (its pod stuck,
        # or going) is stopped.
        for earlier in self._transform_jobs(launch.name):
            key = t.instance_attempt(earlier)
            if key is None or key[0] != launch.instance or key[1] >= launch.attempt:
                continue
            if not t.job_finished(earlier) and not (earlier.get("spec") or {}).get("suspend"):
                self._suspend(earlier["metadata"]["name"])
        try:
            call(f"create Job {job}", self._ops["Job"][1], self.namespace, body)
        except ConflictError:
            existing = call(f"get Job {job}", self.batch.read_namespaced_job, job, self.namespace)
            wanted = body["metadata"]["labels"]
            if any(_labels(existing).get(k) != v for k, v in wanted.items()):
                raise ConflictError(
                    f"Job {job} already exists in namespace {self.namespace} and is not "
                    f"instance {launch.instance} attempt {launch.attempt} of transform job "
                    f"{launch.name}: delete that Job, or use another TransformJobName"
                ) from None

    def observe_transform(self, name: str) -> ObservedTransform:
        pods = self._pods(t.transform_labels(name))
        instances = t.transform_observations(name, self._transform_jobs(name), pods)
        if self.store is None:
            return ObservedTransform(tuple(instances))
        progress, results = observe_scratch(self.store, name)
        return ObservedTransform(
            tuple(_with_result(i, results.get(i.instance)) for i in instances), progress
        )

    def stop_transform(self, name: str, *, force: bool) -> None:
        """Suspend each of the job's Jobs still going (their pods get SIGTERM, the Jobs stay to
        be observed); force: their pods still going are killed too."""
        pods: list[dict[str, Any]] | None = None
        for job in self._transform_jobs(name):
            if t.job_finished(job):
                continue
            if not (job.get("spec") or {}).get("suspend"):
                self._suspend(job["metadata"]["name"])
            if force:
                if pods is None:
                    pods = self.list_items("Pod", t.transform_labels(name))
                for pod in pods:
                    if t.instance_attempt(pod) == t.instance_attempt(job) and t.pod_going(pod):
                        self.delete("Pod", pod["metadata"]["name"], grace=0)

    def _suspend(self, job: str) -> None:
        """Suspend a Job: the Job controller deletes its pods (SIGTERM, then the grace)."""
        call(
            f"stop Job {job}", self._ops["Job"][3], job, self.namespace, {"spec": {"suspend": True}}
        )

    def cleanup_transform(self, name: str) -> None:
        """The job's scratch records go. Its ended Jobs, whose pods hold its logs, stay while
        the TransformJob does (they go with it: owner references); once it is gone or being
        deleted, they are deleted here, their pods with them (background propagation)."""
        if self.store is not None:
            TransformScratch(self.store, name).remove()
        if self._resource_present("TransformJob", name):
            return
        for job in self.list_items("Job", t.transform_labels(name)):
            self.delete("Job", job["metadata"]["name"])

    def _resource_present(self, kind: str, name: str) -> bool:
        """The custom resource exists and is not being deleted."""
        try:
            cr = call(
                f"get {kind} {name}",
                self.custom.get_namespaced_custom_object,
                API_GROUP,
                API_VERSION,
                self.namespace,
                KINDS[kind].crd_plural,
                name,
            )
        except NotFoundError:
            return False
        return not (cr.get("metadata") or {}).get("deletionTimestamp")

    def read_transform_logs(self, name: str, offset: int, limit: int) -> tuple[bytes, int]:
        """Every instance attempt's model step, model server and runner logs, merged by the
        time the kubelet stamped on each line (so what is appended stays after what was
        read), tagged with the host on several instances."""
        sources: list[tuple[bytes, bytes]] = []
        for pod in sorted(self.list_items("Pod", t.transform_labels(name)), key=t.pod_order):
            for container in (t.MODEL, t.SERVE, t.RUNNER):
                log = self._container_log(pod, container, f"logs of {name}", timestamps=True)
                if log:
                    sources.append((t.host_tag(pod), log))
        data = t.merge_logs(sources)[offset : offset + limit]
        return data, offset + len(data)

    # --- endpoints: VariantFleets ----------------------------------------------------------------
    def apply_fleets(self, endpoint: str, fleets: Sequence[VariantFleet]) -> None:
        """Each fleet variant's Deployment at its size (created, scaled, its template rolled
        when it changed) with its Service and PDB; every other fleet of the endpoint goes."""
        existing = {d["metadata"]["name"]: d for d in self._deployments(endpoint)}
        wanted: set[str] = set()
        owner: dict[str, Any] | None = None
        for fleet in fleets:
            name = f.fleet_object_name(endpoint, fleet.config, fleet.variant.VariantName)
            wanted.add(name)
            current = existing.get(name)
            tls = None
            if self.certificates is not None:
                labels = f.fleet_labels(endpoint, fleet.config, fleet.variant.VariantName)
                tls = self.certificates.serving_tls(
                    name, labels, lambda: self.owner("Endpoint", endpoint)
                )
            if current is None:
                owner = owner or self.owner("Endpoint", endpoint)
                for body in f.fleet_objects(
                    endpoint, self.namespace, fleet, owner=owner, settings=self.settings, tls=tls
                ):
                    self.create(body)
                continue
            self._update_fleet(endpoint, fleet, current, tls)
        for name, _d in existing.items():
            if name not in wanted:
                for kind in FLEET_KINDS:
                    self.delete(kind, name)
                if self.certificates is not None:
                    self.certificates.remove(name)

    def _update_fleet(
        self,
        endpoint: str,
        fleet: VariantFleet,
        current: dict[str, Any],
        tls: ServingTls | None,
    ) -> None:
        body = f.fleet_objects(
            endpoint, self.namespace, fleet, owner=None, settings=self.settings, tls=tls
        )
        deployment = body[0]
        patch: dict[str, Any] = {}
        spec = current.get("spec") or {}
        if self.settings.autoscaler != "hpa" and spec.get("replicas") != fleet.replicas:
            patch["spec"] = {"replicas": fleet.replicas}
        new_hash = deployment["metadata"]["annotations"][f.ANNOTATION_TEMPLATE]
        if _annotation(current, f.ANNOTATION_TEMPLATE) != new_hash:
            patch.setdefault("spec", {})["template"] = deployment["spec"]["template"]
            patch["metadata"] = {"annotations": {f.ANNOTATION_TEMPLATE: new_hash}}
        if patch:
            name = current["metadata"]["name"]
            call(
                f"scale Deployment {name}", self._ops["Deployment"][3], name, self.namespace, patch
            )

    def observe_replicas(self, endpoint: str) -> list[ObservedReplica]:
        out: list[ObservedReplica] = []
        for d in self._deployments(endpoint):
            config = _annotation(d, o.ANNOTATION_CONFIG_NAME)
            variant = _annotation(d, o.ANNOTATION_VARIANT_NAME)
            pods = self._pods(f.fleet_labels(endpoint, config, variant))
            url = f.service_url(
                endpoint,
                config,
                variant,
                self.namespace,
                self.settings,
                tls=self.certificates is not None,
            )
            out.extend(fleet_observations(endpoint, d, pods, url))
        return out

    def list_endpoints(self) -> list[str]:
        if self._snapshot is not None:
            return sorted(set(self._snapshot.deployments) - {""})
        deployments = self.list_items("Deployment", MANAGED)
        return sorted({_annotation(d, o.ANNOTATION_ENDPOINT_NAME) for d in deployments} - {""})

    def remove_replica(self, endpoint: str, replica_id: str) -> None:
        """A dead replica (its id names its pod): delete the pod; the Deployment starts a new
        one. A replica over the fleet's size needs nothing: the Deployment scales down."""
        parts = replica_id.split("/")
        if len(parts) == 3:
            self.delete("Pod", parts[2])

    def close(self) -> None:
        self.api.close()  # type: ignore[no-untyped-call]


def _with_result(
    seen: ObservedTransformInstance, result: InstanceResult | None
) -> ObservedTransformInstance:
    """The instance with what its runner recorded for this attempt (an earlier attempt's
    record says nothing of this one)."""
    if result is None or result.Attempt != seen.attempt:
        return seen
    return replace(seen, outcome=result.Outcome, failure=result.Failure or seen.failure)


def _attempt(job: dict[str, Any]) -> int:
    try:
        return int(_labels(job).get(o.LABEL_ATTEMPT, "0"))
    except ValueError:
        return 0


def _annotation(obj: dict[str, Any], key: str) -> str:
    return str((obj.get("metadata", {}).get("annotations") or {}).get(key, ""))

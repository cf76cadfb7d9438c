"""The Kubernetes operator: the same pure planners, with custom resources as the desired state.

A level-triggered loop. Each pass lists the TrainingJob, Model, EndpointConfig and Endpoint
resources of one namespace and, for each, does what the local controller's runtime does with
its store: parse the spec (a bad one gets a ``Valid=False`` condition naming the field and
nothing else happens), observe the cluster (``KubernetesBackend``), plan (pure), act, and
write the status through the status subresource. Watches only wake the loop early; nothing
depends on having seen an event. Everything is read back from the cluster on every pass
(attempt numbers from Job labels, phases from pods), so the operator is safe to kill at any
line: a restarted one adopts what exists and creates nothing twice (creates are idempotent).

Deletion: the finalizer ``orchestrator.dev/cleanup`` is added on first sight; a deleted
TrainingJob is stopped first, then its Jobs, Pods and ConfigMaps are removed, then the
finalizer. Stop: the annotation ``orchestrator.dev/stop: "true"``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import pydantic
from kubernetes import client, watch

from orchestrator import metrics
from orchestrator.clock import Clock, SystemClock
from orchestrator.controller.plan.endpoint import DesiredEndpoint, EndpointPolicy, plan_endpoint
from orchestrator.controller.plan.training import (
    DesiredJob,
    TrainingPolicy,
    fail_training_job,
    plan_training_job,
)
from orchestrator.controller.plan.types import (
    CleanupJob,
    DeleteRecord,
    LaunchJob,
    LaunchReplica,
    Plan,
    RemoveReplica,
    StopJob,
    StopReplica,
)
from orchestrator.controller.routing import EndpointRoute, RoutingTable
from orchestrator.controller.runtime import training_output_uri
from orchestrator.errors import OrchestratorError, PermanentError, ValidationError
from orchestrator.kube import objects as o
from orchestrator.kube.backend import KubernetesBackend
from orchestrator.kube.convert import (
    API_GROUP,
    API_VERSION,
    FREE_FORM_MAPS,
    camel,
    to_camel,
    to_pascal,
)
from orchestrator.kube.observe import parse_time
from orchestrator.resources.common import Condition, set_condition
from orchestrator.resources.endpoints import (
    CreateEndpointConfigRequest,
    CreateEndpointRequest,
    EndpointState,
    EndpointStatus,
)
from orchestrator.resources.models import CreateModelRequest
from orchestrator.resources.training import (
    CreateTrainingJobRequest,
    SecondaryStatus,
    TrainingJobState,
    TrainingJobStatus,
)
from orchestrator.resources.validation import field_path, parse_spec
from orchestrator.settings import KubeSettings, Settings, get_settings

log = logging.getLogger("orchestrator.kube.operator")

FINALIZER = "orchestrator.dev/cleanup"
STOP_ANNOTATION = "orchestrator.dev/stop"
PLURALS = {
    "TrainingJob": "trainingjobs",
    "Model": "models",
    "EndpointConfig": "endpointconfigs",
    "Endpoint": "endpoints",
}
NAME_FIELDS = {
    "TrainingJob": "TrainingJobName",
    "Model": "ModelName",
    "EndpointConfig": "EndpointConfigName",
    "Endpoint": "EndpointName",
}
M = TypeVar("M", bound=pydantic.BaseModel)


def _camel_path(loc: tuple[int | str, ...]) -> str:
    """A pydantic location as the custom resource's field path (``spec.resourceConfig``)."""
    parts: list[int | str] = []
    for i, part in enumerate(loc):
        keep = isinstance(part, int) or (i > 0 and loc[i - 1] in FREE_FORM_MAPS)
        parts.append(part if keep else camel(str(part)))
    return "spec" + ("." + field_path(parts) if parts else "")


def parse_resource(model: type[M], kind: str, cr: dict[str, Any]) -> M:
    """The custom resource's spec as the API model; errors name the resource's own fields."""
    raw = cr.get("spec")
    if not isinstance(raw, dict):
        raise ValidationError("spec: required field is missing", field="spec")
    doc = to_pascal(raw)
    doc.setdefault(NAME_FIELDS[kind], cr["metadata"]["name"])
    try:
        return parse_spec(model, doc)
    except ValidationError as e:
        cause = e.__cause__
        if not isinstance(cause, pydantic.ValidationError):
            raise
        message, cursor = e.message, 0
        for err in cause.errors():
            pascal = field_path(err.get("loc", ())) or "(body)"
            at = message.find(f"{pascal}: ", cursor)
            if at < 0:
                continue
            ours = _camel_path(tuple(err.get("loc", ())))
            message = message[:at] + ours + message[at + len(pascal) :]
            cursor = at + len(ours)
        first = _camel_path(tuple(cause.errors()[0].get("loc", ()))) if cause.errors() else "spec"
        raise ValidationError(message, field=first) from e


def _prune(doc: Any) -> Any:
    """Without null values: what a merge patch leaves stored (to compare with what is)."""
    if isinstance(doc, dict):
        return {k: _prune(v) for k, v in doc.items() if v is not None}
    if isinstance(doc, list):
        return [_prune(v) for v in doc]
    return doc


def _conditions(cr: dict[str, Any]) -> list[Condition]:
    raw = to_pascal((cr.get("status") or {}).get("conditions") or [])
    try:
        return [Condition.model_validate(c) for c in raw]
    except pydantic.ValidationError:
        return []


class Operator:
    def __init__(
        self,
        api: client.ApiClient,
        settings: KubeSettings,
        *,
        namespace: str | None = None,
        clock: Clock | None = None,
        training_policy: TrainingPolicy | None = None,
        endpoint_policy: EndpointPolicy | None = None,
        routes: RoutingTable | None = None,
        default_bucket: str = "orchestrator",
        resync_seconds: float = 5.0,
    ) -> None:
        self.namespace = namespace or settings.namespace
        self.backend = KubernetesBackend(api, settings, namespace=self.namespace)
        self.custom = client.CustomObjectsApi(api)
        self.clock = clock or SystemClock()
        self.training_policy = training_policy or TrainingPolicy()
        self.endpoint_policy = endpoint_policy or EndpointPolicy()
        self.routes = routes or RoutingTable()
        self.default_bucket = default_bucket
        self.resync_seconds = resync_seconds
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._listed: dict[str, dict[str, dict[str, Any]]] = {}

    # --- custom resources --------------------------------------------------------------------
    def _custom(self, what: str, fn: Callable[..., Any], kind: str, *args: Any) -> Any:
        return self.backend.call(
            what, fn, API_GROUP, API_VERSION, self.namespace, PLURALS[kind], *args
        )

    def list_resources(self, kind: str) -> list[dict[str, Any]]:
        found = self._custom(f"list {kind}", self.custom.list_namespaced_custom_object, kind)
        return list(found.get("items") or [])

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        """From this pass's listing (one list per kind per pass, not a read per reference)."""
        if kind not in self._listed:
            self._listed[kind] = {i["metadata"]["name"]: i for i in self.list_resources(kind)}
        return self._listed[kind].get(name)

    def _patch(self, cr: dict[str, Any], body: dict[str, Any], *, status: bool = False) -> None:
        kind, name = cr["kind"], cr["metadata"]["name"]
        fn = (
            self.custom.patch_namespaced_custom_object_status
            if status
            else self.custom.patch_namespaced_custom_object
        )
        self.backend.call(
            f"patch {kind} {name}",
            fn,
            API_GROUP,
            API_VERSION,
            self.namespace,
            PLURALS[kind],
            name,
            body,
            _content_type="application/merge-patch+json",
        )

    def _set_finalizer(self, cr: dict[str, Any], present: bool) -> None:
        meta = cr["metadata"]
        current: list[str] = list(meta.get("finalizers") or [])
        if (FINALIZER in current) == present:
            return
        wanted = [*current, FINALIZER] if present else [f for f in current if f != FINALIZER]
        patch: dict[str, Any] = {"finalizers": wanted}
        if meta.get("resourceVersion"):
            patch["resourceVersion"] = meta["resourceVersion"]  # fail on a concurrent change
        self._patch(cr, {"metadata": patch})

    def _write_status(self, cr: dict[str, Any], status: dict[str, Any]) -> None:
        doc = to_camel(status)
        if _prune(doc) != _prune(cr.get("status") or {}):
            self._patch(cr, {"status": doc}, status=True)

    def _invalid(self, cr: dict[str, Any], error: ValidationError, state: Any) -> None:
        """Reject the resource: a condition naming the field, nothing else."""
        now = self.clock.now()
        conditions = set_condition(
            _conditions(cr), "Valid", "False", reason="InvalidSpec", message=error.message, now=now
        )
        doc = state.model_copy(update={"Conditions": conditions}).model_dump(mode="json")
        self._write_status(cr, doc)

    # --- one resource ------------------------------------------------------------------------
    def reconcile_training_job(self, cr: dict[str, Any]) -> float | None:
        meta = cr["metadata"]
        name, deleting = meta["name"], bool(meta.get("deletionTimestamp"))
        if not deleting:
            self._set_finalizer(cr, True)
        now = self.clock.now()
        try:
            spec = parse_resource(CreateTrainingJobRequest, "TrainingJob", cr)
        except ValidationError as e:
            if deleting:
                self.backend.cleanup_job(name)
                self._set_finalizer(cr, False)
                return None
            reason = f"ValidationException: {e.message}"
            failed = TrainingJobState(
                TrainingJobStatus=TrainingJobStatus.FAILED,
                SecondaryStatus=SecondaryStatus.FAILED,
                FailureReason=reason[:1024],
            )
            self._invalid(cr, e, failed)
            return None
        status = self._state(TrainingJobState, cr)
        status = status.model_copy(
            update={
                "Conditions": set_condition(
                    status.Conditions, "Valid", "True", reason="Valid", message="", now=now
                )
            }
        )
        stop = (meta.get("annotations") or {}).get(STOP_ANNOTATION, "").lower() == "true"
        desired = DesiredJob(
            name=name,
            spec=spec,
            status=status,
            created_at=parse_time(meta.get("creationTimestamp")) or now,
            stop_requested=stop or deleting,
            delete_requested=deleting,
            output_uri=training_output_uri(spec, self.default_bucket),
        )
        observed = self.backend.observe_job(name)
        plan = plan_training_job(desired, observed, now, self.training_policy)
        try:
            self._execute(cr, plan)
        except PermanentError as e:
            # The cluster refused the Job for good (e.g. the admission webhook said no).
            plan = fail_training_job(desired.status, f"ClientError: {e.message}", now)
        return self._finish(cr, plan)

    def reconcile_endpoint(self, cr: dict[str, Any]) -> float | None:
        meta = cr["metadata"]
        name, deleting = meta["name"], bool(meta.get("deletionTimestamp"))
        if not deleting:
            self._set_finalizer(cr, True)
        now = self.clock.now()
        try:
            spec = parse_resource(CreateEndpointRequest, "Endpoint", cr)
            scaling = o.parse_scaling((meta.get("annotations") or {}).get(o.ANNOTATION_AUTOSCALING))
        except ValidationError as e:
            if deleting:
                self.backend.remove_endpoint(name)
                self._set_finalizer(cr, False)
                return None
            failed = EndpointState(EndpointStatus=EndpointStatus.FAILED, FailureReason=e.message)
            self._invalid(cr, e, failed)
            return None
        status = self._state(EndpointState, cr)
        conditions = set_condition(
            status.Conditions, "Valid", "True", reason="Valid", message="", now=now
        )
        status = status.model_copy(update={"Conditions": conditions})
        config, models, problem = self._references(spec)
        if problem is not None and not deleting:
            # Not there yet (or not valid yet): wait for it, as a pod waits for its ConfigMap.
            waiting = status.model_copy(
                update={
                    "Conditions": set_condition(
                        status.Conditions,
                        "Ready",
                        "False",
                        reason="ReferenceNotReady",
                        message=problem,
                        now=now,
                    )
                }
            )
            self._write_status(cr, waiting.model_dump(mode="json"))
            return self.resync_seconds
        desired = DesiredEndpoint(
            name=name,
            spec=spec,
            status=status,
            config=config,
            models=models,
            delete_requested=deleting,
        )
        observed = self.backend.observe_replicas(name)
        plan = plan_endpoint(desired, observed, now, self.endpoint_policy)
        self._publish(name, spec, plan, deleting)
        variants = {v.VariantName: v for v in config.all_variants} if config else {}
        self._execute(cr, plan, variants=variants, scaling=scaling)
        return self._finish(cr, plan)

    def validate_only(self, kind: str, cr: dict[str, Any]) -> None:
        """Models and EndpointConfigs have no lifecycle: only a ``Valid`` condition."""
        model: type[pydantic.BaseModel] = (
            CreateModelRequest if kind == "Model" else CreateEndpointConfigRequest
        )
        now = self.clock.now()
        try:
            parse_resource(model, kind, cr)
        except ValidationError as e:
            conditions = set_condition(
                _conditions(cr), "Valid", "False", reason="InvalidSpec", message=e.message, now=now
            )
        else:
            conditions = set_condition(
                _conditions(cr), "Valid", "True", reason="Valid", message="", now=now
            )
        self._write_status(cr, {"Conditions": [c.model_dump(mode="json") for c in conditions]})

    def _references(
        self, spec: CreateEndpointRequest
    ) -> tuple[CreateEndpointConfigRequest | None, dict[str, CreateModelRequest], str | None]:
        config_cr = self.get("EndpointConfig", spec.EndpointConfigName)
        if config_cr is None:
            return None, {}, f"EndpointConfig {spec.EndpointConfigName!r} not found"
        try:
            config = parse_resource(CreateEndpointConfigRequest, "EndpointConfig", config_cr)
        except ValidationError as e:
            return None, {}, f"EndpointConfig {spec.EndpointConfigName!r} is invalid: {e.message}"
        models: dict[str, CreateModelRequest] = {}
        for v in config.all_variants:
            model_cr = self.get("Model", v.ModelName)
            if model_cr is None:
                return config, models, f"Model {v.ModelName!r} not found"
            try:
                models[v.ModelName] = parse_resource(CreateModelRequest, "Model", model_cr)
            except ValidationError as e:
                return config, models, f"Model {v.ModelName!r} is invalid: {e.message}"
            if len(models[v.ModelName].serving_containers) > 1:
                return (
                    config,
                    models,
                    f"Model {v.ModelName!r} is an inference pipeline "
                    f"({len(models[v.ModelName].serving_containers)} Containers); on Kubernetes "
                    "a variant serves one container: use a PrimaryContainer here, or run "
                    "pipelines on the process or Docker backend",
                )
        return config, models, None

    def _state(self, model: type[M], cr: dict[str, Any]) -> M:
        try:
            return model.model_validate(to_pascal(cr.get("status") or {}))
        except pydantic.ValidationError:
            log.warning("unreadable status of %s %s; afresh", cr["kind"], cr["metadata"]["name"])
            return model()

    def _publish(self, name: str, spec: CreateEndpointRequest, plan: Plan, deleting: bool) -> None:
        if plan.routes is not None and plan.phase not in {"Failed", "Deleting"} and not deleting:
            self.routes.publish(EndpointRoute(name, spec.AuthMode == "None", plan.routes))
        else:
            self.routes.withdraw(name)

    def _execute(
        self,
        cr: dict[str, Any],
        plan: Plan,
        *,
        variants: dict[str, Any] | None = None,
        scaling: o.ScalingPolicy | None = None,
    ) -> None:
        b, name = self.backend, cr["metadata"]["name"]
        tearing_down = plan.phase in {"Failed", "Deleting"}
        for action in plan.actions:
            if isinstance(action, LaunchJob):
                b.launch_job(action.launch)
            elif isinstance(action, StopJob):
                b.stop_job(action.name, force=action.force)
            elif isinstance(action, CleanupJob):
                b.cleanup_job(action.name)
            elif isinstance(action, LaunchReplica):
                variant = (variants or {}).get(action.launch.variant)
                b.launch_replica(action.launch, variant=variant, scaling=scaling)
            elif isinstance(action, RemoveReplica | StopReplica):
                if tearing_down:
                    b.remove_endpoint(name)
                else:
                    b.remove_replica(action.endpoint, action.replica_id)
            elif isinstance(action, DeleteRecord):
                self._set_finalizer(cr, False)
            else:  # pragma: no cover - exhaustiveness
                raise TypeError(action)

    def _finish(self, cr: dict[str, Any], plan: Plan) -> float | None:
        if any(isinstance(a, DeleteRecord) for a in plan.actions):
            return None
        self._write_status(cr, plan.status)
        if cr["metadata"].get("deletionTimestamp"):
            return 0.0  # finish the deletion at the next pass
        return plan.requeue_after

    # --- passes ------------------------------------------------------------------------------
    def run_once(self) -> float:
        """Reconcile every custom resource of the namespace once; seconds until the next pass."""
        next_due = self.resync_seconds
        kinds: list[tuple[str, Callable[[dict[str, Any]], float | None]]] = [
            ("Model", lambda cr: self.validate_only("Model", cr)),
            ("EndpointConfig", lambda cr: self.validate_only("EndpointConfig", cr)),
            ("TrainingJob", self.reconcile_training_job),
            ("Endpoint", self.reconcile_endpoint),
        ]
        self._listed = {}
        for kind, reconcile in kinds:
            listed = self.list_resources(kind)
            self._listed[kind] = {i["metadata"]["name"]: i for i in listed}
            for cr in listed:
                cr.setdefault("kind", kind)
                try:
                    requeue = reconcile(cr)
                except OrchestratorError as e:
                    metrics.record_reconcile_error(kind, e)
                    log.warning("reconcile of %s %s: %s", kind, cr["metadata"]["name"], e.message)
                    requeue = getattr(e, "retry_after", self.resync_seconds)
                except Exception as e:  # one bad resource must not stop the others
                    metrics.record_reconcile_error(kind, e)
                    log.exception("reconcile of %s %s failed", kind, cr["metadata"]["name"])
                    requeue = self.resync_seconds
                if requeue is not None:
                    next_due = min(next_due, requeue)
        return max(0.0, next_due)

    def run(self, *, watch_events: bool = True) -> None:
        """Passes until ``stop()``; watches (custom resources, Jobs, Pods, Deployments) wake it."""
        self._stop.clear()
        if watch_events:
            for target in self._watch_targets():
                threading.Thread(target=self._watch, args=(target,), daemon=True).start()
        while not self._stop.is_set():
            self._wake.clear()
            try:
                delay = self.run_once()
            except Exception:
                log.exception("operator pass failed")
                delay = self.resync_seconds
            if delay > 0:
                self._wake.wait(delay)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _watch_targets(self) -> list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]]:
        b, ns = self.backend, self.namespace
        ours = {"label_selector": f"{o.LABEL_MANAGED}=orchestrator"}
        targets: list[tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]] = [
            (self.custom.list_namespaced_custom_object, (API_GROUP, API_VERSION, ns, plural), {})
            for plural in PLURALS.values()
        ]
        for kind in ("Job", "Deployment"):
            targets.append((b._ops[kind][0], (ns,), ours))
        targets.append((b._ops["Pod"][0], (ns,), {}))
        return targets

    def _watch(self, target: tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]) -> None:
        fn, args, kwargs = target
        while not self._stop.is_set():
            try:
                for _event in watch.Watch().stream(  # type: ignore[no-untyped-call]
                    fn, *args, timeout_seconds=60, **kwargs
                ):
                    self._wake.set()
                    if self._stop.is_set():
                        return
            except Exception as e:  # a broken watch only delays: the resync still runs
                log.debug("watch ended: %s", e)
                self._stop.wait(5.0)


def load_kube_settings(settings: Settings) -> KubeSettings:
    """``ORCH_KUBE__*`` (e.g. ``ORCH_KUBE__TRAINING_IMAGE``), read once; the object store the
    pods use defaults to the control plane's (``ORCH_OBJECTS__*``)."""
    kube = settings.kube
    objects = settings.objects
    inherited = {
        "object_store_url": objects.url,
        "s3_endpoint_url": objects.s3_endpoint_url,
        "s3_region": objects.s3_region,
        "chunk_size": objects.chunk_size,
    }
    fill = {k: v for k, v in inherited.items() if k not in kube.model_fields_set and v is not None}
    return kube.model_copy(update=fill)


def operator_from_environment(namespace: str | None = None) -> Operator:
    """In a pod: its service account; elsewhere: ``KUBECONFIG`` (or ``~/.kube/config``)."""
    from kubernetes import config

    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config()  # type: ignore[no-untyped-call]
    settings = get_settings()
    kube = load_kube_settings(settings)
    c = settings.controller
    return Operator(
        client.ApiClient(),
        kube,
        namespace=namespace or kube.namespace,
        training_policy=TrainingPolicy(c.stop_grace_seconds),
        endpoint_policy=EndpointPolicy(
            startup_timeout_seconds=c.replica_startup_timeout_seconds,
            max_start_failures=c.replica_max_start_failures,
        ),
        default_bucket=settings.objects.default_bucket,
    )

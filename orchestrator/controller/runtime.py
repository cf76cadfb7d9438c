"""The controller's runtime: observe -> plan (pure) -> act -> persist, for every active resource.

Level-triggered: each pass re-reads the store and the backend, so nothing depends on having
seen an event, and killing the process at any line is safe. Actions happen before the status
that records them is written; every action is idempotent, so a crash between the two only
repeats an action, and an attempt launched but not yet recorded is adopted by the next pass.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from orchestrator import metrics
from orchestrator.backends.base import Backend, ReplicaProcesses
from orchestrator.clock import Clock, SystemClock
from orchestrator.controller.plan.endpoint import DesiredEndpoint, EndpointPolicy, plan_endpoint
from orchestrator.controller.plan.training import (
    DesiredJob,
    TrainingPolicy,
    fail_training_job,
    plan_training_job,
)
from orchestrator.controller.plan.types import (
    Action,
    CleanupJob,
    DeleteRecord,
    FleetHealth,
    GpuCapacity,
    LaunchJob,
    LaunchReplica,
    ObservedReplica,
    Plan,
    RemoveReplica,
    StopJob,
    StopReplica,
    VariantLoad,
)
from orchestrator.controller.routing import EndpointRoute, RoutingTable
from orchestrator.errors import ConflictError, PermanentError
from orchestrator.gpus import GpuInventory
from orchestrator.monitoring.series import SeriesStore
from orchestrator.monitoring.usage import ReplicaProcess, UsageSampler, record_replica_usage
from orchestrator.resources.endpoints import (
    CreateEndpointConfigRequest,
    CreateEndpointRequest,
    EndpointState,
)
from orchestrator.resources.models import CreateModelRequest
from orchestrator.resources.training import (
    CreateTrainingJobRequest,
    TrainingJobState,
)
from orchestrator.settings import Settings
from orchestrator.store import Record, StateStore

log = logging.getLogger("orchestrator.controller")

HELD_REQUEST_POLL_SECONDS = 0.1


def training_output_uri(spec: CreateTrainingJobRequest, default_bucket: str) -> str:
    base = (
        spec.OutputDataConfig.S3OutputPath
        if spec.OutputDataConfig is not None
        else f"s3://{default_bucket}/training-jobs"
    )
    return f"{base.rstrip('/')}/{spec.TrainingJobName}/output/model.tar.gz"


class Controller:
    def __init__(
        self,
        store: StateStore,
        backend: Backend,
        settings: Settings,
        *,
        clock: Clock | None = None,
        routes: RoutingTable | None = None,
        gpus: GpuInventory | None = None,
        telemetry: SeriesStore | None = None,
    ) -> None:
        self.store = store
        # Endpoint traffic (autoscaling, update alarms) and what replicas report back.
        self.telemetry = telemetry
        self.backend = backend
        self.settings = settings
        self.clock = clock or SystemClock()
        self.routes = routes or RoutingTable()
        self.routes.on_demand = self.wake  # a request held for a scaled-to-zero variant
        # None: the backend places GPUs itself; otherwise the controller hands out devices.
        self.gpus = gpus
        self._gpu_indexes = [d.index for d in gpus.devices()] if gpus is not None else []
        self.training_policy = TrainingPolicy(settings.controller.stop_grace_seconds)
        self.endpoint_policy = EndpointPolicy(
            startup_timeout_seconds=settings.controller.replica_startup_timeout_seconds,
            max_start_failures=settings.controller.replica_max_start_failures,
        )
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_counts = 0.0
        self._setup_recorded: set[tuple[str, str]] = set()
        # Gathered over a pass, reported once at its end.
        self._instance_counts: dict[tuple[str, str], int] = {}
        self._usage: list[ReplicaProcess] = []
        self._sampler = UsageSampler()
        self._started_at = self.clock.now()

    # --- one resource ------------------------------------------------------------------------
    def reconcile_training_job(self, record: Record) -> float | None:
        spec = CreateTrainingJobRequest.model_validate(record.spec)
        desired = DesiredJob(
            name=record.name,
            spec=spec,
            status=TrainingJobState.model_validate(record.status),
            created_at=record.created_at,
            stop_requested=record.stop_requested,
            delete_requested=record.delete_requested,
            output_uri=training_output_uri(spec, self.settings.objects.default_bucket),
        )
        observed = self.backend.observe_job(record.name)
        plan = plan_training_job(
            desired,
            observed,
            self.clock.now(),
            self.training_policy,
            capacity=self._gpu_capacity(record.name),
        )
        try:
            self._execute(plan.actions)
        except PermanentError as e:
            # The backend refused this job for good (e.g. it cannot run its kind of code).
            plan = fail_training_job(desired.status, f"ClientError: {e.message}", self.clock.now())
        return self._persist(record, plan)

    def _gpu_capacity(self, job: str) -> GpuCapacity | None:
        """The host's GPUs less those every other active job holds (read from the store, so a
        job planned earlier in the same pass is already counted)."""
        if self.gpus is None:
            return None
        held: set[int] = set()
        for other in self.store.list_active("TrainingJob"):
            if other.name != job:
                held.update(int(i) for i in other.status.get("AllocatedGpus") or [])
        return GpuCapacity(
            total=len(self._gpu_indexes),
            free=tuple(i for i in self._gpu_indexes if i not in held),
        )

    def reconcile_endpoint(self, record: Record) -> float | None:
        spec = CreateEndpointRequest.model_validate(record.spec)
        status = EndpointState.model_validate(record.status)
        config = self._config(spec.EndpointConfigName)
        serving = status.CurrentEndpointConfigName
        current = self._config(serving) if serving and serving != spec.EndpointConfigName else None
        models: dict[str, CreateModelRequest] = {}
        for c in (config, current):
            for v in c.all_variants if c else []:
                m = self.store.find("Model", v.ModelName)
                if m is not None:
                    models[v.ModelName] = CreateModelRequest.model_validate(m.spec)
        now = self.clock.now()
        desired = DesiredEndpoint(
            name=record.name,
            spec=spec,
            status=status,
            config=config,
            models=models,
            delete_requested=record.delete_requested,
            current_config=current,
            load=self._load(record.name, serving or spec.EndpointConfigName, current or config),
            target_health=self._target_health(record.name, status),
        )
        observed = self.backend.observe_replicas(record.name)
        names = [v.VariantName for c in (config, current) for v in (c.all_variants if c else [])]
        self._record_replicas(record.name, names, observed)
        plan = plan_endpoint(desired, observed, now, self.endpoint_policy)
        live = plan.phase not in {"Failed", "Deleting"}
        if plan.routes is not None and live and not record.delete_requested:
            self.routes.publish(
                EndpointRoute(
                    endpoint=record.name,
                    public=spec.AuthMode == "None",
                    variants=plan.routes,
                )
            )
        else:
            self.routes.withdraw(record.name)
        self._execute(plan.actions)
        return self._persist(record, plan)

    def _config(self, name: str) -> CreateEndpointConfigRequest | None:
        rec = self.store.find("EndpointConfig", name)
        return CreateEndpointConfigRequest.model_validate(rec.spec) if rec else None

    def _load(
        self, endpoint: str, config_name: str, config: CreateEndpointConfigRequest | None
    ) -> dict[str, VariantLoad]:
        """The serving fleet's traffic per variant, for the autoscaler."""
        if config is None:
            return {}
        now = self.clock.now()
        window = self.settings.controller.autoscaling_window_seconds
        out: dict[str, VariantLoad] = {}
        for v in config.ProductionVariants:
            waiting = self.routes.waiting(endpoint, v.VariantName)
            load = (
                self.telemetry.variant_load(endpoint, v.VariantName, config_name, window, now)
                if self.telemetry is not None
                else VariantLoad()
            )
            out[v.VariantName] = replace(load, waiting=waiting)
        return out

    def _target_health(self, endpoint: str, status: EndpointState) -> FleetHealth | None:
        d = status.Deployment
        if d is None or d.StepStartTime is None or self.telemetry is None:
            return None
        return self.telemetry.fleet_health(
            endpoint,
            d.TargetEndpointConfigName,
            d.StepStartTime,
            self.clock.now(),
        )

    def _record_replicas(
        self, endpoint: str, variants: list[str], observed: list[ObservedReplica]
    ) -> None:
        """ModelSetupTime of replicas newly ready, and the ready count per variant."""
        counts: dict[str, int] = dict.fromkeys(variants, 0)
        for r in observed:
            if r.state != "ready":
                continue
            counts[r.variant] = counts.get(r.variant, 0) + 1
            key = (endpoint, r.replica_id)
            if key in self._setup_recorded or r.ready_at is None or r.started_at is None:
                continue
            self._setup_recorded.add(key)
            if r.ready_at < self._started_at:
                continue  # ready before this controller started: measured by an earlier one
            seconds = max(0.0, (r.ready_at - r.started_at).total_seconds())
            metrics.record_model_setup_time(endpoint, r.variant, seconds)
            if self.telemetry is not None:
                self.telemetry.record_model_setup_time(
                    endpoint, r.variant, seconds, r.ready_at.timestamp()
                )
        live = {(endpoint, r.replica_id) for r in observed}
        self._setup_recorded = {k for k in self._setup_recorded if k[0] != endpoint or k in live}
        at = self.clock.now().timestamp()
        for variant, n in counts.items():
            self._instance_counts[(endpoint, variant)] = n
            if self.telemetry is not None:
                self.telemetry.record_instances(endpoint, variant, n, at)
        if isinstance(self.backend, ReplicaProcesses) and self.telemetry is not None:
            self._usage.extend(
                ReplicaProcess(endpoint, variant, replica_id, pid)
                for variant, replica_id, pid in self.backend.replica_processes(endpoint)
            )

    def _execute(self, actions: tuple[Action, ...]) -> None:
        removed: set[tuple[str, str]] = set()
        for action in actions:
            if isinstance(action, RemoveReplica | StopReplica):
                key = (action.endpoint, action.replica_id)
                if key in removed:
                    continue  # a plan may name a replica twice (dead and over the limit)
                removed.add(key)
            self._act(action)

    def _act(self, action: Action) -> None:
        b = self.backend
        if isinstance(action, LaunchJob):
            b.launch_job(action.launch)
        elif isinstance(action, StopJob):
            b.stop_job(action.name, force=action.force)
        elif isinstance(action, CleanupJob):
            b.cleanup_job(action.name)
        elif isinstance(action, LaunchReplica):
            b.launch_replica(action.launch)
        elif isinstance(action, RemoveReplica | StopReplica):
            b.remove_replica(action.endpoint, action.replica_id)
        elif isinstance(action, DeleteRecord):
            self.store.delete(action.kind, action.name)
            if action.kind == "Endpoint":
                self.routes.withdraw(action.name)
                if self.telemetry is not None:
                    self.telemetry.forget(action.name)
        else:  # pragma: no cover - exhaustiveness
            raise TypeError(action)

    def _persist(self, record: Record, plan: Plan) -> float | None:
        deleted = any(isinstance(a, DeleteRecord) for a in plan.actions)
        if deleted:
            return None
        if (
            plan.status == record.status
            and plan.phase == record.phase
            and plan.active == record.active
        ):
            return plan.requeue_after
        try:
            self.store.update_status(
                record, plan.status, phase=plan.phase, active=plan.active, now=self.clock.now()
            )
        except ConflictError:
            return 0.0  # the desired state changed under us: plan again at once
        return plan.requeue_after

    # --- passes ------------------------------------------------------------------------------
    def run_pass(self) -> float:
        """Reconcile every active resource once; returns seconds until the next pass is due."""
        next_due = self.settings.controller.resync_seconds
        kinds: list[tuple[str, Callable[[Record], float | None]]] = [
            ("TrainingJob", self.reconcile_training_job),
            ("Endpoint", self.reconcile_endpoint),
        ]
        for kind, reconcile in kinds:
            for record in self.store.list_active(kind):
                started = time.perf_counter()
                try:
                    requeue = reconcile(record)
                except Exception as e:  # one bad resource must not stop the others
                    metrics.record_reconcile_error(kind, e)
                    log.exception("reconcile of %s %s failed", kind, record.name)
                    requeue = self.settings.controller.resync_seconds
                metrics.record_reconcile(kind, time.perf_counter() - started)
                if requeue is not None:
                    next_due = min(next_due, requeue)
        self._remove_orphans()
        self._record_endpoint_pass()
        self._record_counts()
        if self.routes.any_waiting():
            # Requests are held for a replica that is starting: see it ready (and route to
            # it) within a tenth of a second rather than at the next resync.
            next_due = min(next_due, HELD_REQUEST_POLL_SECONDS)
        return max(0.0, next_due)

    def _record_endpoint_pass(self) -> None:
        """Instance counts and replica CPU/memory, gathered over the pass."""
        metrics.record_instance_counts(self._instance_counts)
        self._instance_counts = {}
        usage, self._usage = self._usage, []
        if self.telemetry is not None and usage:
            record_replica_usage(self._sampler, self.telemetry, usage, self.clock.now().timestamp())

    def _remove_orphans(self) -> None:
        """Replicas of endpoints the store no longer has (deleted while we were down)."""
        for endpoint in self.backend.list_endpoints():
            if self.store.find("Endpoint", endpoint) is None:
                for r in self.backend.observe_replicas(endpoint):
                    self.backend.remove_replica(endpoint, r.replica_id)

    def _record_counts(self) -> None:
        now = time.monotonic()
        if now - self._last_counts < 5.0:
            return
        self._last_counts = now
        metrics.record_training_job_counts(self.store.count_by_phase("TrainingJob"))
        metrics.record_endpoint_counts(self.store.count_by_phase("Endpoint"))
        if self.gpus is not None and self._gpu_indexes:
            usage = {u.index: u for u in self.gpus.usage()}
            holders = {
                int(i): r.name
                for r in self.store.list_active("TrainingJob")
                for i in r.status.get("AllocatedGpus") or []
            }
            metrics.record_job_gpu_usage(
                [
                    (job, i, usage[i].utilization_percent, usage[i].memory_used_bytes)
                    for i, job in holders.items()
                    if i in usage
                ]
            )

    # --- background loop ---------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="controller", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()  # before the pass: a wake during the pass runs another one
            try:
                delay = self.run_pass()
            except Exception:
                log.exception("controller pass failed")
                delay = self.settings.controller.resync_seconds
            if delay > 0:
                self._wake.wait(delay)

    def status(self) -> dict[str, Any]:
        return {"running": self._thread is not None and self._thread.is_alive()}

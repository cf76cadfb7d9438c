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
from typing import Any

from orchestrator import metrics
from orchestrator.backends.base import Backend
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
    GpuCapacity,
    LaunchJob,
    LaunchReplica,
    Plan,
    RemoveReplica,
    StopJob,
    StopReplica,
)
from orchestrator.controller.routing import EndpointRoute, RoutingTable
from orchestrator.errors import ConflictError, PermanentError
from orchestrator.gpus import GpuInventory
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
    ) -> None:
        self.store = store
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
        config_rec = self.store.find("EndpointConfig", spec.EndpointConfigName)
        config = CreateEndpointConfigRequest.model_validate(config_rec.spec) if config_rec else None
        models: dict[str, CreateModelRequest] = {}
        for v in config.ProductionVariants if config else []:
            m = self.store.find("Model", v.ModelName)
            if m is not None:
                models[v.ModelName] = CreateModelRequest.model_validate(m.spec)
        desired = DesiredEndpoint(
            name=record.name,
            spec=spec,
            status=EndpointState.model_validate(record.status),
            config=config,
            models=models,
            delete_requested=record.delete_requested,
        )
        observed = self.backend.observe_replicas(record.name)
        plan = plan_endpoint(desired, observed, self.clock.now(), self.endpoint_policy)
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
        self._record_counts()
        return max(0.0, next_due)

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

"""The one reconciler core: desired-state source + backend -> plan -> execute -> status.

``orch server`` (the SQL store, the process or Docker backend) and ``orch operator`` (the
custom resources, the Kubernetes backend) both run this; they differ only in the two plug-ins
and in what they feed it (``Telemetry``, ``Demand``, ``RouteSink``, ``ReplicaWatcher``).

One pass over a kind is, for each record: observe (backend) -> plan (pure, clock injected) ->
execute (``Executor``) -> write status, in that order, so a crash repeats an idempotent action
rather than recording one that never happened. It is level-triggered and safe to kill at any
line: everything is read again on the next pass. A spec the models refuse, or that the backend
cannot carry out (``plan.support``), gets a ``Valid=False`` condition naming the field and
nothing runs. Requeue times and errors follow one policy (``result.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol, TypeVar

import pydantic

from orchestrator import metrics, tenancy
from orchestrator.backends.base import Backend, Configurable, PassSnapshot, TransformBackend
from orchestrator.clock import Clock, SystemClock
from orchestrator.controller.executor import Executor, transform_refusal
from orchestrator.controller.jobmetrics import JobMetrics
from orchestrator.controller.plan.admission import (
    Candidate,
    HostCapacity,
    candidate_of,
    holds_capacity,
    plan_admissions,
    queue_order,
)
from orchestrator.controller.plan.datasource import (
    DesiredDataSource,
    ObservedSnapshot,
    plan_data_source,
)
from orchestrator.controller.plan.endpoint import (
    DesiredEndpoint,
    EndpointPolicy,
    fail_endpoint,
    plan_endpoint,
)
from orchestrator.controller.plan.support import problems_of
from orchestrator.controller.plan.training import (
    RUNNING_RESYNC as TRAINING_RESYNC,
)
from orchestrator.controller.plan.training import (
    DesiredJob,
    TrainingPolicy,
    fail_training_job,
    plan_training_job,
)
from orchestrator.controller.plan.transform import fail_transform_job, plan_transform_job
from orchestrator.controller.plan.tuning import (
    DesiredTuningJob,
    needs_series,
    plan_tuning_job,
    trial_name,
)
from orchestrator.controller.plan.types import (
    Action,
    Admission,
    CleanupTransform,
    DeleteRecord,
    FleetHealth,
    ObservedReplica,
    Plan,
    RemoveReplica,
    ScaleFleets,
    VariantLoad,
)
from orchestrator.controller.result import Backoff, Result, is_terminal
from orchestrator.controller.routing import EndpointRoute
from orchestrator.controller.trials import MetricSeries, TrialSeries, observe_trials
from orchestrator.errors import ConflictError, OrchestratorError, TemporaryError, ValidationError
from orchestrator.gpus import GpuInventory
from orchestrator.resources.common import Condition, ConditionsState, ConditionType, set_condition
from orchestrator.resources.datasources import (
    TERMINAL_DATA_SOURCE_STATUSES,
    CreateDataSourceRequest,
    DataSourceState,
    DataSourceStatus,
)
from orchestrator.resources.endpoints import (
    CreateEndpointConfigRequest,
    CreateEndpointRequest,
    DeploymentConfig,
    EndpointState,
    EndpointStatus,
)
from orchestrator.resources.failures import FailureReason
from orchestrator.resources.kinds import (
    DATA_SOURCE,
    ENDPOINT,
    ENDPOINT_CONFIG,
    HYPER_PARAMETER_TUNING_JOB,
    KINDS,
    MODEL,
    TRAINING_JOB,
    TRANSFORM_JOB,
)
from orchestrator.resources.models import CreateModelRequest
from orchestrator.resources.training import (
    CreateTrainingJobRequest,
    SecondaryStatus,
    TrainingJobState,
    TrainingJobStatus,
)
from orchestrator.resources.transform import (
    TERMINAL_TRANSFORM_STATUSES,
    CreateTransformJobRequest,
    TransformJobState,
    TransformJobStatus,
)
from orchestrator.resources.tuning import (
    CreateHyperParameterTuningJobRequest,
    HyperParameterTuningJobState,
    TuningJobStatus,
)
from orchestrator.resources.validation import parse_spec
from orchestrator.store.source import DesiredState, Record
from orchestrator.training.contract import check_builtin_algorithm

log = logging.getLogger("orchestrator.reconciler")
M = TypeVar("M", bound=pydantic.BaseModel)


def training_output_uri(spec: CreateTrainingJobRequest, default_bucket: str) -> str:
    base = (
        spec.OutputDataConfig.S3OutputPath
        if spec.OutputDataConfig is not None
        else f"s3://{default_bucket}/training-jobs"
    )
    return f"{base.rstrip('/')}/{spec.TrainingJobName}/output/model.tar.gz"


# --- what the hosts plug in ---------------------------------------------------------------
class Telemetry(Protocol):
    """Endpoint traffic, for the autoscaler and the update alarms."""

    def variant_load(
        self, endpoint: str, variant: str, config: str, window_seconds: float, now: datetime
    ) -> VariantLoad | None:
        """None: not known now (the autoscaler then holds the count)."""

    def fleet_health(
        self, endpoint: str, config: str, since: datetime, now: datetime
    ) -> FleetHealth | None: ...


class Demand(Protocol):
    """Requests held right now for a variant with no replica (scaled to zero)."""

    def waiting(self, endpoint: str, variant: str) -> int: ...

    def any_waiting(self) -> bool: ...


class RouteSink(Protocol):
    """Where routes go in the same process (the local data plane's routing table)."""

    def publish(self, route: EndpointRoute) -> None: ...

    def withdraw(self, endpoint: str) -> None: ...


class ReplicaWatcher(Protocol):
    """Told what each pass saw of endpoints' replicas (ModelSetupTime, instance counts...)."""

    def replicas_seen(
        self, endpoint: str, variants: list[str], observed: list[ObservedReplica]
    ) -> None: ...

    def endpoint_gone(self, endpoint: str) -> None: ...

    def pass_done(self) -> None: ...


@dataclass(frozen=True)
class Policies:
    training: TrainingPolicy = field(default_factory=TrainingPolicy)
    endpoint: EndpointPolicy = field(default_factory=EndpointPolicy)
    resync_seconds: float = 1.0
    autoscaling_window_seconds: float = 10.0
    max_backoff_seconds: float = 60.0
    # While requests are held for a starting replica, pass this often (see it ready sooner).
    held_request_poll_seconds: float = 0.1
    default_bucket: str = "orchestrator"
    # Where ARNs say the resources are (a tuning job's trial summaries name their ARNs).
    region: str = "us-east-1"
    account_id: str = "000000000000"
    # Training capacity the queue hands out (None: not accounted): job slots, and the host's
    # vCPUs and memory (ignored where the backend's scheduler places them: Kubernetes).
    training_slots: int | None = None
    host_vcpus: int | None = None
    host_memory_mib: int | None = None
    # A transform instance whose runner died without a result is launched again this often.
    transform_max_restarts: int = 3


class Reconciler:
    def __init__(
        self,
        source: DesiredState,
        backend: Backend,
        *,
        policies: Policies | None = None,
        clock: Clock | None = None,
        gpus: GpuInventory | None = None,
        telemetry: Telemetry | None = None,
        demand: Demand | None = None,
        routes: RouteSink | None = None,
        watcher: ReplicaWatcher | None = None,
        spec_errors: Callable[[ValidationError], ValidationError] | None = None,
        metric_series: MetricSeries | None = None,
    ) -> None:
        self.source = source
        # How a bad spec is told to its author (custom resources: camelCase field paths).
        self.spec_errors = spec_errors or (lambda e: e)
        self.backend = backend
        self.policies = policies or Policies()
        self.clock = clock or SystemClock()
        # None, or a backend that schedules GPUs itself: the controller hands out no devices.
        self.gpus = None if backend.schedules_gpus else gpus
        self._gpu_indexes = [d.index for d in self.gpus.devices()] if self.gpus else []
        self.telemetry = telemetry
        self.demand = demand
        self.routes = routes
        self.watcher = watcher
        # The states of metric alarms by name (``api.alarms``), for the rollback alarms an
        # endpoint update names by AlarmName alone; None: no alarms here (they never fire).
        self.alarm_states: Callable[[list[str]], dict[str, str]] | None = None
        self.executor = Executor(backend, source, on_released=self._released, clock=self.clock)
        # Running trials' metric series, for early stopping and Hyperband (from the job logs).
        self.trial_series = TrialSeries(metric_series or JobMetrics(backend, clock=self.clock))
        self.backoff = Backoff(self.policies.max_backoff_seconds)
        self._refs: dict[tuple[str, str], Record | None] = {}
        # The admission queue (controller/plan/admission.py): this pass's view of every active
        # training job, and each one's admission.
        places = backend.schedules_gpus
        self.host = HostCapacity(
            slots=self.policies.training_slots,
            gpus=tuple(self._gpu_indexes) if self.gpus is not None else None,
            vcpus=None if places else self.policies.host_vcpus,
            memory_mib=None if places else self.policies.host_memory_mib,
        )
        self._queue: dict[str, Candidate] = {}
        # Each job's candidate as of its record in the last listing: a source that hands back
        # the same record for a row that did not change (the SQL store) is not read again.
        self._candidates: dict[str, tuple[Record, Candidate]] = {}
        self._admissions: dict[str, Admission] = {}
        self._queue_changed = False
        # Jobs that waited in this process's last plan of them (and the spec they waited
        # with): a pass skips those whose wait did not change (``_still_waiting``). Empty
        # after a restart: the first pass observes every job, so an attempt launched before a
        # crash and never recorded is adopted, and counts as holding capacity.
        self._waited: dict[str, dict[str, Any]] = {}
        self._first_pass = True
        # A training job ended in this pass (its slot may let a tuning job launch the next).
        self._job_ended = False
        # Requests held per (endpoint, variant) as this pass read them (orch_held_requests).
        self._held: dict[tuple[str, str], int] = {}

    # --- passes ------------------------------------------------------------------------------
    def run_pass(self) -> float:
        """Reconcile every active resource once; seconds until the next pass is due."""
        p = self.policies
        started = time.perf_counter()
        next_due = p.resync_seconds
        self._refs = {}
        self._held = {}
        self._job_ended = False
        tuning = False
        if isinstance(self.backend, PassSnapshot):
            self.backend.refresh()
        kinds: list[tuple[str, Callable[[Record], Result]]] = [
            (MODEL.name, self.validate_only),
            (ENDPOINT_CONFIG.name, self.validate_only),
            # Before training jobs: the trials a tuning job creates start in the same pass,
            # as do data sources' snapshot jobs.
            (HYPER_PARAMETER_TUNING_JOB.name, self.reconcile_tuning_job),
            (DATA_SOURCE.name, self.reconcile_data_source),
            (TRAINING_JOB.name, self.reconcile_training_job),
            (TRANSFORM_JOB.name, self.reconcile_transform_job),
            (ENDPOINT.name, self.reconcile_endpoint),
        ]
        seen_endpoints: set[str] = set()
        sweep = self._first_pass
        active_jobs: set[str] = set()
        for kind, reconcile in kinds:
            records = self.source.list_active(kind)
            if kind in (HYPER_PARAMETER_TUNING_JOB.name, DATA_SOURCE.name):
                # Kinds made of training jobs (trials, snapshots): see their end at once.
                tuning = tuning or bool(records)
            if kind in _REFERENCED:
                # What endpoints refer to, as this listing has it: no read per endpoint.
                self._refs.update(((kind, r.name), r) for r in records)
            if kind == TRAINING_JOB.name:
                active_jobs = {r.name for r in records}
                records = self._admit(records)
            for record in records:
                if kind == ENDPOINT.name:
                    seen_endpoints.add(record.name)
                if kind == TRAINING_JOB.name:
                    if self._queue_changed:
                        self._readmit(record.name)
                    waits = self._still_waiting(record)
                    if waits is not None:
                        next_due = min(next_due, waits)
                        continue
                requeue = self._one(kind, record, reconcile)
                if requeue is not None:
                    next_due = min(next_due, requeue)
        self._remove_orphans(seen_endpoints)
        self._first_pass = False
        if (sweep or self._job_ended) and self.executor.credentials is not None:
            # Level-triggered revoke: every job that no longer runs loses its credential.
            self.executor.credentials.sweep(active_jobs)
        if tuning and self._job_ended:
            # Tuning jobs and data sources are reconciled before training jobs, so a trial or
            # snapshot that ended in this pass is only seen by its owner in the next one: run
            # it now, not after the owner's resync (docs/benchmarks.md, "Hyperparameter
            # tuning").
            next_due = 0.0
        if self.watcher is not None:
            self.watcher.pass_done()
        if self.demand is not None and self.demand.any_waiting():
            next_due = min(next_due, p.held_request_poll_seconds)
        metrics.record_held_requests(self._held)
        # After this pass's launches: the jobs still waiting for capacity.
        metrics.record_training_queue_length(sum(not c.holds for c in self._queue.values()))
        metrics.record_controller_pass(time.perf_counter() - started, time.time())
        return max(0.0, next_due)

    def _one(
        self, kind: str, record: Record, reconcile: Callable[[Record], Result]
    ) -> float | None:
        started = time.perf_counter()
        try:
            result = reconcile(record)
            self.backoff.succeeded(kind, record.name)
            requeue = result.requeue_after
        except TemporaryError as e:
            metrics.record_reconcile_error(kind, e)
            requeue = self.backoff.failed(kind, record.name, e)
            log.warning("reconcile of %s %s: %s (retry in %.1f s)", kind, record.name, e, requeue)
        except Exception as e:  # one bad resource must not stop the others
            metrics.record_reconcile_error(kind, e)
            log.exception("reconcile of %s %s failed", kind, record.name)
            requeue = self.policies.resync_seconds
        metrics.record_reconcile(kind, time.perf_counter() - started)
        return requeue

    def _remove_orphans(self, known: set[str]) -> None:
        """Replicas of endpoints the source no longer has (deleted while we were down)."""
        for endpoint in self.backend.list_endpoints():
            if endpoint in known or self.source.find(ENDPOINT.name, endpoint) is not None:
                continue
            now = self.clock.now()
            gone = Record(ENDPOINT.name, endpoint, "", {}, {}, "", False, False, True, now, now, "")
            try:
                self.executor.run(
                    gone, _teardown(endpoint, self.backend.observe_replicas(endpoint))
                )
            except OrchestratorError as e:
                log.warning("removing the replicas of deleted endpoint %s: %s", endpoint, e)

    def _released(self, record: Record) -> None:
        if record.kind == ENDPOINT.name:
            if self.routes is not None:
                self.routes.withdraw(record.name)
            if self.watcher is not None:
                self.watcher.endpoint_gone(record.name)

    # --- shared steps --------------------------------------------------------------------------
    def _ref(self, kind: str, name: str) -> Record | None:
        """A referenced resource, read once per pass: from the pass's listing, else (not
        listed as active, or made since) read by name."""
        key = (kind, name)
        if key not in self._refs:
            self._refs[key] = self.source.find(kind, name)
        return self._refs[key]

    def _spec(self, model: type[M], record: Record) -> M:
        """The record's spec as its model, checked against what the backend can do; the error
        names the fields as the source's users write them."""
        try:
            spec = parse_spec(model, record.spec)
        except ValidationError as e:
            raise self.spec_errors(e) from e
        configured = self.backend.configured() if isinstance(self.backend, Configurable) else set()
        problems = problems_of(record.kind, spec, self.backend.name, configured)
        if problems:
            text = "; ".join(r.message for r in problems)
            raise self.spec_errors(ValidationError(text, field=problems[0].field))
        return spec

    def _status(self, model: type[M], record: Record) -> M:
        try:
            return model.model_validate(record.status)
        except pydantic.ValidationError:
            log.warning("unreadable status of %s %s; afresh", record.kind, record.name)
            return model()

    def _write(
        self,
        record: Record,
        plan: Plan[M],
        *,
        active: bool | None = None,
        then: Callable[[], None] | None = None,
    ) -> Result:
        """Persist the plan's status (when it changed); a lost race plans again at once.
        ``then``: what to do once the status is stored (not after a lost race)."""
        doc = plan.status.model_dump(mode="json")
        live = plan.active if active is None else active
        same = _pruned(doc) == _pruned(record.status)
        if not (same and plan.phase == record.phase and live == record.active):
            try:
                self.source.update_status(
                    record, doc, phase=plan.phase, active=live, now=self.clock.now()
                )
            except ConflictError:
                return Result(0.0)  # the desired state changed under us: plan again at once
        if then is not None:
            then()
        return Result(plan.requeue_after)

    def _invalid(
        self, record: Record, error: ValidationError, status: pydantic.BaseModel
    ) -> Result:
        """Refuse the resource: a ``Valid=False`` condition naming the field; nothing runs."""
        now = self.clock.now()
        conditions = set_condition(
            _conditions_of(status),
            ConditionType.VALID,
            "False",
            reason="InvalidSpec",
            message=error.message,
            now=now,
        )
        state = status.model_copy(update={"Conditions": conditions})
        kind = KINDS[record.kind]
        phase = kind.phase_of(state.model_dump(mode="json"))
        return self._write(record, Plan((), state, phase, active=False))

    def _valid(self, status: M) -> M:
        conditions = set_condition(
            _conditions_of(status),
            ConditionType.VALID,
            "True",
            reason="Valid",
            message="",
            now=self.clock.now(),
        )
        return status.model_copy(update={"Conditions": conditions})

    # --- kinds without a lifecycle -------------------------------------------------------------
    def validate_only(self, record: Record) -> Result:
        """Models and EndpointConfigs: a ``Valid`` condition (sources that list them as active:
        the custom resources; the REST API validated the others when they were created)."""
        model: type[pydantic.BaseModel] = KINDS[record.kind].spec
        status = self._status(ConditionsState, record)
        try:
            self._spec(model, record)
        except ValidationError as e:
            return self._invalid(record, e, status)
        state = self._valid(status)
        return self._write(record, Plan((), state, KINDS[record.kind].initial_phase, active=True))

    # --- training jobs -------------------------------------------------------------------------
    def reconcile_training_job(self, record: Record) -> Result:
        now = self.clock.now()
        status = self._status(TrainingJobState, record)
        try:
            spec = self._spec(CreateTrainingJobRequest, record)
            try:
                _check_pinned(spec)
            except ValidationError as e:
                raise self.spec_errors(e) from None
        except ValidationError as e:
            if record.delete_requested:
                self.backend.cleanup_job(record.name)
                self.source.release(record)
                return Result()
            failed = status.model_copy(
                update={
                    "TrainingJobStatus": TrainingJobStatus.FAILED,
                    "SecondaryStatus": SecondaryStatus.FAILED,
                    "FailureReason": f"ValidationException: {e.message}"[:1024],
                }
            )
            return self._invalid(record, e, failed)
        if not record.delete_requested and status.TrainingJobStatus not in _TERMINAL:
            record = self.source.claim(record)
        desired = DesiredJob(
            name=record.name,
            spec=spec,
            status=self._valid(status),
            created_at=record.created_at,
            stop_requested=record.stop_requested or record.delete_requested,
            delete_requested=record.delete_requested,
            output_uri=training_output_uri(spec, self.policies.default_bucket),
        )
        observed = self.backend.observe_job(record.name)
        plan = plan_training_job(
            desired, observed, now, self.policies.training, self._admissions.get(record.name)
        )
        try:
            self.executor.run(record, plan.actions)
        except OrchestratorError as e:
            if not is_terminal(e):
                raise
            # The backend refused this job for good (e.g. it cannot run its kind of code).
            plan = fail_training_job(
                desired.status, FailureReason(kind="ClientError", message=e.message), now
            )
        if _deletes(plan):
            if self.executor.credentials is not None:
                self.executor.credentials.revoke("training", record.name)
            return Result()
        if record.active and not plan.active:
            self._job_ended = True
        holds = plan.active and holds_capacity(plan.status.Attempt, plan.status.SecondaryStatus)
        self._queued(record.name, plan.active, holds, tuple(plan.status.AllocatedGpus))
        if (
            plan.active
            and not holds
            and not plan.actions
            and plan.status.SecondaryStatus == SecondaryStatus.PENDING
        ):
            self._waited[record.name] = record.spec
        else:
            self._waited.pop(record.name, None)
        ended = plan.status
        result = self._write(record, plan, then=lambda: _count_training(status, ended))
        if record.active and not plan.active and self.executor.credentials is not None:
            # Stored as ended: its credential goes (a crash before this: the next sweep).
            self.executor.credentials.revoke("training", record.name)
        if record.preempt_requested and plan.active and not holds:
            # Carried out: the job is back in the queue (or never left it).
            self.source.set_flag(
                TRAINING_JOB.name, record.name, "preempt_requested", now, value=False
            )
        return result

    # --- transform jobs --------------------------------------------------------------------------
    def reconcile_transform_job(self, record: Record) -> Result:
        """Plan the job over what the backend runs of it; its scratch is removed only once the
        status that ends the job is stored (a crash before that plans the end again)."""
        now = self.clock.now()
        status = self._status(TransformJobState, record)
        backend = self.backend
        try:
            spec = self._spec(CreateTransformJobRequest, record)
            if not isinstance(backend, TransformBackend):
                raise ValidationError(transform_refusal(backend.name))
        except ValidationError as e:
            metrics.remove_transform_job(record.name)
            if record.delete_requested:
                if isinstance(backend, TransformBackend):
                    backend.cleanup_transform(record.name)
                self.source.release(record)
                return Result()
            failed = status.model_copy(
                update={
                    "TransformJobStatus": TransformJobStatus.FAILED,
                    "FailureReason": f"ValidationException: {e.message}"[:1024],
                    "TransformEndTime": status.TransformEndTime or now,
                }
            )
            return self._invalid(record, e, failed)
        ended = status.TransformJobStatus in TERMINAL_TRANSFORM_STATUSES
        if not record.delete_requested and not ended:
            record = self.source.claim(record)
        model, model_error = self._transform_model(spec.ModelName)
        observed = backend.observe_transform(record.name)
        current = self._valid(status)
        plan = plan_transform_job(
            spec,
            current,
            observed,
            model,
            now=now,
            stop_requested=record.stop_requested,
            delete_requested=record.delete_requested,
            max_restarts=self.policies.transform_max_restarts,
            stop_grace_seconds=self.policies.training.stop_grace_seconds,
            model_error=model_error,
        )
        try:
            self.executor.run(record, _before_write(plan.actions))
        except OrchestratorError as e:
            if not is_terminal(e):
                raise
            # The backend refused an instance for good: the job fails, and the instances it
            # runs (some may have been launched just now: observed again) stop.
            reason = FailureReason(kind="ClientError", message=e.message)
            plan = fail_transform_job(
                spec,
                current,
                backend.observe_transform(record.name),
                reason,
                now=now,
                delete_requested=record.delete_requested,
            )
            self.executor.run(record, _before_write(plan.actions))
        after = tuple(a for a in plan.actions if isinstance(a, CleanupTransform | DeleteRecord))
        if _deletes(plan):
            self.executor.run(record, after)
            metrics.remove_transform_job(record.name)
            return Result()
        result = self._write(
            record, plan, then=(lambda: self.executor.run(record, after)) if after else None
        )
        if plan.status.TransformJobStatus in TERMINAL_TRANSFORM_STATUSES:
            metrics.remove_transform_job(record.name)
        else:
            progress = plan.status.Progress
            latency = progress.ModelLatencyMicroseconds
            metrics.record_transform_progress(
                record.name,
                records=progress.RecordsProcessed,
                records_per_second=progress.RecordsPerSecond,
                model_latency_seconds=None if latency is None else latency / 1e6,
            )
        return result

    def _transform_model(self, name: str) -> tuple[CreateModelRequest | None, str | None]:
        """A transform job's Model (read once per pass), or why it cannot be used (None:
        there is none)."""
        rec = self._ref(MODEL.name, name)
        if rec is None:
            return None, None
        try:
            return self._spec(CreateModelRequest, rec), None
        except ValidationError as e:
            return None, e.message

    # --- the admission queue ---------------------------------------------------------------------
    def _admit(self, records: list[Record]) -> list[Record]:
        """Every active training job's admission for this pass (one O(n log n) plan), and the
        order to reconcile them in: the jobs that hold capacity first, so that what they free
        in this pass goes to the queue in the same pass (``_readmit``), then the waiting jobs
        in queue order (those admitted together launch in priority order)."""
        self._queue = {}
        known, self._candidates = self._candidates, {}
        for r in records:
            before = known.get(r.name)
            if before is not None and before[0] is r:  # the same record as the last pass
                c = before[1]
            else:
                c = candidate_of(
                    r.name, r.created_at, r.spec, r.status, preempt_requested=r.preempt_requested
                )
            self._candidates[r.name] = (r, c)
            if not c.holds and self._first_pass:
                c = self._launched_unrecorded(c, r)
            if c.holds or not (r.stop_requested or r.delete_requested):
                self._queue[r.name] = c  # a waiting job asked to stop takes no place
        self._waited = {n: spec for n, spec in self._waited.items() if n in self._queue}
        order = queue_order(self._queue.values())
        self._admissions = plan_admissions(list(self._queue.values()), self.host, order)
        self._queue_changed = False
        by_name = {r.name: r for r in records}
        holding = [r for r in records if r.name in self._queue and self._queue[r.name].holds]
        waiting = [by_name[c.name] for c in order]
        rest = [r for r in records if r.name not in self._queue]
        return holding + waiting + rest

    def _launched_unrecorded(self, c: Candidate, record: Record) -> Candidate:
        """A waiting job whose attempt the backend runs: launched before a crash, its status
        never written. It holds capacity (its plan adopts the attempt), so that the queue does
        not hand the same capacity to another job in the meantime."""
        try:
            observed = self.backend.observe_job(record.name)
        except Exception as e:  # one bad resource must not stop the pass (its plan reports it)
            log.warning("observing training job %s: %s", record.name, e)
            return c
        attempt = int(record.status.get("Attempt") or 0)
        if observed is None or observed.attempt <= attempt or observed.state != "running":
            return c
        return replace(c, holds=True, held_gpus=tuple(observed.gpus))

    def _still_waiting(self, record: Record) -> float | None:
        """Seconds until a waiting job needs planning again, when its wait is what it was
        after its last plan in this process (so its plan would change nothing: no read, no
        observation, no write); None: plan it. Never skipped: a job the queue admits now or
        fails, one with an attempt (the backend may have something to adopt), one asked to
        stop, be deleted or preempted, one whose spec or Pending reason changed, one whose
        MaxPendingTimeInSeconds is due."""
        spec = self._waited.get(record.name)
        admission = self._admissions.get(record.name)
        if spec is None or admission is None or admission.admitted or admission.fail:
            return None
        if record.stop_requested or record.delete_requested or record.preempt_requested:
            return None
        st = record.status
        if st.get("Attempt") or st.get("SecondaryStatus") != SecondaryStatus.PENDING.value:
            return None
        transitions = st.get("SecondaryStatusTransitions") or ()
        if not transitions or transitions[-1].get("StatusMessage") != admission.reason:
            return None
        if record.spec is not spec and record.spec != spec:
            return None
        limit = (record.spec.get("StoppingCondition") or {}).get("MaxPendingTimeInSeconds")
        if limit is None:
            return TRAINING_RESYNC
        left = limit - (self.clock.now() - record.created_at).total_seconds()
        return None if left <= 0 else min(TRAINING_RESYNC, max(0.05, left))

    def _queued(self, name: str, active: bool, holds: bool, gpus: tuple[int, ...]) -> None:
        """What planning did to a job: a job that held capacity and no longer does (it ended,
        or went back to the queue) frees it."""
        before = self._queue.get(name)
        if before is None:
            return
        if before.holds and not holds:
            self._queue_changed = True
        if active:
            self._queue[name] = replace(before, holds=holds, held_gpus=gpus)
        else:
            del self._queue[name]

    def _readmit(self, next_job: str) -> None:
        """Capacity was freed in this pass: plan the admissions of the jobs not yet reconciled
        again (once, before the first waiting one)."""
        if next_job in self._queue and self._queue[next_job].holds:
            return
        jobs = list(self._queue.values())
        self._admissions = plan_admissions(jobs, self.host, queue_order(jobs))
        self._queue_changed = False

    # --- tuning jobs -----------------------------------------------------------------------------
    def reconcile_tuning_job(self, record: Record) -> Result:
        now = self.clock.now()
        status = self._status(HyperParameterTuningJobState, record)
        try:
            spec = self._spec(CreateHyperParameterTuningJobRequest, record)
            self._check_trials(spec)
        except ValidationError as e:
            if record.delete_requested:
                self.source.release(record)
                return Result()
            failed = status.model_copy(
                update={
                    "HyperParameterTuningJobStatus": TuningJobStatus.FAILED,
                    "FailureReason": f"ValidationException: {e.message}"[:1024],
                }
            )
            return self._invalid(record, e, failed)
        done = status.HyperParameterTuningJobStatus in (
            TuningJobStatus.COMPLETED,
            TuningJobStatus.FAILED,
            TuningJobStatus.STOPPED,
        )
        if not record.delete_requested and not done:
            record = self.source.claim(record)
        warm = spec.WarmStartConfig
        trials = observe_trials(
            self.source,
            record,
            len(spec.definitions),
            objective=(lambda d: spec.objective_of(d).MetricName) if needs_series(spec) else None,
            series=self.trial_series,
            parents=[p.HyperParameterTuningJobName for p in warm.ParentHyperParameterTuningJobs]
            if warm
            else (),
        )
        desired = DesiredTuningJob(
            name=record.name,
            uid=record.uid,
            spec=spec,
            status=self._valid(status),
            created_at=record.created_at,
            stop_requested=record.stop_requested,
            delete_requested=record.delete_requested,
            arn_prefix=self._arn_prefix(TRAINING_JOB.arn_slug),
        )
        plan = plan_tuning_job(desired, trials, now)
        self.executor.run(record, plan.actions)
        if _deletes(plan):
            return Result()
        return self._write(record, plan)

    def _check_trials(self, spec: CreateHyperParameterTuningJobRequest) -> None:
        """Each definition must make training jobs this backend can run (the trials at the
        ranges' ends, as the API's create checks them), so a bad definition (a custom
        resource is not checked by the API) fails the tuning job, not 40 trials in turn."""
        configured = self.backend.configured() if isinstance(self.backend, Configurable) else set()
        for i, (where, d) in enumerate(spec.named_definitions()):
            for tuned in spec.corner_values(i):
                name = trial_name(spec.HyperParameterTuningJobName, "check", 1)
                try:
                    trial = parse_spec(CreateTrainingJobRequest, d.training_spec(name, tuned, []))
                    check_builtin_algorithm(trial)
                except ValidationError as e:
                    raise ValidationError(f"{where}: {e.message}", field=where) from e
                problems = problems_of(TRAINING_JOB.name, trial, self.backend.name, configured)
                if problems:
                    text = "; ".join(f"{where}: {p.message}" for p in problems)
                    raise ValidationError(text, field=where)

    # --- data sources ---------------------------------------------------------------------------
    def reconcile_data_source(self, record: Record) -> Result:
        status = self._status(DataSourceState, record)
        try:
            spec = self._spec(CreateDataSourceRequest, record)
        except ValidationError as e:
            if record.delete_requested:
                self.source.release(record)
                return Result()
            failed = status.model_copy(
                update={"Status": DataSourceStatus.FAILED, "Message": e.message[:1024]}
            )
            return self._invalid(record, e, failed)
        if not record.delete_requested:
            record = self.source.claim(record)
        latest = status.Versions[-1] if status.Versions else None
        observed = None
        if latest is not None and latest.Status not in TERMINAL_DATA_SOURCE_STATUSES:
            # Only a version still taking its snapshot needs its job (a custom resource's
            # source would read it by name on every pass).
            job = self.source.find(TRAINING_JOB.name, latest.SnapshotJobName)
            observed = observe_snapshot(latest.SnapshotJobName, job)
        desired = DesiredDataSource(
            name=record.name,
            uid=record.uid,
            spec=spec,
            status=self._valid(status),
            delete_requested=record.delete_requested,
            default_output=f"s3://{self.policies.default_bucket}/datasources",
        )
        plan = plan_data_source(desired, observed, self.clock.now())
        self.executor.run(record, plan.actions)
        if _deletes(plan):
            return Result()
        return self._write(record, plan)

    def _arn_prefix(self, slug: str) -> str:
        return f"arn:aws:sagemaker:{self.policies.region}:{self.policies.account_id}:{slug}/"

    # --- endpoints -----------------------------------------------------------------------------
    def reconcile_endpoint(self, record: Record) -> Result:
        now = self.clock.now()
        status = self._status(EndpointState, record)
        try:
            spec = self._spec(CreateEndpointRequest, record)
        except ValidationError as e:
            if record.delete_requested:
                observed = self.backend.observe_replicas(record.name)
                self.executor.run(
                    record,
                    (*_teardown(record.name, observed), DeleteRecord(ENDPOINT.name, record.name)),
                )
                return Result()
            failed = status.model_copy(
                update={"EndpointStatus": EndpointStatus.FAILED, "FailureReason": e.message}
            )
            self._withdraw(record.name)
            return self._invalid(record, e, failed)
        if not record.delete_requested:
            record = self.source.claim(record)
        status = self._valid(status)
        serving = status.CurrentEndpointConfigName
        config, models, problem = self._references(spec.EndpointConfigName, serving)
        if problem is not None and serving is None and not record.delete_requested:
            # Not there yet (or not valid yet): wait for it, as a pod waits for its ConfigMap.
            waiting = status.model_copy(
                update={
                    "Conditions": set_condition(
                        status.Conditions,
                        ConditionType.READY,
                        "False",
                        reason="ReferenceNotReady",
                        message=problem,
                        now=now,
                    )
                }
            )
            self._write(record, Plan((), waiting, record.phase or ENDPOINT.initial_phase, True))
            return Result(self.policies.resync_seconds)
        current = None
        if serving and serving != spec.EndpointConfigName:
            current = self._config(serving)
            for v in current.all_variants if current else []:
                model = self._model(v.ModelName)
                if model is not None:
                    models[v.ModelName] = model
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
            alarm_states=self._alarm_states(spec, status, record.account),
        )
        observed = self.backend.observe_replicas(record.name)
        if self.watcher is not None:
            names = [
                v.VariantName for c in (config, current) for v in (c.all_variants if c else [])
            ]
            self.watcher.replicas_seen(record.name, names, observed)
        plan = plan_endpoint(desired, observed, now, self.policies.endpoint)
        self._publish(record, spec, plan)
        try:
            self.executor.run(record, plan.actions)
        except OrchestratorError as e:
            if not is_terminal(e):
                raise
            plan = fail_endpoint(
                plan.status, f"ClientError: {e.message}", now, endpoint=record.name
            )
            self._withdraw(record.name)
        if _deletes(plan):
            return Result()
        return self._write(record, plan)

    def _references(
        self, name: str, serving: str | None
    ) -> tuple[CreateEndpointConfigRequest | None, dict[str, CreateModelRequest], str | None]:
        """The spec's EndpointConfig and its Models, or why they are not usable yet."""
        rec = self._ref(ENDPOINT_CONFIG.name, name)
        if rec is None:
            return None, {}, f"EndpointConfig {name!r} not found"
        try:
            config = self._spec(CreateEndpointConfigRequest, rec)
        except ValidationError as e:
            return None, {}, f"EndpointConfig {name!r} is invalid: {e.message}"
        models: dict[str, CreateModelRequest] = {}
        for v in config.all_variants:
            model_rec = self._ref(MODEL.name, v.ModelName)
            if model_rec is None:
                return config, models, f"Model {v.ModelName!r} not found"
            try:
                models[v.ModelName] = self._spec(CreateModelRequest, model_rec)
            except ValidationError as e:
                return config, models, f"Model {v.ModelName!r} is invalid: {e.message}"
        return config, models, None

    def _config(self, name: str) -> CreateEndpointConfigRequest | None:
        rec = self._ref(ENDPOINT_CONFIG.name, name)
        try:
            return parse_spec(CreateEndpointConfigRequest, rec.spec) if rec else None
        except ValidationError:
            return None

    def _model(self, name: str) -> CreateModelRequest | None:
        rec = self._ref(MODEL.name, name)
        try:
            return parse_spec(CreateModelRequest, rec.spec) if rec else None
        except ValidationError:
            return None

    def _load(
        self, endpoint: str, config_name: str, config: CreateEndpointConfigRequest | None
    ) -> dict[str, VariantLoad]:
        """The serving fleet's traffic per variant, for the autoscaler."""
        if config is None:
            return {}
        now = self.clock.now()
        window = self.policies.autoscaling_window_seconds
        out: dict[str, VariantLoad] = {}
        for v in config.ProductionVariants:
            load = (
                self.telemetry.variant_load(endpoint, v.VariantName, config_name, window, now)
                if self.telemetry is not None
                else VariantLoad()
            )
            waiting = self.demand.waiting(endpoint, v.VariantName) if self.demand else 0
            self._held[(endpoint, v.VariantName)] = waiting
            if load is None:
                continue  # unknown: the autoscaler holds this variant's count
            out[v.VariantName] = VariantLoad(
                invocations_per_minute=load.invocations_per_minute,
                concurrency=load.concurrency,
                last_invocation_at=load.last_invocation_at,
                waiting=waiting,
            )
        return out

    def _alarm_states(
        self, spec: CreateEndpointRequest, status: EndpointState, account: str
    ) -> dict[str, str]:
        """The rollback alarms' states, read as the endpoint's own account: another account's
        alarm of the same name is none of its business."""
        if status.Deployment is None or self.alarm_states is None:
            return {}
        config = spec.DeploymentConfig or DeploymentConfig()
        names = [a.AlarmName for a in config.alarms if a.MetricName is None]
        if not names:
            return {}
        try:
            with tenancy.acting_as(account):
                return self.alarm_states(names)
        except Exception:  # the alarm store unreachable: this pass sees no alarm fire
            log.exception("metric alarms' states not read for endpoint updates")
            return {}

    def _target_health(self, endpoint: str, status: EndpointState) -> FleetHealth | None:
        d = status.Deployment
        if d is None or d.StepStartTime is None or self.telemetry is None:
            return None
        return self.telemetry.fleet_health(
            endpoint, d.TargetEndpointConfigName, d.StepStartTime, self.clock.now()
        )

    def _publish(
        self, record: Record, spec: CreateEndpointRequest, plan: Plan[EndpointState]
    ) -> None:
        if self.routes is None:
            return
        live = plan.phase not in {"Failed", "Deleting"}
        if plan.routes is not None and live and not record.delete_requested:
            public = spec.AuthMode == "None"
            tags = tuple((t.Key, t.Value) for t in spec.Tags)
            self.routes.publish(
                EndpointRoute(record.name, public, plan.routes, tags, account=record.account)
            )
        else:
            self.routes.withdraw(record.name)

    def _withdraw(self, endpoint: str) -> None:
        if self.routes is not None:
            self.routes.withdraw(endpoint)


# Kinds endpoints and transform jobs refer to (an EndpointConfig, Models): listed early in
# every pass.
_REFERENCED = frozenset({MODEL.name, ENDPOINT_CONFIG.name})
_TERMINAL = frozenset(
    {TrainingJobStatus.COMPLETED, TrainingJobStatus.FAILED, TrainingJobStatus.STOPPED}
)


def _check_pinned(spec: CreateTrainingJobRequest) -> None:
    """A channel naming a data source must carry its snapshot's URI: the API pins it when it
    creates the job; a custom resource applied as written has none to read."""
    for i, c in enumerate(spec.InputDataConfig):
        ref = c.DataSource.DataSourceReference
        if ref is not None and c.DataSource.unresolved:
            field = f"InputDataConfig[{i}].DataSource.S3DataSource.S3Uri"
            raise ValidationError(
                f"{field}: the channel names DataSource {ref.DataSourceName!r} without its "
                "snapshot; create the job through the API or the client (they pin the latest "
                "completed version), or set S3Uri to a version's SnapshotUri and Version to "
                f"its number (orch datasources describe {ref.DataSourceName})",
                field=field,
            )


def observe_snapshot(name: str, record: Record | None) -> ObservedSnapshot:
    """A data source version's snapshot job as its planner sees it."""
    if record is None:
        return ObservedSnapshot(name, None)
    try:
        st = TrainingJobState.model_validate(record.status)
    except pydantic.ValidationError:
        return ObservedSnapshot(name, None)
    return ObservedSnapshot(
        name,
        st.TrainingJobStatus,
        failure_reason=st.FailureReason,
        metrics={m.MetricName: m.Value for m in st.FinalMetricDataList},
        end_time=st.TrainingEndTime,
    )


def _count_training(before: TrainingJobState, after: TrainingJobState) -> None:
    """What a stored status adds to the training metrics: the attempts that ended since the
    last stored one, and the job's end (run after the write: a lost race counts nothing)."""
    for attempt in after.Attempts[len(before.Attempts) :]:
        metrics.record_training_attempt_ended(attempt.Outcome.value, retried=attempt.Retried)
    if before.TrainingJobStatus not in _TERMINAL and after.TrainingJobStatus in _TERMINAL:
        metrics.record_training_job_ended(
            after.TrainingJobStatus.value, after.TrainingTimeInSeconds
        )


def _conditions_of(status: pydantic.BaseModel) -> list[Condition]:
    conditions = getattr(status, "Conditions", [])
    return list(conditions) if isinstance(conditions, list) else []


def _pruned(doc: Any) -> Any:
    """Without null values (a custom resource's status keeps none), to compare documents."""
    if isinstance(doc, dict):
        return {k: _pruned(v) for k, v in doc.items() if v is not None}
    if isinstance(doc, list):
        return [_pruned(v) for v in doc]
    return doc


def _deletes(plan: Plan[M]) -> bool:
    return any(isinstance(a, DeleteRecord) for a in plan.actions)


def _before_write(actions: tuple[Action, ...]) -> tuple[Action, ...]:
    """A transform job's actions that come before its status is written: all but its cleanup
    and its record's release, which come once the status that ends it is stored."""
    return tuple(a for a in actions if not isinstance(a, CleanupTransform | DeleteRecord))


def _teardown(endpoint: str, observed: list[ObservedReplica]) -> tuple[Action, ...]:
    """Everything of an endpoint goes: each replica, and every fleet."""
    return (
        *(RemoveReplica(r.endpoint, r.replica_id) for r in observed),
        ScaleFleets(endpoint, ()),
    )

"""Every Prometheus collector of the product, defined once, with typed ``record_*`` helpers.

Call sites use the helpers, never the collectors, so names and label sets stay consistent.
The control plane and each inference server expose these on ``GET /metrics``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)

# --- control plane -------------------------------------------------------------------------
TRAINING_JOBS = Gauge(
    "orch_training_jobs", "Training jobs by primary status.", ["status"], registry=REGISTRY
)
ENDPOINTS = Gauge("orch_endpoints", "Endpoints by status.", ["status"], registry=REGISTRY)
RECONCILE_SECONDS = Histogram(
    "orch_reconcile_seconds",
    "Time for one reconcile pass of one resource (observe, plan, act, persist).",
    ["kind"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
RECONCILE_ERRORS = Counter(
    "orch_reconcile_errors_total",
    "Reconcile passes that raised.",
    ["kind", "kind_of_error"],
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "orch_api_requests_total",
    "Control-plane API requests.",
    ["method", "route", "status"],
    registry=REGISTRY,
)

# --- endpoints (router on the control plane, and each inference server) ---------------------
INVOCATIONS = Counter(
    "orch_invocations_total", "Endpoint invocations.", ["endpoint", "variant"], registry=REGISTRY
)
INVOCATION_ERRORS = Counter(
    "orch_invocation_errors_total",
    "Endpoint invocations that failed, by class (4XX or 5XX).",
    ["endpoint", "variant", "error_class"],
    registry=REGISTRY,
)
MODEL_LATENCY = Histogram(
    "orch_model_latency_seconds",
    "Time the model took to answer (input_fn + predict_fn + output_fn).",
    ["endpoint", "variant"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
OVERHEAD_LATENCY = Histogram(
    "orch_overhead_latency_seconds",
    "Time added on top of the model (routing, protocol).",
    ["endpoint", "variant"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)


MODEL_SETUP_TIME = Histogram(
    "orch_model_setup_seconds",
    "Time from starting a replica to its first successful /ping (ModelSetupTime).",
    ["endpoint", "variant"],
    buckets=(0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0),
    registry=REGISTRY,
)
CONCURRENT_REQUESTS = Gauge(
    "orch_concurrent_requests",
    "Requests in flight through the invocation router, per variant.",
    ["endpoint", "variant"],
    registry=REGISTRY,
)
ROUTER_WORKER_INVOCATIONS = Counter(
    "orch_router_worker_invocations_total",
    "Invocations answered by each router worker of the control plane (0: its own process).",
    ["worker"],
    registry=REGISTRY,
)
ENDPOINT_INSTANCES = Gauge(
    "orch_endpoint_instances",
    "Ready instances (replicas) of an endpoint variant.",
    ["endpoint", "variant"],
    registry=REGISTRY,
)
REPLICA_CPU = Gauge(
    "orch_replica_cpu_percent",
    "CPU of one endpoint replica between two controller passes (100 = one core busy).",
    ["endpoint", "variant", "replica"],
    registry=REGISTRY,
)
REPLICA_MEMORY = Gauge(
    "orch_replica_memory_bytes",
    "Resident memory of one endpoint replica.",
    ["endpoint", "variant", "replica"],
    registry=REGISTRY,
)


JOB_GPU_UTILIZATION = Gauge(
    "orch_job_gpu_utilization_percent",
    "GPU utilization of a device held by a running training job.",
    ["job", "gpu"],
    registry=REGISTRY,
)
JOB_GPU_MEMORY = Gauge(
    "orch_job_gpu_memory_used_bytes",
    "GPU memory in use on a device held by a running training job.",
    ["job", "gpu"],
    registry=REGISTRY,
)


# Batch transform jobs' progress (what the runners recorded, as the job's status has it).
TRANSFORM_RECORDS = Gauge(
    "orch_transform_records_total",
    "Records a running transform job has scored so far, all instances together.",
    ["job"],
    registry=REGISTRY,
)
TRANSFORM_RECORDS_PER_SECOND = Gauge(
    "orch_transform_records_per_second",
    "Records a running transform job scores per second, all instances together.",
    ["job"],
    registry=REGISTRY,
)
TRANSFORM_MODEL_LATENCY = Gauge(
    "orch_transform_model_latency_seconds",
    "Mean time a running transform job's model takes per request (send to whole answer).",
    ["job"],
    registry=REGISTRY,
)


def record_transform_progress(
    job: str,
    *,
    records: int,
    records_per_second: float | None,
    model_latency_seconds: float | None,
) -> None:
    """A running transform job's progress as its status has it now (None: not measured yet)."""
    TRANSFORM_RECORDS.labels(job=job).set(records)
    for gauge, value in (
        (TRANSFORM_RECORDS_PER_SECOND, records_per_second),
        (TRANSFORM_MODEL_LATENCY, model_latency_seconds),
    ):
        if value is not None:
            gauge.labels(job=job).set(value)
        else:
            _remove(gauge, job)


def remove_transform_job(job: str) -> None:
    """The transform job ended (or went): its series drop out."""
    for gauge in (TRANSFORM_RECORDS, TRANSFORM_RECORDS_PER_SECOND, TRANSFORM_MODEL_LATENCY):
        _remove(gauge, job)


def _remove(gauge: Gauge, job: str) -> None:
    with contextlib.suppress(KeyError):  # never set
        gauge.remove(job)


# A running job's resource use per host (training.usage), SageMaker's names and meanings.
JOB_USAGE = {
    name: Gauge(
        f"orch_job_{snake}_percent",
        f"{name} of a running training job's host, as SageMaker defines it ({meaning}).",
        ["job", "host"],
        registry=REGISTRY,
    )
    for name, snake, meaning in (
        ("CPUUtilization", "cpu_utilization", "each core's busy percent, summed"),
        ("MemoryUtilization", "memory_utilization", "percent of the instance's memory"),
        ("DiskUtilization", "disk_utilization", "percent of VolumeSizeInGB under /opt/ml"),
        ("GPUUtilization", "host_gpu_utilization", "each held GPU's percent, summed"),
        ("GPUMemoryUtilization", "host_gpu_memory_utilization", "each GPU's memory %, summed"),
    )
}


def record_job_usage(samples: list[tuple[str, str, str, float]]) -> None:
    """(job, host, metric, value) of each running job's latest samples; the rest (jobs that
    ended, hosts that went) drop out."""
    for gauge in JOB_USAGE.values():
        gauge.clear()
    for job, host, metric, value in samples:
        JOB_USAGE[metric].labels(job=job, host=host).set(value)


def record_job_gpu_usage(samples: list[tuple[str, int, float, int]]) -> None:
    """(job, device index, utilization %, memory bytes) for every held device; jobs that
    ended drop out."""
    JOB_GPU_UTILIZATION.clear()
    JOB_GPU_MEMORY.clear()
    for job, index, utilization, memory in samples:
        JOB_GPU_UTILIZATION.labels(job=job, gpu=str(index)).set(utilization)
        JOB_GPU_MEMORY.labels(job=job, gpu=str(index)).set(memory)


def record_training_job_counts(counts: dict[str, int]) -> None:
    for status, n in counts.items():
        TRAINING_JOBS.labels(status=status).set(n)


def record_endpoint_counts(counts: dict[str, int]) -> None:
    for status, n in counts.items():
        ENDPOINTS.labels(status=status).set(n)


def record_reconcile(kind: str, seconds: float) -> None:
    RECONCILE_SECONDS.labels(kind=kind).observe(seconds)


def record_reconcile_error(kind: str, error: BaseException) -> None:
    RECONCILE_ERRORS.labels(kind=kind, kind_of_error=type(error).__name__).inc()


def record_api_request(method: str, route: str, status: int) -> None:
    API_REQUESTS.labels(method=method, route=route, status=str(status)).inc()


def record_invocation(
    endpoint: str,
    variant: str,
    *,
    status: int,
    model_seconds: float | None,
    overhead_seconds: float | None,
) -> None:
    """One request answered by an endpoint (router) or by a model server."""
    children = _children(endpoint, variant)
    children.invocations.inc()
    if 400 <= status < 500:
        children.errors_4xx.inc()
    elif status >= 500:
        children.errors_5xx.inc()
    if model_seconds is not None:
        children.model_latency.observe(model_seconds)
    if overhead_seconds is not None:
        children.overhead_latency.observe(overhead_seconds)


def record_routed(
    endpoint: str,
    variant: str,
    *,
    answered: int,
    errors_4xx: int,
    errors_5xx: int,
    overhead_seconds: Iterable[float],
    in_flight_change: int,
) -> None:
    """A batch of the router's requests to one (endpoint, variant): counts once per batch,
    one OverheadLatency observation per request, the in-flight gauge moved by the net
    change (requests started less those finished)."""
    children = _children(endpoint, variant)
    if answered:
        children.invocations.inc(answered)
    if errors_4xx:
        children.errors_4xx.inc(errors_4xx)
    if errors_5xx:
        children.errors_5xx.inc(errors_5xx)
    observe = children.overhead_latency.observe
    for seconds in overhead_seconds:
        observe(seconds)
    if in_flight_change:
        children.concurrent.inc(in_flight_change)


def record_worker_invocations(worker: int, count: int) -> None:
    ROUTER_WORKER_INVOCATIONS.labels(worker=str(worker)).inc(count)


class _InvocationChildren:
    """The labelled collectors of one (endpoint, variant), looked up once: ``labels()`` costs
    about as much as the increment itself, and this runs on every request (the replica's
    profile under load showed 6.6% of its CPU in record_invocation before, about 2% after)."""

    __slots__ = (
        "concurrent",
        "errors_4xx",
        "errors_5xx",
        "invocations",
        "model_latency",
        "overhead_latency",
    )

    def __init__(self, endpoint: str, variant: str) -> None:
        self.invocations = INVOCATIONS.labels(endpoint=endpoint, variant=variant)
        self.errors_4xx = INVOCATION_ERRORS.labels(
            endpoint=endpoint, variant=variant, error_class="4XX"
        )
        self.errors_5xx = INVOCATION_ERRORS.labels(
            endpoint=endpoint, variant=variant, error_class="5XX"
        )
        self.model_latency = MODEL_LATENCY.labels(endpoint=endpoint, variant=variant)
        self.overhead_latency = OVERHEAD_LATENCY.labels(endpoint=endpoint, variant=variant)
        self.concurrent = CONCURRENT_REQUESTS.labels(endpoint=endpoint, variant=variant)


_invocation_children: dict[tuple[str, str], _InvocationChildren] = {}


def _children(endpoint: str, variant: str) -> _InvocationChildren:
    children = _invocation_children.get((endpoint, variant))
    if children is None:
        children = _InvocationChildren(endpoint, variant)
        _invocation_children[(endpoint, variant)] = children
    return children


def record_model_setup_time(endpoint: str, variant: str, seconds: float) -> None:
    """A replica of the variant answered its first /ping ``seconds`` after it started."""
    MODEL_SETUP_TIME.labels(endpoint=endpoint, variant=variant).observe(seconds)


def record_request_started(endpoint: str, variant: str) -> None:
    _children(endpoint, variant).concurrent.inc()


def record_request_finished(endpoint: str, variant: str) -> None:
    _children(endpoint, variant).concurrent.dec()


def record_instance_counts(counts: dict[tuple[str, str], int]) -> None:
    """Ready instances for every (endpoint, variant) there is; deleted ones drop out."""
    ENDPOINT_INSTANCES.clear()
    for (endpoint, variant), n in counts.items():
        ENDPOINT_INSTANCES.labels(endpoint=endpoint, variant=variant).set(n)


def record_replica_usage(samples: list[tuple[str, str, str, float, int]]) -> None:
    """(endpoint, variant, replica id, CPU %, memory bytes) for every replica sampled this
    pass; replicas that went away drop out."""
    REPLICA_CPU.clear()
    REPLICA_MEMORY.clear()
    for endpoint, variant, replica, cpu, memory in samples:
        REPLICA_CPU.labels(endpoint=endpoint, variant=variant, replica=replica).set(cpu)
        REPLICA_MEMORY.labels(endpoint=endpoint, variant=variant, replica=replica).set(memory)


# --- the control plane's own health (what helm/orchestrator/alerts/ and the dashboards read)
CONTROLLER_PASS_SECONDS = Histogram(
    "orch_controller_pass_seconds",
    "Time for one whole controller pass over every active resource.",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
CONTROLLER_LAST_PASS = Gauge(
    "orch_controller_last_pass_timestamp_seconds",
    "Unix time the last controller pass finished (0: none yet in this process).",
    registry=REGISTRY,
)
TRAINING_QUEUE_LENGTH = Gauge(
    "orch_training_queue_length",
    "Training jobs waiting in the admission queue (not holding capacity), as of the last pass.",
    registry=REGISTRY,
)
OBJECT_STORE_ERRORS = Counter(
    "orch_object_store_errors_total",
    "Object-store operations that failed for a reason other than the caller's input "
    "(integrity, io, backend, unavailable, permission).",
    ["error"],
    registry=REGISTRY,
)
API_REQUEST_SECONDS = Histogram(
    "orch_api_request_seconds",
    "Time the control-plane API took to answer a request.",
    ["method", "route"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
HELD_REQUESTS = Gauge(
    "orch_held_requests",
    "Requests held for a variant with no ready replica (scaled to zero), as of the last pass.",
    ["endpoint", "variant"],
    registry=REGISTRY,
)

# Training jobs' ends and attempts (counted once the status that records them is stored).
TRAINING_JOBS_ENDED = Counter(
    "orch_training_jobs_ended_total",
    "Training jobs that reached a terminal status (Completed, Failed, Stopped).",
    ["status"],
    registry=REGISTRY,
)
TRAINING_JOB_SECONDS = Histogram(
    "orch_training_job_seconds",
    "TrainingTimeInSeconds of each training job that ended, by its terminal status.",
    ["status"],
    buckets=(10, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 28800, 86400, 259200),
    registry=REGISTRY,
)
TRAINING_ATTEMPTS_ENDED = Counter(
    "orch_training_attempts_ended_total",
    "Training job attempts that ended, by outcome (Completed, Failed, Stopped, Preempted) and "
    "whether another attempt followed (retried: a retry, or a preempted job's relaunch).",
    ["outcome", "retried"],
    registry=REGISTRY,
)

# What ``orch_object_store_errors_total{error=...}`` may say.
OBJECT_STORE_ERROR_KINDS = ("integrity", "io", "backend", "unavailable", "permission")


def record_controller_pass(seconds: float, finished_at: float) -> None:
    """A controller pass took ``seconds`` and finished at Unix time ``finished_at``."""
    CONTROLLER_PASS_SECONDS.observe(seconds)
    CONTROLLER_LAST_PASS.set(finished_at)


def record_training_queue_length(waiting: int) -> None:
    TRAINING_QUEUE_LENGTH.set(waiting)


def record_object_store_error(error: str) -> None:
    """One failed object-store operation; ``error`` is one of ``OBJECT_STORE_ERROR_KINDS``."""
    if error not in OBJECT_STORE_ERROR_KINDS:
        raise ValueError(
            f"object-store error kind {error!r} is not one of {OBJECT_STORE_ERROR_KINDS}"
        )
    OBJECT_STORE_ERRORS.labels(error=error).inc()


def record_training_job_ended(status: str, training_seconds: float | None) -> None:
    TRAINING_JOBS_ENDED.labels(status=status).inc()
    if training_seconds is not None:
        TRAINING_JOB_SECONDS.labels(status=status).observe(training_seconds)


def record_training_attempt_ended(outcome: str, *, retried: bool) -> None:
    TRAINING_ATTEMPTS_ENDED.labels(outcome=outcome, retried=str(retried).lower()).inc()


def record_api_latency(method: str, route: str, seconds: float) -> None:
    API_REQUEST_SECONDS.labels(method=method, route=route).observe(seconds)


def record_held_requests(counts: dict[tuple[str, str], int]) -> None:
    """Requests held now for every (endpoint, variant) that has some; the others drop out."""
    HELD_REQUESTS.clear()
    for (endpoint, variant), n in counts.items():
        if n:
            HELD_REQUESTS.labels(endpoint=endpoint, variant=variant).set(n)


def exposition() -> tuple[bytes, str]:
    """The registry in Prometheus text format, with its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


# Usage (orchestrator.usage): added by the usage flusher for each window it closes, so the
# totals are the usage report's, window after window.
USAGE_INSTANCE_SECONDS = Counter(
    "orch_usage_instance_seconds_total",
    "Instance-seconds used, by kind (TrainingJob: billable; Endpoint; TransformJob) and type.",
    ["kind", "instance_type"],
    registry=REGISTRY,
)
USAGE_PREDICTIONS = Counter(
    "orch_usage_predictions_total",
    "Predictions (invocations) served, by endpoint.",
    ["endpoint"],
    registry=REGISTRY,
)


# Metric alarms (orchestrator.api.alarms): state changes and the actions they ran.
ALARM_STATE_CHANGES = Counter(
    "orch_alarm_state_changes_total",
    "Metric alarm state changes, by the new state (OK, ALARM, INSUFFICIENT_DATA).",
    ["state"],
    registry=REGISTRY,
)
ALARM_ACTIONS = Counter(
    "orch_alarm_actions_total",
    "Alarm actions run, by kind (webhook, stop-training-job, scale-variant) and outcome.",
    ["kind", "outcome"],
    registry=REGISTRY,
)


def record_alarm_state_change(state: str) -> None:
    ALARM_STATE_CHANGES.labels(state=state).inc()


def record_alarm_action(kind: str, *, ok: bool) -> None:
    ALARM_ACTIONS.labels(kind=kind, outcome="succeeded" if ok else "failed").inc()

"""``orch server``'s host of the reconciler: the SQL store, a local backend, a thread.

The reconciler core (``reconciler.py``) does the work; this host plugs in what one machine
has: the SQL store as the desired state, the process or Docker backend, the host's GPUs, the
in-process routing table (routes published for the data plane beside it, requests held for a
variant at zero), and the endpoint time series (autoscaling, update alarms, replica metrics).
It runs passes on a thread: every ``resync_seconds``, sooner when a plan asks, at once when a
create or a stop wakes it. Safe to kill at any line (see the reconciler).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

from orchestrator import metrics
from orchestrator.backends.base import Backend, ReplicaProcesses
from orchestrator.clock import Clock, SystemClock
from orchestrator.controller.jobmetrics import JobMetrics
from orchestrator.controller.plan.endpoint import EndpointPolicy
from orchestrator.controller.plan.training import TrainingPolicy
from orchestrator.controller.plan.types import ObservedReplica
from orchestrator.controller.reconciler import Policies, Reconciler, training_output_uri
from orchestrator.controller.routing import RoutingTable
from orchestrator.controller.trials import MetricSeries
from orchestrator.gpus import GpuInventory
from orchestrator.monitoring.series import SeriesStore
from orchestrator.monitoring.usage import ReplicaProcess, UsageSampler, record_replica_usage
from orchestrator.settings import Settings
from orchestrator.store.source import DesiredState

__all__ = ["Controller", "ReplicaMetrics", "policies_from", "training_output_uri"]

log = logging.getLogger("orchestrator.controller")


def policies_from(settings: Settings) -> Policies:
    c = settings.controller
    on_host = settings.backend in ("process", "docker") and settings.desired_state == "sql"
    return Policies(
        training=TrainingPolicy(
            c.stop_grace_seconds, retry_backoff_seconds=c.retry_backoff_seconds
        ),
        endpoint=EndpointPolicy(
            startup_timeout_seconds=c.replica_startup_timeout_seconds,
            max_start_failures=c.replica_max_start_failures,
        ),
        resync_seconds=c.resync_seconds,
        autoscaling_window_seconds=c.autoscaling_window_seconds,
        default_bucket=settings.objects.default_bucket,
        region=settings.region,
        account_id=settings.account_id,
        training_slots=c.max_concurrent_training_jobs or None,
        # The machine's, where jobs run on it (the fake backend runs nothing: unaccounted
        # unless set; on Kubernetes the scheduler places CPU and memory).
        host_vcpus=c.training_vcpus or (os.cpu_count() if on_host else None),
        host_memory_mib=c.training_memory_mib or (host_memory_mib() if on_host else None),
        transform_max_restarts=settings.transform.max_instance_restarts,
    )


def host_memory_mib() -> int | None:
    """The machine's memory (None where the platform does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // (1 << 20)
    except (ValueError, OSError, AttributeError):
        return None


class ReplicaMetrics:
    """What a pass saw of replicas, into Prometheus and the time series: ModelSetupTime (once
    per replica), ready instances per variant, and replica CPU/memory (host processes)."""

    def __init__(self, backend: Backend, clock: Clock, telemetry: SeriesStore | None) -> None:
        self.backend = backend
        self.clock = clock
        self.telemetry = telemetry
        self._started_at = clock.now()
        self._setup_recorded: set[tuple[str, str]] = set()
        self._instance_counts: dict[tuple[str, str], int] = {}
        self._usage: list[ReplicaProcess] = []
        self._sampler = UsageSampler()

    def replicas_seen(
        self, endpoint: str, variants: list[str], observed: list[ObservedReplica]
    ) -> None:
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

    def endpoint_gone(self, endpoint: str) -> None:
        if self.telemetry is not None:
            self.telemetry.forget(endpoint)

    def pass_done(self) -> None:
        metrics.record_instance_counts(self._instance_counts)
        self._instance_counts = {}
        usage, self._usage = self._usage, []
        if self.telemetry is not None and usage:
            record_replica_usage(self._sampler, self.telemetry, usage, self.clock.now().timestamp())


class Controller:
    def __init__(
        self,
        store: DesiredState,
        backend: Backend,
        settings: Settings,
        *,
        clock: Clock | None = None,
        routes: RoutingTable | None = None,
        gpus: GpuInventory | None = None,
        telemetry: SeriesStore | None = None,
        metric_series: MetricSeries | None = None,
    ) -> None:
        self.store = store
        self.backend = backend
        self.settings = settings
        self.clock = clock or SystemClock()
        self.routes = routes or RoutingTable()
        # A request held for a variant scaled to zero: plan at once.
        self.routes.on_demand = lambda _endpoint, _variant: self.wake()
        self.telemetry = telemetry
        self.gpus = gpus
        self.reconciler = Reconciler(
            store,
            backend,
            policies=policies_from(settings),
            clock=self.clock,
            gpus=gpus,
            telemetry=telemetry,
            demand=self.routes,
            routes=self.routes,
            watcher=ReplicaMetrics(backend, self.clock, telemetry),
            metric_series=metric_series,
        )
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_counts = 0.0
        # The running jobs' latest resource use for Prometheus (the API's reader when shared).
        self.job_metrics = (
            metric_series
            if isinstance(metric_series, JobMetrics)
            else JobMetrics(backend, clock=self.clock)
        )
        self.passes = 0  # passes run (what the API's queue view is as fresh as)

    # --- passes ------------------------------------------------------------------------------
    def run_pass(self) -> float:
        """Reconcile every active resource once; returns seconds until the next pass is due."""
        delay = self.reconciler.run_pass()
        self.passes += 1
        self._record_counts()
        return delay

    def _record_counts(self) -> None:
        now = time.monotonic()
        if now - self._last_counts < 5.0:
            return
        self._last_counts = now
        metrics.record_training_job_counts(self.store.count_by_phase("TrainingJob"))
        metrics.record_endpoint_counts(self.store.count_by_phase("Endpoint"))
        self._record_job_usage()
        gpus = self.reconciler.gpus
        if gpus is None:
            return
        usage = {u.index: u for u in gpus.usage()}
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

    def _record_job_usage(self) -> None:
        """Each training job's latest usage sample per host, while it is fresh (a host that
        stopped sampling, training over or gone, drops out)."""
        fresh_for = max(15.0, 3 * self.settings.controller.usage_interval_seconds)
        now = self.clock.now()
        samples = []
        for record in self.store.list_active("TrainingJob"):
            for (metric, host), point in self.job_metrics.latest_usage(record.name).items():
                if (now - point.timestamp).total_seconds() <= fresh_for:
                    samples.append((record.name, host, metric, point.value))
        metrics.record_job_usage(samples)

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

"""The control plane's operations, independent of HTTP: what each REST route calls.

Creates validate (the models, then what the backend can carry out: ``plan.support``), check
references and quotas, store the spec with an initial status in the desired-state source, and
wake the reconciler; describes merge spec and status; stops and deletes record desired state
for the reconciler to carry out. The source is the SQL store on one host and the custom
resources on a cluster, where this layer is a stateless front of the Kubernetes API.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from orchestrator import tenancy
from orchestrator.api import evaluation as job_scores
from orchestrator.api import search as searching
from orchestrator.api.alarms import Alarms
from orchestrator.api.auth import KeyStore
from orchestrator.api.aws.credentials import AccessKeys, open_secret, seal
from orchestrator.api.datasources import DataSources
from orchestrator.api.inputs import check_file_uri, check_source_uri, current_caller
from orchestrator.api.kms import KmsKeys
from orchestrator.api.queue import TrainingQueue
from orchestrator.api.tags import ResourceTags
from orchestrator.api.transform import TransformJobs
from orchestrator.api.tuning import TuningJobs
from orchestrator.audit import AuditTrail
from orchestrator.backends.base import AttemptLogs, Backend, Configurable, JobLogSize
from orchestrator.clock import Clock
from orchestrator.controller.jobmetrics import JobMetrics
from orchestrator.controller.plan.admission import holds_capacity
from orchestrator.controller.plan.support import problems_of
from orchestrator.controller.routing import RoutingTable
from orchestrator.controller.runtime import Controller
from orchestrator.errors import (
    ConflictError,
    DeadlineExceededError,
    LimitExceededError,
    NotFoundError,
    OrchestratorError,
    PermissionDeniedError,
    UnavailableError,
    ValidationError,
)
from orchestrator.monitoring.series import SeriesStore
from orchestrator.objects import LocalKeyring, ObjectStore, buckets, safe_extract
from orchestrator.objects.keys import KeyProvider
from orchestrator.objects.rewrap import MasterKeys
from orchestrator.resources.common import make_arn
from orchestrator.resources.endpoints import (
    CreateEndpointConfigRequest,
    CreateEndpointRequest,
    DescribeEndpointConfigResponse,
    DescribeEndpointResponse,
    EndpointConfigSummary,
    EndpointState,
    EndpointStatus,
    EndpointSummary,
    UpdateEndpointRequest,
    UpdateEndpointWeightsAndCapacitiesRequest,
    check_overrides,
    merged_overrides,
)
from orchestrator.resources.evaluation import EvaluationScoresResponse, ThresholdMetricsResponse
from orchestrator.resources.jobmetrics import (
    MAX_SERIES_POINTS,
    MIN_SERIES_POINTS,
    MetricPointOut,
    MetricSeriesOut,
    TrainingJobMetricsResponse,
)
from orchestrator.resources.kinds import (
    ENDPOINT,
    ENDPOINT_CONFIG,
    KINDS,
    MODEL,
    TRAINING_JOB,
    Kind,
)
from orchestrator.resources.models import (
    SUBMIT_DIR_ENV,
    CreateModelRequest,
    DescribeModelResponse,
    ModelSummary,
)
from orchestrator.resources.search import SearchRequest
from orchestrator.resources.training import (
    SUBMIT_DIR_HYPERPARAMETER,
    TERMINAL_TRAINING_STATUSES,
    CreateTrainingJobRequest,
    DescribeTrainingJobResponse,
    OutputDataConfig,
    SecondaryStatus,
    TrainingJobState,
    TrainingJobStatus,
    TrainingJobSummary,
)
from orchestrator.settings import Settings
from orchestrator.store import DesiredState, ListFilter, Record
from orchestrator.store.metrics_sql import UserMetricsStore
from orchestrator.store.source import SORT_BY, SortBy
from orchestrator.training.contract import (
    builtin_algorithm,
    check_builtin_algorithm,
    metric_patterns,
)
from orchestrator.training.files import output_kms_key
from orchestrator.training.metricseries import MetricPoint, downsample
from orchestrator.training.usage import METRICS as USAGE_METRICS

R = TypeVar("R", bound=BaseModel)
TF_HINT = "pip install 'orchestrator[tensorflow]'"

log = logging.getLogger("orchestrator.api")


def _series_out(name: str, host: str | None, points: list[MetricPoint]) -> MetricSeriesOut:
    return MetricSeriesOut(
        MetricName=name,
        Host=host,
        Points=[
            MetricPointOut(Timestamp=p.timestamp, Value=p.value, Step=p.step, Epoch=p.epoch)
            for p in points
        ],
    )


class Service(Protocol):
    """Something that runs beside the API for as long as the app does."""

    def start(self) -> None: ...

    def stop(self) -> None: ...


class ListQuery(BaseModel):
    MaxResults: int | None = None
    NextToken: str | None = None
    NameContains: str | None = None
    StatusEquals: str | None = None
    CreationTimeAfter: datetime | None = None
    CreationTimeBefore: datetime | None = None
    LastModifiedTimeAfter: datetime | None = None
    LastModifiedTimeBefore: datetime | None = None
    SortBy: str = "CreationTime"
    SortOrder: str = "Descending"


class ControlPlane:
    def __init__(
        self,
        *,
        settings: Settings,
        store: DesiredState,
        keys: KeyStore,
        backend: Backend,
        backend_name: str,
        objects: ObjectStore,
        routes: RoutingTable,
        clock: Clock,
        controller: Controller | None = None,
        series: SeriesStore | None = None,
        services: Sequence[Service] = (),
        keyring: KeyProvider | None = None,
        job_metrics: JobMetrics | None = None,
        key_provider: KeyProvider | None = None,
    ) -> None:
        self.settings = settings
        # Endpoint metrics as time series (None: this control plane records none).
        self.series = series
        self.store = store
        self.keys = keys
        # Where job logs are read; the backend that runs the work is ``backend_name`` (on a
        # cluster the API only reads pod logs: the operator runs everything).
        self.backend = backend
        self.backend_name = backend_name
        self.objects = objects
        self.routes = routes
        # The reconciler in this process (None on a cluster: the operator reconciles).
        self.controller = controller
        # Started and stopped with the app (on a cluster: keeping routes in step).
        self.services = list(services)
        self.clock = clock
        # SigV4 access keys, in the same key store, their secrets sealed by the keyring.
        self.access_keys = AccessKeys(keys, keyring or LocalKeyring(settings.keyring_path))
        # What wraps objects' data keys: a resource's KmsKeyId is checked against it at create.
        self.key_provider: KeyProvider = key_provider or keyring or self.access_keys.keyring
        # The local keyring's named keys (orch kms).
        self.kms = KmsKeys(self)
        # Master key versions: rotation, the background re-wrap (a service), retirement.
        self.master_keys = MasterKeys(
            objects,
            self.access_keys.keyring,
            settings.keyring_path.with_name("rewrap.json"),
            rate=settings.objects.rewrap_rate,
            other_users=self._sealed_secrets,
            after_pass=self._reseal_secrets,
        )
        self.services.append(self.master_keys.service)
        # Tags of any resource, by ARN: they live in the resource's spec, on every source.
        self.tags = ResourceTags(store, settings, clock)
        # Hyperparameter tuning jobs (their trials are training jobs in the same store).
        self.tuning = TuningJobs(self)
        # Batch transform jobs (their instances are the backend's, their logs too).
        self.transform = TransformJobs(self)
        # Data sources (their snapshots are training jobs in the same store).
        self.data_sources = DataSources(self)
        # Training jobs' metric series, read from their logs (pod logs on a cluster).
        # (the same reader as the local reconciler's tuner, where there is one: one cache)
        self.job_metrics = job_metrics or JobMetrics(backend, clock=clock)
        # The admission queue as users see it (positions; the queued-jobs limit).
        self.queue = TrainingQueue(store, (lambda: controller.passes) if controller else None)
        # The audit trail (None: ORCH_AUDIT__ENABLED=false); set by build_control_plane.
        self.audit: AuditTrail | None = None
        # PutMetricData's store (None: no durable metrics); set by build_control_plane.
        self.user_metrics: UserMetricsStore | None = None
        # Metric alarms and their evaluator (None: no SQL store); set by build_control_plane.
        self.alarms: Alarms | None = None

    def _sealed_secrets(self, key_id: str) -> dict[str, int]:
        """How many SigV4 access keys' secrets master key version ``key_id`` seals."""
        with tenancy.acting_as(None):  # every account's keys
            every = self.keys.list_access_keys()
        sealed = sum(1 for r in every if r.sealed_secret.startswith(f"v1:{key_id}:"))
        return {"access keys": sealed}

    def _reseal_secrets(self) -> int:
        """Seal again, under the current master key version, every access key secret sealed
        under an older one (after each re-wrap pass); returns how many moved."""
        reseal = getattr(self.keys, "reseal_access_key", None)
        if reseal is None:  # a keys file (a Secret) holds its secrets in the clear
            return 0
        keyring = self.access_keys.keyring
        current = f"v1:{keyring.active_key_id}:"
        moved = 0
        with tenancy.acting_as(None):  # every account's keys
            every = self.keys.list_access_keys()
        for record in every:
            if not record.sealed_secret.startswith("v1:") or record.sealed_secret.startswith(
                current
            ):
                continue
            try:
                new = seal(keyring, record.access_key_id, open_secret(keyring, record))
            except OrchestratorError as e:  # a secret under a destroyed key stays as it is
                log.warning("access key %s not resealed: %s", record.access_key_id, e.message)
                continue
            moved += bool(reseal(record.access_key_id, record.sealed_secret, new))
        return moved

    def close(self) -> None:
        """Release what this process holds (connections), not the work that runs."""
        self.backend.close()
        self.store.close()

    def wake(self) -> None:
        """Have the reconciler look at once (on a cluster the operator's watch does that)."""
        if self.controller is not None:
            self.controller.wake()

    def _create(self, kind: Kind, spec: BaseModel) -> tuple[str, bool]:
        """Store a new resource with its kind's initial status (the same spec again: the
        existing one, created=False); wake the reconciler for kinds with a lifecycle."""
        name = str(getattr(spec, kind.name_field))
        _, created = self.store.create(
            kind.name,
            name,
            spec.model_dump(mode="json"),
            kind.initial_status(),
            phase=kind.initial_phase,
            active=kind.reconciled,
            now=self.clock.now(),
        )
        if created and kind.reconciled:
            self.wake()
        return self.arn(kind.name, name), created

    def _check_supported(self, kind: str, spec: BaseModel) -> None:
        """A field the backend cannot carry out is refused before anything is stored."""
        configured = self.backend.configured() if isinstance(self.backend, Configurable) else set()
        problems = problems_of(kind, spec, self.backend_name, configured)
        if problems:
            raise ValidationError("; ".join(p.message for p in problems), field=problems[0].field)

    def check_kms_key(self, key: str | None, field: str) -> None:
        """A ``KmsKeyId`` the key provider does not have, or refuses, is a 400 naming
        ``field``, before anything is stored (an unreachable provider stays a 503)."""
        if key is None:
            return
        try:
            self.key_provider.check_key(key)
        except (ValidationError, PermissionDeniedError, NotFoundError) as e:
            raise ValidationError(f"{field}: {e.message}", field=field) from e

    def arn(self, kind: str, name: str, account: str | None = None) -> str:
        """The ARN of a resource of ``account`` (None: the caller's, ``tenancy``)."""
        s = self.settings
        owner = (tenancy.current() or tenancy.ROOT) if account is None else account
        return make_arn(
            s.region, tenancy.arn_account(owner, s.account_id), KINDS[kind].arn_slug, name
        )

    # --- shared ----------------------------------------------------------------------------
    def check_bucket(self, uri: str, field: str, *, output: bool = False) -> None:
        """The bucket of an ``s3://`` URI a create names must be the caller's account's (an
        ``output`` one may also not exist yet, for the server's own account: the job's put
        makes it, the server's), else a 400 naming ``field``, in the same words whether the
        bucket is absent or another account's (``objects.buckets``)."""
        if not uri.startswith("s3://"):
            return
        bucket = uri[len("s3://") :].partition("/")[0]
        ok = (buckets.writable if output else buckets.visible)(self.objects, bucket)
        account = tenancy.stamp()
        if not ok and account and bucket == buckets.default_bucket(account):
            raise ValidationError(
                f"{field}: {uri} is in your account's default bucket, {bucket}, which has not "
                "been made: have an administrator make it (orch accounts), or name a bucket of "
                "yours",
                field=field,
            )
        if not ok:
            raise ValidationError(
                f"{field}: {'cannot write to' if output else 'no object at'} {uri}: bucket "
                f"{bucket} does not exist or is not your "
                "account's; name one of your own buckets (create it first with S3 CreateBucket, "
                "or use your account's default bucket)",
                field=field,
            )

    def _check_uri(self, uri: str, field: str, *, prefix: bool) -> None:
        """A referenced object must exist now: fail the call, not the job ten seconds later.
        A ``file://`` URI only where this server and the caller allow it (``api.inputs``)."""
        if uri.startswith("file://"):
            check_file_uri(field, self.settings, current_caller())
            if not Path(uri[len("file://") :]).exists():
                raise ValidationError(f"{field}: {uri} does not exist on the server", field=field)
            return
        self.check_bucket(uri, field)
        found = bool(self.objects.list(uri)) if prefix else self.objects.exists(uri)
        if not found:
            raise ValidationError(
                f"{field}: no object at {uri}; upload it first (orch objects put, or the "
                "client's upload) or fix the URI",
                field=field,
            )

    def _check_source(self, values: dict[str, str], name: str, field: str) -> None:
        """The script-mode source URI in ``values`` (hyperparameters, an environment), if any:
        a string the models do not type, checked as a channel's URI is."""
        raw = values.get(name)
        if raw is None:
            return
        try:
            decoded = json.loads(raw)  # the SageMaker SDK JSON-encodes hyperparameters
        except ValueError:
            decoded = raw
        check_source_uri(decoded if isinstance(decoded, str) else raw, field, self.settings)

    def _list(self, kind: str, q: ListQuery, summarize: Any) -> tuple[list[Any], str | None]:
        page = q.MaxResults or self.settings.server.default_page_size
        if not 1 <= page <= 100:
            raise ValidationError("MaxResults must be between 1 and 100", field="MaxResults")
        if q.SortOrder not in {"Ascending", "Descending"}:
            raise ValidationError(
                "SortOrder must be 'Ascending' or 'Descending'", field="SortOrder"
            )
        orders: tuple[SortBy, ...] = (
            SORT_BY if KINDS[kind].phase_field else ("CreationTime", "Name")
        )
        if q.SortBy not in orders:
            raise ValidationError(
                f"SortBy must be one of {', '.join(orders)} for {kind}s, not {q.SortBy!r}",
                field="SortBy",
            )
        records, token = self.store.list(
            kind,
            ListFilter(
                limit=page,
                next_token=q.NextToken,
                name_contains=q.NameContains,
                phase=q.StatusEquals,
                created_after=q.CreationTimeAfter,
                created_before=q.CreationTimeBefore,
                ascending=q.SortOrder == "Ascending",
                sort_by=q.SortBy,
                modified_after=q.LastModifiedTimeAfter,
                modified_before=q.LastModifiedTimeBefore,
            ),
        )
        return [summarize(r) for r in records], token

    # --- training jobs -----------------------------------------------------------------------
    def create_training_job(self, req: CreateTrainingJobRequest) -> tuple[str, bool]:
        req = self.data_sources.resolve_channels(self.with_own_output(req))
        existing = self.store.find(TRAINING_JOB.name, req.TrainingJobName)
        if existing is None:
            self._check_supported(TRAINING_JOB.name, req)
            check_builtin_algorithm(req)
            self._check_source(
                req.HyperParameters,
                SUBMIT_DIR_HYPERPARAMETER,
                f"HyperParameters.{SUBMIT_DIR_HYPERPARAMETER}",
            )
            self.check_kms_key(output_kms_key(req), "OutputDataConfig.KmsKeyId")
            for i, c in enumerate(req.InputDataConfig):
                self._check_uri(
                    c.DataSource.S3DataSource.S3Uri,
                    f"InputDataConfig[{i}].DataSource.S3DataSource.S3Uri",
                    prefix=True,
                )
            self.check_training_outputs(req, "")
            limit = self.settings.controller.max_queued_training_jobs
            queued = self.queue.view().queued
            if queued >= limit:
                raise LimitExceededError(
                    f"{queued} training jobs are waiting in the queue and the limit is {limit} "
                    "(ORCH_CONTROLLER__MAX_QUEUED_TRAINING_JOBS); wait for the queue to drain, "
                    "or stop queued jobs (orch jobs list --status InProgress)"
                )
            arn, created = self._create(TRAINING_JOB, req)
            if created:
                self.queue.created()
            return arn, created
        return self._create(TRAINING_JOB, req)

    def with_own_output(self, req: CreateTrainingJobRequest) -> CreateTrainingJobRequest:
        """A job of another account than the server's with no ``OutputDataConfig`` writes to
        its account's default bucket, not the server's (``ORCH_OBJECTS__DEFAULT_BUCKET``)."""
        account = tenancy.stamp()
        if req.OutputDataConfig is not None or account == tenancy.ROOT:
            return req
        path = f"s3://{buckets.default_bucket(account)}/training-jobs"
        return req.model_copy(update={"OutputDataConfig": OutputDataConfig(S3OutputPath=path)})

    def check_training_outputs(self, req: CreateTrainingJobRequest, where: str) -> None:
        """Where a training job writes (its output path, its checkpoints): the caller's
        buckets. ``where``: the fields' prefix (a tuning job's definition)."""
        at = f"{where}." if where else ""
        if req.OutputDataConfig is not None:
            self.check_bucket(
                req.OutputDataConfig.S3OutputPath, f"{at}OutputDataConfig.S3OutputPath", output=True
            )
        if req.CheckpointConfig is not None:
            self.check_bucket(
                req.CheckpointConfig.S3Uri, f"{at}CheckpointConfig.S3Uri", output=True
            )

    def describe_training_job(self, name: str) -> DescribeTrainingJobResponse:
        r = self.store.get(TRAINING_JOB.name, name)
        status = dict(r.status)
        if r.stop_requested and r.phase == TrainingJobStatus.IN_PROGRESS.value:
            # Asked for: shown at once, as SageMaker does, until the controller has it.
            status["TrainingJobStatus"] = TrainingJobStatus.STOPPING.value
            status["SecondaryStatus"] = SecondaryStatus.STOPPING.value
        elif r.active:
            status["QueuePosition"] = self.queue.view().positions.get(name)
        return DescribeTrainingJobResponse.model_validate(
            {
                **r.spec,
                **status,
                "TrainingJobArn": self.arn(TRAINING_JOB.name, name, r.account),
                "CreationTime": r.created_at,
                "LastModifiedTime": r.updated_at,
            }
        )

    def list_training_jobs(self, q: ListQuery) -> tuple[list[TrainingJobSummary], str | None]:
        def summarize(r: Record) -> TrainingJobSummary:
            st = TrainingJobState.model_validate(r.status)
            return TrainingJobSummary(
                TrainingJobName=r.name,
                TrainingJobArn=self.arn(TRAINING_JOB.name, r.name, r.account),
                CreationTime=r.created_at,
                TrainingEndTime=st.TrainingEndTime,
                LastModifiedTime=r.updated_at,
                TrainingJobStatus=st.TrainingJobStatus,
                SecondaryStatus=st.SecondaryStatus,
                **self._waiting(r, st),
            )

        if q.StatusEquals is not None and q.StatusEquals not in {
            s.value for s in TrainingJobStatus
        }:
            raise ValidationError(
                f"StatusEquals must be one of {[s.value for s in TrainingJobStatus]}",
                field="StatusEquals",
            )
        return self._list(TRAINING_JOB.name, q, summarize)

    def _waiting(self, r: Record, st: TrainingJobState) -> dict[str, Any]:
        """A job waiting in the queue: its place and why (the Pending transition's message)."""
        if not r.active or st.SecondaryStatus != SecondaryStatus.PENDING:
            return {}
        last = st.SecondaryStatusTransitions[-1] if st.SecondaryStatusTransitions else None
        return {
            "QueuePosition": self.queue.view().positions.get(r.name),
            "StatusMessage": last.StatusMessage if last else None,
        }

    def preempt_training_job(self, name: str) -> None:
        """Ask a running spot job to give its capacity back: it is stopped (SIGTERM and its
        grace) and goes back in the queue, to resume from its checkpoints when admitted."""
        r = self.store.get(TRAINING_JOB.name, name)
        if r.spec.get("EnableManagedSpotTraining") is not True:
            raise ValidationError(
                f"TrainingJob {name!r} is not a spot job (EnableManagedSpotTraining is false): "
                "only spot jobs can be preempted; stop it instead (orch jobs stop)",
                field="EnableManagedSpotTraining",
            )
        if not r.active or r.phase != TrainingJobStatus.IN_PROGRESS.value:
            raise ConflictError(f"TrainingJob {name!r} is {r.phase}; nothing to preempt")
        if not holds_capacity(int(r.status.get("Attempt") or 0), r.status.get("SecondaryStatus")):
            raise ConflictError(
                f"TrainingJob {name!r} is waiting in the queue (Pending); nothing to preempt"
            )
        self.store.set_flag(TRAINING_JOB.name, name, "preempt_requested", self.clock.now())
        self.wake()

    def stop_training_job(self, name: str) -> None:
        r = self.store.get(TRAINING_JOB.name, name)
        if r.phase in {TrainingJobStatus.COMPLETED.value, TrainingJobStatus.FAILED.value}:
            raise ConflictError(
                f"TrainingJob {name!r} has already ended ({r.phase}); nothing to stop"
            )
        self.store.set_flag(TRAINING_JOB.name, name, "stop_requested", self.clock.now())
        self.wake()

    def delete_training_job(self, name: str) -> None:
        r = self.store.get(TRAINING_JOB.name, name)
        if r.phase not in {s.value for s in TERMINAL_TRAINING_STATUSES}:
            raise ConflictError(
                f"TrainingJob {name!r} is {r.phase}; stop it first (orch jobs stop {name})"
            )
        self.store.set_flag(TRAINING_JOB.name, name, "delete_requested", self.clock.now())
        self.wake()

    def training_job_logs(
        self,
        name: str,
        offset: int,
        limit: int,
        attempt: int | None = None,
        tail: int | None = None,
    ) -> tuple[bytes, int, bool]:
        """The job's log (every attempt, each starting with a line that names it), or one
        attempt's part of it (offsets counted from the attempt's start). ``tail``: instead of
        from ``offset``, the log's last ``tail`` bytes at most, from the first whole line."""
        r = self.store.get(TRAINING_JOB.name, name)
        if offset < 0 or not 1 <= limit <= 4 << 20:
            raise ValidationError("offset must be >= 0 and limit in 1..4194304", field="offset")
        if tail is not None:
            if attempt is not None:
                raise ValidationError(
                    "tail: give tail or attempt, not both (tail reads the whole log's end)",
                    field="tail",
                )
            if not isinstance(self.backend, JobLogSize):
                raise ValidationError(
                    f"tail: the {self.settings.backend} backend cannot read a log from its "
                    "end; read it from an offset",
                    field="tail",
                )
            size = self.backend.job_log_size(name)
            start = max(0, size - tail)
            data, nxt = self.backend.read_job_logs(name, start, min(limit, size - start) or 1)
            if start > 0:
                cut = data.find(b"\n")
                data = data[cut + 1 :] if cut >= 0 else b""
            return data, nxt, r.active
        if attempt is None:
            data, nxt = self.backend.read_job_logs(name, offset, limit)
            return data, nxt, r.active
        made = TrainingJobState.model_validate(r.status or {}).Attempt
        if not 1 <= attempt <= max(made, 1):
            raise ValidationError(
                f"attempt={attempt}: TrainingJob {name!r} has attempts 1..{made}"
                if made
                else f"attempt={attempt}: TrainingJob {name!r} has not started an attempt yet",
                field="attempt",
            )
        if not isinstance(self.backend, AttemptLogs):
            raise ValidationError(
                f"attempt: the {self.settings.backend} backend keeps no log per attempt; "
                "leave attempt out to read the job's log",
                field="attempt",
            )
        data, nxt = self.backend.read_attempt_log(name, attempt, offset, limit)
        return data, nxt, r.active and attempt == made

    def training_job_evaluation(self, name: str) -> dict[str, Any]:
        """The job's evaluation.json (written by built-in algorithms, or by any script)."""
        job = self.describe_training_job(name)
        artifact = job.ModelArtifacts.S3ModelArtifacts
        missing = NotFoundError(
            f"TrainingJob {name!r} has no evaluation: only jobs that write "
            "model/evaluation.json (the built-in algorithms do) have one"
        )
        if not artifact:
            raise missing
        uri = artifact.rsplit("/", 1)[0] + "/evaluation.json"
        if not self.objects.exists(uri):
            raise missing
        try:
            doc = json.loads(self.objects.get_bytes(uri))
        except json.JSONDecodeError as e:
            raise ValidationError(f"{uri} is not valid JSON: {e}") from e
        return doc if isinstance(doc, dict) else {"evaluation": doc}

    def training_job_scores(self, name: str, split: str = "test") -> EvaluationScoresResponse:
        """A built-in binary classifier's labels and scores on ``split``
        (evaluation_scores.json, beside evaluation.json)."""
        job = self.describe_training_job(name)
        doc = job_scores.read_scores(self.objects, name, job.ModelArtifacts.S3ModelArtifacts)
        return job_scores.split_scores(doc, name, split)

    def training_job_threshold_metrics(
        self, name: str, split: str, threshold: float
    ) -> ThresholdMetricsResponse:
        """The binary metrics of the stored scores at ``threshold`` (positive: score >= it)."""
        job_scores.check_threshold(threshold)
        return job_scores.threshold_metrics(self.training_job_scores(name, split), threshold)

    def export_training_job_model(self, name: str, fmt: str) -> dict[str, Any]:
        """Convert a built-in algorithm's model for the edge (TFLite), checked against the
        SavedModel on the job's test rows. TensorFlow runs in a child process, never here."""
        job = self.describe_training_job(name)
        if job.TrainingJobStatus != "Completed":
            raise ConflictError(
                f"TrainingJob {name!r} is {job.TrainingJobStatus}; export needs a completed job"
            )
        spec = CreateTrainingJobRequest.model_validate(self.store.get(TRAINING_JOB.name, name).spec)
        if builtin_algorithm(spec) is None:
            raise ValidationError(
                f"TrainingJob {name!r} did not run a built-in algorithm; only their SavedModels "
                "can be exported",
                field="TrainingJobName",
            )
        artifact = job.ModelArtifacts.S3ModelArtifacts
        uri = artifact.rsplit("/", 1)[0] + f"/model.{fmt}"
        with tempfile.TemporaryDirectory(dir=self.settings.home, prefix=".export-") as tmp:
            work = Path(tmp)
            self.objects.get_file(artifact, work / "model.tar.gz")
            safe_extract(work / "model.tar.gz", work / "model")
            out = work / f"model.{fmt}"
            command = [
                sys.executable,
                "-m",
                "orchestrator.algorithms.export",
                "--json",
                "--model-dir",
                str(work / "model"),
                "--out",
                str(out),
                "--format",
                fmt,
            ]
            try:
                proc = subprocess.run(
                    command, capture_output=True, text=True, timeout=600, check=False
                )
            except subprocess.TimeoutExpired as e:
                raise DeadlineExceededError(f"export of {name!r} took over 600 s") from e
            if proc.returncode != 0:
                last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
                if "No module named 'tensorflow'" in proc.stderr:
                    last = "the export needs TensorFlow on the server: " + TF_HINT
                raise ValidationError(f"export of {name!r} failed: {last}", field="Format")
            report = json.loads(proc.stdout.strip().splitlines()[-1])
            self.objects.put_file(uri, out)
        return {
            "TrainingJobName": name,
            "Format": fmt,
            "ArtifactUri": uri,
            "RowsChecked": report["rows_checked"],
            "MaxAbsDifference": report["max_abs_diff"],
            "MaxScaledDifference": report["max_scaled_diff"],
            "SizeBytes": report["size_bytes"],
        }

    # --- models ------------------------------------------------------------------------------
    def create_model(self, req: CreateModelRequest) -> tuple[str, bool]:
        if self.store.find(MODEL.name, req.ModelName) is None:
            self._check_supported(MODEL.name, req)
            field = "PrimaryContainer" if req.PrimaryContainer is not None else "Containers"
            for i, c in enumerate(req.serving_containers):
                where = field if field == "PrimaryContainer" else f"Containers[{i}]"
                if c.ModelDataUrl:
                    self._check_uri(c.ModelDataUrl, f"{where}.ModelDataUrl", prefix=False)
                self._check_source(
                    c.Environment, SUBMIT_DIR_ENV, f"{where}.Environment.{SUBMIT_DIR_ENV}"
                )
        return self._create(MODEL, req)

    def describe_model(self, name: str) -> DescribeModelResponse:
        r = self.store.get(MODEL.name, name)
        return DescribeModelResponse.model_validate(
            {
                **r.spec,
                "ModelArn": self.arn(MODEL.name, name, r.account),
                "CreationTime": r.created_at,
            }
        )

    def list_models(self, q: ListQuery) -> tuple[list[ModelSummary], str | None]:
        return self._list(
            MODEL.name,
            q,
            lambda r: ModelSummary(
                ModelName=r.name,
                ModelArn=self.arn(MODEL.name, r.name, r.account),
                CreationTime=r.created_at,
            ),
        )

    def delete_model(self, name: str) -> None:
        self.store.delete(MODEL.name, name)

    # --- endpoint configs --------------------------------------------------------------------
    def create_endpoint_config(self, req: CreateEndpointConfigRequest) -> tuple[str, bool]:
        if self.store.find(ENDPOINT_CONFIG.name, req.EndpointConfigName) is None:
            self._check_supported(ENDPOINT_CONFIG.name, req)
            for i, v in enumerate(req.ProductionVariants):
                if self.store.find(MODEL.name, v.ModelName) is None:
                    raise ValidationError(
                        f"ProductionVariants[{i}].ModelName: Model {v.ModelName!r} does not "
                        "exist; create it first",
                        field=f"ProductionVariants[{i}].ModelName",
                    )
        return self._create(ENDPOINT_CONFIG, req)

    def describe_endpoint_config(self, name: str) -> DescribeEndpointConfigResponse:
        r = self.store.get(ENDPOINT_CONFIG.name, name)
        return DescribeEndpointConfigResponse.model_validate(
            {
                **r.spec,
                "EndpointConfigArn": self.arn(ENDPOINT_CONFIG.name, name, r.account),
                "CreationTime": r.created_at,
            }
        )

    def list_endpoint_configs(self, q: ListQuery) -> tuple[list[EndpointConfigSummary], str | None]:
        return self._list(
            ENDPOINT_CONFIG.name,
            q,
            lambda r: EndpointConfigSummary(
                EndpointConfigName=r.name,
                EndpointConfigArn=self.arn(ENDPOINT_CONFIG.name, r.name, r.account),
                CreationTime=r.created_at,
            ),
        )

    def delete_endpoint_config(self, name: str) -> None:
        self.store.delete(ENDPOINT_CONFIG.name, name)

    # --- endpoints ---------------------------------------------------------------------------
    def create_endpoint(self, req: CreateEndpointRequest) -> tuple[str, bool]:
        new = self.store.find(ENDPOINT.name, req.EndpointName) is None
        if new and self.store.find(ENDPOINT_CONFIG.name, req.EndpointConfigName) is None:
            raise ValidationError(
                f"EndpointConfigName: EndpointConfig {req.EndpointConfigName!r} does not "
                "exist; create it first",
                field="EndpointConfigName",
            )
        return self._create(ENDPOINT, req)

    def _check_rollback_alarms(self, req: UpdateEndpointRequest) -> None:
        """Rollback alarms named by AlarmName alone must be metric alarms that exist here."""
        rollback = req.DeploymentConfig.AutoRollbackConfiguration if req.DeploymentConfig else None
        names = [a.AlarmName for a in (rollback.Alarms if rollback else []) if a.MetricName is None]
        if not names:
            return
        if self.controller is None:  # on a cluster the operator's planner reads no alarms yet
            raise ValidationError(
                "DeploymentConfig.AutoRollbackConfiguration.Alarms: on a cluster an update's "
                f"rollback alarms ({', '.join(repr(n) for n in names)}) need MetricName and "
                "Threshold: the operator does not read metric alarms yet",
                field="DeploymentConfig.AutoRollbackConfiguration.Alarms",
            )
        found = self.alarms.states(names) if self.alarms is not None else {}
        missing = [n for n in names if n not in found]
        if missing:
            raise ValidationError(
                "DeploymentConfig.AutoRollbackConfiguration.Alarms: no metric alarm named "
                f"{', '.join(repr(n) for n in missing)}; create it (orch alarms put, "
                "PutMetricAlarm) or give MetricName and Threshold",
                field="DeploymentConfig.AutoRollbackConfiguration.Alarms",
            )

    def update_endpoint(self, name: str, req: UpdateEndpointRequest) -> str:
        """Point the endpoint at another EndpointConfig: the controller starts a new fleet and
        shifts traffic as the DeploymentConfig says, rolling back by itself on an alarm."""
        config = self.store.find(ENDPOINT_CONFIG.name, req.EndpointConfigName)
        if config is None:
            raise ValidationError(
                f"EndpointConfigName: EndpointConfig {req.EndpointConfigName!r} does not "
                "exist; create it first",
                field="EndpointConfigName",
            )
        for v in CreateEndpointConfigRequest.model_validate(config.spec).all_variants:
            if self.store.find(MODEL.name, v.ModelName) is None:
                raise ValidationError(
                    f"EndpointConfigName: variant {v.VariantName!r} of "
                    f"{req.EndpointConfigName!r} names Model {v.ModelName!r}, which does not "
                    "exist; create it first",
                    field="EndpointConfigName",
                )
        self._check_rollback_alarms(req)
        for _ in range(20):  # the controller writes the status often: re-read on a conflict
            record = self.store.get(ENDPOINT.name, name)
            spec = CreateEndpointRequest.model_validate(record.spec)
            state = EndpointState.model_validate(record.status)
            self._check_updatable(name, record, spec, state, req)
            deployment = req.DeploymentConfig
            if deployment is None and req.RetainDeploymentConfig:
                deployment = spec.DeploymentConfig
            # Weights and counts asked of the serving config hold for its fleet until the update
            # ends (then they lapse); any others are stale (of a config served before).
            serving = state.CurrentEndpointConfigName or spec.EndpointConfigName
            overrides = spec.VariantOverrides
            if overrides is not None and overrides.EndpointConfigName != serving:
                overrides = None
            new_spec = spec.model_copy(
                update={
                    "EndpointConfigName": req.EndpointConfigName,
                    "DeploymentConfig": deployment,
                    "VariantOverrides": overrides,
                }
            )
            # A new request may try again a config an earlier update rolled back from.
            new_state = state.model_copy(update={"LastDeployment": None})
            try:
                self.store.update_spec(
                    record,
                    new_spec.model_dump(mode="json"),
                    status=new_state.model_dump(mode="json"),
                    now=self.clock.now(),
                )
            except ConflictError:
                continue
            self.wake()
            return self.arn(ENDPOINT.name, name, record.account)
        raise UnavailableError(
            f"endpoint {name!r} changed too often to be updated; retry", retry_after=1
        )

    @staticmethod
    def _check_updatable(
        name: str,
        record: Record,
        spec: CreateEndpointRequest,
        state: EndpointState,
        req: UpdateEndpointRequest,
    ) -> None:
        if record.delete_requested:
            raise ConflictError(f"endpoint {name!r} is being deleted")
        if record.phase == EndpointStatus.FAILED.value:
            raise ConflictError(
                f"endpoint {name!r} is Failed ({state.FailureReason}); delete and re-create it"
            )
        if state.Deployment is not None or spec.EndpointConfigName != (
            state.CurrentEndpointConfigName or spec.EndpointConfigName
        ):
            raise ConflictError(
                f"endpoint {name!r} is being updated to "
                f"{spec.EndpointConfigName!r}; wait until the update ends (it is InService "
                "again after it succeeds or rolls back)"
            )
        serving = state.CurrentEndpointConfigName or spec.EndpointConfigName
        if req.EndpointConfigName == serving:
            raise ValidationError(
                f"EndpointConfigName: endpoint {name!r} already serves {serving!r}; name "
                "another EndpointConfig (create a new one to change settings)",
                field="EndpointConfigName",
            )

    def update_endpoint_weights_and_capacities(
        self, name: str, req: UpdateEndpointWeightsAndCapacitiesRequest
    ) -> str:
        """Change variants' weights and instance counts without a new EndpointConfig: the
        endpoint is Updating until the serving fleet has the counts asked for. The request is
        kept in the spec (``VariantOverrides``) and merged with earlier ones."""
        for _ in range(20):
            record = self.store.get(ENDPOINT.name, name)
            spec = CreateEndpointRequest.model_validate(record.spec)
            state = EndpointState.model_validate(record.status)
            if record.delete_requested or record.phase != EndpointStatus.IN_SERVICE.value:
                now_is = "being deleted" if record.delete_requested else record.phase
                raise ConflictError(
                    f"endpoint {name!r} is {now_is}; weights and capacities change only while "
                    "it is InService"
                )
            serving = state.CurrentEndpointConfigName or spec.EndpointConfigName
            config_record = self.store.find(ENDPOINT_CONFIG.name, serving)
            if config_record is None:
                raise ValidationError(
                    f"EndpointName: the EndpointConfig {serving!r} endpoint {name!r} serves no "
                    "longer exists; UpdateEndpoint to a new one instead",
                    field="EndpointName",
                )
            config = CreateEndpointConfigRequest.model_validate(config_record.spec)
            overrides = merged_overrides(spec.VariantOverrides, serving, req)
            check_overrides(config, overrides, req)
            new_spec = spec.model_copy(update={"VariantOverrides": overrides})
            new_state = state.model_copy(update={"EndpointStatus": EndpointStatus.UPDATING})
            try:
                self.store.update_spec(
                    record, new_spec.model_dump(mode="json"),
                    status=new_state.model_dump(mode="json"), now=self.clock.now(),
                    phase=EndpointStatus.UPDATING.value,
                )  # fmt: skip
            except ConflictError:
                continue
            self.wake()
            return self.arn(ENDPOINT.name, name, record.account)
        raise UnavailableError(
            f"endpoint {name!r} changed too often to be updated; retry", retry_after=1
        )

    def describe_endpoint(self, name: str) -> DescribeEndpointResponse:
        r = self.store.get(ENDPOINT.name, name)
        status = dict(r.status)
        if r.delete_requested:  # asked for: shown at once, as SageMaker does
            status["EndpointStatus"] = EndpointStatus.DELETING.value
        return DescribeEndpointResponse.model_validate(
            {
                **r.spec,
                **status,
                "EndpointArn": self.arn(ENDPOINT.name, name, r.account),
                "CreationTime": r.created_at,
                "LastModifiedTime": r.updated_at,
            }
        )

    def list_endpoints(self, q: ListQuery) -> tuple[list[EndpointSummary], str | None]:
        if q.StatusEquals is not None and q.StatusEquals not in {s.value for s in EndpointStatus}:
            raise ValidationError(
                f"StatusEquals must be one of {[s.value for s in EndpointStatus]}",
                field="StatusEquals",
            )
        return self._list(
            ENDPOINT.name,
            q,
            lambda r: EndpointSummary(
                EndpointName=r.name,
                EndpointArn=self.arn(ENDPOINT.name, r.name, r.account),
                CreationTime=r.created_at,
                LastModifiedTime=r.updated_at,
                EndpointStatus=EndpointStatus(r.phase),
            ),
        )

    def delete_endpoint(self, name: str) -> None:
        self.store.get(ENDPOINT.name, name)
        self.store.set_flag(ENDPOINT.name, name, "delete_requested", self.clock.now())
        self.routes.withdraw(name)
        self.wake()

    def endpoint_status(self, name: str) -> tuple[str, str] | None:
        """(EndpointStatus, FailureReason) or None when there is no such endpoint (another
        account's is none to the caller: ``orchestrator.tenancy``)."""
        record = self.store.find(ENDPOINT.name, name)
        if record is None or not tenancy.visible(record.account):
            return None
        return record.phase, str(record.status.get("FailureReason") or "")

    def training_job_metrics(
        self, name: str, metric: str | None = None, max_points: int | None = None
    ) -> TrainingJobMetricsResponse:
        """Every value of each metric the job printed (or of one), read from its log, and
        its resource use per host (``training.usage``) from the backend's samples; with
        ``max_points``, each series thinned to that many (``metricseries.downsample``: the
        ends and each bucket's lowest and highest value)."""
        if max_points is not None and not MIN_SERIES_POINTS <= max_points <= MAX_SERIES_POINTS:
            raise ValidationError(
                f"MaxPoints={max_points} must be in {MIN_SERIES_POINTS}..{MAX_SERIES_POINTS} "
                "(or left out for every point)",
                field="MaxPoints",
            )
        spec = CreateTrainingJobRequest.model_validate(self.store.get(TRAINING_JOB.name, name).spec)
        series = self.job_metrics.series(name, spec)
        usage = self.job_metrics.usage(name)
        if metric is not None:
            algorithm = list(dict.fromkeys([n for n, _ in metric_patterns(spec)] + list(series)))
            if metric not in algorithm and metric not in USAGE_METRICS:
                raise ValidationError(
                    f"metric: TrainingJob {name!r} emits no metric {metric!r}; it emits "
                    f"{', '.join(algorithm) if algorithm else 'none of its own'} and, per "
                    f"host, {', '.join(USAGE_METRICS)}",
                    field="metric",
                )
            series = {metric: series.get(metric, [])} if metric in algorithm else {}
            usage = {k: v for k, v in usage.items() if k[0] == metric}
        if max_points is not None:
            series = {k: downsample(v, max_points) for k, v in series.items()}
            usage = {k: downsample(v, max_points) for k, v in usage.items()}
        return TrainingJobMetricsResponse(
            TrainingJobName=name,
            Metrics=[
                *(_series_out(metric_name, None, points) for metric_name, points in series.items()),
                *(_series_out(m, host, points) for (m, host), points in usage.items()),
            ],
        )

    # --- search ------------------------------------------------------------------------------
    def search(self, req: SearchRequest) -> dict[str, Any]:
        """SageMaker's Search: one page of ``{"<Kind>": <its Describe shape>}`` records and the
        next page's token (``orchestrator.api.search``)."""
        query = searching.compile_request(req)
        records, token = searching.run(self.store, query)
        results = [
            {
                query.kind: searching.search_record(
                    query.kind, r, self.arn(query.kind, r.name, r.account)
                )
            }
            for r in records
        ]
        return {"Results": results, "NextToken": token}

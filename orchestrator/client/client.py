"""``Client``: every control-plane operation over HTTP (httpx), with typed responses.

Errors come back as the product's own exceptions (``orchestrator.errors``), rebuilt from the
server's ``{"code", "message", "field"}`` body. Pass ``transport=`` to talk to an app in-process
(e.g. ``TestClient(app)._transport``) or to a test double; ``orchestrator.testing`` serves
an app on a local port for tests.
"""

from __future__ import annotations

import contextlib
import email.utils
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from orchestrator import tls
from orchestrator.client.connection import resolve
from orchestrator.errors import (
    DeadlineExceededError,
    NotFoundError,
    OrchestratorError,
    UnavailableError,
    ValidationError,
)
from orchestrator.monitoring.shapes import MetricStatistics
from orchestrator.objects.uri import parse_object_uri
from orchestrator.resources.alarms import AlarmHistory, AlarmList, AlarmOut
from orchestrator.resources.common import Tag
from orchestrator.resources.datasources import (
    TERMINAL_DATA_SOURCE_STATUSES,
    DescribeDataSourceResponse,
    ListDataSourcesResponse,
)
from orchestrator.resources.endpoints import (
    DescribeEndpointConfigResponse,
    DescribeEndpointResponse,
    ListEndpointConfigsResponse,
    ListEndpointsResponse,
)
from orchestrator.resources.evaluation import (
    AlgorithmOut,
    EvaluationScoresResponse,
    ListAlgorithmsResponse,
    ThresholdMetricsResponse,
)
from orchestrator.resources.jobmetrics import TrainingJobMetricsResponse
from orchestrator.resources.keys import (
    AccessKeySummary,
    ApiKeySummary,
    CreateAccessKeyResponse,
    CreateApiKeyResponse,
    ListAccessKeysResponse,
    ListApiKeysResponse,
)
from orchestrator.resources.kinds import (
    DATA_SOURCE,
    ENDPOINT,
    ENDPOINT_CONFIG,
    HYPER_PARAMETER_TUNING_JOB,
    MODEL,
    REST_PREFIX,
    TRAINING_JOB,
    TRANSFORM_JOB,
)
from orchestrator.resources.kms import KmsKeyMetadata, ListKmsKeysResponse
from orchestrator.resources.master_keys import MasterKeyStatusResponse, MasterKeyVersionResponse
from orchestrator.resources.models import DescribeModelResponse, ListModelsResponse
from orchestrator.resources.search_syntax import parse_expression
from orchestrator.resources.tags import AddTagsResponse, ListTagsResponse
from orchestrator.resources.training import (
    TERMINAL_TRAINING_STATUSES,
    DescribeTrainingJobResponse,
    ListTrainingJobsResponse,
    TrainingJobStatus,
)
from orchestrator.resources.transform import (
    TERMINAL_TRANSFORM_STATUSES,
    DescribeTransformJobResponse,
    ListTransformJobsResponse,
)
from orchestrator.resources.tuning import (
    TERMINAL_TUNING_STATUSES,
    DescribeHyperParameterTuningJobResponse,
    HyperParameterTrainingJobSummary,
    ListHyperParameterTuningJobsResponse,
    ListTrainingJobsForHyperParameterTuningJobResponse,
)
from orchestrator.usage.models import UsageReport

M = TypeVar("M", bound=BaseModel)
J = TypeVar("J")
API = REST_PREFIX


@dataclass(frozen=True)
class InvokeResult:
    body: bytes
    content_type: str
    variant: str


@dataclass(frozen=True)
class LogChunk:
    text: str
    next_offset: int
    more: bool


def _retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds, or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class Client:
    def __init__(
        self,
        endpoint_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 70.0,
        transport: httpx.BaseTransport | None = None,
        ca_bundle: str | Path | None = None,
        throttle_retries: int = 3,
        max_throttle_wait: float = 30.0,
    ) -> None:
        """``throttle_retries``: how many times a request answered 429 (the caller's rate limit)
        is sent again after the ``Retry-After`` the server gave, as the AWS SDKs do; a wait
        longer than ``max_throttle_wait`` seconds is not waited for (the 429 is raised)."""
        if throttle_retries < 0:
            raise ValueError(f"throttle_retries must be 0 or more, not {throttle_retries}")
        self.throttle_retries = throttle_retries
        self.max_throttle_wait = max_throttle_wait
        self._sleep: Callable[[float], None] = time.sleep
        self._default_bucket: str | None = None
        conn = resolve(endpoint_url, api_key, ca_bundle=ca_bundle)
        self.endpoint_url = conn.endpoint_url
        self.ca_bundle = conn.ca_bundle
        headers = {"Authorization": f"Bearer {conn.api_key}"} if conn.api_key else {}
        # No bundle: httpx's default CAs; a bundle replaces them.
        verify = tls.client_context(conn.ca_bundle) if conn.ca_bundle and not transport else True
        self._http = httpx.Client(
            base_url=self.endpoint_url,
            headers=headers,
            timeout=timeout,
            transport=transport,
            trust_env=False,
            verify=verify,
        )

    def close(self) -> None:
        self._http.close()

    def __del__(self) -> None:
        # A Client dropped without close() (as in short scripts) still returns its sockets.
        with contextlib.suppress(Exception):  # at interpreter shutdown there is nothing to do
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- transport ---------------------------------------------------------------------------
    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        resp = self._send(method, path, kwargs)
        # A 429 was refused before anything was done, so sending it again is safe; a body that
        # is a stream cannot be sent twice, so only bytes, text and JSON bodies are retried.
        content = kwargs.get("content")
        replayable = isinstance(content, (bytes, str, type(None))) and "files" not in kwargs
        for _ in range(self.throttle_retries if replayable else 0):
            if resp.status_code != 429:
                break
            wait = _retry_after(resp.headers.get("retry-after"))
            if wait is None or wait > self.max_throttle_wait:
                break
            self._sleep(wait)
            resp = self._send(method, path, kwargs)
        if resp.status_code >= 400:
            try:
                payload = resp.json()
            except ValueError:
                payload = {"message": resp.text[:500] or f"HTTP {resp.status_code}"}
            if not isinstance(payload, dict):
                payload = {"message": str(payload)}
            raise OrchestratorError.from_payload(resp.status_code, payload)
        return resp

    def _send(self, method: str, path: str, kwargs: dict[str, Any]) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as e:
            raise DeadlineExceededError(f"{self.endpoint_url}{path}: timed out") from e
        except httpx.TransportError as e:
            if isinstance(e, httpx.ConnectError) and "CERTIFICATE_VERIFY_FAILED" in str(e):
                raise _unverified(self.endpoint_url, self.ca_bundle, e) from e
            raise UnavailableError(
                f"cannot reach the control plane at {self.endpoint_url} ({e}); is `orch server` "
                "running? (set ORCH_ENDPOINT_URL to point elsewhere)",
                retry_after=2,
            ) from e

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        data = self.request(method, path, **kwargs).json()
        return data if isinstance(data, dict) else {}

    def _get(self, model: type[M], path: str, **params: Any) -> M:
        clean = {k: v for k, v in params.items() if v is not None}
        return model.model_validate(self._json("GET", path, params=clean))

    @staticmethod
    def _body(spec: BaseModel | dict[str, Any] | None, fields: dict[str, Any]) -> dict[str, Any]:
        if isinstance(spec, BaseModel):
            base = spec.model_dump(mode="json", exclude_none=True)
        else:
            base = dict(spec or {})
        base.update({k: v for k, v in fields.items() if v is not None})
        return base

    # --- training jobs -----------------------------------------------------------------------
    def create_training_job(
        self, spec: BaseModel | dict[str, Any] | None = None, **fields: Any
    ) -> str:
        """CreateTrainingJob; returns the ARN. The same call repeated is a no-op."""
        body = self._body(spec, fields)
        return str(self._json("POST", f"{TRAINING_JOB.collection}", json=body)["TrainingJobArn"])

    def describe_training_job(self, name: str) -> DescribeTrainingJobResponse:
        return self._get(DescribeTrainingJobResponse, f"{TRAINING_JOB.collection}/{quote(name)}")

    def list_training_jobs(self, **params: Any) -> ListTrainingJobsResponse:
        return self._get(ListTrainingJobsResponse, f"{TRAINING_JOB.collection}", **params)

    def stop_training_job(self, name: str) -> None:
        self.request("POST", f"{TRAINING_JOB.collection}/{quote(name)}/stop")

    def preempt_training_job(self, name: str) -> None:
        """Have a running spot job give its capacity back: it is stopped with its grace and
        waits in the queue again (only jobs with EnableManagedSpotTraining)."""
        self.request("POST", f"{TRAINING_JOB.collection}/{quote(name)}/preempt")

    def delete_training_job(self, name: str) -> None:
        self.request("DELETE", f"{TRAINING_JOB.collection}/{quote(name)}")

    def export_model(self, name: str, *, format: str = "tflite") -> dict[str, Any]:
        """Export a built-in algorithm job's model (TFLite), checked against the SavedModel."""
        return self._json(
            "POST", f"{TRAINING_JOB.collection}/{quote(name)}/export", json={"Format": format}
        )

    def training_job_evaluation(self, name: str) -> dict[str, Any]:
        """The job's evaluation.json (metrics, threshold, confusion matrix)."""
        return self._json("GET", f"{TRAINING_JOB.collection}/{quote(name)}/evaluation")

    def training_job_scores(self, name: str, *, split: str = "test") -> EvaluationScoresResponse:
        """A built-in binary classifier's labels and scores on ``split`` (at most 10,000)."""
        return self._get(
            EvaluationScoresResponse,
            f"{TRAINING_JOB.collection}/{quote(name)}/evaluation/scores",
            Split=split,
        )

    def training_job_threshold_metrics(
        self, name: str, threshold: float, *, split: str = "test"
    ) -> ThresholdMetricsResponse:
        """The binary metrics of the job's stored scores, positive where score >= threshold."""
        return self._get(
            ThresholdMetricsResponse,
            f"{TRAINING_JOB.collection}/{quote(name)}/evaluation/threshold",
            Split=split,
            Threshold=threshold,
        )

    def list_algorithms(self) -> ListAlgorithmsResponse:
        """The built-in algorithms, their problem types and hyperparameters."""
        return self._get(ListAlgorithmsResponse, f"{API}/algorithms")

    def describe_algorithm(self, name: str) -> AlgorithmOut:
        return self._get(AlgorithmOut, f"{API}/algorithms/{quote(name)}")

    def training_job_logs(
        self,
        name: str,
        offset: int = 0,
        *,
        attempt: int | None = None,
        tail: int | None = None,
    ) -> LogChunk:
        """The job's log from ``offset``: every attempt, or ``attempt``'s part only; ``tail``:
        instead, its last ``tail`` bytes at most, from the first whole line."""
        params: dict[str, int] = {"offset": offset}
        if attempt is not None:
            params["attempt"] = attempt
        if tail is not None:
            params["tail"] = tail
        resp = self.request("GET", f"{TRAINING_JOB.collection}/{quote(name)}/logs", params=params)
        return _log_chunk(resp, offset)

    def wait_for_training_job(
        self,
        name: str,
        *,
        poll: float = 0.5,
        timeout: float | None = None,
        on_log: Callable[[str], None] | None = None,
        on_status: Callable[[DescribeTrainingJobResponse], None] | None = None,
    ) -> DescribeTrainingJobResponse:
        """Poll until the job ends; stream its log to ``on_log`` as it grows."""
        return _wait_until_ended(
            f"training job {name!r}",
            lambda: self.describe_training_job(name),
            lambda job: job.TrainingJobStatus,
            TERMINAL_TRAINING_STATUSES,
            poll=poll,
            timeout=timeout,
            on_status=on_status,
            fetch_log=lambda at: self.training_job_logs(name, at),
            on_log=on_log,
        )

    # --- hyperparameter tuning jobs ----------------------------------------------------------
    def create_tuning_job(
        self, spec: BaseModel | dict[str, Any] | None = None, **fields: Any
    ) -> str:
        """CreateHyperParameterTuningJob; returns the ARN. The same call repeated is a no-op."""
        body = self._body(spec, fields)
        path = HYPER_PARAMETER_TUNING_JOB.collection
        return str(self._json("POST", path, json=body)["HyperParameterTuningJobArn"])

    def describe_tuning_job(self, name: str) -> DescribeHyperParameterTuningJobResponse:
        return self._get(
            DescribeHyperParameterTuningJobResponse,
            f"{HYPER_PARAMETER_TUNING_JOB.collection}/{quote(name)}",
        )

    def list_tuning_jobs(self, **params: Any) -> ListHyperParameterTuningJobsResponse:
        """ListHyperParameterTuningJobs (NameContains, StatusEquals, SortBy, paging...)."""
        return self._get(
            ListHyperParameterTuningJobsResponse, HYPER_PARAMETER_TUNING_JOB.collection, **params
        )

    def list_tuning_job_trials(
        self,
        name: str,
        *,
        sort_by: str = "Name",
        sort_order: str = "Ascending",
        status_equals: str | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> ListTrainingJobsForHyperParameterTuningJobResponse:
        """ListTrainingJobsForHyperParameterTuningJob: one page of the trials; ``sort_by`` is
        Name, CreationTime, Status or FinalObjectiveMetricValue."""
        return self._get(
            ListTrainingJobsForHyperParameterTuningJobResponse,
            f"{HYPER_PARAMETER_TUNING_JOB.collection}/{quote(name)}/training-jobs",
            SortBy=sort_by,
            SortOrder=sort_order,
            StatusEquals=status_equals,
            MaxResults=max_results,
            NextToken=next_token,
        )

    def all_tuning_job_trials(
        self, name: str, *, sort_by: str = "Name", sort_order: str = "Ascending"
    ) -> list[HyperParameterTrainingJobSummary]:
        """Every trial, all pages."""
        out: list[HyperParameterTrainingJobSummary] = []
        token: str | None = None
        while True:
            page = self.list_tuning_job_trials(
                name, sort_by=sort_by, sort_order=sort_order, max_results=100, next_token=token
            )
            out += page.TrainingJobSummaries
            token = page.NextToken
            if not token:
                return out

    def stop_tuning_job(self, name: str) -> None:
        """Stop the tuning job: no new trials, and every running trial is stopped."""
        self.request("POST", f"{HYPER_PARAMETER_TUNING_JOB.collection}/{quote(name)}/stop")

    def delete_tuning_job(self, name: str) -> None:
        self.request("DELETE", f"{HYPER_PARAMETER_TUNING_JOB.collection}/{quote(name)}")

    def wait_for_tuning_job(
        self,
        name: str,
        *,
        poll: float = 1.0,
        timeout: float | None = None,
        on_status: Callable[[DescribeHyperParameterTuningJobResponse], None] | None = None,
    ) -> DescribeHyperParameterTuningJobResponse:
        """Poll until the tuning job ends (Completed, Stopped or Failed); ``on_status`` sees
        each Describe."""
        return _wait_until_ended(
            f"tuning job {name!r}",
            lambda: self.describe_tuning_job(name),
            lambda job: job.HyperParameterTuningJobStatus,
            TERMINAL_TUNING_STATUSES,
            poll=poll,
            timeout=timeout,
            on_status=on_status,
        )

    # --- transform jobs ----------------------------------------------------------------------
    def create_transform_job(
        self, spec: BaseModel | dict[str, Any] | None = None, **fields: Any
    ) -> str:
        """CreateTransformJob; returns the ARN (a job of that name already there: ConflictError)."""
        body = self._body(spec, fields)
        return str(self._json("POST", TRANSFORM_JOB.collection, json=body)["TransformJobArn"])

    def describe_transform_job(self, name: str) -> DescribeTransformJobResponse:
        """The job with its status, FailureReason, Progress and Instances."""
        return self._get(DescribeTransformJobResponse, f"{TRANSFORM_JOB.collection}/{quote(name)}")

    def list_transform_jobs(self, **params: Any) -> ListTransformJobsResponse:
        """ListTransformJobs (StatusEquals, NameContains, SortBy, SortOrder, MaxResults,
        NextToken)."""
        return self._get(ListTransformJobsResponse, TRANSFORM_JOB.collection, **params)

    def stop_transform_job(self, name: str) -> None:
        """Stop the job: its instances stop; finished output files stay."""
        self.request("POST", f"{TRANSFORM_JOB.collection}/{quote(name)}/stop")

    def delete_transform_job(self, name: str) -> None:
        """Delete the job's record (it must have ended; its output stays)."""
        self.request("DELETE", f"{TRANSFORM_JOB.collection}/{quote(name)}")

    def transform_job_logs(self, name: str, offset: int = 0, limit: int | None = None) -> LogChunk:
        """The job's log (every instance's) from byte ``offset``, at most ``limit`` bytes."""
        params: dict[str, int] = {"offset": offset}
        if limit is not None:
            params["limit"] = limit
        resp = self.request("GET", f"{TRANSFORM_JOB.collection}/{quote(name)}/logs", params=params)
        return _log_chunk(resp, offset)

    # --- log groups (CloudWatch Logs' groups, over REST) -------------------------------------
    def log_groups(self, prefix: str | None = None) -> list[dict[str, Any]]:
        """Every log group: ``Name``, ``CreationTime`` (epoch ms), ``RetentionInDays``."""
        return list(self._json("GET", "/api/v1/logs/groups", params=_clean(Prefix=prefix))[
            "LogGroups"])  # fmt: skip

    def log_streams(self, group: str) -> list[dict[str, Any]]:
        return list(self._json("GET", "/api/v1/logs/streams", params={"Group": group})[
            "LogStreams"])  # fmt: skip

    def log_events(
        self,
        group: str,
        *,
        stream: str | None = None,
        stream_prefix: str | None = None,
        pattern: str | None = None,
        since: str | None = None,
        until: str | None = None,
        next_token: str | None = None,
        limit: int | None = None,
    ) -> dict[str, Any]:
        """One page of events in time order (``Events``: ``Stream``, ``Timestamp``,
        ``Message``) and the ``NextToken`` to poll on from; times: epoch ms, ISO 8601 or a
        duration before now (``10m``)."""
        params = _clean(
            Group=group, Stream=stream, StreamPrefix=stream_prefix, Filter=pattern,
            StartTime=since, EndTime=until, NextToken=next_token, Limit=limit,
        )  # fmt: skip
        return self._json("GET", "/api/v1/logs/events", params=params)

    def put_log_retention(self, group: str, days: int | None) -> None:
        """Keep ``days`` of the group's events (None: all of them)."""
        self.request(
            "PUT", "/api/v1/logs/retention", params={"Group": group},
            json={"RetentionInDays": days},
        )  # fmt: skip

    def wait_for_transform_job(
        self,
        name: str,
        *,
        poll: float = 0.5,
        timeout: float | None = None,
        on_progress: Callable[[DescribeTransformJobResponse], None] | None = None,
        on_log: Callable[[str], None] | None = None,
    ) -> DescribeTransformJobResponse:
        """Poll until the job ends (Completed, Failed or Stopped) and return it; ``on_progress``
        sees each Describe (its ``Progress``), ``on_log`` the log as it grows."""
        return _wait_until_ended(
            f"transform job {name!r}",
            lambda: self.describe_transform_job(name),
            lambda job: job.TransformJobStatus,
            TERMINAL_TRANSFORM_STATUSES,
            poll=poll,
            timeout=timeout,
            on_status=on_progress,
            fetch_log=lambda at: self.transform_job_logs(name, at),
            on_log=on_log,
        )

    # --- data sources ------------------------------------------------------------------------
    def create_data_source(
        self, spec: BaseModel | dict[str, Any] | None = None, **fields: Any
    ) -> str:
        """Create a data source (``DataSpec.S3`` or ``DataSpec.Sql``); returns the ARN. The
        same spec again is a no-op; another spec for the same name takes a new version."""
        body = self._body(spec, fields)
        return str(self._json("POST", DATA_SOURCE.collection, json=body)["DataSourceArn"])

    def describe_data_source(
        self, name: str, version: int | None = None
    ) -> DescribeDataSourceResponse:
        """The data source, its versions, and the schema of ``version`` (default: the latest
        completed one) with the edits applied."""
        return self._get(
            DescribeDataSourceResponse, f"{DATA_SOURCE.collection}/{quote(name)}", version=version
        )

    def data_source_insights(self, name: str, version: int | None = None) -> dict[str, Any]:
        """Amazon ML's data insights of a completed snapshot."""
        params = {"version": version} if version is not None else {}
        return self._json("GET", f"{DATA_SOURCE.collection}/{quote(name)}/insights", params=params)

    def list_data_sources(self, **params: Any) -> ListDataSourcesResponse:
        return self._get(ListDataSourcesResponse, DATA_SOURCE.collection, **params)

    def update_data_source(
        self,
        name: str,
        *,
        attribute_types: dict[str, str] | None = None,
        target: str | None = None,
    ) -> None:
        """Edit the schema: types over the inferred ones, the target (no new snapshot)."""
        body: dict[str, Any] = {}
        if attribute_types is not None:
            body["AttributeTypes"] = attribute_types
        if target is not None:
            body["TargetAttributeName"] = target
        self.request("PATCH", f"{DATA_SOURCE.collection}/{quote(name)}", json=body)

    def refresh_data_source(self, name: str) -> int:
        """Take a new snapshot of the unchanged spec; returns the version it will be."""
        out = self._json("POST", f"{DATA_SOURCE.collection}/{quote(name)}/refresh")
        return int(out["Version"])

    def delete_data_source(self, name: str) -> None:
        """Delete the data source (a running snapshot is stopped; snapshots stay)."""
        self.request("DELETE", f"{DATA_SOURCE.collection}/{quote(name)}")

    def wait_for_data_source(
        self,
        name: str,
        *,
        version: int | None = None,
        poll: float = 0.5,
        timeout: float | None = None,
        on_status: Callable[[DescribeDataSourceResponse], None] | None = None,
    ) -> DescribeDataSourceResponse:
        """Poll until the latest version (at least ``version``) is COMPLETED or FAILED."""

        def status(ds: DescribeDataSourceResponse) -> str:
            if version is not None and ds.Version < version:
                return "PENDING"
            return ds.Status.value

        return _wait_until_ended(
            f"data source {name!r}",
            lambda: self.describe_data_source(name),
            status,
            {s.value for s in TERMINAL_DATA_SOURCE_STATUSES},
            poll=poll,
            timeout=timeout,
            on_status=on_status,
        )

    # --- models and endpoint configs ---------------------------------------------------------
    def create_model(self, spec: BaseModel | dict[str, Any] | None = None, **fields: Any) -> str:
        return str(
            self._json("POST", f"{MODEL.collection}", json=self._body(spec, fields))["ModelArn"]
        )

    def describe_model(self, name: str) -> DescribeModelResponse:
        return self._get(DescribeModelResponse, f"{MODEL.collection}/{quote(name)}")

    def list_models(self, **params: Any) -> ListModelsResponse:
        return self._get(ListModelsResponse, f"{MODEL.collection}", **params)

    def delete_model(self, name: str) -> None:
        self.request("DELETE", f"{MODEL.collection}/{quote(name)}")

    def create_model_from_artifact(
        self,
        name: str,
        model_data: str,
        *,
        program: str | None = None,
        source: str | None = None,
        environment: dict[str, str] | None = None,
    ) -> str:
        """A Model serving a training job's artifact: script mode's ``program`` from the
        ``source`` tarball, or the built-in algorithm's server. Returns the ARN."""
        env = dict(environment or {})
        if program:
            env["SAGEMAKER_PROGRAM"] = program
        if source:
            env["SAGEMAKER_SUBMIT_DIRECTORY"] = source
        return self.create_model(
            ModelName=name, PrimaryContainer={"ModelDataUrl": model_data, "Environment": env}
        )

    def create_endpoint_config(
        self, spec: BaseModel | dict[str, Any] | None = None, **fields: Any
    ) -> str:
        body = self._body(spec, fields)
        return str(
            self._json("POST", f"{ENDPOINT_CONFIG.collection}", json=body)["EndpointConfigArn"]
        )

    def describe_endpoint_config(self, name: str) -> DescribeEndpointConfigResponse:
        return self._get(
            DescribeEndpointConfigResponse, f"{ENDPOINT_CONFIG.collection}/{quote(name)}"
        )

    def list_endpoint_configs(self, **params: Any) -> ListEndpointConfigsResponse:
        return self._get(ListEndpointConfigsResponse, f"{ENDPOINT_CONFIG.collection}", **params)

    def delete_endpoint_config(self, name: str) -> None:
        self.request("DELETE", f"{ENDPOINT_CONFIG.collection}/{quote(name)}")

    # --- endpoints ---------------------------------------------------------------------------
    def create_endpoint(self, spec: BaseModel | dict[str, Any] | None = None, **fields: Any) -> str:
        body = self._body(spec, fields)
        return str(self._json("POST", f"{ENDPOINT.collection}", json=body)["EndpointArn"])

    def describe_endpoint(self, name: str) -> DescribeEndpointResponse:
        return self._get(DescribeEndpointResponse, f"{ENDPOINT.collection}/{quote(name)}")

    def list_endpoints(self, **params: Any) -> ListEndpointsResponse:
        return self._get(ListEndpointsResponse, f"{ENDPOINT.collection}", **params)

    def delete_endpoint(self, name: str) -> None:
        self.request("DELETE", f"{ENDPOINT.collection}/{quote(name)}")

    def deploy_model(
        self,
        name: str,
        model_data: str,
        *,
        program: str | None = None,
        source: str | None = None,
        environment: dict[str, str] | None = None,
        instance_count: int = 1,
        instance_type: str = "local",
        public: bool = False,
    ) -> None:
        """Model -> EndpointConfig -> Endpoint, all named ``name`` (SageMaker's Model.deploy)."""
        self.create_model_from_artifact(
            name, model_data, program=program, source=source, environment=environment
        )
        self.create_endpoint_config(
            EndpointConfigName=name,
            ProductionVariants=[
                {
                    "VariantName": "AllTraffic",
                    "ModelName": name,
                    "InitialInstanceCount": instance_count,
                    "InstanceType": instance_type,
                }
            ],
        )
        self.create_endpoint(
            EndpointName=name, EndpointConfigName=name, AuthMode="None" if public else "ApiKey"
        )

    def update_endpoint(
        self,
        name: str,
        config: str,
        *,
        deployment_config: BaseModel | dict[str, Any] | None = None,
        retain_deployment_config: bool = False,
    ) -> str:
        """UpdateEndpoint: move to EndpointConfig ``config`` by a blue/green deployment (the
        new fleet starts beside the old one; traffic shifts as ``deployment_config`` says and
        rolls back by itself when an alarm fires). Returns at once; see wait_for_update."""
        body: dict[str, Any] = {
            "EndpointConfigName": config,
            "RetainDeploymentConfig": retain_deployment_config,
        }
        if deployment_config is not None:
            body["DeploymentConfig"] = (
                deployment_config.model_dump(mode="json", exclude_none=True)
                if isinstance(deployment_config, BaseModel)
                else deployment_config
            )
        resp = self._json("PATCH", f"{ENDPOINT.collection}/{quote(name)}", json=body)
        return str(resp["EndpointArn"])

    def wait_for_update(
        self,
        name: str,
        *,
        poll: float = 0.25,
        timeout: float = 3600.0,
        on_status: Callable[[DescribeEndpointResponse], None] | None = None,
    ) -> DescribeEndpointResponse:
        """Until the update in progress ended; ``LastDeployment`` says whether it succeeded or
        rolled back (a rollback is not an error: the endpoint serves the old config)."""
        return self._wait_endpoint(
            name, _update_ended, "updating", poll=poll, timeout=timeout, on_status=on_status
        )

    def wait_for_endpoint(
        self,
        name: str,
        *,
        poll: float = 0.25,
        timeout: float = 300.0,
        on_status: Callable[[DescribeEndpointResponse], None] | None = None,
    ) -> DescribeEndpointResponse:
        """Until InService; a Failed endpoint raises with its FailureReason."""
        return self._wait_endpoint(
            name,
            lambda ep: ep.EndpointStatus == "InService",
            "not InService",
            poll=poll,
            timeout=timeout,
            on_status=on_status,
        )

    def _wait_endpoint(
        self,
        name: str,
        done: Callable[[DescribeEndpointResponse], bool],
        waiting_for: str,
        *,
        poll: float,
        timeout: float,
        on_status: Callable[[DescribeEndpointResponse], None] | None,
    ) -> DescribeEndpointResponse:
        deadline = time.monotonic() + timeout
        while True:
            ep = self.describe_endpoint(name)
            if on_status is not None:
                on_status(ep)
            if done(ep):
                return ep
            if ep.EndpointStatus == "Failed":
                raise UnavailableError(f"endpoint {name!r} failed: {ep.FailureReason}")
            if time.monotonic() > deadline:
                raise DeadlineExceededError(
                    f"endpoint {name!r} still {waiting_for} ({ep.EndpointStatus}) after {timeout} s"
                )
            time.sleep(poll)

    def wait_for_endpoint_deleted(self, name: str, *, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.describe_endpoint(name)
            except NotFoundError:
                return
            time.sleep(0.2)
        raise DeadlineExceededError(f"endpoint {name!r} still exists after {timeout} s")

    def invoke_endpoint(
        self,
        name: str,
        body: bytes,
        *,
        content_type: str = "application/json",
        accept: str = "application/json",
        target_variant: str | None = None,
    ) -> InvokeResult:
        headers = {"Content-Type": content_type, "Accept": accept}
        if target_variant:
            headers["X-Target-Variant"] = target_variant
        resp = self.request(
            "POST", f"/endpoints/{quote(name)}/invocations", content=body, headers=headers
        )
        return InvokeResult(
            body=resp.content,
            content_type=resp.headers.get("content-type", ""),
            variant=resp.headers.get("x-invoked-production-variant", ""),
        )

    def endpoint_metrics(
        self,
        name: str,
        metric: str,
        *,
        period: int = 60,
        statistics: Sequence[str] = ("Sum",),
        start: datetime | None = None,
        end: datetime | None = None,
        variant: str | None = None,
    ) -> MetricStatistics:
        """An endpoint's metric by period, CloudWatch-style (GetMetricStatistics): e.g.
        ``endpoint_metrics("ep", "ModelLatency", statistics=["Average", "p99"])``. Default
        window: the last hour. Percentiles come back in each datapoint's
        ``ExtendedStatistics``."""
        params: dict[str, Any] = {
            "MetricName": metric,
            "Period": period,
            "Statistics": list(statistics),
            "StartTime": start.isoformat() if start is not None else None,
            "EndTime": end.isoformat() if end is not None else None,
            "VariantName": variant,
        }
        return self._get(MetricStatistics, f"{ENDPOINT.collection}/{quote(name)}/metrics", **params)

    def put_metric_data(self, namespace: str, metric_data: Sequence[dict[str, Any]]) -> int:
        """CloudWatch's PutMetricData, e.g. from a training script: ``put_metric_data("MyApp",
        [{"MetricName": "loss", "Value": 0.3, "Dimensions": [{"Name": "Job", "Value": "j1"}]}])``;
        returns how many data were stored. Read back with GetMetricStatistics (CloudWatch
        protocol) under the same namespace, name and dimensions."""
        body = {"Namespace": namespace, "MetricData": [_plain(d) for d in metric_data]}
        return int(self._json("POST", "/api/v1/metrics/data", json=body).get("Stored", 0))

    # --- metric alarms -----------------------------------------------------------------------
    def put_metric_alarm(self, alarm: dict[str, Any]) -> AlarmOut:
        """CloudWatch's PutMetricAlarm (create or update), e.g. ``{"AlarmName": "5xx",
        "Namespace": "AWS/SageMaker", "MetricName": "Invocation5XXErrors", "Dimensions": [...],
        "Statistic": "Sum", "Period": 60, "EvaluationPeriods": 3, "Threshold": 1,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold"}`` (docs/alarms.md)."""
        return AlarmOut.model_validate(self._json("POST", f"{API}/alarms", json=_plain(alarm)))

    def describe_alarms(
        self,
        *,
        prefix: str | None = None,
        state: str | None = None,
        names: Sequence[str] | None = None,
    ) -> AlarmList:
        return self._get(AlarmList, f"{API}/alarms", AlarmNamePrefix=prefix, StateValue=state,
                         AlarmNames=list(names) if names else None)  # fmt: skip

    def describe_alarm_history(
        self, name: str, *, item_type: str | None = None, max_records: int = 100
    ) -> AlarmHistory:
        """The alarm's history, newest first (StateUpdate, ConfigurationUpdate, Action)."""
        return self._get(AlarmHistory, f"{API}/alarms/{quote(name, safe='')}/history",
                         HistoryItemType=item_type, MaxRecords=max_records)  # fmt: skip

    def delete_alarms(self, names: Sequence[str]) -> int:
        body = {"AlarmNames": list(names)}
        return int(self._json("POST", f"{API}/alarms/delete", json=body).get("Deleted", 0))

    def set_alarm_state(
        self, name: str, state: str, reason: str, reason_data: str | None = None
    ) -> AlarmOut:
        """SetAlarmState: the alarm's actions for ``state`` run; the next evaluation sets the
        state from the data again."""
        body = {"StateValue": state, "StateReason": reason, "StateReasonData": reason_data}
        return AlarmOut.model_validate(
            self._json("POST", f"{API}/alarms/{quote(name, safe='')}/state",
                       json={k: v for k, v in body.items() if v is not None})
        )  # fmt: skip

    # --- API keys ----------------------------------------------------------------------------
    def create_api_key(self, name: str, *, role: str = "invoke") -> CreateApiKeyResponse:
        """A new key (``role``: ``invoke``, only InvokeEndpoint, or ``admin``); its secret,
        ``ApiKey``, is in this answer only."""
        body = {"Name": name, "Role": role}
        return CreateApiKeyResponse.model_validate(self._json("POST", f"{API}/api-keys", json=body))

    def list_api_keys(self) -> ListApiKeysResponse:
        return self._get(ListApiKeysResponse, f"{API}/api-keys")

    def revoke_api_key(self, key_id: str) -> ApiKeySummary:
        """Revoke a key at once, on every router worker (the last admin key is refused)."""
        return ApiKeySummary.model_validate(
            self._json("DELETE", f"{API}/api-keys/{quote(key_id, safe='')}")
        )

    def server_info(self) -> dict[str, Any]:
        """The server's version and region (``/healthz``: no key needed)."""
        info: dict[str, Any] = self._json("GET", "/healthz")
        return info

    # --- the audit trail ------------------------------------------------------------------------
    def lookup_audit_events(
        self,
        *,
        username: str | None = None,
        event_name: str | None = None,
        resource_name: str | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        max_results: int = 50,
        next_token: str | None = None,
    ) -> dict[str, Any]:
        """One page of audit records, newest first (LookupEvents' filters: ``username`` is
        a key's name or id); ``NextToken`` in the answer pages on."""
        params: dict[str, Any] = {
            "Username": username,
            "EventName": event_name,
            "ResourceName": resource_name,
            "StartTime": start.isoformat() if start else None,
            "EndTime": end.isoformat() if end else None,
            "MaxResults": max_results,
            "NextToken": next_token,
        }
        clean = {k: v for k, v in params.items() if v is not None}
        return self._json("GET", f"{API}/audit/events", params=clean)

    def iter_audit_events(
        self, *, limit: int | None = None, page_size: int = 1000, **filters: Any
    ) -> Iterator[dict[str, Any]]:
        """Every matching audit record, newest first, page after page (up to ``limit``)."""
        token: str | None = None
        seen = 0
        while True:
            size = page_size if limit is None else min(page_size, limit - seen)
            if size <= 0:
                return
            page = self.lookup_audit_events(max_results=size, next_token=token, **filters)
            for event in page.get("Events", []):
                yield event
                seen += 1
            token = page.get("NextToken")
            if token is None:
                return

    def verify_audit_trail(self) -> dict[str, Any]:
        """Check every digest and record: ``Ok``, the counts, and ``FirstProblem``."""
        return self._json("POST", f"{API}/audit/verify")

    def audit_public_key(self) -> dict[str, str]:
        """The PEM key the trail's digests verify with, and its fingerprint."""
        return {k: str(v) for k, v in self._json("GET", f"{API}/audit/public-key").items()}

    # --- master key versions ----------------------------------------------------------------
    def describe_master_keys(self, *, census: bool = False) -> MasterKeyStatusResponse:
        """The master key versions, the objects each wraps, the re-wrap's progress
        (``census``: count every object's version now, exact but slower)."""
        params = {"Census": "true"} if census else {}
        return self._get(MasterKeyStatusResponse, f"{API}/master-keys", **params)

    def rotate_master_key(self) -> MasterKeyVersionResponse:
        """A new master key version: new objects use it at once; a re-wrap pass starts."""
        return MasterKeyVersionResponse.model_validate(
            self._json("POST", f"{API}/master-keys/rotate")
        )

    def retire_master_key(self, key_id: str) -> MasterKeyVersionResponse:
        """Destroy version ``key_id`` (ConflictError while objects still use it)."""
        return MasterKeyVersionResponse.model_validate(
            self._json("POST", f"{API}/master-keys/{quote(key_id, safe='')}/retire")
        )

    # --- SigV4 access keys ----------------------------------------------------------------------
    def create_access_key(self, name: str, *, role: str = "admin") -> CreateAccessKeyResponse:
        """A new access key for boto3 and the SageMaker SDK; its ``SecretAccessKey`` is in
        this answer only."""
        body = {"Name": name, "Role": role}
        return CreateAccessKeyResponse.model_validate(
            self._json("POST", f"{API}/access-keys", json=body)
        )

    def list_access_keys(self) -> ListAccessKeysResponse:
        return self._get(ListAccessKeysResponse, f"{API}/access-keys")

    def revoke_access_key(self, access_key_id: str) -> AccessKeySummary:
        """Revoke an access key at once, on every router worker."""
        return AccessKeySummary.model_validate(
            self._json("DELETE", f"{API}/access-keys/{quote(access_key_id, safe='')}")
        )

    # --- KMS keys (the local keyring's named keys) ------------------------------------------
    def create_kms_key(self, alias: str | None = None) -> KmsKeyMetadata:
        """A new named key of the local keyring; its ``KeyId`` or ``alias/ALIAS`` is what a
        resource's ``KmsKeyId`` names."""
        body = {} if alias is None else {"Alias": alias}
        return KmsKeyMetadata.model_validate(self._json("POST", f"{API}/kms/keys", json=body))

    def list_kms_keys(self) -> ListKmsKeysResponse:
        return self._get(ListKmsKeysResponse, f"{API}/kms/keys")

    # --- identities and their keys (``/api/v1/users``) -----------------------------------------
    def create_user(
        self,
        name: str,
        *,
        kind: str = "user",
        managed_policies: Sequence[str] = (),
        inline_policies: dict[str, Any] | None = None,
        roles: Sequence[str] = (),
        account: str | None = None,
    ) -> dict[str, Any]:
        """A new identity (``kind``: ``user`` or ``service``) with managed policies (by name:
        AdministratorAccess, DataScientist, Invoker, ReadOnly), inline policy documents and
        the roles it may assume (admin, invoke, data-scientist, read-only), in the caller's
        account or (an administrator of the server's own account only) ``account``."""
        body: dict[str, Any] = {
            "UserName": name, "Kind": kind, "ManagedPolicies": list(managed_policies),
            "InlinePolicies": inline_policies or {}, "Roles": list(roles),
        }  # fmt: skip
        if account is not None:
            body["Account"] = account
        return self._json("POST", f"{API}/users", json=body)

    # --- accounts (tenants, ``/api/v1/accounts``) ----------------------------------------------
    def create_account(self, name: str, *, admin: str | None = None) -> dict[str, Any]:
        """A new account (``AccountId``, ``AccountName``, ``CreatedAt``); with ``admin``, also
        its first administrator and that identity's API key (``ApiKey``: in this answer only)."""
        body: dict[str, Any] = {"AccountName": name}
        if admin is not None:
            body["AdminUserName"] = admin
        return self._json("POST", f"{API}/accounts", json=body)

    def default_bucket(self) -> str:
        """The caller's account's default bucket (asked once; a server from before accounts,
        with no ``/caller``: ``orchestrator``, the server's own)."""
        if self._default_bucket is None:
            try:
                self._default_bucket = str(self.caller_identity()["DefaultBucket"])
            except NotFoundError:
                self._default_bucket = "orchestrator"
        return self._default_bucket

    def caller_identity(self) -> dict[str, Any]:
        """Who this client's key is: UserName, AccountId, Arn and DefaultBucket (its account's
        own bucket, where uploads go by default)."""
        return self._json("GET", f"{API}/caller")

    def list_accounts(self) -> list[dict[str, Any]]:
        """Every account (a caller of the server's own account), or the caller's own."""
        found: list[dict[str, Any]] = self._json("GET", f"{API}/accounts")["Accounts"]
        return found

    def list_users(self) -> list[dict[str, Any]]:
        users: list[dict[str, Any]] = self._json("GET", f"{API}/users")["Users"]
        return users

    def describe_user(self, name: str) -> dict[str, Any]:
        """The identity, its policies and roles, and its keys (never their secrets)."""
        return self._json("GET", f"{API}/users/{quote(name, safe='')}")

    def update_user(
        self,
        name: str,
        *,
        managed_policies: Sequence[str] = (),
        inline_policies: dict[str, Any] | None = None,
        roles: Sequence[str] = (),
    ) -> dict[str, Any]:
        """Replace the identity's policies and roles (its keys act on the new ones at once)."""
        body = {
            "ManagedPolicies": list(managed_policies), "InlinePolicies": inline_policies or {},
            "Roles": list(roles),
        }  # fmt: skip
        return self._json("PUT", f"{API}/users/{quote(name, safe='')}/policies", json=body)

    def delete_user(self, name: str) -> dict[str, Any]:
        """Delete the identity; its keys are revoked."""
        return self._json("DELETE", f"{API}/users/{quote(name, safe='')}")

    def create_user_key(
        self,
        user: str,
        name: str,
        *,
        aws: bool = False,
        role: str = "",
        expires_in: int | None = None,
    ) -> dict[str, Any]:
        """A new key of ``user``: bearer (``ApiKey``) or, with ``aws``, SigV4
        (``KeyId``, ``SecretAccessKey``); issued as ``role`` (its policies only) or with the
        identity's own policies; ending after ``expires_in`` seconds. The secret is in this
        answer only."""
        body = {
            "Name": name, "Kind": "access" if aws else "api", "Role": role,
            "ExpiresInSeconds": expires_in,
        }  # fmt: skip
        return self._json("POST", f"{API}/users/{quote(user, safe='')}/keys", json=body)

    def list_user_keys(self, user: str) -> list[dict[str, Any]]:
        keys: list[dict[str, Any]] = self._json("GET", f"{API}/users/{quote(user, safe='')}/keys")[
            "Keys"
        ]
        return keys

    def rotate_user_key(self, user: str, key_id: str) -> dict[str, Any]:
        """A new secret under a new key id (same name, role, expiry); the old key is revoked."""
        path = f"{API}/users/{quote(user, safe='')}/keys/{quote(key_id, safe='')}/rotate"
        return self._json("POST", path)

    def revoke_user_key(self, user: str, key_id: str) -> dict[str, Any]:
        path = f"{API}/users/{quote(user, safe='')}/keys/{quote(key_id, safe='')}"
        return self._json("DELETE", path)

    def list_policies(self) -> dict[str, Any]:
        """The managed policies (their documents) and the roles (their managed policies)."""
        return self._json("GET", f"{API}/policies")

    # --- objects -----------------------------------------------------------------------------
    def _object_path(self, uri: str) -> str:
        bucket, key = parse_object_uri(uri)
        return f"{API}/objects/{quote(bucket)}/{quote(key)}"

    def upload_file(self, path: Path, uri: str) -> dict[str, Any]:
        if not path.is_file():
            raise ValidationError(f"{path} is not a file", field="path")
        with open(path, "rb") as f:
            return self._json("PUT", self._object_path(uri), content=_chunks(f))

    def upload_bytes(self, data: bytes, uri: str) -> dict[str, Any]:
        return self._json("PUT", self._object_path(uri), content=data)

    def upload_dir(self, directory: Path, prefix_uri: str) -> list[str]:
        if not directory.is_dir():
            raise ValidationError(f"{directory} is not a directory", field="directory")
        uris = []
        for p in sorted(x for x in directory.rglob("*") if x.is_file()):
            uri = f"{prefix_uri.rstrip('/')}/{p.relative_to(directory).as_posix()}"
            self.upload_file(p, uri)
            uris.append(uri)
        return uris

    def download_bytes(self, uri: str) -> bytes:
        return self.request("GET", self._object_path(uri)).content

    def list_objects(self, prefix_uri: str) -> list[dict[str, Any]]:
        items = self._json("GET", f"{API}/objects", params={"prefix": prefix_uri})["Objects"]
        return list(items)

    def delete_object(self, uri: str) -> None:
        self.request("DELETE", self._object_path(uri))

    # --- training job metrics and tags -------------------------------------------------------
    def training_job_metrics(
        self, name: str, *, metric: str | None = None, max_points: int | None = None
    ) -> TrainingJobMetricsResponse:
        """Every value of each metric the job printed so far (or of one): time, step, epoch;
        with ``max_points``, each series thinned to that many (spikes kept)."""
        return self._get(
            TrainingJobMetricsResponse,
            f"{TRAINING_JOB.collection}/{quote(name)}/metrics",
            metric=metric,
            MaxPoints=max_points,
        )

    def add_tags(self, resource_arn: str, tags: dict[str, str] | Sequence[Tag]) -> list[Tag]:
        """Add tags to a resource (or overwrite those with the same keys); returns them."""
        given = [Tag(Key=k, Value=v) for k, v in tags.items()] if isinstance(tags, dict) else tags
        body = {"ResourceArn": resource_arn, "Tags": [t.model_dump() for t in given]}
        return AddTagsResponse.model_validate(self._json("POST", f"{API}/tags", json=body)).Tags

    def get_usage(
        self,
        since: str,
        until: str | None = None,
        group_by: str = "resource",
        *,
        storage: bool = True,
    ) -> UsageReport:
        """Usage and cost within [since, until) (ISO 8601 dates or times; until: now), grouped
        by ``tenant``, ``resource`` or ``instance-type``; with ``storage``, the object store's
        bytes per bucket now."""
        return self._get(UsageReport, f"{API}/usage", Since=since, Until=until,
                         GroupBy=group_by, Storage=str(storage).lower())  # fmt: skip

    def list_tags(self, resource_arn: str) -> list[Tag]:
        """Every tag of a resource (all pages)."""
        tags: list[Tag] = []
        token: str | None = None
        while True:
            page = self._get(ListTagsResponse, f"{API}/tags", ResourceArn=resource_arn,
                             NextToken=token)  # fmt: skip
            tags += page.Tags
            token = page.NextToken
            if not token:
                return tags

    def delete_tags(self, resource_arn: str, keys: Sequence[str]) -> None:
        """Remove the tags with these keys from a resource."""
        body = {"ResourceArn": resource_arn, "TagKeys": list(keys)}
        self.request("POST", f"{API}/tags/delete", json=body)

    # --- search ----------------------------------------------------------------------------
    def search(
        self,
        expression: str | dict[str, Any] | None = None,
        *,
        resource: str = "TrainingJob",
        sort_by: str | None = None,
        sort_order: str | None = None,
        max_results: int | None = None,
        next_token: str | None = None,
    ) -> dict[str, Any]:
        """SageMaker's Search: ``expression`` is a ``SearchExpression`` or the readable form
        (``"Metrics.validation:accuracy > 0.95 and Tags.team exists"``); returns ``{"Results":
        [{"TrainingJob": {...}}], "NextToken": ...}``."""
        body: dict[str, Any] = {"Resource": resource}
        if isinstance(expression, str):
            body["SearchExpression"] = parse_expression(expression)
        elif expression is not None:
            body["SearchExpression"] = expression
        for key, value in (
            ("SortBy", sort_by), ("SortOrder", sort_order),
            ("MaxResults", max_results), ("NextToken", next_token),
        ):  # fmt: skip
            if value is not None:
                body[key] = value
        return self._json("POST", f"{REST_PREFIX}/search", json=body)


def _unverified(url: str, ca_bundle: Path | None, e: Exception) -> ValidationError:
    if "mismatch" in str(e):  # OpenSSL: "Hostname mismatch", "IP address mismatch"
        return ValidationError(
            f"the certificate of {url} does not name the host in that URL ({e}); connect with "
            "a name or address the certificate holds (for one made by `orch tls self-signed "
            "HOST` or `orch server --self-signed HOST`: HOST, localhost or 127.0.0.1)",
            field="ORCH_ENDPOINT_URL",
        )
    using = f"the CA bundle {ca_bundle}" if ca_bundle else "the system's CA certificates"
    return ValidationError(
        f"the certificate of {url} is not trusted by {using} ({e}). Pass the CA certificate "
        "that signed it (for a self-signed server: its certificate, printed with its "
        "fingerprint when it starts) with --ca-bundle, ORCH_CA_BUNDLE or Client(ca_bundle=...)",
        field="ORCH_CA_BUNDLE",
    )


def _clean(**params: Any) -> dict[str, Any]:
    return {k: v for k, v in params.items() if v is not None}


def _log_chunk(resp: httpx.Response, offset: int) -> LogChunk:
    return LogChunk(
        text=resp.content.decode(errors="replace"),
        next_offset=int(resp.headers.get("x-next-offset", offset)),
        more=resp.headers.get("x-more", "false") == "true",
    )


def _wait_until_ended(
    what: str,
    describe: Callable[[], J],
    status_of: Callable[[J], Any],
    terminal: Collection[Any],
    *,
    poll: float,
    timeout: float | None,
    on_status: Callable[[J], None] | None = None,
    fetch_log: Callable[[int], LogChunk] | None = None,
    on_log: Callable[[str], None] | None = None,
) -> J:
    """Describe until the status is terminal (every job kind's wait): ``on_status`` sees each
    Describe, ``on_log`` the log as it grows (all of it once the job has ended)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    offset = 0
    while True:
        job = describe()
        if on_status is not None:
            on_status(job)
        if fetch_log is not None and on_log is not None:
            offset = _drain(fetch_log, offset, on_log)
        if status_of(job) in terminal:
            if fetch_log is not None and on_log is not None:
                _drain(fetch_log, offset, on_log)
            return job
        if deadline is not None and time.monotonic() > deadline:
            raise DeadlineExceededError(f"{what} still {status_of(job)} after {timeout} s")
        time.sleep(poll)


def _drain(fetch: Callable[[int], LogChunk], offset: int, on_log: Callable[[str], None]) -> int:
    """Pass every log byte there is from ``offset`` to ``on_log``; returns the next offset."""
    while True:
        chunk = fetch(offset)
        if chunk.text:
            on_log(chunk.text)
        if chunk.next_offset == offset:
            return offset
        offset = chunk.next_offset


def _chunks(f: Any, size: int = 1 << 20) -> Iterator[bytes]:
    while chunk := f.read(size):
        yield chunk


def job_succeeded(job: DescribeTrainingJobResponse) -> bool:
    return job.TrainingJobStatus == TrainingJobStatus.COMPLETED


def _update_ended(ep: DescribeEndpointResponse) -> bool:
    """No update in progress, and the config asked for is served or was rolled back from."""
    if ep.Deployment is not None:
        return False
    serving = ep.CurrentEndpointConfigName or ep.EndpointConfigName
    last = ep.LastDeployment
    return serving == ep.EndpointConfigName or (
        last is not None and last.TargetEndpointConfigName == ep.EndpointConfigName
    )


def _plain(datum: dict[str, Any]) -> dict[str, Any]:
    """A datum as JSON: a ``Timestamp`` datetime as ISO 8601."""
    t = datum.get("Timestamp")
    return {**datum, "Timestamp": t.isoformat()} if isinstance(t, datetime) else dict(datum)

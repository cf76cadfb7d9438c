"""``Client``: every control-plane operation over HTTP (httpx), with typed responses.

Errors come back as the product's own exceptions (``orchestrator.errors``), rebuilt from the
server's ``{"code", "message", "field"}`` body. Pass ``transport=`` to talk to an app in-process
(e.g. ``TestClient(app)._transport``) or to a test double; ``orchestrator.testing`` serves
an app on a local port for tests.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

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
from orchestrator.resources.common import Tag
from orchestrator.resources.endpoints import (
    DescribeEndpointConfigResponse,
    DescribeEndpointResponse,
    ListEndpointConfigsResponse,
    ListEndpointsResponse,
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
    ENDPOINT,
    ENDPOINT_CONFIG,
    HYPER_PARAMETER_TUNING_JOB,
    MODEL,
    REST_PREFIX,
    TRAINING_JOB,
)
from orchestrator.resources.models import DescribeModelResponse, ListModelsResponse
from orchestrator.resources.search_syntax import parse_expression
from orchestrator.resources.tags import AddTagsResponse, ListTagsResponse
from orchestrator.resources.training import (
    TERMINAL_TRAINING_STATUSES,
    DescribeTrainingJobResponse,
    ListTrainingJobsResponse,
    TrainingJobStatus,
)
from orchestrator.resources.tuning import (
    TERMINAL_TUNING_STATUSES,
    DescribeHyperParameterTuningJobResponse,
    HyperParameterTrainingJobSummary,
    ListHyperParameterTuningJobsResponse,
    ListTrainingJobsForHyperParameterTuningJobResponse,
)

M = TypeVar("M", bound=BaseModel)
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


class Client:
    def __init__(
        self,
        endpoint_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 70.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        conn = resolve(endpoint_url, api_key)
        self.endpoint_url = conn.endpoint_url
        headers = {"Authorization": f"Bearer {conn.api_key}"} if conn.api_key else {}
        self._http = httpx.Client(
            base_url=self.endpoint_url,
            headers=headers,
            timeout=timeout,
            transport=transport,
            trust_env=False,
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
        try:
            resp = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as e:
            raise DeadlineExceededError(f"{self.endpoint_url}{path}: timed out") from e
        except httpx.TransportError as e:
            raise UnavailableError(
                f"cannot reach the control plane at {self.endpoint_url} ({e}); is `orch server` "
                "running? (set ORCH_ENDPOINT_URL to point elsewhere)",
                retry_after=2,
            ) from e
        if resp.status_code >= 400:
            try:
                payload = resp.json()
            except ValueError:
                payload = {"message": resp.text[:500] or f"HTTP {resp.status_code}"}
            if not isinstance(payload, dict):
                payload = {"message": str(payload)}
            raise OrchestratorError.from_payload(resp.status_code, payload)
        return resp

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

    def training_job_logs(
        self, name: str, offset: int = 0, *, attempt: int | None = None
    ) -> LogChunk:
        """The job's log from ``offset``: every attempt, or ``attempt``'s part only."""
        params: dict[str, int] = {"offset": offset}
        if attempt is not None:
            params["attempt"] = attempt
        resp = self.request("GET", f"{TRAINING_JOB.collection}/{quote(name)}/logs", params=params)
        return LogChunk(
            text=resp.content.decode(errors="replace"),
            next_offset=int(resp.headers.get("x-next-offset", offset)),
            more=resp.headers.get("x-more", "false") == "true",
        )

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
        deadline = None if timeout is None else time.monotonic() + timeout
        offset = 0
        while True:
            job = self.describe_training_job(name)
            if on_status is not None:
                on_status(job)
            if on_log is not None:
                offset = self._drain_logs(name, offset, on_log)
            if job.TrainingJobStatus in TERMINAL_TRAINING_STATUSES:
                if on_log is not None:
                    self._drain_logs(name, offset, on_log)
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise DeadlineExceededError(
                    f"training job {name!r} still {job.TrainingJobStatus} after {timeout} s"
                )
            time.sleep(poll)

    def _drain_logs(self, name: str, offset: int, on_log: Callable[[str], None]) -> int:
        while True:
            chunk = self.training_job_logs(name, offset)
            if chunk.text:
                on_log(chunk.text)
            if chunk.next_offset == offset:
                return offset
            offset = chunk.next_offset

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
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.describe_tuning_job(name)
            if on_status is not None:
                on_status(job)
            if job.HyperParameterTuningJobStatus in TERMINAL_TUNING_STATUSES:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise DeadlineExceededError(
                    f"tuning job {name!r} still {job.HyperParameterTuningJobStatus} after "
                    f"{timeout} s"
                )
            time.sleep(poll)

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
        env = dict(environment or {})
        if program:
            env["SAGEMAKER_PROGRAM"] = program
        if source:
            env["SAGEMAKER_SUBMIT_DIRECTORY"] = source
        self.create_model(
            ModelName=name, PrimaryContainer={"ModelDataUrl": model_data, "Environment": env}
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
        self, name: str, *, metric: str | None = None
    ) -> TrainingJobMetricsResponse:
        """Every value of each metric the job printed so far (or of one): time, step, epoch."""
        return self._get(
            TrainingJobMetricsResponse,
            f"{TRAINING_JOB.collection}/{quote(name)}/metrics",
            metric=metric,
        )

    def add_tags(self, resource_arn: str, tags: dict[str, str] | Sequence[Tag]) -> list[Tag]:
        """Add tags to a resource (or overwrite those with the same keys); returns them."""
        given = [Tag(Key=k, Value=v) for k, v in tags.items()] if isinstance(tags, dict) else tags
        body = {"ResourceArn": resource_arn, "Tags": [t.model_dump() for t in given]}
        return AddTagsResponse.model_validate(self._json("POST", f"{API}/tags", json=body)).Tags

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

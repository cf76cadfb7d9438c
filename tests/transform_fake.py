"""``FakeTransformApi``: the REST contract of ``/api/v1/transform-jobs`` in memory, behind an
``httpx.MockTransport``, for the client and CLI tests of batch transform.

It checks bodies with the real request model, answers errors in the server's
``{"code", "message", "field"}`` shape, and lets a test script the states that successive
Describes see (``script``), so that waiting is tested without threads or sleeps.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import httpx

from orchestrator.errors import ConflictError, NotFoundError, OrchestratorError, http_answer
from orchestrator.resources.kinds import TRANSFORM_JOB
from orchestrator.resources.transform import (
    TERMINAL_TRANSFORM_STATUSES,
    CreateTransformJobRequest,
    TransformJobState,
    TransformJobStatus,
)
from orchestrator.resources.validation import parse_spec

PREFIX = TRANSFORM_JOB.collection
T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@dataclass
class FakeJob:
    spec: CreateTransformJobRequest
    created: datetime
    state: TransformJobState = field(default_factory=TransformJobState)
    upcoming: deque[TransformJobState] = field(default_factory=deque)
    log: bytes = b""

    @property
    def arn(self) -> str:
        return f"arn:aws:sagemaker:local:000000000000:transform-job/{self.spec.TransformJobName}"

    def describe(self) -> dict[str, Any]:
        if self.upcoming:
            self.state = self.upcoming.popleft()
        return {
            **self.spec.model_dump(mode="json", exclude_none=True),
            **self.state.model_dump(mode="json", exclude_none=True),
            "TransformJobArn": self.arn,
            "CreationTime": self.created.isoformat(),
            "LastModifiedTime": self.created.isoformat(),
        }


@dataclass
class FakeTransformApi:
    jobs: dict[str, FakeJob] = field(default_factory=dict)
    requests: list[httpx.Request] = field(default_factory=list)
    pending: dict[str, list[TransformJobState]] = field(default_factory=dict)

    @property
    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def script(self, name: str, *states: TransformJobState) -> None:
        """The states the next Describes of ``name`` see, one each; the last one stays. For
        a job not created yet: from its creation on."""
        if name in self.jobs:
            self.jobs[name].upcoming.extend(states)
        else:
            self.pending.setdefault(name, []).extend(states)

    def paths(self, method: str) -> list[str]:
        return [unquote(r.url.path) for r in self.requests if r.method == method]

    # --- the routes -------------------------------------------------------------------------
    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        try:
            return self._route(request)
        except OrchestratorError as e:
            status, headers, body = http_answer(e)
            return httpx.Response(status, headers=headers, content=body)

    def _route(self, request: httpx.Request) -> httpx.Response:
        path = unquote(request.url.path)
        if not path.startswith(PREFIX):
            return httpx.Response(404, json={"code": "NotFound", "message": "Not Found"})
        rest = [p for p in path[len(PREFIX) :].split("/") if p]
        method = request.method
        if not rest and method == "POST":
            return self._create(json.loads(request.content))
        if not rest and method == "GET":
            return httpx.Response(200, json=self._list(dict(request.url.params)))
        job = self._job(rest[0])
        if len(rest) == 1 and method == "GET":
            return httpx.Response(200, json=job.describe())
        if len(rest) == 1 and method == "DELETE":
            if job.state.TransformJobStatus not in TERMINAL_TRANSFORM_STATUSES:
                raise ConflictError(
                    f"transform job {rest[0]!r} is {job.state.TransformJobStatus}; stop it and "
                    "wait for it to end before deleting it"
                )
            del self.jobs[rest[0]]
            return httpx.Response(202, json={"TransformJobName": rest[0]})
        if rest[1:] == ["stop"] and method == "POST":
            if job.state.TransformJobStatus in {"Completed", "Failed"}:
                raise ConflictError(
                    f"transform job {rest[0]!r} already ended {job.state.TransformJobStatus}"
                )
            job.state = job.state.model_copy(
                update={"TransformJobStatus": TransformJobStatus.STOPPING}
            )
            return httpx.Response(
                202, json={"TransformJobName": rest[0], "TransformJobStatus": "Stopping"}
            )
        if rest[1:] == ["logs"] and method == "GET":
            offset = int(request.url.params.get("offset", "0"))
            limit = int(request.url.params.get("limit", str(1 << 20)))
            data = job.log[offset : offset + limit]
            active = job.state.TransformJobStatus not in TERMINAL_TRANSFORM_STATUSES
            return httpx.Response(
                200,
                content=data,
                headers={
                    "content-type": "text/plain; charset=utf-8",
                    "X-Next-Offset": str(offset + len(data)),
                    "X-More": "true" if active else "false",
                },
            )
        return httpx.Response(405, json={"code": "MethodNotAllowed", "message": "no such route"})

    def _job(self, name: str) -> FakeJob:
        job = self.jobs.get(name)
        if job is None:
            raise NotFoundError(f"transform job {name!r} not found", field="TransformJobName")
        return job

    def _create(self, body: Any) -> httpx.Response:
        spec = parse_spec(CreateTransformJobRequest, body)
        name = spec.TransformJobName
        if name in self.jobs:
            if self.jobs[name].spec == spec:  # the same call again: the job there
                return httpx.Response(200, json={"TransformJobArn": self.jobs[name].arn})
            raise ConflictError(
                f"transform job {name!r} already exists with another spec; pick another "
                "TransformJobName",
                field="TransformJobName",
            )
        created = T0 + timedelta(seconds=len(self.jobs))
        self.jobs[name] = job = FakeJob(spec=spec, created=created)
        job.upcoming.extend(self.pending.pop(name, []))
        return httpx.Response(201, json={"TransformJobArn": job.arn})

    def _list(self, params: dict[str, str]) -> dict[str, Any]:
        jobs = list(self.jobs.values())
        if "StatusEquals" in params:
            jobs = [j for j in jobs if j.state.TransformJobStatus == params["StatusEquals"]]
        if "NameContains" in params:
            jobs = [j for j in jobs if params["NameContains"] in j.spec.TransformJobName]
        by_name = params.get("SortBy") == "Name"
        jobs.sort(
            key=lambda j: j.spec.TransformJobName if by_name else j.created.isoformat(),
            reverse=params.get("SortOrder", "Descending") == "Descending",
        )
        start = int(params.get("NextToken", "0"))
        size = int(params.get("MaxResults", "100"))
        page = jobs[start : start + size]
        token = str(start + size) if start + size < len(jobs) else None
        summaries = [
            {
                "TransformJobName": j.spec.TransformJobName,
                "TransformJobArn": j.arn,
                "CreationTime": j.created.isoformat(),
                "LastModifiedTime": j.created.isoformat(),
                "TransformJobStatus": j.state.TransformJobStatus.value,
                **({"FailureReason": j.state.FailureReason} if j.state.FailureReason else {}),
                **(
                    {"TransformEndTime": j.state.TransformEndTime.isoformat()}
                    if j.state.TransformEndTime
                    else {}
                ),
            }
            for j in page
        ]
        return {"TransformJobSummaries": summaries, "NextToken": token}

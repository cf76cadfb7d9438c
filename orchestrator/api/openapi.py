"""The OpenAPI document (``/openapi.json``), made to say what the server really answers.

FastAPI writes the document from the routes' signatures. What a signature cannot show is added
here, in one place, by rules about the routes, so a new route gets them without saying anything:

- **errors**: every error an operation can give, each with the one error shape
  (``ErrorBody``, what ``orchestrator.errors.http_answer`` writes): 400 where there is
  anything to validate, 401 and 403 behind the API key, 404 where a path names a resource,
  409 on calls that change something, 429 (the key's rate limit, with ``Retry-After``;
  a quota as well on calls that change something) behind the API key, 500 and 503 (with
  ``Retry-After``) everywhere.
  FastAPI's 422 goes: this server answers a malformed request 400 (``api.handlers``).
- **security**: the two ways to present a key (``Authorization: Bearer`` and ``X-API-Key``),
  declared once and required on every route behind ``PROTECTED_PREFIXES``.
- **formats the service checks** past the signature: list filters' enums per kind, the ARN
  and object-URI forms, the monitoring query's metric names, statistics and times.
- **media types** of the routes that answer something other than JSON.
- **the data plane's invocations** (``orchestrator.dataplane.front``: raw ASGI, in front of
  FastAPI, so no route of its own): their paths, the body passed to the model as it is, and
  the errors the front gives; the model's own answers (any status) are the ``default``.

``tests/core/test_openapi_fuzz.py`` holds the document to it with schemathesis.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterable
from enum import Enum
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

from orchestrator.api.accounts import NAME_PATTERN as ACCOUNT_NAME_PATTERN
from orchestrator.api.identities import NAME_PATTERN
from orchestrator.api.tuning import TRIAL_SORT
from orchestrator.iam import MANAGED, ROLES
from orchestrator.monitoring.shapes import BASIC_STATISTICS, METRICS
from orchestrator.objects.named_keys import ALIAS_PATTERN, DEFAULT_KEY
from orchestrator.resources.kinds import HYPER_PARAMETER_TUNING_JOB, KINDS, Kind
from orchestrator.resources.search import SEARCHABLE
from orchestrator.resources.training import TrainingJobStatus
from orchestrator.settings import Settings
from orchestrator.store.source import SORT_BY

ERROR_SCHEMA = "Error"
BEARER = "bearer"
API_KEY_HEADER = "apiKeyHeader"
CHANGING = frozenset({"post", "put", "patch", "delete"})


class ErrorBody(BaseModel):
    """Every error, from every route and the data plane: what went wrong and which field."""

    code: str = Field(description="A stable code: ValidationException, NotFound, ...")
    message: str = Field(description="What is wrong and how to fix it")
    field: str | None = Field(
        default=None, description="The request field at fault (absent when none is)"
    )
    retry_after: float | None = Field(
        default=None, description="Temporary errors only: seconds to wait before retrying"
    )


# status -> when it is given; the rules in ``_statuses`` choose which apply to an operation.
_WHY: dict[int, str] = {
    400: "The request is malformed: a parameter or field is invalid (``field`` names it)",
    401: "No API key, or a key that is unknown, revoked or expired",
    403: "The key's role does not allow this action",
    404: "No resource by that name",
    409: "A resource of that name with another spec, or the resource's state forbids the call",
    429: "The key's rate limit (retry after ``Retry-After``), or a quota or a queue is full "
    "(wait, or remove something first)",
    500: "An internal error (a stored object failed its integrity check, or a bug)",
    503: "A service the call needs is not available yet; retry after ``Retry-After``",
}

# Routes answering something other than JSON (FastAPI cannot see a bare ``Response``).
_MEDIA: dict[tuple[str, str], str] = {
    ("get", "/metrics"): "text/plain",
    ("get", "/api/v1/objects/{bucket}/{key}"): "application/octet-stream",
}

# Object URIs (orchestrator.objects.uri): the bucket rules and key segments that cannot step
# outside the bucket. An IPv4 address as a bucket name is refused as well: too rare to state.
# At least 3 long; at most 63 is the path parameter's maxLength (a regular expression without
# lookahead cannot count it through the optional dots).
_BUCKET = r"[a-z0-9](?:\.?[a-z0-9-]){1,60}\.?[a-z0-9]"
_SEGMENT = r"(?:[^/.\x00][^/\x00]*|\.[^/.\x00][^/\x00]*|\.\.[^/\x00]+)"
_KEY = rf"{_SEGMENT}(?:/{_SEGMENT})*"
# Times the monitoring routes read: ISO 8601 or epoch seconds (routes/monitoring.py ``_time``).
_TIME: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "format": "date-time"},
        # datetime.fromtimestamp's range: years 1 to 9999
        {"type": "number", "minimum": -62135596800, "exclusiveMaximum": 253402300800},
    ],
    "description": "ISO 8601 (2026-01-01T12:00:00Z) or epoch seconds",
}
# The resource models' loose URI patterns (resources/common.py), as the service checks them.
_LOOSE_S3 = "s3://[^/]+(/.*)?"
_STRICT_S3 = f"s3://{_BUCKET}(?:/(?:{_KEY}/?)?)?"
_STATISTIC = (
    rf"^(?:{'|'.join(BASIC_STATISTICS)}|p(?:100(?:\.0{{1,6}})?|[0-9]{{1,2}}(?:\.[0-9]{{1,6}})?))$"
)


def install(app: FastAPI, settings: Settings, protected: tuple[str, ...]) -> None:
    """Serve the truthful document as ``app.openapi()`` (and so ``/openapi.json``); routes
    under ``protected`` need an API key."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            truthful(FastAPI.openapi(app), settings, protected)
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def truthful(doc: dict[str, Any], settings: Settings, protected: tuple[str, ...]) -> dict[str, Any]:
    """Add to FastAPI's ``doc`` (in place) what the server answers beyond the signatures."""
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas[ERROR_SCHEMA] = ErrorBody.model_json_schema()
    components["securitySchemes"] = {
        BEARER: {"type": "http", "scheme": "bearer", "description": "An API key (orch_...)"},
        API_KEY_HEADER: {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    }
    for path, item in doc["paths"].items():
        for method, op in item.items():
            keyed = path.startswith(protected)
            if keyed:
                op["security"] = [{BEARER: []}, {API_KEY_HEADER: []}]
            _declare_errors(op, method, path, keyed)
            media = _MEDIA.get((method, path))
            if media is not None:
                ok = op["responses"].setdefault("200", {"description": "Successful Response"})
                ok["content"] = {media: {"schema": {"type": "string", "format": "binary"}}}
            _constrain(op, method, path, settings)
            _also_epoch(op)
            _idempotent_create(op, method)
    if route_body := doc["paths"].get("/api/v1/objects/{bucket}/{key}", {}).get("put"):
        route_body["requestBody"] = {
            "required": False,  # no body: an empty object
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    doc["paths"].update(_invocation_paths())
    for name in ("HTTPValidationError", "ValidationError"):  # FastAPI's 422 body, if unused
        if f'"#/components/schemas/{name}"' not in json.dumps(doc):
            schemas.pop(name, None)
    _constrain_bodies(schemas, settings)
    return doc


def _invocation_paths() -> dict[str, Any]:
    errors = {
        400: "A malformed Content-Length, or SigV4 credentials of the wrong form",
        401: "No valid key or signature (the same whether or not the endpoint exists)",
        403: "The key may not invoke this endpoint",
        404: "No endpoint by that name",
        409: "The endpoint is Failed",
        413: "The body is over the endpoint's payload limit",
        429: "The endpoint's queue is full",
        500: "An internal error",
        503: "The endpoint is not InService yet, or no replica was ready in time",
        504: "The model took longer than the invocation's deadline",
    }
    error_body = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}}
    responses: dict[str, Any] = {
        "200": {
            "description": "The model's answer, with X-Invoked-Production-Variant",
            "headers": {
                "X-Invoked-Production-Variant": {
                    "description": "The variant that served the request",
                    "schema": {"type": "string"},
                }
            },
            "content": {"*/*": {"schema": {}}},
        },
        **{str(c): {"description": why, "content": error_body} for c, why in errors.items()},
        "default": {
            "description": "The model's own error answer, with its status (a ModelError)",
            "content": {"*/*": {"schema": {}}},
        },
    }

    def operation(op_id: str, summary: str, *params: str) -> dict[str, Any]:
        return {
            "post": {
                "tags": ["Invocation"],
                "summary": summary,
                "operationId": op_id,
                "security": [{BEARER: []}, {API_KEY_HEADER: []}, {}],
                "parameters": [
                    {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
                    for p in params
                ],
                "requestBody": {
                    "description": "Passed to the model as it is, with its Content-Type",
                    "content": {"*/*": {"schema": {}}},
                },
                "responses": responses,
            }
        }

    return {
        "/endpoints/{name}/invocations": operation(
            "invoke_endpoint", "InvokeEndpoint (a public endpoint needs no key)", "name"
        ),
        "/endpoints/{name}/v2/models/{model}/infer": operation(
            "infer_v2", "Open Inference Protocol v2 (KServe's) infer", "name", "model"
        ),
    }


# Required query parameters that name one resource (a log group): absent, it is a 404.
NAMING_QUERY = frozenset({"Group"})


def _statuses(op: dict[str, Any], method: str, path: str, protected: bool) -> list[int]:
    validates = bool(op.get("parameters") or op.get("requestBody")) or (
        method in {"put", "post", "patch"}
    )
    codes = [400] if validates else []
    if protected:
        codes += [401, 403]
    names_one = any(
        p.get("in") == "query" and p.get("required") and p.get("name") in NAMING_QUERY
        for p in op.get("parameters", [])
    )
    if "{" in path or names_one:
        codes.append(404)
    if protected and method in CHANGING:
        codes.append(409)
    if protected:  # every key's rate limit (orchestrator.ratelimit), and quotas on creates
        codes.append(429)
    codes.append(500)
    if protected:
        codes.append(503)
    return codes


def _declare_errors(op: dict[str, Any], method: str, path: str, protected: bool) -> None:
    responses: dict[str, Any] = op.setdefault("responses", {})
    responses.pop("422", None)
    body = {"application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_SCHEMA}"}}}
    declared = {int(c) for c in responses if c.isdigit() and int(c) >= 400}
    for code in sorted(set(_statuses(op, method, path, protected)) | declared):
        entry = responses.setdefault(str(code), {})
        if not entry.get("description"):
            entry["description"] = _WHY.get(code, "An error")
        entry["content"] = body
        if code == 503 or (code == 429 and protected):
            # A 429 from the key's rate limit has it; one from a quota (LimitExceededError,
            # on calls that change something) has not: wait for something to be removed.
            entry["headers"] = {
                "Retry-After": {
                    "description": "Seconds to wait before retrying",
                    "required": code == 503 or method not in CHANGING,
                    "schema": {"type": "integer", "minimum": 1},
                }
            }


def _enum(values: Iterable[str | Enum]) -> list[str]:
    return [v.value if isinstance(v, Enum) else v for v in values]


def _phases(kind: Kind) -> list[str] | None:
    if kind.status is None or kind.phase_field is None:
        return None
    annotation = kind.status.model_fields[kind.phase_field].annotation
    return _enum(list(annotation)) if isinstance(annotation, type) else None  # type: ignore[call-overload]


def _constrain(op: dict[str, Any], method: str, path: str, settings: Settings) -> None:
    params: dict[str, dict[str, Any]] = {p["name"]: p for p in op.get("parameters", [])}
    if not params:
        return
    schema: dict[str, dict[str, Any]] = {n: p.setdefault("schema", {}) for n, p in params.items()}
    if "SortOrder" in schema:
        schema["SortOrder"]["enum"] = ["Ascending", "Descending"]
    kind = next((k for k in KINDS.values() if path == k.collection), None)
    if method == "get" and kind is not None:
        if "SortBy" in schema:
            schema["SortBy"]["enum"] = list(SORT_BY if kind.phase_field else SORT_BY[:2])
        phases = _phases(kind)
        if "StatusEquals" in schema and phases is not None:
            _set_enum(schema["StatusEquals"], phases)
    if path == f"{HYPER_PARAMETER_TUNING_JOB.collection}/{{name}}/training-jobs":
        schema["SortBy"]["enum"] = list(TRIAL_SORT)
        _set_enum(schema["StatusEquals"], _enum(TrainingJobStatus))
    if "ResourceArn" in schema:
        schema["ResourceArn"]["pattern"] = _arn_pattern(settings)
    if path.startswith("/api/v1/objects"):
        if "bucket" in schema:
            schema["bucket"].update(pattern=rf"^{_BUCKET}$", minLength=3, maxLength=63)
        if "key" in schema:
            schema["key"]["pattern"] = rf"^{_KEY}$"
        if "prefix" in schema:
            schema["prefix"]["pattern"] = f"^{_STRICT_S3}$"
    if path.endswith("/metrics") and "MetricName" in params:
        params["MetricName"]["required"] = True
        params["MetricName"]["schema"] = {"type": "string", "enum": list(METRICS)}
        params["Statistics"]["schema"] = {
            "type": "array",
            "minItems": 1,
            "items": {"type": "string", "pattern": _STATISTIC},
        }
        params["Period"]["schema"] = {"type": "integer", "minimum": 1}
    for name in ("StartTime", "EndTime", "Since"):
        if name in params and path.startswith("/api/v1/endpoints/"):
            params[name]["schema"] = copy.deepcopy(_TIME)


def _also_epoch(op: dict[str, Any]) -> None:
    """A ``datetime`` query parameter takes epoch seconds (or milliseconds) as well: pydantic
    reads both, milliseconds past 2e10, from year 1 to 9999."""
    for param in op.get("parameters", []):
        schema = param.get("schema", {})
        branches = schema.get("anyOf", [schema])
        if any(b.get("format") == "date-time" for b in branches) and not any(
            b.get("type") == "number" for b in branches
        ):
            branches.append(
                {"type": "number", "minimum": -62135596800000, "maximum": 253402300799999}
            )
            if "anyOf" not in schema:
                param["schema"] = {"anyOf": branches}


def _idempotent_create(op: dict[str, Any], method: str) -> None:
    """A create repeated with the same name and spec answers 200 with the same body
    (``routes.common.created``)."""
    responses = op.get("responses", {})
    if method == "post" and "201" in responses and "200" not in responses:
        responses["200"] = {
            **responses["201"],
            "description": "The same create again: the existing resource",
        }


def _lax_scalars(prop: Any) -> None:
    """Request bodies are read in pydantic's lax mode: 0 and 1 are booleans, and false and
    true are numbers (0 and 1, within the field's bounds), so the document says so."""
    if not isinstance(prop, dict):
        return
    if "anyOf" not in prop:
        if prop.get("type") not in ("boolean", "integer", "number"):
            return
        moved = {k: prop.pop(k) for k in ("type", *_NUMERIC) if k in prop}
        prop["anyOf"] = [moved]
    extra = [x for b in prop["anyOf"] if (x := _lax_alternative(b)) is not None]
    prop["anyOf"] += [x for x in extra if x not in prop["anyOf"]]


_NUMERIC = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")


def _lax_alternative(branch: dict[str, Any]) -> dict[str, Any] | None:
    if branch.get("type") == "boolean":
        return {"enum": [0, 1]}
    if branch.get("type") not in ("integer", "number"):
        return None

    def within(v: int) -> bool:
        if "enum" in branch and v not in branch["enum"]:
            return False
        return bool(
            v >= branch.get("minimum", v)
            and v <= branch.get("maximum", v)
            and v > branch.get("exclusiveMinimum", v - 1)
            and v < branch.get("exclusiveMaximum", v + 1)
        )

    values = [b for b, v in ((False, 0), (True, 1)) if within(v)]
    return {"enum": values} if values else None


def _set_enum(schema: dict[str, Any], values: list[str]) -> None:
    """``str | None`` comes out as ``anyOf [string, null]``: the enum goes on the string."""
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "string":
            branch["enum"] = values


def _arn_pattern(settings: Settings) -> str:
    slugs = "|".join(re.escape(k.arn_slug) for k in KINDS.values())
    # Any account's id (``orchestrator.tenancy``): the caller's is the one that is found.
    prefix = re.escape(f"arn:aws:sagemaker:{settings.region}:")
    return rf"^{prefix}[0-9]{{12}}:(?:{slugs})/.+$"


def _constrain_bodies(schemas: dict[str, Any], settings: Settings) -> None:
    search = schemas.get("SearchRequest", {}).get("properties", {}).get("Resource")
    if isinstance(search, dict):  # resources.search.searchable: the kinds Search covers
        search["enum"] = [k for k in SEARCHABLE if k in KINDS]
    _constrain_identities(schemas)
    alias = schemas.get("CreateKmsKeyRequest", {}).get("properties", {}).get("Alias")
    if isinstance(alias, dict):  # objects.named_keys.check_alias: NAME or alias/NAME
        _set_string(
            alias,
            pattern=f"^(?:alias/)?{ALIAS_PATTERN.removeprefix('^')}",
            **{"not": {"pattern": f"^(?:alias/)?(?:aws/|{DEFAULT_KEY}$)"}},
        )
    for schema in schemas.values():
        properties = schema.get("properties", {})
        arn = properties.get("ResourceArn")
        if isinstance(arn, dict) and arn.get("type") == "string":
            arn["pattern"] = _arn_pattern(settings)
        for prop in properties.values():
            _lax_scalars(prop)
            for branch in prop.get("anyOf", [prop]) if isinstance(prop, dict) else ():
                pattern = branch.get("pattern")
                if isinstance(pattern, str) and _LOOSE_S3 in pattern:
                    branch["pattern"] = pattern.replace(_LOOSE_S3, _STRICT_S3)


def _set_string(schema: dict[str, Any], **constraints: Any) -> None:
    """Add ``constraints`` to the string branch of ``schema`` (``str | None``: anyOf)."""
    for branch in schema.get("anyOf", [schema]):
        if branch.get("type") == "string":
            branch.update(constraints)


def _constrain_identities(schemas: dict[str, Any]) -> None:
    """``api.identities``: names, the managed policies and the roles there are."""
    for name in ("PoliciesBody", "CreateUserRequest"):
        properties = schemas.get(name, {}).get("properties", {})
        if "UserName" in properties:
            _set_string(properties["UserName"], pattern=NAME_PATTERN)
        if "ManagedPolicies" in properties:
            properties["ManagedPolicies"]["items"]["enum"] = sorted(MANAGED)
        if "Roles" in properties:
            properties["Roles"]["items"]["enum"] = sorted(ROLES)
        if "InlinePolicies" in properties:
            properties["InlinePolicies"]["propertyNames"] = {"pattern": NAME_PATTERN}
    user = schemas.get("CreateUserRequest", {}).get("properties", {})
    if "Account" in user:  # ``api.accounts``: an account's 12 digits
        _set_string(user["Account"], pattern=r"^[0-9]{12}$")
    account = schemas.get("CreateAccountRequest", {}).get("properties", {})
    if "AccountName" in account:
        _set_string(account["AccountName"], pattern=ACCOUNT_NAME_PATTERN)
    if "AdminUserName" in account:
        _set_string(account["AdminUserName"], pattern=NAME_PATTERN)
    key = schemas.get("CreateKeyRequest", {}).get("properties", {})
    if "Role" in key:  # "" or a role (one the identity may assume: openapi_fuzz.toml)
        key["Role"]["enum"] = ["", *sorted(ROLES)]

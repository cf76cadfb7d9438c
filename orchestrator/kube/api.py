"""Calling the Kubernetes API: the answer as plain dicts, its errors as the product's own.

4xx answers (other than those a caller handles) are ``PermanentError``\\ s with the API's own
message; 5xx, 429, timeouts and connection failures are ``BackendError`` (temporary: the REST
API answers 503 with ``Retry-After``, the reconciler retries with backoff). Every call has a
deadline (``REQUEST_TIMEOUT``), so a slow API server never holds a request or a pass for long.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

from orchestrator.errors import (
    AuthenticationError,
    BackendError,
    ConflictError,
    NotFoundError,
    OrchestratorError,
    PermanentError,
    PermissionDeniedError,
    ValidationError,
)

# (connect, read) seconds for one API call.
REQUEST_TIMEOUT = (5.0, 15.0)
RETRY_AFTER = 5.0


def wrap_api_error(e: ApiException, what: str) -> OrchestratorError:
    """One of our errors for a Kubernetes API error, with the API's own message."""
    status = int(e.status or 0)
    detail = str(e.reason or "")
    with contextlib.suppress(ValueError, AttributeError):
        detail = json.loads(e.body or "{}").get("message") or detail
    message = f"{what}: Kubernetes API answered {status}: {detail}"
    by_status: dict[int, type[OrchestratorError]] = {
        400: ValidationError,
        401: AuthenticationError,
        403: PermissionDeniedError,
        404: NotFoundError,
        409: ConflictError,
        422: ValidationError,
    }
    if status in by_status:
        return by_status[status](message)
    if 400 <= status < 500 and status != 429:
        return PermanentError(message)
    return BackendError(message, retry_after=RETRY_AFTER)


def call(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call the API; the JSON answer as plain dicts (camelCase, like the manifests)."""
    kwargs.setdefault("_request_timeout", REQUEST_TIMEOUT)
    try:
        response = fn(*args, _preload_content=False, **kwargs)
    except ApiException as e:
        raise wrap_api_error(e, what) from e
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise BackendError(
            f"{what}: Kubernetes API unreachable: {e}", retry_after=RETRY_AFTER
        ) from e
    data = response.data
    return json.loads(data) if data else {}

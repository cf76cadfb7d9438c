"""Calling the Kubernetes API: the answer as plain dicts, its errors as the product's own.

4xx answers (other than those a caller handles) are ``PermanentError``\\ s with the API's own
message; 5xx, 429, timeouts and connection failures are ``BackendError`` (temporary: the REST
API answers 503 with ``Retry-After``, the reconciler retries with backoff). Every call has a
deadline (``REQUEST_TIMEOUT``), so a slow API server never holds a request or a pass for long.
That needs each call tried once (``api_client``): left to itself, urllib3 tries a GET, PUT or
DELETE that timed out three more times, four deadlines in a row.
"""

from __future__ import annotations

import contextlib
import copy
import json
from collections.abc import Callable
from typing import Any

import urllib3
from kubernetes import client
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


def api_client(configuration: client.Configuration | None = None) -> client.ApiClient:
    """A client for ``configuration`` (default: the one ``kubernetes.config`` loaded) whose
    calls are each tried once, so that ``REQUEST_TIMEOUT`` is the whole deadline of a call;
    the callers retry, later (the reconciler's backoff, the REST client after a 503)."""
    config = copy.copy(configuration or client.Configuration.get_default_copy())
    config.retries = False  # no retry, and the error itself raised (not MaxRetryError)
    return client.ApiClient(config)


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
    except urllib3.exceptions.ReadTimeoutError as e:  # reached, but too slow to answer
        raise BackendError(
            f"{what}: Kubernetes API did not answer in time: {e}", retry_after=RETRY_AFTER
        ) from e
    except (urllib3.exceptions.HTTPError, OSError) as e:
        raise BackendError(
            f"{what}: Kubernetes API unreachable: {e}", retry_after=RETRY_AFTER
        ) from e
    data = response.data
    return json.loads(data) if data else {}

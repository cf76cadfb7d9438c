"""One error tree for the whole product, shared by the server, the client and the CLI.

::

    OrchestratorError                     base; carries an HTTP status and a stable code
    ├── PermanentError                    never retried: the input or the user's code is wrong
    │   ├── ValidationError          400  a field is malformed; names the field and the fix
    │   ├── AuthenticationError      401  missing or wrong API key
    │   │   └── SessionExpiredError  401  the console's session cookie is too old or ended
    │   ├── PermissionDeniedError    403  authenticated, but not allowed
    │   │   └── InvalidCsrfTokenError 403 a change through the session cookie, no CSRF token
    │   ├── NotFoundError            404  no such resource
    │   ├── ConflictError            409  same name, different spec; wrong state for the call
    │   ├── PayloadTooLargeError     413  request body over the limit
    │   ├── LimitExceededError       429  a quota or a queue is full
    │   ├── IntegrityError           500  a stored object failed its integrity check
    │   │   └── KeyRetiredError      500  its data key's master key version was retired
    │   ├── ModelError               4xx/5xx  the model's own code raised while serving
    │   └── JobFailedError           ---  a job ended Failed or Stopped (client side)
    └── TemporaryError                    retry after ``retry_after`` seconds
        ├── UnavailableError         503  nothing ready to serve yet, a service unreachable
        │   └── ModelNotReadyError   503  a variant woken from zero had no replica in time
        ├── BackendError             503  the backend failed for a reason that may pass
        ├── ThrottlingError          429  this caller's rate limit: retry after ``retry_after``
        └── DeadlineExceededError    504  the request took longer than its limit

Third-party errors are wrapped at the boundary with the cause chained (``raise X(...) from e``).
The REST API and the invocation data plane render any of these the same way, through
``http_answer``: ``{"code": ..., "message": ..., "field": ...}`` with the class's HTTP status
(and ``Retry-After`` for temporary ones); the client maps that body back onto the same class
(``from_payload``).
"""

from __future__ import annotations

import json
import math
from typing import Any, ClassVar


class OrchestratorError(Exception):
    """Base of every error the product raises on purpose."""

    status_code: ClassVar[int] = 500
    code: ClassVar[str] = "InternalError"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_payload(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.field is not None:
            payload["field"] = self.field
        return payload

    @staticmethod
    def from_payload(status_code: int, payload: dict[str, Any]) -> OrchestratorError:
        """Rebuild the error a server sent (used by the client)."""
        code = str(payload.get("code", ""))
        message = str(payload.get("message", f"HTTP {status_code}"))
        field = payload.get("field")
        cls = _BY_CODE.get(code)
        if cls is None:
            cls = _BY_STATUS.get(status_code, OrchestratorError)
        err = cls(message, field=field if isinstance(field, str) else None)
        if isinstance(err, TemporaryError) and "retry_after" in payload:
            err.retry_after = float(payload["retry_after"])
        if isinstance(err, ModelError):
            err.http_status = status_code
        return err


class PermanentError(OrchestratorError):
    """Retrying will not help: fix the input or the code first."""


class TemporaryError(OrchestratorError):
    """May succeed later; ``retry_after`` is a hint in seconds."""

    status_code = 503
    code = "ServiceUnavailable"

    def __init__(self, message: str, *, field: str | None = None, retry_after: float = 1.0) -> None:
        super().__init__(message, field=field)
        self.retry_after = retry_after

    def to_payload(self) -> dict[str, Any]:
        payload = super().to_payload()
        payload["retry_after"] = self.retry_after
        return payload


class ValidationError(PermanentError):
    status_code = 400
    code = "ValidationException"


class AuthenticationError(PermanentError):
    status_code = 401
    code = "UnauthorizedException"


class SessionExpiredError(AuthenticationError):
    code = "SessionExpired"


class PermissionDeniedError(PermanentError):
    status_code = 403
    code = "AccessDeniedException"


class InvalidCsrfTokenError(PermissionDeniedError):
    code = "InvalidCsrfToken"


class NotFoundError(PermanentError):
    status_code = 404
    code = "ResourceNotFound"


class ConflictError(PermanentError):
    status_code = 409
    code = "ResourceInUse"


class PayloadTooLargeError(PermanentError):
    status_code = 413
    code = "PayloadTooLarge"


class LimitExceededError(PermanentError):
    status_code = 429
    code = "ResourceLimitExceeded"


class IntegrityError(PermanentError):
    status_code = 500
    code = "IntegrityCheckFailed"


class KeyRetiredError(IntegrityError):
    """The master key version that wraps a data key was retired (its material destroyed)."""

    code = "MasterKeyRetired"


class ModelError(PermanentError):
    """The model's code raised; ``http_status`` is what the endpoint answered (4xx or 5xx)."""

    status_code = 424
    code = "ModelError"

    def __init__(self, message: str, *, field: str | None = None, http_status: int = 500) -> None:
        super().__init__(message, field=field)
        self.http_status = http_status


class JobFailedError(PermanentError):
    """A training, tuning or transform job ended without completing; the message has its
    FailureReason."""

    status_code = 400
    code = "JobFailed"


class UnavailableError(TemporaryError):
    status_code = 503
    code = "ServiceUnavailable"


class ModelNotReadyError(UnavailableError):
    """A request held for a variant scaled to zero saw no replica ready within its deadline.
    The same 503 as ``UnavailableError`` to the product's callers; SageMaker Runtime's callers
    get ``ModelNotReadyException`` (429), its answer for capacity still being provisioned."""


class BackendError(TemporaryError):
    status_code = 503
    code = "BackendError"


class ThrottlingError(TemporaryError):
    """The caller's key went over its rate limit (``orchestrator.ratelimit``); ``retry_after``
    is when its next request will be let through."""

    status_code = 429
    code = "ThrottlingException"


class DeadlineExceededError(TemporaryError):
    status_code = 504
    code = "DeadlineExceeded"


def http_answer(error: OrchestratorError) -> tuple[int, list[tuple[str, str]], bytes]:
    """How an error goes out over HTTP, everywhere: status, headers and the JSON body."""
    headers = [("content-type", "application/json")]
    if isinstance(error, TemporaryError):
        headers.append(("retry-after", str(max(1, math.ceil(error.retry_after)))))
    body = json.dumps(error.to_payload(), ensure_ascii=False, separators=(",", ":"))
    return error.status_code, headers, body.encode()


_ALL: tuple[type[OrchestratorError], ...] = (
    ValidationError,
    AuthenticationError,
    PermissionDeniedError,
    NotFoundError,
    ConflictError,
    PayloadTooLargeError,
    LimitExceededError,
    IntegrityError,
    ModelError,
    JobFailedError,
    UnavailableError,
    BackendError,
    DeadlineExceededError,
    ThrottlingError,
)
_BY_CODE: dict[str, type[OrchestratorError]] = {c.code: c for c in _ALL}
_BY_STATUS: dict[int, type[OrchestratorError]] = {}
for _cls in _ALL:
    _BY_STATUS.setdefault(_cls.status_code, _cls)
for _sub in (KeyRetiredError, SessionExpiredError, InvalidCsrfTokenError):
    _BY_CODE[_sub.code] = _sub

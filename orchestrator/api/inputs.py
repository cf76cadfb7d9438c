"""Who may name what in a spec: ``file://`` paths of the server's host, and the caller behind
a request.

The models (``resources.uris``) already refuse any scheme but ``s3://`` and ``file://`` and
IP-address buckets. What depends on the caller is checked here, at the create, before anything
is stored: a ``file://`` URI reads the control plane host's own files, so it is taken only

- on a local control plane (``ORCH_DESIRED_STATE=sql``; on a cluster pods read only the
  object store: 400),
- when the server allows it (``ORCH_ALLOW_FILE_URIS``, default true: 400 when off),
- from a caller who may read the host's files (``may_read_host_files``: admins; anyone else
  gets 403, ``AccessDeniedException`` on the SageMaker wire: the request is well formed and
  an admin's would be accepted, so it is a matter of permission, not of input).

The caller is the request's ``Principal``, set by the two front doors once they have
authenticated it (the management API's middleware, the AWS gateway) in a context variable
(``acting_for``): the service layer reads it with ``current_caller`` without every operation
taking it as an argument. No caller (code calling the service directly) may not read host
files.
"""

from __future__ import annotations

from contextvars import ContextVar

from orchestrator.access import Principal, authorize
from orchestrator.errors import PermissionDeniedError, ValidationError
from orchestrator.resources.uris import UPLOAD_HINT, check_uri
from orchestrator.settings import Settings

_caller: ContextVar[Principal | None] = ContextVar("orchestrator_caller", default=None)


def acting_for(principal: Principal) -> None:
    """The request being served from here on is ``principal``'s (this task's context)."""
    _caller.set(principal)


def current_caller() -> Principal | None:
    return _caller.get()


def may_read_host_files(principal: Principal) -> bool:
    """May ``principal`` have the control plane read its host's files (``file://``)? The one
    place this is decided: ``orchestrator:ReadHostFiles`` in its policies (administrators)."""
    try:
        authorize(principal, "orchestrator:ReadHostFiles", "*")
    except PermissionDeniedError:
        return False
    return True


def check_file_uri(field: str, settings: Settings, principal: Principal | None) -> None:
    """Refuse a ``file://`` URI in ``field`` unless this server and this caller allow it."""
    if settings.desired_state == "kubernetes":
        raise ValidationError(
            f"{field}: file:// URIs are not read on a cluster (ORCH_DESIRED_STATE=kubernetes): "
            f"its pods read only the object store; {UPLOAD_HINT}",
            field=field,
        )
    if not settings.allow_file_uris:
        raise ValidationError(
            f"{field}: file:// URIs are disabled on this server (ORCH_ALLOW_FILE_URIS); "
            "upload the data with `orch objects put` and use its s3:// URI",
            field=field,
        )
    if principal is None or not may_read_host_files(principal):
        who = "no caller" if principal is None else f"key {principal.key_id} ({principal.role})"
        raise PermissionDeniedError(
            f"{field}: file:// URIs read the server's own files, which only admins may have "
            f"it do, and this request is from {who}; {UPLOAD_HINT}",
            field=field,
        )


def check_source_uri(value: str, field: str, settings: Settings) -> None:
    """A script-mode source URI (a hyperparameter or an environment variable, so not typed
    by the models): the same schemes as a channel's, the same ``file://`` rules."""
    try:
        check_uri(value, file_ok=True)
    except ValueError as e:
        raise ValidationError(f"{field}: {e}", field=field) from e
    if value.startswith("file://"):
        check_file_uri(field, settings, current_caller())

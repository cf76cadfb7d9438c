"""FastAPI dependencies: the control plane object and the authenticated principal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import TypeVar

from fastapi import Request
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from orchestrator import tenancy
from orchestrator.api.auth import KeyCache, Principal, authenticate, authorize
from orchestrator.api.service import ControlPlane
from orchestrator.console.sessions import CSRF_HEADER, Sessions, session_key_of
from orchestrator.dataplane.keys import presented_key as _presented
from orchestrator.errors import NotFoundError, ValidationError
from orchestrator.iam import ACTIONS, OWNER_TAG
from orchestrator.resources.common import Tag


def plane(request: Request) -> ControlPlane:
    cp: ControlPlane = request.app.state.plane
    return cp


def presented_key(request: Request) -> str | None:
    return _presented(request.headers.get("authorization"), request.headers.get("x-api-key"))


def session_key(request: Request) -> str | None:
    """The API key of the console's session cookie, when the request has no key of its own
    (``orchestrator.console.sessions``: expired or ended sessions, and changes without the
    CSRF token, are refused here)."""
    sessions: Sessions | None = getattr(request.app.state, "console_sessions", None)
    if sessions is None:
        return None
    headers = request.headers
    return session_key_of(sessions, headers.get("cookie"), headers.get(CSRF_HEADER), request.method)


async def principal_of(request: Request) -> Principal:
    """The caller, through the key cache the data plane shares (``app.state.key_cache``):
    the key the request presents, else its console session's."""
    cache: KeyCache = request.app.state.key_cache
    presented = presented_key(request)
    if presented is None:
        presented = session_key(request)
    return await cache.check(partial(authenticate, plane(request).keys), presented)


# --- identities and policies: the resource a route acts on -------------------------------
# A route's dependency is ``authorized(action, resource)``: ``resource`` turns the request
# into the ARN the action is on (and, lazily, the resource's tags, read only when a policy has
# a tag condition for the action). The route enumeration test reads ``ACTION_ATTRIBUTE``.
ACTION_ATTRIBUTE = "orchestrator_action"
Tags = dict[str, str]
Resource = Callable[[Request, ControlPlane], Awaitable[tuple[str, Callable[[], Tags] | None]]]


async def _body_field(request: Request, field: str) -> str:
    try:
        body = await request.json()
    except ValueError:
        return ""
    value = body.get(field) if isinstance(body, dict) else None
    return value if isinstance(value, str) else ""


def _stored_tags(cp: ControlPlane, kind: str, name: str) -> Callable[[], Tags]:
    def read() -> Tags:
        try:
            return {t.Key: t.Value for t in cp.tags.tags_of(kind, name)}
        except NotFoundError:
            return {}

    return read


def of_kind(kind: str, *, body: str | None = None, param: str = "name") -> Resource:
    """The resource of ``kind`` named by the path parameter ``param`` (or, for a create, by
    the body's member ``body``)."""

    async def resource(request: Request, cp: ControlPlane) -> tuple[str, Callable[[], Tags] | None]:
        if body is not None:
            return cp.arn(kind, await _body_field(request, body)), None
        name = str(request.path_params.get(param, ""))
        return cp.arn(kind, name), _stored_tags(cp, kind, name)

    return resource


def caller_account_id(cp: ControlPlane) -> str:
    """The 12 digits of the caller's account in ARNs (``tenancy``: the server's own for ROOT)."""
    return tenancy.arn_account(tenancy.current() or tenancy.ROOT, cp.settings.account_id)


async def any_resource(request: Request, cp: ControlPlane) -> tuple[str, None]:
    """No one resource: a list, Search, the metrics."""
    return "*", None


async def log_group_resource(request: Request, cp: ControlPlane) -> tuple[str, None]:
    """The log group named by the query parameter ``Group`` (none: every group)."""
    s = cp.settings
    group = request.query_params.get("Group") or "*"
    return f"arn:aws:logs:{s.region}:{caller_account_id(cp)}:log-group:{group}", None


async def object_resource(request: Request, cp: ControlPlane) -> tuple[str, None]:
    """An object of the store, as S3 names it: ``arn:aws:s3:::BUCKET/KEY`` (a list: its
    prefix's bucket)."""
    bucket = str(request.path_params.get("bucket", ""))
    key = str(request.path_params.get("key", ""))
    if not bucket:
        prefix = request.query_params.get("prefix", "")
        bucket = prefix.removeprefix("s3://").partition("/")[0]
        return f"arn:aws:s3:::{bucket}", None
    return f"arn:aws:s3:::{bucket}/{key}", None


async def tagged_resource(request: Request, cp: ControlPlane) -> tuple[str, Callable[[], Tags]]:
    """The resource named by ``ResourceArn`` (in the query, else in the body)."""
    arn = request.query_params.get("ResourceArn") or await _body_field(request, "ResourceArn")

    def read() -> Tags:
        try:
            record = cp.tags.find_by_arn(arn)
        except (NotFoundError, ValidationError):
            return {}
        return {t.Key: t.Value for t in cp.tags.tags_of(record.kind, record.name)}

    return arn, read


def user_resource(param: str = "user") -> Resource:
    """An identity (and its keys): ``arn:aws:iam::ACCOUNT:user/NAME``; ``*`` without one."""

    async def resource(request: Request, cp: ControlPlane) -> tuple[str, None]:
        name = str(request.path_params.get(param, "")) or await _body_field(request, "UserName")
        if not name:
            return "*", None
        return f"arn:aws:iam::{caller_account_id(cp)}:user/{name}", None

    return resource


def authorized(action: str, resource: Resource = any_resource) -> Callable[[Request], object]:
    """A dependency that authenticates, then checks ``action`` on the route's resource through
    ``authorize`` (the one check), and leaves ``request.state.authorized = (action, arn)`` for
    the audit trail. ``action`` must be in the catalog (``orchestrator/iam/actions.py``): a
    policy can name no other, so a route with another would be refused to everyone."""
    if action not in ACTIONS:
        raise ValueError(
            f"route action {action!r} is not in orchestrator/iam/actions.py: use SageMaker's name "
            "for the operation, or add an orchestrator: action there"
        )

    async def check(request: Request) -> Principal:
        principal = getattr(request.state, "principal", None)
        if not isinstance(principal, Principal):
            principal = await principal_of(request)
        # The rest of the request acts for the caller's account (the stores read it): set in
        # the request's own task, so it ends with the request.
        tenancy.enter(principal.account)
        cp = plane(request)
        arn, tags = await resource(request, cp)
        request.state.authorized = (action, arn)
        request.state.principal = principal
        if tags is not None and principal.policies.needs_tags(action):
            await run_in_threadpool(authorize, principal, action, arn, tags)
        else:
            authorize(principal, action, arn)
        return principal

    setattr(check, ACTION_ATTRIBUTE, action)
    return check


SpecT = TypeVar("SpecT", bound=BaseModel)


def owned(body: SpecT, request: Request) -> SpecT:
    """A create's spec with the ``orchestrator:owner`` tag set to the caller's identity
    (whatever the request said: the DataScientist policy's "own resources" rests on it), when
    the caller's policies read that tag (an administrator's resources are left as sent)."""
    principal = request.state.principal
    if OWNER_TAG not in principal.policies.tag_keys:
        return body
    tags = [t for t in getattr(body, "Tags", []) if t.Key != OWNER_TAG]
    tags.append(Tag(Key=OWNER_TAG, Value=principal.name))
    return body.model_copy(update={"Tags": tags})

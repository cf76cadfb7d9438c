"""FastAPI dependencies: the control plane object and the authenticated principal."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from orchestrator.api.auth import KeyCache, Principal, authenticate, authorize
from orchestrator.api.service import ControlPlane


def plane(request: Request) -> ControlPlane:
    cp: ControlPlane = request.app.state.plane
    return cp


def presented_key(request: Request) -> str | None:
    auth = request.headers.get("authorization")
    if auth and auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key")


async def principal_of(request: Request) -> Principal:
    cp = plane(request)
    key = presented_key(request)
    cache: KeyCache = request.app.state.key_cache
    if key and (hit := cache.get(key)) is not None:
        return hit
    principal = await run_in_threadpool(authenticate, cp.keys, key)
    if key:
        cache.put(key, principal)
    return principal


def allowed(action: str) -> Callable[[Request], object]:
    """A dependency that authenticates, then checks ``action`` against the principal's role."""

    async def check(request: Request) -> Principal:
        # Normally already authenticated by the app's middleware, before any body was read.
        principal = getattr(request.state, "principal", None)
        if not isinstance(principal, Principal):
            principal = await principal_of(request)
        authorize(principal, action)
        return principal

    return check

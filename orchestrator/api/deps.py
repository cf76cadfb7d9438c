"""FastAPI dependencies: the control plane object and the authenticated principal."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from fastapi import Request

from orchestrator.api.auth import KeyCache, Principal, authenticate, authorize
from orchestrator.api.service import ControlPlane
from orchestrator.dataplane.keys import presented_key as _presented


def plane(request: Request) -> ControlPlane:
    cp: ControlPlane = request.app.state.plane
    return cp


def presented_key(request: Request) -> str | None:
    return _presented(request.headers.get("authorization"), request.headers.get("x-api-key"))


async def principal_of(request: Request) -> Principal:
    """The caller, through the key cache the data plane shares (``app.state.key_cache``)."""
    cache: KeyCache = request.app.state.key_cache
    return await cache.check(partial(authenticate, plane(request).keys), presented_key(request))


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

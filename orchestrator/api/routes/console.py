"""The web console's door: its page and files at ``/console``, its session at
``/console/session``, and the API reference (``/docs``, ``/redoc``) from local files.

The pages call the same REST API as the client (``/api/v1/...``), authenticated by the
session cookie (``orchestrator.console.sessions``; ``deps.principal_of`` opens it). Nothing a
page loads comes from another address: the console's files and Swagger UI's and ReDoc's ship
in Python packages (``orchestrator/console/static``, ``fastapi_offline``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from orchestrator.api.auth import authenticate
from orchestrator.api.deps import plane
from orchestrator.api.routes.accounts import caller_document
from orchestrator.console import STATIC_DIR
from orchestrator.console.sessions import (
    COOKIE,
    CSRF_HEADER,
    Session,
    Sessions,
    cookie_value,
    load_or_create_secret,
)
from orchestrator.errors import AuthenticationError
from orchestrator.settings import Settings

DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"
DOCS_STATIC = "/docs-static"
CONSOLE_STATIC = "/console/static"

router = APIRouter(tags=["Console"], include_in_schema=False)


class LoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ApiKey: str = Field(min_length=1, max_length=512)


def make_sessions(settings: Settings) -> Sessions:
    secret = load_or_create_secret(settings.console_secret_path)
    return Sessions(secret, settings.console.session_seconds)


def _sessions(request: Request) -> Sessions:
    sessions: Sessions = request.app.state.console_sessions
    return sessions


def _answer(request: Request, session: Session, principal: Any) -> dict[str, Any]:
    return {"CsrfToken": session.csrf, "Caller": caller_document(plane(request), principal)}


def _current(request: Request) -> Session:
    cookie = cookie_value(request.headers.get("cookie"))
    if cookie is None:
        raise AuthenticationError(
            "not logged in: POST /console/session with an API key", field="orch_session"
        )
    return _sessions(request).open(cookie)


@router.post("/console/session")
async def log_in(body: LoginRequest, request: Request) -> Response:
    """Log in with an API key: a session cookie (HttpOnly) and the CSRF token for changes."""
    cp = plane(request)
    principal = authenticate(cp.keys, body.ApiKey)
    value, session = _sessions(request).open_new(body.ApiKey)
    response = JSONResponse(_answer(request, session, principal))
    # No Max-Age: the browser keeps the cookie until it closes, so that an expired session
    # is answered as one (SessionExpired) and not as a caller without a key.
    response.set_cookie(
        COOKIE,
        value,
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


@router.get("/console/session")
async def current_session(request: Request) -> dict[str, Any]:
    """The session of the cookie (its CSRF token and caller); 401 when there is none."""
    session = _current(request)
    principal = authenticate(plane(request).keys, session.key)
    return _answer(request, session, principal)


@router.delete("/console/session", status_code=204)
async def log_out(request: Request) -> Response:
    """End the session: its cookie stops working here at once, and is cleared."""
    session = _current(request)
    Sessions.check_csrf(session, "DELETE", request.headers.get(CSRF_HEADER))
    _sessions(request).end(session)
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/console")
async def console_redirect() -> Response:
    return RedirectResponse("/console/", status_code=307)


@router.get("/console/")
async def console_page() -> Response:
    return FileResponse(
        STATIC_DIR / "index.html",
        headers={"Cache-Control": "no-cache", "Content-Security-Policy": _CSP},
    )


# Only this server: no page of the console may load or call anything from elsewhere.
_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; "
    "form-action 'self'"
)


# The reference pages: their inline bootstrap scripts, and only this server else. ReDoc's
# sidebar links an image on its vendor's CDN; this keeps the browser from asking for it.
_DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'"
)


def _local_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = _DOCS_CSP
    return page


def install(app: FastAPI, settings: Settings) -> None:
    """The console (when enabled) and the API reference pages, on ``app`` (built with
    ``docs_url=None, redoc_url=None``)."""
    app.mount(DOCS_STATIC, StaticFiles(directory=DOCS_ASSETS), name="docs-static")
    title = f"{app.title} API"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return _local_only(
            get_swagger_ui_html(
                openapi_url="/openapi.json",
                title=title,
                oauth2_redirect_url="/docs/oauth2-redirect",
                swagger_js_url=f"{DOCS_STATIC}/swagger-ui-bundle.js",
                swagger_css_url=f"{DOCS_STATIC}/swagger-ui.css",
                swagger_favicon_url=f"{DOCS_STATIC}/favicon.png",
            )
        )

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def swagger_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return _local_only(
            get_redoc_html(
                openapi_url="/openapi.json",
                title=title,
                redoc_js_url=f"{DOCS_STATIC}/redoc.standalone.js",
                redoc_favicon_url=f"{DOCS_STATIC}/favicon.png",
                with_google_fonts=False,
            )
        )

    if not settings.console.enabled:
        return
    app.state.console_sessions = make_sessions(settings)
    app.include_router(router)
    app.mount(CONSOLE_STATIC, StaticFiles(directory=STATIC_DIR), name="console-static")

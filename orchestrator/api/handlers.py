"""The one place errors become HTTP responses: ``{"code", "message", "field"}`` + status."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from orchestrator.errors import OrchestratorError, ValidationError, http_answer
from orchestrator.resources.validation import field_path, named_field

log = logging.getLogger("orchestrator.api")
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def render(error: OrchestratorError) -> Response:
    status, headers, body = http_answer(error)
    return Response(body, status_code=status, headers=dict(headers))


def allowed_methods(request: Request) -> list[str]:
    """Every method some route serves at the request's path: a 405's ``Allow`` (RFC 9110).
    Starlette's own names only the first route that matched the path, not its siblings
    (``GET`` and ``DELETE`` of one resource are two routes), and is lost in rendering."""
    allowed: list[str] = []
    for method in _METHODS:
        probe = {**request.scope, "method": method}
        if any(route.matches(probe)[0] == Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


def install(app: FastAPI) -> None:
    @app.exception_handler(OrchestratorError)
    async def _ours(_request: Request, exc: OrchestratorError) -> Response:
        return render(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> Response:
        parts: list[str] = []
        first: str | None = None
        for err in exc.errors():
            loc = [p for p in err.get("loc", ()) if p not in ("body",)]
            where = loc[0] if loc and loc[0] in ("query", "path", "header") else None
            kind = err.get("type", "")
            path = field_path(loc[1:] if where else loc) or "(body)"
            if kind == "json_invalid":
                path = "(body)"  # its loc holds a character offset, not a field
            first = first or path
            if path == "(body)" and kind in {"model_attributes_type", "dict_type"}:
                msg = "the body must be a JSON object sent with Content-Type: application/json"
            elif kind == "json_invalid":
                msg = f"the body is not valid JSON: {err.get('ctx', {}).get('error', '')}"
            elif kind == "extra_forbidden":
                msg = "unknown field; check its spelling against the API reference"
            elif kind == "missing":
                msg = "required field is missing"
            else:
                msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
                if kind == "literal_error" and err.get("ctx", {}).get("expected"):
                    msg = f"must be one of {err['ctx']['expected']}"
                got = err.get("input")
                if isinstance(got, str | int | float | bool) and kind != "json_invalid":
                    msg += f" (got {got!r})"
            if path == "(body)":
                path, msg = named_field(msg) or (path, msg)
                first = path if first == "(body)" else first
            parts.append(f"{path}: {msg}")
        return render(ValidationError("; ".join(parts), field=first))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "NotFound", 405: "MethodNotAllowed"}.get(exc.status_code, "HttpError")
        headers = dict(exc.headers or {})
        message = str(exc.detail)
        if exc.status_code == 405:
            allow = allowed_methods(request)
            headers["Allow"] = ", ".join(allow)
            message = f"{request.method} is not allowed here; use {', '.join(allow)}"
        return JSONResponse(
            {"code": code, "message": message}, status_code=exc.status_code, headers=headers
        )

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return JSONResponse(
            {"code": "InternalError", "message": f"internal error: {type(exc).__name__}"},
            status_code=500,
        )

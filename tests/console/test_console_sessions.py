"""The console's sessions over HTTP: login, the cookie on the REST API, CSRF, expiry, logout,
a revoked key; and the API reference pages loading only local files."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager

from orchestrator.api.app import build_control_plane, create_app
from orchestrator.api.auth import new_api_key
from orchestrator.backends.fake import FakeBackend
from orchestrator.console.sessions import (
    COOKIE,
    Sessions,
    cookie_value,
    load_or_create_secret,
    session_key_of,
)
from orchestrator.errors import InvalidCsrfTokenError, SessionExpiredError, ValidationError
from orchestrator.settings import ConsoleSettings, Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _app(tmp_path: Path, **console: Any) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    settings = Settings(
        home=tmp_path / "home",
        config_dir=tmp_path / "config",
        backend="fake",
        console=ConsoleSettings(**console),
    )
    plane = build_control_plane(settings, backend=FakeBackend())
    key = new_api_key(plane.store, name="t", role="admin", now=datetime.now(tz=UTC))
    app = create_app(plane, run_controller=False)
    async with (
        LifespanManager(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://orch") as c,
    ):
        yield c, key
    plane.store.close()


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    async for pair in _app(tmp_path):
        yield pair


async def _login(c: httpx.AsyncClient, key: str) -> str:
    r = await c.post("/console/session", json={"ApiKey": key})
    assert r.status_code == 200, r.text
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert r.json()["Caller"]["UserName"]
    return str(r.json()["CsrfToken"])


async def test_login_then_the_cookie_opens_the_api_and_changes_need_the_csrf_token(
    api: tuple[httpx.AsyncClient, str],
) -> None:
    c, key = api
    assert (await c.get("/api/v1/training-jobs")).status_code == 401  # no key, no cookie
    csrf = await _login(c, key)
    r = await c.get("/api/v1/training-jobs")
    assert r.status_code == 200, r.text
    body = {"ModelName": "m", "PrimaryContainer": {"Image": "x"}, "ExecutionRoleArn": "r"}
    r = await c.post("/api/v1/models", json=body)
    assert r.status_code == 403 and r.json()["code"] == "InvalidCsrfToken"
    assert r.json()["field"] == "X-CSRF-Token"
    r = await c.post("/api/v1/models", json=body, headers={"X-CSRF-Token": "wrong"})
    assert r.json()["code"] == "InvalidCsrfToken"
    r = await c.post("/api/v1/models", json=body, headers={"X-CSRF-Token": csrf})
    assert r.status_code in (200, 201), r.text
    # The session answers who it is, with the same token
    r = await c.get("/console/session")
    assert r.status_code == 200 and r.json()["CsrfToken"] == csrf


async def test_a_bad_key_is_refused_and_sets_no_cookie(api: tuple[httpx.AsyncClient, str]) -> None:
    c, _ = api
    r = await c.post("/console/session", json={"ApiKey": "orch_nope"})
    assert r.status_code == 401 and "set-cookie" not in r.headers
    r = await c.post("/console/session", json={"ApiKey": ""})
    assert r.status_code == 400 and r.json()["field"] == "ApiKey"
    r = await c.post("/console/session", json={"Key": "x"})
    assert r.status_code == 400
    assert (await c.get("/console/session")).status_code == 401


async def test_logout_ends_the_session_even_for_a_copy_of_the_cookie(
    api: tuple[httpx.AsyncClient, str],
) -> None:
    c, key = api
    csrf = await _login(c, key)
    copied = c.cookies[COOKIE]
    assert (await c.delete("/console/session")).json()["code"] == "InvalidCsrfToken"
    r = await c.delete("/console/session", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 204
    assert COOKIE not in c.cookies  # cleared
    r = await c.get("/api/v1/training-jobs", headers={"Cookie": f"{COOKIE}={copied}"})
    assert r.status_code == 401 and r.json()["code"] == "SessionExpired"


async def test_a_revoked_key_ends_its_sessions(api: tuple[httpx.AsyncClient, str]) -> None:
    c, key = api
    admin = {"Authorization": f"Bearer {key}"}
    r = await c.post("/api/v1/api-keys", json={"Name": "person", "Role": "admin"}, headers=admin)
    assert r.status_code == 201, r.text
    other, other_id = r.json()["ApiKey"], r.json()["KeyId"]
    await _login(c, other)
    assert (await c.get("/api/v1/training-jobs")).status_code == 200
    r = await c.delete(f"/api/v1/api-keys/{other_id}", headers=admin)
    assert r.status_code in (200, 204), r.text
    assert (await c.get("/api/v1/training-jobs")).status_code == 401


async def test_an_expired_session_is_refused(tmp_path: Path) -> None:
    async for c, key in _app(tmp_path, session_seconds=1):
        await _login(c, key)
        cookie = c.cookies[COOKIE]
        sessions: Sessions = Sessions(
            load_or_create_secret(tmp_path / "config" / "console-secret"), 1,
            now=lambda: datetime.now(tz=UTC).timestamp() + 5,
        )  # fmt: skip
        with pytest.raises(SessionExpiredError):
            sessions.open(cookie)
        # a forged or damaged cookie is refused the same way
        r = await c.get("/api/v1/training-jobs", headers={"Cookie": f"{COOKIE}=x{cookie}"})
        assert r.status_code == 401 and r.json()["code"] == "SessionExpired"


def test_sessions_expire_and_end(tmp_path: Path) -> None:
    clock = [1000.0]
    secret = load_or_create_secret(tmp_path / "s")
    assert load_or_create_secret(tmp_path / "s") == secret  # kept
    assert (tmp_path / "s").stat().st_mode & 0o777 == 0o600
    sessions = Sessions(secret, 60, now=lambda: clock[0])
    value, session = sessions.open_new("orch_key")
    assert sessions.open(value) == session and "orch_key" not in value
    clock[0] += 61
    with pytest.raises(SessionExpiredError):
        sessions.open(value)
    clock[0] -= 61
    sessions.end(session)
    with pytest.raises(SessionExpiredError):
        sessions.open(value)
    other = Sessions(load_or_create_secret(tmp_path / "t"), 60, now=lambda: clock[0])
    with pytest.raises(SessionExpiredError):
        other.open(sessions.open_new("k")[0])  # another server's key


def test_a_malformed_secret_file_names_the_setting(tmp_path: Path) -> None:
    (tmp_path / "s").write_text("not a key")
    with pytest.raises(ValidationError) as e:
        load_or_create_secret(tmp_path / "s")
    assert e.value.field == "ORCH_CONSOLE__SECRET_FILE"


def test_cookie_value_parsing() -> None:
    assert cookie_value(None) is None
    assert cookie_value("a=1; orch_session=abc; b=2") == "abc"
    assert cookie_value("orch_session_x=1") is None


async def test_reference_pages_and_the_console_load_only_local_files(
    api: tuple[httpx.AsyncClient, str],
) -> None:
    c, _ = api
    for page in ("/docs", "/redoc"):
        r = await c.get(page)
        assert r.status_code == 200
        assert "img-src 'self' data:" in r.headers["content-security-policy"]
        urls = re.findall(r"""(?:src|href)=["']([^"']+)""", r.text)
        assert urls and all(u.startswith("/") for u in urls), urls
        for u in urls:
            assert (await c.get(u)).status_code == 200, u
    r = await c.get("/console/", follow_redirects=True)
    assert r.status_code == 200 and "default-src 'self'" in r.headers["content-security-policy"]


async def test_the_console_can_be_turned_off(tmp_path: Path) -> None:
    async for c, key in _app(tmp_path, enabled=False):
        assert (await c.get("/console/")).status_code == 404
        r = await c.post("/console/session", json={"ApiKey": key})
        assert r.status_code in (404, 405)
        assert (await c.get("/docs")).status_code == 200


def test_the_data_planes_session_key_needs_the_csrf_token(tmp_path: Path) -> None:
    sessions = Sessions(load_or_create_secret(tmp_path / "s"), 60)
    value, session = sessions.open_new("orch_key")
    header = f"other=1; {COOKIE}={value}"
    assert session_key_of(sessions, header, session.csrf) == "orch_key"
    assert session_key_of(sessions, "other=1", None) is None  # no session: no key
    with pytest.raises(InvalidCsrfTokenError):
        session_key_of(sessions, header, None)
    assert session_key_of(sessions, header, None, method="GET") == "orch_key"

"""The console's login, logout, expiry and CSRF refusal in a real browser (no training)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.console.conftest import Pages, log_in, shot, start_server, stop_server
from tests.e2e.conftest import RunningServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    # Short sessions, so that expiry can be seen.
    s = start_server(tmp_path_factory.mktemp("console-session"), ORCH_CONSOLE__SESSION_SECONDS="3")
    try:
        yield s
    finally:
        stop_server(s)


def test_a_bad_key_shows_the_error_and_no_console(pages: Pages, server: RunningServer) -> None:
    page = pages.new()
    page.goto("/console/")
    page.fill("#api-key", "not-a-key")
    page.click("#login-form button[type=submit]")
    error = page.locator("#login-error")
    error.wait_for(state="visible")
    assert error.inner_text().strip()
    assert page.locator("#top").is_hidden()
    shot(page, "login")


def test_an_expired_session_shows_the_login_page(pages: Pages, server: RunningServer) -> None:
    page = pages.new()
    log_in(page, server.key)
    page.wait_for_selector("table[data-kind=TrainingJobSummaries], #list .empty")
    time.sleep(3.5)
    page.goto("/console/?fresh=1#/models")  # a new document: it asks for its session first
    page.wait_for_selector("#login-form", timeout=30_000)
    assert page.locator("#top").is_hidden()
    # The list page polls; an expiry seen mid-page also lands on the login form.
    log_in(page, server.key)
    page.goto("/console/#/endpoints")
    page.wait_for_selector("#list")
    time.sleep(3.5)
    page.wait_for_selector("#login-form", timeout=30_000)
    assert "session" in page.locator("#login-error").inner_text().lower()


def test_a_change_without_the_csrf_header_is_refused(pages: Pages, server: RunningServer) -> None:
    page = pages.new()
    log_in(page, server.key)
    body: dict[str, Any] = {
        "ModelName": "no-csrf",
        "PrimaryContainer": {"ModelDataUrl": "s3://x/y"},
    }
    refused = page.request.post(f"{server.url}/api/v1/models", data=body)
    assert refused.status == 403
    assert refused.json()["code"] == "InvalidCsrfToken"
    # Reading needs no token.
    assert page.request.get(f"{server.url}/api/v1/models").status == 200


def test_logout_ends_the_session_on_the_server(pages: Pages, server: RunningServer) -> None:
    page = pages.new()
    log_in(page, server.key)
    cookie = next(c for c in page.context.cookies() if c["name"] == "orch_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.click("#logout")
    page.wait_for_selector("#login-form")
    old = httpx.get(
        f"{server.url}/console/session", cookies={"orch_session": cookie["value"]}, timeout=10
    )
    assert old.status_code == 401


def test_the_api_reference_pages_render_with_nothing_from_elsewhere(pages: Pages) -> None:
    """/docs (Swagger UI) and /redoc (ReDoc) draw the API from the package's own files: the
    guard fails the test on any request to another address (a CDN, fonts, a validator)."""
    page = pages.new()
    page.goto("/docs")
    page.wait_for_selector(".swagger-ui .opblock", timeout=30_000)
    assert page.locator(".swagger-ui .opblock").count() > 50
    page.goto("/redoc")
    page.wait_for_selector("redoc [role=navigation], .api-content", timeout=30_000)
    assert "Orchestrator" in page.title()

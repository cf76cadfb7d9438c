"""Browser tests of the console: a real control plane (process backend) and Debian's Chromium
driven by the ``playwright`` package (never ``playwright install``: ``.ci/chromium.sh``).

Without Chromium or playwright the tests are skipped, except under ``CI=true``, where they
fail. Every page fails its test on a request to any address but the control plane's.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import RunningServer, _kill_leftovers, server_env

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
# Screenshots go to a temporary folder, or to docs/console/ (what docs/console.md shows) with
# `make console-screenshots` (CONSOLE_SCREENSHOTS_DIR): a test run leaves the checkout alone.
DOCS_SHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
SHOTS = Path(
    os.environ.get("CONSOLE_SCREENSHOTS_DIR")
    or Path(tempfile.gettempdir()) / f"orchestrator-console-shots-{os.getpid()}"
)


def _need_browser() -> None:
    missing = []
    if importlib.util.find_spec("playwright") is None:
        missing.append("the playwright package (pip install playwright==1.65.2)")
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        missing.append("chromium (apt-get install chromium; .ci/chromium.sh)")
    if missing:
        message = "console browser tests need " + " and ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    _need_browser()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


def start_server(root: Path, **extra: str) -> RunningServer:
    root.mkdir(parents=True, exist_ok=True)
    s = RunningServer(root=root, env=server_env(root, **extra))
    s.start()
    return s


def stop_server(s: RunningServer) -> None:
    s.stop()
    _kill_leftovers(s.root / "home")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    s = start_server(tmp_path_factory.mktemp("console"))
    try:
        yield s
    finally:
        stop_server(s)


class Pages:
    """Opens pages on one server; each refuses (and records) a request to anywhere else."""

    def __init__(self, browser: Any, server: RunningServer) -> None:
        self.browser = browser
        self.server = server
        self.foreign: list[str] = []
        self.errors: list[str] = []
        self.contexts: list[Any] = []

    def new(self, viewport: dict[str, int] = DESKTOP) -> Any:
        ctx = self.browser.new_context(viewport=viewport, base_url=self.server.url)
        origin = self.server.url.rstrip("/")

        def guard(route: Any) -> None:
            url = route.request.url
            if url == origin or url.startswith(origin + "/"):
                route.continue_()
            else:
                self.foreign.append(url)
                route.abort()

        ctx.route("**/*", guard)
        self.contexts.append(ctx)
        page = ctx.new_page()
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.set_default_timeout(15_000)
        return page

    def close(self) -> None:
        for ctx in self.contexts:
            ctx.close()
        assert not self.foreign, f"the console asked other addresses: {self.foreign}"
        assert not self.errors, f"the page threw: {self.errors}"


@pytest.fixture
def pages(browser: Any, server: RunningServer) -> Iterator[Pages]:
    p = Pages(browser, server)
    yield p
    p.close()


def log_in(page: Any, key: str, where: str = "/console/") -> None:
    page.goto(where)
    page.fill("#api-key", key)
    page.click("#login-form button[type=submit]")
    page.wait_for_selector("#top:not([hidden])")


def shot(page: Any, name: str, at: str | None = None) -> None:
    """A small PNG of the viewport for docs/console.md: the top of the page, or ``at``."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    if at is None:
        page.evaluate("window.scrollTo(0, 0)")
    else:
        page.locator(at).first.scroll_into_view_if_needed()
    page.screenshot(path=str(SHOTS / f"{name}.png"), type="png")


def expect(*args: Any, **kwargs: Any) -> Any:
    """playwright's ``expect``, imported when first used (the module imports without it)."""
    from playwright.sync_api import expect as _expect

    return _expect(*args, **kwargs)

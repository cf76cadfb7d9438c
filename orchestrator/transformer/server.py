"""The model server seam of an instance: the runner's view of whatever serves the model.

Each backend runs the job's Model its own way (a child process, a Docker container, a
Kubernetes sidecar); the runner needs only its base URL, a way to start it, to wait for
``GET /ping`` and to stop it, and to know when it died and why. ``ExternalServer`` is a server
someone else runs (the sidecar at ``http://127.0.0.1:8080``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import httpx

from orchestrator.errors import UnavailableError

PING_INTERVAL_SECONDS = 0.1
PING_TIMEOUT_SECONDS = 2.0


@runtime_checkable
class ModelServer(Protocol):
    """A model server speaking the SageMaker container contract at ``url``."""

    url: str  # the base URL, e.g. http://127.0.0.1:8080

    def start(self) -> None: ...

    def wait_ready(self, timeout: float) -> None:
        """Return once ``GET /ping`` answers 200; raise ``UnavailableError`` (with the
        server's last log lines when it exited) otherwise."""
        ...

    def died(self) -> str | None:
        """None while it runs (or when that cannot be told); else why it ended."""
        ...

    def stop(self) -> None: ...


def wait_for_ping(url: str, timeout: float, died: Callable[[], str | None]) -> None:
    """Poll ``GET {url}/ping`` until it answers 200, the server dies or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    with httpx.Client(timeout=PING_TIMEOUT_SECONDS, trust_env=False) as http:
        while True:
            why = died()
            if why is not None:
                raise UnavailableError(f"the model server exited before it was ready: {why}")
            try:
                response = http.get(f"{url}/ping")
            except httpx.HTTPError as e:
                last = f"{type(e).__name__}: {e}"
            else:
                if response.status_code == 200:
                    return
                last = f"GET /ping answered {response.status_code}"
            if time.monotonic() >= deadline:
                raise UnavailableError(
                    f"the model server at {url} was not ready within {timeout:g} s ({last}); "
                    "raise ORCH_TRANSFORM__STARTUP_TIMEOUT_SECONDS if the model loads slowly"
                )
            time.sleep(PING_INTERVAL_SECONDS)


class ExternalServer:
    """A model server run by someone else (a Kubernetes sidecar): started and stopped there."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def start(self) -> None:
        return None

    def wait_ready(self, timeout: float) -> None:
        wait_for_ping(self.url, timeout, self.died)

    def died(self) -> str | None:
        return None

    def stop(self) -> None:
        return None

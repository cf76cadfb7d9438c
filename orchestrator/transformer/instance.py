"""The entry point of one transform instance, shared by every backend.

``main_with`` turns SIGTERM into a stop, starts the model server, waits for its ``/ping``,
scores the instance's ranges (``driver.run_instance``), writes the result record (a crash of
the runner itself is recorded too, as an ``InternalServerError``), stops the server and
returns the exit code: 0 completed, 1 failed, 143 stopped. Each backend wraps it in a thin
module that builds the config, the object store and its kind of ``ModelServer``.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import traceback
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

from orchestrator.errors import OrchestratorError, ValidationError
from orchestrator.objects import ObjectStore
from orchestrator.resources.failures import FailureReason, algorithm_error, internal_error
from orchestrator.settings import TransformSettings
from orchestrator.transformer.driver import InstanceConfig, log, run_instance
from orchestrator.transformer.scratch import InstanceResult, TransformScratch
from orchestrator.transformer.server import ModelServer

CONFIG_FILE = "instance.json"
EXIT_CODES = {"completed": 0, "failed": 1, "stopped": 143}


def read_config(path: Path) -> InstanceConfig:
    """The instance's ``instance.json``; ``ValidationError`` naming the file otherwise."""
    try:
        return InstanceConfig.model_validate_json(path.read_bytes())
    except (OSError, ValueError) as e:
        raise ValidationError(
            f"cannot read the instance config {path}: {e}", field=str(path)
        ) from e


def main_with(
    config: InstanceConfig,
    store: ObjectStore,
    server: ModelServer,
    settings: TransformSettings,
) -> int:
    """Run one instance to its end (see the module docstring); the process's exit code."""
    stop = threading.Event()
    scratch = TransformScratch(store, config.Name)
    with _stop_on_sigterm(stop):
        try:
            result = _run(config, store, server, settings, stop)
        finally:
            server.stop()
    try:
        scratch.write_result(result)
    except (OrchestratorError, OSError) as e:
        log(f"cannot write the result record: {e}")
        return 1
    log(f"instance {config.Instance} {result.Outcome}")
    return EXIT_CODES[result.Outcome]


def _run(
    config: InstanceConfig,
    store: ObjectStore,
    server: ModelServer,
    settings: TransformSettings,
    stop: threading.Event,
) -> InstanceResult:
    def ended(outcome: str, reason: FailureReason | None = None) -> InstanceResult:
        return InstanceResult.model_validate(
            {
                "Instance": config.Instance,
                "Attempt": config.Attempt,
                "Outcome": outcome,
                "Failure": reason,
            }
        )

    try:
        server.start()
        server.wait_ready(settings.startup_timeout_seconds)
    except Exception as e:  # the model's server could not start: the model's fault
        if stop.is_set():
            return ended("stopped")
        message = e.message if isinstance(e, OrchestratorError) else f"{type(e).__name__}: {e}"
        return ended("failed", algorithm_error(f"the model server did not start: {message}"))
    if stop.is_set():
        return ended("stopped")
    try:
        return run_instance(store, config, server, settings, stop)
    except Exception as e:
        log(traceback.format_exc().rstrip())
        message = e.message if isinstance(e, OrchestratorError) else f"{type(e).__name__}: {e}"
        return ended("failed", internal_error(f"the transform runner failed: {message}"))


@contextlib.contextmanager
def _stop_on_sigterm(stop: threading.Event) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)

"""Backends: where work runs. A small protocol, the process backend, and a fake for tests."""

from orchestrator.backends.base import Backend, EndpointBackend, TrainingBackend

__all__ = ["Backend", "EndpointBackend", "TrainingBackend"]

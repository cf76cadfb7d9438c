"""The local process backend: the embedded default (no Docker, no cluster).

Each training-job attempt and each endpoint replica is a child process in a session of its
own, in its own ``/opt/ml``-style root; it outlives a control plane that dies and is found
again by pid and start time when the control plane comes back.
"""

from __future__ import annotations

from orchestrator.backends.process.jobs import ProcessJobs
from orchestrator.backends.process.replicas import ProcessReplicas
from orchestrator.settings import Settings


class ProcessBackend(ProcessJobs, ProcessReplicas):
    name = "process"
    schedules_gpus = False

    def __init__(self, settings: Settings) -> None:
        ProcessJobs.__init__(self, settings)
        ProcessReplicas.__init__(self, settings)


__all__ = ["ProcessBackend"]

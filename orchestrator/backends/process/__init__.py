"""The local process backend: the embedded default (no Docker, no cluster).

Each training-job attempt, each endpoint replica and each transform instance attempt is a child
process in a session of its own, in its own ``/opt/ml``-style root; it outlives a control plane
that dies and is found again by pid and start time when the control plane comes back.

No isolation: the user's code (a training script, a model server's handlers) runs as the
server's own OS user. Its environment is scrubbed (no ``ORCH_*`` setting, no AWS credential
variable of the server's: ``training.contract.HOST_SECRET_ENV``) and a training job's gets its
own scoped credential (``api.jobcreds``), but the code can still read whatever that user can:
the keyring, the credentials file, the state database, other jobs' directories. Use it for
one user or trusted code; the Docker and Kubernetes backends isolate the user's code
(``controller.plan.support.ISOLATION``).
"""

from __future__ import annotations

from orchestrator.backends.process.jobs import ProcessJobs
from orchestrator.backends.process.replicas import ProcessReplicas
from orchestrator.backends.process.transforms import ProcessTransforms
from orchestrator.settings import Settings


class ProcessBackend(ProcessJobs, ProcessReplicas, ProcessTransforms):
    name = "process"
    schedules_gpus = False

    def __init__(self, settings: Settings) -> None:
        ProcessJobs.__init__(self, settings)
        ProcessReplicas.__init__(self, settings)
        ProcessTransforms.__init__(self, settings)


__all__ = ["ProcessBackend"]

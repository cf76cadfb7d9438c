"""The Docker backend: the same job and endpoint specs as real containers on one host.

Training-job attempts keep the process backend's host-side supervisor (download, upload and
the progress/result files that make a restart safe) and run the user's code in containers
(``supervisor.py``, ``jobs.py``); endpoint replicas are containers of the serving image
(``replicas.py``, ``replica_launch.py``); transform instances keep the process backend's
host-side runner, with the model server as a container (``transforms.py``,
``transform_main.py``). Every container is hardened and labelled the same
way (``engine.py``). Selected with ``orch server --backend docker`` (``ORCH_BACKEND=docker``).
"""

from __future__ import annotations

from orchestrator.backends.docker.engine import connect
from orchestrator.backends.docker.jobs import DockerJobs
from orchestrator.backends.docker.replicas import DockerReplicas
from orchestrator.backends.docker.transforms import DockerTransforms
from orchestrator.settings import Settings


class DockerBackend(DockerJobs, DockerReplicas, DockerTransforms):
    name = "docker"
    schedules_gpus = False

    def __init__(self, settings: Settings) -> None:
        client = connect()
        DockerJobs.__init__(self, settings, client)
        DockerReplicas.__init__(self, settings, client)
        DockerTransforms.__init__(self, settings, client)
        # Containers left by attempts whose supervisor is gone (a host reboot, a kill -9 of
        # everything) belong to nobody: remove them before the first pass.
        self.sweep_orphan_jobs()
        self.sweep_orphan_transforms()

    def close(self) -> None:
        DockerReplicas.close(self)
        self.client.close()


__all__ = ["DockerBackend"]

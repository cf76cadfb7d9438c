"""Transform jobs on Docker: the process backend's host-side runner per instance attempt, with
its model server as a container (``orchestrator.backends.docker.transform_main``).

The runner's layout, pid, exit record and job log are the process backend's, so a restarted
control plane adopts running instances without touching their containers. The model server is
a container of the model's image (or the serving image) started as endpoint replicas are
(``replica_launch``): hardened, limited as the job's instance type, its port 8080 published
on ``publish_host``, named ``orch-<job>-algo-<k+1>-<attempt>`` and labelled with the job, the
host and the attempt. What the runner's process group does not reach, this adds: a forced stop
and cleanup remove the job's containers, and a container whose runner is gone (killed) is
removed as an orphan when observed.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import docker
from docker.errors import DockerException, NotFound
from docker.models.containers import Container

from orchestrator import procs
from orchestrator.backends.docker import engine
from orchestrator.backends.process.transforms import PID_FILE, ProcessTransforms, host_of
from orchestrator.controller.plan.types import ObservedTransform, TransformLaunch
from orchestrator.errors import BackendError
from orchestrator.settings import Settings
from orchestrator.training.files import write_atomic

SPEC_FILE = "container.json"  # the model server's container, beside instance.json


def server_container_name(name: str, instance: int, attempt: int) -> str:
    return f"orch-{name}-{host_of(instance)}-{attempt}"


class DockerTransforms(ProcessTransforms):
    runner_module = "orchestrator.backends.docker.transform_main"

    def __init__(self, settings: Settings, client: docker.DockerClient) -> None:
        super().__init__(settings)
        self.client = client
        self.owner = engine.owner_of(settings.work_dir)

    def container_spec(self, launch: TransformLaunch) -> dict[str, Any]:
        """What ``replica_launch.replica_create_kwargs`` reads (its container.json)."""
        s = self.settings
        first = launch.model.serving_containers[0]
        nano, memory, _ = engine.limits(launch.spec.TransformResources.InstanceType)
        return {
            "image": first.own_image or s.docker.serving_image,
            "name": server_container_name(launch.name, launch.instance, launch.attempt),
            "endpoint": launch.name,
            "variant": "",
            "user": engine.container_user(s.docker.user),
            "publish_host": s.docker.publish_host,
            # The job's Environment reaches the model's containers, as on SageMaker.
            "environment": {**first.Environment, **launch.spec.Environment},
            "grace_seconds": s.controller.stop_grace_seconds,
            "nano_cpus": nano,
            "memory_bytes": memory,
            "labels": {
                engine.OWNER: self.owner,
                engine.KIND: engine.KIND_TRANSFORM,
                engine.RESOURCE: launch.name,
                engine.HOST: host_of(launch.instance),
                engine.ATTEMPT: str(launch.attempt),
            },
        }

    def prepare_instance(self, launch: TransformLaunch, root: Path) -> None:
        write_atomic(root / SPEC_FILE, json.dumps(self.container_spec(launch)))

    def _server_containers(self, name: str | None = None) -> list[Container]:
        try:
            return list(
                self.client.containers.list(
                    all=True,
                    ignore_removed=True,
                    filters=engine.label_filter(self.owner, engine.KIND_TRANSFORM, name),
                )
            )
        except DockerException as e:
            raise BackendError(f"Docker: listing transform containers failed: {e}") from e

    @staticmethod
    def _remove_containers(containers: list[Container]) -> None:
        for c in containers:
            with contextlib.suppress(NotFound, DockerException):
                c.remove(force=True)

    def _server_runner_alive(self, c: Container) -> bool:
        labels = c.labels
        host = labels.get(engine.HOST, "")
        instance = int(host.removeprefix("algo-")) - 1 if host.startswith("algo-") else -1
        attempt = labels.get(engine.ATTEMPT, "")
        if instance < 0 or not attempt.isdigit():
            return False
        root = self.transform_attempt_root(labels.get(engine.RESOURCE, ""), instance, int(attempt))
        pid = procs.ProcessId.from_file(root / PID_FILE)
        return pid is not None and procs.alive(pid)

    def observe_transform(self, name: str) -> ObservedTransform:
        observed = super().observe_transform(name)
        # A runner that is gone stopped its container itself, or was killed and left it.
        self._remove_containers(
            [c for c in self._server_containers(name) if not self._server_runner_alive(c)]
        )
        return observed

    def stop_transform(self, name: str, *, force: bool) -> None:
        super().stop_transform(name, force=force)
        if force:
            self._remove_containers(self._server_containers(name))

    def cleanup_transform(self, name: str) -> None:
        super().cleanup_transform(name)
        self._remove_containers(self._server_containers(name))

    def sweep_orphan_transforms(self) -> list[str]:
        """Remove model-server containers whose runner is gone (after a restart)."""
        orphans = [c for c in self._server_containers() if not self._server_runner_alive(c)]
        self._remove_containers(orphans)
        return sorted(c.name or "" for c in orphans)

"""Training jobs on Docker: the process backend's per-attempt supervisor, running the user's
code in containers (``orchestrator.backends.docker.supervisor``).

Observation reads the same pid, progress and result files as the process backend, so a
restarted control plane adopts running attempts without touching their containers. What the
process backend cannot reach, this adds: a forced stop kills the attempt's containers (the
supervisor's process group does not include them), containers whose supervisor died without a
result are removed as orphans, and cleanup removes the job's containers and networks.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import docker
from docker.errors import DockerException, NotFound
from docker.models.containers import Container

from orchestrator import procs
from orchestrator.backends.docker import engine
from orchestrator.backends.process.jobs import ProcessJobs
from orchestrator.controller.plan.types import JobLaunch, ObservedJob
from orchestrator.settings import Settings
from orchestrator.training.contract import builtin_algorithm
from orchestrator.training.files import (
    PID_FILE,
    ContainerRun,
    JobFile,
)


def job_container_run(settings: Settings, launch: JobLaunch, user: str) -> ContainerRun:
    spec = launch.spec
    algo = spec.AlgorithmSpecification
    if algo.own_image:
        image = algo.own_image
    elif builtin_algorithm(spec) is not None:
        image = settings.docker.algorithms_image
    else:
        image = settings.docker.training_image
    nano, memory, gpus = engine.limits(spec.ResourceConfig.InstanceType)
    name = f"orch-{launch.name}-{launch.attempt}"
    return ContainerRun(
        image=image,
        user=user,
        name=name,
        network=name,
        network_isolation=spec.EnableNetworkIsolation,
        instance_count=spec.ResourceConfig.InstanceCount,
        nano_cpus=nano,
        memory_bytes=memory,
        gpu_count=gpus,
        # The devices the controller allocated to this attempt, when it manages GPUs.
        gpu_device_ids=None if launch.gpus is None else [str(i) for i in launch.gpus],
        labels={
            engine.OWNER: engine.owner_of(settings.work_dir),
            engine.KIND: engine.KIND_JOB,
            engine.RESOURCE: launch.name,
            engine.ATTEMPT: str(launch.attempt),
        },
    )


class DockerJobs(ProcessJobs):
    def __init__(self, settings: Settings, client: docker.DockerClient) -> None:
        super().__init__(settings)
        self.client = client
        self.owner = engine.owner_of(settings.work_dir)

    supervisor_module = "orchestrator.backends.docker.supervisor"

    def job_file(self, launch: JobLaunch, root: Path) -> JobFile:
        job = super().job_file(launch, root)
        container = job_container_run(
            self.settings, launch, engine.container_user(self.settings.docker.user)
        )
        return job.model_copy(update={"container": container})

    def _job_containers(
        self, name: str | None = None, attempt: int | None = None
    ) -> list[Container]:
        try:
            return list(
                self.client.containers.list(
                    all=True,
                    ignore_removed=True,
                    filters=engine.label_filter(self.owner, engine.KIND_JOB, name, attempt),
                )
            )
        except DockerException:
            return []

    def _remove(self, name: str, attempt: int | None = None) -> None:
        """The job's containers and networks (of one attempt, or all)."""
        for c in self._job_containers(name, attempt):
            with contextlib.suppress(NotFound, DockerException):
                c.remove(force=True)
        try:
            networks = self.client.networks.list(
                filters=engine.label_filter(self.owner, engine.KIND_JOB, name, attempt)
            )
        except DockerException:
            networks = []
        for n in networks:
            with contextlib.suppress(NotFound, DockerException):
                n.remove()

    def observe_job(self, name: str) -> ObservedJob | None:
        observed = super().observe_job(name)
        if observed is not None and observed.state == "exited":
            # The supervisor is gone: whatever container it left is an orphan.
            self._remove(name, observed.attempt)
        return observed

    def stop_job(self, name: str, *, force: bool) -> None:
        if not force:
            super().stop_job(name, force=False)
            return
        # The grace is over: the user's containers are killed and the supervisor lives on to
        # sync the checkpoints and report; with none left running, the supervisor goes too.
        killed = False
        for c in self._job_containers(name):
            if c.status == "running":
                with contextlib.suppress(DockerException):
                    c.kill()
                    killed = True
        if not killed:
            super().stop_job(name, force=True)

    def cleanup_job(self, name: str) -> None:
        super().cleanup_job(name)
        self._remove(name)

    def sweep_orphan_jobs(self) -> list[str]:
        """Remove job containers whose attempt has no live supervisor (after a restart)."""
        removed: list[str] = []
        for c in self._job_containers():
            job = c.labels.get(engine.RESOURCE, "")
            attempt = c.labels.get(engine.ATTEMPT, "")
            root = self._job_dir(job) / f"attempt-{attempt}"
            pid = procs.ProcessId.from_file(root / PID_FILE)
            alive = pid is not None and procs.alive(pid)
            if not alive:
                try:
                    c.remove(force=True)
                    removed.append(c.name or "")
                except DockerException:
                    pass
        return removed

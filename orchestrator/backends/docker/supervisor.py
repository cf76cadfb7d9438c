"""The supervisor of one training-job attempt on Docker: the host-side steps of the process
backend's supervisor, with the Training step run in containers.

``python -m orchestrator.backends.docker.supervisor ROOT``. Downloading and uploading happen on
the host (the object store and its keys never enter a container); the attempt's ``ml/``
directory is bind-mounted at ``/opt/ml``. With ``InstanceCount`` N > 1, N containers
``algo-1`` … ``algo-N`` share a per-attempt bridge network (they resolve each other by those
names) and the one ``/opt/ml`` (each sees its own ``resourceconfig.json``, and its own share of a
channel distributed ``ShardedByS3Key``, mounted over that channel's directory); the job
completes when every host exits 0; when one fails, the others get SIGTERM (SIGKILL after
``PEER_STOP_GRACE_SECONDS``) and the attempt fails with that host's reason, naming it. The
framework variables of a distributed job (``contract.distributed_environment``) name the
hosts ``algo-K`` on that network.
Container output streams into the job log line by line (metrics parsed as on the process
backend), each line with its time and, on several hosts, its host's tag (``training.joblog``).
A SIGTERM to the supervisor is passed to the containers; the containers are removed once their
logs and exit codes are read.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.containers import Container
from docker.types import Mount

from orchestrator.backends.docker import engine
from orchestrator.backends.docker.stats import StatsProbe
from orchestrator.resources.failures import FailureReason, client_error, internal_error
from orchestrator.resources.instances import INSTANCE_TYPES
from orchestrator.resources.training import SecondaryStatus
from orchestrator.training.contract import (
    ALGORITHM_ENV,
    Host,
    MlPaths,
    Rendezvous,
    builtin_algorithm,
    host_distributed_environment,
    hosts_of,
    program_of,
    resource_config,
    script_args,
    sharded,
    user_environment,
)
from orchestrator.training.files import ContainerRun
from orchestrator.training.joblog import host_tag
from orchestrator.training.runner import PEER_STOP_GRACE_SECONDS, Supervisor, main
from orchestrator.training.transfer import TrainingFailure, algorithm_failure, unexpected

ML = Path("/opt/ml")
# Per host, beside ml/ (not visible to the user but through the mounts below): its
# resourceconfig.json and its share of each ShardedByS3Key channel (data/<channel>/).
HOSTS_DIR = "hosts"


def container_name(run: ContainerRun, host: str) -> str:
    return run.name if run.instance_count == 1 else f"{run.name}-{host}"


def create_kwargs(
    run: ContainerRun,
    *,
    host: str,
    ml_root: Path,
    entrypoint: list[str] | None,
    command: list[str],
    environment: dict[str, str],
    working_dir: str | None = None,
    host_config: Path | None = None,
    shards: dict[str, Path] | None = None,
) -> dict[str, Any]:
    """Everything ``containers.create`` gets for one host of one attempt; ``shards``: this
    host's share of each sharded channel, mounted over the channel's directory."""
    mounts = [Mount(str(ML), str(ml_root), type="bind")]
    for channel, path in sorted((shards or {}).items()):
        mounts.append(Mount(str(ML / "input" / "data" / channel), str(path), type="bind"))
    if host_config is not None:
        mounts.append(
            Mount(
                str(ML / "input" / "config" / "resourceconfig.json"),
                str(host_config),
                type="bind",
                read_only=True,
            )
        )
    kwargs: dict[str, Any] = {
        "image": run.image,
        "name": container_name(run, host),
        "command": command,
        "environment": environment,
        "labels": {**run.labels, engine.HOST: host},
        "mounts": mounts,
        "hostname": host,
        **engine.hardening(run.user, run.tmpfs_size),
        **engine.resource_kwargs(
            run.nano_cpus, run.memory_bytes, run.gpu_count, run.gpu_device_ids
        ),
    }
    if entrypoint is not None:
        kwargs["entrypoint"] = entrypoint
    if working_dir is not None:
        kwargs["working_dir"] = working_dir
    if run.network_isolation and run.instance_count == 1:
        kwargs["network_mode"] = "none"
    else:
        kwargs["network"] = run.network
    return kwargs


class DockerSupervisor(Supervisor):
    # Every container mounts the one ml/ (a host's own files are mounted over it).
    ml_per_host = False

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        if self.job.container is None:
            raise ValueError(f"{root}: job.json has no container section")
        self.run_spec: ContainerRun = self.job.container
        self._oom = False

    def container_command(self) -> tuple[list[str] | None, list[str], str | None]:
        """(entrypoint, command, working dir) in the container, after SageMaker's conventions."""
        algo = self.spec.AlgorithmSpecification
        if algo.ContainerEntrypoint:
            return list(algo.ContainerEntrypoint), list(algo.ContainerArguments or []), None
        program = program_of(self.spec)
        if program:
            self.command()  # checks the script is in the source directory
            code = ML / "code"
            return ["python"], [str(code / program), *script_args(self.spec)], str(code)
        if builtin_algorithm(self.spec) is not None:
            return ["python"], ["-m", "orchestrator.algorithms.train"], str(ML)
        if algo.own_image:
            return None, list(algo.ContainerArguments or ["train"]), None
        raise TrainingFailure(
            client_error(
                "nothing to run: set sagemaker_program, AlgorithmSpecification."
                "ContainerEntrypoint, TrainingImage or a built-in AlgorithmName"
            )
        )

    def environment(self, host: Host) -> dict[str, str]:
        # No host environment at all: the image supplies PATH and the like.
        distributed = host_distributed_environment(
            self.spec, host, Rendezvous.by_name(host.count, self.interface)
        )
        env = user_environment(
            MlPaths(ML),
            self.spec,
            {},
            host=host,
            distributed=distributed,
            credentials=self.job.credentials,
        )
        env["HOME"] = "/tmp"
        builtin = builtin_algorithm(self.spec)
        if builtin is not None:
            env[ALGORITHM_ENV] = builtin
        env.update(self.spec.Environment)
        return env

    @property
    def interface(self) -> str:
        isolated_alone = self.run_spec.network_isolation and self.run_spec.instance_count == 1
        return "lo" if isolated_alone else "eth0"

    def host_config(self, host: Host) -> Path:
        path = self.root / HOSTS_DIR / host.name / "resourceconfig.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(resource_config(self.spec, host, self.interface), indent=2))
        path.chmod(0o644)
        return path

    def shard_dir(self, host: Host, channel: str) -> Path:
        return self.root / HOSTS_DIR / host.name / "data" / channel

    def shards(self, host: Host) -> dict[str, Path]:
        """This host's share of each sharded channel (none on one host: it has them whole)."""
        if host.count == 1:
            return {}
        return {
            c.ChannelName: self.shard_dir(host, c.ChannelName)
            for c in self.spec.InputDataConfig
            if sharded(c)
        }

    def download(self) -> None:
        self.progress(SecondaryStatus.DOWNLOADING, "Downloading input data")
        self.transfer.interface = self.interface
        # Every host's share of the sharded channels, here on the host: one download step.
        self.transfer.download(hosts=hosts_of(self.spec), shard_dir=self.shard_dir)

    def make_writable(self) -> None:
        """The scratch belongs to the container's user (when we are root and it is numeric)."""
        if os.geteuid() != 0:
            return
        uid_text, _, gid_text = self.run_spec.user.partition(":")
        if not uid_text.isdigit():
            return
        uid, gid = int(uid_text), int(gid_text) if gid_text.isdigit() else int(uid_text)
        tops = [self.paths.root] + [p for h in hosts_of(self.spec) for p in self.shards(h).values()]
        for top in tops:
            for dirpath, dirnames, filenames in os.walk(top):
                os.chown(dirpath, uid, gid)
                for n in dirnames + filenames:
                    os.chown(os.path.join(dirpath, n), uid, gid, follow_symlinks=False)

    def _network(self, client: docker.DockerClient) -> None:
        run = self.run_spec
        if run.network is None or (run.network_isolation and run.instance_count == 1):
            return
        try:
            client.networks.create(
                run.network,
                driver="bridge",
                internal=run.network_isolation,
                labels=run.labels,
                check_duplicate=True,
            )
        except APIError as e:
            if e.status_code != 409:
                raise

    def _start(self, client: docker.DockerClient, kwargs: dict[str, Any]) -> Container:
        host = kwargs["hostname"]
        network = kwargs.get("network")
        if network is not None:
            kwargs["networking_config"] = {
                network: client.api.create_endpoint_config(aliases=[host])
            }
        try:
            container = client.containers.create(**kwargs)
        except ImageNotFound as e:
            raise TrainingFailure(
                client_error(
                    f"image {kwargs['image']!r} is not on this host "
                    "(build it with `make images` or docker load it)"
                )
            ) from e
        except APIError as e:
            if e.status_code != 409:
                raise
            # Our own container from this attempt (the fixed name): carry on with it.
            container = client.containers.get(kwargs["name"])
            if any(container.labels.get(k) != v for k, v in self.run_spec.labels.items()):
                raise TrainingFailure(
                    internal_error(
                        f"a container named {kwargs['name']!r} exists and is not this "
                        "attempt's (another control plane on this engine?)"
                    )
                ) from e
        if container.status == "created":
            container.start()
        return container

    def _stream(self, container: Container, prefix: str) -> None:
        pending = b""
        try:
            for chunk in container.logs(stream=True, follow=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    self.handle_line(prefix + raw.decode(errors="replace") + "\n")
        except DockerException as e:
            self.say(f"log stream of {container.name} ended: {e}")
        if pending:
            self.handle_line(prefix + pending.decode(errors="replace") + "\n")

    def train(self) -> int:
        run = self.run_spec
        entrypoint, command, workdir = self.container_command()
        self.progress(
            SecondaryStatus.TRAINING, "Training image download completed. Training in progress."
        )
        hosts = hosts_of(self.spec)
        configs = {h: self.host_config(h) for h in hosts}
        self.make_writable()
        client = docker.from_env()
        containers: list[Container] = []
        try:
            self._network(client)
            for host in hosts:
                kwargs = create_kwargs(
                    run,
                    host=host.name,
                    ml_root=self.paths.root,
                    entrypoint=entrypoint,
                    command=command,
                    environment=self.environment(host),
                    working_dir=workdir,
                    host_config=configs[host],
                    shards=self.shards(host),
                )
                containers.append(self._start(client, kwargs))
                self.usage_targets[host.name] = StatsProbe(containers[-1])
            return self._wait(containers, multi=len(hosts) > 1)
        except DockerException as e:
            raise TrainingFailure(unexpected(e, "Docker")) from e
        finally:
            for c in containers:
                try:
                    c.remove(force=True)
                except NotFound:
                    pass
                except DockerException as e:
                    self.say(f"could not remove container {c.name}: {e}")
            self._remove_network(client)
            client.close()

    def _wait(self, containers: list[Container], *, multi: bool) -> int:
        streams = {
            c.name: threading.Thread(
                target=self._stream,
                args=(c, host_tag(c.labels.get(engine.HOST, "")) if multi else ""),
                daemon=True,
            )
            for c in containers
        }
        for t in streams.values():
            t.start()
        signalled = False
        failed: Container | None = None
        kill_at: float | None = None
        while any(t.is_alive() for t in streams.values()):
            if self.stopping and not signalled:
                signalled = True
                self._signal(containers, "SIGTERM")
            if multi and failed is None and not self.stopping:
                failed = self._first_failed(containers, streams)
                if failed is not None:
                    host = failed.labels.get(engine.HOST, failed.name)
                    self.say(
                        f"{host} failed: stopping the other hosts (SIGTERM, SIGKILL after "
                        f"{PEER_STOP_GRACE_SECONDS:g} s)"
                    )
                    self._signal([c for c in containers if c is not failed], "SIGTERM")
                    kill_at = time.monotonic() + PEER_STOP_GRACE_SECONDS
            if kill_at is not None and time.monotonic() >= kill_at:
                self._signal(containers, "SIGKILL")
                kill_at = None
            for t in streams.values():
                t.join(0.2)
        codes: dict[str, int] = {}
        for c in containers:
            codes[c.name] = int(c.wait()["StatusCode"])
            c.reload()
            self._oom = self._oom or bool(c.attrs.get("State", {}).get("OOMKilled"))
        if failed is None:
            failed = next((c for c in containers if codes[c.name] != 0), None)
        if failed is None:
            return 0
        if multi:
            names = [h.name for h in self.hosts]
            self.failed_host = self.hosts[names.index(failed.labels.get(engine.HOST, ""))]
        code = codes[failed.name]
        # A container killed by a signal exits 128+n; report it as the process backend does.
        if 128 < code <= 128 + 64:
            return -(code - 128)
        return code

    @staticmethod
    def _signal(containers: list[Container], signal_name: str) -> None:
        for c in containers:
            with contextlib.suppress(APIError):  # exited already
                c.kill(signal=signal_name)

    @staticmethod
    def _first_failed(
        containers: list[Container], streams: dict[str, threading.Thread]
    ) -> Container | None:
        """A container whose log has ended (it exited) with a non-zero code, if any."""
        for c in containers:
            if streams[c.name].is_alive():
                continue
            with contextlib.suppress(DockerException):
                if int(c.wait(timeout=1)["StatusCode"]) != 0:
                    return c
        return None

    def _remove_network(self, client: docker.DockerClient) -> None:
        if self.run_spec.network is None:
            return
        try:
            client.networks.get(self.run_spec.network).remove()
        except NotFound:
            pass
        except DockerException as e:
            self.say(f"could not remove network {self.run_spec.network}: {e}")

    def out_of_memory(self, code: int) -> str | None:
        """The engine's word (``State.OOMKilled``), never a guess from the exit code."""
        if not self._oom:
            return None
        itype = INSTANCE_TYPES[self.spec.ResourceConfig.InstanceType]
        return (
            "the training container was OOM-killed (State.OOMKilled) at its memory limit "
            f"({itype.memory_mib} MiB on {itype.name})"
        )

    def failure_reason(self, code: int, out_of_memory: str | None) -> FailureReason:
        process = "the container" if code == -signal.SIGKILL else "the training process"
        host = self.failed_host
        if host is None:
            return algorithm_failure(
                code, self.paths, list(self.tail), process=process, out_of_memory=out_of_memory
            )
        tail = [line for line in self.tail if line.startswith(host_tag(host.name))]
        reason = algorithm_failure(
            code, self.paths, tail, process=f"{process} of {host.name}", out_of_memory=out_of_memory
        )
        return reason.model_copy(update={"message": f"{host.name}: {reason.message}"})


if __name__ == "__main__":
    raise SystemExit(main(supervisor_class=DockerSupervisor))

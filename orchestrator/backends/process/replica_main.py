"""Entry point of one endpoint replica on the process backend.

Fetches the model artifact (and script-mode source) of every container into the replica's
root (an inference pipeline's steps each into ``steps/<i>/``), drops the control plane's
secrets from its environment, applies the containers' Environment, then runs the inference
server under the model's name, with the first container's AdaptiveBatching and its
``ORCH_SERVING__*`` overrides. ``python -m orchestrator.backends.process.replica_main ROOT``.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import tarfile
import tempfile
from collections.abc import MutableMapping
from pathlib import Path

from orchestrator.backends.process.replica_output import MarkedOutput
from orchestrator.backends.process.replicas import REPLICA_FILE, ReplicaFile
from orchestrator.errors import OrchestratorError
from orchestrator.objects import ObjectStore, safe_extract
from orchestrator.resources.models import PROGRAM_ENV, SUBMIT_DIR_ENV, ContainerDefinition
from orchestrator.settings import ServingSettings, get_settings
from orchestrator.training.contract import HOST_SECRET_ENV


def model_environment(
    environ: MutableMapping[str, str], containers: list[ContainerDefinition]
) -> None:
    """The model server's environment, in place: the server's minus its secrets (``ORCH_*``
    and the AWS credential variables), plus the containers' Environment (one process: a
    pipeline's steps share one environment)."""
    for k in list(environ):
        if k.startswith("ORCH_") or k in HOST_SECRET_ENV:
            del environ[k]
    for container in containers:
        environ.update(container.Environment)


def _fetch(uri: str, dest: Path, store: ObjectStore, allow_file: bool) -> None:
    """``uri`` (a tar.gz, a plain file or a directory) unpacked or copied into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    if uri.startswith("file://"):
        if not allow_file:
            raise OrchestratorError(f"{uri}: file:// URIs are disabled on this server")
        src = Path(uri[len("file://") :])
        if src.is_dir():
            shutil.copytree(src, dest, dirs_exist_ok=True)
            return
        if not src.is_file():
            raise OrchestratorError(f"{uri} does not exist")
        archive = src
        if tarfile.is_tarfile(archive):
            safe_extract(archive, dest)
        else:
            shutil.copy2(archive, dest / archive.name)
        return
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        local = Path(tmp) / Path(uri).name
        store.get_file(uri, local)
        if tarfile.is_tarfile(local):
            safe_extract(local, dest)
        else:
            shutil.copy2(local, dest / local.name)


def serving_containers(root: Path, replica: ReplicaFile) -> list[ContainerDefinition]:
    """Every container the replica serves: a pipeline's steps when ``replica.json`` lists
    ``containers``, else the one ``container``."""
    return list(replica.containers) or [replica.container]


def step_dirs(root: Path, index: int, count: int) -> tuple[Path, Path]:
    """Where container ``index`` of ``count`` is fetched: ``model/`` and ``code/`` for one
    model, ``steps/<index>/model`` and ``steps/<index>/code`` for a pipeline."""
    base = root if count == 1 else root / "steps" / str(index)
    return base / "model", base / "code"


def fetch_containers(
    root: Path, replica: ReplicaFile, containers: list[ContainerDefinition]
) -> None:
    """Each container's artifact and script-mode source into its own directories."""
    store = replica.store.open()
    for index, container in enumerate(containers):
        model_dir, code_dir = step_dirs(root, index, len(containers))
        model_dir.mkdir(parents=True, exist_ok=True)
        try:
            if container.ModelDataUrl:
                _fetch(container.ModelDataUrl, model_dir, store, replica.allow_file_uris)
            submit = container.Environment.get(SUBMIT_DIR_ENV)
            if submit:
                _fetch(submit, code_dir, store, replica.allow_file_uris)
        except OrchestratorError as e:
            if len(containers) == 1:
                raise
            raise OrchestratorError(
                f"pipeline step {index} ({container.ContainerHostname or '-'}): {e.message}"
            ) from e


def script_of(
    container: ContainerDefinition, model_dir: Path, code_dir: Path, inside: Path | None = None
) -> tuple[str | None, Path | None, Path | None]:
    """(program, code dir, model code dir) for a container fetched into ``model_dir`` and
    ``code_dir``; ``inside`` (a container mount point) replaces the model dir in the result."""
    program = container.Environment.get(PROGRAM_ENV)
    if code_dir.exists():
        return program, code_dir, None
    if program is None and (model_dir / "code" / "inference.py").is_file():
        # SageMaker's convention: an artifact may carry its own code/inference.py (the
        # built-in algorithms do); it serves unless the model names another program.
        return "inference.py", None, (inside or model_dir) / "code"
    return program, None, None


def batching_of(container: ContainerDefinition) -> tuple[int, float] | None:
    """(max batch size, max delay in seconds) of a container's AdaptiveBatching, if set."""
    b = container.AdaptiveBatching
    return None if b is None else (b.MaxBatchSize, b.MaxBatchDelayMilliseconds / 1000.0)


def main(argv: list[str] | None = None) -> int:
    # The model's own prints reach the replica's log as they happen (its log stream), as in
    # SageMaker's containers (PYTHONUNBUFFERED), not when a block buffer fills.
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(line_buffering=True)
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0])
    settings = get_settings().serving  # read before the environment is scrubbed
    r = ReplicaFile.model_validate_json((root / REPLICA_FILE).read_text())
    output = MarkedOutput(Path(r.log)) if r.log else None
    try:
        return _run(root, r, settings)
    finally:
        if output is not None:
            output.close()


def _run(root: Path, r: ReplicaFile, settings: ServingSettings) -> int:
    containers = serving_containers(root, r)
    try:
        fetch_containers(root, r, containers)
    except OrchestratorError as e:
        print(f"replica {r.replica_id}: model download failed: {e.message}", file=sys.stderr)
        return 1
    try:
        settings = settings.overridden(containers[0].Environment)
    except ValueError as e:
        print(f"replica {r.replica_id}: {e}", file=sys.stderr)
        return 1
    model_environment(os.environ, containers)
    from orchestrator.serving import BatchingConfig, ModelSource, serve

    sources = []
    for index, container in enumerate(containers):
        model_dir, code_dir = step_dirs(root, index, len(containers))
        program, code, model_code = script_of(container, model_dir, code_dir)
        hostname = container.ContainerHostname or (f"step-{index}" if len(containers) > 1 else "")
        sources.append(ModelSource(model_dir, code or model_code, program, hostname))
    batch = batching_of(containers[0])
    try:
        serve(
            pipeline=sources,
            port=0,
            port_file=root / "port",
            settings=settings,
            endpoint=r.endpoint,
            variant=r.variant,
            model_name=r.model_name or "model",
            batching=BatchingConfig(*batch) if batch else None,
            grace_seconds=r.grace_seconds,
            tls_cert=Path(r.tls_cert) if r.tls_cert else None,
            tls_key=Path(r.tls_key) if r.tls_key else None,
        )
    except OrchestratorError as e:
        print(f"replica {r.replica_id}: model server failed to start: {e.message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

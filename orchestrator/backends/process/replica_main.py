"""Entry point of one endpoint replica on the process backend.

Fetches the model artifact (and script-mode source) into the replica's root, drops the
control plane's secrets from its environment, applies the container's Environment, then runs
the inference server. ``python -m orchestrator.backends.process.replica_main ROOT``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path

from orchestrator.backends.process.replicas import REPLICA_FILE, ReplicaFile
from orchestrator.errors import OrchestratorError
from orchestrator.objects import ObjectStore, safe_extract
from orchestrator.resources.models import PROGRAM_ENV, SUBMIT_DIR_ENV
from orchestrator.settings import get_settings

_SECRET_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


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


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0])
    settings = get_settings().serving  # read before the environment is scrubbed
    r = ReplicaFile.model_validate_json((root / REPLICA_FILE).read_text())
    container = r.container
    model_dir, code_dir = root / "model", root / "code"
    model_dir.mkdir(exist_ok=True)
    try:
        store = r.store.open()
        if container.ModelDataUrl:
            _fetch(container.ModelDataUrl, model_dir, store, r.allow_file_uris)
        submit = container.Environment.get(SUBMIT_DIR_ENV)
        if submit:
            _fetch(submit, code_dir, store, r.allow_file_uris)
    except OrchestratorError as e:
        print(f"replica {r.replica_id}: model download failed: {e.message}", file=sys.stderr)
        return 1
    for k in list(os.environ):
        if k.startswith("ORCH_") or k in _SECRET_ENV:
            del os.environ[k]
    os.environ.update(container.Environment)
    program = container.Environment.get(PROGRAM_ENV)
    serving_code: Path | None = code_dir if code_dir.exists() else None
    if program is None and (model_dir / "code" / "inference.py").is_file():
        # SageMaker's convention: an artifact may carry its own code/inference.py (the
        # built-in algorithms do); it serves unless the model names another program.
        program, serving_code = "inference.py", model_dir / "code"
    from orchestrator.serving import serve

    serve(
        model_dir,
        code_dir=serving_code,
        program=program,
        port=0,
        port_file=root / "port",
        settings=settings,
        endpoint=r.endpoint,
        variant=r.variant,
        grace_seconds=r.grace_seconds,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Start one endpoint replica's container: ``python -m orchestrator.backends.docker.replica_launch
ROOT``.

Runs on the host (the object store and its keys stay there): fetches and unpacks the model
artifact (and script-mode source) into the replica's root, then creates and starts the
container with a fixed name (a second launch of the same replica fails at create) and exits.
The container mounts both read-only and runs the inference server on port 8080.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, DockerException
from docker.types import Healthcheck, Mount

from orchestrator.backends.docker import engine
from orchestrator.backends.process.replica_main import _fetch
from orchestrator.backends.process.replicas import REPLICA_FILE, ReplicaFile
from orchestrator.errors import OrchestratorError
from orchestrator.resources.models import PROGRAM_ENV, SUBMIT_DIR_ENV
from orchestrator.training.files import read_json

SPEC_FILE = "container.json"  # ReplicaContainer, beside replica.json
PORT = 8080
_PING = (
    "import sys, urllib.request; "
    f"sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:{PORT}/ping', timeout=2).status"
    " == 200 else 1)"
)


def replica_create_kwargs(doc: dict[str, Any], root: Path) -> dict[str, Any]:
    """``containers.create`` arguments for the replica described by its container.json."""
    env: dict[str, str] = dict(doc["environment"])
    program = env.get(PROGRAM_ENV)
    mounts = [Mount("/opt/ml/model", str(root / "model"), type="bind", read_only=True)]
    command = ["python", "-m", "orchestrator.serving", "--model-dir", "/opt/ml/model"]
    if (root / "code").is_dir():
        mounts.append(Mount("/opt/ml/code", str(root / "code"), type="bind", read_only=True))
        command += ["--code-dir", "/opt/ml/code"]
    elif program is None and (root / "model" / "code" / "inference.py").is_file():
        # SageMaker's convention: an artifact may carry its own code/inference.py.
        program = "inference.py"
        command += ["--code-dir", "/opt/ml/model/code"]
    if program:
        command += ["--program", program]
    command += [
        "--host",
        "0.0.0.0",
        "--port",
        str(PORT),
        "--endpoint",
        doc["labels"][engine.RESOURCE],
        "--variant",
        doc["labels"]["orchestrator.variant"],
        "--grace-seconds",
        str(doc["grace_seconds"]),
    ]
    env.setdefault("HOME", "/tmp")
    return {
        "image": doc["image"],
        "name": doc["name"],
        "entrypoint": [],
        "command": command,
        "environment": env,
        "labels": doc["labels"],
        "mounts": mounts,
        "ports": {f"{PORT}/tcp": (doc["publish_host"], None)},
        "healthcheck": Healthcheck(
            test=["CMD", "python", "-c", _PING],
            interval=2_000_000_000,
            timeout=3_000_000_000,
            retries=3,
            start_period=2_000_000_000,
        ),
        **engine.hardening(doc["user"]),
        **engine.resource_kwargs(doc["nano_cpus"], doc["memory_bytes"], 0, None),
    }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0])
    r = ReplicaFile.model_validate_json((root / REPLICA_FILE).read_text())
    doc = read_json(root / SPEC_FILE)
    if doc is None:
        print(f"replica {r.replica_id}: {SPEC_FILE} missing", file=sys.stderr)
        return 1
    model_dir = root / "model"
    model_dir.mkdir(exist_ok=True)
    try:
        store = r.store.open()
        if r.container.ModelDataUrl:
            _fetch(r.container.ModelDataUrl, model_dir, store, r.allow_file_uris)
        submit = r.container.Environment.get(SUBMIT_DIR_ENV)
        if submit:
            _fetch(submit, root / "code", store, r.allow_file_uris)
    except OrchestratorError as e:
        print(f"replica {r.replica_id}: model download failed: {e.message}", file=sys.stderr)
        return 1
    for d in (model_dir, root / "code"):
        if d.exists():
            d.chmod(0o755)  # readable by the container's user; never writable
    try:
        client = docker.from_env()
        container = client.containers.create(**replica_create_kwargs(doc, root))
        container.start()
    except APIError as e:
        if e.status_code == 409:
            return 0  # started already by an earlier launch of this replica
        print(f"replica {r.replica_id}: container failed to start: {e}", file=sys.stderr)
        return 1
    except DockerException as e:
        print(f"replica {r.replica_id}: container failed to start: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

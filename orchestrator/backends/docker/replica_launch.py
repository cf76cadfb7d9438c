"""Start one endpoint replica's container: ``python -m orchestrator.backends.docker.replica_launch
ROOT``.

Runs on the host (the object store and its keys stay there): fetches and unpacks the model
artifact (and script-mode source) into the replica's root, then creates and starts the
container with a fixed name (a second launch of the same replica fails at create) and exits.
The container mounts both read-only and runs the inference server on port 8080, under the
model's name and with its AdaptiveBatching. An inference pipeline runs in one container, so
its steps must name the same image (or none); a pipeline of different images is refused with
an error saying so.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import docker
from docker.errors import APIError, DockerException
from docker.types import Healthcheck, Mount

from orchestrator.backends.docker import engine
from orchestrator.backends.process.replica_main import (
    batching_of,
    fetch_containers,
    script_of,
    serving_containers,
    step_dirs,
)
from orchestrator.backends.process.replicas import REPLICA_FILE, ReplicaFile
from orchestrator.errors import OrchestratorError
from orchestrator.resources.models import ContainerDefinition
from orchestrator.training.files import read_json

SPEC_FILE = "container.json"  # ReplicaContainer, beside replica.json
PIPELINE_FILE = "pipeline.json"  # the steps of an inference pipeline, as the server reads them
PIPELINE_MOUNT = "/opt/ml/pipeline.json"
PORT = 8080
TLS_DIR = "tls"  # under the replica's root; mounted read-only at TLS_MOUNT
TLS_MOUNT = "/opt/ml/tls"
_PING = (
    "import sys, urllib.request; "
    f"sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:{PORT}/ping', timeout=2).status"
    " == 200 else 1)"
)
# HTTPS (ORCH_SERVING__REPLICA_TLS): verified against the replica CA, by the address.
_PING_TLS = (
    "import ssl, sys, urllib.request; "
    f"c = ssl.create_default_context(cafile='{TLS_MOUNT}/ca.crt'); "
    f"sys.exit(0 if urllib.request.urlopen('https://127.0.0.1:{PORT}/ping', timeout=2, "
    "context=c).status == 200 else 1)"
)


def replica_create_kwargs(
    doc: dict[str, Any],
    root: Path,
    containers: list[ContainerDefinition] | None = None,
    model_name: str = "",
) -> dict[str, Any]:
    """``containers.create`` arguments for the replica described by its container.json (and
    the model's containers, fetched under ``root`` by :func:`fetch_containers`)."""
    env: dict[str, str] = dict(doc["environment"])
    containers = containers or [ContainerDefinition(Environment=env)]
    mounts: list[Mount] = []
    command = ["python", "-m", "orchestrator.serving"]
    if len(containers) == 1:
        program, code, model_code = script_of(
            containers[0], root / "model", root / "code", inside=Path("/opt/ml/model")
        )
        mounts.append(Mount("/opt/ml/model", str(root / "model"), type="bind", read_only=True))
        command += ["--model-dir", "/opt/ml/model"]
        if code is not None:
            mounts.append(Mount("/opt/ml/code", str(root / "code"), type="bind", read_only=True))
            command += ["--code-dir", "/opt/ml/code"]
        elif model_code is not None:
            command += ["--code-dir", str(model_code)]
        if program:
            command += ["--program", program]
    else:
        steps = []
        for index, container in enumerate(containers):
            model_dir, code_dir = step_dirs(root, index, len(containers))
            inside = Path(f"/opt/ml/pipeline/{index}")
            program, code, model_code = script_of(
                container, model_dir, code_dir, inside=inside / "model"
            )
            mounts.append(Mount(str(inside / "model"), str(model_dir), type="bind", read_only=True))
            code_inside = None
            if code is not None:
                code_inside = str(inside / "code")
                mounts.append(Mount(code_inside, str(code_dir), type="bind", read_only=True))
            elif model_code is not None:
                code_inside = str(model_code)
            hostname = container.ContainerHostname or f"step-{index}"
            steps.append(
                {
                    "model_dir": str(inside / "model"),
                    "code_dir": code_inside,
                    "program": program,
                    "hostname": hostname,
                }
            )
        (root / PIPELINE_FILE).write_text(json.dumps(steps))
        mounts.append(Mount(PIPELINE_MOUNT, str(root / PIPELINE_FILE), type="bind", read_only=True))
        command += ["--pipeline", PIPELINE_MOUNT]
    batch = batching_of(containers[0])
    if batch is not None:
        command += ["--max-batch-size", str(batch[0]), "--max-batch-delay-ms", str(batch[1] * 1e3)]
    command += [
        "--model-name",
        model_name or "model",
        "--host",
        "0.0.0.0",
        "--port",
        str(PORT),
        "--endpoint",
        doc.get("endpoint") or doc["labels"][engine.RESOURCE],
        "--variant",
        doc.get("variant", doc["labels"].get("orchestrator.variant", "")),
        "--grace-seconds",
        str(doc["grace_seconds"]),
    ]
    if doc.get("tls"):
        mounts.append(Mount(TLS_MOUNT, str(root / TLS_DIR), type="bind", read_only=True))
        command += [
            "--tls-cert",
            f"{TLS_MOUNT}/replica.crt",
            "--tls-key",
            f"{TLS_MOUNT}/replica.key",
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
            test=["CMD", "python", "-c", _PING_TLS if doc.get("tls") else _PING],
            interval=2_000_000_000,
            timeout=3_000_000_000,
            retries=3,
            start_period=2_000_000_000,
        ),
        **engine.hardening(doc["user"]),
        **engine.resource_kwargs(doc["nano_cpus"], doc["memory_bytes"], 0, None),
    }


def one_image(containers: list[ContainerDefinition]) -> str | None:
    """None when the containers can share one container, else why not."""
    images = {c.own_image for c in containers}
    if len(images) <= 1:
        return None
    named = ", ".join(f"Containers[{i}].Image={c.Image!r}" for i, c in enumerate(containers))
    return (
        "the Docker backend runs an inference pipeline's steps in one container, so every "
        f"step must name the same Image (or none); got {named}. Use one image for all steps, "
        "or serve the pipeline on the process backend"
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0])
    r = ReplicaFile.model_validate_json((root / REPLICA_FILE).read_text())
    doc = read_json(root / SPEC_FILE)
    if doc is None:
        print(f"replica {r.replica_id}: {SPEC_FILE} missing", file=sys.stderr)
        return 1
    containers = serving_containers(root, r)
    refused = one_image(containers)
    if refused is not None:
        print(f"replica {r.replica_id}: {refused}", file=sys.stderr)
        return 1
    try:
        fetch_containers(root, r, containers)
    except OrchestratorError as e:
        print(f"replica {r.replica_id}: model download failed: {e.message}", file=sys.stderr)
        return 1
    for d in [root / "model", root / "code", root / "steps", *(root / "steps").glob("*/*")]:
        if d.exists():
            d.chmod(0o755)  # readable by the container's user; never writable
    try:
        client = docker.from_env()
        kwargs = replica_create_kwargs(doc, root, containers, r.model_name)
        container = client.containers.create(**kwargs)
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

"""The orchestrator's own containers in a training or serving pod: download, upload, fetch-model.

``python -m orchestrator.kube.steps COMMAND --config ... --keyring ... --ml-root /opt/ml``.
These are the only containers that see the object-store credentials and the keyring; the
user's container sees ``/opt/ml`` only. Training pods:

* ``download`` (init container): channels, the script-mode source and checkpoints, decrypted
  into ``/opt/ml``, then ``input/config/*.json``. A missing channel is the user's error: the
  termination message says ``ClientError: ...`` and the exit code 2 fails the Job at once.
* ``upload`` (a second container): waits until the user's container has terminated, reading
  its own pod's status through the API (the pod's name comes from the downward API), then
  packs ``/opt/ml/model`` into ``model.tar.gz``, encrypts and uploads it (and output data and
  checkpoints). On SIGTERM (a stop) it keeps waiting for the user's container and uploads what
  was saved, as SageMaker does; a failed upload exits 1 and the Job retries the pod.

Serving pods: ``fetch-model`` (init container) unpacks the model artifact and source.
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from orchestrator.errors import OrchestratorError, PermanentError
from orchestrator.kube.objects import ALGO, CLIENT_ERROR_EXIT
from orchestrator.objects import (
    LocalKeyring,
    ObjectStore,
    open_object_store,
    pack_dir,
    safe_extract,
)
from orchestrator.resources.training import CreateTrainingJobRequest
from orchestrator.training.contract import MlPaths, submit_dir_of, write_config

MESSAGE_LIMIT = 4096  # what Kubernetes keeps of a termination message


class StepError(Exception):
    """A failure with a SageMaker-style reason and the exit code that tells the Job what to do."""

    def __init__(self, reason: str, exit_code: int = 1) -> None:
        super().__init__(reason)
        self.reason = reason
        self.exit_code = exit_code


class StepConfig(BaseModel):
    spec: CreateTrainingJobRequest
    output_uri: str
    object_store_url: str
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    chunk_size: int = 4 << 20


def open_store(
    url: str, keyring: Path, *, s3_endpoint_url: str | None, s3_region: str, chunk_size: int
) -> ObjectStore:
    # The mounted Secret is read-only and may be group-readable: use a private copy.
    private = Path(tempfile.mkdtemp(prefix="orch-keys-")) / "keyring.json"
    shutil.copyfile(keyring, private)
    private.chmod(0o600)
    return open_object_store(
        url,
        LocalKeyring(private),
        s3_endpoint_url=s3_endpoint_url,
        s3_region=s3_region,
        chunk_size=chunk_size,
    )


def fetch(store: ObjectStore, uri: str, dest: Path, what: str) -> None:
    if not uri.startswith("s3://"):
        raise StepError(f"ClientError: {what}: {uri}: only s3:// URIs can be read in a cluster", 2)
    try:
        store.download_prefix(uri, dest)
    except PermanentError as e:
        raise StepError(f"ClientError: {what}: data download failed: {e.message}", 2) from e


def unpack_into(store: ObjectStore, uri: str, dest: Path, what: str) -> None:
    """A tar.gz (or plain files) under ``uri`` unpacked or copied into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        fetch(store, uri, Path(tmp), what)
        for f in sorted(p for p in Path(tmp).rglob("*") if p.is_file()):
            if tarfile.is_tarfile(f):
                safe_extract(f, dest)
            else:
                shutil.copy2(f, dest / f.name)


def download(cfg: StepConfig, store: ObjectStore, paths: MlPaths) -> None:
    spec = cfg.spec
    paths.make([c.ChannelName for c in spec.InputDataConfig])
    for c in spec.InputDataConfig:
        fetch(
            store,
            c.DataSource.S3DataSource.S3Uri,
            paths.channel_dir(c.ChannelName),
            f"channel {c.ChannelName!r}",
        )
    source = submit_dir_of(spec)
    if source:
        unpack_into(store, source, paths.code_dir, "source directory (sagemaker_submit_directory)")
    ckpt = spec.CheckpointConfig
    if ckpt is not None and store.list(ckpt.S3Uri):
        fetch(store, ckpt.S3Uri, paths.checkpoint_dir, "checkpoints")
    write_config(paths, spec)


def upload(
    cfg: StepConfig, store: ObjectStore, paths: MlPaths, exit_code: int, stopping: bool
) -> None:
    """What SageMaker uploads: the model (after success or a stop), output data, checkpoints."""
    if exit_code != 0 and not stopping:
        return  # the user's container failed: its termination message is the reason
    with tempfile.TemporaryDirectory() as tmp:
        archive = Path(tmp) / "model.tar.gz"
        paths.model_dir.mkdir(parents=True, exist_ok=True)
        pack_dir(paths.model_dir, archive)
        store.put_file(cfg.output_uri, archive)
        out = paths.output_data_dir
        if out.exists() and any(out.iterdir()):
            pack_dir(out, Path(tmp) / "output.tar.gz")
            store.put_file(
                cfg.output_uri.rsplit("/", 1)[0] + "/output.tar.gz", Path(tmp) / "output.tar.gz"
            )
    ckpt = cfg.spec.CheckpointConfig
    if ckpt is not None and paths.checkpoint_dir.exists():
        base = ckpt.S3Uri.rstrip("/")
        for f in sorted(p for p in paths.checkpoint_dir.rglob("*") if p.is_file()):
            store.put_file(f"{base}/{f.relative_to(paths.checkpoint_dir)}", f)


def container_exit_code(pod: dict[str, Any], container: str) -> int | None:
    """The exit code of ``container`` in a pod's status, once it has terminated."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == container:
            done = (status.get("state") or {}).get("terminated")
            if isinstance(done, dict):
                return int(done.get("exitCode", 1))
    return None


def wait_for_container(
    read_pod: Callable[[], dict[str, Any]], container: str, *, poll: float = 2.0
) -> int:
    while True:
        try:
            code = container_exit_code(read_pod(), container)
        except OrchestratorError as e:
            print(f"[orchestrator] reading the pod's status: {e.message}", file=sys.stderr)
            code = None
        if code is not None:
            return code
        time.sleep(poll)


def _pod_reader(pod: str, namespace: str) -> Callable[[], dict[str, Any]]:
    import json

    from kubernetes import client, config

    config.load_incluster_config()  # type: ignore[no-untyped-call]
    core = client.CoreV1Api()

    def read() -> dict[str, Any]:
        response: Any = core.read_namespaced_pod(pod, namespace, _preload_content=False)
        doc: dict[str, Any] = json.loads(response.data)
        return doc

    return read


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.kube.steps")
    parser.add_argument("command", choices=["download", "upload", "fetch-model"])
    parser.add_argument("--config", type=Path)
    parser.add_argument("--keyring", type=Path, required=True)
    parser.add_argument("--ml-root", type=Path, default=Path("/opt/ml"))
    parser.add_argument("--termination-log", type=Path, default=Path("/dev/termination-log"))
    parser.add_argument("--pod")
    parser.add_argument("--namespace")
    parser.add_argument("--object-store")
    parser.add_argument("--s3-endpoint-url")
    parser.add_argument("--s3-region", default="us-east-1")
    parser.add_argument("--model-data")
    parser.add_argument("--source")
    args = parser.parse_args(argv)
    paths = MlPaths(args.ml_root)
    stopping = False

    def on_term(_signo: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True  # the user's container got the same signal: wait for it, then upload

    try:
        if args.command == "fetch-model":
            store = open_store(
                args.object_store,
                args.keyring,
                s3_endpoint_url=args.s3_endpoint_url,
                s3_region=args.s3_region,
                chunk_size=4 << 20,
            )
            if args.model_data:
                unpack_into(store, args.model_data, paths.model_dir, "ModelDataUrl")
            if args.source:
                unpack_into(store, args.source, paths.code_dir, "SAGEMAKER_SUBMIT_DIRECTORY")
            return 0
        cfg = StepConfig.model_validate_json(Path(args.config).read_text())
        store = open_store(
            cfg.object_store_url,
            args.keyring,
            s3_endpoint_url=cfg.s3_endpoint_url,
            s3_region=cfg.s3_region,
            chunk_size=cfg.chunk_size,
        )
        if args.command == "download":
            download(cfg, store, paths)
        else:
            signal.signal(signal.SIGTERM, on_term)
            code = wait_for_container(_pod_reader(args.pod, args.namespace), ALGO)
            upload(cfg, store, paths, code, stopping)
    except StepError as e:
        return _fail(args.termination_log, e.reason, e.exit_code)
    except OrchestratorError as e:
        return _fail(args.termination_log, f"InternalServerError: {args.command}: {e.message}", 1)
    except Exception as e:
        reason = f"InternalServerError: {args.command}: {type(e).__name__}: {e}"
        return _fail(args.termination_log, reason, 1)
    return 0


def _fail(log: Path, reason: str, code: int) -> int:
    print(f"[orchestrator] {reason}", file=sys.stderr)
    with contextlib.suppress(OSError):
        log.write_text(reason[:MESSAGE_LIMIT])
    return code if code != CLIENT_ERROR_EXIT or reason.startswith("ClientError") else 1


if __name__ == "__main__":
    raise SystemExit(main())

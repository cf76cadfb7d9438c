"""The orchestrator's own containers in a training or serving pod: download, upload, fetch-model.

``python -m orchestrator.kube.steps COMMAND --config ... --keyring ... --ml-root /opt/ml``.
These are the only containers that see the object-store credentials and the keyring; the
user's container sees ``/opt/ml`` (and its hosts file) only. What moves where is the training
data contract of ``orchestrator.training.transfer``, the same as on the other backends.
Training pods:

* ``download`` (init container): this host's data (channels, ``ShardedByS3Key`` ones sharded,
  the script-mode source, checkpoints) decrypted into ``/opt/ml``, then
  ``input/config/*.json`` naming this host; then, on several hosts, it waits for every other
  host's DNS name and writes the hosts file (``kube.hosts``). A missing channel is the
  user's error (``ClientError``, exit code 2: the Job fails at once).
* ``upload`` (a second container, the sidecar): while the user's container runs, uploads the
  checkpoint directory as files in it are finished (``training.checkpoints``, the same code as
  the other backends' supervisors, every ``checkpoint_sync_seconds``); it waits until the
  user's container has terminated, reading its own pod's status through the API (the pod's
  name comes from the downward API), syncs the checkpoints once more whatever the exit, then
  packs ``/opt/ml/model`` into ``model.tar.gz`` (on algo-1 only), encrypts and uploads it (and
  output data and checkpoints). On SIGTERM (a stop) it keeps waiting for the user's container
  and uploads what was saved, as SageMaker does; a failed upload exits 1 and fails the attempt.

A step that fails writes its ``FailureReason`` to its termination message, encoded
(``FailureReason.encode``), which the operator reads back exactly (``kube.observe``); the exit
code tells the Job what to do: 2 for a ``ClientError``, 3 for a pod that is not what its Job
defines (a host index out of range, peers that never resolve), 1 for anything else.

Serving pods: ``fetch-model`` (init container) unpacks the model artifact and source.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from orchestrator.errors import OrchestratorError
from orchestrator.kube.hosts import write_hosts
from orchestrator.kube.jobs import HOSTS_DIR, HOSTS_FILE, POD_IP_ENV
from orchestrator.kube.objects import ALGO, CLIENT_ERROR_EXIT, FATAL_EXIT
from orchestrator.objects import LocalKeyring, ObjectStore, open_object_store
from orchestrator.objects.providers import with_key
from orchestrator.resources.failures import FailureReason, internal_error
from orchestrator.resources.training import CreateTrainingJobRequest
from orchestrator.training.checkpoints import Watcher
from orchestrator.training.contract import Host, MlPaths
from orchestrator.training.files import output_kms_key
from orchestrator.training.transfer import Reader, TrainingFailure, Transfer, unexpected

MESSAGE_LIMIT = 4096  # what Kubernetes keeps of a termination message (bytes)
FILE_URIS = "a pod reads only s3:// URIs (the object store)"


class StepConfig(BaseModel):
    spec: CreateTrainingJobRequest
    output_uri: str
    object_store_url: str
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    chunk_size: int = 4 << 20
    # On several hosts: host i's DNS name is peers[i].
    peers: list[str] = []
    peer_wait_seconds: float = 600.0
    checkpoint_sync_seconds: float = 5.0
    checkpoint_upload_mib_per_second: float | None = None


class Fatal(TrainingFailure):
    """A failure no retry of the same pod can fix (exit code ``FATAL_EXIT``)."""


def open_store(
    url: str,
    keyring: Path,
    *,
    s3_endpoint_url: str | None,
    s3_region: str,
    chunk_size: int,
    write_key: str | None = None,
) -> ObjectStore:
    """``write_key``: the KmsKeyId objects written are wrapped under (a named key of the
    keyring, kept beside it as ``keyring-named.json`` in the same Secret)."""
    # The mounted Secret is read-only and may be group-readable: use a private copy.
    private = Path(tempfile.mkdtemp(prefix="orch-keys-")) / "keyring.json"
    shutil.copyfile(keyring, private)
    private.chmod(0o600)
    named = keyring.with_name(f"{keyring.stem}-named.json")
    if named.is_file():
        shutil.copyfile(named, private.with_name(named.name))
        private.with_name(named.name).chmod(0o600)
    return open_object_store(
        url,
        with_key(LocalKeyring(private), write_key),
        s3_endpoint_url=s3_endpoint_url,
        s3_region=s3_region,
        chunk_size=chunk_size,
    )


def say(message: str) -> None:
    print(f"[orchestrator] {message}", file=sys.stderr, flush=True)


def host_of(spec: CreateTrainingJobRequest, index: str | None) -> Host:
    """This pod's host from its Job's completion index (none: the only host)."""
    count = spec.ResourceConfig.InstanceCount
    if index is None:
        index = "0"
    try:
        return Host(int(index), count)
    except ValueError as e:
        raise Fatal(internal_error(f"--host-index {index!r}: {e}")) from e


def transfer(
    cfg: StepConfig, store: ObjectStore, paths: MlPaths, host: Host | None = None
) -> Transfer:
    return Transfer(
        cfg.spec,
        paths,
        lambda: store,
        output_uri=cfg.output_uri,
        host=host or Host(0, cfg.spec.ResourceConfig.InstanceCount),
        file_uris=FILE_URIS,
        interface="eth0",
        say=say,
        checkpoint_rate=None
        if cfg.checkpoint_upload_mib_per_second is None
        else cfg.checkpoint_upload_mib_per_second * (1 << 20),
    )


def download(
    cfg: StepConfig,
    store: ObjectStore,
    paths: MlPaths,
    host: Host | None = None,
    *,
    hosts_dir: Path = Path(HOSTS_DIR),
    own_address: str | None = None,
    lookup: Callable[[str], str | None] | None = None,
) -> None:
    t = transfer(cfg, store, paths, host)
    t.download()
    kwargs: dict[str, Any] = {} if lookup is None else {"lookup": lookup}
    try:
        write_hosts(
            hosts_dir / HOSTS_FILE,
            t.host,
            cfg.peers,
            own_address=own_address,
            wait_seconds=cfg.peer_wait_seconds,
            say=say,
            **kwargs,
        )
    except TrainingFailure as e:
        raise Fatal(e.reason) from e


def upload(
    cfg: StepConfig,
    store: ObjectStore,
    paths: MlPaths,
    exit_code: int,
    stopping: bool,
    *,
    host: Host | None = None,
    moved: Transfer | None = None,
) -> None:
    """What SageMaker uploads: the model (after success or a stop), output data, checkpoints
    (after any exit: what was finished before a crash is kept)."""
    t = transfer(cfg, store, paths, host) if moved is None else moved
    if exit_code != 0 and not stopping:
        # The user's container failed: its termination message is the reason.
        sync = t.checkpoints
        if sync is not None:
            Watcher(sync).pass_once(final=True)  # failures are said; the attempt failed anyway
        return
    t.upload()


def container_exit_code(pod: dict[str, Any], container: str) -> int | None:
    """The exit code of ``container`` in a pod's status, once it has terminated."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == container:
            done = (status.get("state") or {}).get("terminated")
            if isinstance(done, dict):
                return int(done.get("exitCode", 1))
    return None


def wait_for_container(
    read_pod: Callable[[], dict[str, Any]],
    container: str,
    *,
    poll: float = 2.0,
    meanwhile: Callable[[], object] | None = None,
    every: float = 5.0,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """The exit code of ``container``, once it has terminated; ``meanwhile`` is called every
    ``every`` seconds until then (the checkpoint sync)."""
    due = clock() + every
    while True:
        if meanwhile is not None and clock() >= due:
            meanwhile()
            due = clock() + every
        try:
            code = container_exit_code(read_pod(), container)
        except OrchestratorError as e:
            say(f"reading the pod's status: {e.message}")
            code = None
        if code is not None:
            return code
        time.sleep(poll)


def _pod_reader(pod: str, namespace: str) -> Callable[[], dict[str, Any]]:
    from kubernetes import client, config

    config.load_incluster_config()  # type: ignore[no-untyped-call]
    core = client.CoreV1Api()

    def read() -> dict[str, Any]:
        response: Any = core.read_namespaced_pod(pod, namespace, _preload_content=False)
        doc: dict[str, Any] = json.loads(response.data)
        return doc

    return read


def exit_code_of(reason: FailureReason, fatal: bool) -> int:
    if reason.kind == "ClientError":
        return CLIENT_ERROR_EXIT
    return FATAL_EXIT if fatal else 1


def report(log: Path, reason: FailureReason, code: int, *, encoded: bool = True) -> int:
    """Tell the operator why (the termination message) and the Job what to do (the code).
    A serving pod's ``fetch-model`` message is shown to people as it is: not encoded."""
    say(reason.render(MESSAGE_LIMIT))
    text = reason.encode(MESSAGE_LIMIT) if encoded else reason.render(MESSAGE_LIMIT)
    with contextlib.suppress(OSError):
        log.write_text(text)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.kube.steps")
    parser.add_argument("command", choices=["download", "upload", "fetch-model"])
    parser.add_argument("--config", type=Path)
    parser.add_argument("--keyring", type=Path, required=True)
    parser.add_argument("--ml-root", type=Path, default=Path("/opt/ml"))
    parser.add_argument("--termination-log", type=Path, default=Path("/dev/termination-log"))
    parser.add_argument("--hosts-dir", type=Path, default=Path(HOSTS_DIR))
    parser.add_argument("--host-index")
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
            return fetch_model(args, paths)
        cfg = StepConfig.model_validate_json(Path(args.config).read_text())
        host = host_of(cfg.spec, args.host_index)
        store = open_store(
            cfg.object_store_url,
            args.keyring,
            s3_endpoint_url=cfg.s3_endpoint_url,
            s3_region=cfg.s3_region,
            chunk_size=cfg.chunk_size,
            write_key=output_kms_key(cfg.spec),
        )
        if args.command == "download":
            download(
                cfg,
                store,
                paths,
                host,
                hosts_dir=args.hosts_dir,
                own_address=os.environ.get(POD_IP_ENV) or None,
            )
        else:
            signal.signal(signal.SIGTERM, on_term)
            moved = transfer(cfg, store, paths, host)
            sync = moved.checkpoints
            code = wait_for_container(
                _pod_reader(args.pod, args.namespace),
                ALGO,
                meanwhile=None if sync is None else Watcher(sync).pass_once,
                every=cfg.checkpoint_sync_seconds,
            )
            upload(cfg, store, paths, code, stopping, host=host, moved=moved)
    except Exception as e:  # every failure is reported, planned (TrainingFailure) or not
        reason = unexpected(e, args.command)
        code = exit_code_of(reason, isinstance(e, Fatal))
        return report(args.termination_log, reason, code, encoded=args.command != "fetch-model")
    return 0


def fetch_model(args: argparse.Namespace, paths: MlPaths) -> int:
    store = open_store(
        args.object_store,
        args.keyring,
        s3_endpoint_url=args.s3_endpoint_url,
        s3_region=args.s3_region,
        chunk_size=4 << 20,
    )
    for uri, dest, what in (
        (args.model_data, paths.model_dir, "ModelDataUrl"),
        (args.source, paths.code_dir, "SAGEMAKER_SUBMIT_DIRECTORY"),
    ):
        if uri:
            unpack_into(store, uri, dest, what)
    return 0


def unpack_into(store: ObjectStore, uri: str, dest: Path, what: str) -> None:
    """A tar.gz (or plain files) under ``uri`` unpacked or copied into ``dest`` (a model)."""
    Reader(lambda: store, file_uris=FILE_URIS).unpack(uri, dest, what)


if __name__ == "__main__":
    raise SystemExit(main())

"""The files a job's supervisor writes for the backend to read: job, pid, progress, result.

All writes are atomic (temp file + rename) so a reader never sees half a document, and a
supervisor killed at any line leaves either the old file or the new one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel

from orchestrator.objects import LocalKeyring, ObjectStore, open_object_store
from orchestrator.objects.keys import KeyProvider
from orchestrator.objects.providers import KeyProviderConfig, open_key_provider, with_key
from orchestrator.resources.failures import ExitKind, FailureReason
from orchestrator.resources.training import CreateTrainingJobRequest

JOB_FILE = "job.json"
PID_FILE = "supervisor.pid"
PROGRESS_FILE = "progress.json"
RESULT_FILE = "result.json"
# Where the attempt's lines start in the job's log (all attempts append to one log).
LOG_START_FILE = "log.start"


class StoreAccess(BaseModel):
    """How a child process (a job's supervisor, a replica) reaches the object store. It holds
    no secret: the keyring is a path, readable only by the owner."""

    object_store_url: str
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    chunk_size: int = 4 << 20
    keyring_path: str
    # The key provider the settings chose (None: the local keyring at keyring_path).
    keys: KeyProviderConfig | None = None
    # The KmsKeyId every object written through this store is wrapped under (the resource's
    # OutputDataConfig.KmsKeyId, TransformOutput.KmsKeyId, ...); None: the default key.
    write_key: str | None = None

    def provider(self) -> KeyProvider:
        if self.keys is None:
            return with_key(LocalKeyring(Path(self.keyring_path)), self.write_key)
        return with_key(open_key_provider(self.keys), self.write_key)

    def open(self) -> ObjectStore:
        return open_object_store(
            self.object_store_url,
            self.provider(),
            s3_endpoint_url=self.s3_endpoint_url,
            s3_region=self.s3_region,
            chunk_size=self.chunk_size,
        )


def output_kms_key(spec: CreateTrainingJobRequest) -> str | None:
    """The key a training job's objects are written under (its OutputDataConfig.KmsKeyId)."""
    return spec.OutputDataConfig.KmsKeyId if spec.OutputDataConfig is not None else None


class ContainerRun(BaseModel):
    """How the user's code runs in a container (the Docker backend).

    ``name`` is fixed per attempt (``orch-<job>-<attempt>``, plus ``-algo-<k>`` per host when
    ``instance_count`` > 1), so a second start of the same attempt fails instead of running twice.
    Labels name the resource and attempt; they never carry a secret.
    """

    image: str
    user: str
    name: str
    network: str | None = None  # the attempt's bridge network
    # No network at all (one host), or an internal network between the hosts only.
    network_isolation: bool = False
    instance_count: int = 1
    nano_cpus: int | None = None
    memory_bytes: int | None = None
    gpu_count: int = 0
    gpu_device_ids: list[str] | None = None
    tmpfs_size: str = "1g"
    labels: dict[str, str] = {}


class JobFile(BaseModel):
    """What the backend hands the supervisor (written before it starts)."""

    name: str
    attempt: int
    spec: CreateTrainingJobRequest
    output_uri: str
    ml_root: str
    log_path: str
    store: StoreAccess
    allow_file_uris: bool = True
    # GPU device indexes the controller gave this attempt; None: not managed (leave the env).
    gpus: list[int] | None = None
    # Set by container backends (Docker): the user's code runs in a container, not a process.
    container: ContainerRun | None = None
    # How often the checkpoint directory is scanned for finished files to upload (seconds).
    checkpoint_sync_seconds: float = 5.0
    # How fast a checkpoint is read for upload while the user's code runs (None: no limit).
    checkpoint_upload_mib_per_second: float | None = None
    # Resource usage sampled every this many seconds into the usage file beside the job log
    # (``training.usage``); 0: not sampled.
    usage_interval_seconds: float = 5.0
    # The job's own credential as the variables its code gets (``api.jobcreds``): the only
    # secret here; the file is the server user's, beside (not inside) the job's /opt/ml.
    credentials: dict[str, str] = {}


class PhaseEntry(BaseModel):
    phase: str
    at: float
    message: str = ""


class Progress(BaseModel):
    phase: str
    message: str = ""
    at: float
    started_at: float
    metrics: dict[str, float] = {}
    # When each metric's last value was written (epoch seconds, its log line's time).
    metric_times: dict[str, float] = {}
    history: list[PhaseEntry] = []


class Result(BaseModel):
    outcome: Literal["completed", "failed", "stopped"]
    exit_code: int | None
    failure: FailureReason | None = None  # typed: rendered only in the job's status
    # How the user's process ended (None: it never ran, e.g. a download failed).
    exit_kind: ExitKind | None = None
    model_artifact: str | None = None
    metrics: dict[str, float] = {}
    metric_times: dict[str, float] = {}
    started_at: float
    ended_at: float


def write_atomic(path: Path, data: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_model(path: Path, model: BaseModel) -> None:
    write_atomic(path, model.model_dump_json())


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None

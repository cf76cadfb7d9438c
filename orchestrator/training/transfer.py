"""The training data contract, once: what goes into ``/opt/ml`` before the user's code runs,
what comes out of it after, and how a failure is told.

Used by every place that moves a job's data: the process backend's supervisor
(``training.runner``), the Docker backend's (a subclass of it, on the host) and the
orchestrator's own steps in a Kubernetes pod (``kube.steps``). So a spec means the same on
each: the same channels (``ShardedByS3Key`` sharded the same way), the same source handling,
the same artifacts, the same failure categories.

Download (``Transfer.download``): each channel into ``input/data/<channel>/`` (an object store
URI or, where allowed, a ``file://`` path; a channel ``ShardedByS3Key`` of a job on N hosts
gives each host every N-th object of the sorted keys, and a host past the number of objects
gets none, as SageMaker does), the script-mode source (``sagemaker_submit_directory``: tar
archives unpacked safely, other files copied) into ``code/``, the checkpoints already saved
under ``CheckpointConfig.S3Uri`` into the checkpoint directory, then ``input/config/*.json``.

Upload (``Transfer.upload``): from the host that holds the model (algo-1), ``model/`` packed as
``model.tar.gz`` at the job's output URI, ``model/evaluation.json`` and
``model/evaluation_scores.json`` (a built-in binary classifier's scores) beside it (so the API
can show them without unpacking the model) and ``output/data/`` as ``output.tar.gz`` beside it; from
every host, the files in its checkpoint directory (``CheckpointConfig.LocalPath``) under
``CheckpointConfig.S3Uri``, skipping those uploaded while it ran (``training.checkpoints``).

Failures are ``TrainingFailure`` carrying a typed ``FailureReason``: data that cannot be read is
a ``ClientError`` (a missing object, a refused URI) unless the store failed for a reason that
may pass (``InternalServerError``), as is any failed upload; ``algorithm_failure`` reads the
user's failure file or describes how the user's process ended (``AlgorithmError``).
"""

from __future__ import annotations

import shutil
import signal
import tarfile
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from orchestrator.errors import NotFoundError, OrchestratorError, PermanentError
from orchestrator.objects import ObjectStore, pack_dir, safe_extract
from orchestrator.objects.store import prefix_objects
from orchestrator.resources.datasources import DATASET_DIR, SNAPSHOT_ALGORITHM
from orchestrator.resources.failures import (
    OUT_OF_MEMORY,
    REASON_LIMIT,
    FailureReason,
    algorithm_error,
    client_error,
    internal_error,
)
from orchestrator.resources.training import Channel, CreateTrainingJobRequest
from orchestrator.training.checkpoints import CheckpointSync
from orchestrator.training.contract import (
    EVALUATION_FILE,
    EVALUATION_SCORES_FILE,
    Host,
    MlPaths,
    shard,
    sharded,
    submit_dir_of,
    write_config,
)

SOURCE = "source directory (sagemaker_submit_directory)"
EVALUATION_FILES = (EVALUATION_FILE, EVALUATION_SCORES_FILE)


class TrainingFailure(Exception):
    """An attempt that cannot go on, and why (the reason the job fails with)."""

    def __init__(self, reason: FailureReason) -> None:
        super().__init__(reason.render())
        self.reason = reason


def unexpected(error: BaseException, step: str = "") -> FailureReason:
    """An error nobody planned for, as an ``InternalServerError`` naming where it happened."""
    where = f"{step}: " if step else ""
    if isinstance(error, TrainingFailure):
        return error.reason
    if isinstance(error, OrchestratorError):
        return internal_error(f"{where}{error.message}")
    return internal_error(f"{where}{type(error).__name__}: {error}")


# An item of a channel: where it is read from, and its path under the channel's directory.
Item = tuple[str, str]


class Reader:
    """Reads what a URI names: objects of the store (opened once, when first needed) or, where
    allowed, ``file://`` paths of the host. ``file_uris``: None when ``file://`` URIs may be
    read, else why not (the message a refused one fails with)."""

    def __init__(self, open_store: Callable[[], ObjectStore], *, file_uris: str | None) -> None:
        self._open_store = open_store
        self._store: ObjectStore | None = None
        self.file_uris = file_uris

    @property
    def store(self) -> ObjectStore:
        if self._store is None:
            self._store = self._open_store()
        return self._store

    def items(self, uri: str, what: str, *, missing_ok: bool = False) -> list[Item]:
        """What ``uri`` names, sorted: one object or file, or everything under it."""
        if uri.startswith("file://"):
            return self._file_items(uri, what)
        try:
            return prefix_objects(self.store, uri)
        except PermanentError as e:
            if missing_ok and isinstance(e, NotFoundError):
                return []
            raise TrainingFailure(client_error(f"{what}: data download failed: {e.message}")) from e
        except OrchestratorError as e:
            raise TrainingFailure(internal_error(f"{what}: reading {uri}: {e.message}")) from e

    def _file_items(self, uri: str, what: str) -> list[Item]:
        if self.file_uris is not None:
            raise TrainingFailure(client_error(f"{what}: {uri}: {self.file_uris}"))
        src = Path(uri[len("file://") :])
        if src.is_file():
            return [(str(src), src.name)]
        if src.is_dir():
            files = sorted(p for p in src.rglob("*") if p.is_file())
            return [(str(p), p.relative_to(src).as_posix()) for p in files]
        raise TrainingFailure(client_error(f"{what}: {uri} does not exist"))

    def copy(self, items: Sequence[Item], dest: Path, what: str) -> None:
        for source, relative in items:
            target = dest / relative
            if source.startswith("s3://"):
                try:
                    self.store.get_file(source, target)
                except PermanentError as e:
                    raise TrainingFailure(
                        client_error(f"{what}: data download failed: {source}: {e.message}")
                    ) from e
                except OrchestratorError as e:
                    raise TrainingFailure(
                        internal_error(f"{what}: reading {source}: {e.message}")
                    ) from e
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)

    def unpack(self, uri: str, dest: Path, what: str, *, scratch: Path | None = None) -> None:
        """Tar archives under ``uri`` unpacked into ``dest`` (safely: no path leaves it), any
        other file copied there (the script-mode source; a model artifact)."""
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=scratch) as tmp:
            self.copy(self.items(uri, what), Path(tmp), what)
            for f in sorted(p for p in Path(tmp).rglob("*") if p.is_file()):
                if tarfile.is_tarfile(f):
                    try:
                        safe_extract(f, dest)
                    except PermanentError as e:
                        raise TrainingFailure(client_error(f"{what}: {e.message}")) from e
                else:
                    shutil.copy2(f, dest / f.name)


class Transfer:
    """Moves one host's data of one attempt between the store (or the host) and ``paths``.

    ``open_store`` is called once, when the store is first needed (a job reading only
    ``file://`` data never opens it); ``file_uris`` as for ``Reader``. ``say`` writes to the
    job's log; ``checkpoint_rate``: how fast checkpoints are read for upload while the user's
    code runs (bytes per second; None: no limit).
    """

    def __init__(
        self,
        spec: CreateTrainingJobRequest,
        paths: MlPaths,
        open_store: Callable[[], ObjectStore],
        *,
        output_uri: str,
        host: Host | None = None,
        file_uris: str | None = None,
        interface: str = "lo",
        say: Callable[[str], None] = lambda _message: None,
        scratch: Path | None = None,
        checkpoint_rate: float | None = None,
    ) -> None:
        self.spec = spec
        self.paths = paths.for_spec(spec)
        self.reader = Reader(open_store, file_uris=file_uris)
        self.output_uri = output_uri
        self.host = host or Host(0, spec.ResourceConfig.InstanceCount)
        self.interface = interface
        self.say = say
        self.scratch = scratch
        self._checkpoints: CheckpointSync | None = None
        self.checkpoint_rate = checkpoint_rate  # bytes/s while the user's code runs

    @property
    def store(self) -> ObjectStore:
        return self.reader.store

    # --- download ----------------------------------------------------------------------------
    def download(
        self,
        hosts: Sequence[Host] | None = None,
        shard_dir: Callable[[Host, str], Path] | None = None,
    ) -> None:
        """Everything the user's code reads, for this host. ``hosts`` and ``shard_dir``: a
        backend whose hosts share one ``/opt/ml`` (Docker) fetches every host's share of the
        sharded channels, each into its own directory."""
        spec = self.spec
        self.paths.make([c.ChannelName for c in spec.InputDataConfig])
        for c in spec.InputDataConfig:
            if sharded(c) and self.host.count > 1:
                for h in hosts or [self.host]:
                    dest = shard_dir(h, c.ChannelName) if shard_dir else None
                    self.fetch_channel(c, dest or self.paths.channel_dir(c.ChannelName), h)
            else:
                self.fetch_channel(c, self.paths.channel_dir(c.ChannelName), None)
        source = submit_dir_of(spec)
        if source:
            self.fetch_source(source)
        ckpt = spec.CheckpointConfig
        if ckpt is not None:
            # None saved yet (a first attempt) is not an error.
            saved = self.reader.items(ckpt.S3Uri, "checkpoints", missing_ok=True)
            self.reader.copy(saved, self.paths.checkpoint_dir, "checkpoints")
            sync = self.checkpoints
            if sync is not None:  # what came from the store need not go back to it
                sync.mark_uploaded(relative for _, relative in saved)
        write_config(self.paths, spec, self.host, self.interface)

    def fetch_channel(self, channel: Channel, dest: Path, host: Host | None) -> int:
        """One channel (``host``'s share when it is sharded) into ``dest``; how many files."""
        what = f"channel {channel.ChannelName!r}"
        items = self.reader.items(channel.DataSource.S3DataSource.S3Uri, what)
        if host is not None:
            share = shard(items, host)
            if not share:
                self.say(
                    f"{what} is ShardedByS3Key over {len(items)} object(s) for {host.count} "
                    f"hosts: {host.name} gets none (use no more instances than objects)"
                )
            items = share
        dest.mkdir(parents=True, exist_ok=True)
        self.reader.copy(items, dest, what)
        reference = channel.DataSource.DataSourceReference
        if reference is not None:
            # A data source's snapshot: keep the rows its DataRearrangement selects and write
            # the effective schema.json (per host: a ShardedByS3Key channel is rearranged on
            # each host's share). pyarrow is needed only here, so imported here.
            from orchestrator.datasources.rearrange import rearrange_channel

            try:
                rearrange_channel(dest, reference, channel=channel.ChannelName)
            except PermanentError as e:
                raise TrainingFailure(client_error(f"{what}: {e.message}")) from e
        return len(items)

    def fetch_source(self, uri: str) -> None:
        self.reader.unpack(uri, self.paths.code_dir, SOURCE, scratch=self.scratch)

    # --- upload ------------------------------------------------------------------------------
    def sibling(self, name: str) -> str:
        """An object next to model.tar.gz (``.../output/<name>``)."""
        return self.output_uri.rsplit("/", 1)[0] + "/" + name

    def upload(self) -> str | None:
        """What SageMaker uploads after a success or a stop; the model's URI, or None when
        this host does not upload the model (a host other than algo-1)."""
        artifact: str | None = None
        try:
            if self.host.first:
                artifact = self._upload_model()
            self._upload_checkpoints()
        except OrchestratorError as e:
            raise TrainingFailure(internal_error(f"upload failed: {e.message}")) from e
        return artifact

    def _upload_model(self) -> str:
        paths = self.paths
        paths.model_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=self.scratch) as tmp:
            archive = Path(tmp) / "model.tar.gz"
            pack_dir(paths.model_dir, archive)
            self.store.put_file(self.output_uri, archive)
            for name in EVALUATION_FILES:
                evaluation = paths.model_dir / name
                if evaluation.is_file():
                    self.store.put_file(self.sibling(name), evaluation)
            self._upload_dataset()
            out = paths.output_data_dir
            if out.exists() and any(out.iterdir()):
                archive = Path(tmp) / "output.tar.gz"
                pack_dir(out, archive)
                self.store.put_file(self.sibling("output.tar.gz"), archive)
        return self.output_uri

    def _upload_dataset(self) -> None:
        """A data source's snapshot job (the internal ``datasource-snapshot`` algorithm): its
        ``/opt/ml/output/dataset/`` files (Parquet parts, schema.json, insights.json) are
        uploaded one by one as they are, under ``.../output/dataset/``, so training reads the
        Parquet itself, not an archive of it (``controller/plan/datasource.py``)."""
        if self.spec.AlgorithmSpecification.AlgorithmName != SNAPSHOT_ALGORITHM:
            return
        dataset = self.paths.root / "output" / DATASET_DIR
        if not dataset.is_dir():
            return
        for f in sorted(dataset.iterdir()):
            if f.is_file():
                self.store.put_file(self.sibling(f"{DATASET_DIR}/{f.name}"), f)

    @property
    def checkpoints(self) -> CheckpointSync | None:
        """The mirror of this host's checkpoint directory (None: the job has no
        ``CheckpointConfig``), one per transfer so what it uploaded is not uploaded again."""
        ckpt = self.spec.CheckpointConfig
        if ckpt is None:
            return None
        if self._checkpoints is None:
            self._checkpoints = CheckpointSync(
                self.paths.checkpoint_dir,
                ckpt.S3Uri,
                lambda: self.store,
                say=self.say,
                rate=self.checkpoint_rate,
            )
        return self._checkpoints

    def _upload_checkpoints(self) -> None:
        sync = self.checkpoints
        if sync is None:
            return
        errors = sync.sync(final=True).errors
        if errors:
            raise TrainingFailure(
                internal_error(f"upload failed: checkpoints: {'; '.join(errors)[:500]}")
            )


# --- how the user's code ended ---------------------------------------------------------------
SIGNAL_HINTS = {
    "SIGXCPU": " (CPU-time limit of the instance type reached)",
    "SIGKILL": " (killed; out of memory?)",
    "SIGSEGV": " (crashed)",
}


def failure_file_text(paths: MlPaths) -> str:
    """What the user's code wrote to ``output/failure`` (SageMaker's failure file), if any."""
    try:
        return paths.failure_file.read_text(errors="replace").strip()
    except (FileNotFoundError, IsADirectoryError):
        return ""


def algorithm_failure(
    code: int,
    paths: MlPaths,
    tail: Sequence[str] = (),
    *,
    process: str = "the training process",
    out_of_memory: str | None = None,
) -> FailureReason:
    """Why the user's code failed: its failure file, else how it ended and its last lines.
    ``code`` < 0: killed by that signal; ``out_of_memory``: what the runtime says of an
    OOM kill (a container's), which beats the guess from SIGKILL."""
    written = failure_file_text(paths)
    if written:
        return algorithm_error(written[: REASON_LIMIT - len("AlgorithmError: ")])
    if out_of_memory is not None:
        head = f"{OUT_OF_MEMORY}: {out_of_memory}"
    elif code < 0:
        try:
            sig = signal.Signals(-code).name
        except ValueError:
            sig = f"signal {-code}"
        head = f"{process} was killed by {sig}{SIGNAL_HINTS.get(sig, '')}"
    else:
        head = f"ExecuteUserScriptError: exit code {code}"
    text = "\n".join(tail)
    room = REASON_LIMIT - len("AlgorithmError: ") - len(head) - 1
    if text and room > 20:
        return algorithm_error(f"{head}\n{text[-room:]}")
    return algorithm_error(head)


__all__ = [
    "Reader",
    "TrainingFailure",
    "Transfer",
    "algorithm_failure",
    "failure_file_text",
    "unexpected",
]

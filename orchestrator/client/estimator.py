"""``Estimator`` and ``Predictor``: the SageMaker Python SDK's shape over ``Client``.

``Estimator(entry_point="train.py", hyperparameters={...}).fit({"train": "file:///data"})``
packs the script's directory, uploads it, runs the job in script mode, streams its log and
returns when it ends (raising ``JobFailedError`` with the FailureReason if it did not
complete). ``deploy()`` makes a Model, an EndpointConfig and an Endpoint and returns a
``Predictor``; ``transformer()`` makes the Model and returns a ``Transformer`` for batch
transform.
"""

from __future__ import annotations

import io
import json
import re
import sys
import tarfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.client.client import Client
from orchestrator.errors import JobFailedError, ValidationError
from orchestrator.resources.distribution import DISTRIBUTION_KEYS
from orchestrator.resources.training import (
    PROGRAM_HYPERPARAMETER,
    SUBMIT_DIR_HYPERPARAMETER,
    DescribeTrainingJobResponse,
    TrainingJobStatus,
)

if TYPE_CHECKING:
    from orchestrator.client.transformer import Transformer


def unique_name(base: str) -> str:
    """``base-YYYYmmdd-HHMMSS-mmm``, trimmed to SageMaker's 63 characters and pattern."""
    stem = re.sub(r"[^a-zA-Z0-9-]+", "-", base).strip("-") or "job"
    now = time.time()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime(now)) + f"-{int(now * 1000) % 1000:03d}"
    return f"{stem[: 62 - len(stamp)]}-{stamp}"


def _channel_uri(value: str) -> str:
    if value.startswith(("s3://", "file://")):
        return value
    path = Path(value).expanduser().resolve()
    if not path.exists():
        raise ValidationError(f"input {value!r}: no such file or directory", field="inputs")
    return path.as_uri()


@dataclass(frozen=True)
class DataSourceInput:
    """A channel read from a data source's snapshot (``docs/datasources.md``), for ``fit``:
    ``DataSourceInput("churn", begin=0, end=70, strategy="random", seed="s1")`` takes 70% of
    its rows, as Amazon ML's ``DataRearrangement`` does; ``version`` pins a snapshot (default:
    the latest completed one, pinned when the job is created)."""

    name: str
    begin: int = 0
    end: int = 100
    strategy: str = "sequential"
    seed: str = ""
    complement: bool = False
    version: int | None = None

    def channel(self, channel: str) -> dict[str, Any]:
        ref: dict[str, Any] = {"DataSourceName": self.name}
        if self.version is not None:
            ref["Version"] = self.version
        if (self.begin, self.end, self.complement) != (0, 100, False) or self.seed:
            ref["DataRearrangement"] = {
                "splitting": {
                    "percentBegin": self.begin,
                    "percentEnd": self.end,
                    "strategy": self.strategy,
                    "randomSeed": self.seed,
                    "complement": self.complement,
                }
            }
        return {"ChannelName": channel, "DataSource": {"DataSourceReference": ref}}


def _input_channel(name: str, value: str | DataSourceInput) -> dict[str, Any]:
    if isinstance(value, DataSourceInput):
        return value.channel(name)
    return {"ChannelName": name, "DataSource": {"S3DataSource": {"S3Uri": _channel_uri(value)}}}


def pack_source(source_dir: Path) -> bytes:
    """The source directory as sourcedir.tar.gz (SageMaker's name), in memory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for p in sorted(source_dir.rglob("*")):
            rel = p.relative_to(source_dir)
            if any(part in {"__pycache__", ".git"} for part in rel.parts) or p.is_symlink():
                continue
            if p.is_file():
                tar.add(p, arcname=rel.as_posix(), recursive=False)
    return buf.getvalue()


def distribution_hyperparameters(distribution: Mapping[str, Any]) -> dict[str, str]:
    """The hyperparameters the SageMaker SDK sets for ``distribution=`` (e.g.
    ``{"torch_distributed": {"enabled": True}}``), each ``json.dumps(True)``. Modes the server
    does not set up are passed on too, so that it refuses them by name."""
    out: dict[str, str] = {}
    for key, options in distribution.items():
        if key not in DISTRIBUTION_KEYS:
            raise ValidationError(
                f"distribution: unknown mode {key!r}; the SageMaker SDK's are "
                f"{', '.join(DISTRIBUTION_KEYS)} (this server runs torch_distributed and "
                "multi_worker_mirrored_strategy)",
                field="distribution",
            )
        if not isinstance(options, Mapping):
            raise ValidationError(
                f'distribution.{key}: give a mapping such as {{"enabled": True}}, not {options!r}',
                field=f"distribution.{key}",
            )
        if key == "smdistributed":
            for part, name in (
                ("dataparallel", DISTRIBUTION_KEYS["smdistributed"]),
                ("modelparallel", DISTRIBUTION_KEYS["mpi"]),
            ):
                if (options.get(part) or {}).get("enabled"):
                    out[name] = json.dumps(True)
        elif options.get("enabled"):
            out[DISTRIBUTION_KEYS[key]] = json.dumps(True)
    return out


class Estimator:
    """A training job in script mode (``entry_point``) or with a built-in ``algorithm``;
    ``distribution`` as the SageMaker SDK spells it (``distribution_hyperparameters``)."""

    def __init__(
        self,
        entry_point: str | None = None,
        *,
        algorithm: str | None = None,
        source_dir: str | None = None,
        hyperparameters: Mapping[str, Any] | None = None,
        instance_count: int = 1,
        instance_type: str = "local",
        max_run: int = 86400,
        base_job_name: str | None = None,
        metric_definitions: list[dict[str, str]] | None = None,
        environment: Mapping[str, str] | None = None,
        output_path: str | None = None,
        checkpoint_s3_uri: str | None = None,
        max_retry_attempts: int | None = None,
        distribution: Mapping[str, Any] | None = None,
        bucket: str | None = None,
        client: Client | None = None,
        output_kms_key: str | None = None,
    ) -> None:
        if (entry_point is None) == (algorithm is None):
            raise ValidationError(
                "give exactly one of entry_point (your script) or algorithm (a built-in, e.g. "
                "'linear-learner')",
                field="entry_point",
            )
        self.algorithm = algorithm
        self.entry_point: str | None = None
        self.source_dir: Path | None = None
        if entry_point is not None:
            src = Path(source_dir) if source_dir else Path(entry_point).parent
            script = src / Path(entry_point).name if source_dir else Path(entry_point)
            if not script.is_file():
                raise ValidationError(
                    f"entry_point {entry_point!r} not found"
                    + (f" in source_dir {source_dir!r}" if source_dir else "")
                    + f" (looked for {script.resolve()})",
                    field="entry_point",
                )
            self.entry_point = script.name
            self.source_dir = src.resolve()
        self.hyperparameters = dict(hyperparameters or {})
        self.distribution = distribution_hyperparameters(distribution or {})
        self.instance_count = instance_count
        self.instance_type = instance_type
        self.max_run = max_run
        self.base_job_name = base_job_name or (
            Path(entry_point).stem if entry_point else str(algorithm)
        )
        self.metric_definitions = metric_definitions or []
        self.environment = dict(environment or {})
        self.output_path = output_path
        self.checkpoint_s3_uri = checkpoint_s3_uri
        # The KmsKeyId the job's model and output are written under (OutputDataConfig.KmsKeyId).
        self.output_kms_key = output_kms_key
        self.max_retry_attempts = max_retry_attempts
        # None: the caller's account's default bucket, asked of the server when first needed.
        self._bucket = bucket
        self.client = client or Client()
        self.latest_training_job: str | None = None
        self.source_uri: str | None = None
        self._job: DescribeTrainingJobResponse | None = None

    @property
    def bucket(self) -> str:
        """Where the source and (with no output_path) the model go: the one given, else the
        caller's account's default bucket."""
        if self._bucket is None:
            self._bucket = self.client.default_bucket()
        return self._bucket

    def training_job_spec(
        self, job_name: str, inputs: Mapping[str, str | DataSourceInput], source_uri: str | None
    ) -> dict[str, Any]:
        hps = {
            k: v if isinstance(v, str) else json.dumps(v) for k, v in self.hyperparameters.items()
        }
        algorithm: dict[str, Any] = {
            "TrainingInputMode": "File",
            "MetricDefinitions": self.metric_definitions,
        }
        hps.update(self.distribution)
        if self.entry_point is not None:
            hps[PROGRAM_HYPERPARAMETER] = self.entry_point
            hps[SUBMIT_DIR_HYPERPARAMETER] = source_uri or ""
        else:
            algorithm["AlgorithmName"] = self.algorithm
        spec: dict[str, Any] = {
            "TrainingJobName": job_name,
            "AlgorithmSpecification": algorithm,
            "HyperParameters": hps,
            "InputDataConfig": [_input_channel(name, value) for name, value in inputs.items()],
            "ResourceConfig": {
                "InstanceType": self.instance_type,
                "InstanceCount": self.instance_count,
            },
            "StoppingCondition": {"MaxRuntimeInSeconds": self.max_run},
            "Environment": self.environment,
        }
        if self.output_path:
            spec["OutputDataConfig"] = {"S3OutputPath": self.output_path}
        if self.output_kms_key:
            out = spec.setdefault(
                "OutputDataConfig", {"S3OutputPath": f"s3://{self.bucket}/training-jobs"}
            )
            out["KmsKeyId"] = self.output_kms_key
        if self.checkpoint_s3_uri:
            spec["CheckpointConfig"] = {"S3Uri": self.checkpoint_s3_uri}
        if self.max_retry_attempts:
            spec["RetryStrategy"] = {"MaximumRetryAttempts": self.max_retry_attempts}
        return spec

    def prepare(
        self, name: str, inputs: str | DataSourceInput | Mapping[str, str | DataSourceInput] | None
    ) -> dict[str, Any]:
        """The CreateTrainingJob request of job ``name``, with the script's directory packed
        and uploaded under ``s3://<bucket>/<name>/source/`` (what ``fit`` and a tuner's trials
        run)."""
        channels: dict[str, str | DataSourceInput] = (
            {"training": inputs}
            if isinstance(inputs, str | DataSourceInput)
            else dict(inputs or {})
        )
        source_uri = None
        if self.source_dir is not None:
            source_uri = f"s3://{self.bucket}/{name}/source/sourcedir.tar.gz"
        spec = self.training_job_spec(name, channels, source_uri)  # validates inputs first
        if self.source_dir is not None and source_uri is not None:
            self.client.upload_bytes(pack_source(self.source_dir), source_uri)
        self.source_uri = source_uri
        return spec

    def fit(
        self,
        inputs: str | DataSourceInput | Mapping[str, str | DataSourceInput] | None = None,
        *,
        wait: bool = True,
        logs: bool = True,
        job_name: str | None = None,
        log_sink: Callable[[str], None] | None = None,
    ) -> DescribeTrainingJobResponse | None:
        name = job_name or unique_name(self.base_job_name)
        spec = self.prepare(name, inputs)
        self.client.create_training_job(spec)
        self.latest_training_job = name
        if not wait:
            return None
        sink = log_sink or (lambda text: print(text, end="", file=sys.stdout, flush=True))
        job = self.client.wait_for_training_job(name, on_log=sink if logs else None)
        self._job = job
        if job.TrainingJobStatus != TrainingJobStatus.COMPLETED:
            reason = job.FailureReason or job.StopReason or job.TrainingJobStatus
            raise JobFailedError(f"training job {name} ended {job.TrainingJobStatus}: {reason}")
        return job

    @property
    def model_data(self) -> str:
        if self.latest_training_job is None:
            raise ValidationError("no training job yet: call fit() first", field="model_data")
        job = self._job or self.client.describe_training_job(self.latest_training_job)
        if not job.ModelArtifacts.S3ModelArtifacts:
            raise ValidationError(
                f"training job {job.TrainingJobName} has no model artifact "
                f"({job.TrainingJobStatus})",
                field="model_data",
            )
        return job.ModelArtifacts.S3ModelArtifacts

    def deploy(
        self,
        initial_instance_count: int = 1,
        instance_type: str = "local",
        *,
        endpoint_name: str | None = None,
        public: bool = False,
        wait: bool = True,
    ) -> Predictor:
        name = endpoint_name or unique_name(self.base_job_name)
        self.client.deploy_model(
            name,
            self.model_data,
            program=self.entry_point,
            source=self.source_uri,
            instance_count=initial_instance_count,
            instance_type=instance_type,
            public=public,
        )
        if wait:
            self.client.wait_for_endpoint(name)
        return Predictor(name, client=self.client)

    def transformer(  # noqa: PLR0917 - the SageMaker SDK's positional order
        self,
        instance_count: int = 1,
        instance_type: str = "local",
        strategy: str | None = None,
        assemble_with: str | None = None,
        output_path: str | None = None,
        output_kms_key: str | None = None,
        accept: str | None = None,
        env: Mapping[str, str] | None = None,
        max_concurrent_transforms: int | None = None,
        max_payload: int | None = None,
        tags: Sequence[Mapping[str, str]] | Mapping[str, str] | None = None,
        *,
        volume_kms_key: str | None = None,
        model_name: str | None = None,
    ) -> Transformer:
        """A ``Transformer`` for the trained model: a Model named ``model_name`` (default:
        the training job's name) is made from the job's artifact, as ``deploy`` makes one."""
        from orchestrator.client.transformer import Transformer  # it imports this module

        model_data = self.model_data  # raises unless a training job ended with an artifact
        name = model_name or self.latest_training_job
        assert name is not None  # model_data has checked there is a job
        self.client.create_model_from_artifact(
            name, model_data, program=self.entry_point, source=self.source_uri
        )
        return Transformer(
            name,
            instance_count,
            instance_type,
            strategy=strategy,
            assemble_with=assemble_with,
            output_path=output_path,
            output_kms_key=output_kms_key,
            accept=accept,
            max_concurrent_transforms=max_concurrent_transforms,
            max_payload=max_payload,
            tags=tags,
            env=env,
            base_transform_job_name=self.base_job_name,
            client=self.client,
            volume_kms_key=volume_kms_key,
        )


class Predictor:
    """Calls an endpoint; JSON in and out by default, CSV with ``content_type='text/csv'``."""

    def __init__(
        self,
        endpoint_name: str,
        *,
        client: Client | None = None,
        content_type: str = "application/json",
    ) -> None:
        self.endpoint_name = endpoint_name
        self.client = client or Client()
        self.content_type = content_type

    def _serialize(self, data: Any) -> bytes:
        if isinstance(data, bytes):
            return data
        if hasattr(data, "tolist"):
            data = data.tolist()
        if self.content_type == "text/csv":
            rows = data if data and isinstance(data[0], list | tuple) else [data]
            return "\n".join(",".join(str(v) for v in row) for row in rows).encode()
        return json.dumps(data).encode()

    def predict(self, data: Any, *, target_variant: str | None = None) -> Any:
        result = self.client.invoke_endpoint(
            self.endpoint_name,
            self._serialize(data),
            content_type=self.content_type,
            target_variant=target_variant,
        )
        if "json" in result.content_type:
            return json.loads(result.body)
        return result.body

    def delete_endpoint(self, *, delete_config: bool = True, delete_model: bool = True) -> None:
        ep = self.client.describe_endpoint(self.endpoint_name)
        cfg = self.client.describe_endpoint_config(ep.EndpointConfigName)
        self.client.delete_endpoint(self.endpoint_name)
        self.client.wait_for_endpoint_deleted(self.endpoint_name)
        if delete_config:
            self.client.delete_endpoint_config(cfg.EndpointConfigName)
        if delete_model:
            for v in cfg.ProductionVariants:
                self.client.delete_model(v.ModelName)

"""``Transformer``: the SageMaker Python SDK's batch transform over ``Client``'s transform jobs.

``Transformer("my-model", instance_count=2, strategy="MultiRecord", assemble_with="Line",
output_path="s3://bucket/out").transform("s3://bucket/in/", content_type="text/csv",
split_type="Line")`` builds the CreateTransformJob request with the SDK's parameter names and
defaults, creates the job and waits for it (raising ``JobFailedError`` with the FailureReason
if it did not complete). Each input object's predictions land in
``<output_path>/<key>.out``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from orchestrator.client.client import Client
from orchestrator.client.estimator import unique_name
from orchestrator.errors import JobFailedError, ValidationError
from orchestrator.resources.transform import (
    CreateTransformJobRequest,
    DescribeTransformJobResponse,
    TransformJobStatus,
)
from orchestrator.resources.validation import parse_spec

# Where each SDK parameter lands in the request (longest path first wins).
SDK_PARAMETERS: dict[str, str] = {
    "TransformJobName": "job_name",
    "ModelName": "model_name",
    "MaxConcurrentTransforms": "max_concurrent_transforms",
    "MaxPayloadInMB": "max_payload",
    "BatchStrategy": "strategy",
    "Environment": "env",
    "ModelClientConfig": "model_client_config",
    "TransformInput.DataSource.S3DataSource.S3DataType": "data_type",
    "TransformInput.DataSource.S3DataSource.S3Uri": "data",
    "TransformInput.ContentType": "content_type",
    "TransformInput.CompressionType": "compression_type",
    "TransformInput.SplitType": "split_type",
    "TransformOutput.S3OutputPath": "output_path",
    "TransformOutput.Accept": "accept",
    "TransformOutput.AssembleWith": "assemble_with",
    "TransformOutput.KmsKeyId": "output_kms_key",
    "TransformResources.InstanceType": "instance_type",
    "TransformResources.InstanceCount": "instance_count",
    "TransformResources.VolumeKmsKeyId": "volume_kms_key",
    "DataProcessing.InputFilter": "input_filter",
    "DataProcessing.OutputFilter": "output_filter",
    "DataProcessing.JoinSource": "join_source",
    "Tags": "tags",
    "ExperimentConfig": "experiment_config",
}

Tags = Sequence[Mapping[str, str]] | Mapping[str, str]
ProgressCallback = Callable[[DescribeTransformJobResponse], None]


def sdk_parameter(field: str | None) -> str | None:
    """The SDK parameter behind a request field path (``TransformOutput.AssembleWith`` ->
    ``assemble_with``), or None."""
    if not field:
        return None
    for path in sorted(SDK_PARAMETERS, key=len, reverse=True):
        if field == path or field.startswith((f"{path}.", f"{path}[")):
            return SDK_PARAMETERS[path]
    return None


def _tag_list(tags: Tags | None) -> list[dict[str, str]]:
    if tags is None:
        return []
    if isinstance(tags, Mapping):
        return [{"Key": str(k), "Value": str(v)} for k, v in tags.items()]
    return [dict(t) for t in tags]


def _print_log(text: str) -> None:
    print(text, end="", file=sys.stdout, flush=True)


class Transformer:
    """Batch transform jobs for one Model (SageMaker SDK's names and defaults; ``client`` in
    place of ``sagemaker_session``). ``output_path`` None: ``s3://<the caller's account's
    default bucket>/<job name>``."""

    def __init__(  # noqa: PLR0917 - the SageMaker SDK's positional order
        self,
        model_name: str,
        instance_count: int = 1,
        instance_type: str = "local",
        strategy: str | None = None,
        assemble_with: str | None = None,
        output_path: str | None = None,
        output_kms_key: str | None = None,
        accept: str | None = None,
        max_concurrent_transforms: int | None = None,
        max_payload: int | None = None,
        tags: Tags | None = None,
        env: Mapping[str, str] | None = None,
        base_transform_job_name: str | None = None,
        client: Client | None = None,
        volume_kms_key: str | None = None,
    ) -> None:
        self.model_name = model_name
        self.instance_count = instance_count
        self.instance_type = instance_type
        self.strategy = strategy
        self.assemble_with = assemble_with
        self.output_path = output_path
        self.output_kms_key = output_kms_key
        self.accept = accept
        self.max_concurrent_transforms = max_concurrent_transforms
        self.max_payload = max_payload
        self.tags = _tag_list(tags)
        self.env = dict(env or {})
        self.base_transform_job_name = base_transform_job_name
        self.volume_kms_key = volume_kms_key
        self.client = client or Client()
        self.latest_transform_job: str | None = None
        self._reset_output_path = False

    # --- the request --------------------------------------------------------------------------
    def transform_job_spec(
        self,
        job_name: str,
        data: str,
        *,
        data_type: str = "S3Prefix",
        content_type: str | None = None,
        compression_type: str | None = None,
        split_type: str | None = None,
        input_filter: str | None = None,
        output_filter: str | None = None,
        join_source: str | None = None,
        experiment_config: Mapping[str, str] | None = None,
        model_client_config: Mapping[str, int] | None = None,
        output_path: str | None = None,
    ) -> dict[str, Any]:
        """The CreateTransformJob request, checked here; a bad value raises
        ``ValidationError`` naming the SDK parameter (``field``) and the request field."""
        if not isinstance(data, str) or not data.startswith("s3://"):
            raise ValidationError(
                f"data: give the input's s3:// URI (a prefix, or a manifest with "
                f"data_type='ManifestFile'), not {data!r}; upload local files first with "
                "Client.upload_dir",
                field="data",
            )
        source: dict[str, Any] = {"S3DataType": data_type, "S3Uri": data}
        transform_input: dict[str, Any] = {"DataSource": {"S3DataSource": source}}
        for key, value in (
            ("ContentType", content_type),
            ("CompressionType", compression_type),
            ("SplitType", split_type),
        ):
            if value is not None:
                transform_input[key] = value
        transform_output: dict[str, Any] = {"S3OutputPath": output_path or self.output_path}
        for key, value in (
            ("AssembleWith", self.assemble_with),
            ("Accept", self.accept),
            ("KmsKeyId", self.output_kms_key),
        ):
            if value is not None:
                transform_output[key] = value
        resources: dict[str, Any] = {
            "InstanceCount": self.instance_count,
            "InstanceType": self.instance_type,
        }
        if self.volume_kms_key is not None:
            resources["VolumeKmsKeyId"] = self.volume_kms_key
        spec: dict[str, Any] = {
            "TransformJobName": job_name,
            "ModelName": self.model_name,
            "TransformInput": transform_input,
            "TransformOutput": transform_output,
            "TransformResources": resources,
        }
        optional: dict[str, object] = {
            "BatchStrategy": self.strategy,
            "MaxConcurrentTransforms": self.max_concurrent_transforms,
            "MaxPayloadInMB": self.max_payload,
        }
        spec.update({k: v for k, v in optional.items() if v is not None})
        if self.env:
            spec["Environment"] = dict(self.env)
        processing = {
            key: value
            for key, value in (
                ("InputFilter", input_filter),
                ("OutputFilter", output_filter),
                ("JoinSource", join_source),
            )
            if value is not None
        }
        if processing:
            spec["DataProcessing"] = processing
        if model_client_config is not None:
            spec["ModelClientConfig"] = dict(model_client_config)
        if experiment_config is not None:
            spec["ExperimentConfig"] = dict(experiment_config)
        if self.tags:
            spec["Tags"] = [dict(t) for t in self.tags]
        _check(spec)
        return spec

    # --- run ----------------------------------------------------------------------------------
    def transform(  # noqa: PLR0917 - the SageMaker SDK's positional order
        self,
        data: str,
        data_type: str = "S3Prefix",
        content_type: str | None = None,
        compression_type: str | None = None,
        split_type: str | None = None,
        job_name: str | None = None,
        input_filter: str | None = None,
        output_filter: str | None = None,
        join_source: str | None = None,
        experiment_config: Mapping[str, str] | None = None,
        model_client_config: Mapping[str, int] | None = None,
        wait: bool = True,
        logs: bool = False,
        *,
        on_progress: ProgressCallback | None = None,
    ) -> DescribeTransformJobResponse | None:
        """Start a transform job of every object under ``data`` (or each one a manifest
        lists, with ``data_type='ManifestFile'``); with ``wait``, return it when it completed
        (``JobFailedError`` if it failed or was stopped); else None at once."""
        name = job_name or unique_name(self.base_transform_job_name or self.model_name)
        output_path = self.output_path
        default_output = output_path is None or self._reset_output_path
        if default_output:
            # Checked with the server's default bucket first, so bad input sends nothing; the
            # caller's own default bucket is asked for only once the request is good.
            output_path = f"s3://orchestrator/{name}"
        spec = self.transform_job_spec(
            name,
            data,
            data_type=data_type,
            content_type=content_type,
            compression_type=compression_type,
            split_type=split_type,
            input_filter=input_filter,
            output_filter=output_filter,
            join_source=join_source,
            experiment_config=experiment_config,
            model_client_config=model_client_config,
            output_path=output_path,
        )
        if default_output:
            output_path = f"s3://{self.client.default_bucket()}/{name}"
            spec["TransformOutput"]["S3OutputPath"] = output_path
        self.client.create_transform_job(spec)
        if self.output_path is None or self._reset_output_path:
            self.output_path = output_path
            self._reset_output_path = True
        self.latest_transform_job = name
        if not wait:
            return None
        return self.wait(logs=logs, on_progress=on_progress)

    def _name(self) -> str:
        if self.latest_transform_job is None:
            raise ValidationError(
                "no transform job yet: call transform() first", field="latest_transform_job"
            )
        return self.latest_transform_job

    def wait(
        self,
        logs: bool = False,
        *,
        poll: float = 0.5,
        timeout: float | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> DescribeTransformJobResponse:
        """Until the latest job ends; ``JobFailedError`` with its FailureReason unless it
        completed."""
        name = self._name()
        job = self.client.wait_for_transform_job(
            name,
            poll=poll,
            timeout=timeout,
            on_progress=on_progress,
            on_log=_print_log if logs else None,
        )
        if job.TransformJobStatus != TransformJobStatus.COMPLETED:
            reason = job.FailureReason or (
                "stopped on request"
                if job.TransformJobStatus == TransformJobStatus.STOPPED
                else "no reason given"
            )
            raise JobFailedError(f"transform job {name} ended {job.TransformJobStatus}: {reason}")
        return job

    def describe(self) -> DescribeTransformJobResponse:
        return self.client.describe_transform_job(self._name())

    def stop_transform_job(
        self, wait: bool = True, *, poll: float = 0.5, timeout: float | None = None
    ) -> DescribeTransformJobResponse | None:
        """Stop the latest job; with ``wait``, return it once it has ended."""
        name = self._name()
        self.client.stop_transform_job(name)
        if not wait:
            return None
        return self.client.wait_for_transform_job(name, poll=poll, timeout=timeout)

    def delete_model(self) -> None:
        """Delete the Model this Transformer uses."""
        self.client.delete_model(self.model_name)

    @classmethod
    def attach(cls, transform_job_name: str, client: Client | None = None) -> Transformer:
        """A Transformer with the settings of an existing job, that job as its latest."""
        api = client or Client()
        job = api.describe_transform_job(transform_job_name)
        out = job.TransformOutput
        resources = job.TransformResources
        transformer = cls(
            job.ModelName,
            resources.InstanceCount,
            resources.InstanceType,
            strategy=job.BatchStrategy,
            assemble_with=out.AssembleWith,
            output_path=out.S3OutputPath,
            output_kms_key=out.KmsKeyId,
            accept=out.Accept,
            max_concurrent_transforms=job.MaxConcurrentTransforms,
            max_payload=job.MaxPayloadInMB,
            env=job.Environment,
            base_transform_job_name=transform_job_name,
            client=api,
            volume_kms_key=resources.VolumeKmsKeyId,
        )
        transformer.latest_transform_job = transform_job_name
        return transformer


def _check(spec: dict[str, Any]) -> None:
    try:
        parse_spec(CreateTransformJobRequest, spec)
    except ValidationError as e:
        param = sdk_parameter(e.field)
        params = [param] if param else _parameters_named(e.message)
        if not params:
            raise
        message = e.message.removeprefix("(body): ")  # a check across fields: no one path
        raise ValidationError(f"{', '.join(params)}: {message}", field=params[0]) from e


def _parameters_named(message: str) -> list[str]:
    """The SDK parameters whose request fields a check across fields names, in its order."""
    found = []
    for path, param in SDK_PARAMETERS.items():
        at = message.find(path)
        if "." not in path and at >= 0:
            found.append((at, param))
    return [param for _, param in sorted(found)]

"""TransformJob: batch predictions for whole data sets, in SageMaker's shape. Pure.

A transform job scores every record of every object under an S3 prefix (or a manifest) with a
Model's serving containers on ``TransformResources.InstanceCount`` instances, and writes
``<S3OutputPath>/<key>.out`` for each input object (``controller/plan/transform.py`` plans it;
``orchestrator.transformer`` runs it). ``Progress`` and ``Instances`` in the status are ours.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from orchestrator.resources.common import (
    Condition,
    EnvironmentMap,
    Output,
    ResourceName,
    Spec,
    TagList,
)
from orchestrator.resources.common import S3Uri as _S3Uri
from orchestrator.resources.instances import InstanceTypeName

# SageMaker's limit on MaxConcurrentTransforms x MaxPayloadInMB.
MAX_PAYLOAD_PRODUCT_MB = 100
DEFAULT_MAX_PAYLOAD_MB = 6
JOIN_OUTPUT_KEY = "SageMakerOutput"  # JoinSource Input on JSON records: where the output goes

_KmsKey = Annotated[str, StringConstraints(max_length=2048)]
_Mime = Annotated[str, StringConstraints(max_length=256)]
JsonPathExpr = Annotated[str, StringConstraints(min_length=1, max_length=63)]


class TransformJobStatus(StrEnum):
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"


TERMINAL_TRANSFORM_STATUSES = frozenset(
    {TransformJobStatus.COMPLETED, TransformJobStatus.FAILED, TransformJobStatus.STOPPED}
)


class TransformS3DataSource(Spec):
    S3DataType: Literal["S3Prefix", "ManifestFile"] = "S3Prefix"
    S3Uri: _S3Uri


class TransformDataSource(Spec):
    S3DataSource: TransformS3DataSource


_SplitType = Literal["None", "Line", "RecordIO", "TFRecord"]
_Strategy = Literal["MultiRecord", "SingleRecord"]


class TransformInput(Spec):
    DataSource: TransformDataSource
    ContentType: _Mime | None = None
    CompressionType: Literal["None", "Gzip"] = "None"
    SplitType: _SplitType = "None"


class TransformOutput(Spec):
    S3OutputPath: _S3Uri
    Accept: _Mime | None = None
    AssembleWith: Literal["None", "Line"] = "None"
    KmsKeyId: _KmsKey | None = None


class TransformResources(Spec):
    InstanceType: InstanceTypeName = "local"
    InstanceCount: Annotated[int, Field(ge=1, le=100)] = 1
    VolumeKmsKeyId: _KmsKey | None = None
    TransformAmiVersion: Annotated[str, StringConstraints(max_length=63)] | None = None


class ModelClientConfig(Spec):
    InvocationsTimeoutInSeconds: Annotated[int, Field(ge=1, le=3600)] = 600
    InvocationsMaxRetries: Annotated[int, Field(ge=0, le=3)] = 3


class DataProcessing(Spec):
    InputFilter: JsonPathExpr | None = None
    OutputFilter: JsonPathExpr | None = None
    JoinSource: Literal["Input", "None"] = "None"


class BatchDataCaptureConfig(Spec):
    DestinationS3Uri: _S3Uri
    KmsKeyId: _KmsKey | None = None
    GenerateInferenceId: bool | None = None


class ExperimentConfig(Spec):
    ExperimentName: Annotated[str, StringConstraints(max_length=120)] | None = None
    TrialName: Annotated[str, StringConstraints(max_length=120)] | None = None
    TrialComponentDisplayName: Annotated[str, StringConstraints(max_length=120)] | None = None
    RunName: Annotated[str, StringConstraints(max_length=120)] | None = None


_TransformInput = TransformInput
_TransformOutput = TransformOutput
_TransformResources = TransformResources
_ModelClientConfig = ModelClientConfig
_DataProcessing = DataProcessing
_ExperimentConfig = ExperimentConfig


class CreateTransformJobRequest(Spec):
    """What a user asks for; the same shape as SageMaker's CreateTransformJob."""

    TransformJobName: ResourceName
    ModelName: ResourceName
    # None: what the model's container answers on GET /execution-parameters, else 1.
    MaxConcurrentTransforms: Annotated[int, Field(ge=0, le=1000)] | None = None
    ModelClientConfig: _ModelClientConfig | None = None
    MaxPayloadInMB: Annotated[int, Field(ge=0, le=100)] | None = None
    BatchStrategy: _Strategy | None = None
    Environment: EnvironmentMap = {}
    TransformInput: _TransformInput
    TransformOutput: _TransformOutput
    DataCaptureConfig: BatchDataCaptureConfig | None = None
    TransformResources: _TransformResources
    DataProcessing: _DataProcessing | None = None
    Tags: TagList = []
    ExperimentConfig: _ExperimentConfig | None = None

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        payload = self.max_payload_mb
        concurrent = self.MaxConcurrentTransforms or 1
        if payload and concurrent * payload > MAX_PAYLOAD_PRODUCT_MB:
            raise ValueError(
                f"MaxConcurrentTransforms x MaxPayloadInMB is {concurrent} x {payload} = "
                f"{concurrent * payload} MB; it may be at most {MAX_PAYLOAD_PRODUCT_MB} MB: lower "
                "MaxConcurrentTransforms or MaxPayloadInMB"
            )
        if payload == 0 and self.strategy == "MultiRecord":
            raise ValueError(
                "MaxPayloadInMB: 0 (no limit) is only allowed with BatchStrategy SingleRecord; "
                "set a limit of 1 to 100 MB or use SingleRecord"
            )
        return self

    @property
    def max_payload_mb(self) -> int:
        return DEFAULT_MAX_PAYLOAD_MB if self.MaxPayloadInMB is None else self.MaxPayloadInMB

    @property
    def strategy(self) -> _Strategy:
        """SageMaker's default is SingleRecord when BatchStrategy is not set."""
        return self.BatchStrategy or "SingleRecord"

    @property
    def client_config(self) -> _ModelClientConfig:
        return self.ModelClientConfig or _ModelClientConfig()


class TransformFileProgress(Output):
    """One input object's progress (ours)."""

    Key: str
    SizeBytes: int
    BytesProcessed: int = 0
    RecordsProcessed: int = 0
    Status: Literal["Pending", "InProgress", "Completed", "Failed"] = "Pending"


class TransformProgress(Output):
    """The whole job's progress, summed over its instances (ours)."""

    FilesTotal: int = 0
    FilesCompleted: int = 0
    BytesTotal: int = 0
    BytesProcessed: int = 0
    RecordsProcessed: int = 0
    RecordsPerSecond: float | None = None
    # The mean time the model took per request (the runner's view: send to whole answer).
    ModelLatencyMicroseconds: float | None = None
    # Files in progress first, then the others in input order; at most ``FILES_SHOWN``.
    Files: list[TransformFileProgress] = []


FILES_SHOWN = 100


class TransformInstanceState(Output):
    """One instance of the job (ours): its current attempt and how it stands."""

    Instance: int  # 0-based; the host is algo-<Instance + 1>
    Attempt: int = 0
    Status: Literal["Pending", "Starting", "Running", "Completed", "Failed", "Stopped"] = "Pending"
    StartTime: datetime | None = None
    EndTime: datetime | None = None
    Message: str = ""


class TransformJobState(Output):
    """What the control plane observed and decided; written only by the controller."""

    TransformJobStatus: TransformJobStatus = TransformJobStatus.IN_PROGRESS
    FailureReason: str | None = None
    TransformStartTime: datetime | None = None
    TransformEndTime: datetime | None = None
    Progress: TransformProgress = Field(default_factory=TransformProgress)
    Instances: list[TransformInstanceState] = []
    Conditions: list[Condition] = []
    StoppingSince: datetime | None = None


class DescribeTransformJobResponse(CreateTransformJobRequest, TransformJobState):
    model_config = Output.model_config
    TransformJobArn: str
    CreationTime: datetime
    LastModifiedTime: datetime


class TransformJobSummary(Output):
    TransformJobName: str
    TransformJobArn: str
    CreationTime: datetime
    TransformEndTime: datetime | None = None
    LastModifiedTime: datetime
    TransformJobStatus: TransformJobStatus
    FailureReason: str | None = None


class ListTransformJobsResponse(Output):
    TransformJobSummaries: list[TransformJobSummary]
    NextToken: str | None = None


class CreateTransformJobResponse(Output):
    TransformJobArn: str


SplitType = _SplitType
BatchStrategy = _Strategy

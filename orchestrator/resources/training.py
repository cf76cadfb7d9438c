"""TrainingJob: the spec (CreateTrainingJob), its status, and the Describe/List shapes.

Fields are named after their shapes (``ShuffleConfig: ShuffleConfig``) as in SageMaker; where
such a field has a default, its annotation goes through an ``_Alias`` so that the class
attribute (the default) does not shadow the type when annotations are evaluated.
"""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, Field, StringConstraints, field_validator, model_validator

from orchestrator.resources.common import (
    Condition,
    EnvironmentMap,
    Output,
    ResourceName,
    S3Uri,
    Spec,
    StorageUri,
    TagList,
)
from orchestrator.resources.datasources import AttributeName, AttributeType, DataRearrangement
from orchestrator.resources.images import own_image, stand_in
from orchestrator.resources.instances import InstanceTypeName

# Hyperparameters that select a script-mode entry point (the SageMaker training toolkit's names).
PROGRAM_HYPERPARAMETER = "sagemaker_program"
SUBMIT_DIR_HYPERPARAMETER = "sagemaker_submit_directory"
# The SageMaker SDK's distribution flags that set up a framework's variables
# (``resources.distribution``); one job gets one framework's.
TORCH_DISTRIBUTED = "sagemaker_torch_distributed_enabled"
MULTI_WORKER_MIRRORED = "sagemaker_multi_worker_mirrored_strategy_enabled"


class TrainingJobStatus(StrEnum):
    IN_PROGRESS = "InProgress"
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPING = "Stopping"
    STOPPED = "Stopped"


_TrainingJobStatus = TrainingJobStatus


TERMINAL_TRAINING_STATUSES = frozenset(
    {TrainingJobStatus.COMPLETED, TrainingJobStatus.FAILED, TrainingJobStatus.STOPPED}
)


class SecondaryStatus(StrEnum):
    STARTING = "Starting"
    PENDING = "Pending"
    DOWNLOADING = "Downloading"
    TRAINING = "Training"
    UPLOADING = "Uploading"
    STOPPING = "Stopping"
    STOPPED = "Stopped"
    MAX_RUNTIME_EXCEEDED = "MaxRuntimeExceeded"
    COMPLETED = "Completed"
    FAILED = "Failed"
    INTERRUPTED = "Interrupted"
    MAX_WAIT_TIME_EXCEEDED = "MaxWaitTimeExceeded"
    RESTARTING = "Restarting"


_SecondaryStatus = SecondaryStatus


class MetricDefinition(Spec):
    Name: Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=r"^.+$")]
    Regex: Annotated[str, StringConstraints(min_length=1, max_length=500)]

    @field_validator("Regex")
    @classmethod
    def _compiles(cls, v: str) -> str:
        try:
            pattern = re.compile(v)
        except re.error as e:
            raise ValueError(f"not a valid regular expression: {e}") from e
        if pattern.groups < 1:
            raise ValueError(
                "needs one capture group holding the metric's value, e.g. 'loss=(\\S+)'"
            )
        return v


class AlgorithmSpecification(Spec):
    TrainingImage: Annotated[str, StringConstraints(max_length=255)] | None = None
    AlgorithmName: Annotated[str, StringConstraints(max_length=170)] | None = None
    TrainingInputMode: Literal["File", "FastFile"] = "File"
    MetricDefinitions: Annotated[list[MetricDefinition], Field(max_length=40)] = []
    EnableSageMakerMetricsTimeSeries: bool = False
    ContainerEntrypoint: Annotated[list[str], Field(min_length=1, max_length=10)] | None = None
    ContainerArguments: Annotated[list[str], Field(min_length=1, max_length=100)] | None = None

    @property
    def own_image(self) -> str | None:
        """The image the job runs in as given (None: the project's own images run it: no
        TrainingImage, or one of SageMaker's that ``resources.images`` stands in for)."""
        return own_image(self.TrainingImage)


class S3DataSource(Spec):
    S3DataType: Literal["S3Prefix"] = "S3Prefix"
    S3Uri: StorageUri
    S3DataDistributionType: Literal["FullyReplicated", "ShardedByS3Key"] = "FullyReplicated"


_DataRearrangement = DataRearrangement


class DataSourceReference(Spec):
    """A channel read from a data source's snapshot (``resources/datasources.py``). The API
    pins what the job reads when it is created: ``Version`` (the latest completed, unless
    named), ``S3DataSource.S3Uri`` (that version's snapshot), and the data source's
    ``AttributeTypes`` and ``TargetAttributeName``; the download step keeps the rows the
    ``DataRearrangement`` selects and writes the schema beside them."""

    DataSourceName: ResourceName
    Version: Annotated[int, Field(ge=1)] | None = None
    DataRearrangement: _DataRearrangement | None = None
    AttributeTypes: dict[AttributeName, AttributeType] = {}
    TargetAttributeName: AttributeName | None = None


_DataSourceReference = DataSourceReference


# What S3DataSource holds until the API pins a data-source channel to its snapshot.
UNRESOLVED_DATA_SOURCE = "s3://unresolved-data-source/"


class DataSource(Spec):
    S3DataSource: S3DataSource
    DataSourceReference: _DataSourceReference | None = None

    @property
    def unresolved(self) -> bool:
        """A data source named without its snapshot (a custom resource applied as written)."""
        return self.S3DataSource.S3Uri.startswith(UNRESOLVED_DATA_SOURCE)

    @model_validator(mode="before")
    @classmethod
    def _reference_alone(cls, data: Any) -> Any:
        """A channel may name a data source alone: its snapshot's URI is filled in when the
        job is created (``api/datasources.py``)."""
        if (
            isinstance(data, dict)
            and data.get("DataSourceReference")
            and not data.get("S3DataSource")
        ):
            ref = data["DataSourceReference"]
            name = ref.get("DataSourceName", "") if isinstance(ref, dict) else ""
            return {**data, "S3DataSource": {"S3Uri": f"{UNRESOLVED_DATA_SOURCE}{name}/"}}
        return data


class ShuffleConfig(Spec):
    Seed: int


_ShuffleConfig = ShuffleConfig


class Channel(Spec):
    ChannelName: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9\.\-_]+$", max_length=64)]
    DataSource: DataSource
    ContentType: Annotated[str, StringConstraints(max_length=256)] | None = None
    CompressionType: Literal["None", "Gzip"] = "None"
    RecordWrapperType: Literal["None", "RecordIO"] = "None"
    InputMode: Literal["File", "FastFile"] | None = None
    ShuffleConfig: _ShuffleConfig | None = None


class OutputDataConfig(Spec):
    S3OutputPath: S3Uri
    KmsKeyId: Annotated[str, StringConstraints(max_length=2048)] | None = None
    CompressionType: Literal["GZIP", "NONE"] = "GZIP"


_OutputDataConfig = OutputDataConfig


class ResourceConfig(Spec):
    InstanceType: InstanceTypeName = "local"
    InstanceCount: Annotated[int, Field(ge=1, le=100)] = 1
    VolumeSizeInGB: Annotated[int, Field(ge=1, le=16384)] = 30
    VolumeKmsKeyId: str | None = None
    KeepAlivePeriodInSeconds: Annotated[int, Field(ge=0, le=3600)] | None = None


_ResourceConfig = ResourceConfig


class StoppingCondition(Spec):
    MaxRuntimeInSeconds: Annotated[int, Field(ge=1, le=2419200)] = 86400
    MaxWaitTimeInSeconds: Annotated[int, Field(ge=1)] | None = None
    MaxPendingTimeInSeconds: Annotated[int, Field(ge=7200, le=2419200)] | None = None


_StoppingCondition = StoppingCondition


ML_ROOT = "/opt/ml"
DEFAULT_CHECKPOINT_PATH = "/opt/ml/checkpoints"
# The directories of /opt/ml the training contract fills or empties itself: checkpoints may not
# live in (or be) one of them.
CONTRACT_DIRS = ("input", "model", "output", "code")


def checkpoint_subpath(local_path: str) -> str:
    """``LocalPath`` relative to ``/opt/ml`` (``checkpoints`` by default), or ``ValueError``
    saying what is wrong and what to write instead."""
    fix = (
        f"use a directory under {ML_ROOT} that is none of {', '.join(CONTRACT_DIRS)} "
        f"(default {DEFAULT_CHECKPOINT_PATH})"
    )
    if not local_path.startswith("/"):
        raise ValueError(f"{local_path!r} is not an absolute path; {fix}")
    parts = [p for p in local_path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"{local_path!r} contains '..'; {fix}")
    if parts[:2] != ["opt", "ml"]:
        raise ValueError(f"{local_path!r} is outside {ML_ROOT}; {fix}")
    rest = parts[2:]
    if not rest:
        raise ValueError(f"{local_path!r} is {ML_ROOT} itself; {fix}")
    if rest[0] in CONTRACT_DIRS:
        raise ValueError(
            f"{local_path!r} is inside {ML_ROOT}/{rest[0]}, which the training contract owns; {fix}"
        )
    return "/".join(rest)


class CheckpointConfig(Spec):
    S3Uri: S3Uri
    LocalPath: Annotated[str, StringConstraints(max_length=4096)] = DEFAULT_CHECKPOINT_PATH

    @field_validator("LocalPath")
    @classmethod
    def _under_opt_ml(cls, v: str) -> str:
        checkpoint_subpath(v)
        return v

    @property
    def subpath(self) -> str:
        """Where checkpoints are under ``/opt/ml`` (each backend's stand-in for it)."""
        return checkpoint_subpath(self.LocalPath)


_CheckpointConfig = CheckpointConfig


# On SageMaker's wire (no such member there), ``RetryStrategy.RetryableExitCodes`` travels as
# this tag: its entries joined with commas ("3,137-143").
RETRYABLE_EXIT_CODES_TAG = "orchestrator:retryable-exit-codes"
EXIT_CODE_FORMS = "'N' or 'N-M' with 1 <= N <= M <= 255 (e.g. '3' or '137-143')"


def _exit_code_entry(entry: str) -> str:
    parse_exit_codes(entry)
    return entry


def parse_exit_codes(entry: str) -> range:
    """One ``RetryableExitCodes`` entry as the exit codes it names; ValueError if malformed."""
    first, dash, last = entry.strip().partition("-")
    if not first.isdigit() or (dash and not last.isdigit()):
        raise ValueError(f"{entry!r} is not of the form {EXIT_CODE_FORMS}")
    low, high = int(first), int(last) if dash else int(first)
    if not 1 <= low <= high <= 255:
        raise ValueError(f"{entry!r} is outside 1..255 or reversed; use {EXIT_CODE_FORMS}")
    return range(low, high + 1)


class RetryStrategy(Spec):
    MaximumRetryAttempts: Annotated[int, Field(ge=1, le=30)]
    # Ours (beside SageMaker's): exit codes of the user's code that are retried too (a user
    # error is not, otherwise). A process killed by signal S counts as exit code 128 + S.
    RetryableExitCodes: Annotated[
        list[Annotated[str, AfterValidator(_exit_code_entry)]], Field(max_length=100)
    ] = []

    def retries_exit_code(self, code: int) -> bool:
        return any(code in parse_exit_codes(entry) for entry in self.RetryableExitCodes)


_RetryStrategy = RetryStrategy


HyperParameters = Annotated[
    dict[
        Annotated[str, StringConstraints(max_length=256)],
        Annotated[str, StringConstraints(max_length=2500)],
    ],
    Field(max_length=100),
]

_HyperParameters = HyperParameters


class CreateTrainingJobRequest(Spec):
    """What a user asks for. Stored as the job's spec; the same shape as SageMaker's call."""

    TrainingJobName: ResourceName
    AlgorithmSpecification: AlgorithmSpecification
    HyperParameters: _HyperParameters = {}
    RoleArn: Annotated[str, StringConstraints(max_length=2048)] | None = None
    InputDataConfig: Annotated[list[Channel], Field(max_length=20)] = []
    OutputDataConfig: _OutputDataConfig | None = None
    ResourceConfig: _ResourceConfig = Field(default_factory=ResourceConfig)
    StoppingCondition: _StoppingCondition = Field(default_factory=StoppingCondition)
    Tags: TagList = []
    EnableNetworkIsolation: bool = False
    EnableInterContainerTrafficEncryption: bool = False
    EnableManagedSpotTraining: bool = False
    CheckpointConfig: _CheckpointConfig | None = None
    Environment: EnvironmentMap = {}
    RetryStrategy: _RetryStrategy | None = None
    # Ours, beside SageMaker's (the tag ``orchestrator:priority`` on the SageMaker wire): the
    # queue admits higher priorities first, then older jobs (controller/plan/admission.py).
    Priority: Annotated[int, Field(ge=-1000, le=1000)] | None = None

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        names = [c.ChannelName for c in self.InputDataConfig]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"InputDataConfig: channel names must be unique; repeated: {dupes}")
        algo = self.AlgorithmSpecification
        if not (
            algo.TrainingImage
            or algo.AlgorithmName
            or algo.ContainerEntrypoint
            or PROGRAM_HYPERPARAMETER in self.HyperParameters
        ):
            raise ValueError(
                "nothing to run: set AlgorithmSpecification.TrainingImage, "
                "AlgorithmSpecification.AlgorithmName, AlgorithmSpecification.ContainerEntrypoint, "
                f"or the script-mode hyperparameters {PROGRAM_HYPERPARAMETER!r} and "
                f"{SUBMIT_DIR_HYPERPARAMETER!r}"
            )
        _check_stand_in(self)
        both = [
            n
            for n in (TORCH_DISTRIBUTED, MULTI_WORKER_MIRRORED)
            if str(self.HyperParameters.get(n, "")).strip('"').lower() == "true"
        ]
        if len(both) == 2:
            raise ValueError(
                f"HyperParameters.{MULTI_WORKER_MIRRORED}: a job gets one framework's "
                f"distributed environment, and {TORCH_DISTRIBUTED} is set too; keep one "
                "(distribution={'torch_distributed': ...} or "
                "{'multi_worker_mirrored_strategy': ...})"
            )
        _check_max_wait(self)
        return self


def _check_max_wait(spec: CreateTrainingJobRequest) -> None:
    """SageMaker's rules for MaxWaitTimeInSeconds: spot jobs only, at least the runtime."""
    stop = spec.StoppingCondition
    if stop.MaxWaitTimeInSeconds is None:
        return
    if not spec.EnableManagedSpotTraining:
        raise ValueError(
            "StoppingCondition.MaxWaitTimeInSeconds: applies to managed spot training only; "
            "set EnableManagedSpotTraining to true, or leave MaxWaitTimeInSeconds out"
        )
    if stop.MaxWaitTimeInSeconds < stop.MaxRuntimeInSeconds:
        raise ValueError(
            f"StoppingCondition.MaxWaitTimeInSeconds: {stop.MaxWaitTimeInSeconds} is smaller "
            f"than StoppingCondition.MaxRuntimeInSeconds ({stop.MaxRuntimeInSeconds}); it is the "
            "total time, waits for capacity included, so set it to at least the runtime"
        )


def _check_stand_in(spec: CreateTrainingJobRequest) -> None:
    """A SageMaker image this server stands in for runs the project's code its own way: say
    what such a job needs rather than run something else than was asked."""
    algo = spec.AlgorithmSpecification
    image = stand_in(algo.TrainingImage)
    if image is None:
        return
    what = f"TrainingImage {image.image!r} (SageMaker's {image.name} image)"
    if algo.ContainerEntrypoint:
        raise ValueError(
            f"AlgorithmSpecification.ContainerEntrypoint: the {what} is run here by the "
            "project's own image, which has no such entrypoint; leave ContainerEntrypoint out, "
            "or name your own image"
        )
    if image.kind == "framework" and PROGRAM_HYPERPARAMETER not in spec.HyperParameters:
        raise ValueError(
            f"AlgorithmSpecification.TrainingImage: the {what} runs in script mode here; set "
            f"the hyperparameters {PROGRAM_HYPERPARAMETER!r} and {SUBMIT_DIR_HYPERPARAMETER!r} "
            "(the SDK's framework estimators do), or name your own image"
        )
    if image.kind == "builtin" and algo.AlgorithmName not in (None, image.name):
        raise ValueError(
            f"AlgorithmSpecification.AlgorithmName: {algo.AlgorithmName!r} and the {what} "
            "name two algorithms; set one of them"
        )


class SecondaryStatusTransition(Output):
    Status: SecondaryStatus
    StartTime: datetime
    EndTime: datetime | None = None
    StatusMessage: str = ""


class MetricData(Output):
    MetricName: str
    Value: float
    Timestamp: datetime


class ModelArtifacts(Output):
    S3ModelArtifacts: str = ""


_ModelArtifacts = ModelArtifacts


class AttemptOutcome(StrEnum):
    COMPLETED = "Completed"
    FAILED = "Failed"
    STOPPED = "Stopped"
    PREEMPTED = "Preempted"


class TrainingAttempt(Output):
    """One ended attempt of a training job (ours: SageMaker shows only the last)."""

    AttemptNumber: int
    StartTime: datetime | None = None
    EndTime: datetime
    Outcome: AttemptOutcome
    FailureReason: str | None = None
    # A new attempt followed because of this one (a retry or, Preempted, a relaunch).
    Retried: bool = False


class TrainingJobState(Output):
    """What the control plane observed and decided; written only by the controller."""

    TrainingJobStatus: _TrainingJobStatus = TrainingJobStatus.IN_PROGRESS
    SecondaryStatus: _SecondaryStatus = SecondaryStatus.STARTING
    FailureReason: str | None = None
    SecondaryStatusTransitions: list[SecondaryStatusTransition] = []
    TrainingStartTime: datetime | None = None
    TrainingEndTime: datetime | None = None
    TrainingTimeInSeconds: int | None = None
    BillableTimeInSeconds: int | None = None
    FinalMetricDataList: list[MetricData] = []
    ModelArtifacts: _ModelArtifacts = Field(default_factory=ModelArtifacts)
    Conditions: list[Condition] = []
    # Bookkeeping of the controller (also shown: honest about retries and stops).
    Attempt: int = 0
    # GPU device indexes held by the current attempt (released when the job ends).
    AllocatedGpus: list[int] = []
    StoppingSince: datetime | None = None
    StopReason: str | None = None
    # Every ended attempt, oldest first; the next attempt's launch time while it backs off;
    # how many attempts were preempted (not counted against MaximumRetryAttempts).
    Attempts: list[TrainingAttempt] = []
    NextAttemptTime: datetime | None = None
    PreemptionCount: int = 0
    # 1-based place in the admission queue while the job waits (Pending); computed on read by
    # the API, never stored.
    QueuePosition: int | None = None


class DescribeTrainingJobResponse(CreateTrainingJobRequest, TrainingJobState):
    model_config = Output.model_config
    TrainingJobArn: str
    CreationTime: datetime
    LastModifiedTime: datetime


class TrainingJobSummary(Output):
    TrainingJobName: str
    TrainingJobArn: str
    CreationTime: datetime
    TrainingEndTime: datetime | None = None
    LastModifiedTime: datetime
    TrainingJobStatus: _TrainingJobStatus
    SecondaryStatus: _SecondaryStatus | None = None
    # Ours: while it waits in the queue, its place and why (the Pending transition's message).
    QueuePosition: int | None = None
    StatusMessage: str | None = None


class ListTrainingJobsResponse(Output):
    TrainingJobSummaries: list[TrainingJobSummary]
    NextToken: str | None = None


class CreateTrainingJobResponse(Output):
    TrainingJobArn: str

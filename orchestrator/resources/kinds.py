"""The resource kinds, with the names each front door uses for them. Pure.

One entry per kind is the one source of its names: the REST collection
(``/api/v1/<plural_path>``), the ARN resource type, the SageMaker name field, the custom
resource's plural and short names on Kubernetes, its spec and status models, and where its
primary status lives in the status document. The REST routes, the client, the CLI, the CRDs,
the desired-state sources and the reconciler all read names from here; nothing else spells a
kind's plural.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from orchestrator.resources.datasources import (
    CreateDataSourceRequest,
    DataSourceState,
    DataSourceStatus,
)
from orchestrator.resources.endpoints import (
    CreateEndpointConfigRequest,
    CreateEndpointRequest,
    EndpointState,
    EndpointStatus,
)
from orchestrator.resources.models import CreateModelRequest
from orchestrator.resources.training import (
    TERMINAL_TRAINING_STATUSES,
    CreateTrainingJobRequest,
    TrainingJobState,
    TrainingJobStatus,
)
from orchestrator.resources.transform import (
    TERMINAL_TRANSFORM_STATUSES,
    CreateTransformJobRequest,
    TransformJobState,
    TransformJobStatus,
)
from orchestrator.resources.tuning import (
    TERMINAL_TUNING_STATUSES,
    CreateHyperParameterTuningJobRequest,
    HyperParameterTuningJobState,
    TuningJobStatus,
)

REST_PREFIX = "/api/v1"


@dataclass(frozen=True)
class Kind:
    name: str  # "TrainingJob"
    plural_path: str  # REST collection: "training-jobs"
    arn_slug: str  # ARN resource type: "training-job"
    name_field: str  # "TrainingJobName"
    spec: type[BaseModel]
    # The status document's model (None: the kind has no lifecycle, only a Valid condition).
    status: type[BaseModel] | None = None
    # The custom resource's plural and short names (``kubectl get otj``).
    crd_plural: str = ""
    short_names: tuple[str, ...] = ()
    # The status field holding the primary status, and its value before the first pass.
    phase_field: str | None = None
    initial_phase: str = "Ready"
    # Primary statuses after which the resource needs no reconciling (until it is deleted).
    terminal_phases: frozenset[str] = field(default_factory=frozenset)
    # Whether a status in a terminal phase still has work running (a failed transform job
    # stopping its other instances), which keeps it reconciled until that ends: for sources
    # that read activity from the status (the custom resources; the SQL store keeps a flag).
    running_after_end: Callable[[dict[str, Any]], bool] | None = None

    @property
    def collection(self) -> str:
        """The REST collection: ``/api/v1/training-jobs``."""
        return f"{REST_PREFIX}/{self.plural_path}"

    @property
    def reconciled(self) -> bool:
        """Whether a planner drives the kind (it has a lifecycle), not just validation."""
        return self.status is not None

    def active(self, phase: str, status: dict[str, Any]) -> bool:
        """Whether a resource in ``phase`` with ``status`` still needs reconciling."""
        if phase not in self.terminal_phases:
            return True
        return self.running_after_end is not None and self.running_after_end(status)

    def phase_of(self, status: dict[str, Any]) -> str:
        if self.phase_field is None:
            return self.initial_phase
        return str(status.get(self.phase_field) or self.initial_phase)

    def initial_status(self) -> dict[str, Any]:
        return self.status().model_dump(mode="json") if self.status is not None else {}


TRAINING_JOB = Kind(
    name="TrainingJob",
    plural_path="training-jobs",
    arn_slug="training-job",
    name_field="TrainingJobName",
    spec=CreateTrainingJobRequest,
    status=TrainingJobState,
    crd_plural="trainingjobs",
    short_names=("otj",),
    phase_field="TrainingJobStatus",
    initial_phase=TrainingJobStatus.IN_PROGRESS.value,
    terminal_phases=frozenset(s.value for s in TERMINAL_TRAINING_STATUSES),
)
MODEL = Kind(
    name="Model",
    plural_path="models",
    arn_slug="model",
    name_field="ModelName",
    spec=CreateModelRequest,
    crd_plural="models",
    short_names=("omodel",),
)
ENDPOINT_CONFIG = Kind(
    name="EndpointConfig",
    plural_path="endpoint-configs",
    arn_slug="endpoint-config",
    name_field="EndpointConfigName",
    spec=CreateEndpointConfigRequest,
    crd_plural="endpointconfigs",
    short_names=("oepc",),
)
ENDPOINT = Kind(
    name="Endpoint",
    plural_path="endpoints",
    arn_slug="endpoint",
    name_field="EndpointName",
    spec=CreateEndpointRequest,
    status=EndpointState,
    crd_plural="endpoints",
    short_names=("oep",),
    phase_field="EndpointStatus",
    initial_phase=EndpointStatus.CREATING.value,
)

HYPER_PARAMETER_TUNING_JOB = Kind(
    name="HyperParameterTuningJob",
    plural_path="hyper-parameter-tuning-jobs",
    arn_slug="hyper-parameter-tuning-job",
    name_field="HyperParameterTuningJobName",
    spec=CreateHyperParameterTuningJobRequest,
    status=HyperParameterTuningJobState,
    crd_plural="hyperparametertuningjobs",
    short_names=("ohpt",),
    phase_field="HyperParameterTuningJobStatus",
    initial_phase=TuningJobStatus.IN_PROGRESS.value,
    terminal_phases=frozenset(s.value for s in TERMINAL_TUNING_STATUSES),
)

TRANSFORM_JOB = Kind(
    name="TransformJob",
    plural_path="transform-jobs",
    arn_slug="transform-job",
    name_field="TransformJobName",
    spec=CreateTransformJobRequest,
    status=TransformJobState,
    crd_plural="transformjobs",
    short_names=("otf",),
    phase_field="TransformJobStatus",
    initial_phase=TransformJobStatus.IN_PROGRESS.value,
    terminal_phases=frozenset(s.value for s in TERMINAL_TRANSFORM_STATUSES),
    running_after_end=lambda status: any(
        i.get("Status") in ("Starting", "Running") for i in status.get("Instances") or []
    ),
)

# No terminal phases: a completed data source takes a new snapshot when its spec changes (a
# custom resource's source reads activity from the status alone).
DATA_SOURCE = Kind(
    name="DataSource",
    plural_path="data-sources",
    arn_slug="datasource",
    name_field="DataSourceName",
    spec=CreateDataSourceRequest,
    status=DataSourceState,
    crd_plural="datasources",
    short_names=("ods",),
    phase_field="Status",
    initial_phase=DataSourceStatus.PENDING.value,
)

KINDS: dict[str, Kind] = {
    k.name: k
    for k in (
        TRAINING_JOB,
        MODEL,
        ENDPOINT_CONFIG,
        ENDPOINT,
        HYPER_PARAMETER_TUNING_JOB,
        TRANSFORM_JOB,
        DATA_SOURCE,
    )
}


def kind_named(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise ValueError(f"unknown kind {name!r}; kinds: {sorted(KINDS)}") from None

"""EndpointConfig and Endpoint: production and shadow variants, autoscaling, blue/green updates,
their status, and the Describe/List/Update shapes.

SageMaker spreads these over three services (SageMaker's variants and deployment configs,
Application Auto Scaling's target tracking, CloudWatch's alarms); here they are fields of the
one EndpointConfig/Endpoint spec, so a manifest holds the whole serving setup. The extensions
(``TargetTracking``, ``ScaleToZeroAfterIdleSeconds``, the alarms' own thresholds) say so.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal, Self

from pydantic import Field, StringConstraints, model_validator

from orchestrator.errors import ValidationError
from orchestrator.resources.common import Condition, Output, ResourceName, Spec, TagList
from orchestrator.resources.instances import InstanceTypeName

ScalingMetric = Literal[
    "SageMakerVariantInvocationsPerInstance",
    "SageMakerVariantConcurrentRequestsPerModelHighResolution",
]
INVOCATIONS_PER_INSTANCE: ScalingMetric = "SageMakerVariantInvocationsPerInstance"
CONCURRENT_REQUESTS: ScalingMetric = "SageMakerVariantConcurrentRequestsPerModelHighResolution"


class TargetTrackingScalingPolicyConfiguration(Spec):
    """Keep the metric near ``TargetValue`` per instance (Application Auto Scaling's shape).

    ``SageMakerVariantInvocationsPerInstance``: invocations per instance per minute.
    ``SageMakerVariantConcurrentRequestsPerModelHighResolution``: requests in flight per
    instance. Cooldowns are seconds between two scale-outs (or two scale-ins) and after a
    scale-out before any scale-in.
    """

    PredefinedMetricType: ScalingMetric = INVOCATIONS_PER_INSTANCE
    TargetValue: Annotated[float, Field(gt=0.0, le=1e9)]
    ScaleOutCooldown: Annotated[int, Field(ge=0, le=86400)] = 30
    ScaleInCooldown: Annotated[int, Field(ge=0, le=86400)] = 300
    DisableScaleIn: bool = False


class ManagedInstanceScaling(Spec):
    """Instance bounds of a variant (SageMaker's shape) and, as extensions, the target-tracking
    policy and the idle time after which a variant with ``MinInstanceCount: 0`` scales to zero
    (requests that arrive then are held while a replica starts, not refused)."""

    Status: Literal["ENABLED", "DISABLED"] = "ENABLED"
    MinInstanceCount: Annotated[int, Field(ge=0, le=100)] = 1
    MaxInstanceCount: Annotated[int, Field(ge=1, le=100)]
    TargetTracking: TargetTrackingScalingPolicyConfiguration | None = None
    ScaleToZeroAfterIdleSeconds: Annotated[int, Field(ge=10, le=86400)] = 300

    @model_validator(mode="after")
    def _bounds(self) -> Self:
        if self.MinInstanceCount > self.MaxInstanceCount:
            raise ValueError(
                f"MinInstanceCount ({self.MinInstanceCount}) must not exceed "
                f"MaxInstanceCount ({self.MaxInstanceCount})"
            )
        return self

    @property
    def enabled(self) -> bool:
        return self.Status == "ENABLED"


_ManagedInstanceScaling = ManagedInstanceScaling


class ProductionVariant(Spec):
    VariantName: ResourceName
    ModelName: ResourceName
    InitialInstanceCount: Annotated[int, Field(ge=1, le=100)] = 1
    InstanceType: InstanceTypeName = "local"
    InitialVariantWeight: Annotated[float, Field(ge=0.0, le=1000.0)] = 1.0
    ContainerStartupHealthCheckTimeoutInSeconds: Annotated[int, Field(ge=60, le=3600)] | None = None
    ModelDataDownloadTimeoutInSeconds: Annotated[int, Field(ge=60, le=3600)] | None = None
    ManagedInstanceScaling: _ManagedInstanceScaling | None = None

    @model_validator(mode="after")
    def _initial_within_bounds(self) -> Self:
        s = self.ManagedInstanceScaling
        if s is not None and s.enabled:
            low = max(1, s.MinInstanceCount)
            if not low <= self.InitialInstanceCount <= s.MaxInstanceCount:
                raise ValueError(
                    f"InitialInstanceCount ({self.InitialInstanceCount}) must lie within "
                    f"ManagedInstanceScaling [{low}, {s.MaxInstanceCount}]"
                )
        return self

    @property
    def scaling(self) -> _ManagedInstanceScaling | None:
        """The scaling settings when enabled, else None (a fixed instance count)."""
        s = self.ManagedInstanceScaling
        return s if s is not None and s.enabled else None


class CreateEndpointConfigRequest(Spec):
    EndpointConfigName: ResourceName
    ProductionVariants: Annotated[list[ProductionVariant], Field(min_length=1, max_length=10)]
    # A shadow variant gets a copy of a share of live traffic (its weight relative to the
    # production variants' total, at most all of it); its answers are measured, never returned.
    ShadowProductionVariants: Annotated[list[ProductionVariant], Field(max_length=1)] = []
    Tags: TagList = []
    KmsKeyId: Annotated[str, StringConstraints(max_length=2048)] | None = None

    @model_validator(mode="after")
    def _variants_coherent(self) -> Self:
        names = [v.VariantName for v in self.ProductionVariants + self.ShadowProductionVariants]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(
                "ProductionVariants/ShadowProductionVariants: variant names must be unique; "
                f"repeated: {dupes}"
            )
        if sum(v.InitialVariantWeight for v in self.ProductionVariants) <= 0:
            raise ValueError("ProductionVariants: at least one InitialVariantWeight must be > 0")
        return self

    @property
    def all_variants(self) -> list[ProductionVariant]:
        return self.ProductionVariants + self.ShadowProductionVariants

    @property
    def shadow_fraction(self) -> float:
        """The share of live requests copied to the shadow variant (0 without one)."""
        if not self.ShadowProductionVariants:
            return 0.0
        total = sum(v.InitialVariantWeight for v in self.ProductionVariants)
        return min(1.0, self.ShadowProductionVariants[0].InitialVariantWeight / total)


class DescribeEndpointConfigResponse(CreateEndpointConfigRequest):
    model_config = Output.model_config
    EndpointConfigArn: str
    CreationTime: datetime


class EndpointConfigSummary(Output):
    EndpointConfigName: str
    EndpointConfigArn: str
    CreationTime: datetime


class ListEndpointConfigsResponse(Output):
    EndpointConfigs: list[EndpointConfigSummary]
    NextToken: str | None = None


class CreateEndpointConfigResponse(Output):
    EndpointConfigArn: str


# --- deployments (blue/green) ---------------------------------------------------------------
class CapacitySize(Spec):
    Type: Literal["INSTANCE_COUNT", "CAPACITY_PERCENT"]
    Value: Annotated[int, Field(ge=1)]

    @model_validator(mode="after")
    def _percent(self) -> Self:
        if self.Type == "CAPACITY_PERCENT" and self.Value > 100:
            raise ValueError(f"Value: a CAPACITY_PERCENT is at most 100, not {self.Value}")
        return self


class TrafficRoutingConfig(Spec):
    """How traffic moves to the new fleet: all at once, a canary share then the rest, or in
    linear steps; ``WaitIntervalInSeconds`` is the bake time after each shift."""

    Type: Literal["ALL_AT_ONCE", "CANARY", "LINEAR"] = "ALL_AT_ONCE"
    WaitIntervalInSeconds: Annotated[int, Field(ge=0, le=3600)] = 0
    CanarySize: CapacitySize | None = None
    LinearStepSize: CapacitySize | None = None

    @model_validator(mode="after")
    def _sizes(self) -> Self:
        if self.Type == "CANARY" and self.CanarySize is None:
            raise ValueError("CanarySize is required when Type is CANARY")
        if self.Type == "LINEAR" and self.LinearStepSize is None:
            raise ValueError("LinearStepSize is required when Type is LINEAR")
        if self.Type != "CANARY" and self.CanarySize is not None:
            raise ValueError(f"CanarySize applies to Type CANARY only, not {self.Type}")
        if self.Type != "LINEAR" and self.LinearStepSize is not None:
            raise ValueError(f"LinearStepSize applies to Type LINEAR only, not {self.Type}")
        return self


class BlueGreenUpdatePolicy(Spec):
    TrafficRoutingConfiguration: TrafficRoutingConfig = TrafficRoutingConfig()
    # Blue stays up (idle) this long after the shift completes, for a fast manual way back.
    TerminationWaitInSeconds: Annotated[int, Field(ge=0, le=3600)] = 0
    MaximumExecutionTimeoutInSeconds: Annotated[int, Field(ge=600, le=28800)] | None = None


class RollbackAlarm(Spec):
    """An alarm that rolls the update back: a metric alarm by its name alone (as SageMaker's,
    which name CloudWatch alarms: it fires while that alarm, ``orch alarms``, is in ALARM), or
    one on the new fleet's own traffic with MetricName and Threshold (an extension).

    ``Invocation5XXErrorRate``: the share of its invocations answered 5xx (0..1).
    ``ModelLatency`` / ``OverheadLatency``: the p99, in microseconds. Evaluated over the new
    fleet's traffic since the current traffic step began, once ``MinInvocations`` were served.
    """

    AlarmName: Annotated[str, StringConstraints(min_length=1, max_length=255)]
    MetricName: Literal["Invocation5XXErrorRate", "ModelLatency", "OverheadLatency"] | None = None
    Threshold: Annotated[float, Field(ge=0.0)] | None = None
    MinInvocations: Annotated[int, Field(ge=1, le=1_000_000)] = 1

    @model_validator(mode="after")
    def _metric_and_threshold(self) -> RollbackAlarm:
        if (self.MetricName is None) != (self.Threshold is None):
            missing = "Threshold" if self.Threshold is None else "MetricName"
            raise ValueError(
                f"{missing}: give MetricName and Threshold together (an alarm on the new "
                "fleet's traffic), or neither (a metric alarm of that AlarmName)"
            )
        return self


class AutoRollbackConfig(Spec):
    Alarms: Annotated[list[RollbackAlarm], Field(min_length=1, max_length=10)]


DEFAULT_ROLLBACK_ALARMS = (
    RollbackAlarm(AlarmName="default-5xx", MetricName="Invocation5XXErrorRate", Threshold=0.05),
)


_BlueGreenUpdatePolicy = BlueGreenUpdatePolicy


class DeploymentConfig(Spec):
    BlueGreenUpdatePolicy: _BlueGreenUpdatePolicy = Field(default_factory=_BlueGreenUpdatePolicy)
    # Without one, a default alarm rolls back when over 5% of the new fleet's answers are 5xx.
    AutoRollbackConfiguration: AutoRollbackConfig | None = None

    @property
    def alarms(self) -> tuple[RollbackAlarm, ...]:
        if self.AutoRollbackConfiguration is None:
            return DEFAULT_ROLLBACK_ALARMS
        return tuple(self.AutoRollbackConfiguration.Alarms)


class EndpointStatus(StrEnum):
    OUT_OF_SERVICE = "OutOfService"
    CREATING = "Creating"
    UPDATING = "Updating"
    SYSTEM_UPDATING = "SystemUpdating"
    ROLLING_BACK = "RollingBack"
    IN_SERVICE = "InService"
    DELETING = "Deleting"
    FAILED = "Failed"


class DesiredWeightAndCapacity(Spec):
    """One variant's weight and/or instance count, in place of its EndpointConfig's initial
    ones (SageMaker's shape, as UpdateEndpointWeightsAndCapacities takes it)."""

    VariantName: ResourceName
    DesiredWeight: Annotated[float, Field(ge=0.0, le=1000.0)] | None = None
    DesiredInstanceCount: Annotated[int, Field(ge=1, le=100)] | None = None

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.DesiredWeight is None and self.DesiredInstanceCount is None:
            raise ValueError(
                f"variant {self.VariantName!r}: set DesiredWeight, DesiredInstanceCount or both"
            )
        return self


class VariantOverrides(Spec):
    """What UpdateEndpointWeightsAndCapacities asked for (an extension of the Endpoint spec, so
    that the desired state stays in one place): the weights and counts of variants of the
    EndpointConfig it was asked while serving. The config itself is unchanged, and the
    overrides lapse when the endpoint moves to another config. ``Generation`` counts the
    requests: a new one sets an autoscaled variant's count once, from which the autoscaler
    goes on."""

    EndpointConfigName: ResourceName
    Generation: Annotated[int, Field(ge=1)] = 1
    Variants: Annotated[list[DesiredWeightAndCapacity], Field(min_length=1, max_length=11)]

    def of(self, variant: str) -> DesiredWeightAndCapacity | None:
        return next((v for v in self.Variants if v.VariantName == variant), None)


def apply_overrides(
    config: CreateEndpointConfigRequest, overrides: VariantOverrides | None
) -> CreateEndpointConfigRequest:
    """``config`` with the weights and initial counts ``overrides`` ask for (unchanged when
    they are for another config)."""
    if overrides is None or overrides.EndpointConfigName != config.EndpointConfigName:
        return config

    def one(v: ProductionVariant) -> ProductionVariant:
        o = overrides.of(v.VariantName)
        if o is None:
            return v
        update: dict[str, float | int] = {}
        if o.DesiredWeight is not None:
            update["InitialVariantWeight"] = o.DesiredWeight
        if o.DesiredInstanceCount is not None:
            update["InitialInstanceCount"] = o.DesiredInstanceCount
        return v.model_copy(update=update)

    return config.model_copy(
        update={
            "ProductionVariants": [one(v) for v in config.ProductionVariants],
            "ShadowProductionVariants": [one(v) for v in config.ShadowProductionVariants],
        }
    )


class CreateEndpointRequest(Spec):
    EndpointName: ResourceName
    EndpointConfigName: ResourceName
    DeploymentConfig: _DeploymentConfig | None = None
    Tags: TagList = []
    # Orchestrator extension: invocations need an API key unless the endpoint is made public.
    AuthMode: Literal["ApiKey", "None"] = "ApiKey"
    # Set by UpdateEndpointWeightsAndCapacities (or by hand on a custom resource).
    VariantOverrides: _VariantOverrides | None = None


_DeploymentConfig = DeploymentConfig
_VariantOverrides = VariantOverrides


class UpdateEndpointWeightsAndCapacitiesRequest(Spec):
    DesiredWeightsAndCapacities: Annotated[
        list[DesiredWeightAndCapacity], Field(min_length=1, max_length=11)
    ]


class UpdateEndpointRequest(Spec):
    """Move the endpoint to another EndpointConfig: a new fleet is started beside the old one
    and traffic shifts to it as its ``DeploymentConfig`` says (default: all at once once the
    new fleet is healthy), rolling back by itself when an alarm fires."""

    EndpointConfigName: ResourceName
    DeploymentConfig: _DeploymentConfig | None = None
    # Keep the endpoint's current DeploymentConfig when this request carries none.
    RetainDeploymentConfig: bool = False


class ProductionVariantSummary(Output):
    VariantName: str
    CurrentWeight: float
    DesiredWeight: float
    CurrentInstanceCount: int
    DesiredInstanceCount: int


class VariantScalingState(Output):
    """The autoscaler's memory for one variant of the serving fleet."""

    VariantName: str
    DesiredInstanceCount: int
    LastScaleOutTime: datetime | None = None
    LastScaleInTime: datetime | None = None
    # When the variant last had traffic (or was created); scale to zero counts from here.
    LastActiveTime: datetime | None = None
    # The VariantOverrides generation whose DesiredInstanceCount this count started from.
    OverrideGeneration: int = 0


DeploymentPhase = Literal[
    "Provisioning",  # the new fleet is starting; no traffic yet
    "Shifting",  # traffic is moving (TrafficPercent to the new fleet), baking between steps
    "Terminating",  # all traffic on the new fleet; the old one waits TerminationWait, then goes
    "RollingBack",  # an alarm fired or the new fleet failed: all traffic back on the old fleet
]


class DeploymentState(Output):
    """A blue/green update in progress: the old fleet serves ``CurrentEndpointConfigName``,
    the new one ``TargetEndpointConfigName``."""

    TargetEndpointConfigName: str
    Phase: DeploymentPhase = "Provisioning"
    TrafficPercent: float = 0.0  # of production traffic on the new fleet
    StartTime: datetime
    StepStartTime: datetime | None = None  # when the current traffic step began
    Message: str = ""


class DeploymentOutcome(Output):
    """How the last update ended. A rolled-back config is not tried again until another
    UpdateEndpoint asks for it (which clears this)."""

    TargetEndpointConfigName: str
    Result: Literal["Succeeded", "RolledBack"]
    EndTime: datetime
    Message: str = ""


_EndpointStatus = EndpointStatus


class VariantRouteState(Output):
    """One route of the endpoint as its planner computed it: where the data plane sends (or
    copies, or holds) requests. Written with the status so that an API in another process (a
    pod on a cluster) routes exactly as planned, without rebuilding routes from other fields."""

    VariantName: str
    EndpointConfigName: str = ""
    # Share of production traffic (the fleets' shares folded in); for a shadow, the fraction
    # of live requests copied to it.
    Weight: float
    Urls: list[str] = []  # ready replicas (or, on Kubernetes, the fleet variant's Service)
    Shadow: bool = False
    # No replica on purpose (scaled to zero): a request wakes it and waits.
    ScaledToZero: bool = False
    # The new fleet of an update: its failures are served again by the old fleet.
    Trial: bool = False


class EndpointState(Output):
    EndpointStatus: _EndpointStatus = EndpointStatus.CREATING
    FailureReason: str | None = None
    # The config the serving fleet runs (set once the endpoint is first planned); the spec's
    # EndpointConfigName is the one asked for, which differs while an update is under way.
    CurrentEndpointConfigName: str | None = None
    ProductionVariants: list[ProductionVariantSummary] = []
    ShadowProductionVariants: list[ProductionVariantSummary] = []
    Conditions: list[Condition] = []
    Deployment: DeploymentState | None = None
    LastDeployment: DeploymentOutcome | None = None
    # Autoscaling per variant of the serving fleet (a list, not a map keyed by variant name,
    # so that it keeps its shape in a Kubernetes status: see ``scaling_of``).
    VariantScaling: list[VariantScalingState] = []
    # Where invocations go, as planned (empty: the endpoint takes no traffic now).
    Routes: list[VariantRouteState] = []

    # Bookkeeping of the controller: replica launches so far (names each new replica) and
    # replicas that died before serving, in a row.
    ReplicaGeneration: int = 0
    StartFailures: int = 0

    def scaling_of(self, variant: str) -> VariantScalingState | None:
        return next((s for s in self.VariantScaling if s.VariantName == variant), None)


class DescribeEndpointResponse(CreateEndpointRequest, EndpointState):
    model_config = Output.model_config
    EndpointArn: str
    CreationTime: datetime
    LastModifiedTime: datetime


class EndpointSummary(Output):
    EndpointName: str
    EndpointArn: str
    CreationTime: datetime
    LastModifiedTime: datetime
    EndpointStatus: _EndpointStatus


class ListEndpointsResponse(Output):
    Endpoints: list[EndpointSummary]
    NextToken: str | None = None


class CreateEndpointResponse(Output):
    EndpointArn: str


def merged_overrides(
    current: VariantOverrides | None, serving: str, req: UpdateEndpointWeightsAndCapacitiesRequest
) -> VariantOverrides:
    """The overrides after ``req``: each variant it names takes the values it gives, the
    others keep what earlier requests for the same config gave."""
    kept = current if current is not None and current.EndpointConfigName == serving else None
    by_name = {v.VariantName: v for v in (kept.Variants if kept else [])}
    for asked in req.DesiredWeightsAndCapacities:
        before = by_name.get(asked.VariantName)
        by_name[asked.VariantName] = DesiredWeightAndCapacity(
            VariantName=asked.VariantName,
            DesiredWeight=asked.DesiredWeight if asked.DesiredWeight is not None else (
                before.DesiredWeight if before else None
            ),
            DesiredInstanceCount=asked.DesiredInstanceCount
            if asked.DesiredInstanceCount is not None
            else (before.DesiredInstanceCount if before else None),
        )  # fmt: skip
    return VariantOverrides(
        EndpointConfigName=serving,
        Generation=(kept.Generation + 1) if kept else 1,
        Variants=list(by_name.values()),
    )


def check_overrides(
    config: CreateEndpointConfigRequest,
    overrides: VariantOverrides,
    req: UpdateEndpointWeightsAndCapacitiesRequest,
) -> None:
    """Every variant named exists in the serving config, an autoscaled variant's count is
    within its bounds, and some production traffic still has a weight."""
    variants = {v.VariantName: v for v in config.all_variants}
    seen: set[str] = set()
    for i, asked in enumerate(req.DesiredWeightsAndCapacities):
        where = f"DesiredWeightsAndCapacities[{i}]"
        if asked.VariantName in seen:
            raise ValidationError(
                f"{where}.VariantName: {asked.VariantName!r} is named twice",
                field=f"{where}.VariantName",
            )
        seen.add(asked.VariantName)
        variant = variants.get(asked.VariantName)
        if variant is None:
            raise ValidationError(
                f"{where}.VariantName: the EndpointConfig {config.EndpointConfigName!r} has no "
                f"variant {asked.VariantName!r}; its variants: {', '.join(variants)}",
                field=f"{where}.VariantName",
            )
        scaling = variant.scaling
        count = asked.DesiredInstanceCount
        if count is not None and scaling is not None:
            low, high = max(1, scaling.MinInstanceCount), scaling.MaxInstanceCount
            if not low <= count <= high:
                raise ValidationError(
                    f"{where}.DesiredInstanceCount: {count} is outside variant "
                    f"{asked.VariantName!r}'s ManagedInstanceScaling bounds [{low}, {high}]",
                    field=f"{where}.DesiredInstanceCount",
                )
    effective = apply_overrides(config, overrides)
    if sum(v.InitialVariantWeight for v in effective.ProductionVariants) <= 0:
        raise ValidationError(
            "DesiredWeightsAndCapacities: at least one production variant must keep a "
            "DesiredWeight above 0",
            field="DesiredWeightsAndCapacities",
        )

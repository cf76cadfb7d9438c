"""What the planners read (observations) and what they return (actions and a plan).

These are plain frozen dataclasses so that planning stays pure: backends fill the
observations, the runtime carries out the actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel

from orchestrator.resources.endpoints import ProductionVariant, VariantRouteState
from orchestrator.resources.failures import ExitKind, FailureReason
from orchestrator.resources.models import CreateModelRequest
from orchestrator.resources.training import CreateTrainingJobRequest, SecondaryStatus
from orchestrator.resources.transform import CreateTransformJobRequest, TransformProgress

JobOutcome = Literal["completed", "failed", "stopped"]


@dataclass(frozen=True)
class PhaseMark:
    """A phase the job entered, when, and what it said (from the job's own record)."""

    phase: SecondaryStatus
    at: datetime
    message: str = ""


@dataclass(frozen=True)
class ObservedJob:
    """One attempt of a training job as the backend sees it right now."""

    name: str
    attempt: int
    state: Literal["running", "exited"]
    phase: SecondaryStatus | None = None  # the last phase the job reported
    phase_message: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    exit_code: int | None = None
    # What the job's own supervisor concluded; None when it died without saying (killed).
    outcome: JobOutcome | None = None
    # Why it failed (outcome "failed"), or what is known of a supervisor that died (None).
    failure: FailureReason | None = None
    model_artifact: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    # When each metric's value was written (its log line's time), where the backend knows;
    # FinalMetricDataList stamps a metric without one with the job's end.
    metric_times: dict[str, datetime] = field(default_factory=dict)
    # Every phase the attempt went through, oldest first, with the job's own timestamps, so
    # that a phase shorter than one reconcile pass still shows in the transitions.
    phases: tuple[PhaseMark, ...] = ()
    # The GPUs the attempt was given (as launched), so an unrecorded launch is adopted whole.
    gpus: tuple[int, ...] = ()
    # How the user's code ended (``resources.failures.ExitKind``; None: it did not run, or
    # the backend cannot say). A signal's ``exit_code`` is -S from a process, 128 + S from a
    # container runtime.
    exit_kind: ExitKind | None = None


@dataclass(frozen=True)
class Admission:
    """The queue's word on one training job this pass (controller/plan/admission.py)."""

    admitted: bool = True  # may launch an attempt now
    gpus: tuple[int, ...] | None = None  # devices for the attempt (None: not accounted)
    reason: str = ""  # why it waits: the Pending transition's message
    position: int | None = None  # 1-based place in the queue while it waits
    preempt: str = ""  # non-empty: stop the running attempt now (why)
    fail: FailureReason | None = None  # it can never be admitted here (CapacityError)


@dataclass(frozen=True)
class JobLaunch:
    """Everything a backend needs to start one attempt of a training job."""

    name: str
    attempt: int
    spec: CreateTrainingJobRequest
    output_uri: str  # where model.tar.gz goes
    # Device indexes this attempt may use; None when the backend places GPUs itself.
    gpus: tuple[int, ...] | None = None
    # The job's own credential as the variables the user's code gets (``api.jobcreds``),
    # added by the executor at launch; never planned, compared or printed.
    credentials: dict[str, str] = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class TransformLaunch:
    """Everything a backend needs to start one attempt of one instance of a transform job:
    the instance runner (``orchestrator.transformer``) beside a model server for ``model``."""

    name: str  # the TransformJobName
    instance: int  # 0-based; the host is algo-<instance + 1>
    attempt: int  # 1-based attempt of this instance
    spec: CreateTransformJobRequest
    model_name: str
    model: CreateModelRequest


@dataclass(frozen=True)
class ObservedTransformInstance:
    """One instance of a transform job as the backend sees it now (its latest attempt), with
    what its runner recorded in the job's scratch space (``transformer.scratch``)."""

    name: str
    instance: int
    attempt: int
    # starting: launched, its model server not answering yet; exited: the runner is gone
    state: Literal["starting", "running", "exited"]
    started_at: datetime | None = None
    ended_at: datetime | None = None
    exit_code: int | None = None
    # What the runner concluded (its result record); None when it died without saying.
    outcome: JobOutcome | None = None
    failure: FailureReason | None = None
    # What is known of a runner that died without a result (exit code, last log lines).
    message: str = ""


@dataclass(frozen=True)
class ObservedTransform:
    """A transform job as the backend sees it: its instances' latest attempts and the
    progress its runners recorded (None: no runner has written any yet)."""

    instances: tuple[ObservedTransformInstance, ...] = ()
    progress: TransformProgress | None = None


@dataclass(frozen=True)
class ObservedReplica:
    endpoint: str
    variant: str
    slot: int
    replica_id: str
    # terminating: asked to go and not gone yet (never routed to, holds no slot)
    state: Literal["starting", "ready", "dead", "terminating"]
    url: str | None = None
    started_at: datetime | None = None
    message: str = ""  # dead: why (exit code, last log lines); starting: why /ping fails
    generation: int = 0
    # The EndpointConfig whose fleet the replica belongs to ("" from a backend that does not
    # record it: taken as the endpoint's current config).
    config: str = ""
    # When it first answered GET /ping (ModelSetupTime = ready_at - started_at), if known.
    ready_at: datetime | None = None


@dataclass(frozen=True)
class ReplicaLaunch:
    endpoint: str
    variant: str
    slot: int
    replica_id: str
    model_name: str
    model: CreateModelRequest
    instance_type: str
    generation: int
    config: str = ""  # the EndpointConfig whose fleet this replica joins


@dataclass(frozen=True)
class VariantLoad:
    """Traffic of one variant of the serving fleet over the autoscaler's metric window."""

    invocations_per_minute: float = 0.0  # all replicas together
    concurrency: float = 0.0  # mean requests in flight, all replicas together
    last_invocation_at: datetime | None = None
    waiting: int = 0  # requests held right now for a replica (a variant scaled to zero)


@dataclass(frozen=True)
class FleetHealth:
    """What the new fleet of a blue/green update served since its current traffic step."""

    invocations: int = 0
    errors_5xx: int = 0
    model_latency_p99_us: float | None = None
    overhead_latency_p99_us: float | None = None


@dataclass(frozen=True)
class VariantRoute:
    """One variant of one fleet as the invocation router sees it."""

    name: str
    weight: float  # relative share of production traffic (the fleets' shares folded in)
    urls: tuple[str, ...]  # ready replicas
    config: str = ""  # the EndpointConfig of its fleet
    shadow: bool = False  # gets copies (``weight`` is then the fraction copied), never answers
    # No replica on purpose (scaled to zero): a request wakes it and waits instead of a 503.
    scaled_to_zero: bool = False
    # Part of the new fleet of an update in progress: a 5xx or a failed connection there is
    # retried on the old fleet (and counts against the update's alarms).
    trial: bool = False


def route_state(route: VariantRoute) -> VariantRouteState:
    """A route as the Endpoint's status carries it."""
    return VariantRouteState(
        VariantName=route.name,
        EndpointConfigName=route.config,
        Weight=route.weight,
        Urls=list(route.urls),
        Shadow=route.shadow,
        ScaledToZero=route.scaled_to_zero,
        Trial=route.trial,
    )


def route_from_state(state: VariantRouteState) -> VariantRoute:
    """A route read back from an Endpoint's status, exactly as the planner made it."""
    return VariantRoute(
        name=state.VariantName,
        weight=state.Weight,
        urls=tuple(state.Urls),
        config=state.EndpointConfigName,
        shadow=state.Shadow,
        scaled_to_zero=state.ScaledToZero,
        trial=state.Trial,
    )


# --- actions -------------------------------------------------------------------------------
@dataclass(frozen=True)
class LaunchJob:
    launch: JobLaunch


@dataclass(frozen=True)
class StopJob:
    name: str
    force: bool  # False: SIGTERM (graceful); True: SIGKILL after the grace period


@dataclass(frozen=True)
class CleanupJob:
    name: str


@dataclass(frozen=True)
class LaunchTransformInstance:
    launch: TransformLaunch


@dataclass(frozen=True)
class StopTransform:
    """Stop every running instance of the transform job (SIGTERM, or SIGKILL with force)."""

    name: str
    force: bool


@dataclass(frozen=True)
class CleanupTransform:
    """Remove the job's instances' scratch and the job's records in the store's scratch
    space (its parts, plan, progress); the written ``.out`` objects and logs stay."""

    name: str


@dataclass(frozen=True)
class LaunchReplica:
    launch: ReplicaLaunch


@dataclass(frozen=True)
class StopReplica:
    endpoint: str
    replica_id: str
    force: bool


@dataclass(frozen=True)
class RemoveReplica:
    """Stop if needed and delete the replica's scratch (a dead or surplus replica)."""

    endpoint: str
    replica_id: str


@dataclass(frozen=True)
class VariantFleet:
    """One variant of one fleet, whole: what a backend that runs each variant as one group
    (a Kubernetes Deployment) is told, instead of replica by replica."""

    config: str  # the EndpointConfig of the fleet
    variant: ProductionVariant
    model: CreateModelRequest
    replicas: int
    # A replica must answer GET /ping within this after it starts (the variant's
    # ContainerStartupHealthCheckTimeoutInSeconds, else the controller's default).
    startup_timeout_seconds: float = 120.0


@dataclass(frozen=True)
class ScaleFleets:
    """Every fleet the endpoint should have now, with its size; any other goes. Backends that
    manage whole variants carry this out (``backends.base.VariantFleets``); the others carry
    out the plan's per-replica launches and removals instead, which say the same thing."""

    endpoint: str
    fleets: tuple[VariantFleet, ...]


@dataclass(frozen=True)
class DeleteRecord:
    """The resource is cleaned up: the desired-state source may let it go."""

    kind: str
    name: str


@dataclass(frozen=True)
class CreateRecord:
    """A new resource in the desired-state source (a tuning job's trial: a TrainingJob). The
    create is idempotent: the same name and spec again is no change."""

    kind: str
    name: str
    spec: dict[str, Any]
    status: dict[str, Any]
    phase: str
    at: datetime


@dataclass(frozen=True)
class RequestStop:
    """Ask for another resource to stop (a trial), as a user's stop would."""

    kind: str
    name: str
    reason: str = ""


Action = (
    LaunchJob
    | StopJob
    | CleanupJob
    | LaunchTransformInstance
    | StopTransform
    | CleanupTransform
    | LaunchReplica
    | StopReplica
    | RemoveReplica
    | ScaleFleets
    | DeleteRecord
    | CreateRecord
    | RequestStop
)

S = TypeVar("S", bound=BaseModel)


@dataclass(frozen=True)
class Plan(Generic[S]):
    """The outcome of one pure planning step."""

    actions: tuple[Action, ...]
    status: S  # the new status (the resource's *State model)
    phase: str  # primary status, indexed by the store
    active: bool  # still needs reconciling
    requeue_after: float | None = None
    # Routing for endpoints (None: withdraw the endpoint's route).
    routes: tuple[VariantRoute, ...] | None = None

"""The only code that turns a plan's actions into backend calls, in order, each idempotent.

Every host of the reconciler (``orch server`` with the SQL store, ``orch operator`` with the
custom resources) executes plans here, so a backend sees the same calls whatever the desired
state lives in. What a backend can do decides how an endpoint's replicas are carried out
(``backends.base``): one by one (``LaunchesReplicas``: the launches and removals) or whole
variants (``VariantFleets``: ``ScaleFleets``, plus the removal of dead replicas, which such a
backend replaces). A replica named twice in one plan (dead and over the count) is removed once.
Actions on other records of the source (a tuning job's trials: ``CreateRecord``,
``RequestStop``) go to the source, as a user's create or stop would. Transform jobs' actions
need a backend with ``TransformBackend``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import replace
from typing import Protocol

from orchestrator import tenancy
from orchestrator.backends.base import Backend, LaunchesReplicas, TransformBackend, VariantFleets
from orchestrator.clock import Clock, SystemClock
from orchestrator.controller.plan.types import (
    Action,
    CleanupJob,
    CleanupTransform,
    CreateRecord,
    DeleteRecord,
    JobLaunch,
    LaunchJob,
    LaunchReplica,
    LaunchTransformInstance,
    RemoveReplica,
    RequestStop,
    ScaleFleets,
    StopJob,
    StopReplica,
    StopTransform,
)
from orchestrator.errors import ValidationError
from orchestrator.store.source import DesiredState, Record


class JobCredentialIssuer(Protocol):
    """Mints a job's own credential at its launch and revokes it (``api.jobcreds``)."""

    def issue(self, launch: JobLaunch, account: str = "") -> dict[str, str]: ...

    def revoke(self, kind: str, name: str) -> None: ...

    def sweep(self, active: Collection[str], kind: str = "training") -> list[str]: ...


class Executor:
    def __init__(
        self,
        backend: Backend,
        source: DesiredState,
        *,
        on_released: Callable[[Record], None] | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.backend = backend
        self.source = source
        self.clock = clock or SystemClock()
        self.on_released = on_released  # e.g. withdraw a deleted endpoint's route
        fleets = isinstance(backend, VariantFleets)
        if not fleets and not isinstance(backend, LaunchesReplicas):
            raise ValidationError(
                f"backend {backend.name!r} can neither launch replicas nor run fleets; it "
                "must implement LaunchesReplicas or VariantFleets (orchestrator.backends.base)"
            )
        self.fleets = fleets
        # Each launched job's own credential (None: the user's code gets none).
        self.credentials: JobCredentialIssuer | None = None

    def run(self, record: Record, actions: tuple[Action, ...]) -> None:
        """Carry out ``actions`` for ``record`` in order; the first error stops the rest."""
        removed: set[tuple[str, str]] = set()
        for action in actions:
            if isinstance(action, RemoveReplica | StopReplica):
                key = (action.endpoint, action.replica_id)
                if key in removed:
                    continue
                removed.add(key)
            self._act(record, action)

    def _act(self, record: Record, action: Action) -> None:
        b = self.backend
        if isinstance(action, LaunchJob):
            launch = action.launch
            if self.credentials is not None:
                env = self.credentials.issue(launch, record.account)
                launch = replace(launch, credentials=env)
            b.launch_job(launch)
        elif isinstance(action, StopJob):
            b.stop_job(action.name, force=action.force)
        elif isinstance(action, CleanupJob):
            b.cleanup_job(action.name)
        elif isinstance(action, LaunchTransformInstance | StopTransform | CleanupTransform):
            self._transform(action)
        elif isinstance(action, LaunchReplica):
            if isinstance(b, LaunchesReplicas) and not self.fleets:
                b.launch_replica(action.launch)
            # else: the fleet's size (ScaleFleets) starts it
        elif isinstance(action, RemoveReplica | StopReplica):
            b.remove_replica(action.endpoint, action.replica_id)
        elif isinstance(action, ScaleFleets):
            if isinstance(b, VariantFleets):
                b.apply_fleets(action.endpoint, action.fleets)
            # else: the plan's launches and removals carried it out, replica by replica
        elif isinstance(action, CreateRecord):
            # What a resource makes (a tuning job's trials) is its account's.
            with tenancy.acting_as(record.account):
                self.source.create(
                    action.kind,
                    action.name,
                    action.spec,
                    action.status,
                    phase=action.phase,
                    active=True,
                    now=action.at,
                )
        elif isinstance(action, RequestStop):
            self.source.set_flag(action.kind, action.name, "stop_requested", self.clock.now())
        elif isinstance(action, DeleteRecord):
            self.source.release(record)
            if self.on_released is not None:
                self.on_released(record)
        else:  # pragma: no cover - exhaustiveness
            raise TypeError(action)

    def _transform(
        self, action: LaunchTransformInstance | StopTransform | CleanupTransform
    ) -> None:
        b = self.backend
        if not isinstance(b, TransformBackend):
            raise ValidationError(transform_refusal(b.name))
        if isinstance(action, LaunchTransformInstance):
            b.launch_transform_instance(action.launch)
        elif isinstance(action, StopTransform):
            b.stop_transform(action.name, force=action.force)
        else:
            b.cleanup_transform(action.name)


def transform_refusal(backend: str) -> str:
    """What a transform job on a backend that cannot run one is told."""
    return (
        f"TransformJob: backend {backend!r} cannot run transform jobs (it does not implement "
        "TransformBackend); run them on the process, docker or kubernetes backend"
    )

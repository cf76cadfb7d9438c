"""Where the desired state lives: the one interface the REST service and the reconciler use.

Two implementations: the SQL store (``StateStore``: SQLite or PostgreSQL, on a laptop or one
host) and the custom resources of a Kubernetes namespace (``orchestrator.kube.source``), where
the cluster's API server is the store and the API pods keep no state of their own.

Every document is in the API's shape (SageMaker's PascalCase fields); a source converts to and
from its own (camelCase custom resources). Writes of status are optimistic: a writer hands back
the ``Record`` it read, and a write that lost a race raises ``ConflictError`` (the caller reads
again and re-plans; nothing is overwritten). Creates are idempotent by (kind, name, spec).
"""

from __future__ import annotations

import base64
import builtins
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol, runtime_checkable

from orchestrator.errors import ValidationError

Flag = Literal["stop_requested", "delete_requested"]


@dataclass(frozen=True)
class Record:
    """One resource as a source holds it: the spec, the status, and the bookkeeping."""

    kind: str
    name: str
    uid: str
    spec: dict[str, Any]
    status: dict[str, Any]
    phase: str
    active: bool
    stop_requested: bool
    delete_requested: bool
    created_at: datetime
    updated_at: datetime
    # Opaque: the SQL row's counter, or the custom resource's resourceVersion.
    version: str


@dataclass(frozen=True)
class ListFilter:
    """SageMaker's List* filters, one page at a time (newest first by default)."""

    limit: int
    next_token: str | None = None
    name_contains: str | None = None
    phase: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    ascending: bool = False


@runtime_checkable
class DesiredState(Protocol):
    """The desired-state source: what users asked for, and the status the reconciler wrote."""

    def get(self, kind: str, name: str) -> Record:
        """The resource, or ``NotFoundError``."""

    def find(self, kind: str, name: str) -> Record | None: ...

    def list(self, kind: str, page: ListFilter) -> tuple[builtins.list[Record], str | None]:
        """One page and the token of the next one (None on the last page)."""

    def list_active(self, kind: str) -> builtins.list[Record]:
        """Every resource of the kind that still needs reconciling."""

    def count_by_phase(self, kind: str) -> dict[str, int]: ...

    def create(
        self,
        kind: str,
        name: str,
        spec: dict[str, Any],
        status: dict[str, Any],
        *,
        phase: str,
        active: bool,
        now: datetime,
    ) -> tuple[Record, bool]:
        """Insert; returns (record, created). The same spec again returns the existing record;
        a different one is a ``ConflictError``."""

    def update_spec(
        self, record: Record, spec: dict[str, Any], *, status: dict[str, Any], now: datetime
    ) -> Record:
        """Replace the desired state (and the status with it) if nobody wrote since ``record``
        was read, else ``ConflictError``."""

    def update_status(
        self, record: Record, status: dict[str, Any], *, phase: str, active: bool, now: datetime
    ) -> Record:
        """Write the status if nobody wrote since ``record`` was read, else ``ConflictError``."""

    def set_flag(self, kind: str, name: str, flag: Flag, now: datetime) -> Record:
        """Ask for a stop or a deletion (idempotent); the reconciler carries it out."""

    def delete(self, kind: str, name: str) -> None:
        """Remove a resource that has no lifecycle (a Model, an EndpointConfig) now."""

    def claim(self, record: Record) -> Record:
        """Keep the resource until the reconciler releases it (a finalizer; no-op in SQL)."""

    def release(self, record: Record) -> None:
        """The reconciler is done with a deleted resource: let it go for good."""

    def close(self) -> None:
        """Release connections held in this process."""


# --- paging, shared by every source -------------------------------------------------------
def encode_token(ts: float, name: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([ts, name]).encode()).decode()


def decode_token(token: str) -> tuple[float, str]:
    try:
        ts, name = json.loads(base64.urlsafe_b64decode(token.encode()))
        return float(ts), str(name)
    except Exception as e:
        raise ValidationError(
            "NextToken is not one this server issued; pass the NextToken of the previous page "
            "unchanged, or omit it for the first page",
            field="NextToken",
        ) from e


def page_of(records: Iterable[Record], page: ListFilter) -> tuple[list[Record], str | None]:
    """Filter, order and cut one page in memory (for sources that cannot query), with the same
    keyset token as the SQL store: (creation time, name)."""
    out = list(records)
    if page.name_contains:
        needle = page.name_contains.lower()
        out = [r for r in out if needle in r.name.lower()]
    if page.phase:
        out = [r for r in out if r.phase == page.phase]
    if page.created_after:
        out = [r for r in out if r.created_at > page.created_after]
    if page.created_before:
        out = [r for r in out if r.created_at < page.created_before]
    out.sort(key=lambda r: (r.created_at.timestamp(), r.name), reverse=not page.ascending)
    if page.next_token:
        ts, last = decode_token(page.next_token)
        if page.ascending:
            out = [r for r in out if (r.created_at.timestamp(), r.name) > (ts, last)]
        else:
            out = [r for r in out if (r.created_at.timestamp(), r.name) < (ts, last)]
    chunk = out[: page.limit]
    token = None
    if len(out) > page.limit and chunk:
        token = encode_token(chunk[-1].created_at.timestamp(), chunk[-1].name)
    return chunk, token

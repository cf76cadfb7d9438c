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
from orchestrator.resources.search import CompiledSearch

Flag = Literal["stop_requested", "delete_requested", "preempt_requested"]
# What a list is ordered by (SageMaker's SortBy); each order's key ends in the name, which is
# unique per kind, so a page's last key is an exact cursor.
SortBy = Literal["CreationTime", "Name", "Status"]
SORT_BY: tuple[SortBy, ...] = ("CreationTime", "Name", "Status")


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
    # A spot training job asked to give its capacity back (cleared once it is requeued).
    preempt_requested: bool = False
    # The account (tenant) it belongs to: ``orchestrator.tenancy.ROOT`` ("") for the server's.
    account: str = ""


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
    sort_by: SortBy = "CreationTime"
    modified_after: datetime | None = None
    modified_before: datetime | None = None


SortKey = tuple[str | float, ...]


def sort_key(record: Record, sort_by: SortBy) -> SortKey:
    """Where ``record`` falls in a list ordered by ``sort_by`` (ties broken by name)."""
    if sort_by == "Name":
        return (record.name,)
    if sort_by == "Status":
        return (record.phase, record.created_at.timestamp(), record.name)
    return (record.created_at.timestamp(), record.name)


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
        self,
        record: Record,
        spec: dict[str, Any],
        *,
        status: dict[str, Any],
        now: datetime,
        phase: str | None = None,
        reconcile: bool = True,
    ) -> Record:
        """Replace the desired state (and the status with it) if nobody wrote since ``record``
        was read, else ``ConflictError``. ``phase``: the new status's primary status, when the
        write changes it; ``reconcile``: whether the reconciler must look at the resource again
        (False for a change it has no part in, such as its tags)."""

    def update_status(
        self, record: Record, status: dict[str, Any], *, phase: str, active: bool, now: datetime
    ) -> Record:
        """Write the status if nobody wrote since ``record`` was read, else ``ConflictError``."""

    def set_flag(
        self, kind: str, name: str, flag: Flag, now: datetime, *, value: bool = True
    ) -> Record:
        """Ask for a stop, a deletion or a preemption (idempotent); the reconciler carries it
        out. ``value=False`` withdraws a preemption request once it was carried out."""

    def delete(self, kind: str, name: str) -> None:
        """Remove a resource that has no lifecycle (a Model, an EndpointConfig) now."""

    def claim(self, record: Record) -> Record:
        """Keep the resource until the reconciler releases it (a finalizer; no-op in SQL)."""

    def release(self, record: Record) -> None:
        """The reconciler is done with a deleted resource: let it go for good."""

    def close(self) -> None:
        """Release connections held in this process."""


@runtime_checkable
class Searches(Protocol):
    """A source that runs a Search itself (the SQL store: one query over its index tables).
    For one without it the service evaluates the search over the listed records
    (``resources.search.search_in_memory``), with the same results and errors."""

    def search(self, query: CompiledSearch) -> tuple[builtins.list[Record], str | None]:
        """One page of records in the query's order and the token of the next one."""


# --- paging, shared by every source -------------------------------------------------------
def encode_token(key: SortKey) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


_TOKEN_TYPES: dict[SortBy, tuple[type, ...]] = {
    "CreationTime": (float, str),
    "Name": (str,),
    "Status": (str, float, str),
}


def decode_token(token: str, sort_by: SortBy = "CreationTime") -> SortKey:
    """The sort key a ``NextToken`` carries, for a list ordered by ``sort_by``."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(token.encode()))
        types = _TOKEN_TYPES[sort_by]
        if not isinstance(raw, list) or len(raw) != len(types):
            raise ValueError("not a key of this order")
        return tuple(float(v) if t is float else str(v) for v, t in zip(raw, types, strict=True))
    except Exception as e:
        raise ValidationError(
            "NextToken is not one this server issued for this list and SortBy; pass the "
            "NextToken of the previous page unchanged (with the same SortBy), or omit it for the "
            "first page",
            field="NextToken",
        ) from e


def page_of(records: Iterable[Record], page: ListFilter) -> tuple[list[Record], str | None]:
    """Filter, order and cut one page in memory (for sources that cannot query), with the same
    keyset token as the SQL store: the last record's sort key."""
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
    if page.modified_after:
        out = [r for r in out if r.updated_at > page.modified_after]
    if page.modified_before:
        out = [r for r in out if r.updated_at < page.modified_before]
    out.sort(key=lambda r: sort_key(r, page.sort_by), reverse=not page.ascending)
    if page.next_token:
        last = decode_token(page.next_token, page.sort_by)
        if page.ascending:
            out = [r for r in out if sort_key(r, page.sort_by) > last]
        else:
            out = [r for r in out if sort_key(r, page.sort_by) < last]
    chunk = out[: page.limit]
    token = None
    if len(out) > page.limit and chunk:
        token = encode_token(sort_key(chunk[-1], page.sort_by))
    return chunk, token

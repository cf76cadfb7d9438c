"""Search (SageMaker's ``Search``) over the desired-state source, independent of HTTP.

The request is checked and typed once (``resources.search.compile_search``: the same 400s on
every source); a source that runs searches itself (``store.source.Searches``: the SQL store,
one query over its index tables) answers the page, and any other (the custom resources on
Kubernetes) is listed and evaluated in memory, with the same order and tokens. Each result is
SageMaker's ``SearchRecord``: ``{"TrainingJob": <DescribeTrainingJob's shape, Tags too>}``.
"""

from __future__ import annotations

from typing import Any

from orchestrator.resources.kinds import KINDS, TRAINING_JOB
from orchestrator.resources.search import (
    CompiledSearch,
    SearchRequest,
    compile_search,
    properties_of,
    search_in_memory,
)
from orchestrator.resources.training import DescribeTrainingJobResponse
from orchestrator.store import DesiredState, ListFilter, Record
from orchestrator.store.source import Searches


def run(store: DesiredState, query: CompiledSearch) -> tuple[list[Record], str | None]:
    """One page of records, from the source's own search or evaluated over its listing."""
    if isinstance(store, Searches):
        return store.search(query)
    items = []
    token: str | None = None
    while True:
        page, token = store.list(query.kind, ListFilter(limit=100, next_token=token))
        for r in page:
            props = properties_of(
                r.kind, r.name, r.spec, r.status, phase=r.phase,
                created=r.created_at.timestamp(), updated=r.updated_at.timestamp(),
            )  # fmt: skip
            if props is not None:
                items.append((props, r))
        if not token:
            break
    return search_in_memory(query, items)


def search_record(kind: str, record: Record, arn: str) -> dict[str, Any]:
    """A record as SageMaker's ``SearchRecord`` member of its kind (datetimes kept)."""
    k = KINDS[kind]
    doc = {
        **record.spec,
        **record.status,
        k.name_field.removesuffix("Name") + "Arn": arn,
        "CreationTime": record.created_at,
        "LastModifiedTime": record.updated_at,
    }
    if kind == TRAINING_JOB.name:
        out: dict[str, Any] = DescribeTrainingJobResponse.model_validate(doc).model_dump(
            exclude_none=True
        )
        return out
    return doc


def compile_request(req: SearchRequest) -> CompiledSearch:
    return compile_search(req, list(KINDS))

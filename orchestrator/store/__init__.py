"""Desired-state sources: the interface (``source.py``) and the SQL store (SQLAlchemy: SQLite
by default, PostgreSQL by URL)."""

from orchestrator.store.source import DesiredState, ListFilter, Record, page_of
from orchestrator.store.state import (
    AccessKeyRecord,
    AccountRecord,
    ApiKeyRecord,
    IdentityRecord,
    StateStore,
    canonical_hash,
)

__all__ = [
    "AccessKeyRecord",
    "AccountRecord",
    "ApiKeyRecord",
    "DesiredState",
    "IdentityRecord",
    "ListFilter",
    "Record",
    "StateStore",
    "canonical_hash",
    "page_of",
]

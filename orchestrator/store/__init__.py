"""The state store (SQLAlchemy): SQLite by default, PostgreSQL by URL."""

from orchestrator.store.state import ApiKeyRecord, Record, StateStore, canonical_hash

__all__ = ["ApiKeyRecord", "Record", "StateStore", "canonical_hash"]

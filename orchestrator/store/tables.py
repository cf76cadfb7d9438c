"""The state store's schema (SQLAlchemy Core). Specs and statuses are JSON documents."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

resources = Table(
    "resources",
    metadata,
    Column("kind", String(64), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("uid", String(36), nullable=False),
    Column("spec", Text, nullable=False),
    Column("spec_hash", String(64), nullable=False),
    Column("status", Text, nullable=False),
    # The primary status, copied out of the JSON so lists can filter and the controller can
    # find what is not finished without reading every document.
    Column("phase", String(32), nullable=False),
    Column("active", Boolean, nullable=False),
    Column("stop_requested", Boolean, nullable=False, default=False),
    Column("delete_requested", Boolean, nullable=False, default=False),
    # A spot training job asked to give its capacity back (orch jobs preempt).
    Column("preempt_requested", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # Optimistic concurrency: every write bumps it; a writer states the one it read.
    Column("version", Integer, nullable=False),
)
Index("ix_resources_active", resources.c.kind, resources.c.active)
Index("ix_resources_created", resources.c.kind, resources.c.created_at)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("secret_hash", String(64), nullable=False),
    Column("name", String(128), nullable=False),
    Column("role", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
)

# SigV4 access keys: the secret is needed to verify a signature, so it is kept sealed (wrapped
# by the object store's keyring, ``orchestrator.api.aws.credentials``), never hashed.
access_keys = Table(
    "access_keys",
    metadata,
    Column("access_key_id", String(32), primary_key=True),
    Column("sealed_secret", Text, nullable=False),
    Column("name", String(128), nullable=False),
    Column("role", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
)


# --- Search's index (``search_sql.py``): one row per searchable property of a resource --------
# Kept in the same transaction as every write of ``resources``; ``text`` is the value as
# written, ``num`` the number it reads as (NULL when it reads as none), so a filter on a metric
# plus a sort by one runs on an index, not over every document.
def _index_table(name: str, *, text_index: bool) -> Table:
    table = Table(
        name,
        metadata,
        Column("kind", String(64), primary_key=True),
        Column("name", String(128), primary_key=True),
        Column("key", String(255), primary_key=True),
        Column("text", Text, nullable=True),
        Column("num", Float, nullable=True),
    )
    Index(f"ix_{name}_num", table.c.kind, table.c.key, table.c.num, table.c.name)
    if text_index:
        # With the name: a filter on a value reads its names from the index alone.
        Index(f"ix_{name}_text", table.c.kind, table.c.key, table.c.text, table.c.name)
    return table


# Scalar fields of the document (SecondaryStatus, ResourceConfig.InstanceType, dates, ...).
search_fields = _index_table("search_fields", text_index=True)
search_hyperparameters = _index_table("search_hyperparameters", text_index=True)
search_metrics = _index_table("search_metrics", text_index=False)  # FinalMetricDataList
search_tags = _index_table("search_tags", text_index=True)
SEARCH_TABLES = {
    "fields": search_fields,
    "hyperparameters": search_hyperparameters,
    "metrics": search_metrics,
    "tags": search_tags,
}

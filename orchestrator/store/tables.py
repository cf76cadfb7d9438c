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
    # The account (tenant) it belongs to: ``orchestrator.tenancy.ROOT`` ("") for the server's
    # own (every row from before accounts). Names stay unique per kind across accounts.
    Column("account", String(12), nullable=False, default="", server_default=""),
)
Index("ix_resources_active", resources.c.kind, resources.c.active)
Index("ix_resources_created", resources.c.kind, resources.c.created_at)


def _key_identity_columns() -> list[Column[object]]:
    """Added with identities: whose key it is (NULL: a key from before, which acts as an
    identity of its own name), when it expires (NULL: never), when it was last used (written
    at most once a minute per key)."""
    return [
        Column("identity", String(128), nullable=True),
        Column("expires_at", Float, nullable=True),
        Column("last_used_at", Float, nullable=True),
        # The account of the key's identity ("": the server's own).
        Column("account", String(12), nullable=False, default="", server_default=""),
    ]


api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(32), primary_key=True),
    Column("secret_hash", String(64), nullable=False),
    Column("name", String(128), nullable=False),
    Column("role", String(32), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("revoked", Boolean, nullable=False, default=False),
    *_key_identity_columns(),
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
    *_key_identity_columns(),
)


# Users and service identities: ``document`` is {"ManagedPolicies": [...], "InlinePolicies":
# {name: policy document}, "Roles": [roles it may assume]} (``orchestrator.api.identities``).
identities = Table(
    "identities",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("kind", String(16), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("document", Text, nullable=False),
    # The account it belongs to ("": the server's own); names stay unique server-wide.
    Column("account", String(12), nullable=False, default="", server_default=""),
)

# Accounts (tenants) other than the server's own (``orchestrator.tenancy``): a 12-digit id and
# a unique name (``orch accounts create``).
accounts = Table(
    "accounts",
    metadata,
    Column("id", String(12), primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("created_at", Float, nullable=False),
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


# --- Usage (``orchestrator.usage``): durable records the usage report is computed from -------
# An endpoint variant's instance count changed (written with the endpoint's status, in the
# same transaction, so every change the reconciler stores is here exactly once).
usage_instance_counts = Table(
    "usage_instance_counts",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("endpoint", String(128), nullable=False),
    Column("variant", String(128), nullable=False),
    # As the endpoint's configs said when the count changed ("unknown": no config found).
    Column("instance_type", String(64), nullable=False),
    # The endpoint's ``tenant`` tag when it changed (None: untagged), for a deleted endpoint.
    Column("tenant", String(256), nullable=True),
    Column("count", Integer, nullable=False),
    Column("at", Float, nullable=False),
)
Index("ix_usage_counts_endpoint", usage_instance_counts.c.endpoint, usage_instance_counts.c.at)

# Predictions (invocations) per endpoint variant per hour, added to by each flush.
usage_predictions = Table(
    "usage_predictions",
    metadata,
    Column("endpoint", String(128), primary_key=True),
    Column("variant", String(128), primary_key=True),
    Column("hour", Float, primary_key=True),
    Column("count", Integer, nullable=False),
)

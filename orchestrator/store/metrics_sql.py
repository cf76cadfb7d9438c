"""Metric points in SQL: one row per (series, resolution, time), written by upsert.

A row holds a bucket's *full* value (counts, in-flight area and peak, each sampled metric's
stat as bytes: ``monitoring.rollup``), never an increment, so writing the same bucket twice
(a flush repeated after a crash) leaves one row with the same value: nothing is counted twice.
The key's order (kind, endpoint, resolution, time, variant, config) lets a query over one
endpoint at one resolution read a contiguous range of the primary key.

The same engine as the desired state (SQLite WAL by default, PostgreSQL by URL: several API
replicas then read one set of series). Kinds: ``inv`` (a fleet's invocations), ``var`` (a
variant's setup time, CPU, memory), ``user`` (PutMetricData: each datum holds the account
that put it, and a caller reads only its own account's; the system, all). ``instances`` rows keep a
variant's ready-instance count changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    and_,
    create_engine,
    delete,
    event,
    inspect,
    select,
    true,
)
from sqlalchemy import text as sql_text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from orchestrator import tenancy
from orchestrator.errors import BackendError, ValidationError

STAT_COLUMNS = ("model", "overhead", "setup", "cpu", "memory")

metadata = MetaData()
points = Table(
    "metric_points",
    metadata,
    Column("kind", String(8), primary_key=True),
    Column("endpoint", String(256), primary_key=True),
    Column("resolution", Integer, primary_key=True),
    Column("at", BigInteger, primary_key=True),
    Column("variant", String(256), primary_key=True),
    Column("config", String(256), primary_key=True),
    # Which process wrote it (an API replica): replicas' rows of the same second add up.
    Column("writer", String(128), primary_key=True),
    Column("count", BigInteger, nullable=False, default=0),
    Column("e4", BigInteger, nullable=False, default=0),
    Column("e5", BigInteger, nullable=False, default=0),
    Column("area", Float, nullable=False, default=0.0),
    Column("peak", Integer, nullable=False, default=0),
    *(Column(name, LargeBinary, nullable=True) for name in STAT_COLUMNS),
)
instances = Table(
    "metric_instances",
    metadata,
    Column("endpoint", String(256), primary_key=True),
    Column("variant", String(256), primary_key=True),
    Column("at", Float, primary_key=True),
    Column("count", Integer, nullable=False),
)


@dataclass(frozen=True)
class Row:
    """One stored point; ``stats`` maps a STAT_COLUMNS name to its encoded stat."""

    kind: str
    endpoint: str
    variant: str
    config: str
    resolution: int
    at: int
    writer: str = "main"
    count: int = 0
    e4: int = 0
    e5: int = 0
    area: float = 0.0
    peak: int = 0
    stats: tuple[tuple[str, bytes], ...] = ()

    def values(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "endpoint": self.endpoint,
            "variant": self.variant,
            "config": self.config,
            "resolution": self.resolution,
            "at": self.at,
            "writer": self.writer,
            "count": self.count,
            "e4": self.e4,
            "e5": self.e5,
            "area": self.area,
            "peak": self.peak,
        }
        for name in STAT_COLUMNS:
            out[name] = None
        out.update(self.stats)
        return out


_VALUE_COLUMNS = ("count", "e4", "e5", "area", "peak", *STAT_COLUMNS)
_BATCH = 500


class MetricsStore:
    """The metric tables over an engine (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        try:
            metadata.create_all(engine)
            with engine.begin() as conn:
                _add_account_column(conn)
        except OperationalError as e:
            raise BackendError(f"metrics store is unreachable: {e.orig}", retry_after=5) from e
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert

    def upsert(self, rows: Iterable[Row]) -> int:
        """Writes every row whole (insert, or replace the row of the same key); one
        transaction, so a crash leaves the batch written or not at all."""
        values = [r.values() for r in rows]
        if not values:
            return 0
        try:
            with self.engine.begin() as conn:
                for i in range(0, len(values), _BATCH):
                    stmt = self._insert(points)
                    stmt = stmt.on_conflict_do_update(
                        index_elements=[c for c in points.primary_key.columns],
                        set_={c: stmt.excluded[c] for c in _VALUE_COLUMNS},
                    )
                    conn.execute(stmt, values[i : i + _BATCH])
        except SQLAlchemyError as e:
            raise BackendError(f"writing metric points failed: {e}", retry_after=5) from e
        return len(values)

    def read(
        self,
        kind: str,
        endpoint: str | None,
        resolution: int,
        lo: int,
        hi: int,
        *,
        variant: str | None = None,
        writer: str | None = None,
        columns: Sequence[str] = _VALUE_COLUMNS,
    ) -> list[Row]:
        """Points of one kind (one endpoint, or all) at one resolution with lo <= at < hi."""
        unknown = [c for c in columns if c not in _VALUE_COLUMNS]
        if unknown:
            raise ValidationError(f"columns: unknown metric columns {unknown}", field="columns")
        keys = [points.c.endpoint, points.c.variant, points.c.config, points.c.at, points.c.writer]
        cond = [points.c.kind == kind, points.c.resolution == resolution]
        if endpoint is not None:
            cond.append(points.c.endpoint == endpoint)
        cond += [points.c.at >= lo, points.c.at < hi]
        if variant is not None:
            cond.append(points.c.variant == variant)
        if writer is not None:
            cond.append(points.c.writer == writer)
        stmt = select(*keys, *(points.c[c] for c in columns)).where(and_(*cond))
        with self.engine.connect() as conn:
            result = conn.execute(stmt.order_by(points.c.at)).all()
        out = []
        for r in result:
            ep, v, cfg, at, w, *vals = r
            fields = dict(zip(columns, vals, strict=True))
            stats = tuple((n, bytes(fields.pop(n))) for n in STAT_COLUMNS if fields.get(n))
            for n in STAT_COLUMNS:
                fields.pop(n, None)
            out.append(Row(kind, ep, v, cfg, resolution, int(at), w, stats=stats, **fields))
        return out

    def series(self, kind: str, since: int) -> list[tuple[str, str, str]]:
        """(endpoint, variant, config) of every series of ``kind`` with a 1-minute point at
        or after ``since`` (ListMetrics over the store)."""
        stmt = (
            select(points.c.endpoint, points.c.variant, points.c.config)
            .where(points.c.kind == kind, points.c.resolution == 60, points.c.at >= since)
            .distinct()
        )
        with self.engine.connect() as conn:
            return [(a, b, c) for a, b, c in conn.execute(stmt)]

    def record_instances(self, endpoint: str, variant: str, at: float, count: int) -> None:
        stmt = self._insert(instances).values(
            endpoint=endpoint, variant=variant, at=at, count=count
        )
        stmt = stmt.on_conflict_do_update(
            index_elements=[c for c in instances.primary_key.columns],
            set_={"count": stmt.excluded["count"]},
        )
        with self.engine.begin() as conn:
            conn.execute(stmt)

    def read_instances(self, endpoint: str, since: float) -> dict[str, list[tuple[float, int]]]:
        """Each variant's instance-count changes from the last one before ``since`` on."""
        stmt = (
            select(instances.c.variant, instances.c.at, instances.c["count"])
            .where(instances.c.endpoint == endpoint)
            .order_by(instances.c.at)
        )
        out: dict[str, list[tuple[float, int]]] = {}
        with self.engine.connect() as conn:
            for variant, at, count in conn.execute(stmt):
                pts = out.setdefault(variant, [])
                if pts and pts[-1][0] < since and at <= since:
                    pts[-1] = (float(at), int(count))
                else:
                    pts.append((float(at), int(count)))
        return out

    def prune(self, retention: dict[int, int], now: float) -> int:
        """Drops points older than their resolution's retention; returns how many."""
        removed = 0
        with self.engine.begin() as conn:
            for resolution, keep in retention.items():
                cutoff = int(now) - keep
                result = conn.execute(
                    delete(points).where(points.c.resolution == resolution, points.c.at < cutoff)
                )
                removed += result.rowcount or 0
            longest = max(retention.values(), default=0)
            conn.execute(delete(instances).where(instances.c.at < int(now) - longest))
            # user metrics (PutMetricData) are kept as long as the hourly points
            conn.execute(delete(user_data).where(user_data.c.at < now - retention.get(3600, 0)))
        return removed


def open_metrics_store(url: str) -> MetricsStore:
    """A metrics store of its own engine (an API replica on a cluster, the benchmark)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    kwargs: dict[str, Any] = {"future": True}
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    else:
        kwargs["pool_pre_ping"] = True
    try:
        engine = create_engine(url, **kwargs)
    except Exception as e:  # bad URL, missing driver
        raise ValidationError(
            f"cannot use database URL {url.split('@')[-1]!r} for metrics: {e}; set "
            "ORCH_DATABASE_URL to sqlite:///PATH or postgresql://USER@HOST/DB",
            field="ORCH_DATABASE_URL",
        ) from e
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_pragmas)
    return MetricsStore(engine)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


user_data = Table(
    "metric_user_data",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("namespace", String(256), nullable=False),
    Column("name", String(256), nullable=False),
    Column("dimensions", String(4096), nullable=False),  # canonical JSON: sorted pairs
    Column("at", Float, nullable=False),
    Column("unit", String(32), nullable=False),
    Column("stat", LargeBinary, nullable=False),
    # The account that put it (``tenancy.ROOT``, "", for the server's and rows from before).
    Column("account", String(32), nullable=False, default="", server_default=""),
    Index("ix_metric_user_data_series", "namespace", "name", "dimensions", "at"),
)


@dataclass(frozen=True)
class UserDatum:
    """One PutMetricData datum: its values as an encoded stat (``monitoring.rollup``)."""

    namespace: str
    name: str
    dimensions: str
    at: float
    unit: str
    stat: bytes


def _add_account_column(conn: Connection) -> None:
    """``metric_user_data.account`` (added with accounts): data from before is the server's."""
    have = {c["name"] for c in inspect(conn).get_columns("metric_user_data")}
    if "account" not in have:
        conn.execute(
            sql_text(
                "ALTER TABLE metric_user_data ADD COLUMN account VARCHAR(32) NOT NULL DEFAULT ''"
            )
        )


def _mine() -> Any:
    caller = tenancy.current()
    return true() if caller is None else user_data.c.account == caller


class UserMetricsStore:
    """PutMetricData's data, one row per datum as sent (user metrics are few beside the
    endpoints' per-second series, so they are aggregated when read, not rolled up)."""

    def __init__(self, store: MetricsStore) -> None:
        self.engine = store.engine

    def put(self, data: Sequence[UserDatum]) -> None:
        if not data:
            return
        try:
            with self.engine.begin() as conn:
                account = tenancy.stamp()
                conn.execute(user_data.insert(), [{**d.__dict__, "account": account} for d in data])
        except SQLAlchemyError as e:
            raise BackendError(f"writing metric data failed: {e}", retry_after=5) from e

    def read(
        self, namespace: str, name: str, dimensions: str, lo: float, hi: float
    ) -> list[UserDatum]:
        stmt = (
            select(user_data)
            .where(
                user_data.c.namespace == namespace,
                user_data.c.name == name,
                user_data.c.dimensions == dimensions,
                user_data.c.at >= lo,
                user_data.c.at < hi,
                _mine(),
            )
            .order_by(user_data.c.at)
        )
        with self.engine.connect() as conn:
            return [
                UserDatum(r.namespace, r.name, r.dimensions, r.at, r.unit, bytes(r.stat))
                for r in conn.execute(stmt)
            ]

    def metrics(self, since: float) -> list[tuple[str, str, str]]:
        """(namespace, name, dimensions) of every user metric with data since ``since``."""
        stmt = (
            select(user_data.c.namespace, user_data.c.name, user_data.c.dimensions)
            .where(user_data.c.at >= since, _mine())
            .distinct()
        )
        with self.engine.connect() as conn:
            return sorted((a, b, c) for a, b, c in conn.execute(stmt))

    def prune(self, before: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(user_data).where(user_data.c.at < before))

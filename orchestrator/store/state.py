"""The SQL desired-state source: resources (spec + status documents) and API keys, over
SQLAlchemy 2.

SQLite (WAL) by default, PostgreSQL by URL. Implements ``DesiredState`` (``source.py``):
writes of status use optimistic concurrency so two writers never silently overwrite each
other; creates are idempotent by (kind, name, spec).
"""

from __future__ import annotations

import builtins
import contextlib
import hashlib
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    Connection,
    Engine,
    bindparam,
    create_engine,
    event,
    func,
    inspect,
    select,
    tuple_,
)
from sqlalchemy import (
    text as sql_text,
)
from sqlalchemy.exc import IntegrityError as SqlIntegrityError
from sqlalchemy.exc import OperationalError

from orchestrator.errors import BackendError, ConflictError, NotFoundError, ValidationError
from orchestrator.resources.search import CompiledSearch
from orchestrator.store.search_sql import (
    STATUS_FAMILIES,
    backfill,
    drop_index,
    run_search,
    update_index,
    write_index,
)
from orchestrator.store.source import (
    Flag,
    ListFilter,
    Record,
    decode_token,
    encode_token,
    sort_key,
)
from orchestrator.store.tables import access_keys, api_keys, metadata, resources


def canonical_hash(doc: dict[str, Any]) -> str:
    blob = json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def _ts(dt: datetime) -> float:
    return dt.timestamp()


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


@dataclass(frozen=True)
class ApiKeyRecord:
    key_id: str
    secret_hash: str
    name: str
    role: str
    created_at: datetime
    revoked: bool


@dataclass(frozen=True)
class AccessKeyRecord:
    """A SigV4 access key: ``sealed_secret`` is the secret wrapped by the keyring (or, from a
    keys file on a cluster, ``plain:<secret>``); ``orchestrator.api.aws.credentials`` opens it."""

    access_key_id: str
    sealed_secret: str
    name: str
    role: str
    created_at: datetime
    revoked: bool


def _normalize_url(url: str) -> str:
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class StateStore:
    def __init__(self, url: str) -> None:
        url = _normalize_url(url)
        self.url = url
        kwargs: dict[str, Any] = {"future": True}
        if url.startswith("sqlite"):
            path = url.split("///", 1)[1] if "///" in url else ""
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        try:
            self.engine: Engine = create_engine(url, **kwargs)
        except Exception as e:  # bad URL, missing driver
            raise ValidationError(
                f"cannot use database URL {url.split('@')[-1]!r}: {e}; set ORCH_DATABASE_URL to "
                "sqlite:///PATH or postgresql://USER@HOST/DB (pip install orchestrator[postgres])",
                field="ORCH_DATABASE_URL",
            ) from e
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
        try:
            metadata.create_all(self.engine)
        except OperationalError as e:
            raise BackendError(
                f"state store at {url.split('@')[-1]} is unreachable: {e.orig}", retry_after=5
            ) from e
        with self._tx() as conn:  # a store from before Search: index what it holds
            backfill(conn)
            _add_columns(conn)
        # ``list_active``'s last listing of each kind, by name (replaced whole, never edited:
        # safe to read while another thread lists).
        self._listed: dict[str, dict[str, Record]] = {}

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        try:
            with self.engine.begin() as conn:
                yield conn
        except OperationalError as e:
            raise BackendError(f"state store error: {e.orig}", retry_after=1) from e

    # --- resources -------------------------------------------------------------------------
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
        """Insert; returns (record, created). Same spec again returns the existing record."""
        spec_hash = canonical_hash(spec)
        row = {
            "kind": kind,
            "name": name,
            "uid": str(uuid.uuid4()),
            "spec": json.dumps(spec, default=str),
            "spec_hash": spec_hash,
            "status": json.dumps(status, default=str),
            "phase": phase,
            "active": active,
            "stop_requested": False,
            "delete_requested": False,
            "preempt_requested": False,
            "created_at": _ts(now),
            "updated_at": _ts(now),
            "version": 1,
        }
        try:
            with self._tx() as conn:
                conn.execute(resources.insert().values(**row))
                write_index(
                    conn, kind, name, spec, status, phase=phase,
                    created=_ts(now), updated=_ts(now), fresh=True,
                )  # fmt: skip
            return self.get(kind, name), True
        except SqlIntegrityError:
            existing = self.get(kind, name)
            if canonical_hash(existing.spec) == spec_hash and not existing.delete_requested:
                return existing, False
            raise ConflictError(
                f"{kind} {name!r} already exists with a different spec; pick another name "
                "or delete the existing one first",
                field=None,
            ) from None

    def get(self, kind: str, name: str) -> Record:
        with self._tx() as conn:
            row = conn.execute(
                select(resources).where(resources.c.kind == kind, resources.c.name == name)
            ).first()
        if row is None:
            raise NotFoundError(f"{kind} {name!r} does not exist")
        return _record(row._mapping)

    def find(self, kind: str, name: str) -> Record | None:
        try:
            return self.get(kind, name)
        except NotFoundError:
            return None

    def list(self, kind: str, page: ListFilter) -> tuple[builtins.list[Record], str | None]:
        """One page, newest first by default; the token is an opaque keyset cursor (the last
        record's sort key: see ``source.sort_key``)."""
        c = resources.c
        q = select(resources).where(c.kind == kind)
        if page.name_contains:
            q = q.where(func.lower(c.name).contains(page.name_contains.lower()))
        if page.phase:
            q = q.where(c.phase == page.phase)
        if page.created_after:
            q = q.where(c.created_at > _ts(page.created_after))
        if page.created_before:
            q = q.where(c.created_at < _ts(page.created_before))
        if page.modified_after:
            q = q.where(c.updated_at > _ts(page.modified_after))
        if page.modified_before:
            q = q.where(c.updated_at < _ts(page.modified_before))
        columns = {
            "CreationTime": (c.created_at, c.name),
            "Name": (c.name,),
            "Status": (c.phase, c.created_at, c.name),
        }[page.sort_by]
        if page.next_token:
            last = tuple_(*decode_token(page.next_token, page.sort_by))
            here = tuple_(*columns)
            q = q.where(here > last if page.ascending else here < last)
        q = q.order_by(*(col.asc() if page.ascending else col.desc() for col in columns))
        with self._tx() as conn:
            rows = conn.execute(q.limit(page.limit + 1)).all()
        records = [_record(r._mapping) for r in rows[: page.limit]]
        token = None
        if len(rows) > page.limit and records:
            token = encode_token(sort_key(records[-1], page.sort_by))
        return records, token

    def list_active(self, kind: str) -> builtins.list[Record]:
        """Every active resource of the kind. The reconciler lists them on every pass, and
        most have not changed since the last one (a queue of waiting jobs): a first query
        reads each row's (name, uid, version), and only the rows whose version this store has
        not parsed yet are read whole; the others are the ``Record`` parsed before (the same
        object: callers treat records as read-only). Memory: the records of the last listing
        of each kind, the active ones only."""
        with self._tx() as conn:
            heads = conn.execute(_ACTIVE_HEADS, {"b_kind": kind}).all()
            seen = self._listed.get(kind, {})
            out: dict[str, Record | None] = {}
            missing: builtins.list[str] = []
            for name, uid, version in heads:
                r = seen.get(name)
                if r is not None and r.uid == uid and r.version == str(version):
                    out[name] = r
                else:
                    out[name] = None
                    missing.append(name)
            for i in range(0, len(missing), _IN_CHUNK):
                chunk = missing[i : i + _IN_CHUNK]
                for row in conn.execute(_ACTIVE_ROWS, {"b_kind": kind, "b_names": chunk}):
                    out[row.name] = _record(row._mapping)
        records = {name: r for name, r in out.items() if r is not None}  # None: gone since
        self._listed[kind] = records
        return builtins.list(records.values())

    def count_by_phase(self, kind: str) -> dict[str, int]:
        with self._tx() as conn:
            rows = conn.execute(
                select(resources.c.phase, func.count())
                .where(resources.c.kind == kind)
                .group_by(resources.c.phase)
            ).all()
        return {str(phase): int(n) for phase, n in rows}

    def update_status(
        self,
        record: Record,
        status: dict[str, Any],
        *,
        phase: str,
        active: bool,
        now: datetime,
    ) -> Record:
        """Write a new status if nobody wrote since ``record`` was read (else ConflictError).
        The record returned is the row as written, not read back (a write per job launch and
        end: the read was a quarter of its cost); the flags are ``record``'s, as the version
        check proves (setting a flag bumps the version)."""
        text = json.dumps(status, default=str)
        stored = _loads(text)
        with self._tx() as conn:
            result = conn.execute(
                _UPDATE_STATUS,
                {
                    "b_kind": record.kind,
                    "b_name": record.name,
                    "b_version": int(record.version),
                    "b_status": text,
                    "b_phase": phase,
                    "b_active": active,
                    "b_updated": _ts(now),
                    "b_next": int(record.version) + 1,
                },
            )
            if result.rowcount == 1:
                # The row was ``record`` (the version says so), and its index rows are what
                # its status gave: rewrite only those that change.
                update_index(
                    conn, record.kind, record.name, record.spec,
                    before=(record.status, record.phase), status=stored, phase=phase,
                    created=_ts(record.created_at), updated=_ts(now), families=STATUS_FAMILIES,
                )  # fmt: skip
        if result.rowcount != 1:
            raise ConflictError(f"{record.kind} {record.name!r} changed while being updated")
        return replace(
            record,
            status=stored,
            phase=phase,
            active=active,
            updated_at=_dt(_ts(now)),
            version=str(int(record.version) + 1),
        )

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
        """Replace the desired state (and the status with it, e.g. to clear what the old spec
        left) if nobody wrote since ``record`` was read (else ConflictError). With
        ``reconcile`` the resource needs the controller again; ``phase`` replaces the primary
        status when the new status changes it."""
        values: dict[str, Any] = {}
        if reconcile:
            values["active"] = True
        if phase is not None:
            values["phase"] = phase
        with self._tx() as conn:
            result = conn.execute(
                resources.update()
                .where(
                    resources.c.kind == record.kind,
                    resources.c.name == record.name,
                    resources.c.version == int(record.version),
                )
                .values(
                    spec=json.dumps(spec, default=str),
                    spec_hash=canonical_hash(spec),
                    status=json.dumps(status, default=str),
                    updated_at=_ts(now),
                    version=int(record.version) + 1,
                    **values,
                )
            )
            if result.rowcount == 1:
                write_index(
                    conn, record.kind, record.name, spec, status, phase=phase or record.phase,
                    created=_ts(record.created_at), updated=_ts(now),
                )  # fmt: skip
        if result.rowcount != 1:
            raise ConflictError(f"{record.kind} {record.name!r} changed while being updated")
        return self.get(record.kind, record.name)

    def set_flag(
        self, kind: str, name: str, flag: Flag, now: datetime, *, value: bool = True
    ) -> Record:
        """Mark desired state: ``stop_requested``, ``delete_requested`` or
        ``preempt_requested`` (idempotent); only a preemption request is ever withdrawn."""
        if flag not in {"stop_requested", "delete_requested", "preempt_requested"}:
            raise ValueError(flag)
        if not value and flag != "preempt_requested":
            raise ValueError(f"{flag} cannot be withdrawn")
        with self._tx() as conn:
            result = conn.execute(
                resources.update()
                .where(resources.c.kind == kind, resources.c.name == name)
                # A resource asked to stop or go needs the controller again.
                .values(
                    {
                        flag: value,
                        "active": True,
                        "updated_at": _ts(now),
                        "version": resources.c.version + 1,
                    }
                )
            )
        if result.rowcount != 1:
            raise NotFoundError(f"{kind} {name!r} does not exist")
        return self.get(kind, name)

    def delete(self, kind: str, name: str) -> None:
        with self._tx() as conn:
            result = conn.execute(
                resources.delete().where(resources.c.kind == kind, resources.c.name == name)
            )
            drop_index(conn, kind, name)
        if result.rowcount != 1:
            raise NotFoundError(f"{kind} {name!r} does not exist")

    def claim(self, record: Record) -> Record:
        return record  # a row stays until it is deleted: nothing to hold it

    def release(self, record: Record) -> None:
        # NotFound: released before (a pass that was killed after the delete).
        with contextlib.suppress(NotFoundError):
            self.delete(record.kind, record.name)

    def search(self, query: CompiledSearch) -> tuple[builtins.list[Record], str | None]:
        """One page of a Search, as one SQL query over the index tables (``search_sql``)."""
        with self._tx() as conn:
            rows, _, token = run_search(conn, query, self.engine.dialect.name)
        return [_record(r._mapping) for r in rows], token

    # --- API keys --------------------------------------------------------------------------
    def add_api_key(
        self, key_id: str, secret_hash: str, *, name: str, role: str, now: datetime
    ) -> None:
        with self._tx() as conn:
            conn.execute(
                api_keys.insert().values(
                    key_id=key_id,
                    secret_hash=secret_hash,
                    name=name,
                    role=role,
                    created_at=_ts(now),
                    revoked=False,
                )
            )

    def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        with self._tx() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).first()
        if row is None:
            return None
        return _api_key(row._mapping)

    def list_api_keys(self) -> builtins.list[ApiKeyRecord]:
        """Every key, revoked ones too, oldest first."""
        with self._tx() as conn:
            rows = conn.execute(select(api_keys).order_by(api_keys.c.created_at)).all()
        return [_api_key(r._mapping) for r in rows]

    def revoke_api_key(self, key_id: str) -> ApiKeyRecord:
        """Mark the key revoked (idempotent); NotFoundError when there is no such key."""
        with self._tx() as conn:
            result = conn.execute(
                api_keys.update().where(api_keys.c.key_id == key_id).values(revoked=True)
            )
        if result.rowcount != 1:
            raise NotFoundError(f"API key {key_id!r} does not exist", field="KeyId")
        record = self.get_api_key(key_id)
        assert record is not None
        return record

    def count_api_keys(self) -> int:
        with self._tx() as conn:
            n = conn.execute(select(func.count()).select_from(api_keys)).scalar_one()
        return int(n)

    # --- SigV4 access keys -----------------------------------------------------------------
    def add_access_key(
        self, access_key_id: str, sealed_secret: str, *, name: str, role: str, now: datetime
    ) -> None:
        with self._tx() as conn:
            conn.execute(
                access_keys.insert().values(
                    access_key_id=access_key_id,
                    sealed_secret=sealed_secret,
                    name=name,
                    role=role,
                    created_at=_ts(now),
                    revoked=False,
                )
            )

    def get_access_key(self, access_key_id: str) -> AccessKeyRecord | None:
        with self._tx() as conn:
            row = conn.execute(
                select(access_keys).where(access_keys.c.access_key_id == access_key_id)
            ).first()
        return None if row is None else _access_key(row._mapping)

    def list_access_keys(self) -> builtins.list[AccessKeyRecord]:
        """Every access key, revoked ones too, oldest first."""
        with self._tx() as conn:
            rows = conn.execute(select(access_keys).order_by(access_keys.c.created_at)).all()
        return [_access_key(r._mapping) for r in rows]

    def revoke_access_key(self, access_key_id: str) -> AccessKeyRecord:
        """Mark the access key revoked (idempotent); NotFoundError when there is none."""
        with self._tx() as conn:
            result = conn.execute(
                access_keys.update()
                .where(access_keys.c.access_key_id == access_key_id)
                .values(revoked=True)
            )
        if result.rowcount != 1:
            raise NotFoundError(f"access key {access_key_id!r} does not exist", field="AccessKeyId")
        record = self.get_access_key(access_key_id)
        assert record is not None
        return record


_IN_CHUNK = 500  # names per ``IN (...)``: under SQLite's limit on bound parameters

# The statements of every pass, built once: building a SQLAlchemy statement (and its cache
# key) cost more than running it (a third of a status write).
_c = resources.c
_ACTIVE = (_c.kind == bindparam("b_kind"), _c.active.is_(True))
_ACTIVE_HEADS = select(_c.name, _c.uid, _c.version).where(*_ACTIVE)
_ACTIVE_ROWS = select(resources).where(*_ACTIVE, _c.name.in_(bindparam("b_names", expanding=True)))
_UPDATE_STATUS = (
    resources.update()
    .where(
        _c.kind == bindparam("b_kind"),
        _c.name == bindparam("b_name"),
        _c.version == bindparam("b_version"),
    )
    .values(
        status=bindparam("b_status"),
        phase=bindparam("b_phase"),
        active=bindparam("b_active"),
        updated_at=bindparam("b_updated"),
        version=bindparam("b_next"),
    )
)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def _loads(text: str) -> Any:
    """A stored document. orjson reads one in about a third of the stdlib's time (a page of
    100 training jobs: ~7 of a search's 15 ms went to ``json.loads``); a document holding a
    NaN or an infinity (which ``json.dumps`` writes and orjson refuses) is read by the stdlib."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def _add_columns(conn: Connection) -> None:
    """Columns added since the table was first made (``create_all`` makes only new tables)."""
    have = {c["name"] for c in inspect(conn).get_columns("resources")}
    if "preempt_requested" not in have:
        false = "0" if conn.dialect.name == "sqlite" else "false"
        conn.execute(
            sql_text(
                "ALTER TABLE resources ADD COLUMN preempt_requested BOOLEAN NOT NULL "
                f"DEFAULT {false}"
            )
        )


def _record(m: Any) -> Record:
    return Record(
        kind=m["kind"],
        name=m["name"],
        uid=m["uid"],
        spec=_loads(m["spec"]),
        status=_loads(m["status"]),
        phase=m["phase"],
        active=bool(m["active"]),
        stop_requested=bool(m["stop_requested"]),
        delete_requested=bool(m["delete_requested"]),
        created_at=_dt(m["created_at"]),
        updated_at=_dt(m["updated_at"]),
        version=str(m["version"]),
        preempt_requested=bool(m["preempt_requested"]),
    )


def _api_key(m: Any) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=m["key_id"],
        secret_hash=m["secret_hash"],
        name=m["name"],
        role=m["role"],
        created_at=_dt(m["created_at"]),
        revoked=bool(m["revoked"]),
    )


def _access_key(m: Any) -> AccessKeyRecord:
    return AccessKeyRecord(
        access_key_id=m["access_key_id"],
        sealed_secret=m["sealed_secret"],
        name=m["name"],
        role=m["role"],
        created_at=_dt(m["created_at"]),
        revoked=bool(m["revoked"]),
    )

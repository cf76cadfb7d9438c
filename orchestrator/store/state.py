"""The SQL desired-state source: resources (spec + status documents) and API keys, over
SQLAlchemy 2.

SQLite (WAL) by default, PostgreSQL by URL. Implements ``DesiredState`` (``source.py``):
writes of status use optimistic concurrency so two writers never silently overwrite each
other; creates are idempotent by (kind, name, spec).

Tenancy (``orchestrator.tenancy``): every row carries the account it belongs to (a create
stamps the caller's). A caller sees only its own account's rows: a get, an update, a flag, a
delete of another account's resource fails exactly as for an absent one (the same
``NotFoundError``, the same message), and lists, counts and searches hold only its own. The
system (``tenancy.current()`` is None: the controller, the operator) sees every account.
Names stay unique per kind across accounts, as S3 bucket names are across AWS accounts: the
backends name containers, directories and Kubernetes objects by the resource's name, so a
create of a name another account holds answers exactly as a duplicate of one's own
(``ConflictError``: ResourceInUse), and says nothing else about it. Identities and keys carry
their account too, with the same rule.
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

from orchestrator import tenancy
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
from orchestrator.store.tables import (
    access_keys,
    accounts,
    api_keys,
    identities,
    metadata,
    resources,
    usage_instance_counts,
    usage_predictions,
)


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
    identity: str | None = None
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    account: str = ""  # its identity's account ("": the server's own)


@dataclass(frozen=True)
class IdentityRecord:
    """A user or service identity; ``document`` holds its policies and assumable roles."""

    name: str
    kind: str
    created_at: datetime
    document: dict[str, Any]
    account: str = ""  # ``orchestrator.tenancy``: "" for the server's own


@dataclass(frozen=True)
class AccountRecord:
    """An account (tenant) other than the server's own: a 12-digit id and a unique name."""

    id: str
    name: str
    created_at: datetime


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
    identity: str | None = None
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    account: str = ""  # its identity's account ("": the server's own)


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
            _add_key_columns(conn)
            _add_account_columns(conn)
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
            "account": tenancy.stamp(),
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
            existing = self._get_any(kind, name)
            if (
                tenancy.visible(existing.account)
                and canonical_hash(existing.spec) == spec_hash
                and not existing.delete_requested
            ):
                return existing, False
            # Another account's name: the same answer as a duplicate of one's own.
            raise ConflictError(
                f"{kind} {name!r} already exists with a different spec; pick another name "
                "or delete the existing one first",
                field=None,
            ) from None

    def get(self, kind: str, name: str) -> Record:
        """The resource, or ``NotFoundError``; another account's is absent to the caller."""
        record = self._get_any(kind, name)
        if not tenancy.visible(record.account):
            raise _absent(kind, name)
        return record

    def _get_any(self, kind: str, name: str) -> Record:
        with self._tx() as conn:
            row = conn.execute(
                select(resources).where(resources.c.kind == kind, resources.c.name == name)
            ).first()
        if row is None:
            raise _absent(kind, name)
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
        q = select(resources).where(c.kind == kind, *_own())
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
                .where(resources.c.kind == kind, *_own())
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
        if not tenancy.visible(record.account):
            raise _absent(record.kind, record.name)
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
                if record.kind == "Endpoint":
                    _record_counts(conn, record.name, record.spec, record.status, stored, _ts(now))
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
        if not tenancy.visible(record.account):
            raise _absent(record.kind, record.name)
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
                .where(resources.c.kind == kind, resources.c.name == name, *_own())
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
            raise _absent(kind, name)
        return self.get(kind, name)

    def delete(self, kind: str, name: str) -> None:
        with self._tx() as conn:
            if tenancy.current() is not None:  # another account's: absent to the caller
                row = conn.execute(
                    select(resources.c.account).where(
                        resources.c.kind == kind, resources.c.name == name
                    )
                ).first()
                if row is None or not tenancy.visible(str(row.account)):
                    raise _absent(kind, name)
            if kind == "Endpoint":
                _close_counts(conn, name)
            result = conn.execute(
                resources.delete().where(resources.c.kind == kind, resources.c.name == name)
            )
            drop_index(conn, kind, name)
        if result.rowcount != 1:
            raise _absent(kind, name)

    def claim(self, record: Record) -> Record:
        if not tenancy.visible(record.account):
            raise _absent(record.kind, record.name)
        return record  # a row stays until it is deleted: nothing to hold it

    def release(self, record: Record) -> None:
        # NotFound: released before (a pass that was killed after the delete).
        with contextlib.suppress(NotFoundError):
            self.delete(record.kind, record.name)

    def search(self, query: CompiledSearch) -> tuple[builtins.list[Record], str | None]:
        """One page of a Search, as one SQL query over the index tables (``search_sql``)."""
        with self._tx() as conn:
            rows, _, token = run_search(
                conn, query, self.engine.dialect.name, account=tenancy.current()
            )
        return [_record(r._mapping) for r in rows], token

    # --- API keys --------------------------------------------------------------------------
    def add_api_key(
        self,
        key_id: str,
        secret_hash: str,
        *,
        name: str,
        role: str,
        now: datetime,
        identity: str | None = None,
        expires_at: datetime | None = None,
        account: str | None = None,
    ) -> None:
        """``account``: the key's identity's (None: the caller's)."""
        with self._tx() as conn:
            conn.execute(
                api_keys.insert().values(
                    account=tenancy.stamp() if account is None else account,
                    key_id=key_id,
                    secret_hash=secret_hash,
                    name=name,
                    role=role,
                    created_at=_ts(now),
                    revoked=False,
                    identity=identity,
                    expires_at=None if expires_at is None else _ts(expires_at),
                )
            )

    def get_api_key(self, key_id: str) -> ApiKeyRecord | None:
        with self._tx() as conn:
            row = conn.execute(select(api_keys).where(api_keys.c.key_id == key_id)).first()
        if row is None:
            return None
        key = _api_key(row._mapping)
        return key if tenancy.visible(key.account) else None

    def list_api_keys(self) -> builtins.list[ApiKeyRecord]:
        """Every key, revoked ones too, oldest first."""
        with self._tx() as conn:
            rows = conn.execute(
                select(api_keys).where(*_own(api_keys)).order_by(api_keys.c.created_at)
            ).all()
        return [_api_key(r._mapping) for r in rows]

    def revoke_api_key(self, key_id: str) -> ApiKeyRecord:
        """Mark the key revoked (idempotent); NotFoundError when there is no such key."""
        with self._tx() as conn:
            result = conn.execute(
                api_keys.update()
                .where(api_keys.c.key_id == key_id, *_own(api_keys))
                .values(revoked=True)
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
        self,
        access_key_id: str,
        sealed_secret: str,
        *,
        name: str,
        role: str,
        now: datetime,
        identity: str | None = None,
        expires_at: datetime | None = None,
        account: str | None = None,
    ) -> None:
        """``account``: the key's identity's (None: the caller's)."""
        with self._tx() as conn:
            conn.execute(
                access_keys.insert().values(
                    account=tenancy.stamp() if account is None else account,
                    access_key_id=access_key_id,
                    sealed_secret=sealed_secret,
                    name=name,
                    role=role,
                    created_at=_ts(now),
                    revoked=False,
                    identity=identity,
                    expires_at=None if expires_at is None else _ts(expires_at),
                )
            )

    def get_access_key(self, access_key_id: str) -> AccessKeyRecord | None:
        with self._tx() as conn:
            row = conn.execute(
                select(access_keys).where(access_keys.c.access_key_id == access_key_id)
            ).first()
        key = None if row is None else _access_key(row._mapping)
        return key if key is not None and tenancy.visible(key.account) else None

    def list_access_keys(self) -> builtins.list[AccessKeyRecord]:
        """Every access key, revoked ones too, oldest first."""
        with self._tx() as conn:
            rows = conn.execute(
                select(access_keys).where(*_own(access_keys)).order_by(access_keys.c.created_at)
            ).all()
        return [_access_key(r._mapping) for r in rows]

    def revoke_access_key(self, access_key_id: str) -> AccessKeyRecord:
        """Mark the access key revoked (idempotent); NotFoundError when there is none."""
        with self._tx() as conn:
            result = conn.execute(
                access_keys.update()
                .where(access_keys.c.access_key_id == access_key_id, *_own(access_keys))
                .values(revoked=True)
            )
        if result.rowcount != 1:
            raise NotFoundError(f"access key {access_key_id!r} does not exist", field="AccessKeyId")
        record = self.get_access_key(access_key_id)
        assert record is not None
        return record

    # --- usage (``orchestrator.usage``) ---------------------------------------------------
    def instance_count_changes(
        self, until: datetime, endpoint: str | None = None
    ) -> builtins.list[tuple[str, str, str, str | None, int, datetime]]:
        """Every endpoint variant's instance-count change before ``until``, oldest first:
        (endpoint, variant, instance type, tenant tag, count, at)."""
        t = usage_instance_counts
        columns = (t.c.endpoint, t.c.variant, t.c.instance_type, t.c.tenant, t.c.count, t.c.at)
        query = select(*columns).where(t.c.at < _ts(until))
        if endpoint is not None:
            query = query.where(t.c.endpoint == endpoint)
        with self._tx() as conn:
            rows = conn.execute(query.order_by(t.c.at, t.c.id)).all()
        return [(e, v, kind, tenant, int(n), _dt(at)) for e, v, kind, tenant, n, at in rows]

    def add_predictions(self, counts: dict[tuple[str, str, float], int]) -> None:
        """Add invocation counts per (endpoint, variant, hour start as a timestamp)."""
        t = usage_predictions
        with self._tx() as conn:
            for (endpoint, variant, hour), n in sorted(counts.items()):
                key = (t.c.endpoint == endpoint, t.c.variant == variant, t.c.hour == hour)
                done = conn.execute(t.update().where(*key).values(count=t.c.count + n))
                if done.rowcount == 0:
                    conn.execute(
                        t.insert().values(endpoint=endpoint, variant=variant, hour=hour, count=n)
                    )

    def predictions(
        self, since: datetime, until: datetime
    ) -> builtins.list[tuple[str, str, datetime, int]]:
        """Invocations per (endpoint, variant, hour) for the hours starting in [since, until)."""
        t = usage_predictions
        query = select(t.c.endpoint, t.c.variant, t.c.hour, t.c.count).where(
            t.c.hour >= _ts(since), t.c.hour < _ts(until)
        )
        with self._tx() as conn:
            rows = conn.execute(query).all()
        return [(e, v, _dt(hour), int(n)) for e, v, hour, n in rows]

    def reseal_access_key(self, access_key_id: str, old: str, new: str) -> bool:
        """Replace a key's sealed secret only if it is still ``old`` (the master key
        re-wrap: a compare-and-swap); False when it changed or is gone."""
        with self._tx() as conn:
            result = conn.execute(
                access_keys.update()
                .where(access_keys.c.access_key_id == access_key_id)
                .where(access_keys.c.sealed_secret == old)
                .values(sealed_secret=new)
            )
        return bool(result.rowcount == 1)

    # --- identities ------------------------------------------------------------------------
    def touch_keys(self, api: dict[str, datetime], access: dict[str, datetime]) -> None:
        """Record keys' last use (a batch: the API writes them at most once a minute a key)."""
        with self._tx() as conn:
            for key_id, when in api.items():
                conn.execute(
                    api_keys.update()
                    .where(api_keys.c.key_id == key_id)
                    .values(last_used_at=_ts(when))
                )
            for akid, when in access.items():
                conn.execute(
                    access_keys.update()
                    .where(access_keys.c.access_key_id == akid)
                    .values(last_used_at=_ts(when))
                )

    def set_key_identity(self, key_id: str, identity: str, *, access: bool = False) -> None:
        table, column = (
            (access_keys, access_keys.c.access_key_id) if access else (api_keys, api_keys.c.key_id)
        )
        with self._tx() as conn:
            conn.execute(table.update().where(column == key_id).values(identity=identity))

    def add_identity(
        self,
        name: str,
        *,
        kind: str,
        document: dict[str, Any],
        now: datetime,
        account: str | None = None,
    ) -> IdentityRecord:
        """``account``: the one it belongs to (None: the caller's). Names are unique across
        accounts: a name another account holds is refused as a duplicate of one's own."""
        owner = tenancy.stamp() if account is None else account
        try:
            with self._tx() as conn:
                conn.execute(
                    identities.insert().values(
                        name=name,
                        kind=kind,
                        created_at=_ts(now),
                        document=json.dumps(document),
                        account=owner,
                    )
                )
        except SqlIntegrityError as e:
            raise ConflictError(f"identity {name!r} already exists", field="UserName") from e
        return IdentityRecord(name, kind, _dt(_ts(now)), document, owner)

    def get_identity(self, name: str) -> IdentityRecord | None:
        """The identity, or None when there is none the caller may see."""
        with self._tx() as conn:
            row = conn.execute(
                select(identities).where(identities.c.name == name, *_own(identities))
            ).first()
        return None if row is None else _identity(row._mapping)

    def list_identities(self) -> builtins.list[IdentityRecord]:
        with self._tx() as conn:
            rows = conn.execute(
                select(identities).where(*_own(identities)).order_by(identities.c.name)
            ).all()
        return [_identity(r._mapping) for r in rows]

    def update_identity(self, name: str, document: dict[str, Any]) -> IdentityRecord:
        with self._tx() as conn:
            result = conn.execute(
                identities.update()
                .where(identities.c.name == name, *_own(identities))
                .values(document=json.dumps(document))
            )
        if result.rowcount != 1:
            raise NotFoundError(f"identity {name!r} does not exist", field="UserName")
        record = self.get_identity(name)
        assert record is not None
        return record

    def delete_identity(self, name: str) -> None:
        """Delete the identity and revoke every key it has."""
        with self._tx() as conn:
            result = conn.execute(
                identities.delete().where(identities.c.name == name, *_own(identities))
            )
            if result.rowcount != 1:
                raise NotFoundError(f"identity {name!r} does not exist", field="UserName")
            conn.execute(api_keys.update().where(api_keys.c.identity == name).values(revoked=True))
            conn.execute(
                access_keys.update().where(access_keys.c.identity == name).values(revoked=True)
            )

    # --- accounts (``orchestrator.tenancy``) ----------------------------------------------
    def add_account(self, account_id: str, name: str, *, now: datetime) -> AccountRecord:
        """A new account; a taken name (or id) is a ``ConflictError`` naming the field."""
        try:
            with self._tx() as conn:
                conn.execute(
                    accounts.insert().values(id=account_id, name=name, created_at=_ts(now))
                )
        except SqlIntegrityError as e:
            taken = self.get_account_named(name) is not None
            field = "AccountName" if taken else "AccountId"
            what = f"name {name!r}" if taken else f"id {account_id!r}"
            raise ConflictError(
                f"{field}: an account with the {what} already exists; pick another", field=field
            ) from e
        return AccountRecord(account_id, name, _dt(_ts(now)))

    def get_account(self, account_id: str) -> AccountRecord | None:
        with self._tx() as conn:
            row = conn.execute(select(accounts).where(accounts.c.id == account_id)).first()
        return None if row is None else _account(row._mapping)

    def get_account_named(self, name: str) -> AccountRecord | None:
        with self._tx() as conn:
            row = conn.execute(select(accounts).where(accounts.c.name == name)).first()
        return None if row is None else _account(row._mapping)

    def list_accounts(self) -> builtins.list[AccountRecord]:
        """Every account, oldest first, then by name (the server's own is not a row)."""
        with self._tx() as conn:
            rows = conn.execute(select(accounts).order_by(accounts.c.created_at, accounts.c.name))
            return [_account(r._mapping) for r in rows]


def _own(table: Any = resources) -> tuple[Any, ...]:
    """The condition that keeps only the caller's account's rows (none for the system)."""
    caller = tenancy.current()
    return () if caller is None else (table.c.account == caller,)


def _absent(kind: str, name: str) -> NotFoundError:
    """What an absent resource answers, and another account's the same."""
    return NotFoundError(f"{kind} {name!r} does not exist")


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


def _variant_counts(status: Any) -> dict[str, int]:
    variants = status.get("ProductionVariants") if isinstance(status, dict) else None
    out: dict[str, int] = {}
    for v in variants or []:
        if isinstance(v, dict) and isinstance(v.get("VariantName"), str):
            out[v["VariantName"]] = int(v.get("CurrentInstanceCount") or 0)
    return out


def _variant_types(conn: Connection, spec: Any, status: Any) -> dict[str, str]:
    """Variant -> instance type by the config the endpoint serves, then the one it asks for."""
    names = [
        status.get("CurrentEndpointConfigName") if isinstance(status, dict) else None,
        spec.get("EndpointConfigName") if isinstance(spec, dict) else None,
    ]
    out: dict[str, str] = {}
    for name in names:
        if not name:
            continue
        row = conn.execute(
            select(resources.c.spec).where(
                resources.c.kind == "EndpointConfig", resources.c.name == name
            )
        ).first()
        config = _loads(row.spec) if row is not None else {}
        for v in config.get("ProductionVariants") or []:
            if isinstance(v, dict) and v.get("VariantName"):
                out.setdefault(str(v["VariantName"]), str(v.get("InstanceType") or "local"))
    return out


def _record_counts(  # noqa: PLR0917 - one call site per write
    conn: Connection, endpoint: str, spec: Any, before: Any, after: Any, at: float
) -> None:
    """Usage: a row per variant whose instance count this status write changed."""
    old, new = _variant_counts(before), _variant_counts(after)
    changed = [v for v in sorted(set(old) | set(new)) if old.get(v, 0) != new.get(v, 0)]
    if not changed:
        return
    types = _variant_types(conn, spec, after if new else before)
    tags = spec.get("Tags") if isinstance(spec, dict) else None
    named = [t for t in tags or [] if isinstance(t, dict) and t.get("Key") == "tenant"]
    tenant = str(named[0].get("Value")) if named else None
    rows = [
        {
            "endpoint": endpoint,
            "variant": v,
            "instance_type": types.get(v, "unknown"),
            "tenant": tenant,
            "count": new.get(v, 0),
            "at": at,
        }
        for v in changed
    ]
    conn.execute(usage_instance_counts.insert(), rows)


def _close_counts(conn: Connection, endpoint: str) -> None:
    """An endpoint deleted: its variants stop at its last status write (the teardown's pass)."""
    row = conn.execute(
        select(resources.c.spec, resources.c.status, resources.c.updated_at).where(
            resources.c.kind == "Endpoint", resources.c.name == endpoint
        )
    ).first()
    if row is not None:
        spec, status = _loads(row.spec), _loads(row.status)
        _record_counts(conn, endpoint, spec, status, {}, float(row.updated_at))


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


def _add_key_columns(conn: Connection) -> None:
    """The identity, expiry and last-use columns of the key tables (added with identities)."""
    for table in ("api_keys", "access_keys"):
        have = {c["name"] for c in inspect(conn).get_columns(table)}
        for column in ("identity VARCHAR(128)", "expires_at FLOAT", "last_used_at FLOAT"):
            if column.split()[0] not in have:
                conn.execute(sql_text(f"ALTER TABLE {table} ADD COLUMN {column}"))


def _add_account_columns(conn: Connection) -> None:
    """The account of every resource, identity and key (added with accounts): "" (the
    server's own) for every row from before."""
    for table in ("resources", "identities", "api_keys", "access_keys"):
        have = {c["name"] for c in inspect(conn).get_columns(table)}
        if "account" not in have:
            conn.execute(
                sql_text(f"ALTER TABLE {table} ADD COLUMN account VARCHAR(12) NOT NULL DEFAULT ''")
            )


def _account(m: Any) -> AccountRecord:
    return AccountRecord(m["id"], m["name"], _dt(m["created_at"]))


def _ts_or_none(value: Any) -> datetime | None:
    return None if value is None else _dt(value)


def _identity(m: Any) -> IdentityRecord:
    return IdentityRecord(
        m["name"], m["kind"], _dt(m["created_at"]), json.loads(m["document"]), m["account"] or ""
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
        account=m["account"] or "",
    )


def _api_key(m: Any) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=m["key_id"],
        secret_hash=m["secret_hash"],
        name=m["name"],
        role=m["role"],
        created_at=_dt(m["created_at"]),
        revoked=bool(m["revoked"]),
        identity=m["identity"],
        expires_at=_ts_or_none(m["expires_at"]),
        last_used_at=_ts_or_none(m["last_used_at"]),
        account=m["account"] or "",
    )


def _access_key(m: Any) -> AccessKeyRecord:
    return AccessKeyRecord(
        access_key_id=m["access_key_id"],
        sealed_secret=m["sealed_secret"],
        name=m["name"],
        role=m["role"],
        created_at=_dt(m["created_at"]),
        revoked=bool(m["revoked"]),
        identity=m["identity"],
        expires_at=_ts_or_none(m["expires_at"]),
        last_used_at=_ts_or_none(m["last_used_at"]),
        account=m["account"] or "",
    )

"""Metric alarms and their history in SQL (the desired state's engine: they survive a restart
and several API replicas on one PostgreSQL database see the same alarms).

``alarms``: one row per alarm, its spec (``resources.alarms.MetricAlarm`` as JSON) and its
state, and the account (tenant) it belongs to. Alarm names are unique server-wide (the
name is the key, as before accounts): a put of a name another account holds is refused as a
conflict rather than overwriting it. Every read and write filters by ``tenancy.current()``:
another account's alarm answers as an absent one (the system, ``None``, sees all).
``alarm_history``: ConfigurationUpdate, StateUpdate and Action items, newest read first.
A state write names the state it read (``expected``), so two evaluators (two replicas) never
both record the same transition.
"""

from __future__ import annotations

import builtins
import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    inspect,
    select,
    true,
    update,
)
from sqlalchemy import text as sql_text
from sqlalchemy.exc import OperationalError

from orchestrator import tenancy
from orchestrator.errors import BackendError, ConflictError
from orchestrator.resources.alarms import MetricAlarm

metadata = MetaData()
alarms = Table(
    "alarms",
    metadata,
    Column("name", String(255), primary_key=True),
    Column("spec", Text, nullable=False),
    Column("state", String(32), nullable=False),
    Column("reason", Text, nullable=False),
    Column("reason_data", Text, nullable=True),
    Column("state_updated", Float, nullable=False),
    Column("config_updated", Float, nullable=False),
    Column("account", String(32), nullable=False, default="", server_default=""),
)
alarm_history = Table(
    "alarm_history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),
    Column("at", Float, nullable=False),
    Column("type", String(32), nullable=False),
    Column("summary", Text, nullable=False),
    Column("data", Text, nullable=False),
)
Index("ix_alarm_history_name", alarm_history.c.name, alarm_history.c.at)


@dataclass(frozen=True)
class AlarmRecord:
    alarm: MetricAlarm
    state: str
    reason: str
    reason_data: str | None
    state_updated: float
    config_updated: float
    account: str = tenancy.ROOT


@dataclass(frozen=True)
class HistoryRecord:
    name: str
    at: float
    type: str
    summary: str
    data: str


def _record(row: Any) -> AlarmRecord:
    return AlarmRecord(
        alarm=MetricAlarm.model_validate_json(row.spec),
        state=row.state,
        reason=row.reason,
        reason_data=row.reason_data,
        state_updated=row.state_updated,
        config_updated=row.config_updated,
        account=row.account,
    )


def _add_account_column(conn: Connection) -> None:
    """The ``account`` column (added with accounts): an alarm from before is the server's."""
    have = {c["name"] for c in inspect(conn).get_columns("alarms")}
    if "account" not in have:
        conn.execute(
            sql_text("ALTER TABLE alarms ADD COLUMN account VARCHAR(32) NOT NULL DEFAULT ''")
        )


def _mine() -> Any:
    """The caller's alarms (every alarm for the system)."""
    caller = tenancy.current()
    return true() if caller is None else alarms.c.account == caller


def _mine_names() -> Any:
    """History rows of the caller's alarms."""
    caller = tenancy.current()
    if caller is None:
        return true()
    return alarm_history.c.name.in_(select(alarms.c.name).where(alarms.c.account == caller))


class AlarmStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        try:
            metadata.create_all(engine)
            with engine.begin() as conn:
                _add_account_column(conn)
        except OperationalError as e:
            raise BackendError(f"alarm store is unreachable: {e.orig}", retry_after=5) from e

    def put(self, alarm: MetricAlarm, now: float) -> bool:
        """Create or update ``alarm`` (a new one starts INSUFFICIENT_DATA, an updated one keeps
        its state until the next evaluation); True when it is new. Records a
        ConfigurationUpdate. A new alarm belongs to the caller's account; a name another
        account holds is a ConflictError (names are server-wide)."""
        spec = alarm.model_dump_json(exclude_none=True)
        with self.engine.begin() as conn:
            found = conn.execute(
                select(alarms.c.account).where(alarms.c.name == alarm.AlarmName)
            ).first()
            created = found is None
            if found is not None and not tenancy.visible(found.account):
                raise ConflictError(
                    f"alarm name {alarm.AlarmName!r} is already in use on this server (alarm "
                    "names are unique server-wide); choose another AlarmName",
                    field="AlarmName",
                )
            if created:
                conn.execute(
                    insert(alarms).values(
                        name=alarm.AlarmName, spec=spec, state="INSUFFICIENT_DATA",
                        reason="Unchecked: Initial alarm creation", reason_data=None,
                        state_updated=now, config_updated=now, account=tenancy.stamp(),
                    )
                )  # fmt: skip
            else:
                conn.execute(
                    update(alarms)
                    .where(alarms.c.name == alarm.AlarmName)
                    .values(spec=spec, config_updated=now)
                )
            verb = "created" if created else "updated"
            conn.execute(
                insert(alarm_history).values(
                    name=alarm.AlarmName, at=now, type="ConfigurationUpdate",
                    summary=f"Alarm \"{alarm.AlarmName}\" {verb}",
                    data=json.dumps({"type": "Create" if created else "Update",
                                     "version": "1.0", "updatedAlarm": json.loads(spec)}),
                )
            )  # fmt: skip
        return created

    def get(self, name: str) -> AlarmRecord | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(alarms).where(alarms.c.name == name, _mine())).first()
        return None if row is None else _record(row)

    def list(
        self,
        *,
        prefix: str | None = None,
        state: str | None = None,
        names: builtins.list[str] | None = None,
    ) -> builtins.list[AlarmRecord]:
        query = select(alarms).where(_mine()).order_by(alarms.c.name)
        if prefix:
            query = query.where(alarms.c.name.startswith(prefix, autoescape=True))
        if state:
            query = query.where(alarms.c.state == state)
        if names:
            query = query.where(alarms.c.name.in_(names))
        with self.engine.connect() as conn:
            return [_record(r) for r in conn.execute(query)]

    def delete(self, names: builtins.list[str]) -> int:
        with self.engine.begin() as conn:
            mine = conn.execute(
                select(alarms.c.name).where(alarms.c.name.in_(names), _mine())
            ).scalars()
            names = list(mine)
            n = conn.execute(delete(alarms).where(alarms.c.name.in_(names))).rowcount
            conn.execute(delete(alarm_history).where(alarm_history.c.name.in_(names)))
        return int(n or 0)

    def set_state(
        self,
        name: str,
        state: str,
        reason: str,
        reason_data: str | None,
        now: float,
        *,
        expected: str | None = None,
    ) -> str | None:
        """Move ``name`` to ``state``, recording a StateUpdate; the old state, or None when
        the alarm is gone or another writer moved it from ``expected`` first."""
        with self.engine.begin() as conn:
            row = conn.execute(select(alarms.c.state).where(alarms.c.name == name, _mine())).first()
            if row is None or (expected is not None and row.state != expected):
                return None
            old = str(row.state)
            done = conn.execute(
                update(alarms)
                .where(alarms.c.name == name, alarms.c.state == old)
                .values(state=state, reason=reason, reason_data=reason_data, state_updated=now)
            ).rowcount
            if not done:
                return None
            conn.execute(
                insert(alarm_history).values(
                    name=name, at=now, type="StateUpdate",
                    summary=f"Alarm updated from {old} to {state}",
                    data=json.dumps({
                        "version": "1.0",
                        "oldState": {"stateValue": old},
                        "newState": {"stateValue": state, "stateReason": reason,
                                     "stateReasonData": reason_data},
                    }),
                )
            )  # fmt: skip
        return old

    def add_history(self, name: str, type_: str, summary: str, data: str, now: float) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(alarm_history).values(
                    name=name, at=now, type=type_, summary=summary, data=data
                )
            )

    def history(
        self,
        name: str | None = None,
        *,
        type_: str | None = None,
        start: float | None = None,
        end: float | None = None,
        limit: int = 100,
    ) -> builtins.list[HistoryRecord]:
        query = (
            select(alarm_history)
            .where(_mine_names())
            .order_by(alarm_history.c.at.desc(), alarm_history.c.id.desc())
        )
        if name:
            query = query.where(alarm_history.c.name == name)
        if type_:
            query = query.where(alarm_history.c.type == type_)
        if start is not None:
            query = query.where(alarm_history.c.at >= start)
        if end is not None:
            query = query.where(alarm_history.c.at < end)
        with self.engine.connect() as conn:
            rows = conn.execute(query.limit(limit)).all()
        return [HistoryRecord(r.name, r.at, r.type, r.summary, r.data) for r in rows]

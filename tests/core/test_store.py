"""The state store on SQLite and on PostgreSQL (a database made for this run, dropped after).

PostgreSQL comes from ORCH_TEST_POSTGRES_URL; without a server these cases skip, except in CI.
"""

from __future__ import annotations

import base64
import os
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from core_builders import NOW, at
from sqlalchemy import text

from orchestrator.errors import ConflictError, NotFoundError, ValidationError
from orchestrator.store import ListFilter, StateStore, page_of
from orchestrator.store.source import SORT_BY

PG_URL = os.environ.get("ORCH_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
KIND = "TrainingJob"


def _unavailable(message: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: PostgreSQL tests must run)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A fresh database on the server named by ORCH_TEST_POSTGRES_URL, dropped afterwards."""
    try:
        import psycopg
    except ImportError:
        _unavailable("psycopg is not installed (pip install orchestrator[postgres])")
    parts = urlsplit(PG_URL)
    admin = urlunsplit(parts._replace(path="/postgres"))
    name = f"orch_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as e:
        _unavailable(
            f"no PostgreSQL server at {parts.hostname}:{parts.port or 5432} "
            f"(ORCH_TEST_POSTGRES_URL={PG_URL!r}): {str(e).strip()}"
        )
    yield urlunsplit(parts._replace(path=f"/{name}"))
    with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    if request.param == "sqlite":
        s = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    else:
        s = StateStore(request.getfixturevalue("pg_url"))
        with s.engine.begin() as conn:  # one database per run; empty it per test
            conn.execute(text("DELETE FROM resources"))
            conn.execute(text("DELETE FROM api_keys"))
    yield s
    s.close()


def add(store: StateStore, name: str, *, seconds: float = 0, phase: str = "InProgress") -> Any:
    record, created = store.create(
        KIND, name, {"TrainingJobName": name}, {"n": 1}, phase=phase, active=True, now=at(seconds)
    )
    assert created
    return record


def test_create_returns_the_record(store: StateStore) -> None:
    r = add(store, "a")
    assert (r.kind, r.name, r.spec, r.status, r.phase) == (
        KIND,
        "a",
        {"TrainingJobName": "a"},
        {"n": 1},
        "InProgress",
    )
    assert (r.active, r.stop_requested, r.delete_requested, r.version) == (True, False, False, "1")
    assert r.created_at == r.updated_at == NOW


def test_create_is_idempotent_by_spec(store: StateStore) -> None:
    first = add(store, "a")
    again, created = store.create(
        KIND, "a", {"TrainingJobName": "a"}, {}, phase="X", active=False, now=at(5)
    )
    assert (created, again) == (False, first)
    with pytest.raises(ConflictError) as e:
        store.create(KIND, "a", {"TrainingJobName": "b"}, {}, phase="X", active=True, now=NOW)
    assert e.value.status_code == 409
    assert "'a' already exists with a different spec" in e.value.message
    # Another kind may use the same name.
    store.create("Model", "a", {}, {}, phase="Ready", active=False, now=NOW)


def test_same_spec_while_deleting_conflicts(store: StateStore) -> None:
    add(store, "a")
    store.set_flag(KIND, "a", "delete_requested", NOW)
    with pytest.raises(ConflictError):
        store.create(KIND, "a", {"TrainingJobName": "a"}, {}, phase="X", active=True, now=NOW)


def test_get_missing_is_not_found(store: StateStore) -> None:
    with pytest.raises(NotFoundError, match="TrainingJob 'nope' does not exist"):
        store.get(KIND, "nope")
    assert store.find(KIND, "nope") is None


def pages(store: StateStore, ascending: bool, **filters: Any) -> list[list[str]]:
    out: list[list[str]] = []
    token: str | None = None
    for _ in range(10):
        records, token = store.list(
            KIND, ListFilter(limit=3, next_token=token, ascending=ascending, **filters)
        )
        out.append([r.name for r in records])
        if token is None:
            return out
    raise AssertionError("pagination did not end")


@pytest.mark.parametrize("ascending", [True, False], ids=["ascending", "descending"])
def test_pagination_visits_each_record_once(store: StateStore, ascending: bool) -> None:
    # Pairs share a creation time, so the name breaks ties in the cursor.
    items = [(f"r{i}", float(i // 2)) for i in range(7)]
    for name, seconds in random.Random(7).sample(items, len(items)):
        add(store, name, seconds=seconds)
    expected = [n for n, _ in sorted(items, key=lambda x: (x[1], x[0]), reverse=not ascending)]
    got = pages(store, ascending)
    assert [len(p) for p in got] == [3, 3, 1]
    assert [n for p in got for n in p] == expected


def test_filters(store: StateStore) -> None:
    add(store, "alpha-1", seconds=0)
    add(store, "Alpha-2", seconds=10, phase="Completed")
    add(store, "beta", seconds=20)
    store.create("Model", "alpha-m", {}, {}, phase="Ready", active=False, now=NOW)

    def names(**filters: Any) -> list[str]:
        return [
            r.name for r in store.list(KIND, ListFilter(limit=10, ascending=True, **filters))[0]
        ]

    assert names() == ["alpha-1", "Alpha-2", "beta"]
    assert names(name_contains="ALPHA") == ["alpha-1", "Alpha-2"]
    assert names(phase="Completed") == ["Alpha-2"]
    assert names(created_after=at(0)) == ["Alpha-2", "beta"]
    assert names(created_before=at(10)) == ["alpha-1"]
    assert names(created_after=at(0), created_before=at(20), name_contains="a") == ["Alpha-2"]


def _sortable(store: StateStore) -> list[tuple[str, str, float]]:
    """Seven jobs whose names, phases and creation times all order them differently."""
    items = [
        ("gamma", "InProgress", 0.0), ("alpha", "Failed", 1.0), ("delta", "Completed", 1.0),
        ("beta", "InProgress", 2.0), ("zeta", "Failed", 0.0), ("eta", "Completed", 3.0),
        ("epsilon", "InProgress", 3.0),
    ]  # fmt: skip
    for name, phase, seconds in random.Random(3).sample(items, len(items)):
        add(store, name, seconds=seconds, phase=phase)
    return items


def _expected(items: list[tuple[str, str, float]], sort_by: str, ascending: bool) -> list[str]:
    def key(item: tuple[str, str, float]) -> tuple[Any, ...]:
        name, phase, seconds = item
        if sort_by == "Name":
            return (name,)
        if sort_by == "Status":
            return (phase, seconds, name)
        return (seconds, name)

    return [i[0] for i in sorted(items, key=key, reverse=not ascending)]


@pytest.mark.parametrize("sort_by", SORT_BY)
@pytest.mark.parametrize("ascending", [True, False], ids=["ascending", "descending"])
def test_every_order_pages_through_each_record_once(
    store: StateStore, sort_by: Any, ascending: bool
) -> None:
    """SortBy Name and Status page with their own keyset cursor; the in-memory pager of the
    custom-resource source orders and pages the same way."""
    expected = _expected(_sortable(store), sort_by, ascending)
    got = pages(store, ascending, sort_by=sort_by)
    assert [len(p) for p in got] == [3, 3, 1]
    assert [n for p in got for n in p] == expected
    everything = store.list(KIND, ListFilter(limit=100))[0]
    memory: list[str] = []
    token: str | None = None
    while True:
        chunk, token = page_of(
            everything, ListFilter(limit=3, next_token=token, ascending=ascending, sort_by=sort_by)
        )
        memory += [r.name for r in chunk]
        if token is None:
            break
    assert memory == expected


def test_a_token_of_another_order_is_refused(store: StateStore) -> None:
    _sortable(store)
    _, token = store.list(KIND, ListFilter(limit=2, sort_by="Name"))
    assert token is not None
    with pytest.raises(ValidationError) as e:
        store.list(KIND, ListFilter(limit=2, next_token=token, sort_by="Status"))
    assert e.value.field == "NextToken" and "same SortBy" in e.value.message


def test_last_modified_filters(store: StateStore) -> None:
    for i, name in enumerate(["a", "b", "c"]):
        add(store, name, seconds=i)
    store.update_status(store.get(KIND, "a"), {}, phase="Completed", active=False, now=at(10))

    def names(**filters: Any) -> list[str]:
        page = ListFilter(limit=10, ascending=True, **filters)
        sql = [r.name for r in store.list(KIND, page)[0]]
        memory = [r.name for r in page_of(store.list(KIND, ListFilter(limit=10))[0], page)[0]]
        assert sql == memory
        return sql

    assert names(modified_after=at(1)) == ["a", "c"]
    assert names(modified_before=at(2)) == ["b"]
    assert names(modified_after=at(0), modified_before=at(10)) == ["b", "c"]


def test_update_spec_without_reconcile_leaves_the_resource_as_the_controller_left_it(
    store: StateStore,
) -> None:
    r = add(store, "a")
    r = store.update_status(r, {"n": 2}, phase="Completed", active=False, now=at(1))
    tagged = store.update_spec(
        r, {"TrainingJobName": "a", "Tags": [{"Key": "k"}]}, status=r.status, now=at(2),
        reconcile=False,
    )  # fmt: skip
    assert (tagged.active, tagged.phase, tagged.status) == (False, "Completed", {"n": 2})
    assert tagged.spec["Tags"] == [{"Key": "k"}] and tagged.updated_at == at(2)
    assert store.list_active(KIND) == []
    moved = store.update_spec(tagged, tagged.spec, status={"n": 3}, now=at(3), phase="Stopping")
    assert (moved.active, moved.phase, moved.status) == (True, "Stopping", {"n": 3})
    with pytest.raises(ConflictError):  # optimistic, as every write
        store.update_spec(tagged, tagged.spec, status={}, now=at(4), reconcile=False)


@pytest.mark.parametrize(
    "token",
    ["not base64 at all!", base64.urlsafe_b64encode(b"{}").decode(), base64.urlsafe_b64encode(b'["x", "y"]').decode()],
    ids=["garbage", "object", "bad timestamp"],
)  # fmt: skip
def test_bad_next_token_is_a_validation_error(store: StateStore, token: str) -> None:
    with pytest.raises(ValidationError) as e:
        store.list(KIND, ListFilter(limit=3, next_token=token))
    assert e.value.field == "NextToken"
    assert e.value.status_code == 400


def test_update_status_is_optimistic(store: StateStore) -> None:
    r = add(store, "a")
    updated = store.update_status(r, {"n": 2}, phase="Completed", active=False, now=at(3))
    assert (updated.status, updated.phase, updated.active, updated.version) == (
        {"n": 2},
        "Completed",
        False,
        "2",
    )
    assert (updated.created_at, updated.updated_at) == (NOW, at(3))
    with pytest.raises(ConflictError, match="changed while being updated"):
        store.update_status(r, {"n": 3}, phase="Failed", active=False, now=at(4))
    assert store.get(KIND, "a").status == {"n": 2}


def test_set_flag_makes_active_and_bumps_version(store: StateStore) -> None:
    r = add(store, "a")
    r = store.update_status(r, {}, phase="Completed", active=False, now=NOW)
    assert store.list_active(KIND) == []
    flagged = store.set_flag(KIND, "a", "stop_requested", at(1))
    assert (flagged.stop_requested, flagged.active, flagged.version) == (True, True, "3")
    assert [x.name for x in store.list_active(KIND)] == ["a"]
    with pytest.raises(ConflictError):  # a writer that read before the flag loses
        store.update_status(r, {}, phase="Completed", active=False, now=NOW)
    with pytest.raises(ValueError, match="bogus"):
        store.set_flag(KIND, "a", "bogus", NOW)
    with pytest.raises(NotFoundError):
        store.set_flag(KIND, "nope", "stop_requested", NOW)


def test_delete(store: StateStore) -> None:
    add(store, "a")
    store.delete(KIND, "a")
    assert store.find(KIND, "a") is None
    with pytest.raises(NotFoundError):
        store.delete(KIND, "a")


def test_api_keys(store: StateStore) -> None:
    assert store.count_api_keys() == 0
    store.add_api_key("abc123", "f" * 64, name="admin", role="admin", now=NOW)
    key = store.get_api_key("abc123")
    assert key is not None
    assert (key.key_id, key.secret_hash, key.name, key.role, key.created_at, key.revoked) == (
        "abc123",
        "f" * 64,
        "admin",
        "admin",
        NOW,
        False,
    )
    assert store.get_api_key("other") is None
    assert store.count_api_keys() == 1


def test_api_keys_are_listed_oldest_first_and_revoked_for_good(store: StateStore) -> None:
    store.add_api_key("b", "1" * 64, name="second", role="invoke", now=NOW.replace(minute=5))
    store.add_api_key("a", "2" * 64, name="first", role="admin", now=NOW)
    assert [k.key_id for k in store.list_api_keys()] == ["a", "b"]
    assert store.revoke_api_key("b").revoked is True
    assert store.revoke_api_key("b").revoked is True  # again: still revoked, no error
    assert [k.revoked for k in store.list_api_keys()] == [False, True]
    with pytest.raises(NotFoundError, match="API key 'zz' does not exist"):
        store.revoke_api_key("zz")


def test_count_by_phase(store: StateStore) -> None:
    add(store, "a")
    add(store, "b")
    add(store, "c", phase="Failed")
    store.create("Model", "m", {}, {}, phase="Ready", active=False, now=NOW)
    assert store.count_by_phase(KIND) == {"InProgress": 2, "Failed": 1}
    assert store.count_by_phase("Endpoint") == {}


def test_sqlite_runs_in_wal_mode(tmp_path: Path) -> None:
    s = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        with s.engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    finally:
        s.close()


def test_a_store_from_before_the_preempt_flag_gains_its_column(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old = StateStore(url)
    old.create(
        "TrainingJob", "j", {"TrainingJobName": "j"}, {}, phase="InProgress", active=True, now=NOW
    )
    with old.engine.begin() as conn:  # the table as it was made before the flag existed
        conn.execute(text("ALTER TABLE resources DROP COLUMN preempt_requested"))
    old.close()
    store = StateStore(url)
    try:
        assert store.get("TrainingJob", "j").preempt_requested is False
        flagged = store.set_flag("TrainingJob", "j", "preempt_requested", at(1))
        assert flagged.preempt_requested
        assert [r.name for r in store.list_active("TrainingJob") if r.preempt_requested] == ["j"]
    finally:
        store.close()


def test_list_active_parses_only_what_changed(store: StateStore) -> None:
    a, b = add(store, "a"), add(store, "b", seconds=1)
    first = {r.name: r for r in store.list_active(KIND)}
    again = {r.name: r for r in store.list_active(KIND)}
    assert again["a"] is first["a"] and again["b"] is first["b"]  # not read again
    store.update_status(a, {"n": 2}, phase="InProgress", active=True, now=at(2))
    store.set_flag(KIND, "b", "stop_requested", at(3))
    changed = {r.name: r for r in store.list_active(KIND)}
    assert (changed["a"].status, changed["a"].version) == ({"n": 2}, "2")
    assert (changed["b"].stop_requested, changed["b"].version) == (True, "2")
    assert changed["a"] is not first["a"] and changed["b"] is not first["b"]
    # Deleted and made again: version 1 once more, but another resource (another uid).
    store.delete(KIND, "a")
    store.create(
        KIND, "a", {"TrainingJobName": "a", "x": 1}, {"n": 9}, phase="InProgress", active=True,
        now=at(4),
    )  # fmt: skip
    remade = {r.name: r for r in store.list_active(KIND)}
    assert (remade["a"].status, remade["a"].spec["x"]) == ({"n": 9}, 1)
    store.update_status(remade["a"], {}, phase="Completed", active=False, now=at(5))
    assert [r.name for r in store.list_active(KIND)] == ["b"]
    assert b.name == "b"


def test_list_active_reads_more_rows_than_one_query_binds(store: StateStore) -> None:
    for i in range(1200):  # over the chunk of names per IN (...)
        add(store, f"j{i:04d}")
    assert sorted(r.name for r in store.list_active(KIND)) == [f"j{i:04d}" for i in range(1200)]
    assert len(store.list_active(KIND)) == 1200

"""The SQL store's tenancy: rows carry their account; a caller sees only its own (another
account's answer exactly as absent ones), the system sees all; names stay unique across
accounts; a database made before accounts opens with every row the server's own."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from orchestrator import tenancy
from orchestrator.errors import ConflictError, NotFoundError
from orchestrator.resources.search import SearchRequest, compile_search
from orchestrator.store import ListFilter, StateStore

NOW = datetime(2026, 1, 1, tzinfo=UTC)
A, B = "111111111111", "222222222222"
KIND = "TrainingJob"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    s = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    yield s
    s.close()


def make(store: StateStore, account: str | None, name: str, spec: dict[str, object]) -> None:
    with tenancy.acting_as(account):
        store.create(KIND, name, spec, {}, phase="InProgress", active=True, now=NOW)


def message(call: object) -> str:
    with pytest.raises(NotFoundError) as e:
        call()  # type: ignore[operator]
    return e.value.message


def test_a_caller_sees_only_its_own_account_s_rows(store: StateStore) -> None:
    make(store, A, "a-job", {"x": 1})
    make(store, B, "b-job", {"x": 1})
    make(store, None, "root-job", {"x": 1})  # the system makes the server's own
    with tenancy.acting_as(None):
        assert store.get(KIND, "a-job").account == A
        assert store.get(KIND, "root-job").account == tenancy.ROOT
        assert len(store.list(KIND, ListFilter(limit=10))[0]) == 3
        assert len(store.list_active(KIND)) == 3
    with tenancy.acting_as(B):
        assert [r.name for r in store.list(KIND, ListFilter(limit=10))[0]] == ["b-job"]
        assert store.count_by_phase(KIND) == {"InProgress": 1}
        assert store.find(KIND, "a-job") is None
        assert len(store.list_active(KIND)) == 3  # the controller's view: every account
        absent = message(lambda: store.get(KIND, "zz"))
        assert message(lambda: store.get(KIND, "a-job")) == absent.replace("zz", "a-job")
        for call in (
            lambda n: store.set_flag(KIND, n, "stop_requested", NOW),
            lambda n: store.delete(KIND, n),
        ):
            assert message(lambda c=call: c("a-job")) == message(lambda c=call: c("zz")).replace(
                "zz", "a-job"
            )
    with tenancy.acting_as(tenancy.ROOT):
        assert [r.name for r in store.list(KIND, ListFilter(limit=10))[0]] == ["root-job"]
    with tenancy.acting_as(None):
        a_job = store.get(KIND, "a-job")
    with tenancy.acting_as(B):  # a record of another account handed in is refused the same
        assert "a-job" in message(lambda: store.update_status(
            a_job, {}, phase="Completed", active=False, now=NOW))  # fmt: skip
        assert "a-job" in message(lambda: store.update_spec(a_job, {"x": 2}, status={}, now=NOW))
        assert "a-job" in message(lambda: store.claim(a_job))
    with tenancy.acting_as(A):
        assert not store.get(KIND, "a-job").stop_requested  # untouched by B
        store.delete(KIND, "a-job")
    with tenancy.acting_as(None):
        assert store.find(KIND, "a-job") is None


def test_names_are_unique_across_accounts(store: StateStore) -> None:
    make(store, A, "shared", {"x": 1})
    make(store, B, "mine", {"x": 1})
    with tenancy.acting_as(B):
        with pytest.raises(ConflictError) as other:
            store.create(KIND, "shared", {"x": 1}, {}, phase="p", active=True, now=NOW)
        with pytest.raises(ConflictError) as own:
            store.create(KIND, "mine", {"x": 2}, {}, phase="p", active=True, now=NOW)
        assert other.value.message.replace("shared", "N") == own.value.message.replace("mine", "N")
        # The same spec again is one's own resource back, idempotently.
        _, created = store.create(KIND, "mine", {"x": 1}, {}, phase="p", active=True, now=NOW)
        assert not created


def test_a_search_holds_only_the_caller_s_rows(store: StateStore) -> None:
    make(store, A, "a-job", {"TrainingJobName": "a-job"})
    make(store, B, "b-job", {"TrainingJobName": "b-job"})
    query = compile_search(SearchRequest(Resource=KIND), [KIND])
    with tenancy.acting_as(A):
        assert [r.name for r in store.search(query)[0]] == ["a-job"]
    with tenancy.acting_as(None):
        assert sorted(r.name for r in store.search(query)[0]) == ["a-job", "b-job"]


def test_identities_and_keys_are_their_account_s(store: StateStore) -> None:
    with tenancy.acting_as(A):
        store.add_identity("alice", kind="user", document={}, now=NOW)
        store.add_api_key("k1", "h", name="alice", role="", now=NOW, identity="alice")
        store.add_access_key("AKIA1", "s", name="alice", role="", now=NOW, identity="alice")
    with tenancy.acting_as(B):
        assert store.get_identity("alice") is None
        assert store.list_identities() == []
        assert store.get_api_key("k1") is None and store.list_api_keys() == []
        assert store.get_access_key("AKIA1") is None and store.list_access_keys() == []
        with pytest.raises(NotFoundError):
            store.update_identity("alice", {"Roles": []})
        with pytest.raises(NotFoundError):
            store.delete_identity("alice")
        with pytest.raises(NotFoundError):
            store.revoke_api_key("k1")
        with pytest.raises(NotFoundError):
            store.revoke_access_key("AKIA1")
        with pytest.raises(ConflictError):  # names are unique across accounts
            store.add_identity("alice", kind="user", document={}, now=NOW)
    with tenancy.acting_as(None):
        key = store.get_api_key("k1")
        assert key is not None and key.account == A and not key.revoked
        identity = store.get_identity("alice")
        assert identity is not None and identity.account == A


def test_accounts_are_kept_with_unique_names(store: StateStore) -> None:
    store.add_account(A, "alpha", now=NOW)
    with pytest.raises(ConflictError) as e:
        store.add_account(B, "alpha", now=NOW)
    assert e.value.field == "AccountName"
    assert [(a.id, a.name) for a in store.list_accounts()] == [(A, "alpha")]
    assert store.get_account(A) is not None and store.get_account(B) is None


# The tables as they were made before accounts (no ``account`` column anywhere).
OLD_DDL = [
    """CREATE TABLE resources (kind VARCHAR(64) NOT NULL, name VARCHAR(128) NOT NULL,
    uid VARCHAR(36) NOT NULL, spec TEXT NOT NULL, spec_hash VARCHAR(64) NOT NULL,
    status TEXT NOT NULL, phase VARCHAR(32) NOT NULL, active BOOLEAN NOT NULL,
    stop_requested BOOLEAN NOT NULL, delete_requested BOOLEAN NOT NULL,
    preempt_requested BOOLEAN NOT NULL, created_at FLOAT NOT NULL, updated_at FLOAT NOT NULL,
    version INTEGER NOT NULL, PRIMARY KEY (kind, name))""",
    """CREATE TABLE identities (name VARCHAR(128) NOT NULL, kind VARCHAR(16) NOT NULL,
    created_at FLOAT NOT NULL, document TEXT NOT NULL, PRIMARY KEY (name))""",
    """CREATE TABLE api_keys (key_id VARCHAR(32) NOT NULL, secret_hash VARCHAR(64) NOT NULL,
    name VARCHAR(128) NOT NULL, role VARCHAR(32) NOT NULL, created_at FLOAT NOT NULL,
    revoked BOOLEAN NOT NULL, identity VARCHAR(128), expires_at FLOAT, last_used_at FLOAT,
    PRIMARY KEY (key_id))""",
    """CREATE TABLE access_keys (access_key_id VARCHAR(32) NOT NULL, sealed_secret TEXT NOT NULL,
    name VARCHAR(128) NOT NULL, role VARCHAR(32) NOT NULL, created_at FLOAT NOT NULL,
    revoked BOOLEAN NOT NULL, identity VARCHAR(128), expires_at FLOAT, last_used_at FLOAT,
    PRIMARY KEY (access_key_id))""",
]


def test_a_database_from_before_accounts_opens_with_every_row_the_server_s(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    with engine.begin() as conn:
        for ddl in OLD_DDL:
            conn.execute(text(ddl))
        conn.execute(text(
            "INSERT INTO resources VALUES ('TrainingJob', 'old', 'u', '{}', 'h', '{}', "
            "'InProgress', 1, 0, 0, 0, 0, 0, 1)"))  # fmt: skip
        conn.execute(text("INSERT INTO identities VALUES ('admin', 'user', 0, '{}')"))
        conn.execute(text(
            "INSERT INTO api_keys VALUES ('k', 'h', 'admin', 'admin', 0, 0, 'admin', NULL, NULL)"
        ))  # fmt: skip
    engine.dispose()
    store = StateStore(url)
    try:
        with tenancy.acting_as(tenancy.ROOT):
            assert store.get(KIND, "old").account == tenancy.ROOT
            identity = store.get_identity("admin")
            assert identity is not None and identity.account == tenancy.ROOT
            key = store.get_api_key("k")
            assert key is not None and key.account == tenancy.ROOT
        with tenancy.acting_as(A):
            assert store.find(KIND, "old") is None
            store.create(KIND, "new", {}, {}, phase="InProgress", active=True, now=NOW)
            assert store.get(KIND, "new").account == A
    finally:
        store.close()
    StateStore(url).close()  # and opens again, migrated once

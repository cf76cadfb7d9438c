"""Real databases for the snapshot tests: the PostgreSQL (127.0.0.1:5432, user postgres) and
MariaDB (127.0.0.1:3306, user root) servers of the machine, each with a fresh database for the
session, dropped after. A server that does not answer skips its tests, except in CI
(``CI=true``), where that is a failure. ``job`` lays out ``/opt/ml`` in a temporary folder as
the process backend does (``ORCH_ML_ROOT``).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from orchestrator.datasources import snapshot
from orchestrator.training.contract import ML_ROOT_ENV, MlPaths

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres", "dbname": "test"}
MYSQL = {"host": "127.0.0.1", "port": 3306, "user": "root", "password": "", "database": "test"}


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"the snapshot tests cannot run in CI: {reason}")
    pytest.skip(reason)


def free_port() -> int:
    """A port of 127.0.0.1 nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped after the session."""
    import psycopg

    name = f"orch_ds_{secrets.token_hex(4)}"
    try:
        admin = psycopg.connect(**PG, connect_timeout=3, autocommit=True)
    except psycopg.Error as e:
        _unavailable(f"no PostgreSQL at 127.0.0.1:5432 (user postgres, db test): {e}")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        with psycopg.connect(**PG, connect_timeout=3, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def mysql_database() -> Iterator[str]:
    """A fresh MariaDB/MySQL database, dropped after the session."""
    import pymysql

    name = f"orch_ds_{secrets.token_hex(4)}"
    try:
        admin = pymysql.connect(**MYSQL, connect_timeout=3, autocommit=True)
    except pymysql.err.MySQLError as e:
        _unavailable(f"no MariaDB/MySQL at 127.0.0.1:3306 (user root): {e}")
    try:
        with admin.cursor() as c:
            c.execute(f"CREATE DATABASE `{name}`")
        yield name
    finally:
        with admin.cursor() as c:
            c.execute(f"DROP DATABASE IF EXISTS `{name}`")
        admin.close()


def pg_execute(database: str, *statements: str) -> None:
    import psycopg

    with psycopg.connect(**{**PG, "dbname": database}, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def mysql_execute(database: str, *statements: str) -> None:
    import pymysql

    conn = pymysql.connect(**{**MYSQL, "database": database}, autocommit=True)
    try:
        with conn.cursor() as c:
            for statement in statements:
                c.execute(statement)
    finally:
        conn.close()


@dataclass
class Job:
    """A snapshot job's ``/opt/ml`` in a temporary folder."""

    root: Path

    @property
    def paths(self) -> MlPaths:
        return MlPaths(self.root)

    @property
    def env(self) -> dict[str, str]:
        return {ML_ROOT_ENV: str(self.root)}

    @property
    def dataset(self) -> Path:
        return self.root / "output" / "dataset"

    @property
    def credentials_file(self) -> Path:
        return self.paths.channel_dir("credentials") / "secret.json"

    def configure(self, hyperparameters: dict[str, str], credentials: Any = None) -> Job:
        self.paths.make(["data"])
        (self.paths.config_dir / "hyperparameters.json").write_text(json.dumps(hyperparameters))
        if credentials is not None:
            self.credentials_file.parent.mkdir(parents=True, exist_ok=True)
            text = credentials if isinstance(credentials, str) else json.dumps(credentials)
            self.credentials_file.write_text(text)
        return self

    def run(self) -> int:
        return snapshot.main(self.env)

    def failure(self) -> str:
        return self.paths.failure_file.read_text()

    def schema(self) -> dict[str, Any]:
        return json.loads((self.dataset / "schema.json").read_text())


@pytest.fixture
def job(tmp_path: Path) -> Job:
    return Job(tmp_path / "ml")

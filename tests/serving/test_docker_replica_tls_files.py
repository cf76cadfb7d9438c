"""What the Docker backend writes for a TLS replica (``ORCH_SERVING__REPLICA_TLS``), without an
engine: the certificate names the publish host, every file is 0600 and the container user's,
and settings it cannot honour are refused naming them."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any, cast

import pytest

from orchestrator import tls
from orchestrator.backends.docker.replicas import DockerReplicas, _ids
from orchestrator.errors import BackendError
from orchestrator.settings import Settings


def backend(tmp_path: Path, **docker: str) -> DockerReplicas:
    settings = Settings(
        home=tmp_path / "home",
        config_dir=tmp_path / "config",
        serving={"replica_tls": True},  # type: ignore[arg-type]
        docker=docker,  # type: ignore[arg-type]
    )
    return DockerReplicas(settings, cast(Any, None))


def test_the_replica_gets_a_leaf_for_the_publish_host_and_the_ca(tmp_path: Path) -> None:
    replicas = backend(tmp_path, publish_host="10.0.0.5")
    root = tmp_path / "r"
    root.mkdir()
    replicas._write_tls(root)
    files = sorted(p.name for p in (root / "tls").iterdir())
    assert files == ["ca.crt", "replica.crt", "replica.key"]
    for name in files:
        info = (root / "tls" / name).stat()
        assert stat.S_IMODE(info.st_mode) == 0o600
        if os.geteuid() == 0:
            assert (info.st_uid, info.st_gid) == (1000, 1000)
    assert tls.certificate_names(root / "tls" / "replica.crt") == [
        "10.0.0.5",
        "127.0.0.1",
        "localhost",
    ]
    ca = tmp_path / "config" / "tls" / "replica-ca.crt"
    assert (root / "tls" / "ca.crt").read_bytes() == ca.read_bytes()
    replicas.close()


def test_a_wildcard_publish_host_is_refused_naming_both_settings(tmp_path: Path) -> None:
    replicas = backend(tmp_path, publish_host="0.0.0.0")
    with pytest.raises(BackendError, match=r"ORCH_DOCKER__PUBLISH_HOST.*ORCH_SERVING__REPLICA_TLS"):
        replicas._write_tls(tmp_path)
    replicas.close()


def test_the_container_user_must_be_numeric_to_own_the_key() -> None:
    assert _ids("1000:2000") == (1000, 2000)
    assert _ids("1234") == (1234, 1234)
    with pytest.raises(BackendError, match="ORCH_DOCKER__USER"):
        _ids("serving")

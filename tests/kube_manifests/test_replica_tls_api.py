"""The API pods on a cluster with replica TLS: they verify replicas against the operator's CA
(``ORCH_SERVING__REPLICA_CA_FILE``, the mounted Secret's certificate), never one of their own;
without it they refuse to start, naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.api.app import build_control_plane
from orchestrator.dataplane import settings_of
from orchestrator.errors import ValidationError
from orchestrator.settings import Settings


def cluster_settings(tmp_path: Path, **serving: object) -> Settings:
    return Settings(
        home=tmp_path / "home",
        config_dir=tmp_path / "config",
        desired_state="kubernetes",
        serving={"replica_tls": True, **serving},  # type: ignore[arg-type]
    )


def test_the_cluster_api_needs_the_mounted_ca(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"replica CA Secret's tls\.crt") as e:
        build_control_plane(cluster_settings(tmp_path), kube_api=object())
    assert e.value.field == "ORCH_SERVING__REPLICA_CA_FILE"


def test_the_data_plane_verifies_against_the_named_ca(tmp_path: Path) -> None:
    ca = tmp_path / "replica-ca" / "ca.crt"
    plane = settings_of(cluster_settings(tmp_path, replica_ca_file=ca))
    assert plane.replica_ca_file == str(ca)
    assert not (tmp_path / "config" / "tls").exists()  # no CA of its own made


def test_without_a_named_ca_the_control_planes_own_is_used(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path / "home",
        config_dir=tmp_path / "config",
        serving={"replica_tls": True},  # type: ignore[arg-type]
    )
    assert settings_of(settings).replica_ca_file == str(
        tmp_path / "config" / "tls" / "replica-ca.crt"
    )
    off = Settings(home=tmp_path / "h2", config_dir=tmp_path / "c2")
    assert settings_of(off).replica_ca_file == ""

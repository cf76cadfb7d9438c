"""Settings are typed, read from ORCH_* once, nested with a double underscore."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from orchestrator.settings import Settings


def test_nested_groups_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_SERVER__PORT", "9000")
    monkeypatch.setenv("ORCH_KUBE__TRAINING_IMAGE", "registry.example/train:2")
    monkeypatch.setenv("ORCH_KUBE__GPU_NODE_SELECTOR", '{"gpu": "yes"}')
    monkeypatch.setenv("ORCH_CONTROLLER__STOP_GRACE_SECONDS", "5")
    s = Settings()
    assert s.server.port == 9000
    assert s.kube.training_image == "registry.example/train:2"
    assert s.kube.gpu_node_selector == {"gpu": "yes"}
    assert s.controller.stop_grace_seconds == 5


def test_bad_values_name_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCH_SERVER__PORT", "not-a-port")
    with pytest.raises(ValidationError, match=r"server\.port"):
        Settings()


def test_defaults_derive_from_home(tmp_path: object) -> None:
    s = Settings(home="/srv/orch")  # type: ignore[arg-type]
    assert s.resolved_database_url == "sqlite:////srv/orch/state.db"
    assert s.resolved_object_store_url == "file:///srv/orch/objects"
    assert str(s.keyring_path) == "/srv/orch/keys/keyring.json"


def test_router_workers_default_to_one_and_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().server.router_workers == 1
    monkeypatch.setenv("ORCH_SERVER__ROUTER_WORKERS", "3")
    assert Settings().server.router_workers == 3
    monkeypatch.setenv("ORCH_SERVER__ROUTER_WORKERS", "0")
    with pytest.raises(ValidationError, match=r"server\.router_workers"):
        Settings()

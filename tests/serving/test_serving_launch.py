"""How the Docker backend starts a replica's server: the command for one model and for a
pipeline (one image), and the refusal of a pipeline of different images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("docker")

from orchestrator.backends.docker.replica_launch import (
    one_image,
    replica_create_kwargs,
)
from orchestrator.resources.models import ContainerDefinition


def spec_doc() -> dict[str, Any]:
    return {
        "image": "orchestrator/serving:0.1.0",
        "name": "orch-ep-r1",
        "user": "1000:1000",
        "publish_host": "127.0.0.1",
        "environment": {},
        "grace_seconds": 30,
        "nano_cpus": None,
        "memory_bytes": None,
        "labels": {"orchestrator.dev/resource": "ep", "orchestrator.variant": "v1"},
    }


@pytest.fixture
def doc() -> dict[str, Any]:
    from orchestrator.backends.docker import engine

    d = spec_doc()
    d["labels"] = {engine.RESOURCE: "ep", "orchestrator.variant": "v1"}
    return d


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_one_model_gets_its_name_and_batching(tmp_path: Path, doc: dict[str, Any]) -> None:
    (tmp_path / "model").mkdir()
    container = ContainerDefinition.model_validate(
        {"AdaptiveBatching": {"MaxBatchSize": 16, "MaxBatchDelayMilliseconds": 2}}
    )
    kwargs = replica_create_kwargs(doc, tmp_path, [container], "iris")
    command = kwargs["command"]
    assert option(command, "--model-dir") == "/opt/ml/model"
    assert option(command, "--model-name") == "iris"
    assert option(command, "--max-batch-size") == "16"
    assert float(option(command, "--max-batch-delay-ms")) == pytest.approx(2.0)


def test_a_pipeline_of_one_image_runs_from_a_pipeline_file(
    tmp_path: Path, doc: dict[str, Any]
) -> None:
    for index in (0, 1):
        (tmp_path / "steps" / str(index) / "model").mkdir(parents=True)
    (tmp_path / "steps" / "0" / "code").mkdir()
    containers = [
        ContainerDefinition.model_validate(
            {"ContainerHostname": "pre", "Environment": {"SAGEMAKER_PROGRAM": "pre.py"}}
        ),
        ContainerDefinition.model_validate({"ContainerHostname": "clf"}),
    ]
    kwargs = replica_create_kwargs(doc, tmp_path, containers, "m")
    assert option(kwargs["command"], "--pipeline") == "/opt/ml/pipeline.json"
    steps = json.loads((tmp_path / "pipeline.json").read_text())
    assert steps == [
        {
            "model_dir": "/opt/ml/pipeline/0/model",
            "code_dir": "/opt/ml/pipeline/0/code",
            "program": "pre.py",
            "hostname": "pre",
        },
        {
            "model_dir": "/opt/ml/pipeline/1/model",
            "code_dir": None,
            "program": None,
            "hostname": "clf",
        },
    ]
    targets = {m["Target"] for m in kwargs["mounts"]}
    assert {
        "/opt/ml/pipeline/0/model",
        "/opt/ml/pipeline/0/code",
        "/opt/ml/pipeline.json",
    } <= targets


def test_a_pipeline_of_different_images_is_refused_naming_them() -> None:
    same = [ContainerDefinition(Image="a"), ContainerDefinition(Image="a")]
    assert one_image(same) is None
    message = one_image([ContainerDefinition(Image="a"), ContainerDefinition(Image="b")])
    assert message is not None
    assert "Containers[1].Image='b'" in message
    assert "process backend" in message


def test_a_tls_replica_mounts_its_certificate_and_checks_health_over_https(
    tmp_path: Path, doc: dict[str, Any]
) -> None:
    (tmp_path / "model").mkdir()
    kwargs = replica_create_kwargs({**doc, "tls": True}, tmp_path, [ContainerDefinition()], "m")
    assert option(kwargs["command"], "--tls-cert") == "/opt/ml/tls/replica.crt"
    assert option(kwargs["command"], "--tls-key") == "/opt/ml/tls/replica.key"
    [mount] = [m for m in kwargs["mounts"] if m["Target"] == "/opt/ml/tls"]
    assert mount["Source"] == str(tmp_path / "tls") and mount["ReadOnly"] is True
    check = kwargs["healthcheck"]["Test"][-1]
    assert "https://127.0.0.1:8080/ping" in check and "/opt/ml/tls/ca.crt" in check
    plain = replica_create_kwargs(doc, tmp_path, [ContainerDefinition()], "m")
    assert "--tls-cert" not in plain["command"]
    assert "http://127.0.0.1:8080/ping" in plain["healthcheck"]["Test"][-1]

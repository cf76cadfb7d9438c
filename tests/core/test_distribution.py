"""The distributed-training environment, computed once (``training.contract``) for every
backend: the SDK's ``distribution=`` hyperparameters, torchrun's variables, ``TF_CONFIG``, and
the Kubernetes pod template that carries them. Pure: no process runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from core_builders import training_doc, training_spec

from orchestrator.client.estimator import distribution_hyperparameters
from orchestrator.errors import ValidationError
from orchestrator.kube.jobs import HOST_INDEX_ENV, training_job_manifest
from orchestrator.resources.distribution import distribution_of
from orchestrator.resources.training import CreateTrainingJobRequest
from orchestrator.resources.validation import parse_spec
from orchestrator.settings import KubeSettings
from orchestrator.training.contract import (
    Host,
    MlPaths,
    Rendezvous,
    distributed_environment,
    host_distributed_environment,
    user_environment,
)
from orchestrator.training.runner import free_ports, host_gpus, merge_tree

SCRIPT = {"sagemaker_program": "train.py", "sagemaker_submit_directory": "s3://b/src.tar.gz"}
TORCH = {**SCRIPT, "sagemaker_torch_distributed_enabled": "true"}
MWMS = {**SCRIPT, "sagemaker_multi_worker_mirrored_strategy_enabled": "true"}


def spec(hps: dict[str, str], hosts: int = 2, **fields: Any) -> Any:
    return training_spec(
        HyperParameters=hps,
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": hosts},
        **fields,
    )


@pytest.mark.parametrize(
    ("value", "kind"),
    [("true", "torch_distributed"), (json.dumps(True), "torch_distributed"), ("True", "torch_distributed"),
     ("false", None), ("0", None)],
)  # fmt: skip
def test_the_sdk_s_json_true_enables_a_mode(value: str, kind: str | None) -> None:
    assert distribution_of(spec({**SCRIPT, "sagemaker_torch_distributed_enabled": value})) == kind


def test_torch_distributed_gives_each_host_torchrun_s_variables() -> None:
    rdv = Rendezvous(("127.0.0.1",) * 3, (4001, 4002, 4003))
    job = spec(TORCH, hosts=3)
    envs = [host_distributed_environment(job, Host(i, 3), rdv) for i in range(3)]
    assert envs[2] == {
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": "4001",
        "WORLD_SIZE": "3",
        "RANK": "2",
        "NODE_RANK": "2",
        "GROUP_RANK": "2",
        "LOCAL_RANK": "0",
        "LOCAL_WORLD_SIZE": "1",
        "NCCL_SOCKET_IFNAME": "lo",
        "GLOO_SOCKET_IFNAME": "lo",
    }
    assert [e["RANK"] for e in envs] == ["0", "1", "2"]


def test_mwms_gives_tf_config_with_every_worker_and_the_host_s_index() -> None:
    rdv = Rendezvous.by_name(2)
    env = host_distributed_environment(spec(MWMS), Host(1, 2), rdv)
    assert set(env) == {"TF_CONFIG"}
    assert json.loads(env["TF_CONFIG"]) == {
        "cluster": {"worker": ["algo-1:29500", "algo-2:29500"]},
        "task": {"type": "worker", "index": 1},
    }


def test_no_distribution_sets_nothing_and_the_job_s_environment_wins() -> None:
    assert host_distributed_environment(spec(SCRIPT), Host(0, 2), Rendezvous.by_name(2)) == {}
    job = spec(TORCH, Environment={"MASTER_PORT": "1234"})
    env = user_environment(
        MlPaths(Path("/opt/ml")),
        job,
        {},
        host=Host(0, 2),
        distributed=host_distributed_environment(job, Host(0, 2), Rendezvous.by_name(2)),
    )
    assert (env["MASTER_ADDR"], env["MASTER_PORT"]) == ("algo-1", "1234")


def test_the_client_spells_distribution_as_the_sagemaker_sdk_does() -> None:
    assert distribution_hyperparameters({"torch_distributed": {"enabled": True}}) == {
        "sagemaker_torch_distributed_enabled": "true"
    }
    assert distribution_hyperparameters({"multi_worker_mirrored_strategy": {"enabled": True}}) == {
        "sagemaker_multi_worker_mirrored_strategy_enabled": "true"
    }
    # Passed on so that the server refuses them by name.
    assert distribution_hyperparameters({"smdistributed": {"dataparallel": {"enabled": True}}}) == {
        "sagemaker_distributed_dataparallel_enabled": "true"
    }
    assert distribution_hyperparameters({"torch_distributed": {"enabled": False}}) == {}
    with pytest.raises(ValidationError, match="unknown mode 'horovod'") as bad:
        distribution_hyperparameters({"horovod": {"enabled": True}})
    assert bad.value.field == "distribution"
    with pytest.raises(ValidationError, match="give a mapping"):
        distribution_hyperparameters({"torch_distributed": True})


def _env(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    (algo,) = [c for c in manifest["spec"]["template"]["spec"]["containers"] if c["name"] == "algo"]
    return list(algo["env"])


def manifest(job: Any) -> dict[str, Any]:
    return training_job_manifest(
        "dist", "ns", 1, job, output_uri="s3://b/o/model.tar.gz", owner=None,
        settings=KubeSettings(),
    )  # fmt: skip


def test_the_indexed_job_carries_the_env_with_the_pod_s_index_expanded_by_the_kubelet() -> None:
    env = _env(manifest(spec(TORCH, hosts=2)))
    # Defined first, so that the later $(ORCH_HOST_INDEX) references expand.
    assert env[0]["name"] == HOST_INDEX_ENV
    assert "job-completion-index" in env[0]["valueFrom"]["fieldRef"]["fieldPath"]
    values = {e["name"]: e.get("value") for e in env[1:]}
    assert values["RANK"] == values["NODE_RANK"] == f"$({HOST_INDEX_ENV})"
    assert (values["MASTER_ADDR"], values["MASTER_PORT"], values["WORLD_SIZE"]) == (
        "algo-1",
        "29500",
        "2",
    )
    assert values["NCCL_SOCKET_IFNAME"] == "eth0"
    tf = {e["name"]: e.get("value") for e in _env(manifest(spec(MWMS, hosts=2)))}["TF_CONFIG"]
    expanded = json.loads(tf.replace(f"$({HOST_INDEX_ENV})", "1"))
    assert expanded["task"] == {"type": "worker", "index": 1}
    assert expanded["cluster"]["worker"] == ["algo-1:29500", "algo-2:29500"]
    # No distribution: no index variable in the user's container, no framework variables.
    plain = {e["name"] for e in _env(manifest(spec(SCRIPT, hosts=2)))}
    assert not plain & {HOST_INDEX_ENV, "RANK", "MASTER_ADDR", "TF_CONFIG"}


def test_one_host_with_torch_distributed_is_rank_0_of_1() -> None:
    values = {e["name"]: e.get("value") for e in _env(manifest(spec(TORCH, hosts=1)))}
    assert (values["RANK"], values["WORLD_SIZE"]) == ("0", "1")
    assert distributed_environment(spec(TORCH, hosts=1), 1, "0", Rendezvous.by_name(1))


def test_process_helpers_ports_gpus_and_the_model_merge(tmp_path: Path) -> None:
    ports = free_ports(3)
    assert len(set(ports)) == 3 and all(p > 0 for p in ports)
    assert host_gpus([0, 1, 2, 3], Host(1, 2)) == [2, 3]
    assert host_gpus([0, 1, 2], Host(1, 2)) == [0, 1, 2]  # uneven: every host sees all
    assert host_gpus(None, Host(1, 2)) is None
    a, b = tmp_path / "a", tmp_path / "b"
    (a / "sub").mkdir(parents=True)
    (a / "sub" / "x").write_text("from a")
    (a / "same").write_text("same")
    (a / "only-a").write_text("a")
    (b / "sub").mkdir(parents=True)
    (b / "sub" / "x").write_text("from b")
    (b / "same").write_text("same")
    (b / "only-b").write_text("b")
    assert merge_tree(b, a) == ["sub/x"]  # a clash, kept from a; an equal file is no clash
    assert (a / "sub" / "x").read_text() == "from a"
    assert sorted(p.name for p in a.iterdir()) == ["only-a", "only-b", "same", "sub"]


def test_two_frameworks_at_once_are_refused_naming_the_second_flag() -> None:
    doc = training_doc(
        HyperParameters={**TORCH, "sagemaker_multi_worker_mirrored_strategy_enabled": "true"}
    )
    with pytest.raises(ValidationError) as e:
        parse_spec(CreateTrainingJobRequest, doc)
    assert "HyperParameters.sagemaker_multi_worker_mirrored_strategy_enabled" in str(e.value)
    assert "keep one" in str(e.value)

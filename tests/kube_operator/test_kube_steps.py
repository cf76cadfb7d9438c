"""The in-pod steps (download, upload, fetch-model) against a file-backed encrypted store."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from orchestrator.kube import steps
from orchestrator.objects import LocalKeyring, ObjectStore, open_object_store, pack_dir
from orchestrator.training.contract import MlPaths

OUTPUT = "s3://ml-bucket/out/job/output/model.tar.gz"


@pytest.fixture
def keyring(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "keyring.json"
    LocalKeyring(path).active_key_id  # noqa: B018 - creates the keyring
    return path


@pytest.fixture
def store(tmp_path: Path, keyring: Path) -> ObjectStore:
    return open_object_store((tmp_path / "store").as_uri(), LocalKeyring(keyring))


def config(tmp_path: Path, channel_uri: str) -> Path:
    doc: dict[str, Any] = {
        "spec": {
            "TrainingJobName": "job",
            "AlgorithmSpecification": {"TrainingImage": "algo:1"},
            "InputDataConfig": [
                {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": channel_uri}}}
            ],
        },
        "output_uri": OUTPUT,
        "object_store_url": (tmp_path / "store").as_uri(),
    }
    path = tmp_path / "job.json"
    path.write_text(json.dumps(doc))
    return path


def args(tmp_path: Path, cfg: Path, keyring: Path, command: str) -> list[str]:
    return [
        command,
        "--config", str(cfg),
        "--keyring", str(keyring),
        "--ml-root", str(tmp_path / "ml"),
        "--termination-log", str(tmp_path / "termination-log"),
    ]  # fmt: skip


def test_download_decrypts_channels_and_writes_the_config(
    tmp_path: Path, keyring: Path, store: ObjectStore
) -> None:
    store.put_bytes("s3://ml-bucket/data/train/part-0.csv", b"1,2\n")
    cfg = config(tmp_path, "s3://ml-bucket/data/train")
    assert steps.main(args(tmp_path, cfg, keyring, "download")) == 0
    ml = tmp_path / "ml"
    assert (ml / "input/data/train/part-0.csv").read_bytes() == b"1,2\n"
    assert "train" in json.loads((ml / "input/config/inputdataconfig.json").read_text())


def test_a_missing_channel_is_a_client_error_that_fails_the_job(
    tmp_path: Path, keyring: Path
) -> None:
    cfg = config(tmp_path, "s3://ml-bucket/data/nothing-here")
    assert steps.main(args(tmp_path, cfg, keyring, "download")) == 2
    message = (tmp_path / "termination-log").read_text()
    assert message.startswith("ClientError: channel 'train': data download failed")


def test_upload_packs_the_model_after_success_only(tmp_path: Path, store: ObjectStore) -> None:
    cfg = steps.StepConfig.model_validate_json(config(tmp_path, "s3://ml-bucket/x").read_text())
    paths = MlPaths(tmp_path / "ml")
    paths.model_dir.mkdir(parents=True)
    (paths.model_dir / "weights.bin").write_bytes(b"w")
    steps.upload(cfg, store, paths, exit_code=1, stopping=False)
    assert not store.exists(OUTPUT)
    steps.upload(cfg, store, paths, exit_code=0, stopping=False)
    store.get_file(OUTPUT, tmp_path / "model.tar.gz")
    with tarfile.open(tmp_path / "model.tar.gz") as tar:
        assert "weights.bin" in [Path(n).name for n in tar.getnames()]


def test_upload_waits_for_the_user_container() -> None:
    states = iter(
        [
            {"status": {"containerStatuses": [{"name": "algo", "state": {"running": {}}}]}},
            {
                "status": {
                    "containerStatuses": [
                        {"name": "algo", "state": {"terminated": {"exitCode": 3}}}
                    ]
                }
            },
        ]
    )
    assert steps.wait_for_container(lambda: next(states), "algo", poll=0.0) == 3


def test_fetch_model_unpacks_the_artifact(
    tmp_path: Path, keyring: Path, store: ObjectStore
) -> None:
    src = tmp_path / "model-src"
    src.mkdir()
    (src / "model.joblib").write_bytes(b"m")
    pack_dir(src, tmp_path / "model.tar.gz")
    store.put_file("s3://ml-bucket/models/m/model.tar.gz", tmp_path / "model.tar.gz")
    code = steps.main(
        [
            "fetch-model",
            "--keyring", str(keyring),
            "--ml-root", str(tmp_path / "ml"),
            "--object-store", (tmp_path / "store").as_uri(),
            "--model-data", "s3://ml-bucket/models/m/model.tar.gz",
        ]
    )  # fmt: skip
    assert code == 0
    assert (tmp_path / "ml/model/model.joblib").read_bytes() == b"m"

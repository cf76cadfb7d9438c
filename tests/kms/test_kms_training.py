"""A training job's OutputDataConfig.KmsKeyId on the real process backend, with each provider:
model.tar.gz (and output.tar.gz) are written under that key, the rest under the default."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from orchestrator.objects import FileObjectStore, KeyProvider, LocalKeyring
from orchestrator.objects.aws_kms import AwsKmsKeyProvider
from orchestrator.objects.vault import VaultTransitKeyProvider
from tests.e2e.conftest import RunningServer, _kill_leftovers, script_job, server_env
from tests.kms.conftest import Bao, kms_client

pytestmark = pytest.mark.slow

SCRIPT = """
import os
open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w").write("weights")
open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "extra.txt"), "w").write("more")
"""


@dataclass
class Setup:
    env: dict[str, str]
    provider: KeyProvider  # the same provider, opened here to read what the server wrote
    default: str  # the header key id of the default key
    chosen: str  # the KmsKeyId the job names
    chosen_id: str  # the header key id it gives


def _local(tmp_path: Path) -> Setup:
    ring = LocalKeyring(tmp_path / "home" / "keys" / "keyring.json")
    key = ring.create_key("job-key")
    return Setup({}, ring, ring.active_key_id, "alias/job-key", key.key_id)


def _aws(tmp_path: Path, endpoint: str) -> Setup:
    kms = kms_client(endpoint)
    default = kms.create_key()["KeyMetadata"]["Arn"]
    chosen = kms.create_key()["KeyMetadata"]["Arn"]
    alias = f"alias/job-{uuid.uuid4().hex[:8]}"
    kms.create_alias(AliasName=alias, TargetKeyId=chosen)
    env = {
        "ORCH_OBJECTS__KEY_PROVIDER": "aws-kms",
        "ORCH_OBJECTS__KMS_KEY_ID": default,
        "ORCH_OBJECTS__KMS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
    }
    return Setup(env, AwsKmsKeyProvider(default, client=kms), default, alias, chosen)


def _vault(bao: Bao) -> Setup:
    default, chosen = f"d-{uuid.uuid4().hex[:8]}", f"c-{uuid.uuid4().hex[:8]}"
    bao.create_key(default)
    bao.create_key(chosen)
    env = {
        "ORCH_OBJECTS__KEY_PROVIDER": "vault",
        "ORCH_OBJECTS__KMS_KEY_ID": default,
        "ORCH_OBJECTS__VAULT_ADDR": bao.addr,
        "ORCH_OBJECTS__VAULT_TOKEN_FILE": str(bao.token_file),
    }
    provider = VaultTransitKeyProvider(default, addr=bao.addr, token_file=bao.token_file)
    return Setup(env, provider, f"{default}:v1", chosen, f"{chosen}:v1")


@pytest.fixture(params=["local", "aws-kms", "vault"])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Setup:
    if request.param == "local":
        return _local(tmp_path)
    if request.param == "aws-kms":
        return _aws(tmp_path, request.getfixturevalue("kms_endpoint"))
    return _vault(request.getfixturevalue("bao"))


@pytest.fixture
def server(tmp_path: Path, setup: Setup) -> Iterator[RunningServer]:
    s = RunningServer(root=tmp_path, env=server_env(tmp_path, **setup.env))
    s.start()
    try:
        yield s
    finally:
        s.stop()
        _kill_leftovers(tmp_path / "home")


def test_job_output_is_written_under_its_kms_key(server: RunningServer, setup: Setup) -> None:
    c = server.client()
    output = {"S3OutputPath": "s3://orchestrator/out", "KmsKeyId": setup.chosen}
    script_job(c, "keyed", SCRIPT, OutputDataConfig=output)
    job = c.wait_for_training_job("keyed", timeout=60, poll=0.1)
    assert job.TrainingJobStatus == "Completed", job.FailureReason
    store = FileObjectStore(server.root / "home" / "objects", setup.provider)
    model = job.ModelArtifacts.S3ModelArtifacts
    assert store.head(model).key_id == setup.chosen_id
    assert store.head(model.replace("model.tar.gz", "output.tar.gz")).key_id == setup.chosen_id
    # The source the client uploaded names no key: the default wrapped it.
    assert store.head("s3://orchestrator/keyed/source/sourcedir.tar.gz").key_id == setup.default
    assert c.download_bytes(model)[:2] == b"\x1f\x8b"  # the server reads it back
    assert os.environ.get("ORCH_OBJECTS__KEY_PROVIDER") is None  # nothing leaked into tests

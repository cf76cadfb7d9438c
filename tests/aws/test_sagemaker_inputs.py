"""URIs on the SageMaker wire: the same refusals as REST, in SageMaker's codes (the caller is
the access key's principal, set by the gateway)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from orchestrator.api import inputs

ROLE = "arn:aws:iam::000000000000:role/SageMakerRole"


def create_model(sagemaker: Any, name: str, url: str) -> Any:
    return sagemaker.create_model(
        ModelName=name,
        PrimaryContainer={"Image": "example/serve:1", "ModelDataUrl": url},
        ExecutionRoleArn=ROLE,
    )


def test_a_model_url_elsewhere_is_a_validation_exception(sagemaker: Any) -> None:
    for url in ("https://169.254.169.254/model.tar.gz", "s3://127.0.0.1/model.tar.gz"):
        with pytest.raises(ClientError) as caught:
            create_model(sagemaker, "m", url)
        error = caught.value.response["Error"]
        assert error["Code"] == "ValidationException"
        assert "PrimaryContainer.ModelDataUrl" in error["Message"]


def test_file_uris_for_admins_only(
    sagemaker: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifact = tmp_path / "model.tar.gz"
    artifact.write_bytes(b"x")
    create_model(sagemaker, "by-admin", artifact.as_uri())
    monkeypatch.setattr(inputs, "may_read_host_files", lambda _principal: False)
    with pytest.raises(ClientError) as caught:
        create_model(sagemaker, "by-other", artifact.as_uri())
    error = caught.value.response["Error"]
    assert error["Code"] == "AccessDeniedException"
    assert "only admins" in error["Message"]

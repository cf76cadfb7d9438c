"""A transform job's TransformOutput.KmsKeyId on the real process backend: the .out files are
written under that key by the instance runner."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.backends.process import ProcessBackend
from orchestrator.controller.runtime import Controller
from orchestrator.objects import LocalKeyring
from orchestrator.resources.transform import TransformJobState
from orchestrator.store import StateStore
from tests.e2e.conftest import _kill_leftovers
from tests.e2e.transform_harness import (
    csv,
    job_spec,
    predicted,
    put_model,
    rows,
    trained,
    transform_settings,
)

pytestmark = pytest.mark.slow


def test_transform_output_is_written_under_its_kms_key(tmp_path: Path) -> None:
    settings = transform_settings(tmp_path / "home")
    key = LocalKeyring(settings.keyring_path).create_key("scores")
    backend = ProcessBackend(settings)
    state = StateStore(f"sqlite:///{tmp_path / 'state.db'}")
    try:
        model = trained()
        spec_model = put_model(backend.transform_store, "m", model)
        x = rows(300)
        backend.transform_store.put_bytes("s3://data/tk/in/a.csv", csv(x))
        spec = job_spec("tk", "m")
        spec.TransformOutput.KmsKeyId = "alias/scores"
        now = datetime.now(tz=UTC)
        state.create(
            "Model", "m", spec_model.model_dump(mode="json", exclude_none=True), {},
            phase="Ready", active=False, now=now,
        )  # fmt: skip
        state.create(
            "TransformJob", "tk", spec.model_dump(mode="json", exclude_none=True),
            TransformJobState().model_dump(mode="json"), phase="InProgress", active=True, now=now,
        )  # fmt: skip
        ctl = Controller(state, backend, settings)
        deadline = time.monotonic() + 120
        while state.get("TransformJob", "tk").phase == "InProgress":
            assert time.monotonic() < deadline, backend.read_transform_logs("tk", 0, 20_000)
            ctl.run_pass()
            time.sleep(0.2)
        st = TransformJobState.model_validate(state.get("TransformJob", "tk").status)
        assert st.TransformJobStatus == "Completed", st.FailureReason
        out = backend.transform_store
        assert out.head("s3://data/tk/out/a.csv.out").key_id == key.key_id
        assert out.head("s3://data/tk/in/a.csv").key_id != key.key_id  # the input: default
        lines = out.get_bytes("s3://data/tk/out/a.csv.out").decode().splitlines()
        assert lines == predicted(model, x)
    finally:
        state.close()
        backend.close()
        _kill_leftovers(tmp_path / "home")

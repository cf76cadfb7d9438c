"""The control plane's own health collectors (what the alerting rules read) move where they
should: the controller's pass and the training queue, API latency, held requests, and the
object store's errors on the file and S3 drivers (a stub S3 client, no server)."""

from __future__ import annotations

import errno
import socket
import urllib.request
from pathlib import Path
from typing import Any

import pydantic
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from orchestrator import metrics
from orchestrator.errors import (
    BackendError,
    IntegrityError,
    NotFoundError,
    PermissionDeniedError,
    UnavailableError,
    ValidationError,
)
from orchestrator.objects import FileObjectStore, LocalKeyring
from orchestrator.objects import store as store_module
from orchestrator.objects.s3 import S3ObjectStore
from orchestrator.settings import KubeSettings
from orchestrator.testing import FakeClock, local_control_plane, training_job_spec


def value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def store_errors(kind: str) -> float:
    return value("orch_object_store_errors_total", error=kind)


def test_a_pass_records_its_duration_its_end_and_the_queue_length(tmp_path: Path) -> None:
    with local_control_plane(tmp_path, controller={"max_concurrent_training_jobs": 1}) as cp:
        cp.client.upload_bytes(b"x", "s3://orchestrator/code/sourcedir.tar.gz")
        for name in ("q-a", "q-b", "q-c"):
            cp.client.create_training_job(training_job_spec(name))
        passes = value("orch_controller_pass_seconds_count")
        before = value("orch_controller_last_pass_timestamp_seconds")
        cp.controller.run_pass()
        assert value("orch_controller_pass_seconds_count") == passes + 1
        assert value("orch_controller_last_pass_timestamp_seconds") > before
        assert value("orch_training_queue_length") == 2.0  # one slot: two jobs wait
        cp.backend.complete("q-a")
        cp.controller.run_pass()
        assert value("orch_training_queue_length") == 1.0


def test_ended_jobs_and_attempts_are_counted_once(tmp_path: Path) -> None:
    clock = FakeClock()
    ended = ("orch_training_jobs_ended_total", {"status": "Completed"})
    seconds = ("orch_training_job_seconds_count", {"status": "Completed"})
    retried = ("orch_training_attempts_ended_total", {"outcome": "Failed", "retried": "true"})
    done = ("orch_training_attempts_ended_total", {"outcome": "Completed", "retried": "false"})
    watched = (ended, seconds, retried, done)
    before = [value(n, **labels) for n, labels in watched]

    def moved() -> list[float]:
        return [value(n, **labels) - b for (n, labels), b in zip(watched, before, strict=True)]

    with local_control_plane(tmp_path, clock=clock) as cp:
        cp.client.upload_bytes(b"x", "s3://orchestrator/code/sourcedir.tar.gz")
        spec = training_job_spec("ends", RetryStrategy={"MaximumRetryAttempts": 1})
        cp.client.create_training_job(spec)
        cp.controller.run_pass()
        cp.backend.fail("ends", "the host went away", kind="InternalServerError")
        cp.controller.run_pass()
        cp.controller.run_pass()
        assert moved() == [0, 0, 1, 0]  # the failed attempt, retried
        clock.advance(60)
        cp.controller.run_pass()  # the backoff is over: the second attempt launches
        clock.advance(30)
        cp.backend.complete("ends")
        for _ in range(3):
            cp.controller.run_pass()
        assert cp.client.describe_training_job("ends").TrainingJobStatus == "Completed"
        assert moved() == [1, 1, 1, 1]


def test_api_requests_record_their_latency_by_route(tmp_path: Path) -> None:
    labels = {"method": "GET", "route": "/healthz"}
    with local_control_plane(tmp_path) as cp:
        before = value("orch_api_request_seconds_count", **labels)
        cp.client.server_info()
        assert value("orch_api_request_seconds_count", **labels) == before + 1


def test_held_requests_keep_only_the_variants_that_hold_some() -> None:
    metrics.record_held_requests({("hz", "a"): 3, ("hz", "b"): 0})
    assert value("orch_held_requests", endpoint="hz", variant="a") == 3.0
    assert (
        metrics.REGISTRY.get_sample_value("orch_held_requests", {"endpoint": "hz", "variant": "b"})
        is None
    )
    metrics.record_held_requests({})
    assert (
        metrics.REGISTRY.get_sample_value("orch_held_requests", {"endpoint": "hz", "variant": "a"})
        is None
    )


def test_an_unknown_object_store_error_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="'disk' is not one of"):
        metrics.record_object_store_error("disk")


# --- the object store ---------------------------------------------------------------------
@pytest.fixture
def files(tmp_path: Path) -> FileObjectStore:
    return FileObjectStore(tmp_path / "objects", LocalKeyring(tmp_path / "keys" / "k.json"))


def test_a_tampered_object_counts_one_integrity_error(files: FileObjectStore) -> None:
    files.put_bytes("s3://bkt/k", b"some bytes")
    path = files.root / "bkt" / "k"
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 1
    path.write_bytes(bytes(raw))
    before = store_errors("integrity")
    with pytest.raises(IntegrityError):
        files.get_bytes("s3://bkt/k")
    assert store_errors("integrity") == before + 1


def test_a_missing_object_is_the_callers_error_not_the_stores(files: FileObjectStore) -> None:
    before = {k: store_errors(k) for k in metrics.OBJECT_STORE_ERROR_KINDS}
    with pytest.raises(NotFoundError):
        files.get_bytes("s3://bkt/none")
    assert {k: store_errors(k) for k in metrics.OBJECT_STORE_ERROR_KINDS} == before


def test_a_full_disk_counts_one_io_error(
    files: FileObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(store_module, "atomic_file", full)
    before = store_errors("io")
    with pytest.raises(OSError, match="No space left"):
        files.put_bytes("s3://bkt/k", b"x")
    assert store_errors("io") == before + 1


def test_an_unreadable_object_counts_one_io_error(
    files: FileObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    files.put_bytes("s3://bkt/k", b"x")

    def denied(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(store_module, "open", denied, raising=False)
    before = store_errors("io")
    with pytest.raises(PermissionError):
        files.get_bytes("s3://bkt/k")
    assert store_errors("io") == before + 1


def test_a_delete_the_disk_refuses_counts_one_io_error(
    files: FileObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    files.put_bytes("s3://bkt/k", b"x")

    def read_only(self: Path, missing_ok: bool = False) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(Path, "unlink", read_only)
    before = store_errors("io")
    with pytest.raises(OSError, match="Read-only"):
        files.delete("s3://bkt/k")
    assert store_errors("io") == before + 1


class _Meta:
    endpoint_url = "http://s3.invalid"


class _FailingS3:
    """A stub S3 client whose every call raises ``error``."""

    meta = _Meta()

    def __init__(self, error: Exception) -> None:
        self.error = error

    def head_object(self, **kwargs: Any) -> Any:
        raise self.error


def _client_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": code}}, "HeadObject")


@pytest.mark.parametrize(
    ("error", "raised", "kind"),
    [
        (_client_error("InternalError"), BackendError, "backend"),
        (_client_error("AccessDenied"), PermissionDeniedError, "permission"),
        (
            EndpointConnectionError(endpoint_url="http://s3.invalid"),
            UnavailableError,
            "unavailable",
        ),
    ],
)
def test_s3_failures_count_by_kind(
    tmp_path: Path, error: Exception, raised: type[Exception], kind: str
) -> None:
    s3 = S3ObjectStore(
        "bucket",
        "",
        LocalKeyring(tmp_path / "k.json"),
        client=_FailingS3(error),  # type: ignore[arg-type]
    )
    before = store_errors(kind)
    with pytest.raises(raised):
        s3.head("s3://bkt/k")
    assert store_errors(kind) == before + 1


def test_s3_missing_object_counts_nothing(tmp_path: Path) -> None:
    s3 = S3ObjectStore(
        "bucket", "", LocalKeyring(tmp_path / "k.json"),
        client=_FailingS3(_client_error("404")),  # type: ignore[arg-type]
    )  # fmt: skip
    before = {k: store_errors(k) for k in metrics.OBJECT_STORE_ERROR_KINDS}
    with pytest.raises(NotFoundError):
        s3.head("s3://bkt/k")
    assert {k: store_errors(k) for k in metrics.OBJECT_STORE_ERROR_KINDS} == before


# --- the operator's metrics endpoint ------------------------------------------------------
def test_the_operator_serves_the_controllers_metrics() -> None:
    from orchestrator.kube.operator import serve_metrics

    metrics.record_controller_pass(0.01, 1.0)
    server = serve_metrics(0, addr="127.0.0.1")
    try:
        port = server.server_port
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            body = r.read().decode()
        assert "orch_controller_pass_seconds_count" in body
        assert "orch_training_queue_length" in body
    finally:
        server.shutdown()
        server.server_close()


def test_a_metrics_port_in_use_names_the_setting() -> None:
    from orchestrator.kube.operator import serve_metrics

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(ValidationError, match="ORCH_KUBE__METRICS_PORT") as e:
            serve_metrics(taken.getsockname()[1], addr="127.0.0.1")
    assert e.value.field == "ORCH_KUBE__METRICS_PORT"


def test_the_metrics_port_setting_is_a_port() -> None:
    assert KubeSettings().metrics_port is None
    assert KubeSettings(metrics_port=9090).metrics_port == 9090
    with pytest.raises(pydantic.ValidationError, match="metrics_port"):
        KubeSettings(metrics_port=70000)

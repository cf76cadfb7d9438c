"""The training data contract (``training.transfer``) as the host-side supervisors use it, and
what the process backend makes of an attempt's result file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from core_builders import training_spec

from orchestrator.backends.process.jobs import ProcessJobs
from orchestrator.objects import LocalKeyring, ObjectStore, open_object_store
from orchestrator.resources.failures import FailureReason
from orchestrator.settings import Settings
from orchestrator.training.contract import Host, MlPaths, shard
from orchestrator.training.files import JOB_FILE, RESULT_FILE
from orchestrator.training.transfer import TrainingFailure, Transfer, algorithm_failure

OUTPUT = "s3://bkt/jobs/j/output/model.tar.gz"


@pytest.fixture
def store(tmp_path: Path) -> ObjectStore:
    return open_object_store((tmp_path / "store").as_uri(), LocalKeyring(tmp_path / "k.json"))


def channel(uri: str, distribution: str = "FullyReplicated") -> dict[str, Any]:
    return {
        "ChannelName": "train",
        "DataSource": {"S3DataSource": {"S3Uri": uri, "S3DataDistributionType": distribution}},
    }


def transfer(
    tmp_path: Path, store: ObjectStore, *, file_uris: str | None = None, **spec: Any
) -> Transfer:
    return Transfer(
        training_spec(**spec),
        MlPaths(tmp_path / "ml"),
        lambda: store,
        output_uri=OUTPUT,
        file_uris=file_uris,
        scratch=tmp_path,
    )


def test_shard_takes_every_nth_item_from_the_hosts_index() -> None:
    items = list("abcdefg")
    assert [shard(items, Host(i, 3)) for i in range(3)] == [
        ["a", "d", "g"],
        ["b", "e"],
        ["c", "f"],
    ]
    assert shard(["a"], Host(1, 2)) == []


def test_a_host_out_of_range_is_refused_naming_the_range() -> None:
    with pytest.raises(ValueError, match=r"host index 3 is out of range: .*hosts 0\.\.2"):
        Host(3, 3)


def test_file_channels_are_sharded_like_object_channels(tmp_path: Path, store: ObjectStore) -> None:
    data = tmp_path / "data"
    (data / "sub").mkdir(parents=True)
    for name in ("a.csv", "b.csv", "sub/c.csv"):
        (data / name).write_text(name)
    t = transfer(
        tmp_path,
        store,
        InputDataConfig=[channel(data.as_uri(), "ShardedByS3Key")],
        ResourceConfig={"InstanceCount": 2},
    )
    homes = {h: tmp_path / f"share-{h.name}" for h in (Host(0, 2), Host(1, 2))}
    t.download(hosts=list(homes), shard_dir=lambda h, _c: homes[h])
    got = {
        h.name: sorted(p.relative_to(d).as_posix() for p in d.rglob("*.csv"))
        for h, d in homes.items()
    }
    assert got == {"algo-1": ["a.csv", "sub/c.csv"], "algo-2": ["b.csv"]}
    assert list((tmp_path / "ml/input/data/train").iterdir()) == []  # shared dir: no shard


def test_a_refused_file_uri_is_a_client_error_saying_why(
    tmp_path: Path, store: ObjectStore
) -> None:
    t = transfer(
        tmp_path,
        store,
        file_uris="file:// URIs are disabled on this server",
        InputDataConfig=[channel((tmp_path / "x").as_uri())],
    )
    with pytest.raises(TrainingFailure) as caught:
        t.download()
    assert caught.value.reason.kind == "ClientError"
    assert caught.value.reason.message.endswith("file:// URIs are disabled on this server")


def test_no_checkpoints_yet_is_not_an_error_and_saved_ones_come_back(
    tmp_path: Path, store: ObjectStore
) -> None:
    spec = {"CheckpointConfig": {"S3Uri": "s3://bkt/ckpt/"}}
    transfer(tmp_path, store, **spec).download()
    assert list((tmp_path / "ml/checkpoints").iterdir()) == []
    store.put_bytes("s3://bkt/ckpt/epoch-3.pt", b"3")
    transfer(tmp_path, store, **spec).download()
    assert (tmp_path / "ml/checkpoints/epoch-3.pt").read_bytes() == b"3"


def test_upload_puts_model_evaluation_output_and_checkpoints(
    tmp_path: Path, store: ObjectStore
) -> None:
    t = transfer(tmp_path, store, CheckpointConfig={"S3Uri": "s3://bkt/ckpt"})
    t.paths.make([])
    (t.paths.model_dir / "evaluation.json").write_text("{}")
    (t.paths.model_dir / "evaluation_scores.json").write_text('{"test": {}}')
    (t.paths.output_data_dir / "report.txt").write_text("r")
    (t.paths.checkpoint_dir / "last.pt").write_bytes(b"c")
    assert t.upload() == OUTPUT
    assert sorted(o.uri for o in store.list("s3://bkt/")) == [
        "s3://bkt/ckpt/last.pt",
        "s3://bkt/jobs/j/output/evaluation.json",
        "s3://bkt/jobs/j/output/evaluation_scores.json",
        "s3://bkt/jobs/j/output/model.tar.gz",
        "s3://bkt/jobs/j/output/output.tar.gz",
    ]


def test_the_failure_file_is_the_reason_else_how_the_process_ended(tmp_path: Path) -> None:
    paths = MlPaths(tmp_path)
    assert algorithm_failure(-9, paths) == FailureReason(
        kind="AlgorithmError",
        message="the training process was killed by SIGKILL (killed; out of memory?)",
    )
    assert algorithm_failure(3, paths, ["Traceback", "ValueError: x"]).message == (
        "ExecuteUserScriptError: exit code 3\nTraceback\nValueError: x"
    )
    assert algorithm_failure(-99, paths).message == "the training process was killed by signal 99"
    paths.failure_file.parent.mkdir(parents=True)
    paths.failure_file.write_text("  label column missing\n")
    assert algorithm_failure(1, paths, out_of_memory="OOM") == FailureReason(
        kind="AlgorithmError", message="label column missing"
    )


@pytest.mark.parametrize(
    "content",
    [b"{not json", b'{"outcome": "failed"}', b'{"outcome": "failed", "exit_code": 1, '
     b'"started_at": 1, "ended_at": 2, "failure": {"kind": "Oops", "message": "m"}}'],
)  # fmt: skip
def test_a_corrupt_result_file_is_an_internal_error_not_a_crash(
    tmp_path: Path, content: bytes
) -> None:
    jobs = ProcessJobs(Settings(home=tmp_path / "home"))
    root = jobs.jobs_dir / "j" / "attempt-1"
    root.mkdir(parents=True)
    (root / JOB_FILE).write_text(json.dumps({"gpus": []}))
    (root / RESULT_FILE).write_bytes(content)
    seen = jobs.observe_job("j")
    assert seen is not None
    assert (seen.state, seen.outcome) == ("exited", "failed")
    assert seen.failure is not None and seen.failure.kind == "InternalServerError"
    assert seen.failure.message.startswith(f"the result file of attempt 1 ({root / RESULT_FILE})")


def test_a_typed_result_is_read_back_typed(tmp_path: Path) -> None:
    jobs = ProcessJobs(Settings(home=tmp_path / "home"))
    root = jobs.jobs_dir / "j" / "attempt-1"
    root.mkdir(parents=True)
    (root / JOB_FILE).write_text("{}")
    reason = FailureReason(kind="ClientError", message="channel 'train': no objects")
    doc = {"outcome": "failed", "exit_code": None, "started_at": 1, "ended_at": 2}
    (root / RESULT_FILE).write_text(json.dumps({**doc, "failure": reason.model_dump()}))
    seen = jobs.observe_job("j")
    assert seen is not None and seen.failure == reason

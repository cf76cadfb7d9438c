"""Docker replicas' log streams, against a stand-in for the Docker API: the container's output
with its engine timestamps as time marks, after the launcher's lines, kept when it goes."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.api.aws.logevents import Source, Window, forward
from orchestrator.backends.docker.replica_logs import DockerReplicaLogs
from orchestrator.training.joblog import split_timestamps


@dataclass
class StubContainer:
    labels: dict[str, str]
    output: bytes = b""

    def logs(self, **options: Any) -> bytes:
        assert options == {"stdout": True, "stderr": True, "timestamps": True}
        return self.output


@dataclass
class StubContainers:
    items: list[StubContainer] = field(default_factory=list)

    def list(self, **_: Any) -> list[StubContainer]:
        return list(self.items)


@dataclass
class StubClient:
    containers: StubContainers = field(default_factory=StubContainers)


class Logs(DockerReplicaLogs):
    def __init__(self, root: Path, client: StubClient) -> None:
        self.client = client  # type: ignore[assignment]
        self.owner = "test"
        self.replica_logs_dir = root
        self._logs_init()


def _events(logs: Logs, rid: str, start_ms: int | None = None) -> list[tuple[int, str]]:
    src = Source(
        read=lambda o, n: logs.read_replica_log("ep", rid, o, n),
        marks=logs.replica_log_marks("ep", rid),
        fallback_ms=0,
        complete=True,
    )
    return [(e.ms, e.message) for e in forward(src, 0, Window(start_ms), limit=100).events]


T1 = b"2026-12-03T10:00:00.123456789Z "
T2 = b"2026-12-03T10:00:05.000000001Z "
MS1, MS2 = 1796292000123, 1796292005000


def test_split_timestamps_keeps_the_lines_and_marks_their_times() -> None:
    data, marks = split_timestamps(T1 + b"hello\n" + b"no stamp\n" + T2 + b"later\n")
    assert data == b"hello\nno stamp\nlater\n"
    assert marks == [(0, MS1), (len(b"hello\nno stamp\n"), MS2)]


def test_stream_is_launcher_then_container_and_survives_the_container(tmp_path: Path) -> None:
    (tmp_path / "ep").mkdir()
    (tmp_path / "ep" / "A-0-1.log").write_bytes(b"fetching the model\n")
    c = StubContainer({"orchestrator.replica": "A-0-1"}, T1 + b"model loaded\n" + T2 + b"ok\n")
    client = StubClient(StubContainers([c]))
    logs = Logs(tmp_path, client)
    assert logs.replica_log_ids("ep") == ["A-0-1"]
    before = _events(logs, "A-0-1")
    assert before == [(0, "fetching the model"), (MS1, "model loaded"), (MS2, "ok")]
    assert _events(logs, "A-0-1", start_ms=MS2) == [(MS2, "ok")]  # since: by the marks
    logs.keep_container_log("ep", "A-0-1", c)  # removal: then the container is gone
    client.containers.items.clear()
    assert _events(logs, "A-0-1") == before  # byte for byte, times included
    logs.keep_container_log("ep", "A-0-1", c)  # twice: kept once
    assert _events(logs, "A-0-1") == before

"""CloudWatch Logs over a real job on the process backend: the supervisor's time marks give each
line the time it was printed (slow: starts a supervisor and the user's script)."""

from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from orchestrator import procs
from orchestrator.api.app import build_control_plane, create_app
from orchestrator.api.auth import new_api_key
from orchestrator.client import Client
from orchestrator.settings import Settings
from orchestrator.testing import ServerThread, tarball
from tests.aws.conftest import REGION

boto3 = pytest.importorskip("boto3")
pytestmark = pytest.mark.slow

SCRIPT = """\
import time
for i in range(3):
    print(f"step {i}", flush=True)
    time.sleep(0.4)
"""


def _wait_for_supervisors(home: Path) -> None:
    """The supervisor writes its result, then exits: wait for that (it is our child)."""
    for pid_file in home.glob("work/**/supervisor.pid"):
        pid = procs.ProcessId.from_file(pid_file)
        deadline = time.monotonic() + 10
        while pid is not None and procs.exit_code(pid.pid) is None and time.monotonic() < deadline:
            time.sleep(0.02)


def test_a_process_jobs_lines_carry_the_time_they_were_printed(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", config_dir=tmp_path / "config",
                        backend="process", controller={"resync_seconds": 0.2})  # fmt: skip
    plane = build_control_plane(settings)
    now = plane.clock.now()
    key = new_api_key(plane.keys, name="t", role="admin", now=now)
    record, secret = plane.access_keys.create(name="t", role="admin", now=now)
    with ServerThread(create_app(plane)) as server, Client(server.url, key) as c:
        uri = "s3://orchestrator/timed/source/sourcedir.tar.gz"
        c.upload_bytes(tarball({"train.py": SCRIPT}), uri)
        before = time.time()
        c.create_training_job({
            "TrainingJobName": "timed",
            "AlgorithmSpecification": {"TrainingInputMode": "File"},
            "HyperParameters": {"sagemaker_program": "train.py", "sagemaker_submit_directory": uri},
        })  # fmt: skip
        job = c.wait_for_training_job("timed", timeout=60, poll=0.1)
        after = time.time()
        assert job.TrainingJobStatus == "Completed", job.FailureReason
        logs = boto3.client("logs", endpoint_url=server.url, region_name=REGION,
                            aws_access_key_id=record.access_key_id,
                            aws_secret_access_key=secret)  # fmt: skip
        group = "/aws/sagemaker/TrainingJobs"
        (stream,) = logs.describe_log_streams(logGroupName=group, logStreamNamePrefix="timed/")[
            "logStreams"
        ]
        out = logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"],
                                  startFromHead=True)  # fmt: skip
    _wait_for_supervisors(settings.home)
    plane.close()
    events = {e["message"]: e["timestamp"] for e in out["events"]}
    steps = [events[f"step {i}"] for i in range(3)]
    assert all(before * 1000 <= t <= after * 1000 for t in events.values())
    assert all(350 <= b - a <= 2000 for a, b in itertools.pairwise(steps))  # printed 0.4 s apart
    times = [e["timestamp"] for e in out["events"]]
    assert times == sorted(times)
    assert stream["logStreamName"] == f"timed/algo-1-{times[0] // 1000}"
    assert stream["lastEventTimestamp"] == times[-1]

"""Training jobs on the real process backend, through a real control plane: faults included."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from orchestrator.client import Estimator
from orchestrator.errors import IntegrityError, JobFailedError, NotFoundError, ValidationError
from tests.e2e.conftest import RunningServer, script_job, source_tarball, wait_for_log

pytestmark = pytest.mark.slow

OK_SCRIPT = """
import os, json, sys
hp = json.loads(os.environ["SM_HPS"])
rows = open(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "data.csv")).read().split()
print("loss=0.25", flush=True)
print("rows=%d" % len(rows), flush=True)
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.json"), "w") as f:
    json.dump({"rows": len(rows), "hp": hp, "argv": sys.argv[1:]}, f)
"""


def test_script_job_runs_the_contract_and_uploads_an_encrypted_model(
    server: RunningServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "data.csv").write_text("1,2\n3,4\n5,6\n")
    c = server.client()
    uri = "s3://orchestrator/ok-job/source/sourcedir.tar.gz"
    c.upload_bytes(source_tarball({"train.py": OK_SCRIPT}), uri)
    c.create_training_job(
        {
            "TrainingJobName": "ok-job",
            "AlgorithmSpecification": {
                "TrainingInputMode": "File",
                "MetricDefinitions": [{"Name": "train:loss", "Regex": r"loss=(\S+)"}],
            },
            "HyperParameters": {
                "sagemaker_program": "train.py",
                "sagemaker_submit_directory": uri,
                "epochs": "3",
            },
            "InputDataConfig": [
                {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": data.as_uri()}}}
            ],
        }
    )
    job = c.wait_for_training_job("ok-job", timeout=30, poll=0.1)
    assert job.TrainingJobStatus == "Completed", job.FailureReason
    assert [m.MetricName for m in job.FinalMetricDataList] == ["train:loss"]
    assert job.FinalMetricDataList[0].Value == 0.25
    assert (
        job.ModelArtifacts.S3ModelArtifacts
        == "s3://orchestrator/training-jobs/ok-job/output/model.tar.gz"
    )
    statuses = [t.Status for t in job.SecondaryStatusTransitions]
    assert statuses == ["Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert all(t.EndTime is not None for t in job.SecondaryStatusTransitions)
    # The artifact is stored encrypted: the plaintext tarball's bytes are not on disk.
    stored = (
        server.root
        / "home"
        / "objects"
        / "orchestrator"
        / "training-jobs"
        / "ok-job"
        / "output"
        / "model.tar.gz"
    )
    assert stored.exists()
    plain = c.download_bytes(job.ModelArtifacts.S3ModelArtifacts)
    assert plain[:2] == b"\x1f\x8b" and stored.read_bytes()[:2] != b"\x1f\x8b"
    import io
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        model = json.loads(tar.extractfile("model.json").read())  # type: ignore[union-attr]
    assert model["rows"] == 3
    assert model["hp"] == {"epochs": 3}
    assert model["argv"] == ["--epochs", "3"]
    log = c.training_job_logs("ok-job").text
    assert "rows=3" in log and "Downloading" in log and "Uploading" in log


def test_failing_script_reports_the_last_lines_of_its_error(server: RunningServer) -> None:
    c = server.client()
    script_job(
        c,
        "bad-job",
        "import sys\nprint('reading data')\nraise ValueError(\"column 'age' is not numeric\")\n",
    )
    job = c.wait_for_training_job("bad-job", timeout=30, poll=0.1)
    assert job.TrainingJobStatus == "Failed"
    assert job.FailureReason is not None
    assert "exit code 1" in job.FailureReason
    assert "ValueError: column 'age' is not numeric" in job.FailureReason
    assert job.Conditions and {c.Type for c in job.Conditions} == {"Valid", "Running", "Succeeded"}


def test_failure_file_is_the_reason(server: RunningServer) -> None:
    c = server.client()
    script_job(
        c,
        "fail-file",
        "import os\nopen(os.path.join(os.environ['SM_OUTPUT_DIR'], 'failure'), 'w').write('label column missing')\nraise SystemExit(3)\n",
    )
    job = c.wait_for_training_job("fail-file", timeout=30, poll=0.1)
    assert job.TrainingJobStatus == "Failed"
    assert job.FailureReason == "AlgorithmError: label column missing"


def test_missing_entry_point_fails_the_job_naming_it(server: RunningServer) -> None:
    c = server.client()
    script_job(c, "no-entry", "print('hi')\n", program="nope.py")
    job = c.wait_for_training_job("no-entry", timeout=30, poll=0.1)
    assert job.TrainingJobStatus == "Failed"
    assert "entry point 'nope.py' not found" in (job.FailureReason or "")
    assert "train.py" in (job.FailureReason or "")


def test_a_script_that_never_exits_is_stopped_at_max_runtime(server: RunningServer) -> None:
    c = server.client()
    script_job(
        c,
        "forever",
        "import time\nprint('working', flush=True)\ntime.sleep(3600)\n",
        StoppingCondition={"MaxRuntimeInSeconds": 2},
    )
    job = c.wait_for_training_job("forever", timeout=40, poll=0.2)
    assert job.TrainingJobStatus == "Stopped"
    assert job.SecondaryStatus == "MaxRuntimeExceeded"
    assert "MaxRuntimeInSeconds=2" in (job.StopReason or "")


def test_stop_request_sigterms_the_script_and_keeps_what_it_saved(server: RunningServer) -> None:
    c = server.client()
    script = (
        "import os, signal, sys, time\n"
        "def bye(*_):\n"
        "    open(os.path.join(os.environ['SM_MODEL_DIR'], 'partial.txt'), 'w').write('saved')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, bye)\n"
        "print('ready', flush=True)\n"
        "time.sleep(3600)\n"
    )
    script_job(c, "stop-me", script)
    wait_for_log(c, "stop-me", "ready")
    c.stop_training_job("stop-me")
    job = c.wait_for_training_job("stop-me", timeout=30, poll=0.1)
    assert job.TrainingJobStatus == "Stopped"
    assert job.ModelArtifacts.S3ModelArtifacts.endswith("model.tar.gz")


def test_memory_limit_of_the_instance_type_is_enforced(server: RunningServer) -> None:
    c = server.client()
    script_job(
        c,
        "hog",
        "x = bytearray(6 * 1024 ** 3)\nprint('allocated')\n",
        ResourceConfig={"InstanceType": "ml.t3.medium", "InstanceCount": 1},
    )
    job = c.wait_for_training_job("hog", timeout=30, poll=0.1)
    assert job.TrainingJobStatus == "Failed"
    assert "MemoryError" in (job.FailureReason or "")


def test_control_plane_killed_mid_job_finds_the_job_and_its_true_end(
    server: RunningServer,
) -> None:
    c = server.client()
    script = (
        "import os, time\nprint('started', flush=True)\ntime.sleep(3)\n"
        "open(os.path.join(os.environ['SM_MODEL_DIR'], 'm.txt'), 'w').write('done')\n"
        "print('finished', flush=True)\n"
    )
    script_job(c, "survivor", script)
    wait_for_log(c, "survivor", "started")
    server.kill()  # SIGKILL, mid-training
    time.sleep(4)  # the job finishes while nobody watches
    server.start()
    c2 = server.client()
    job = c2.wait_for_training_job("survivor", timeout=30, poll=0.1)
    assert job.TrainingJobStatus == "Completed", job.FailureReason
    assert job.Attempt == 1  # adopted, never started twice
    attempts = list(
        (server.root / "home" / "work" / "training-jobs" / "survivor").glob("attempt-*")
    )
    assert [a.name for a in attempts] == ["attempt-1"]


def test_job_killed_while_control_plane_is_down_is_reported_failed(server: RunningServer) -> None:
    c = server.client()
    script_job(c, "victim", "import time\nprint('started', flush=True)\ntime.sleep(3600)\n")
    wait_for_log(c, "victim", "started")
    server.kill()
    pid_file = (
        server.root / "home" / "work" / "training-jobs" / "victim" / "attempt-1" / "supervisor.pid"
    )
    import os
    import signal

    os.killpg(json.loads(pid_file.read_text())["pid"], signal.SIGKILL)
    time.sleep(0.5)
    server.start()
    job = server.client().wait_for_training_job("victim", timeout=30, poll=0.1)
    assert job.TrainingJobStatus == "Failed"
    assert "supervisor process exited unexpectedly" in (job.FailureReason or "")


def test_estimator_fit_raises_with_the_failure_reason(
    server: RunningServer, tmp_path: Path
) -> None:
    script = tmp_path / "src" / "train.py"
    script.parent.mkdir()
    script.write_text("raise RuntimeError('learning rate must be positive')\n")
    est = Estimator(entry_point=str(script), client=server.client())
    lines: list[str] = []
    with pytest.raises(JobFailedError, match="learning rate must be positive"):
        est.fit(job_name="est-fail", log_sink=lines.append)
    assert any("learning rate must be positive" in line for line in lines)


def test_estimator_checks_the_entry_point_before_anything(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"entry_point '.*missing.py' not found"):
        Estimator(entry_point=str(tmp_path / "missing.py"))


def test_tampered_object_is_refused_without_plaintext(server: RunningServer) -> None:
    c = server.client()
    secret = b"patient records " * 1000
    c.upload_bytes(secret, "s3://orchestrator/data/records.bin")
    stored = server.root / "home" / "objects" / "orchestrator" / "data" / "records.bin"
    raw = bytearray(stored.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    stored.write_bytes(bytes(raw))
    with pytest.raises(IntegrityError, match="integrity") as info:
        c.download_bytes("s3://orchestrator/data/records.bin")
    assert b"patient" not in str(info.value).encode()


def test_a_script_ignoring_sigterm_is_killed_after_the_grace(server: RunningServer) -> None:
    c = server.client()
    script = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('stubborn', flush=True)\n"
        "time.sleep(3600)\n"
    )
    script_job(c, "stubborn", script)
    wait_for_log(c, "stubborn", "stubborn")
    started = time.monotonic()
    c.stop_training_job("stubborn")
    job = c.wait_for_training_job("stubborn", timeout=30, poll=0.1)
    waited = time.monotonic() - started
    assert job.TrainingJobStatus == "Stopped"
    # ORCH_CONTROLLER__STOP_GRACE_SECONDS=2 in these tests: SIGKILL came after the grace.
    assert 2.0 <= waited < 10.0
    pid_file = (
        server.root
        / "home"
        / "work"
        / "training-jobs"
        / "stubborn"
        / "attempt-1"
        / "supervisor.pid"
    )
    pid = json.loads(pid_file.read_text())["pid"]

    def gone() -> bool:
        try:
            return "Z" in Path(f"/proc/{pid}/stat").read_text().split(")")[-1][:3]
        except FileNotFoundError:
            return True

    # The supervisor writes its result and then exits: on a loaded machine the exit (the
    # interpreter's teardown) can come a moment after the job reads Stopped.
    deadline = time.monotonic() + 5.0
    while not gone() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert gone(), f"the supervisor (pid {pid}) still runs 5 s after the job stopped"


def test_first_run_saves_an_admin_key_readable_only_by_its_owner(server: RunningServer) -> None:
    creds = server.root / "config" / "credentials.json"
    assert creds.stat().st_mode & 0o777 == 0o600
    assert (server.root / "config").stat().st_mode & 0o077 == 0
    server.client().upload_bytes(b"x", "s3://orchestrator/any")  # the keyring is made on first use
    keyring = server.root / "home" / "keys" / "keyring.json"
    assert keyring.stat().st_mode & 0o777 == 0o600
    # The key itself is not stored: only its hash is in the database.
    db = (server.root / "home" / "state.db").read_bytes()
    assert server.key.split("_", 2)[2].encode() not in db


def test_evaluation_written_by_a_job_is_served_beside_its_model(server: RunningServer) -> None:
    c = server.client()
    script = (
        "import json, os\n"
        "d = os.environ['SM_MODEL_DIR']\n"
        "open(os.path.join(d, 'm.txt'), 'w').write('m')\n"
        "json.dump({'accuracy': 0.9, 'confusion_matrix': [[5, 1], [0, 4]]},"
        " open(os.path.join(d, 'evaluation.json'), 'w'))\n"
    )
    script_job(c, "evaluated", script)
    script_job(c, "plain", "import os\nopen(os.path.join(os.environ['SM_MODEL_DIR'], 'm'), 'w')\n")
    assert (
        c.wait_for_training_job("evaluated", timeout=30, poll=0.1).TrainingJobStatus == "Completed"
    )
    assert c.wait_for_training_job("plain", timeout=30, poll=0.1).TrainingJobStatus == "Completed"
    assert c.training_job_evaluation("evaluated") == {
        "accuracy": 0.9,
        "confusion_matrix": [[5, 1], [0, 4]],
    }
    with pytest.raises(NotFoundError, match="has no evaluation"):
        c.training_job_evaluation("plain")


CHECKPOINTING_SCRIPT = """
import hashlib, json, os, sys, time
ckpt = os.environ["SM_CHECKPOINT_DIR"]
os.makedirs(ckpt, exist_ok=True)
saved = sorted(f for f in os.listdir(ckpt) if f.startswith("epoch-"))
if saved:  # resumed: report what is in place, with its content's digest
    found = {f: hashlib.sha256(open(os.path.join(ckpt, f), "rb").read()).hexdigest() for f in saved}
    print("resumed with " + json.dumps(found), flush=True)
    sys.exit(0)
for epoch in (1, 2):
    with open(os.path.join(ckpt, "epoch-%d.pt" % epoch), "wb") as f:
        f.write(bytes([epoch]) * (1 << 20))
f = open(os.path.join(ckpt, "epoch-3.pt"), "wb")  # still being written when it is killed
f.write(b"partial")
f.flush()
print("closed two; pid=%d" % os.getpid(), flush=True)
time.sleep(3600)
"""


def test_a_sigkilled_checkpointing_job_resumes_with_every_closed_checkpoint(
    server: RunningServer,
) -> None:
    """The user's process is SIGKILLed after it closed two checkpoints and while it writes a
    third: the next attempt finds both closed ones in place, byte for byte."""
    import hashlib
    import os
    import re
    import signal

    c = server.client()
    checkpoints = {"S3Uri": "s3://orchestrator/ckpt-kill/checkpoints", "LocalPath": "/opt/ml/state"}
    script_job(
        c,
        "ckpt-kill",
        CHECKPOINTING_SCRIPT,
        CheckpointConfig=checkpoints,
        RetryStrategy={"MaximumRetryAttempts": 1},
    )
    wait_for_log(c, "ckpt-kill", "closed two")
    match = re.search(r"closed two; pid=(\d+)", c.training_job_logs("ckpt-kill").text)
    assert match is not None
    os.kill(int(match.group(1)), signal.SIGKILL)
    job = c.wait_for_training_job("ckpt-kill", timeout=60, poll=0.1)
    resumed = "ckpt-kill"
    # A user process killed by a SIGKILL we did not send is retried (RetryStrategy).
    assert job.Attempt == 2, job.FailureReason
    assert job.TrainingJobStatus == "Completed", job.FailureReason
    found = re.search(r"resumed with (\{.*\})", c.training_job_logs(resumed).text)
    assert found is not None
    closed = {f"epoch-{n}.pt": hashlib.sha256(bytes([n]) * (1 << 20)).hexdigest() for n in (1, 2)}
    # The one being written is synced as it was at the kill (SageMaker syncs the directory).
    assert json.loads(found.group(1)) == {
        **closed,
        "epoch-3.pt": hashlib.sha256(b"partial").hexdigest(),
    }

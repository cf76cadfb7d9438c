"""The in-pod steps (download, upload, fetch-model) against a file-backed encrypted store."""

from __future__ import annotations

import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from orchestrator.kube import steps
from orchestrator.kube.hosts import hosts_file, wait_for_peers
from orchestrator.objects import LocalKeyring, ObjectStore, open_object_store, pack_dir
from orchestrator.resources.failures import FailureReason
from orchestrator.training.contract import Host, MlPaths
from orchestrator.training.transfer import TrainingFailure

OUTPUT = "s3://ml-bucket/out/job/output/model.tar.gz"
PEERS = [f"job-1-{i}.job-1.ml.svc.cluster.local" for i in range(3)]


@pytest.fixture
def keyring(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "keyring.json"
    LocalKeyring(path).active_key_id  # noqa: B018 - creates the keyring
    return path


@pytest.fixture
def store(tmp_path: Path, keyring: Path) -> ObjectStore:
    return open_object_store((tmp_path / "store").as_uri(), LocalKeyring(keyring))


def config(tmp_path: Path, channel_uri: str, *, hosts: int = 1, **spec: Any) -> Path:
    distribution = spec.pop("distribution", "FullyReplicated")
    doc: dict[str, Any] = {
        "spec": {
            "TrainingJobName": "job",
            "AlgorithmSpecification": {"TrainingImage": "algo:1"},
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": hosts},
            "InputDataConfig": [
                {
                    "ChannelName": "train",
                    "DataSource": {
                        "S3DataSource": {
                            "S3Uri": channel_uri,
                            "S3DataDistributionType": distribution,
                        }
                    },
                }
            ],
            **spec,
        },
        "output_uri": OUTPUT,
        "object_store_url": (tmp_path / "store").as_uri(),
        "peers": PEERS[:hosts] if hosts > 1 else [],
        "peer_wait_seconds": 5,
    }
    path = tmp_path / "job.json"
    path.write_text(json.dumps(doc))
    return path


def step_config(path: Path) -> steps.StepConfig:
    return steps.StepConfig.model_validate_json(path.read_text())


def args(tmp_path: Path, cfg: Path, keyring: Path, command: str, *extra: str) -> list[str]:
    return [
        command,
        "--config", str(cfg),
        "--keyring", str(keyring),
        "--ml-root", str(tmp_path / "ml"),
        "--termination-log", str(tmp_path / "termination-log"),
        "--hosts-dir", str(tmp_path / "hosts"),
        *extra,
    ]  # fmt: skip


def termination(tmp_path: Path) -> FailureReason:
    """The termination message, read back as the operator reads it."""
    return FailureReason.decode((tmp_path / "termination-log").read_text())


def test_download_decrypts_channels_and_writes_the_config(
    tmp_path: Path, keyring: Path, store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POD_IP", "10.1.2.3")
    store.put_bytes("s3://ml-bucket/data/train/part-0.csv", b"1,2\n")
    cfg = config(tmp_path, "s3://ml-bucket/data/train")
    assert steps.main(args(tmp_path, cfg, keyring, "download")) == 0
    ml = tmp_path / "ml"
    assert (ml / "input/data/train/part-0.csv").read_bytes() == b"1,2\n"
    assert "train" in json.loads((ml / "input/config/inputdataconfig.json").read_text())
    resource = json.loads((ml / "input/config/resourceconfig.json").read_text())
    assert resource == {
        "current_host": "algo-1",
        "current_instance_type": "ml.m5.large",
        "hosts": ["algo-1"],
        "network_interface_name": "eth0",
    }
    # One host: algo-1 is the pod's own address.
    own = (tmp_path / "hosts" / "hosts").read_text().splitlines()[2]
    assert own.startswith("10.1.2.3\talgo-1 ")


def test_a_missing_channel_is_a_client_error_that_fails_the_job(
    tmp_path: Path, keyring: Path
) -> None:
    cfg = config(tmp_path, "s3://ml-bucket/data/nothing-here")
    assert steps.main(args(tmp_path, cfg, keyring, "download")) == 2
    reason = termination(tmp_path)
    assert reason.kind == "ClientError"
    assert reason.message.startswith("channel 'train': data download failed: no objects under")


def test_a_file_uri_is_refused_in_a_pod(tmp_path: Path, keyring: Path) -> None:
    cfg = config(tmp_path, (tmp_path / "data").as_uri())
    assert steps.main(args(tmp_path, cfg, keyring, "download")) == 2
    assert termination(tmp_path).message.endswith("a pod reads only s3:// URIs (the object store)")


def test_sharded_by_s3_key_gives_each_host_its_share(tmp_path: Path, store: ObjectStore) -> None:
    for k in range(5):
        store.put_bytes(f"s3://ml-bucket/data/train/part-{k}.csv", b"%d\n" % k)
    cfg = step_config(
        config(tmp_path, "s3://ml-bucket/data/train", hosts=3, distribution="ShardedByS3Key")
    )
    seen: dict[str, list[str]] = {}
    for index in range(3):
        paths = MlPaths(tmp_path / f"ml-{index}")
        steps.download(
            cfg,
            store,
            paths,
            Host(index, 3),
            hosts_dir=tmp_path / f"hosts-{index}",
            own_address=f"10.0.0.{index}",
            lookup=lambda name: f"10.0.0.{PEERS.index(name)}",
        )
        seen[f"algo-{index + 1}"] = sorted(p.name for p in paths.channel_dir("train").iterdir())
    assert seen == {
        "algo-1": ["part-0.csv", "part-3.csv"],
        "algo-2": ["part-1.csv", "part-4.csv"],
        "algo-3": ["part-2.csv"],
    }


def test_sharded_with_fewer_objects_than_hosts_leaves_a_host_none(
    tmp_path: Path, store: ObjectStore, capsys: pytest.CaptureFixture[str]
) -> None:
    for k in range(2):
        store.put_bytes(f"s3://ml-bucket/data/train/part-{k}.csv", b"x")
    cfg = step_config(
        config(tmp_path, "s3://ml-bucket/data/train", hosts=3, distribution="ShardedByS3Key")
    )
    paths = MlPaths(tmp_path / "ml")
    steps.download(
        cfg,
        store,
        paths,
        Host(2, 3),
        hosts_dir=tmp_path / "hosts",
        own_address="10.0.0.2",
        lookup=lambda name: f"10.0.0.{PEERS.index(name)}",
    )
    assert paths.channel_dir("train").is_dir()
    assert list(paths.channel_dir("train").iterdir()) == []
    assert "ShardedByS3Key over 2 object(s) for 3 hosts: algo-3 gets none" in (
        capsys.readouterr().err
    )


def test_each_host_is_named_in_its_config_and_its_hosts_file(
    tmp_path: Path, store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("socket.gethostname", lambda: "job-1-1")
    store.put_bytes("s3://ml-bucket/data/train/a.csv", b"x")
    cfg = step_config(config(tmp_path, "s3://ml-bucket/data/train", hosts=3))
    paths = MlPaths(tmp_path / "ml")
    steps.download(
        cfg,
        store,
        paths,
        Host(1, 3),
        hosts_dir=tmp_path / "hosts",
        own_address="10.0.0.11",
        lookup={PEERS[0]: "10.0.0.10", PEERS[2]: "10.0.0.12"}.get,
    )
    resource = json.loads((paths.config_dir / "resourceconfig.json").read_text())
    assert (resource["current_host"], resource["hosts"]) == (
        "algo-2",
        ["algo-1", "algo-2", "algo-3"],
    )
    assert (paths.channel_dir("train") / "a.csv").exists()  # FullyReplicated: every host
    assert (tmp_path / "hosts" / "hosts").read_text() == (
        "127.0.0.1\tlocalhost\n"
        "::1\tlocalhost ip6-localhost ip6-loopback\n"
        f"10.0.0.11\talgo-2 {PEERS[1]} job-1-1\n"
        "10.0.0.10\talgo-1\n"
        "10.0.0.12\talgo-3\n"
    )


@pytest.mark.parametrize("index", ["3", "-1", "two"])
def test_a_host_index_out_of_range_fails_the_job_naming_it(
    tmp_path: Path, keyring: Path, index: str
) -> None:
    cfg = config(tmp_path, "s3://ml-bucket/data/train", hosts=3)
    code = steps.main(args(tmp_path, cfg, keyring, "download", "--host-index", index))
    assert code == 3  # FATAL_EXIT: the Job's podFailurePolicy fails it at once
    reason = termination(tmp_path)
    assert reason.kind == "InternalServerError"
    assert f"--host-index {index!r}" in reason.message
    assert not (tmp_path / "ml").exists()  # refused before anything was downloaded


def test_a_peer_that_never_resolves_fails_naming_the_host(
    tmp_path: Path, store: ObjectStore
) -> None:
    store.put_bytes("s3://ml-bucket/data/train/a.csv", b"x")
    cfg = step_config(config(tmp_path, "s3://ml-bucket/data/train", hosts=3))
    cfg = cfg.model_copy(update={"peer_wait_seconds": 0.3})
    with pytest.raises(steps.Fatal) as caught:
        steps.download(
            cfg,
            store,
            MlPaths(tmp_path / "ml"),
            Host(0, 3),
            hosts_dir=tmp_path / "hosts",
            own_address="10.0.0.10",
            lookup={PEERS[1]: "10.0.0.11"}.get,  # algo-3 never resolves
        )
    reason = caught.value.reason
    assert reason.kind == "InternalServerError"
    assert reason.message.startswith(f"host algo-3 ({PEERS[2]}) did not resolve within 0.3 s")
    assert not (tmp_path / "hosts" / "hosts").exists()


def test_waiting_for_peers_retries_until_each_answers_or_the_deadline() -> None:
    now = [0.0]
    answers: dict[str, list[str | None]] = {PEERS[1]: [None, None, "10.0.0.11"]}

    def lookup(name: str) -> str | None:
        queue = answers.get(name, ["10.0.0.12"])
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    found = wait_for_peers(
        PEERS, Host(0, 3), wait_seconds=60, lookup=lookup, clock=lambda: now[0], sleep=sleep
    )
    assert found == {1: "10.0.0.11", 2: "10.0.0.12"}
    assert 0 < now[0] < 60
    with pytest.raises(TrainingFailure, match=r"host algo-2 \(.*\) did not resolve within 60 s"):
        wait_for_peers(
            PEERS,
            Host(0, 3),
            wait_seconds=60,
            lookup=lambda _name: None,
            clock=lambda: now[0],
            sleep=sleep,
        )


def test_the_hosts_file_names_every_host_once() -> None:
    text = hosts_file(Host(0, 2), "10.0.0.1", {1: "10.0.0.2"}, ["a-0.a.ns.svc", "a-0"])
    names = [n for line in text.splitlines() for n in line.split("\t")[1].split()]
    assert names.count("algo-1") == names.count("algo-2") == 1


def test_upload_packs_the_model_after_success_only(tmp_path: Path, store: ObjectStore) -> None:
    cfg = step_config(config(tmp_path, "s3://ml-bucket/x"))
    paths = MlPaths(tmp_path / "ml")
    paths.model_dir.mkdir(parents=True)
    (paths.model_dir / "weights.bin").write_bytes(b"w")
    (paths.model_dir / "evaluation.json").write_text('{"accuracy": 0.9}')
    (paths.model_dir / "evaluation_scores.json").write_text('{"test": {"labels": [1]}}')
    steps.upload(cfg, store, paths, exit_code=1, stopping=False)
    assert not store.exists(OUTPUT)
    steps.upload(cfg, store, paths, exit_code=0, stopping=False)
    store.get_file(OUTPUT, tmp_path / "model.tar.gz")
    with tarfile.open(tmp_path / "model.tar.gz") as tar:
        assert "weights.bin" in [Path(n).name for n in tar.getnames()]
    # The same contract as the other backends: the evaluation beside the model.
    evaluation = OUTPUT.rsplit("/", 1)[0] + "/evaluation.json"
    assert json.loads(store.get_bytes(evaluation)) == {"accuracy": 0.9}
    scores = OUTPUT.rsplit("/", 1)[0] + "/evaluation_scores.json"
    assert json.loads(store.get_bytes(scores)) == {"test": {"labels": [1]}}


def test_only_algo_1_uploads_the_model_and_every_host_its_checkpoints(
    tmp_path: Path, store: ObjectStore
) -> None:
    cfg = step_config(
        config(
            tmp_path,
            "s3://ml-bucket/x",
            hosts=2,
            CheckpointConfig={"S3Uri": "s3://ml-bucket/ckpt/"},
        )
    )
    for index in (1, 0):
        paths = MlPaths(tmp_path / f"ml-{index}")
        paths.model_dir.mkdir(parents=True)
        (paths.model_dir / "weights.bin").write_bytes(b"host %d" % index)
        paths.checkpoint_dir.mkdir(parents=True)
        (paths.checkpoint_dir / f"host-{index}.ckpt").write_bytes(b"c")
        steps.upload(cfg, store, paths, exit_code=0, stopping=False, host=Host(index, 2))
        assert store.exists(OUTPUT) is (index == 0)
    assert [o.uri for o in store.list("s3://ml-bucket/ckpt/")] == [
        "s3://ml-bucket/ckpt/host-0.ckpt",
        "s3://ml-bucket/ckpt/host-1.ckpt",
    ]
    store.get_file(OUTPUT, tmp_path / "model.tar.gz")
    with tarfile.open(tmp_path / "model.tar.gz") as tar:
        member = tar.extractfile(next(m for m in tar.getmembers() if m.name.endswith("bin")))
        assert member is not None and member.read() == b"host 0"


def test_a_failed_upload_is_an_internal_error(
    tmp_path: Path, store: ObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.errors import UnavailableError

    def broken(*_args: Any) -> None:
        raise UnavailableError("the object store did not answer")

    monkeypatch.setattr(store, "put_file", broken)
    cfg = step_config(config(tmp_path, "s3://ml-bucket/x"))
    with pytest.raises(TrainingFailure) as caught:
        steps.upload(cfg, store, MlPaths(tmp_path / "ml"), exit_code=0, stopping=False)
    assert caught.value.reason == FailureReason(
        kind="InternalServerError", message="upload failed: the object store did not answer"
    )


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


def test_fetch_model_tells_people_why_in_plain_words(tmp_path: Path, keyring: Path) -> None:
    """A serving pod's message is shown as it is (the endpoint's reason): not encoded."""
    code = steps.main(
        [
            "fetch-model",
            "--keyring", str(keyring),
            "--ml-root", str(tmp_path / "ml"),
            "--termination-log", str(tmp_path / "termination-log"),
            "--object-store", (tmp_path / "store").as_uri(),
            "--model-data", "s3://ml-bucket/models/none/model.tar.gz",
        ]
    )  # fmt: skip
    assert code == 2
    assert (
        (tmp_path / "termination-log")
        .read_text()
        .startswith("ClientError: ModelDataUrl: data download failed")
    )


def test_hostenv_runs_the_command_as_this_host(tmp_path: Path) -> None:
    config_dir = tmp_path / "input" / "config"
    config_dir.mkdir(parents=True)
    doc = {"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]}
    (config_dir / "resourceconfig.json").write_text(json.dumps(doc))
    show = "import os; print(os.environ['SM_CURRENT_HOST'], os.environ['SM_HOSTS'])"
    run = [sys.executable, "-m", "orchestrator.kube.hostenv", "--", sys.executable, "-c"]
    env = {"ORCH_ML_ROOT": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path.cwd())}
    done = subprocess.run([*run, show], env=env, capture_output=True, text=True, check=False)
    assert (done.returncode, done.stdout) == (0, 'algo-2 ["algo-1", "algo-2"]\n')
    exit_code = subprocess.run([*run, "raise SystemExit(7)"], env=env, check=False)
    assert exit_code.returncode == 7  # exec: the command's own exit code
    (config_dir / "resourceconfig.json").write_text('{"current_host": "algo-9", "hosts": []}')
    bad = subprocess.run([*run, show], env=env, capture_output=True, text=True, check=False)
    assert bad.returncode == 70
    assert "cannot tell which host this is" in bad.stderr


def test_the_upload_sidecar_syncs_checkpoints_while_the_user_container_runs(
    tmp_path: Path, store: ObjectStore
) -> None:
    """The sidecar's loop: the checkpoint sync every interval until ``algo`` terminates."""
    cfg = step_config(
        config(
            tmp_path,
            "s3://ml-bucket/x",
            CheckpointConfig={"S3Uri": "s3://ml-bucket/ckpt", "LocalPath": "/opt/ml/state"},
        )
    )
    moved = steps.transfer(cfg, store, MlPaths(tmp_path / "ml"))
    sync = moved.checkpoints
    assert sync is not None and sync.local == tmp_path / "ml" / "state"
    sync.local.mkdir(parents=True)
    (sync.local / "epoch-1.pt").write_bytes(b"1")
    now = [0.0]
    uploaded_while_running: list[bool] = []

    def read_pod() -> dict[str, Any]:
        now[0] += 5.0  # each status read: one sync interval later
        uploaded_while_running.append(store.exists("s3://ml-bucket/ckpt/epoch-1.pt"))
        state: dict[str, Any] = {"running": {}}
        if len(uploaded_while_running) == 4:
            state = {"terminated": {"exitCode": 137}}
        return {"status": {"containerStatuses": [{"name": "algo", "state": state}]}}

    code = steps.wait_for_container(
        read_pod, "algo", poll=0.0, meanwhile=steps.Watcher(sync).pass_once, every=5.0,
        clock=lambda: now[0],
    )  # fmt: skip
    assert code == 137
    assert uploaded_while_running == [False, False, True, True]
    # Killed: the model is not uploaded, the checkpoint written last still is.
    (sync.local / "epoch-2.pt").write_bytes(b"2")
    steps.upload(cfg, store, MlPaths(tmp_path / "ml"), code, False, moved=moved)
    assert not store.exists(OUTPUT)
    assert [o.uri for o in store.list("s3://ml-bucket/ckpt/")] == [
        "s3://ml-bucket/ckpt/epoch-1.pt",
        "s3://ml-bucket/ckpt/epoch-2.pt",
    ]


def test_the_training_pod_has_the_sync_sidecar_on_the_ml_volume() -> None:
    from orchestrator.kube.jobs import step_config as job_step_config
    from orchestrator.kube.jobs import training_job_manifest
    from orchestrator.resources.training import CreateTrainingJobRequest
    from orchestrator.settings import KubeSettings

    spec = CreateTrainingJobRequest.model_validate(
        {
            "TrainingJobName": "job",
            "AlgorithmSpecification": {"TrainingImage": "algo:1"},
            "CheckpointConfig": {"S3Uri": "s3://b/ckpt", "LocalPath": "/opt/ml/state/ckpt"},
        }
    )
    settings = KubeSettings(checkpoint_sync_seconds=2.5)
    job = training_job_manifest(
        "job", "ml", 1, spec, output_uri=OUTPUT, owner=None, settings=settings
    )
    pod = job["spec"]["template"]["spec"]
    # A regular container beside algo (it ends when algo has ended), not an init container.
    assert [c["name"] for c in pod["initContainers"]] == ["download"]
    containers = {c["name"]: c for c in pod["containers"]}
    assert list(containers) == ["algo", "upload"]
    upload = containers["upload"]
    assert upload["command"][-2:] == ["orchestrator.kube.steps", "upload"]
    for c in containers.values():
        assert {"name": "ml", "mountPath": "/opt/ml"} in c["volumeMounts"]
    assert {"name": "ml", "emptyDir": {"sizeLimit": "30Gi"}} in pod["volumes"]
    env = {e["name"]: e.get("value") for e in containers["algo"]["env"]}
    assert env["SM_CHECKPOINT_DIR"] == "/opt/ml/state/ckpt"
    cfg = steps.StepConfig.model_validate_json(
        job_step_config(spec, OUTPUT, settings, job="job-1", namespace="ml")
    )
    assert cfg.checkpoint_sync_seconds == 2.5


def test_hostenv_samples_its_containers_usage_into_the_log(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ORCH_USAGE_INTERVAL_SECONDS the command runs as hostenv's child; marked usage
    lines of the container's cgroup (here a fake one that a burning child drives) go to the
    log, the log readers split them off, and the exit code is the child's."""
    from orchestrator.kube import hostenv
    from orchestrator.training.usage import CgroupProbe, split_usage
    from orchestrator.training.usageseries import UsageParser

    config_dir = tmp_path / "input" / "config"
    config_dir.mkdir(parents=True)
    doc = {"current_host": "algo-1", "hosts": ["algo-1"], "current_instance_type": "ml.m5.large"}
    (config_dir / "resourceconfig.json").write_text(json.dumps(doc))
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_bytes(b"w" * (1 << 20))
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    (cgroup / "memory.stat").write_text("inactive_file 0\n")
    (cgroup / "memory.current").write_text(str(1 << 30))  # 1 GiB of ml.m5.large's 8
    # The child counts CPU into the fake cgroup as 4 CPU seconds per wall second (400%),
    # refreshed every 10 ms, and prints a line every quarter second (one left unfinished).
    script = (
        "import pathlib, time\n"
        f"p = pathlib.Path({str(cgroup / 'cpu.stat')!r})\n"
        "t0 = time.monotonic()\n"
        "printed = 0\n"
        "while time.monotonic() - t0 < 2.0:\n"
        "    now = time.monotonic() - t0\n"
        "    p.write_text(f'usage_usec {int(now * 4_000_000)}\\n')\n"
        "    if now >= printed * 0.25:\n"
        "        printed += 1\n"
        "        print('step', printed, end='' if printed == 4 else '\\n', flush=True)\n"
        "    time.sleep(0.01)\n"
        "raise SystemExit(3)\n"
    )
    (cgroup / "cpu.stat").write_text("usage_usec 0\n")
    monkeypatch.setattr(hostenv, "CgroupProbe", lambda: CgroupProbe(root=cgroup))
    monkeypatch.setenv("ORCH_ML_ROOT", str(tmp_path))
    monkeypatch.setenv("ORCH_USAGE_INTERVAL_SECONDS", "0.3")
    monkeypatch.setenv("ORCH_USAGE_VOLUME_GB", "1")
    monkeypatch.setenv("ORCH_USAGE_ATTEMPT", "2")
    code = hostenv.main(["--", sys.executable, "-c", script])
    assert code == 3
    out = capfd.readouterr().out.encode()
    log, usage = split_usage(out)
    assert [line.split()[:2] for line in log.decode().splitlines()][:3] == [
        ["step", "1"],
        ["step", "2"],
        ["step", "3"],
    ]
    assert b"orchestrator:usage" not in log and b"Timestamp" not in log
    assert "step 4step 5\n" in log.decode()  # a line cut by a sample is whole again
    parser = UsageParser()
    parser.feed(usage)
    series = parser.series
    cpu = [p.value for p in series[("CPUUtilization", "algo-1")]]
    memory = [p.value for p in series[("MemoryUtilization", "algo-1")]]
    disk = [p.value for p in series[("DiskUtilization", "algo-1")]]
    assert cpu and all(250 <= v <= 550 for v in cpu), cpu  # 400%, give or take a refresh
    assert memory and all(v == 12.5 for v in memory)
    assert disk and 0.09 <= disk[0] <= 0.2  # 1 MiB and the config of 1 GiB
    assert json.loads(usage.splitlines()[0])["Attempt"] == 2

"""Training jobs as real containers through a real control plane on the Docker backend."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import docker
import httpx
import numpy as np
import pytest
from sklearn.datasets import load_breast_cancer

from orchestrator.backends.docker.engine import owner_of
from orchestrator.client import Client
from orchestrator.settings import DockerSettings
from tests.e2e.conftest import RunningServer, script_job

pytestmark = pytest.mark.slow

TRAIN = """
import json, os, sys
import joblib
import numpy as np
from sklearn.linear_model import LogisticRegression
data = np.loadtxt(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "train.csv"), delimiter=",")
model = LogisticRegression(max_iter=5000).fit(data[:, 1:], data[:, 0])
print("train:accuracy=%.4f" % model.score(data[:, 1:], data[:, 0]), flush=True)
joblib.dump(model, os.path.join(os.environ["SM_MODEL_DIR"], "model.joblib"))
print("uid=%d argv=%s" % (os.getuid(), sys.argv[1:]), flush=True)
"""

INFERENCE = """
import os, joblib
def model_fn(model_dir):
    return joblib.load(os.path.join(model_dir, "model.joblib"))
"""


def containers_of(
    client: docker.DockerClient, job: str
) -> list[docker.models.containers.Container]:
    return list(
        client.containers.list(
            all=True, ignore_removed=True, filters={"label": f"orchestrator.resource={job}"}
        )
    )


def wait_running_container(
    client: docker.DockerClient, job: str, timeout: float = 30
) -> docker.models.containers.Container:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for c in containers_of(client, job):
            if c.status == "running":
                return c
        time.sleep(0.1)
    raise AssertionError(f"no running container for {job}")


def wait_log(c: Client, job: str, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = c.training_job_logs(job).text
        if text in log:
            return log
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared in the log of {job}: {log}")


def test_demo_flow_on_docker_train_deploy_predict(
    docker_server: RunningServer, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    x, y = load_breast_cancer(return_X_y=True)
    data = tmp_path / "data"
    data.mkdir()
    np.savetxt(data / "train.csv", np.column_stack([y, x]), delimiter=",")
    c = docker_server.client()
    script_job(
        c,
        "demo-docker",
        TRAIN,
        AlgorithmSpecification={
            "TrainingInputMode": "File",
            "MetricDefinitions": [{"Name": "train:accuracy", "Regex": r"train:accuracy=(\S+)"}],
        },
        ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 1},
        InputDataConfig=[
            {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": data.as_uri()}}}
        ],
    )
    job = c.wait_for_training_job("demo-docker", timeout=120, poll=0.2)
    assert job.TrainingJobStatus == "Completed", job.FailureReason
    assert job.FinalMetricDataList[0].Value > 0.9
    log = c.training_job_logs("demo-docker").text
    assert "uid=1000" in log  # not root inside the container
    assert [t.Status for t in job.SecondaryStatusTransitions] == [
        "Starting",
        "Downloading",
        "Training",
        "Uploading",
        "Completed",
    ]
    assert containers_of(docker_client, "demo-docker") == []  # removed once read
    assert not docker_client.networks.list(names=["orch-demo-docker-1"])

    src = "s3://orchestrator/demo-docker/serve.tar.gz"
    from tests.e2e.conftest import source_tarball

    c.upload_bytes(source_tarball({"inference.py": INFERENCE}), src)
    c.create_model(
        ModelName="demo-docker",
        PrimaryContainer={
            "ModelDataUrl": job.ModelArtifacts.S3ModelArtifacts,
            "Environment": {
                "SAGEMAKER_PROGRAM": "inference.py",
                "SAGEMAKER_SUBMIT_DIRECTORY": src,
            },
        },
    )
    c.create_endpoint_config(
        EndpointConfigName="demo-docker",
        ProductionVariants=[
            {"VariantName": "main", "ModelName": "demo-docker", "InitialInstanceCount": 1}
        ],
    )
    c.create_endpoint(EndpointName="demo-docker", EndpointConfigName="demo-docker")
    c.wait_for_endpoint("demo-docker", timeout=90)
    answer = c.invoke_endpoint("demo-docker", json.dumps(x[:5].tolist()).encode())
    assert json.loads(answer.body)["predictions"] == [float(v) for v in y[:5]]
    replicas = docker_client.containers.list(
        filters={"label": ["orchestrator.kind=replica", "orchestrator.resource=demo-docker"]}
    )
    assert len(replicas) == 1 and replicas[0].attrs["Config"]["User"] == "1000:1000"


def test_failing_job_reports_the_error_last_lines(docker_server: RunningServer) -> None:
    c = docker_server.client()
    script_job(c, "fail-docker", "print('about to fail')\nraise ValueError('bad column 7')\n")
    job = c.wait_for_training_job("fail-docker", timeout=60, poll=0.2)
    assert job.TrainingJobStatus == "Failed"
    assert job.FailureReason is not None
    assert "exit code 1" in job.FailureReason
    assert "ValueError: bad column 7" in job.FailureReason


def test_failure_file_is_the_reason(docker_server: RunningServer) -> None:
    c = docker_server.client()
    script = (
        "import os\n"
        "open(os.path.join(os.environ['SM_OUTPUT_DIR'], 'failure'), 'w').write('no labels')\n"
        "raise SystemExit(3)\n"
    )
    script_job(c, "failfile-docker", script)
    job = c.wait_for_training_job("failfile-docker", timeout=60, poll=0.2)
    assert job.TrainingJobStatus == "Failed"
    assert job.FailureReason == "AlgorithmError: no labels"


STOPPABLE = """
import os, signal, sys, time
def on_term(signo, frame):
    print("got SIGTERM, saving", flush=True)
    open(os.path.join(os.environ["SM_MODEL_DIR"], "partial.txt"), "w").write("saved")
    sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
print("training", flush=True)
time.sleep(120)
"""


def test_stopped_job_gets_sigterm_in_the_container(
    docker_server: RunningServer, docker_client: docker.DockerClient
) -> None:
    c = docker_server.client()
    script_job(c, "stop-docker", STOPPABLE)
    wait_log(c, "stop-docker", "training")
    c.stop_training_job("stop-docker")
    job = c.wait_for_training_job("stop-docker", timeout=60, poll=0.2)
    assert job.TrainingJobStatus == "Stopped"
    assert "got SIGTERM, saving" in c.training_job_logs("stop-docker").text
    assert job.ModelArtifacts is not None  # what it saved in the grace is uploaded
    assert containers_of(docker_client, "stop-docker") == []


ISOLATED = """
import os, socket, sys, time
for host, port in [("1.1.1.1", 53), (os.environ["CONTROL_PLANE_HOST"], int(os.environ["CONTROL_PLANE_PORT"]))]:
    try:
        socket.create_connection((host, port), timeout=3).close()
        print("connected to %s:%d" % (host, port), flush=True)
    except OSError as e:
        print("blocked %s:%d: %s" % (host, port, e), flush=True)
time.sleep(2)
"""


def test_network_isolation_blocks_every_connection(
    docker_server: RunningServer, docker_client: docker.DockerClient
) -> None:
    c = docker_server.client()
    # The control plane listens on the host; from a container with a network, the host is
    # reachable at the bridge gateway. With isolation, nothing is.
    port = docker_server.url.rsplit(":", 1)[1]
    script_job(
        c,
        "isolated-docker",
        ISOLATED,
        EnableNetworkIsolation=True,
        Environment={"CONTROL_PLANE_HOST": "172.17.0.1", "CONTROL_PLANE_PORT": port},
    )
    container = wait_running_container(docker_client, "isolated-docker")
    assert container.attrs["HostConfig"]["NetworkMode"] == "none"
    job = c.wait_for_training_job("isolated-docker", timeout=60, poll=0.2)
    assert job.TrainingJobStatus == "Completed", job.FailureReason
    log = c.training_job_logs("isolated-docker").text
    assert "blocked 1.1.1.1:53" in log
    assert f"blocked 172.17.0.1:{port}" in log
    assert "connected to" not in log


SLEEPER = """
import os, time
try:
    open("/probe", "w")
    print("rootfs writable", flush=True)
except OSError as e:
    print("rootfs read-only: %s" % e, flush=True)
open("/tmp/scratch", "w").write("ok")
print("tmp writable; running as uid %d" % os.getuid(), flush=True)
time.sleep(float(os.environ.get("SLEEP", "3")))
print("done", flush=True)
"""


def test_hardening_flags_visible_in_docker_inspect(
    docker_server: RunningServer, docker_client: docker.DockerClient
) -> None:
    c = docker_server.client()
    script_job(c, "hard-docker", SLEEPER, ResourceConfig={"InstanceType": "ml.m5.large"})
    container = wait_running_container(docker_client, "hard-docker")
    attrs = container.attrs
    host = attrs["HostConfig"]
    assert attrs["Config"]["User"] == "1000:1000"
    assert host["CapDrop"] == ["ALL"]
    assert host["SecurityOpt"] == ["no-new-privileges"]
    assert host["ReadonlyRootfs"] is True
    assert "/tmp" in host["Tmpfs"]
    assert host["Privileged"] is False
    assert host["Init"] is True
    assert (
        host["NanoCpus"] == min(2, os.cpu_count() or 1) * 1_000_000_000
        and host["Memory"] == 8192 * 1024 * 1024
    )
    assert host["NetworkMode"] == "orch-hard-docker-1"
    assert all("docker.sock" not in m["Source"] for m in attrs["Mounts"])
    assert [m["Destination"] for m in attrs["Mounts"] if m["Destination"] == "/opt/ml"]
    env = dict(e.split("=", 1) for e in attrs["Config"]["Env"])
    # The only credential in the container is the job's own (api/jobcreds.py), no other.
    secrets = sorted(k for k in env if k.startswith("AWS_") or "KEY" in k or "TOKEN" in k)
    assert secrets == [
        "AWS_ACCESS_KEY_ID", "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_REGION",
        "AWS_SECRET_ACCESS_KEY", "ORCH_API_KEY",
    ]  # fmt: skip
    assert sorted(k for k in env if k.startswith("ORCH_")) == [
        "ORCH_API_KEY", "ORCH_ENDPOINT_URL", "ORCH_ML_ROOT"
    ]  # fmt: skip
    me = httpx.get(
        f"{docker_server.url}/api/v1/caller",
        headers={"Authorization": f"Bearer {env['ORCH_API_KEY']}"},
        timeout=30,
        trust_env=False,
    ).json()
    assert me["UserName"] == "job/training/hard-docker"
    labels = attrs["Config"]["Labels"]
    assert labels["orchestrator.resource"] == "hard-docker"
    assert labels["orchestrator.attempt"] == "1"
    assert labels["orchestrator.kind"] == "training-job"
    job = c.wait_for_training_job("hard-docker", timeout=60, poll=0.2)
    assert job.TrainingJobStatus == "Completed", job.FailureReason
    log = c.training_job_logs("hard-docker").text
    assert "Read-only file system" in log and "tmp writable; running as uid 1000" in log


def test_gpu_device_request_in_the_created_container(
    docker_client: docker.DockerClient, images: dict[str, str], tmp_path: Path
) -> None:
    """No GPU runtime here: create (never start) the container the backend would run for an
    ml.p3.2xlarge job, and read the device request back from the engine."""
    from orchestrator.backends.docker.jobs import job_container_run
    from orchestrator.backends.docker.supervisor import create_kwargs
    from orchestrator.controller.plan.types import JobLaunch
    from orchestrator.resources.training import CreateTrainingJobRequest
    from orchestrator.settings import Settings

    settings = Settings(home=tmp_path / "home")
    image = images.get("ORCH_DOCKER__TRAINING_IMAGE", settings.docker.training_image)
    spec = CreateTrainingJobRequest.model_validate(
        {
            "TrainingJobName": "gpu-docker",
            "AlgorithmSpecification": {"TrainingImage": image},
            "ResourceConfig": {"InstanceType": "ml.p3.2xlarge"},
        }
    )
    run = job_container_run(settings, JobLaunch("gpu-docker", 1, spec, "s3://x/y"), "1000:1000")
    (tmp_path / "ml").mkdir()
    for ids, expected in ((None, (1, [])), (["3"], (0, ["3"]))):
        run.gpu_device_ids = ids
        kwargs = create_kwargs(
            run,
            host="algo-1",
            ml_root=tmp_path / "ml",
            entrypoint=None,
            command=["train"],
            environment={},
        )
        kwargs["name"] += "-inspect"
        kwargs["network_mode"] = "none"
        kwargs.pop("network")
        created = docker_client.containers.create(**kwargs)
        try:
            requests = created.attrs["HostConfig"]["DeviceRequests"]
            assert len(requests) == 1
            assert requests[0]["Capabilities"] == [["gpu"]]
            assert (requests[0]["Count"], requests[0]["DeviceIDs"]) == expected
            cpus = min(8, os.cpu_count() or 1)  # the instance's 8, capped at the host's
            assert created.attrs["HostConfig"]["NanoCpus"] == cpus * 1_000_000_000
            assert created.attrs["HostConfig"]["CapDrop"] == ["ALL"]
        finally:
            created.remove(force=True)


def test_control_plane_sigkilled_mid_job_adopts_it_with_one_container(
    docker_server: RunningServer, docker_client: docker.DockerClient
) -> None:
    c = docker_server.client()
    since = int(time.time()) - 1
    script_job(c, "adopt-docker", SLEEPER, Environment={"SLEEP": "4"})
    wait_running_container(docker_client, "adopt-docker")
    docker_server.kill()
    time.sleep(1)
    docker_server.start()
    c = docker_server.client()
    job = c.wait_for_training_job("adopt-docker", timeout=60, poll=0.2)
    assert job.TrainingJobStatus == "Completed", job.FailureReason
    assert "done" in c.training_job_logs("adopt-docker").text
    created = list(
        docker_client.events(
            since=since,
            until=int(time.time()) + 1,
            filters={
                "type": "container",
                "event": "create",
                "label": "orchestrator.resource=adopt-docker",
            },
            decode=True,
        )
    )
    assert len(created) == 1, created
    assert created[0]["Actor"]["Attributes"]["name"] == "orch-adopt-docker-1"


def test_orphan_containers_are_removed_on_start(
    docker_server: RunningServer, docker_client: docker.DockerClient, images: dict[str, str]
) -> None:
    image = images.get("ORCH_DOCKER__TRAINING_IMAGE", DockerSettings().training_image)
    orphan = docker_client.containers.create(
        image,
        command=["sleep", "60"],
        name="orch-ghost-docker-1",
        labels={
            "orchestrator.owner": owner_of(docker_server.root / "home" / "work"),
            "orchestrator.kind": "training-job",
            "orchestrator.resource": "ghost-docker",
            "orchestrator.attempt": "1",
        },
    )
    try:
        orphan.start()
        docker_server.stop()
        docker_server.start()
        with pytest.raises(docker.errors.NotFound):
            docker_client.containers.get(orphan.id)
    finally:
        with contextlib.suppress(docker.errors.NotFound):
            orphan.remove(force=True)


MULTI = """
import json, os, socket, time
cfg = json.load(open("/opt/ml/input/config/resourceconfig.json"))
me, hosts = cfg["current_host"], cfg["hosts"]
assert me == os.environ["SM_CURRENT_HOST"] and json.loads(os.environ["SM_HOSTS"]) == hosts
def resolve(host):
    for _ in range(100):  # a peer resolves once its container runs (and until it exits)
        try:
            return socket.gethostbyname(host)
        except OSError:
            time.sleep(0.1)
    raise SystemExit("cannot resolve " + host)
others = [resolve(h) for h in hosts if h != me]
print("%s of %s resolves %s" % (me, hosts, others), flush=True)
time.sleep(2)  # stay resolvable while the peer looks us up
if me == "algo-1":
    open(os.path.join(os.environ["SM_MODEL_DIR"], "hosts.json"), "w").write(json.dumps(hosts))
"""


def test_two_instances_share_a_network_and_name_each_other(
    docker_server: RunningServer, docker_client: docker.DockerClient
) -> None:
    c = docker_server.client()
    script_job(c, "multi-docker", MULTI, ResourceConfig={"InstanceCount": 2})
    job = c.wait_for_training_job("multi-docker", timeout=90, poll=0.2)
    assert job.TrainingJobStatus == "Completed", job.FailureReason
    log = c.training_job_logs("multi-docker").text
    assert "[algo-1] algo-1 of ['algo-1', 'algo-2'] resolves" in log
    assert "[algo-2] algo-2 of ['algo-1', 'algo-2'] resolves" in log
    assert containers_of(docker_client, "multi-docker") == []
    assert not docker_client.networks.list(names=["orch-multi-docker-1"])


SHARDS = """
import os
for channel in ("shards", "single", "whole"):
    d = os.environ["SM_CHANNEL_" + channel.upper()]
    print("%s sees %s: %s" % (os.environ["SM_CURRENT_HOST"], channel, sorted(os.listdir(d))), flush=True)
"""


def test_sharded_channels_give_each_container_its_share(
    docker_server: RunningServer, tmp_path: Path
) -> None:
    """ShardedByS3Key as on SageMaker and Kubernetes: every N-th file per host, none for a host
    past the number of files; FullyReplicated: every file on every host."""
    channels = {
        "shards": ["a.csv", "b.csv", "c.csv"],
        "single": ["only.csv"],
        "whole": ["w1", "w2"],
    }
    config = []
    for name, files in channels.items():
        d = tmp_path / "data" / name
        d.mkdir(parents=True)
        for f in files:
            (d / f).write_text(f)
        distribution = "FullyReplicated" if name == "whole" else "ShardedByS3Key"
        source = {"S3Uri": d.as_uri(), "S3DataDistributionType": distribution}
        config.append({"ChannelName": name, "DataSource": {"S3DataSource": source}})
    c = docker_server.client()
    script_job(
        c, "shards-docker", SHARDS, ResourceConfig={"InstanceCount": 2}, InputDataConfig=config
    )
    job = c.wait_for_training_job("shards-docker", timeout=90, poll=0.2)
    assert job.TrainingJobStatus == "Completed", job.FailureReason
    log = c.training_job_logs("shards-docker").text
    for line in (
        "[algo-1] algo-1 sees shards: ['a.csv', 'c.csv']",
        "[algo-2] algo-2 sees shards: ['b.csv']",
        "[algo-1] algo-1 sees single: ['only.csv']",
        "[algo-2] algo-2 sees single: []",
        "[algo-1] algo-1 sees whole: ['w1', 'w2']",
        "[algo-2] algo-2 sees whole: ['w1', 'w2']",
        "channel 'single' is ShardedByS3Key over 1 object(s) for 2 hosts: algo-2 gets none",
    ):
        assert line in log, log


def test_sagemaker_s_scikit_learn_images_run_on_the_project_s_images(
    docker_server: RunningServer, tmp_path: Path, docker_client: docker.DockerClient
) -> None:
    """The SDK's SKLearn estimator and model name SageMaker's image, which cannot be pulled
    here: the job runs in script mode in the training image, the replica in the serving one."""
    sklearn = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3"
    x, y = load_breast_cancer(return_X_y=True)
    data = tmp_path / "data"
    data.mkdir()
    np.savetxt(data / "train.csv", np.column_stack([y, x]), delimiter=",")
    c = docker_server.client()
    from tests.e2e.conftest import source_tarball

    src = "s3://orchestrator/skl-docker/source/sourcedir.tar.gz"
    c.upload_bytes(source_tarball({"train.py": TRAIN, "inference.py": INFERENCE}), src)
    c.create_training_job(
        {
            "TrainingJobName": "skl-docker",
            "AlgorithmSpecification": {"TrainingInputMode": "File", "TrainingImage": sklearn},
            # As the SDK sends them: JSON-encoded.
            "HyperParameters": {
                "sagemaker_program": '"train.py"',
                "sagemaker_submit_directory": json.dumps(src),
            },
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": 1},
            "InputDataConfig": [
                {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": data.as_uri()}}}
            ],
        }
    )
    job = c.wait_for_training_job("skl-docker", timeout=120, poll=0.2)
    assert job.TrainingJobStatus == "Completed", job.FailureReason
    assert "train:accuracy=" in c.training_job_logs("skl-docker").text
    c.create_model(
        ModelName="skl-docker",
        PrimaryContainer={
            "Image": sklearn,
            "ModelDataUrl": job.ModelArtifacts.S3ModelArtifacts,
            "Environment": {"SAGEMAKER_PROGRAM": "inference.py", "SAGEMAKER_SUBMIT_DIRECTORY": src},
        },
    )
    c.create_endpoint_config(
        EndpointConfigName="skl-docker",
        ProductionVariants=[{"VariantName": "main", "ModelName": "skl-docker"}],
    )
    c.create_endpoint(EndpointName="skl-docker", EndpointConfigName="skl-docker")
    c.wait_for_endpoint("skl-docker", timeout=90)
    answer = c.invoke_endpoint("skl-docker", json.dumps(x[:5].tolist()).encode())
    assert json.loads(answer.body)["predictions"] == [float(v) for v in y[:5]]
    replicas = docker_client.containers.list(
        filters={"label": ["orchestrator.kind=replica", "orchestrator.resource=skl-docker"]}
    )
    serving = DockerSettings().serving_image
    assert [r.attrs["Config"]["Image"] for r in replicas] == [serving]


# Writes past the 4 GiB memory limit of ml.t3.medium's container (no swap beyond it): the
# kernel kills it and the engine says State.OOMKilled; with "ok" in its data it completes.
HUNGRY = """
import os
mode = open(os.path.join(os.environ["SM_CHANNEL_TRAIN"], "mode.txt")).read().strip()
print("mode=" + mode, flush=True)
if mode == "hungry":
    big = b"x" * (6 << 30)
open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w").write(mode)
"""


def test_an_oom_killed_container_is_retried_and_the_job_completes(
    tmp_path: Path, images: dict[str, str], docker_client: docker.DockerClient
) -> None:
    from tests.docker.conftest import remove_test_containers
    from tests.e2e.conftest import _kill_leftovers, server_env

    # A backoff long enough for the test to change the data between the two attempts.
    env = server_env(
        tmp_path, ORCH_BACKEND="docker", ORCH_CONTROLLER__RETRY_BACKOFF_SECONDS="5", **images
    )
    server = RunningServer(root=tmp_path, env=env)
    server.start()
    try:
        data = tmp_path / "data"
        data.mkdir()
        (data / "mode.txt").write_text("hungry")
        c = server.client()
        script_job(
            c,
            "oom-docker",
            HUNGRY,
            ResourceConfig={"InstanceType": "ml.t3.medium", "InstanceCount": 1},
            RetryStrategy={"MaximumRetryAttempts": 1},
            InputDataConfig=[
                {"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": data.as_uri()}}}
            ],
        )
        deadline = time.monotonic() + 120
        while not c.describe_training_job("oom-docker").Attempts:
            assert time.monotonic() < deadline, "attempt 1 never ended"
            time.sleep(0.1)
        (data / "mode.txt").write_text("ok")
        first = c.describe_training_job("oom-docker").Attempts[0]
        assert first.Outcome == "Failed" and first.Retried
        assert first.FailureReason is not None
        assert first.FailureReason.startswith(
            "AlgorithmError: OutOfMemory: the training container was OOM-killed "
            "(State.OOMKilled) at its memory limit (4096 MiB on ml.t3.medium)"
        ), first.FailureReason
        job = c.wait_for_training_job("oom-docker", timeout=120, poll=0.2)
        assert job.TrainingJobStatus == "Completed", job.FailureReason
        assert [(a.AttemptNumber, a.Outcome) for a in job.Attempts] == [
            (1, "Failed"),
            (2, "Completed"),
        ]
        assert "mode=hungry" in c.training_job_logs("oom-docker", attempt=1).text
        second = c.training_job_logs("oom-docker", attempt=2).text
        assert "mode=ok" in second and "mode=hungry" not in second
    finally:
        server.stop()
        _kill_leftovers(tmp_path / "home")
        remove_test_containers(docker_client, tmp_path)

"""Distributed training on the process backend: N hosts as N processes, for real.

PyTorch (``torch==2.13.0``, an optional test dependency: ``.ci/torch.sh``) and TensorFlow
(the ``[tensorflow]`` extra) jobs on two hosts exchange gradients through the rendezvous the
backend sets up (``MASTER_ADDR``/``RANK``/``WORLD_SIZE``, ``TF_CONFIG``).
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest

from orchestrator.client import Client
from tests.e2e.conftest import RunningServer, script_job, source_tarball, wait_for_log

pytestmark = pytest.mark.slow


def need(package: str, install: str) -> None:
    if importlib.util.find_spec(package) is not None:
        return
    message = f"{package} is not installed ({install})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}: CI installs it")
    pytest.skip(message)


def distributed_job(
    c: Client, name: str, script: str, hosts: int, hyperparameters: dict[str, str], **fields: Any
) -> None:
    """A script-mode job on ``hosts`` instances with extra ``hyperparameters``."""
    uri = f"s3://orchestrator/{name}/source/sourcedir.tar.gz"
    c.upload_bytes(source_tarball({"train.py": script}), uri)
    spec: dict[str, Any] = {
        "TrainingJobName": name,
        "AlgorithmSpecification": {"TrainingInputMode": "File"},
        "HyperParameters": {
            "sagemaker_program": "train.py",
            "sagemaker_submit_directory": uri,
            **hyperparameters,
        },
        "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": hosts},
        **fields,
    }
    c.create_training_job(spec)


def channel(uri: str, sharded: bool = True) -> list[dict[str, Any]]:
    kind = "ShardedByS3Key" if sharded else "FullyReplicated"
    return [
        {
            "ChannelName": "train",
            "DataSource": {"S3DataSource": {"S3Uri": uri, "S3DataDistributionType": kind}},
        }
    ]


def model_files(c: Client, uri: str) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(c.download_bytes(uri)), mode="r:gz") as tar:
        return {
            m.name.removeprefix("./"): tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }


# --- PyTorch DistributedDataParallel (gloo, CPU) ---------------------------------------------
STEPS, LR = 40, 0.1
DDP = f"""
import json, os
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
torch.set_num_threads(1)
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
print("rank=%d world=%d master=%s:%s" % (rank, world, os.environ["MASTER_ADDR"],
      os.environ["MASTER_PORT"]), flush=True)
folder = os.environ["SM_CHANNEL_TRAIN"]
files = sorted(os.listdir(folder))
rows = [[float(v) for v in line.split(",")] for f in files
        for line in open(os.path.join(folder, f)).read().split()]
data = torch.tensor(rows)
x, y = data[:, 1:], data[:, :1]
torch.manual_seed(0)
model = DistributedDataParallel(torch.nn.Linear(x.shape[1], 1))
opt = torch.optim.SGD(model.parameters(), lr={LR})
for _ in range({STEPS}):
    opt.zero_grad()
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    opt.step()
params = [p.detach().flatten().tolist() for p in model.module.parameters()]
name = "params-%s.json" % os.environ["SM_CURRENT_HOST"]
with open(os.path.join(os.environ["SM_MODEL_DIR"], name), "w") as f:
    json.dump({{"rank": rank, "files": files, "params": params}}, f)
print("loss=%.6f" % loss.item(), flush=True)
dist.destroy_process_group()
"""


def alone(rows: list[list[float]]) -> list[list[float]]:
    """What one process gives on ``rows`` with the same seed, steps and rate."""
    import torch

    data = torch.tensor(rows)
    x, y = data[:, 1:], data[:, :1]
    torch.manual_seed(0)
    model = torch.nn.Linear(x.shape[1], 1)
    opt = torch.optim.SGD(model.parameters(), lr=LR)
    for _ in range(STEPS):
        opt.zero_grad()
        ((model(x) - y) ** 2).mean().backward()
        opt.step()
    return [p.detach().flatten().tolist() for p in model.parameters()]


def shards(tmp_path: Path) -> tuple[Path, list[list[list[float]]]]:
    """Two files of different linear relations: each shard alone gives another model."""
    data = tmp_path / "data"
    data.mkdir()
    parts = [
        [[2.0 * a - b + 1, a, b] for a, b in [(0.1, 0.5), (0.4, 0.2), (0.9, 0.7), (0.3, 0.8)]],
        [[-a + 3.0 * b, a, b] for a, b in [(0.6, 0.1), (0.2, 0.9), (0.8, 0.4), (0.5, 0.5)]],
    ]
    for i, rows in enumerate(parts):
        (data / f"part-{i}.csv").write_text("".join(",".join(map(str, r)) + "\n" for r in rows))
    return data, parts


def test_two_instance_ddp_job_exchanges_gradients_into_one_model(
    server: RunningServer, tmp_path: Path
) -> None:
    need("torch", "pip install torch==2.13.0")
    import torch

    data, parts = shards(tmp_path)
    c = server.client()
    distributed_job(
        c,
        "ddp",
        DDP,
        2,
        {"sagemaker_torch_distributed_enabled": "true"},
        InputDataConfig=channel(data.as_uri()),
    )
    job = c.wait_for_training_job("ddp", timeout=180, poll=0.2)
    log = c.training_job_logs("ddp").text
    assert job.TrainingJobStatus == "Completed", (job.FailureReason, log)
    assert "[algo-1] rank=0 world=2 master=127.0.0.1:" in log
    assert "[algo-2] rank=1 world=2 master=127.0.0.1:" in log
    files = model_files(c, job.ModelArtifacts.S3ModelArtifacts)
    # algo-1's and algo-2's model directories, merged into one model.tar.gz.
    assert sorted(files) == ["params-algo-1.json", "params-algo-2.json"]
    one, two = (json.loads(files[f"params-algo-{k}.json"]) for k in (1, 2))
    assert (one["rank"], one["files"]) == (0, ["part-0.csv"])
    assert (two["rank"], two["files"]) == (1, ["part-1.csv"])
    assert one["params"] == two["params"]  # one model: the ranks' gradients were averaged
    together = torch.tensor([v for p in one["params"] for v in p])
    solo = torch.tensor([v for p in alone(parts[0]) for v in p])
    assert not torch.allclose(together, solo, atol=1e-3)  # not rank 0 on its shard alone
    # Equal shards averaged = full-batch training on all the rows.
    both = torch.tensor([v for p in alone(parts[0] + parts[1]) for v in p])
    assert torch.allclose(together, both, atol=1e-5)


# --- TensorFlow MultiWorkerMirroredStrategy --------------------------------------------------
MWMS = """
import json, os
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
config = json.loads(os.environ["TF_CONFIG"])
import tensorflow as tf
strategy = tf.distribute.MultiWorkerMirroredStrategy()
index = config["task"]["index"]
print("worker=%d of %d replicas=%d" % (index, len(config["cluster"]["worker"]),
      strategy.num_replicas_in_sync), flush=True)
@tf.function
def step():
    ctx = tf.distribute.get_replica_context()
    return ctx.all_reduce(tf.distribute.ReduceOp.SUM, tf.constant(float(index + 1)))
total = strategy.experimental_local_results(strategy.run(step))[0]  # this worker's replica
print("allreduce=%s" % float(total), flush=True)
with open(os.path.join(os.environ["SM_MODEL_DIR"], "worker-%d.txt" % index), "w") as f:
    f.write(str(float(total)))
"""


def test_two_worker_multi_worker_mirrored_strategy_job(
    server: RunningServer, tmp_path: Path
) -> None:
    need("tensorflow", "pip install -e '.[tensorflow]'")
    c = server.client()
    distributed_job(
        c, "mwms", MWMS, 2, {"sagemaker_multi_worker_mirrored_strategy_enabled": "true"}
    )
    job = c.wait_for_training_job("mwms", timeout=240, poll=0.2)
    log = c.training_job_logs("mwms").text
    assert job.TrainingJobStatus == "Completed", (job.FailureReason, log)
    assert "[algo-1] worker=0 of 2 replicas=2" in log
    assert "[algo-2] worker=1 of 2 replicas=2" in log
    # Each worker's value summed across both (1 + 2), on both: they talked.
    assert "[algo-1] allreduce=3.0" in log and "[algo-2] allreduce=3.0" in log
    files = model_files(c, job.ModelArtifacts.S3ModelArtifacts)
    assert files == {"worker-0.txt": b"3.0", "worker-1.txt": b"3.0"}


# --- the environment, without a framework -----------------------------------------------------
ENV = """
import json, os
cfg = json.load(open(os.path.join(os.environ["SM_INPUT_CONFIG_DIR"], "resourceconfig.json")))
seen = {k: os.environ.get(k) for k in ("MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK",
        "LOCAL_RANK", "LOCAL_WORLD_SIZE", "NODE_RANK", "SM_CURRENT_HOST", "GLOO_SOCKET_IFNAME")}
seen["current_host"] = cfg["current_host"]
seen["files"] = sorted(os.listdir(os.environ["SM_CHANNEL_TRAIN"]))
seen["model_dir"] = os.environ["SM_MODEL_DIR"]
print("env=" + json.dumps(seen, sort_keys=True), flush=True)
open(os.path.join(os.environ["SM_MODEL_DIR"], "shared.txt"), "w").write(cfg["current_host"])
"""


def test_each_host_has_its_own_ml_root_shard_and_rank(
    server: RunningServer, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for name in "abc":
        (data / f"{name}.csv").write_text("1\n")
    c = server.client()
    distributed_job(
        c,
        "env3",
        ENV,
        3,
        {"sagemaker_torch_distributed_enabled": json.dumps(True)},
        InputDataConfig=channel(data.as_uri()),
    )
    job = c.wait_for_training_job("env3", timeout=60, poll=0.2)
    log = c.training_job_logs("env3").text
    assert job.TrainingJobStatus == "Completed", (job.FailureReason, log)
    seen = {
        line.split("] env=")[0].lstrip("["): json.loads(line.split("] env=")[1])
        for line in log.splitlines()
        if "] env=" in line
    }
    assert sorted(seen) == ["algo-1", "algo-2", "algo-3"]
    ports = {s["MASTER_PORT"] for s in seen.values()}
    assert len(ports) == 1 and int(ports.pop()) > 0
    for k, (host, s) in enumerate(sorted(seen.items())):
        assert s["current_host"] == s["SM_CURRENT_HOST"] == host
        assert (s["RANK"], s["NODE_RANK"], s["WORLD_SIZE"]) == (str(k), str(k), "3")
        assert (s["LOCAL_RANK"], s["LOCAL_WORLD_SIZE"]) == ("0", "1")
        assert (s["MASTER_ADDR"], s["GLOO_SOCKET_IFNAME"]) == ("127.0.0.1", "lo")
        assert s["files"] == [f"{'abc'[k]}.csv"]
    assert len({s["model_dir"] for s in seen.values()}) == 3
    # Every host wrote shared.txt: the lowest host's file is kept, and the log says so.
    files = model_files(c, job.ModelArtifacts.S3ModelArtifacts)
    assert files == {"shared.txt": b"algo-1"}
    assert "algo-2 wrote 1 file(s) a lower host also wrote, kept from the lower host" in log


FAILS = """
import os, sys, time
if os.environ["SM_CURRENT_HOST"] == "algo-2":
    time.sleep(1)
    print("algo-2 gives up", flush=True)
    sys.exit(3)
print("waiting for ever", flush=True)
time.sleep(600)
"""


def test_one_failing_instance_stops_the_others_and_names_itself(
    server: RunningServer,
) -> None:
    c = server.client()
    script_job(
        c, "fails", FAILS, ResourceConfig={"InstanceType": "ml.m5.large", "InstanceCount": 2}
    )
    wait_for_log(c, "fails", "[algo-1] waiting for ever")
    job = c.wait_for_training_job("fails", timeout=30, poll=0.2)
    assert job.TrainingJobStatus == "Failed"
    assert job.FailureReason is not None
    assert job.FailureReason.startswith(
        "AlgorithmError: algo-2: ExecuteUserScriptError: exit code 3"
    )
    assert "algo-2 gives up" in job.FailureReason
    log = c.training_job_logs("fails").text
    assert "algo-2 exited with code 3: stopping the other hosts" in log


PER_HOST_CHECKPOINT = """
import os, sys
host = os.environ["SM_CURRENT_HOST"]
ckpt = os.environ["SM_CHECKPOINT_DIR"]
saved = sorted(os.listdir(ckpt)) if os.path.isdir(ckpt) else []
print("[%s] found %s" % (host, ",".join(saved) or "nothing"), flush=True)
os.makedirs(ckpt, exist_ok=True)
open(os.path.join(ckpt, "%s.pt" % host), "w").write(host)
sys.exit(0 if saved else 3)  # the first attempt fails after its checkpoint: a new job resumes
"""


def test_every_host_uploads_its_own_checkpoints(server: RunningServer) -> None:
    """Each host's own /opt/ml has a checkpoint directory; each is synced, and a job resuming
    from the same S3Uri finds every host's checkpoint on every host."""
    c = server.client()
    checkpoints = {"S3Uri": "s3://orchestrator/ckpt2/checkpoints", "LocalPath": "/opt/ml/ck"}
    for name in ("ckpt2-first", "ckpt2-resumed"):
        distributed_job(c, name, PER_HOST_CHECKPOINT, 2, {}, CheckpointConfig=checkpoints)
        c.wait_for_training_job(name, timeout=60, poll=0.2)
    uris = [o["Uri"] for o in c.list_objects(checkpoints["S3Uri"] + "/")]
    assert sorted(u.rsplit("/", 1)[1] for u in uris) == ["algo-1.pt", "algo-2.pt"]
    first = c.training_job_logs("ckpt2-first").text
    assert "[algo-1] found nothing" in first and "[algo-2] found nothing" in first
    resumed = c.training_job_logs("ckpt2-resumed").text
    assert "[algo-1] found algo-1.pt,algo-2.pt" in resumed
    assert "[algo-2] found algo-1.pt,algo-2.pt" in resumed
    assert c.describe_training_job("ckpt2-resumed").TrainingJobStatus == "Completed"

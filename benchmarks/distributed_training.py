"""Two-instance PyTorch DDP on the process backend vs one instance on the same data.

Through the control plane as a user sees it (``orch server`` in a subprocess, REST with auth):
the same rows and the same number of full passes, trained by one host on everything or by
two hosts (``distribution={"torch_distributed": ...}``, gloo) on a ``ShardedByS3Key`` half
each. Reported: the training time (first step to last, as the script measures it), the
speed-up, and the launch overhead: submit -> each rank's first log line, and the rendezvous
(``init_process_group``) time. Needs ``torch==2.13.0``.

    python -m benchmarks.distributed_training [--rows 40000] [--steps 60]
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from pathlib import Path

from benchmarks._server import control_plane
from orchestrator.client import Client
from orchestrator.testing import tarball

SCRIPT = """
import os, time
print("first t=%.6f" % time.time(), flush=True)
import torch
import torch.distributed as dist
torch.set_num_threads(1)
world = int(os.environ.get("WORLD_SIZE", "1"))
if world > 1:
    t0 = time.time()
    dist.init_process_group("gloo")
    print("rendezvous s=%.6f" % (time.time() - t0), flush=True)
folder = os.environ["SM_CHANNEL_TRAIN"]
parts = [torch.load(os.path.join(folder, f)) for f in sorted(os.listdir(folder))]
x = torch.cat([p[0] for p in parts]); y = torch.cat([p[1] for p in parts])
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(x.shape[1], 256), torch.nn.ReLU(),
                            torch.nn.Linear(256, 1))
if world > 1:
    model = torch.nn.parallel.DistributedDataParallel(model)
opt = torch.optim.SGD(model.parameters(), lr=0.01)
t0 = time.time()
for _ in range(int(os.environ["STEPS"])):
    opt.zero_grad()
    loss = ((model(x) - y) ** 2).mean()
    loss.backward()
    opt.step()
print("train s=%.6f rows=%d loss=%.5f" % (time.time() - t0, len(x), loss.item()), flush=True)
if world > 1:
    dist.destroy_process_group()
"""


def make_data(folder: Path, rows: int, features: int = 64) -> None:
    import torch

    torch.manual_seed(1)
    x = torch.randn(rows, features)
    y = x @ torch.randn(features, 1) + 0.1 * torch.randn(rows, 1)
    half = rows // 2
    folder.mkdir(parents=True)
    torch.save((x[:half], y[:half]), folder / "part-0.pt")
    torch.save((x[half:], y[half:]), folder / "part-1.pt")


def run(c: Client, name: str, data: Path, hosts: int, steps: int) -> dict[str, float]:
    uri = f"s3://orchestrator/{name}/source/sourcedir.tar.gz"
    c.upload_bytes(tarball({"train.py": SCRIPT}), uri)
    hps = {"sagemaker_program": "train.py", "sagemaker_submit_directory": uri}
    if hosts > 1:
        hps["sagemaker_torch_distributed_enabled"] = "true"
    submitted = time.time()
    c.create_training_job(
        {
            "TrainingJobName": name,
            "AlgorithmSpecification": {"TrainingInputMode": "File"},
            "HyperParameters": hps,
            "ResourceConfig": {"InstanceType": "ml.m5.large", "InstanceCount": hosts},
            "Environment": {"STEPS": str(steps)},
            "InputDataConfig": [
                {
                    "ChannelName": "train",
                    "DataSource": {
                        "S3DataSource": {
                            "S3Uri": data.as_uri(),
                            "S3DataDistributionType": "ShardedByS3Key"
                            if hosts > 1
                            else "FullyReplicated",
                        }
                    },
                }
            ],
        }
    )
    job = c.wait_for_training_job(name, timeout=900, poll=0.2)
    log = c.training_job_logs(name).text
    if job.TrainingJobStatus != "Completed":
        raise SystemExit(f"{name}: {job.FailureReason}\n{log}")
    firsts = [float(t) for t in re.findall(r"first t=(\S+)", log)]
    rdv = [float(t) for t in re.findall(r"rendezvous s=(\S+)", log)]
    train = [float(t) for t in re.findall(r"train s=(\S+)", log)]
    return {
        "launch_min": min(firsts) - submitted,
        "launch_max": max(firsts) - submitted,
        "rendezvous": max(rdv) if rdv else 0.0,
        "train": max(train),
        "total": (job.TrainingEndTime - job.CreationTime).total_seconds()
        if job.TrainingEndTime and job.CreationTime
        else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=40000)
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    data = Path(tempfile.mkdtemp(prefix="orch-ddp-")) / "data"
    make_data(data, args.rows)
    results: dict[int, list[dict[str, float]]] = {1: [], 2: []}
    with control_plane() as (url, key, _root):
        c = Client(url, key)
        for r in range(args.repeat):
            for hosts in (1, 2):
                results[hosts].append(run(c, f"ddp-{hosts}-{r}", data, hosts, args.steps))
        c.close()

    def med(hosts: int, k: str) -> float:
        return statistics.median(x[k] for x in results[hosts])

    print(f"rows={args.rows} steps={args.steps} repeat={args.repeat} (median)")
    print(
        f"{'hosts':>5} {'train s':>8} {'speed-up':>8} {'1st line s':>15} "
        f"{'rendezvous s':>12} {'job total s':>11}"
    )
    for hosts in (1, 2):
        print(
            f"{hosts:>5} {med(hosts, 'train'):>8.2f} {med(1, 'train') / med(hosts, 'train'):>8.2f} "
            f"{med(hosts, 'launch_min'):>6.2f}-{med(hosts, 'launch_max'):<8.2f} "
            f"{med(hosts, 'rendezvous'):>12.3f} {med(hosts, 'total'):>11.2f}"
        )


if __name__ == "__main__":
    main()
